#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Restore Copy against OnDemand, with and without a working set, beside QEMU
and the disk, with a Linux guest holding N GiB of data.

For each guest size: boot Linux (guest/linux/fetch.sh's kernel and
initramfs), fill --data-mib MiB of its memory with non-zero bytes
(1 MiB from /dev/urandom repeated with cat, into the initramfs's tmpfs),
pause, snapshot, stop; then, page cache warm, restore it with
memory_restore_mode=Copy and =OnDemand and time: the gateway's own
"restored ... in X ms" (restore to Paused), the process start to Paused as
seen over the API, resume to the answer of a shell command, and (OnDemand)
resume to the page server's "done". The OnDemand-restored VM records its
working set; its snapshot (snap2) stores it. snap2 is then restored
OnDemand --rounds times with its working set and as many times without
(the same files, vm.json without "working_set"). Beside them, dd of as much
data on the same file system (conv=fdatasync, then read back warm), and
QEMU with the same kernel, initramfs, memory and fill: `migrate` to a file
through `exec:cat`, made durable, and `-incoming "exec:cat FILE"` to paused,
then `cont` and the same shell command.

Beside dd's warm read to /dev/null, dd reads the same file into a new file
in /dev/shm: the page cache into fresh memory, which is what a Copy restore
must at least do (and then the same into pages already there).

--copy-rounds N restores the first snapshot Copy N more times, each restored
VM then snapshotted again and followed by dd conv=fdatasync of as much data,
for the snapshot's rate against the disk's at that moment; with
--also-build OTHER, OTHER's cloister does the same after each round
(alternating, on the same snapshot), so two versions compare in one run.
--copy-only stops there (no OnDemand, no QEMU).

Run by hand, as root, from a built tree:
    nice -n 10 bench/ondemand_restore.py [--build build] [--sizes 4G,16G] [--data-mib 1024]
    nice -n 10 bench/ondemand_restore.py --sizes 4G --copy-rounds 3 --also-build OLD --copy-only
It is not part of the test suite: timings depend on the machine.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.environ.get("CLOISTER_LINUX_DIR", os.path.expanduser("~/.cache/cloister/linux"))
QEMU = "qemu-system-riscv64"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import snapshot_restore as sr  # noqa: E402 - QEMU's QMP, shared with that bench


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


def reap(proc):
    """Waits for a VMM asked to quit, killing it after 30 s."""
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        reap(self.proc)


def dd(args):
    r = subprocess.run(["dd", *args], capture_output=True, text=True)
    m = re.search(r"copied, ([\d.]+) s, ([\d.]+ [GMk]?B/s)", r.stderr)
    return (float(m.group(1)), m.group(2)) if m else (None, r.stderr.strip())


FILL_CMDS = [
    # Kernel messages on the console (a slow timer interrupt under load) would cut into
    # the answers the bench reads; the restored guests keep this setting.
    ("dmesg -n 1; echo quiet", r"^quiet$"),
    # 1 MiB of random bytes, repeated: cat moves it with the kernel's copies, fast enough
    # under emulation (busybox yes writes a line at a time).
    ("head -c 1048576 /dev/urandom > /tmp/block; echo block-done", r"^block-done$"),
    ("i=0; while [ $i -lt {mib} ]; do cat /tmp/block; i=$((i+1)); done > /tmp/fill;"
     " rm /tmp/block; echo fill-done", r"^fill-done$"),
]
CHECK_CMD = ("wc -c < /tmp/fill; head -c 1048576 /tmp/fill | md5sum; tail -c 1048576 /tmp/fill"
             " | md5sum", r"^(\d+)\n(?:.*\n)*?([0-9a-f]{32})  -\n(?:.*\n)*?([0-9a-f]{32})  -$")


def fill(vm, data):
    t0 = time.perf_counter()
    for cmd, pattern in FILL_CMDS:
        vm.ask(cmd.format(mib=data >> 20), pattern, timeout=3600)
    return time.perf_counter() - t0


def check_fill(vm, data):
    ok = vm.ask(*CHECK_CMD, timeout=3600)
    assert int(ok.group(1)) == data and ok.group(2) == ok.group(3), ok.group(0)


def shell_answer_after(v, resume, timeout=600):
    """Resumes (resume() does it) and times the answer to a shell command typed at once."""
    start = len(v.text())
    t0 = time.perf_counter()
    resume()
    v.proc.stdin.write(b"echo answer-$((40+2))\n")
    v.proc.stdin.flush()
    v.wait(r"^answer-42$", start, timeout=timeout, poll=0.001)
    return time.perf_counter() - t0


def wait_all_present(v, t0):
    while True:
        info = api(v.sock, "GET", "vm.info")[1]
        if info.get("memory_restore", {}).get("done"):
            return time.perf_counter() - t0
        time.sleep(0.005)


def restore_round(args, work, snap, mode, name, data, keep_to=None, build=None):
    """One restore of snap: its figures; with keep_to, a snapshot of the restored VM there."""
    v = VM(build or args.build, work, name)
    v.start("--restore", f"source_url=file://{snap},memory_restore_mode={mode}")
    paused = v.wait_paused() - v.t_start
    m = re.search(r"restored from \S+ in ([\d.]+) ms", v.logtext())
    ws = re.search(r"a working set of (\d+) blocks first", v.logtext())
    t_resume = time.perf_counter()
    answer = shell_answer_after(v, lambda: api(v.sock, "PUT", "vm.resume"))
    done = wait_all_present(v, t_resume) if mode == "OnDemand" else None
    check_fill(v, data)
    res = {"restore_ms_gateway": float(m.group(1)) if m else None,
           "start_to_paused_ms": round(paused * 1e3, 1),
           "resume_to_shell_answer_ms": round(answer * 1e3, 1),
           "resume_to_all_present_ms": round(done * 1e3, 1) if done else None,
           "working_set_blocks": int(ws.group(1)) if ws else None}
    if keep_to:
        assert api(v.sock, "PUT", "vm.pause")[0] == 204
        os.mkdir(keep_to)
        t0 = time.perf_counter()
        status, body = api(v.sock, "PUT", "vm.snapshot", {"destination_url": f"file://{keep_to}"})
        res["snapshot_s"] = round(time.perf_counter() - t0, 3)
        assert status == 204, body
    v.stop()
    return res


def without_working_set(snap, dest):
    """The same snapshot, its region files copied (a restore refuses hard links, and
    reflinks may not be there), its vm.json without the working set."""
    os.mkdir(dest)
    for f in os.listdir(snap):
        if f.startswith("memory-region-"):
            subprocess.run(["cp", "--sparse=always", "--reflink=auto", os.path.join(snap, f),
                            os.path.join(dest, f)], check=True)
    doc = json.load(open(os.path.join(snap, "vm.json")))
    blocks = len(doc.pop("working_set", {}).get("blocks", []))
    write_digested(os.path.join(dest, "vm.json"), doc)
    return blocks


def write_digested(path, doc):
    """Writes doc with the SHA-256 of its own text in integrity.document (hashed with
    those 64 digits as zeros), as snapshotd does, so the edited vm.json is accepted."""
    zeros = "0" * 64
    doc["integrity"]["document"] = zeros
    text = json.dumps(doc)
    digest = hashlib.sha256(text.encode()).hexdigest()
    at = text.index(zeros, text.index('"document"'))
    with open(path, "w") as f:
        f.write(text[:at] + digest + text[at + 64:])


def fresh_memory_read(path):
    """dd from the page cache into a new file in /dev/shm (tmpfs, fresh pages like a
    memfd's), then the same into memory that is already there (the file written again)."""
    shm = tempfile.mktemp(prefix="cl-fresh-", dir="/dev/shm")
    try:
        fresh = dd([f"if={path}", f"of={shm}", "bs=1M"])
        again = dd([f"if={path}", f"of={shm}", "bs=1M", "conv=notrunc"])
    finally:
        if os.path.exists(shm):
            os.unlink(shm)
    return {"fresh": fresh, "already_allocated": again}


def copy_rounds(args, work, snap, data, blocks):
    """Copy restores of snap, alternating between the builds (--also-build), each
    followed by a snapshot of the restored VM and dd conv=fdatasync of as much data."""
    builds = [args.build] + ([args.also_build] if args.also_build else [])
    out = {b: {"restore_ms_gateway": [], "snapshot_s": [], "dd_fdatasync_s": []} for b in builds}
    for k in range(args.copy_rounds):
        for n, b in enumerate(builds):
            keep = os.path.join(work, f"copy-snap-{k}-{n}")
            r = restore_round(args, work, snap, "Copy", f"copy-{k}-{n}", data, keep_to=keep,
                              build=b)
            d = dd(["if=/dev/zero", f"of={work}/dd.out", "bs=1M", f"count={blocks >> 20}",
                    "conv=fdatasync"])
            os.unlink(f"{work}/dd.out")
            shutil.rmtree(keep)
            out[b]["restore_ms_gateway"].append(r["restore_ms_gateway"])
            out[b]["snapshot_s"].append(r["snapshot_s"])
            out[b]["dd_fdatasync_s"].append(d[0])
    for b in builds:
        o = out[b]
        o["restore_median_ms"] = statistics.median(o["restore_ms_gateway"])
        o["restore_median_GBps"] = round(blocks / o["restore_median_ms"] / 1e6, 2)
        o["snapshot_vs_dd"] = [round(d / s, 2) if d and s else None
                               for s, d in zip(o["snapshot_s"], o["dd_fdatasync_s"])]
    return out


def rate(nbytes, seconds):
    return round(nbytes / seconds / 1e6, 1) if seconds else None


def cloister_side(args, size, work, data):
    vm = VM(args.build, work, "boot")
    vm.start("--cpus", "boot=2", "--memory", f"size={size}", "--kernel",
             os.path.join(LINUX, "vmlinux"), "--initramfs", os.path.join(LINUX, "initramfs.cpio.gz"),
             "--cmdline", "console=ttyS0", "--serial", "tty")
    vm.wait(r"~ # ")
    fill_s = fill(vm, data)
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
    res = {"data_bytes_on_disk": blocks, "fill_s": round(fill_s, 1),
           "snapshot_s": round(snap_s, 3), "snapshot_MBps": rate(blocks, snap_s)}
    # The disk, in the same run: writing as much data durably, reading it back warm.
    res["dd_write_fdatasync"] = dd(["if=/dev/zero", f"of={work}/dd.out", "bs=1M",
                                    f"count={blocks >> 20}", "conv=fdatasync"])
    res["dd_read_warm"] = dd([f"if={work}/dd.out", "of=/dev/null", "bs=1M"])
    # What a Copy restore must at least do: the page cache read into fresh memory.
    res["dd_read_warm_into_fresh_memory"] = fresh_memory_read(f"{work}/dd.out")
    os.unlink(f"{work}/dd.out")
    dd_s = res["dd_write_fdatasync"][0]
    res["snapshot_vs_dd"] = round(dd_s / snap_s, 2) if dd_s else None
    res["Copy"] = restore_round(args, work, snap, "Copy", "copy", data)
    if args.copy_rounds:
        res["copy_rounds"] = copy_rounds(args, work, snap, data, blocks)
        if args.copy_only:
            return res
    # The first OnDemand restore has no working set; the VM it makes records one,
    # and its snapshot (snap2) stores it.
    snap2 = os.path.join(work, "snap2")
    res["OnDemand"] = restore_round(args, work, snap, "OnDemand", "od", data, keep_to=snap2)
    snap2_bare = os.path.join(work, "snap2-bare")
    res["working_set_blocks"] = without_working_set(snap2, snap2_bare)
    rounds = {"without": [], "with": []}
    for k in range(args.rounds):
        rounds["without"].append(restore_round(args, work, snap2_bare, "OnDemand", f"bare{k}", data))
        rounds["with"].append(restore_round(args, work, snap2, "OnDemand", f"ws{k}", data))
    for key, rs in rounds.items():
        answers = [r["resume_to_shell_answer_ms"] for r in rs]
        res[f"snap2_OnDemand_{key}_working_set"] = {
            "resume_to_shell_answer_ms": answers,
            "median": statistics.median(answers),
            "resume_to_all_present_ms": [r["resume_to_all_present_ms"] for r in rs],
            "restore_ms_gateway": [r["restore_ms_gateway"] for r in rs]}
    return res


class QemuVM(VM):
    """QEMU with the same kernel, initramfs, console and memory, driven over QMP."""

    def __init__(self, work, name):
        super().__init__("", work, name)
        self.qmp_path = os.path.join(work, name + ".qmp")

    def start(self, size, *extra):
        self.out = open(self.out_path, "wb")
        self.log = open(self.log_path, "wb")
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(
            [QEMU, "-machine", "virt", "-cpu", "rv64", "-smp", "2", "-m", size,
             "-bios", "default", "-kernel", os.path.join(LINUX, "vmlinux"),
             "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"), "-append", "console=ttyS0",
             "-nographic", "-monitor", "none",
             "-qmp", f"unix:{self.qmp_path},server=on,wait=off", *extra],
            stdin=subprocess.PIPE, stdout=self.out, stderr=self.log)
        self.qmp = sr.qmp_connect(self.qmp_path, self.proc)

    def status(self):
        return self.qmp.execute("query-status")["status"]

    def stop(self):
        try:
            self.qmp.execute("quit")
        except (sr.BenchError, OSError):
            pass
        reap(self.proc)


def qemu_side(size, work, data):
    vm = QemuVM(work, "qemu-boot")
    vm.start(size)
    vm.wait(r"~ # ")
    res = {"version": subprocess.run([QEMU, "--version"], capture_output=True,
                                     text=True).stdout.splitlines()[0]}
    res["fill_s"] = round(fill(vm, data), 1)
    vm.qmp.execute("stop")
    image = os.path.join(work, "qemu.migration")
    vm.qmp.execute("migrate-set-parameters", **{"max-bandwidth": 100 << 30})
    t0 = time.perf_counter()
    vm.qmp.execute("migrate", uri=f"exec:cat > {image}")

    def completed():
        info = vm.qmp.execute("query-migrate")
        if info.get("status") in ("failed", "cancelled"):
            raise SystemExit(f"qemu migrate: {info}")
        return info if info.get("status") == "completed" else None
    sr.wait_for(completed, "QEMU's migration to complete", timeout=3600, proc=vm.proc)
    sr.wait_for(lambda: not sr.children_named(vm.proc.pid, "cat"), "cat to end", timeout=3600,
                proc=vm.proc)
    with open(image, "rb") as f:
        os.fsync(f.fileno())
    snap_s = time.perf_counter() - t0
    vm.stop()
    size_on_disk = os.stat(image).st_blocks * 512
    res.update({"snapshot_s": round(snap_s, 3), "image_bytes": size_on_disk,
                "snapshot_MBps": rate(size_on_disk, snap_s)})
    v = QemuVM(work, "qemu-restore")
    v.start(size, "-incoming", f"exec:cat {image}")
    sr.wait_for(lambda: v.status() == "paused", "QEMU's incoming migration to end paused",
                timeout=3600, proc=v.proc)
    res["start_to_paused_ms"] = round((time.perf_counter() - v.t_start) * 1e3, 1)
    try:
        res["resume_to_shell_answer_ms"] = round(
            shell_answer_after(v, lambda: v.qmp.execute("cont"), timeout=120) * 1e3, 1)
        check_fill(v, data)
    except SystemExit as e:
        res["resume_to_shell_answer_ms"] = None
        res["no_answer"] = str(e)[-300:]
    v.stop()
    os.unlink(image)
    return res


def one_size(args, size):
    work = tempfile.mkdtemp(prefix="cl-ondemand-", dir=args.dir)
    data = args.data_mib << 20
    res = {"size": size, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "loadavg": os.getloadavg()[0]}
    res["cloister"] = cloister_side(args, size, work, data)
    if not args.no_qemu and not args.copy_only and shutil.which(QEMU):
        res["qemu"] = qemu_side(size, work, data)
    res["loadavg_end"] = os.getloadavg()[0]
    shutil.rmtree(work)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--sizes", default="4G,16G")
    ap.add_argument("--data-mib", type=int, default=1024,
                    help="MiB of non-zero data the guest writes")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--rounds", type=int, default=3,
                    help="restores of the second snapshot with and without its working set")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--copy-rounds", type=int, default=0,
                    help="more Copy restores, each followed by a snapshot of the restored VM"
                         " and dd conv=fdatasync")
    ap.add_argument("--also-build", help="a second build tree whose Copy restores and"
                    " snapshots alternate with --build's in --copy-rounds")
    ap.add_argument("--copy-only", action="store_true",
                    help="stop after the Copy rounds (no OnDemand, no QEMU)")
    args = ap.parse_args()
    for size in args.sizes.split(","):
        print(json.dumps(one_size(args, size)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
