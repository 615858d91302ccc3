# SPDX-License-Identifier: Apache-2.0
"""A VM's whole life over Cloud Hypervisor's API, from an empty VMM: create,
boot, info, counters, pause, snapshot, shutdown, delete, restore, resume,
reboot, shutdown, delete. Once with cloister-remote, once with raw requests
written the way CH's ch-remote writes them; the event monitor follows."""
import json
import os

from conftest import GUEST, hart_counts
from test_http_wire import SPEC, jsonschema, wire  # noqa: F401

FLOW_EVENTS = ["starting", "created", "booting", "booted", "pausing", "paused", "snapshotting",
               "snapshotted", "shutdown", "deleted", "restoring", "restored", "resuming",
               "resumed", "rebooting", "rebooted", "shutdown", "deleted"]


def vm_config(workdir, serial):
    return {
        "cpus": {"boot_vcpus": 2, "max_vcpus": 2},
        "memory": {"size": 256 << 20},
        "payload": {"kernel": GUEST},
        "rng": {"src": "/dev/urandom"},
        "serial": {"mode": "File", "file": serial},
    }


def events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check_events(path):
    evs = events(path)
    names = [e["event"] for e in evs]
    assert names == FLOW_EVENTS, names
    assert all(e["source"] in ("vm", "vmm") for e in evs)
    stamps = [e["timestamp"]["secs"] * 10**9 + e["timestamp"]["nanos"] for e in evs]
    assert stamps == sorted(stamps), stamps


def counters_ok(counters):
    assert isinstance(counters, dict) and "rng0" in counters, counters
    assert all(isinstance(v, int) and v >= 0 for v in counters["rng0"].values()), counters


class RemoteClient:
    def __init__(self, vm):
        self.vm = vm

    def __call__(self, verb, *args, expect_out=False):
        r = self.vm.remote(verb, *args)
        return json.loads(r.stdout) if expect_out else None


class WireClient:
    """Each verb as ch-remote sends it: status parsed up to the CR, must be 2xx."""
    PATHS = {"create": ("PUT", "vm.create"), "boot": ("PUT", "vm.boot"), "info": ("GET", "vm.info"),
             "counters": ("GET", "vm.counters"), "pause": ("PUT", "vm.pause"),
             "resume": ("PUT", "vm.resume"), "snapshot": ("PUT", "vm.snapshot"),
             "restore": ("PUT", "vm.restore"), "shutdown": ("PUT", "vm.shutdown"),
             "delete": ("PUT", "vm.delete"), "reboot": ("PUT", "vm.reboot")}

    def __init__(self, vm):
        self.vm = vm

    def __call__(self, verb, *args, expect_out=False):
        method, path = self.PATHS[verb]
        body = None
        if verb == "create":
            with open(args[0]) as f:
                body = json.load(f)
        elif verb == "snapshot":
            body = {"destination_url": args[0]}
        elif verb == "restore":
            body = {"source_url": args[0].split("=", 1)[1]}
        r = wire(self.vm.sock, method, path, body)
        assert 200 <= r.status < 300, (verb, r.status, r.json)
        return r.json if expect_out else None


def run_flow(vm, client, workdir):
    serial = os.path.join(workdir, "flow.serial")
    cfg_path = os.path.join(workdir, "vm.json")
    with open(cfg_path, "w") as f:
        json.dump(vm_config(workdir, serial), f)
    snap = os.path.join(workdir, "snap")
    os.mkdir(snap)
    vm.serial = serial

    client("create", cfg_path)
    info = client("info", expect_out=True)
    assert info["state"] == "Created" and info["config"]["cpus"]["boot_vcpus"] == 2
    client("boot")
    vm.wait_serial(lambda t: hart_counts(t).get(1, 0) >= 3, what="both harts counting")
    info = client("info", expect_out=True)
    assert info["state"] == "Running"
    assert info["config"]["payload"]["kernel"] == GUEST
    assert info["config"]["serial"] == {"mode": "File", "file": serial}
    counters_ok(client("counters", expect_out=True))
    # No button this machine's guest could act on: a clear 400, and the VM runs on.
    r = wire(vm.sock, "PUT", "vm.power-button")
    assert r.status == 400 and "power button" in " ".join(r.json), (r.status, r.json)
    assert client("info", expect_out=True)["state"] == "Running"
    client("pause")
    paused_counts = hart_counts(vm.serial_text())
    client("snapshot", "file://" + snap)
    client("shutdown")
    assert client("info", expect_out=True)["state"] == "Created"
    client("delete")
    assert wire(vm.sock, "GET", "vm.info").status == 404
    offset = len(vm.serial_text())
    client("restore", "source_url=file://" + snap)
    assert client("info", expect_out=True)["state"] == "Paused"
    client("resume")
    vm.wait_serial(lambda t: all(hart_counts(t[offset:]).get(h, 0) > c
                                 for h, c in paused_counts.items()), what="counting on after restore")
    client("reboot")
    assert client("info", expect_out=True)["state"] == "Running"
    client("shutdown")
    assert client("info", expect_out=True)["state"] == "Created"
    client("delete")


def test_flow_with_cloister_remote(vms, workdir):
    ev = os.path.join(workdir, "events.log")
    vm = vms("remote").start("--event-monitor", f"path={ev}")
    run_flow(vm, RemoteClient(vm), workdir)
    check_events(ev)


def test_flow_as_ch_remote_writes_it(vms, workdir):
    ev = os.path.join(workdir, "events.log")
    vm = vms("wire").start("--event-monitor", f"path={ev}")
    run_flow(vm, WireClient(vm), workdir)
    check_events(ev)
