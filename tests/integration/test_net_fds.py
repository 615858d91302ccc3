# SPDX-License-Identifier: Apache-2.0
"""Taps passed as file descriptors with vm.restore (SCM_RIGHTS, CH's net_fds),
and every way a client can get descriptors wrong: each is a 4xx, the gateway
keeps no descriptor it was sent, and it goes on serving."""
import fcntl
import json
import os
import socket
import struct
import time
import uuid

import pytest

from conftest import hart_counts

ROOT = os.geteuid() == 0
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


def make_tap(name, flags=IFF_TAP | IFF_NO_PI | IFF_VNET_HDR):
    """A tap that lasts as long as the descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    return fd


def request(sock_path, method, path, body=None, fds=(), fds_with_body=False):
    """One request, the descriptors on its head (as ch-remote sends them) or on its body."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sock_path)
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} /api/v1/{path} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    if fds and not fds_with_body:
        socket.send_fds(s, [head], list(fds))
    else:
        s.sendall(head)
    if data:
        if fds and fds_with_body:
            socket.send_fds(s, [data], list(fds))
        else:
            s.sendall(data)
    raw = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        raw += b
    s.close()
    text = raw.decode()
    status = int(text.split(" ", 2)[1])
    return status, text.partition("\r\n\r\n")[2]


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled(pid, want):
    """The gateway reads each answered connection to its EOF before closing it: wait for that."""
    deadline = time.time() + 10
    n = fd_count(pid)
    while n != want and time.time() < deadline:
        time.sleep(0.05)
        n = fd_count(pid)
    return n


RESTORE = {"source_url": "file:///nonexistent-snapshot",
           "net_fds": [{"id": "net0", "num_fds": 1, "fds": None}]}


def test_descriptors_a_request_does_not_take_are_refused_and_closed(vms, workdir):
    vm = vms("gw").start()
    pid = vm.proc.pid
    sock_a, sock_b = socket.socketpair()
    pipe_r, pipe_w = os.pipe()
    others = {
        "a regular file": os.open(os.path.join(workdir, "gw.stderr"), os.O_RDONLY),
        "a directory": os.open(workdir, os.O_RDONLY | os.O_DIRECTORY),
        "a socket": sock_a.fileno(),
        "a pipe": pipe_r,
        "a character device other than /dev/net/tun": os.open("/dev/null", os.O_RDONLY),
    }
    time.sleep(0.2)
    before = fd_count(pid)
    for what, fd in others.items():
        status, body = request(vm.sock, "PUT", "vm.restore", RESTORE, [fd])
        assert status == 400 and f"the descriptor is {what}, not a tap" in body, (what, body)
        assert settled(pid, before) == before, what

    null = others["a character device other than /dev/net/tun"]
    cases = [
        # fds on requests that take none, GET or PUT
        (("GET", "vmm.ping", None, [null]), 400, "takes no file descriptors"),
        (("GET", "vm.info", None, [null]), 400, "takes no file descriptors"),
        (("PUT", "vm.pause", None, [null]), 400, "takes no file descriptors"),
        (("PUT", "vm.snapshot", {"destination_url": "file:///x"}, [null]), 400,
         "takes no file descriptors"),
        # counts that do not match the body
        (("PUT", "vm.restore", RESTORE, [null, null]), 400,
         "2 file descriptors came with the request; 'net_fds' asks for 1"),
        (("PUT", "vm.restore", {"source_url": "file:///x"}, [null]), 400,
         "1 file descriptor came with the request; 'net_fds' asks for 0"),
        (("PUT", "vm.restore", RESTORE, []), 400,
         "0 file descriptors came with the request; 'net_fds' asks for 1"),
        # many at once: more than the gateway takes
        (("PUT", "vm.restore", RESTORE, [null] * 40), 400, "more than 8 file descriptors"),
        # multiqueue: one queue pair only
        (("PUT", "vm.restore", {"source_url": "file:///x",
                                "net_fds": [{"id": "net0", "num_fds": 2}]}, [null, null]), 400,
         "one queue pair"),
    ]
    for (method, path, body, fds), want, text in cases:
        status, answer = request(vm.sock, method, path, body, fds)
        assert status == want and text in answer, (path, len(fds), status, answer)
        assert settled(pid, before) == before, (path, len(fds))
    # Spread over the head and the body: together more than the gateway takes.
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm.sock)
    data = json.dumps(RESTORE).encode()
    socket.send_fds(s, [f"PUT /api/v1/vm.restore HTTP/1.1\r\nHost: x\r\nContent-Length: "
                        f"{len(data)}\r\n\r\n".encode()], [null] * 8)
    socket.send_fds(s, [data], [null] * 8)
    answer = s.recv(4096).decode()
    s.close()
    assert " 400 " in answer and "more than 8 file descriptors" in answer, answer
    assert settled(pid, before) == before

    # Through it all the gateway lives, and has no VM.
    assert vm.api("GET", "vmm.ping")[0] == 200
    assert vm.api("GET", "vm.info")[0] == 404
    for fd in list(others.values()):
        if fd != sock_a.fileno():
            os.close(fd)
    sock_a.close()
    sock_b.close()
    os.close(pipe_w)


@pytest.mark.skipif(not ROOT or not os.path.exists("/dev/net/tun"),
                    reason="making a tap needs root and /dev/net/tun")
def test_a_tap_descriptor_is_checked_and_let_go(vms, workdir):
    name = f"clfd{uuid.uuid4().hex[:6]}"
    plain = make_tap(name + "p", IFF_TAP | IFF_NO_PI)
    tap = make_tap(name)
    tun = os.open("/dev/net/tun", os.O_RDWR)     # never attached to any device
    try:
        vm = vms("gw").start()
        pid = vm.proc.pid
        time.sleep(0.2)
        before = fd_count(pid)
        status, body = request(vm.sock, "PUT", "vm.restore", RESTORE, [plain])
        assert status == 400 and "IFF_VNET_HDR" in body, body
        status, body = request(vm.sock, "PUT", "vm.restore", RESTORE, [tun])
        assert status == 400 and "not attached to a tap" in body, body
        # A good tap reaches the restore, which fails on the snapshot: the tap is let go.
        for with_body in (False, True):
            status, body = request(vm.sock, "PUT", "vm.restore", RESTORE, [tap], with_body)
            assert 400 <= status < 600 and "descriptor" not in body, body
            assert settled(pid, before) == before
        assert vm.api("GET", "vmm.ping")[0] == 200

        # A snapshot without that device: the binding is refused by name.
        vm2 = vms("orig")
        vm2.boot(cpus=1, memory="256M")
        vm2.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 2, what="the guest to run")
        snapdir = os.path.join(workdir, "snap")
        os.mkdir(snapdir)
        vm2.remote("pause")
        vm2.remote("snapshot", f"file://{snapdir}")
        vm2.remote("shutdown-vmm")
        vm2.proc.wait(timeout=10)
        status, body = request(vm.sock, "PUT", "vm.restore",
                               dict(RESTORE, source_url=f"file://{snapdir}"), [tap])
        assert status == 400 and "net0" in body and "no such device" in body, body
        assert vm.api("GET", "vm.info")[0] == 404
        assert settled(pid, before) == before
    finally:
        os.close(plain)
        os.close(tap)
        os.close(tun)
