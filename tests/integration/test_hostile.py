# SPDX-License-Identifier: Apache-2.0
"""Bad requests, bad snapshots, wrong states: each gets a clear error and breaks nothing."""
import json
import os
import shutil
import socket

import pytest

from conftest import hart_counts, write_vm_json


@pytest.fixture
def snapshot(vms, workdir):
    """A good snapshot of a 2-hart 4 GiB guest, and the VM stopped."""
    vm = vms("orig")
    vm.boot(cpus=2, memory="4G")
    vm.wait_serial(lambda t: hart_counts(t).get(1, 0) >= 2, what="the guest to run")
    vm.remote("pause")
    snapdir = os.path.join(workdir, "snap")
    os.mkdir(snapdir)
    vm.remote("snapshot", f"file://{snapdir}")
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)
    return snapdir


def tampered(snapshot, workdir, name):
    d = os.path.join(workdir, name)
    shutil.copytree(snapshot, d)
    return d


def assert_restore_refused(vms, snapdir, words):
    vm = vms("restore")
    vm.start()
    status, body = vm.api("PUT", "vm.restore", {"source_url": f"file://{snapdir}"})
    assert 400 <= status < 600 and status != 204, status
    text = json.dumps(body).lower()
    assert any(w in text for w in words), body
    # Nothing was created, and the VMM still works.
    assert vm.api("GET", "vm.info")[0] == 404
    assert vm.children() == []
    assert vm.api("GET", "vmm.ping")[0] == 200
    return body


def edit_vm_json(d, change):
    path = os.path.join(d, "vm.json")
    with open(path) as f:
        doc = json.load(f)
    change(doc)
    write_vm_json(path, doc)


def test_snapshot_directory_must_exist(vms, workdir):
    vm = vms()
    vm.boot(cpus=1, memory="256M", rng=False)
    vm.remote("pause")
    r = vm.remote("snapshot", f"file://{workdir}/nowhere", check=False)
    assert r.returncode != 0
    assert "does not exist" in r.stderr
    assert vm.info()["state"] == "Paused"


def test_snapshot_only_while_paused(vms, workdir):
    vm = vms()
    vm.boot(cpus=1, memory="256M", rng=False)
    status, body = vm.api("PUT", "vm.snapshot", {"destination_url": f"file://{workdir}"})
    assert status == 405, (status, body)
    assert not [n for n in os.listdir(workdir) if n.startswith(("memory-region", "vm.json"))]
    status, _ = vm.api("PUT", "vm.resume")
    assert status == 405
    status, _ = vm.api("PUT", "vm.restore", {"source_url": f"file://{workdir}"})
    assert status in (404, 405, 409)
    assert vm.info()["state"] == "Running"


def test_malformed_http_and_json(vms):
    vm = vms().start()
    for raw in ["{", "[]", "{\"destination_url\": 5}", "null", "\x00\xff"]:
        status, body = vm.api("PUT", "vm.snapshot", raw=raw)
        assert status == 400, (raw, status, body)
    status, _ = vm.api("GET", "vm.nonsense")
    assert status == 404
    status, _ = vm.api("DELETE", "vm.info")
    assert status == 405
    # A body announced far past what the server would even read and drop is
    # refused from its header alone.
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm.sock)
    s.sendall(b"PUT /api/v1/vm.snapshot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 67108864\r\n\r\n" + b"x" * 4096)
    s.settimeout(5)
    status_line = s.recv(4096).split(b"\r\n")[0]
    assert status_line.split()[1] == b"413", status_line
    s.close()
    # Garbage that is not HTTP at all.
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm.sock)
    s.sendall(b"\x16\x03\x01 this is not http\r\n\r\n" * 50)
    s.settimeout(5)
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()
    assert vm.api("GET", "vmm.ping")[0] == 200


def test_tampered_vm_json_is_refused(vms, snapshot, workdir):
    d = tampered(snapshot, workdir, "badversion")
    edit_vm_json(d, lambda doc: doc.update(version=99))
    assert_restore_refused(vms, d, ["version"])

    d = tampered(snapshot, workdir, "escape")
    edit_vm_json(d, lambda doc: doc["memory_regions"][0].update(file="../../etc/passwd"))
    assert_restore_refused(vms, d, ["memory-region", "file"])

    d = tampered(snapshot, workdir, "vcpus")
    edit_vm_json(d, lambda doc: doc["config"].update(boot_vcpus=3))
    assert_restore_refused(vms, d, ["vcpu"])

    d = tampered(snapshot, workdir, "garbage")
    with open(os.path.join(d, "vm.json"), "w") as f:
        f.write("{\"version\": 1, \"config\": ")
    assert_restore_refused(vms, d, ["json", "parse"])


def test_truncated_or_oversized_region_is_refused(vms, snapshot, workdir):
    d = tampered(snapshot, workdir, "short")
    os.truncate(os.path.join(d, "memory-region-1"), 4096)
    assert_restore_refused(vms, d, ["memory-region-1"])

    d = tampered(snapshot, workdir, "long")
    os.truncate(os.path.join(d, "memory-region-0"), (3 << 30) + 4096)
    assert_restore_refused(vms, d, ["memory-region-0"])

    d = tampered(snapshot, workdir, "missing")
    os.unlink(os.path.join(d, "memory-region-1"))
    assert_restore_refused(vms, d, ["memory-region-1", "region"])


def test_unfinished_snapshot_is_not_a_snapshot(vms, snapshot, workdir):
    d = tampered(snapshot, workdir, "unfinished")
    os.unlink(os.path.join(d, "vm.json"))
    assert_restore_refused(vms, d, ["vm.json"])


def test_symlinked_region_is_refused(vms, snapshot, workdir):
    d = tampered(snapshot, workdir, "link")
    target = os.path.join(d, "memory-region-1")
    os.rename(target, target + ".real")
    os.symlink(target + ".real", target)
    assert_restore_refused(vms, d, ["memory-region-1"])


def test_restore_refuses_a_disk_whose_size_changed(vms, workdir):
    disk = os.path.join(workdir, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    vm = vms("orig")
    vm.boot(cpus=1, memory="256M", extra=("--disk", f"path={disk}"))
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 2, what="the guest to run")
    assert vm.info()["config"]["disks"][0]["path"] == disk
    vm.remote("pause")
    snapdir = os.path.join(workdir, "snap")
    os.mkdir(snapdir)
    vm.remote("snapshot", f"file://{snapdir}")
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)
    os.truncate(disk, 16 << 20)
    assert_restore_refused(vms, snapdir, ["disk0", "bytes"])
    # Put back as it was, the same snapshot restores.
    os.truncate(disk, 8 << 20)
    vm2 = vms("again")
    vm2.start("--restore", f"source_url=file://{snapdir}")
    assert vm2.info()["state"] == "Paused"


def test_hostile_chunk_tables_and_integrity_are_refused(vms, workdir):
    """A zstd snapshot whose vm.json (digest made right) points chunks outside
    the file, over each other, or at lengths no chunk can have; and one whose
    vm.json digest does not match."""
    vm = vms("orig")
    vm.boot(cpus=2, memory="256M", rng=False)
    vm.wait_serial(lambda t: hart_counts(t).get(1, 0) >= 2, what="the guest to run")
    vm.remote("pause")
    snap = os.path.join(workdir, "zsnap")
    os.mkdir(snap)
    vm.remote("snapshot", f"file://{snap}", "compression=zstd")
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)
    doc = json.load(open(os.path.join(snap, "vm.json")))
    stored = [k for k, c in enumerate(doc["memory_regions"][0]["chunks"]) if c != "zero"]
    assert len(stored) >= 2, doc["memory_regions"][0]["chunks"]
    a, b = stored[0], stored[1]

    def entry(k, off=None, length=None):
        def change(doc):
            e = doc["memory_regions"][0]["chunks"][k]
            if off is not None:
                e[0] = off
            if length is not None:
                e[1] = length
        return change

    for name, change, words in (
            ("beyond", entry(a, off=1 << 40), [f"chunk {a} (offset", "beyond the end"]),
            ("overlap", entry(b, off=0), [f"chunk {b} (offset", "overlaps"]),
            ("huge", entry(a, length=1 << 31), [f"chunk {a} (offset", "length"]),
            ("zero-length", entry(a, length=0), [f"chunk {a} (offset", "length"])):
        d = tampered(snap, workdir, name)
        edit_vm_json(d, change)
        r = vms(f"restore-{name}")
        r.start()
        status, body = r.api("PUT", "vm.restore", {"source_url": f"file://{d}"})
        assert status == 400 and all(w in json.dumps(body) for w in words), (status, body)
        assert r.api("GET", "vm.info")[0] == 404

    # A digest this build does not compute (as an earlier build wrote): refused for that.
    d = tampered(snap, workdir, "blake2b")
    edit_vm_json(d, lambda doc: doc["integrity"].update(digest="blake2b-256"))
    assert_restore_refused(vms, d, ['reads digest \\"sha256\\"'])

    # vm.json edited without its digest: refused for that.
    d = tampered(snap, workdir, "undigested")
    path = os.path.join(d, "vm.json")
    text = open(path).read()
    with open(path, "w") as f:
        f.write(text.replace('"compression":"zstd"', '"compression":"none"', 1)
                .replace('"compression": "zstd"', '"compression": "none"', 1))
    assert_restore_refused(vms, d, ["does not match its digest"])
