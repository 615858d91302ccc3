# SPDX-License-Identifier: Apache-2.0
"""The API on the wire, written the way Cloud Hypervisor's ch-remote writes it
(one request per connection, the Content-Length line and the body each in a
write of their own, the status read from after "HTTP/1.1 " up to the CR), and
every response checked against docs/openapi.yaml."""
import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import GUEST, hart_counts

jsonschema = pytest.importorskip("jsonschema", reason="python3-jsonschema is not installed (scripts/setup.sh)")
yaml = pytest.importorskip("yaml", reason="python3-yaml is not installed")

SPEC_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "openapi.yaml")
with open(SPEC_PATH) as f:
    SPEC = yaml.safe_load(f)

CH_PATHS = [p.lstrip("/") for p in SPEC["paths"]]
GET_PATHS = {"vmm.ping", "vm.info", "vm.counters"}


class Reply:
    def __init__(self, raw):
        self.raw = raw
        text = raw.decode("ascii")  # the server writes ASCII only
        head, _, self.body = text.partition("\r\n\r\n")
        o = text.find("HTTP/1.1")
        assert o >= 0, f"no protocol in {text[:60]!r}"
        # ch-remote: everything up to the CR, trimmed, must parse as an integer.
        self.status = int(text[o + len("HTTP/1.1 "):text.index("\r", o)].strip())
        self.headers = {}
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(": ")
            self.headers[k] = v
        if "Content-Length" in self.headers:
            assert len(self.body) == int(self.headers["Content-Length"]), raw
        self.json = json.loads(self.body) if self.body else None


def wire(sock_path, method, path, body=None, timeout=60):
    """One request the way ch-remote sends it."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(f"{method} /api/v1/{path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n".encode())
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        s.sendall(f"Content-Length: {len(data)}\r\n".encode())
    s.sendall(b"\r\n")
    if body is not None:
        s.sendall(data)
    raw = read_all(s)
    s.close()
    return Reply(raw)


def read_all(s):
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def raw_request(sock_path, data):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sock_path)
    s.sendall(data)
    raw = read_all(s)
    s.close()
    return Reply(raw)


def node_ref(ref):
    assert ref.startswith("#/"), ref
    return ref[2:].split("/")


def deref(node):
    while isinstance(node, dict) and "$ref" in node:
        target = SPEC
        for part in node_ref(node["$ref"]):
            target = target[part]
        node = target
    return node


def check_against_spec(method, path, reply):
    """The status is one the document gives for this path, and the body its schema."""
    op = SPEC["paths"]["/" + path][method.lower()]
    resp = op["responses"].get(str(reply.status))
    if resp is None:
        assert reply.status >= 400, f"{method} {path}: {reply.status} is not documented"
        resp = op["responses"]["default"]
    resp = deref(resp)
    content = resp.get("content")
    if content is None:
        assert reply.body == "" and "Content-Length" not in reply.headers, reply.raw
        return
    schema = content["application/json"]["schema"]
    resolver = jsonschema.RefResolver.from_schema(SPEC)
    jsonschema.Draft4Validator(schema, resolver=resolver).validate(reply.json)


def call(vm, method, path, body=None):
    r = wire(vm.sock, method, path, body)
    check_against_spec(method, path, r)
    return r


def test_the_document_covers_every_ch_path():
    assert len(CH_PATHS) == 31
    for must in ("vm.create", "vm.boot", "vm.delete", "vm.reboot", "vm.power-button", "vm.counters",
                 "vm.add-disk", "vm.resize", "vm.send-migration", "vm.nmi", "vm.coredump"):
        assert must in CH_PATHS


def test_every_path_on_the_wire(vms, workdir):
    vm = vms()
    vm.boot(cpus=1, memory="256M", rng=False)
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 1, what="the guest to run")

    assert call(vm, "GET", "vmm.ping").status == 200
    info = call(vm, "GET", "vm.info")
    assert info.status == 200 and info.json["state"] == "Running"
    assert call(vm, "GET", "vm.counters").status in (200, 500)
    # Paths Cloister does not serve: CH's status for a valid request it cannot
    # serve, never the 404 that means "VM not created"; a body is read whole.
    unserved = [p for p in CH_PATHS if "put" in SPEC["paths"]["/" + p] and
                SPEC["paths"]["/" + p]["put"]["responses"].keys() == {"400", "500", "default"}]
    assert len(unserved) == 17, unserved
    for path in unserved:
        body = None if path == "vm.nmi" else {"id": "x" * 100000}
        r = call(vm, "PUT", path, body)
        assert r.status == 500, (path, r.status, r.json)
    # A config that is not valid is 400 whatever the state (as CH checks it first);
    # a valid one while a VM exists is refused as a conflict.
    r = call(vm, "PUT", "vm.create", {"payload": {"kernel": "/nonexistent"}})
    assert r.status == 400, r.json
    r = call(vm, "PUT", "vm.create", {"payload": {"kernel": GUEST}})
    assert r.status == 409, r.json
    r = call(vm, "PUT", "vm.boot")
    assert r.status == 405, r.json
    r = call(vm, "PUT", "vm.pause")
    assert r.status == 204
    snap = os.path.join(workdir, "snap")
    os.mkdir(snap)
    assert call(vm, "PUT", "vm.snapshot", {"destination_url": f"file://{snap}"}).status == 204
    r = call(vm, "PUT", "vm.restore", {"source_url": f"file://{snap}"})
    assert r.status == 404, r.json      # a VM exists
    assert call(vm, "PUT", "vm.resume").status == 204
    assert call(vm, "PUT", "vm.shutdown").status == 204
    r = call(vm, "PUT", "vmm.shutdown")
    assert r.status == 204
    vm.proc.wait(timeout=10)


def test_restore_body_is_checked(vms, workdir):
    vm = vms().start()
    for body, words in [
        ({"source_url": f"file://{workdir}", "memory_restore_mode": "Sometimes"}, "memory_restore_mode"),
        ({"source_url": f"file://{workdir}", "memory_restore_mode": "OnDemand", "prefault": True}, "prefault"),
        ({"source_url": f"file://{workdir}", "zone_updates": [{"id": "z", "host_numa_node": 0}]},
         "no memory zones"),
        ({"source_url": f"file://{workdir}", "surprise": []}, "unknown key"),
    ]:
        r = call(vm, "PUT", "vm.restore", body)
        assert r.status == 400, (body, r.status, r.json)
        assert words in " ".join(r.json), r.json
    # Nothing was created.
    assert call(vm, "GET", "vm.info").status == 404


def test_http_layer_errors_are_json(vms):
    vm = vms().start()
    for data, status in [
        (b"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400),
        (b"GET /api/v1/vmm.ping HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        (b"GET /api/v1/vm\x00.info HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400),
        (b"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", 400),
        (b"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
         b"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ]:
        r = raw_request(vm.sock, data)
        assert r.status == status, (data, r.raw)
        jsonschema.Draft4Validator(SPEC["components"]["schemas"]["ErrorBody"]).validate(r.json)
    assert call(vm, "GET", "vmm.ping").status == 200


def test_slow_clients_do_not_lock_anyone_out(vms):
    """40 clients sending a byte every 2 s hold more connections than there
    are slots; cloister-remote and a raw client still get in, every round."""
    vm = vms().start()
    stop = threading.Event()
    request = b"GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 64 + b"\r\n\r\n"

    def trickle():
        while not stop.is_set():
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(vm.sock)
                for i in range(len(request)):
                    if stop.wait(2):
                        break
                    s.send(request[i:i + 1])
            except OSError:
                pass            # dropped by the server: come back
            finally:
                s.close()

    threads = [threading.Thread(target=trickle) for _ in range(40)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        for _ in range(4):
            assert wire(vm.sock, "GET", "vmm.ping", timeout=20).status == 200
            r = vm.remote("ping")
            assert json.loads(r.stdout)["version"]
            time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_ping_and_info_answer_while_an_operation_hangs(vms):
    """With vmm-core stopped, a pause cannot finish; the API still answers."""
    vm = vms()
    vm.boot(cpus=1, memory="256M", rng=False)
    vm.wait_serial(lambda t: hart_counts(t).get(0, 0) >= 1, what="the guest to run")
    core = vm.child("cloister-vmm")
    os.kill(core, signal.SIGSTOP)
    result = {}
    try:
        t = threading.Thread(target=lambda: result.setdefault("pause", wire(vm.sock, "PUT", "vm.pause")))
        t.start()
        time.sleep(0.5)
        assert wire(vm.sock, "GET", "vmm.ping", timeout=5).status == 200
        info = wire(vm.sock, "GET", "vm.info", timeout=5)
        assert info.status == 200
        check_against_spec("GET", "vm.info", info)
        second = wire(vm.sock, "PUT", "vm.resume", timeout=5)
        assert "pause" not in result, "the pause ended before the checks ran: nothing was shown"
        assert second.status == 409, second.json
    finally:
        os.kill(core, signal.SIGCONT)
    t.join(timeout=60)
    assert "pause" in result
    check_against_spec("PUT", "vm.pause", result["pause"])
