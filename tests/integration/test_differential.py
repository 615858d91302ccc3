# SPDX-License-Identifier: Apache-2.0
"""The same bare-metal programs give the same transcript on Cloister and on
QEMU's virt machine (Debian's qemu-system-riscv64 with its OpenSBI), with
Cloister's engine translating guest code and with it interpreting only."""
import difflib
import os
import shutil
import subprocess
import time

import pytest

from conftest import BUILD

DIFF_DIR = os.path.join(BUILD, "tests", "guest", "diff")
QEMU = "qemu-system-riscv64"
OPENSBI_FW = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
RUN_TIMEOUT = 60
PROGRAMS = [
    "integer",
    "atomics",
    "traps",
    "vm",
    "fp",
]


def qemu_available():
    """QEMU and the OpenSBI it loads with -bios default, installed with apt if missing."""
    if shutil.which(QEMU) and os.path.exists(OPENSBI_FW):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{QEMU} or {OPENSBI_FW} is missing and we cannot apt-get install them"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends",
                        "qemu-system-misc", "opensbi"], capture_output=True, text=True,
                       env=env, timeout=900)
    if r.returncode != 0 or not shutil.which(QEMU) or not os.path.exists(OPENSBI_FW):
        return f"apt-get install qemu-system-misc opensbi failed: {r.stderr[-500:]}"
    return None


@pytest.fixture(scope="module")
def qemu():
    reason = qemu_available()
    if reason:
        pytest.skip(reason)


def start_marker(name):
    return f"=== diff {name} start ==="


def end_marker(name):
    return f"=== diff {name} end ==="


def transcript(name, text):
    """The program's own lines: firmware banners before the start marker are dropped."""
    lines = text.replace("\r", "").split("\n")
    try:
        first = lines.index(start_marker(name))
    except ValueError:
        raise AssertionError(f"no start marker for {name} in:\n{text[-2000:]}")
    out = lines[first:]
    if end_marker(name) in out:
        out = out[:out.index(end_marker(name)) + 1]
    return out


def elf(name):
    path = os.path.join(DIFF_DIR, f"{name}.elf")
    assert os.path.exists(path), f"{path} is not built"
    return path


def run_qemu(name, workdir):
    serial = os.path.join(workdir, f"{name}.qemu")
    cmd = [QEMU, "-machine", "virt", "-cpu", "rv64", "-smp", "1", "-m", "256M",
           "-bios", "default", "-kernel", elf(name), "-nographic",
           "-serial", f"file:{serial}", "-monitor", "none"]
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass   # the transcript check below says what was missing
    with open(serial, errors="replace") as f:
        return f.read()


# CLOISTER_JIT for each of the engine's two ways of running guest code.
ENGINES = {"translator": "1", "interpreter": "0"}


def run_cloister(name, vms, engine):
    vm = vms(f"{name}-{engine}")
    vm.start("--cpus", "boot=1", "--memory", "size=256M", "--kernel", elf(name),
             "--serial", f"file={vm.serial}",
             env=dict(os.environ, CLOISTER_JIT=ENGINES[engine]))
    vm.wait_serial(lambda t: end_marker(name) in t, timeout=RUN_TIMEOUT,
                   what=f"the end of {name}")
    deadline = time.time() + 10
    while vm.info()["state"] != "Shutdown" and time.time() < deadline:
        time.sleep(0.05)
    assert vm.info()["state"] == "Shutdown", vm.info()
    return vm.serial_text()


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("name", PROGRAMS)
def test_same_transcript(name, engine, qemu, vms, workdir):
    expected = transcript(name, run_qemu(name, workdir))
    got = transcript(name, run_cloister(name, vms, engine))
    assert expected[-1] == end_marker(name), f"QEMU did not finish {name}:\n" + "\n".join(expected[-20:])
    assert len(expected) > 10, expected
    if got != expected:
        diff = "\n".join(difflib.unified_diff(expected, got, "qemu", "cloister", lineterm=""))
        raise AssertionError(f"{name}: transcripts differ\n{diff[:6000]}")
