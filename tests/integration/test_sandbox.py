# SPDX-License-Identifier: Apache-2.0
"""Each child of cloister is confined, and a confined child that misbehaves fails the VM cleanly."""
import os
import resource
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import cmdline, hart_counts, proc_status

ROOT = os.geteuid() == 0


def running_vm(vms):
    vm = vms()
    vm.boot(cpus=2, memory="1G")
    vm.wait_serial(lambda t: hart_counts(t).get(1, 0) >= 2, what="the guest to run")
    return vm


def test_children_are_sandboxed(vms):
    vm = running_vm(vms)
    kinds = {}
    for pid in vm.children():
        argv = cmdline(pid)
        kinds[os.path.basename(argv[0])] = pid
        st = proc_status(pid)
        assert st["Seccomp"] == "2", (argv, st["Seccomp"])
        assert st["NoNewPrivs"] == "1", argv
        assert int(st["CapEff"], 16) == 0, (argv, st["CapEff"])
        assert int(st["CapPrm"], 16) == 0, (argv, st["CapPrm"])
        if ROOT:
            uids = st["Uid"].split()
            assert all(u != "0" for u in uids), (argv, st["Uid"])
            gids = st["Gid"].split()
            assert all(g != "0" for g in gids), (argv, st["Gid"])
    assert set(kinds) == {"cloister-vmm", "cloister-rng"}, kinds
    # ps shows what each device process is.
    assert cmdline(kinds["cloister-rng"])[1] == "rng0"


@pytest.mark.skipif(not ROOT, reason="namespaces and an empty root are set up only when started as root")
def test_children_have_an_empty_root_and_no_network(vms):
    vm = running_vm(vms)
    for pid in vm.children():
        assert os.listdir(f"/proc/{pid}/root") == [], cmdline(pid)
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert os.readlink(f"/proc/{pid}/ns/ipc") != os.readlink("/proc/self/ns/ipc")


def api_socket_mode(vm):
    return os.stat(vm.sock).st_mode & 0o777


def test_api_socket_is_private(vms):
    vm = vms().start()
    assert api_socket_mode(vm) == 0o600


def inject_syscall(pid, number):
    """Makes process pid itself call syscall number, through gdb.

    The child's root is an empty directory, so gdb is told where the
    program and its libraries are on the host rather than looking in there.
    """
    exe = os.readlink(f"/proc/{pid}/exe")
    # gdb may itself crash once its inferior dies in the middle of the call:
    # no core file from it, and nothing written where the tests were started.
    return subprocess.run(["gdb", "-batch", "-nx", "-ex", "set sysroot /", "-ex", f"file {exe}",
                           "-ex", f"attach {pid}", "-ex", f"call (long)syscall({number}, 2, 1, 0)"],
                          capture_output=True, text=True, timeout=60, cwd=tempfile.gettempdir(),
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))


SYS_SOCKET = 41   # x86_64: no child may open a socket


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is needed to make a child misbehave")
@pytest.mark.parametrize("program", ["cloister-vmm", "cloister-rng"])
def test_forbidden_syscall_kills_child_and_fails_the_vm(vms, program):
    vm = running_vm(vms)
    victim = vm.child(program)
    others = [p for p in vm.children() if p != victim]
    gdb = inject_syscall(victim, SYS_SOCKET)
    assert "No symbol" not in gdb.stdout + gdb.stderr, gdb.stdout + gdb.stderr
    deadline = time.time() + 10
    info = None
    while time.time() < deadline:
        info = vm.info()
        if info["state"] == "Shutdown":
            break
        time.sleep(0.05)
    assert info["state"] == "Shutdown", info
    assert "SIGSYS" in info.get("error", ""), info
    # The gateway itself is fine and answers; nothing of the VM is left.
    status, _ = vm.api("GET", "vmm.ping")
    assert status == 200
    time.sleep(0.2)
    for p in [victim] + others:
        assert not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split()[2] == "Z", p
    assert vm.children() == []


def test_killed_child_fails_the_vm_without_hanging(vms):
    vm = running_vm(vms)
    os.kill(vm.child("cloister-rng"), 9)
    deadline = time.time() + 5
    while time.time() < deadline and vm.info()["state"] != "Shutdown":
        time.sleep(0.05)
    info = vm.info()
    assert info["state"] == "Shutdown" and "rng0" in info["error"], info
    # Operations on the failed VM are refused, not hung.
    r = vm.remote("pause", check=False)
    assert r.returncode != 0 and r.stderr


def test_snapshotd_is_confined_before_it_reads_anything():
    """snapshotd lives only during an operation: start it as the gateway does and look."""
    import socket
    from conftest import BUILD
    gw, gw_child = socket.socketpair()
    core, core_child = socket.socketpair()

    def onto_fixed_fds():
        os.dup2(gw_child.fileno(), 3)
        os.dup2(core_child.fileno(), 4)

    proc = subprocess.Popen([os.path.join(BUILD, "snapshotd", "cloister-snapshotd"), "save",
                             "--uid", "65534", "--gid", "65534"],
                            preexec_fn=onto_fixed_fds, close_fds=False,
                            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        gw.settimeout(10)
        assert gw.recv(4), "snapshotd sent no hello"   # it greets only once confined
        st = proc_status(proc.pid)
        assert st["Seccomp"] == "2"
        assert st["NoNewPrivs"] == "1"
        assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
        if ROOT:
            assert all(u == "65534" for u in st["Uid"].split()), st["Uid"]
            assert os.listdir(f"/proc/{proc.pid}/root") == []
            assert os.readlink(f"/proc/{proc.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    finally:
        for s in (gw, gw_child, core, core_child):
            s.close()
        proc.wait(timeout=10)
    # With its peers gone it gives up on its own, with an error.
    assert proc.returncode != 0
