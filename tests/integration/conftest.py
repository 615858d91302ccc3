# SPDX-License-Identifier: Apache-2.0
"""Fixtures that run the real process tree: cloister, its children, the test guest."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

BUILD = os.environ.get("CLOISTER_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
CLOISTER = os.path.join(BUILD, "cloister")
REMOTE = os.path.join(BUILD, "cloister-remote")
GUEST = os.path.join(BUILD, "tests", "guest", "countguest.elf")
CHILD_PROGRAMS = ("cloister-vmm", "cloister-rng", "cloister-snapshotd")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def children_of(pid):
    """Every descendant pid of pid, from /proc."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


class Cloister:
    """One cloister process with its API socket and serial log."""

    def __init__(self, workdir, name="vm"):
        self.workdir = workdir
        self.sock = os.path.join(workdir, f"{name}.sock")
        self.serial = os.path.join(workdir, f"{name}.serial")
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")
        self.proc = None

    def start(self, *args, wait_socket=True, new_session=False, env=None, prefix=()):
        """prefix: a command that execs its arguments, to run cloister under."""
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([*prefix, CLOISTER, "--api-socket", self.sock, *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr, start_new_session=new_session,
                                     env=env)
        if wait_socket:
            deadline = time.time() + 10
            while not os.path.exists(self.sock):
                if self.proc.poll() is not None:
                    raise AssertionError(f"cloister exited with {self.proc.returncode}: {self.log()}")
                if time.time() > deadline:
                    raise AssertionError("the API socket never appeared")
                time.sleep(0.02)
        return self

    def boot(self, cpus=2, memory="4G", rng=True, extra=(), new_session=False):
        args = ["--cpus", f"boot={cpus}", "--memory", f"size={memory}", "--kernel", GUEST,
                "--serial", f"file={self.serial}"]
        if rng:
            args.append("--rng")
        return self.start(*args, *extra, new_session=new_session)

    def log(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def api(self, method, path, body=None, raw=None, timeout=120):
        conn = UnixHTTPConnection(self.sock, timeout=timeout)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, "/api/v1/" + path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        conn.close()
        parsed = None
        if text:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
        return resp.status, parsed

    def remote(self, *args, check=True):
        r = subprocess.run([REMOTE, "--api-socket", self.sock, *args], capture_output=True,
                           text=True, timeout=300)
        if check and r.returncode != 0:
            raise AssertionError(f"cloister-remote {' '.join(args)} failed: {r.stderr}\n{self.log()}")
        return r

    def info(self):
        status, body = self.api("GET", "vm.info")
        assert status == 200, (status, body)
        return body

    def serial_text(self):
        try:
            with open(self.serial, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_serial(self, predicate, timeout=30, what="serial output"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.serial_text()
            if predicate(text):
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; serial:\n{self.serial_text()[-2000:]}\n"
                             f"log:\n{self.log()}")

    def children(self):
        return [p for p in children_of(self.proc.pid)
                if cmdline(p) and os.path.basename(cmdline(p)[0]) in CHILD_PROGRAMS]

    def child(self, program):
        for p in self.children():
            if os.path.basename(cmdline(p)[0]) == program:
                return p
        raise AssertionError(f"no {program} child; children: {[cmdline(p) for p in self.children()]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            pids = children_of(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if getattr(self, "stderr", None):
            self.stderr.close()


def hart_counts(text):
    """Highest count printed by each hart."""
    counts = {}
    for h, c in re.findall(r"^hart (\d+) count (\d+)$", text, re.M):
        counts[int(h)] = max(counts.get(int(h), 0), int(c))
    return counts


def first_counts_after(text, offset):
    """First count each hart printed after byte offset."""
    first = {}
    for h, c in re.findall(r"^hart (\d+) count (\d+)$", text[offset:], re.M):
        first.setdefault(int(h), int(c))
    return first


def write_vm_json(path, doc):
    """Writes an edited vm.json with the digest of itself it must carry (integrity.document),
    so that a test's edit reaches the check it aims at rather than the digest."""
    import hashlib
    zeros = "0" * 64
    doc["integrity"]["document"] = zeros
    text = json.dumps(doc)
    digest = hashlib.sha256(text.encode()).hexdigest()
    at = text.index('"document"')
    at = text.index(zeros, at)
    with open(path, "w") as f:
        f.write(text[:at] + digest + text[at + 64:])


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="cloister-test-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def vms(workdir):
    """Makes Cloister instances and stops every one of them at the end."""
    made = []

    def make(name="vm"):
        vm = Cloister(workdir, name)
        made.append(vm)
        return vm

    yield make
    for vm in made:
        vm.stop()


def pytest_configure(config):
    if not os.path.exists(GUEST):
        pytest.exit(f"the test guest {GUEST} is not built: run scripts/build.sh first", returncode=1)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    stats = reporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    skipped = len(stats.get("skipped", []))
    with open(os.path.join(os.path.dirname(__file__), ".results.txt"), "w") as f:
        f.write(f"{passed} {failed} {skipped}\n")
