#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The guest-visible pause of `systemctl restart` through the fd store against
`systemctl stop; systemctl start` through the disk, for a snapshot_on_stop
VM under systemd in the nspawn container the systemd tests use.

    CLOISTER_BUILD=build bench/systemd_stop_start.py [--memory 64M,1G] [--runs 3] [--fill]

For each memory size: boots the counter guest as cloister@NAME (with
--fill, countguest-fill.elf, which first writes every word of its RAM, so
the snapshot is not sparse), lets it count, then for each run times
`systemctl restart` (pause, memfds into the fd store, vm.json only, exit;
restore into the stored memfds, resume, READY=1) and `systemctl stop` plus
`systemctl start` (pause, snapshot of all memory into the state directory,
syncfs, exit; restore, resume, READY=1). The state directory is a bind of a
directory on the host's disk, not the container's tmpfs overlay.

The guest-visible pause is read from the guest itself: a watcher stamps each
line the guest prints every 100 ms as it reaches the serial file; the largest
gap between two consecutive count lines around the operation is the pause
plus one period. Needs root; run by hand, not by the test suite.
"""
import argparse
import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from conftest import BUILD  # noqa: E402
from test_systemd import run_in_container, vm_config, why_not_nspawn  # noqa: E402

FILL_GUEST = os.path.join(BUILD, "tests", "guest", "countguest-fill.elf")

INSIDE = r"""#!/bin/bash
set -u
OUT=/cloister-out
ms() { echo $(($(date +%s%N) / 1000000)); }
count() { grep -a '^hart 0 count ' "$1" 2>/dev/null | tail -n 1 | awk '{print $4}'; }
wait_more() {
	local want=$(( $(count $1) + $2 ))
	for _ in $(seq 1200); do
		c=$(count $1)
		[ -n "$c" ] && [ "$c" -ge "$want" ] && return 0
		sleep 0.05
	done
	return 1
}
for name in $(ls /etc/cloister | sed 's/\.json$//'); do
	serial=/var/log/cloister/$name.serial
	systemctl start cloister@$name
	for _ in $(seq 3000); do grep -q 'count 3$' $serial 2>/dev/null && break; sleep 0.1; done
	# Stamp each line as it arrives (ms since the epoch).
	tail -F -n0 -s 0.01 $serial 2>/dev/null | while IFS= read -r l; do
		echo "$(($(date +%s%N) / 1000000)) $l"
	done >$OUT/lines-$name.txt &
	watcher=$!
	sleep 1
	for run in $(seq RUNS); do
		t0=$(ms)
		systemctl restart cloister@$name
		t1=$(ms)
		wait_more $serial 3
		t2=$(ms)
		echo "$name restart run=$run t0=$t0 op_ms=$((t1 - t0)) end=$t2 state_kib=$(du -sk /var/lib/cloister/$name | cut -f1)" >>$OUT/ops.txt
		t0=$(ms)
		systemctl stop cloister@$name
		t1=$(ms)
		kib=$(du -sk /var/lib/cloister/$name/snapshot | cut -f1)
		systemctl start cloister@$name
		t2=$(ms)
		wait_more $serial 3
		t3=$(ms)
		echo "$name stopstart run=$run t0=$t0 stop_ms=$((t1 - t0)) start_ms=$((t2 - t1)) op_ms=$((t2 - t0)) end=$t3 snapshot_kib=$kib" >>$OUT/ops.txt
	done
	kill $watcher 2>/dev/null
	pkill -f "tail -F -n0 -s 0.01 $serial"
	systemctl stop cloister@$name
	grep -a -c 'restoring the VM from the fd store' <(journalctl -u cloister@$name -o cat) >$OUT/fdstore-$name.txt
	rm -rf /var/lib/cloister/$name/snapshot
done
"""


def parse_size(s):
    mult = {"M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def count_lines(path):
    """[(ms, count)] of hart 0's count lines."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"(\d+) hart 0 count (\d+)$", line.strip())
            if m:
                out.append((int(m.group(1)), int(m.group(2))))
    return out


def largest_gap(lines, t0, end):
    """The largest gap (ms) between consecutive count lines, the later of which
    arrived after the operation began (t0) and before the guest had counted on
    (end)."""
    gap = 0
    for (ta, ca), (tb, cb) in zip(lines, lines[1:]):
        if t0 < tb <= end:
            gap = max(gap, tb - ta)
    return gap


def report(out):
    rows = []
    with open(os.path.join(out, "ops.txt")) as f:
        for line in f:
            parts = line.split()
            kv = dict(p.split("=", 1) for p in parts[2:])
            lines = count_lines(os.path.join(out, f"lines-{parts[0]}.txt"))
            gap = largest_gap(lines, int(kv["t0"]), int(kv["end"]))
            rows.append((parts[0], parts[1], kv, gap))
    for name, kind, kv, gap in rows:
        extra = (f"stop_ms={kv['stop_ms']} start_ms={kv['start_ms']} snapshot_kib={kv['snapshot_kib']}"
                 if kind == "stopstart" else f"state_kib_after={kv['state_kib']}")
        print(f"{name} {kind:9} run={kv['run']} systemctl_ms={kv['op_ms']} "
              f"guest_gap_ms={gap} {extra}")
    for name in sorted({r[0] for r in rows}):
        path = os.path.join(out, f"fdstore-{name}.txt")
        if os.path.exists(path):
            with open(path) as f:
                print(f"{name}: restores from the fd store: {f.read().strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory", default="64M,1G")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="copy the raw results (stamped lines) into DIR")
    ap.add_argument("--fill", action="store_true",
                    help="the guest writes all of its RAM first (countguest-fill.elf)")
    args = ap.parse_args()
    reason = why_not_nspawn()
    if reason:
        sys.exit(f"cannot run: {reason}")
    if args.fill and not os.path.exists(FILL_GUEST):
        sys.exit(f"no {FILL_GUEST}: build the tree first")
    work = tempfile.mkdtemp(prefix="cloister-bench-systemd-", dir="/var/tmp")
    try:
        script = os.path.join(work, "inside.sh")
        with open(script, "w") as f:
            f.write(INSIDE.replace("RUNS", str(args.runs)))
        os.chmod(script, 0o755)
        state = os.path.join(work, "state")
        os.makedirs(state)
        configs = {}
        kernel = "/cloister-test/countguest-fill.elf" if args.fill else None
        for m in args.memory.split(","):
            name = f"m{m.lower()}"
            configs[name] = vm_config(name, kernel=kernel, snapshot_on_stop=True,
                                      memory=parse_size(m))
        rc, console, out = run_in_container(
            os.path.join(work, "c"), script, configs, timeout=3600,
            extra_files=[FILL_GUEST] if args.fill else [],
            extra_binds=[f"{state}:/var/lib/cloister"])
        if not os.path.exists(os.path.join(out, "ops.txt")):
            sys.exit(f"no results (nspawn exit {rc}):\n{console[-3000:]}")
        report(out)
        if args.keep:
            shutil.copytree(out, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
