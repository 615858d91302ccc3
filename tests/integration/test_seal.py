# SPDX-License-Identifier: Apache-2.0
"""Snapshots that can be trusted: every 1 MiB chunk of memory has its digest in
vm.json and is checked before the guest sees it; optional zstd per chunk;
optional XChaCha20-Poly1305 sealing of vm.json and every chunk under a key
that never appears in vm.json, logs or argv.

Slow (real Linux guests); the guest comes from guest/linux/fetch.sh.
"""
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import BUILD, children_of
from test_clones import TOOL, linux  # noqa: F401 - a fixture
from test_linux import BOOT_TIMEOUT, INITRAMFS, KERNEL, LINUX, REMOTE

pytestmark = pytest.mark.skipif(not os.path.exists(KERNEL) or not os.path.exists(INITRAMFS),
                                reason=f"no Linux guest in {LINUX}: run guest/linux/fetch.sh")

CHUNK = 1 << 20


def remote(vm, *args):
    return subprocess.run([REMOTE, "--api-socket", vm.sock, *args], capture_output=True,
                          text=True, timeout=300)


def tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=120)


def boot_with_blob(linux):
    """A Linux guest holding 8 MiB of random data in a tmpfs file, and its sha256."""
    vm = linux("base").start("--cpus", "boot=2", "--memory", "size=512M", "--kernel", KERNEL,
                             "--initramfs", INITRAMFS, "--cmdline", "console=ttyS0",
                             "--serial", "tty")
    vm.wait(r"cloister-guest: init reached", timeout=BOOT_TIMEOUT)
    vm.wait(r"~ # ")
    digest = vm.ask("head -c 8388608 /dev/urandom > /blob && sha256sum /blob",
                    r"^([0-9a-f]{64})  /blob$", timeout=120).group(1)
    return vm, digest


def snapshot(vm, workdir, name, *args):
    snapdir = os.path.join(workdir, name)
    os.mkdir(snapdir)
    vm.remote("snapshot", f"file://{snapdir}", *args)
    return snapdir


def empty_vmm(linux, name):
    vm = linux(name).start()
    vm.wait_socket()
    return vm


def assert_no_vm(vm):
    r = remote(vm, "info")
    assert r.returncode != 0 and "404" in r.stderr + r.stdout, r.stdout + r.stderr
    assert not [p for p in children_of(vm.proc.pid)], "a process of a refused restore is left"


def wait_failed(vm, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = json.loads(remote(vm, "info").stdout or "{}")
        if info.get("state") in ("Failed", "Shutdown"):
            return info
        time.sleep(0.2)
    raise AssertionError(f"the VM did not fail: {info}")


def a_data_chunk(snapdir):
    doc = json.load(open(os.path.join(snapdir, "vm.json")))
    chunks = doc["memory_regions"][0]["chunks"]
    # One from the middle of the data, so that it is no chunk of the kernel's own text.
    data = [k for k, c in enumerate(chunks) if c != "zero"]
    return data[len(data) // 2]


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def test_one_flipped_byte_is_refused_or_fails_the_vm_naming_the_chunk(linux, workdir):
    vm, _ = boot_with_blob(linux)
    vm.remote("pause")
    snapdir = snapshot(vm, workdir, "snap")
    vm.remote("shutdown-vmm")
    assert vm.proc.wait(timeout=20) == 0
    doc = json.load(open(os.path.join(snapdir, "vm.json")))
    assert doc["integrity"]["digest"] == "sha256", doc["integrity"]
    assert tool("verify", snapdir).returncode == 0

    k = a_data_chunk(snapdir)
    # The recorded digest is the SHA-256 of the chunk's bytes, worked out here apart from snapshotd.
    with open(os.path.join(snapdir, "memory-region-0"), "rb") as f:
        f.seek(k * CHUNK)
        data = f.read(CHUNK)
    assert len(data) == CHUNK
    assert doc["memory_regions"][0]["chunks"][k] == hashlib.sha256(data).hexdigest()
    flip(os.path.join(snapdir, "memory-region-0"), k * CHUNK + 12345)
    want = f"memory-region-0 chunk {k} (memory offset {k * CHUNK:#x})"
    out = tool("verify", snapdir)
    assert out.returncode == 1 and want in out.stdout, out.stdout

    # Copy: refused before any VM exists.
    copy = empty_vmm(linux, "copy")
    r = remote(copy, "restore", f"source_url=file://{snapdir},resume=true,"
               "memory_restore_mode=Copy")
    assert r.returncode != 0 and want in r.stderr and "400" in r.stderr, r.stderr
    assert_no_vm(copy)

    # OnDemand: the VM is created at once, and fails when its pager meets the chunk,
    # which it has read whole and checked before serving any page of it.
    lazy = empty_vmm(linux, "lazy")
    r = remote(lazy, "restore", f"source_url=file://{snapdir},resume=true,"
               "memory_restore_mode=OnDemand")
    assert r.returncode == 0, r.stderr
    info = wait_failed(lazy)
    assert want in json.dumps(info), info
    time.sleep(0.5)
    assert not children_of(lazy.proc.pid), "a process of the failed VM is left"
    # The guest never ran on with the flipped page: nothing more reached its console.
    assert "Oops" not in lazy.text() and "Unable to handle" not in lazy.text()


def test_zstd_and_encrypted_snapshots_restore_and_keep_the_key_secret(linux, workdir,
                                                                     monkeypatch):
    key = os.urandom(32)
    key_file = os.path.join(workdir, "snap.key")
    with open(key_file, "w") as f:
        f.write(key.hex() + "\n")
    os.chmod(key_file, 0o600)
    wrong_file = os.path.join(workdir, "wrong.key")
    with open(wrong_file, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(wrong_file, 0o600)

    vm, digest = boot_with_blob(linux)
    vm.remote("pause")
    plain = snapshot(vm, workdir, "plain")
    packed = snapshot(vm, workdir, "zstd", "compression=zstd")
    sealed = snapshot(vm, workdir, "sealed", "compression=zstd",
                      f"encryption_key_file={key_file}")
    vm.remote("shutdown-vmm")
    assert vm.proc.wait(timeout=20) == 0

    # zstd: smaller on disk, and the guest's file is whole after a restore.
    used = {d: sum(os.stat(os.path.join(d, n)).st_blocks * 512 for n in os.listdir(d)
                   if n.startswith("memory-region-")) for d in (plain, packed)}
    assert used[packed] < used[plain], used
    out = tool("inspect", packed)
    assert out.returncode == 0 and "compression: zstd" in out.stdout, out.stdout
    z = linux("z").start("--restore", f"source_url=file://{packed},resume=true")
    z.wait_socket()
    assert z.ask("sha256sum /blob", r"^([0-9a-f]{64})  /blob$").group(1) == digest
    z.remote("shutdown-vmm")
    assert z.proc.wait(timeout=20) == 0

    # Encrypted: vm.json says so and no more; the key is nowhere in it.
    text = open(os.path.join(sealed, "vm.json")).read()
    assert '"encrypted"' in text and '"config"' not in text and key.hex() not in text
    out = tool("inspect", sealed)
    assert out.returncode == 0 and "key required" in out.stdout, out.stdout
    out = tool("--key-file", key_file, "verify", sealed)
    assert out.returncode == 0, out.stdout + out.stderr

    # Without the key, or with another: a clear 400 and no VM.
    for extra, want in (((), "needs its key"),
                        ((f"encryption_key_file={wrong_file}",), "does not open with this key")):
        v = empty_vmm(linux, "nokey" if not extra else "wrong")
        r = remote(v, "restore", f"source_url=file://{sealed},resume=true", *extra)
        assert r.returncode != 0 and want in r.stderr and "400" in r.stderr, r.stderr
        assert_no_vm(v)

    # With it, Copy and OnDemand: the guest goes on with its file intact.
    for mode in ("Copy", "OnDemand"):
        v = empty_vmm(linux, f"key-{mode}")
        r = remote(v, "restore", f"source_url=file://{sealed},resume=true,"
                   f"memory_restore_mode={mode}", f"encryption_key_file={key_file}")
        assert r.returncode == 0, r.stderr
        assert v.ask("sha256sum /blob", r"^([0-9a-f]{64})  /blob$").group(1) == digest
        # The key is in no process's argv or environment, and in no log.
        for p in [v.proc.pid, *children_of(v.proc.pid)]:
            for f in ("cmdline", "environ"):
                data = open(f"/proc/{p}/{f}", "rb").read()
                assert key not in data and key.hex().encode() not in data, (p, f)
        v.remote("shutdown-vmm")
        assert v.proc.wait(timeout=20) == 0
        log = open(v.log_path, "rb").read()
        assert key not in log and key.hex().encode() not in log
    # --restore with the key as a systemd credential (LoadCredential=snapkey:...).
    creds = os.path.join(workdir, "creds")
    os.mkdir(creds, 0o700)
    shutil.copy(key_file, os.path.join(creds, "snapkey"))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", creds)
    v = linux("cred").start("--restore", f"source_url=file://{sealed},resume=true",
                            "--restore-key-credential", "snapkey")
    v.wait_socket()
    assert v.ask("sha256sum /blob", r"^([0-9a-f]{64})  /blob$").group(1) == digest
    v.remote("shutdown-vmm")
    assert v.proc.wait(timeout=20) == 0
    for name in os.listdir(workdir):
        if name.endswith((".log", ".out")):
            data = open(os.path.join(workdir, name), "rb").read()
            assert key.hex().encode() not in data and key not in data, name
