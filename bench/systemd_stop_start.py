#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The guest-visible pause of `systemctl stop; systemctl start` with
snapshot_on_stop, under systemd in the nspawn container the systemd tests use.

    CLOISTER_BUILD=build bench/systemd_stop_start.py [--memory 64M,1G] [--runs 3]

For each memory size: boots the counter guest as cloister@NAME, lets it
count, then times `systemctl stop` (pause, snapshot into the state
directory, exit) and `systemctl start` (restore, resume, READY=1). The
pause the guest sees is at most stop + start plus one 100 ms count
interval. The counter guest dirties little memory (a pattern at each end of
each region), so its snapshot is sparse: a guest that has written all its
RAM writes and reads it all. Needs root; run by hand, not by the test suite.
"""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from test_systemd import run_in_container, vm_config, why_not_nspawn  # noqa: E402

INSIDE = r"""#!/bin/bash
set -u
for name in $(ls /etc/cloister | sed 's/\.json$//'); do
	serial=/var/log/cloister/$name.serial
	systemctl start cloister@$name
	for _ in $(seq 100); do grep -q 'count 3$' $serial 2>/dev/null && break; sleep 0.1; done
	for run in $(seq RUNS); do
		t0=$(date +%s%N)
		systemctl stop cloister@$name
		t1=$(date +%s%N)
		size=$(du -sk /var/lib/cloister/$name/snapshot | cut -f1)
		systemctl start cloister@$name
		t2=$(date +%s%N)
		echo "$name stop_ms=$(((t1 - t0) / 1000000)) start_ms=$(((t2 - t1) / 1000000)) snapshot_kib=$size" >>/cloister-out/bench.txt
	done
	systemctl stop cloister@$name
	rm -rf /var/lib/cloister/$name/snapshot
done
"""


def parse_size(s):
    mult = {"M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory", default="64M,1G")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    reason = why_not_nspawn()
    if reason:
        sys.exit(f"cannot run: {reason}")
    work = tempfile.mkdtemp(prefix="cloister-bench-systemd-")
    try:
        script = os.path.join(work, "inside.sh")
        with open(script, "w") as f:
            f.write(INSIDE.replace("RUNS", str(args.runs)))
        os.chmod(script, 0o755)
        configs = {}
        for m in args.memory.split(","):
            name = f"m{m.lower()}"
            configs[name] = vm_config(name, snapshot_on_stop=True, memory=parse_size(m))
        rc, console, out = run_in_container(os.path.join(work, "c"), script, configs, timeout=900)
        path = os.path.join(out, "bench.txt")
        if not os.path.exists(path):
            sys.exit(f"no results (nspawn exit {rc}):\n{console[-3000:]}")
        with open(path) as f:
            sys.stdout.write(f.read())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
