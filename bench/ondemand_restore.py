#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Restore Copy against OnDemand, with a Linux guest holding N GiB of data.

For each guest size: boot Linux (guest/linux/fetch.sh's kernel and
initramfs), fill --data-mib MiB of its memory with non-zero bytes
(1 MiB from /dev/urandom repeated with cat, into the initramfs's tmpfs), pause, snapshot, stop; then,
page cache warm, restore it with memory_restore_mode=Copy and =OnDemand and
time: the gateway's own "restored ... in X ms" (restore to Paused), the
process start to Paused as seen over the API, resume to the answer of a
shell command, and (OnDemand) resume to the page server's "done". Beside
them, dd of as much data on the same file system: written with
conv=fdatasync, then read back warm, in the same run.

Run by hand, as root, from a built tree:
    nice -n 10 bench/ondemand_restore.py [--build build] [--sizes 4G,16G] [--data-mib 1024]
It is not part of the test suite: timings depend on the machine.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.environ.get("CLOISTER_LINUX_DIR", os.path.expanduser("~/.cache/cloister/linux"))


class Api(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(sock, method, path, body=None):
    c = Api(sock)
    c.request(method, "/api/v1/" + path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"} if body is not None else {})
    r = c.getresponse()
    text = r.read().decode()
    return r.status, (json.loads(text) if text.startswith("{") else text)


class VM:
    def __init__(self, build, work, name):
        self.bin = os.path.join(build, "cloister")
        self.sock = os.path.join(work, name + ".sock")
        self.out_path = os.path.join(work, name + ".out")
        self.log_path = os.path.join(work, name + ".log")

    def start(self, *args):
        self.out = open(self.out_path, "wb")
        self.log = open(self.log_path, "wb")
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen([self.bin, "--api-socket", self.sock, *args],
                                     stdin=subprocess.PIPE, stdout=self.out, stderr=self.log)

    def text(self):
        return open(self.out_path, "rb").read().decode(errors="replace").replace("\r", "")

    def logtext(self):
        return open(self.log_path, errors="replace").read()

    def wait(self, pattern, start=0, timeout=600, poll=0.002):
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            m = re.search(pattern, self.text()[start:], re.M)
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(poll)
        raise SystemExit(f"no /{pattern}/: {self.text()[-2000:]}\n{self.logtext()[-2000:]}")

    def ask(self, cmd, pattern, timeout=600):
        start = len(self.text())
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()
        return self.wait(pattern, start, timeout)

    def wait_paused(self):
        while True:
            try:
                status, info = api(self.sock, "GET", "vm.info")
                if status == 200 and info.get("state") == "Paused":
                    return time.perf_counter()
            except (OSError, http.client.HTTPException):
                pass
            if self.proc.poll() is not None:
                raise SystemExit(self.logtext())
            time.sleep(0.001)

    def stop(self):
        try:
            api(self.sock, "PUT", "vmm.shutdown")
        except (OSError, http.client.HTTPException):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def dd(args):
    r = subprocess.run(["dd", *args], capture_output=True, text=True)
    m = re.search(r"copied, ([\d.]+) s, ([\d.]+ [GMk]?B/s)", r.stderr)
    return (float(m.group(1)), m.group(2)) if m else (None, r.stderr.strip())


def one_size(args, size):
    work = tempfile.mkdtemp(prefix="cl-ondemand-", dir=args.dir)
    data = args.data_mib << 20
    vm = VM(args.build, work, "boot")
    vm.start("--cpus", "boot=2", "--memory", f"size={size}", "--kernel",
             os.path.join(LINUX, "vmlinux"), "--initramfs", os.path.join(LINUX, "initramfs.cpio.gz"),
             "--cmdline", "console=ttyS0", "--serial", "tty")
    vm.wait(r"~ # ")
    t0 = time.perf_counter()
    # 1 MiB of random bytes, repeated: cat moves it with the kernel's copies, fast enough
    # under emulation (busybox yes writes a line at a time).
    vm.ask("head -c 1048576 /dev/urandom > /tmp/block; echo block-done", r"^block-done$")
    vm.ask(f"i=0; while [ $i -lt {data >> 20} ]; do cat /tmp/block; i=$((i+1)); done > /tmp/fill;"
           " rm /tmp/block; echo fill-done", r"^fill-done$", timeout=3600)
    fill_s = time.perf_counter() - t0
    assert api(vm.sock, "PUT", "vm.pause")[0] == 204
    snap = os.path.join(work, "snap")
    os.mkdir(snap)
    t0 = time.perf_counter()
    status, body = api(vm.sock, "PUT", "vm.snapshot", {"destination_url": f"file://{snap}"})
    snap_s = time.perf_counter() - t0
    assert status == 204, body
    vm.stop()
    blocks = sum(os.stat(os.path.join(snap, f)).st_blocks * 512 for f in os.listdir(snap)
                 if f.startswith("memory-region-"))
    res = {"size": size, "data_bytes_on_disk": blocks, "fill_s": round(fill_s, 1),
           "snapshot_s": round(snap_s, 3)}
    # The disk, in the same run: writing as much data durably, reading a region file warm.
    res["dd_write_fdatasync"] = dd(["if=/dev/zero", f"of={work}/dd.out", "bs=1M",
                                    f"count={data >> 20}", "conv=fdatasync"])
    res["dd_read_warm"] = dd([f"if={work}/dd.out", "of=/dev/null", "bs=1M"])
    os.unlink(f"{work}/dd.out")
    for mode in ("Copy", "OnDemand"):
        v = VM(args.build, work, mode)
        v.start("--restore", f"source_url=file://{snap},memory_restore_mode={mode}")
        paused = v.wait_paused() - v.t_start
        m = re.search(r"restored from \S+ in ([\d.]+) ms", v.logtext())
        t0 = time.perf_counter()
        start = len(v.text())
        assert api(v.sock, "PUT", "vm.resume")[0] == 204
        v.proc.stdin.write(b"echo answer-$((40+2))\n")
        v.proc.stdin.flush()
        v.wait(r"^answer-42$", start, poll=0.001)
        answer = time.perf_counter() - t0
        done = None
        if mode == "OnDemand":
            while True:
                info = api(v.sock, "GET", "vm.info")[1]
                if info.get("memory_restore", {}).get("done"):
                    done = time.perf_counter() - t0
                    break
                time.sleep(0.005)
        ok = v.ask("wc -c < /tmp/fill; head -c 1048576 /tmp/fill | md5sum; tail -c 1048576 /tmp/fill"
                   " | md5sum", r"^(\d+)\n([0-9a-f]{32})  -\n([0-9a-f]{32})  -$", timeout=3600)
        assert int(ok.group(1)) == data and ok.group(2) == ok.group(3), ok.group(0)
        res[mode] = {"restore_ms_gateway": float(m.group(1)) if m else None,
                     "start_to_paused_ms": round(paused * 1e3, 1),
                     "resume_to_shell_answer_ms": round(answer * 1e3, 1),
                     "resume_to_all_present_ms": round(done * 1e3, 1) if done else None}
        v.stop()
    shutil.rmtree(work)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--sizes", default="4G,16G")
    ap.add_argument("--data-mib", type=int, default=1024,
                    help="MiB of non-zero data the guest writes")
    ap.add_argument("--dir", default="/var/tmp")
    args = ap.parse_args()
    for size in args.sizes.split(","):
        print(json.dumps(one_size(args, size)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
