# SPDX-License-Identifier: Apache-2.0
"""cloister under a real systemd: the installed tree booted in systemd-nspawn.

One container boot runs nspawn/inside.sh as a oneshot unit whose
SuccessAction/FailureAction=exit hands its exit status back as nspawn's;
each test below checks one step of what it printed.
"""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUILD, GUEST

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
ROOTFS_SCRIPT = os.path.join(TOP, "scripts", "nspawn-rootfs.sh")

TEST_UNIT = """\
[Unit]
Description=Cloister systemd test
After=basic.target
SuccessAction=exit
FailureAction=exit

[Service]
Type=oneshot
ExecStart=/cloister-test/inside.sh
StandardOutput=journal
"""


def vm_config(serial, kernel=None, snapshot_on_stop=False, memory=64 << 20):
    cfg = {
        "cpus": {"boot_vcpus": 1},
        "memory": {"size": memory},
        "payload": {"kernel": kernel or "/cloister-test/countguest.elf"},
        "serial": {"mode": "File", "file": f"/var/log/cloister/{serial}.serial"},
    }
    if snapshot_on_stop:
        cfg["snapshot_on_stop"] = True
    return json.dumps(cfg)


def why_not_nspawn():
    if os.geteuid() != 0:
        return "systemd-nspawn needs root"
    if not shutil.which("systemd-nspawn"):
        return "systemd-nspawn is not installed (scripts/setup.sh installs systemd-container)"
    cache = os.path.expanduser("~/.cache/cloister/nspawn-rootfs/.cloister-rootfs-v1")
    if not os.path.exists(cache) and not shutil.which("mmdebstrap"):
        return "no cached rootfs and no mmdebstrap to build one"
    if not os.path.exists(GUEST):
        return "the test guest was not built (needs riscv64-linux-gnu-gcc)"
    return None


def install_tree(dest):
    """meson install into dest; returns the prefix the binaries were built for."""
    subprocess.run(["meson", "install", "-C", BUILD, "--destdir", dest, "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    opts = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", BUILD],
                                     check=True, capture_output=True, text=True).stdout)
    get = {o["name"]: o["value"] for o in opts}
    unitdir = get.get("systemdsystemunitdir") or subprocess.run(
        ["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
        capture_output=True, text=True).stdout.strip() or os.path.join(get["prefix"], "lib/systemd/system")
    return get["prefix"], get["bindir"], get["libexecdir"], unitdir


def runtime_packages(paths):
    """The Debian packages that hold the shared libraries the programs at paths load."""
    libs = set()
    for path in paths:
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split("=>")
            lib = (parts[1] if len(parts) == 2 else parts[0]).split("(")[0].strip()
            if lib.startswith("/"):
                libs.add(os.path.realpath(lib))
    packages = set()
    for lib in sorted(libs):
        found = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
        if found.returncode != 0:
            # usrmerge: dpkg may know the file under /lib rather than /usr/lib.
            found = subprocess.run(["dpkg", "-S", lib.removeprefix("/usr")],
                                   capture_output=True, text=True)
        if found.returncode == 0:
            packages.add(found.stdout.split(":")[0].strip())
    return sorted(packages)


def run_in_container(work, script, configs, timeout=300, extra_files=(), extra_binds=()):
    """Boots the cached root with the installed tree, the counter guest, configs
    ({name: json text} as /etc/cloister/NAME.json) and script as the oneshot
    test unit; returns (nspawn's exit status, its console, the out directory,
    /cloister-out inside). extra_files go into /cloister-test beside the guest;
    extra_binds are more --bind= arguments (HOST:CONTAINER)."""
    dest = os.path.join(work, "dest")
    prefix, bindir, libexecdir, unitdir = install_tree(dest)
    libexec = os.path.join(prefix, libexecdir, "cloister")
    programs = [f"{dest}{os.path.join(prefix, bindir, p)}" for p in ("cloister", "cloister-remote")]
    programs += [os.path.join(f"{dest}{libexec}", p) for p in os.listdir(f"{dest}{libexec}")]
    made = subprocess.run([ROOTFS_SCRIPT, "--packages", ",".join(runtime_packages(programs))],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"scripts/nspawn-rootfs.sh failed:\n{made.stderr[-3000:]}")
    rootfs = made.stdout.strip().splitlines()[-1]
    test_dir = os.path.join(work, "test")
    etc = os.path.join(work, "etc-cloister")
    out = os.path.join(work, "out")
    for d in (test_dir, etc, out):
        os.makedirs(d)
    shutil.copy(script, os.path.join(test_dir, "inside.sh"))
    shutil.copy(GUEST, os.path.join(test_dir, "countguest.elf"))
    for path in extra_files:
        shutil.copy(path, os.path.join(test_dir, os.path.basename(path)))
    with open(os.path.join(test_dir, "cloister-test.service"), "w") as f:
        f.write(TEST_UNIT)
    for name, text in configs.items():
        with open(os.path.join(etc, f"{name}.json"), "w") as f:
            f.write(text)

    binds = [
        f"--bind-ro={test_dir}:/cloister-test",
        f"--bind-ro={test_dir}/cloister-test.service:/etc/systemd/system/cloister-test.service",
        f"--bind-ro={etc}:/etc/cloister",
        f"--bind={out}:/cloister-out",
    ] + [f"--bind={b}" for b in extra_binds]
    for prog in ("cloister", "cloister-remote"):
        path = os.path.join(prefix, bindir, prog)
        binds.append(f"--bind-ro={dest}{path}:{path}")
    binds.append(f"--bind-ro={dest}{libexec}:{libexec}")
    for unit in ("cloister@.service", "cloister@.socket"):
        binds.append(f"--bind-ro={dest}{unitdir}/{unit}:/etc/systemd/system/{unit}")
    cmd = ["systemd-nspawn", "-q", "-D", rootfs, "-b", "--register=no", "--keep-unit",
           "--volatile=overlay", "--console=read-only", *binds,
           "systemd.unit=cloister-test.service", "systemd.show_status=0"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, out


@pytest.fixture(scope="module")
def container_run():
    reason = why_not_nspawn()
    if reason:
        pytest.skip(reason)
    work = tempfile.mkdtemp(prefix="cloister-systemd-")
    try:
        configs = {
            "plain": vm_config("plain"),
            "web": vm_config("web", snapshot_on_stop=True),
            "bad": vm_config("bad", kernel="/cloister-test/does-not-exist.elf"),
        }
        rc, console, out = run_in_container(work, os.path.join(HERE, "nspawn", "inside.sh"),
                                            configs)
        results = {}
        path = os.path.join(out, "results.txt")
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    verdict, _, rest = line.rstrip("\n").partition(" ")
                    step, _, why = rest.partition(": ")
                    results[step] = (verdict, why)
        journal = ""
        if os.path.exists(os.path.join(out, "journal.txt")):
            with open(os.path.join(out, "journal.txt")) as f:
                journal = f.read()
        yield {"rc": rc, "console": console, "results": results, "journal": journal}
    finally:
        if not os.environ.get("CLOISTER_KEEP_SYSTEMD_TEST"):
            shutil.rmtree(work, ignore_errors=True)


def check_step(run, step):
    res = run["results"].get(step)
    assert res is not None, (f"step {step} did not run (nspawn exit {run['rc']}):\n"
                             + run["console"][-3000:])
    verdict, why = res
    if verdict == "PENDING":
        pytest.skip(why)
    assert verdict == "OK", f"{step}: {why}\n--- journal:\n{run['journal'][-4000:]}"


def test_container_exit_status_is_the_number_of_failed_steps(container_run):
    failed = sum(1 for v, _ in container_run["results"].values() if v == "FAIL")
    assert container_run["results"], container_run["console"][-3000:]
    assert container_run["rc"] == failed, container_run["console"][-3000:]


@pytest.mark.parametrize("step", [
    "ready",              # active only once READY=1 came, with STATUS=VM Running
    "journal",            # every process's lines at their priority, saying who spoke
    "watchdog",           # WATCHDOG=1 from the main loop when WatchdogSec= is set
    "plain_stop",         # stop without snapshot_on_stop saves nothing
    "vm_shutdown",        # vm.shutdown keeps the service up (VM Created) for a vm.boot
    "snapshot_on_stop",   # stop pauses and snapshots into the StateDirectory
    "restore_on_start",   # start restores, resumes, removes the snapshot: the count goes on
    "restart_fdstore",    # restart keeps RAM in the fd store: no region file, the count goes on
    "stop_after_restart",  # then stop and start go through the disk again
    "restart_fdstore_refused",  # a spoiled vm.json: store emptied, logged, fresh boot
    "refused_snapshot",   # a corrupt snapshot is kept aside and the VM boots afresh
    "failed_start",       # a VM that cannot boot: failed, the reason in systemctl status
    "failed_running",     # vmm-core killed: failed, the reason in systemctl status
    "socket",             # the first request on the 0600 socket starts the service
])
def test_step(container_run, step):
    check_step(container_run, step)
