# SPDX-License-Identifier: Apache-2.0
"""Seeded random sequences of API requests against the real gateway, with and
without a VM: after every step the gateway is alive, answers at once, and
vm.info reports the state the lifecycle table allows."""
import json
import os
import random
import time

import pytest

from conftest import GUEST

# The gateway's lifecycle table, written out independently of lifecycle.c:
# op -> (states it is allowed in, state after it).
ANY = {"NotCreated", "Created", "Running", "Paused", "Shutdown"}
TABLE = {
    "create": ({"NotCreated"}, "Created"),
    "boot": ({"Created", "Shutdown"}, "Running"),
    "pause": ({"Running"}, "Paused"),
    "resume": ({"Paused"}, "Running"),
    "snapshot": ({"Paused"}, None),
    "restore": ({"NotCreated", "Created", "Shutdown"}, "Paused"),
    "shutdown": ({"Created", "Running", "Paused"}, "Created"),
    "delete": (ANY, "NotCreated"),
    "reboot": ({"Running", "Paused"}, "Running"),
}
PATHS = {
    "create": "vm.create", "boot": "vm.boot", "pause": "vm.pause", "resume": "vm.resume",
    "snapshot": "vm.snapshot", "restore": "vm.restore", "shutdown": "vm.shutdown",
    "delete": "vm.delete", "reboot": "vm.reboot",
}
NOISE = [
    ("GET", "vmm.ping", None),
    ("GET", "vm.info", None),
    ("GET", "vm.no-such-thing", None),
    ("PUT", "vm.snapshot", "{\"destination_url\": 7}"),
    ("PUT", "vm.restore", "[1, 2"),
    ("PUT", "vm.create", "{\"payload\": {\"kernel\": \"/dev/zero\"}}"),
    ("PUT", "vm.create", "{\"cpus\": {\"boot_vcpus\": 1000000}, \"payload\": {}}"),
    ("DELETE", "vm.info", None),
]


def vm_config(workdir):
    return {
        "cpus": {"boot_vcpus": 2, "max_vcpus": 2},
        "memory": {"size": 256 << 20},
        "payload": {"kernel": GUEST},
        "rng": {"src": "/dev/urandom"},
        "serial": {"mode": "File", "file": os.path.join(workdir, "seq.serial")},
    }


def state_of(vm):
    status, body = vm.api("GET", "vm.info", timeout=5)
    if status == 404:
        return "NotCreated"
    assert status == 200, (status, body)
    return body["state"]


def request_for(op, workdir, snap_dir, have_snapshot):
    if op == "create":
        return json.dumps(vm_config(workdir))
    if op == "snapshot":
        return json.dumps({"destination_url": "file://" + snap_dir})
    if op == "restore":
        return json.dumps({"source_url": "file://" + snap_dir})
    return None


def step(vm, rng, model, workdir, snap_dir, have_snapshot):
    """One random request; returns the new model state and whether a snapshot exists."""
    if rng.random() < 0.25:
        method, path, raw = rng.choice(NOISE)
        status, body = vm.api(method, path, raw=raw, timeout=30)
        assert status < 500, (method, path, status, body)
        return model, have_snapshot
    op = rng.choice(sorted(TABLE))
    allowed, after = TABLE[op]
    if op == "restore" and not have_snapshot:
        allowed = set()
    status, body = vm.api("PUT", PATHS[op], raw=request_for(op, workdir, snap_dir, have_snapshot),
                          timeout=60)
    if model in allowed:
        assert 200 <= status < 300, (op, model, status, body, vm.log())
        if op == "snapshot":
            have_snapshot = True
        return (after or model), have_snapshot
    assert 400 <= status < 500, (op, model, status, body)
    return model, have_snapshot


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequence(vms, workdir, seed):
    rng = random.Random(seed)
    snap_dir = os.path.join(workdir, "snap")
    os.mkdir(snap_dir)
    vm = vms(f"seq{seed}").start()
    model, have_snapshot = "NotCreated", False
    for i in range(40):
        model, have_snapshot = step(vm, rng, model, workdir, snap_dir, have_snapshot)
        assert vm.proc.poll() is None, f"step {i}: cloister died: {vm.log()}"
        t0 = time.monotonic()
        status, _ = vm.api("GET", "vmm.ping", timeout=5)
        assert status == 200
        assert time.monotonic() - t0 < 5
        assert state_of(vm) == model, f"step {i}: {vm.log()}"
    status, _ = vm.api("PUT", "vmm.shutdown")
    assert status == 204
    assert vm.proc.wait(timeout=10) == 0
