# SPDX-License-Identifier: Apache-2.0
"""--serial pty and socket=PATH, --console pty: the guest's console reached through them."""
import os
import re
import select
import socket
import stat
import time

from conftest import GUEST, hart_counts

COUNT_LINE = re.compile(r"^hart (\d+) count (\d+)\r?$", re.M)


def boot_args(*extra):
    return ["--cpus", "boot=1", "--memory", "size=256M", "--kernel", GUEST, *extra]


def read_until(fd, predicate, what, timeout=30):
    """Reads fd (a pty or a socket) until predicate(text) holds; returns the text."""
    text = ""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        data = os.read(fd, 4096) if isinstance(fd, int) else fd.recv(4096)
        if not data:
            break
        text += data.decode(errors="replace")
        if predicate(text):
            return text
    raise AssertionError(f"timed out waiting for {what}; read:\n{text[-2000:]}")


def first_info(vm):
    """vm.info, once the API socket that has appeared also listens (bind comes before listen)."""
    deadline = time.time() + 5
    while True:
        try:
            return vm.info()
        except ConnectionRefusedError:
            if time.time() > deadline:
                raise
            time.sleep(0.02)


def counts_beyond(n):
    return lambda text: hart_counts(text).get(0, 0) >= n


def test_serial_pty_carries_the_guest_output(vms):
    vm = vms("pty")
    vm.start(*boot_args("--serial", "pty"))
    serial = first_info(vm)["config"]["serial"]
    assert serial["mode"] == "Pty", serial
    path = serial["file"]
    assert path.startswith("/dev/pts/"), serial
    assert f"serial: pty {path}" in vm.log()
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    try:
        # Raw mode: lines end in a bare LF, and they keep coming.
        text = read_until(fd, lambda t: len(COUNT_LINE.findall(t)) >= 5, "count lines on the pty")
        first = hart_counts(text)[0]
        text = read_until(fd, counts_beyond(first + 3), "the count going on")
        assert "\r\n" not in text
    finally:
        os.close(fd)
    # With its reader gone the guest goes on; a new reader picks it up.
    time.sleep(0.5)
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    try:
        read_until(fd, counts_beyond(first + 8), "the count after reopening")
    finally:
        os.close(fd)
    assert vm.info()["state"] == "Running"


def test_serial_pty_without_a_reader_does_not_stall_the_guest(vms, workdir):
    vm = vms("noreader")
    vm.start(*boot_args("--serial", "pty"))
    path = first_info(vm)["config"]["serial"]["file"]
    # Nobody reads for a while: the pty fills up, the vCPU must not block on it.
    time.sleep(3)
    assert vm.info()["state"] == "Running"
    vm.remote("pause")
    vm.remote("resume")
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    try:
        before = hart_counts(read_until(fd, lambda t: len(COUNT_LINE.findall(t)) >= 2, "output"))
        # Stale lines drain first; the count reaches what 3 s of running gives.
        read_until(fd, counts_beyond(max(before[0], 30)), "fresh count lines")
    finally:
        os.close(fd)


def test_serial_socket_serves_one_client_after_another(vms, workdir):
    path = os.path.join(workdir, "serial.sock")
    vm = vms("sock")
    vm.start(*boot_args("--serial", f"socket={path}"))
    serial = first_info(vm)["config"]["serial"]
    assert serial == {"mode": "Socket", "socket": path}, serial
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)

    a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    a.connect(path)
    text = read_until(a, lambda t: len(COUNT_LINE.findall(t)) >= 3, "count lines on the socket")
    first = hart_counts(text)[0]
    a.close()

    time.sleep(0.5)
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    b.connect(path)
    try:
        text = read_until(b, lambda t: len(COUNT_LINE.findall(t)) >= 3, "count lines after reconnecting")
        counts = [int(c) for _, c in COUNT_LINE.findall(text)]
        assert counts[0] > first, (first, counts)
        assert counts == sorted(counts), counts
        # A second client at the same time is hung up on.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        c.settimeout(5)
        assert c.recv(100) == b""
        c.close()
    finally:
        b.close()

    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)
    assert not os.path.exists(path), "the socket is removed at exit"


def test_serial_socket_refuses_a_path_that_is_not_a_socket(vms, workdir):
    path = os.path.join(workdir, "notasocket")
    with open(path, "w") as f:
        f.write("keep me")
    vm = vms("refused")
    vm.start(*boot_args("--serial", f"socket={path}"), wait_socket=False)
    assert vm.proc.wait(timeout=10) != 0
    assert "not a socket" in vm.log()
    with open(path) as f:
        assert f.read() == "keep me"


def test_console_pty_shows_in_vm_info(vms):
    vm = vms("console")
    vm.boot(cpus=1, memory="256M", rng=False, extra=("--console", "pty"))
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 3, what="the guest to count")
    console = first_info(vm)["config"]["console"]
    assert console["mode"] == "Pty", console
    assert console["file"].startswith("/dev/pts/"), console
    assert os.path.exists(console["file"])
    assert f"console: pty {console['file']}" in vm.log()
    assert vm.info()["state"] == "Running"


def test_restore_makes_a_new_pty(vms, workdir):
    vm = vms("orig")
    vm.start(*boot_args("--serial", "pty"))
    old = first_info(vm)["config"]["serial"]["file"]
    fd = os.open(old, os.O_RDONLY | os.O_NOCTTY)
    try:
        read_until(fd, counts_beyond(3), "count lines before the snapshot")
    finally:
        os.close(fd)
    snapdir = os.path.join(workdir, "snap")
    os.makedirs(snapdir)
    vm.remote("pause")
    vm.remote("snapshot", f"file://{snapdir}")
    # The old pty stays open in this cloister while the restored one runs.
    restored = vms("restored")
    restored.start("--restore", f"source_url=file://{snapdir},resume=true")
    new = first_info(restored)["config"]["serial"]
    assert new["mode"] == "Pty" and new["file"].startswith("/dev/pts/"), new
    assert new["file"] != old
    assert f"serial: pty {new['file']}" in restored.log()
    fd = os.open(new["file"], os.O_RDONLY | os.O_NOCTTY)
    try:
        read_until(fd, counts_beyond(5), "the restored guest counting on its new pty")
    finally:
        os.close(fd)
