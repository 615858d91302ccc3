# SPDX-License-Identifier: Apache-2.0
"""The PLIC and the UART in the whole tree: their state rides in vm.json, and is checked on restore."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import first_counts_after, hart_counts, write_vm_json

HARTS = 2
PLIC_SOURCES = 64          # riscv,ndev 63 plus source 0
VIRTIO_IRQ_BASE = 1        # the rng in virtio slot 0 raises PLIC source 1
UART_MSR_IDLE = 0xb0       # DCD, DSR and CTS up, no deltas


def snapshot_running_guest(vm, snapdir):
    vm.boot(cpus=HARTS, memory="4G")
    # The guest reads the rng every 50 counts: wait for one read, so the device has interrupted.
    vm.wait_serial(lambda t: "rng: " in t and all(hart_counts(t).get(h, 0) >= 2 for h in range(HARTS)),
                   what="the guest to count and read the rng")
    vm.remote("pause")
    os.makedirs(snapdir)
    vm.remote("snapshot", f"file://{snapdir}")
    text = vm.serial_text()
    return hart_counts(text), len(text)


def load_vm_json(snapdir):
    with open(os.path.join(snapdir, "vm.json")) as f:
        return json.load(f)


def bit(words, n):
    return (words[n // 32] >> (n % 32)) & 1


def test_snapshot_holds_plic_and_uart_state(vms, workdir):
    vm = vms("plic")
    snapdir = os.path.join(workdir, "snap")
    snapshot_running_guest(vm, snapdir)
    state = load_vm_json(snapdir)["state"]
    plic = state["machine"]["plic"]
    assert plic["num_sources"] == PLIC_SOURCES
    assert plic["num_contexts"] == HARTS
    assert len(plic["priority"]) == PLIC_SOURCES
    assert len(plic["pending"]) == len(plic["claimed"]) == len(plic["level"]) == 2
    assert len(plic["enable"]) == 2 * HARTS
    assert len(plic["threshold"]) == HARTS
    # The countguest polls its rng and never acknowledges the interrupt: the
    # transport's InterruptStatus and the PLIC's line for slot 0 must agree.
    rng = state["devices"][0]
    line = bit(plic["level"], VIRTIO_IRQ_BASE)
    assert line == (1 if rng.get("interrupt_status", 0) else 0), (rng, plic)
    assert bit(plic["pending"], VIRTIO_IRQ_BASE) == line, "nobody claimed it"
    uart = state["machine"]["uart"]
    assert uart["msr"] == UART_MSR_IDLE
    assert not uart.get("rx"), "nothing typed, nothing queued"


def test_restore_brings_plic_state_back_and_refuses_a_bad_one(vms, workdir):
    vm = vms("orig")
    snapdir = os.path.join(workdir, "snap")
    before, offset = snapshot_running_guest(vm, snapdir)
    vm.remote("shutdown-vmm")
    vm.proc.wait(timeout=10)

    bad = os.path.join(workdir, "bad")
    shutil.copytree(snapdir, bad)
    doc = load_vm_json(bad)
    doc["state"]["machine"]["plic"]["priority"][1] = 99
    write_vm_json(os.path.join(bad, "vm.json"), doc)
    refused = vms("refused")
    refused.start()
    status, body = refused.api("PUT", "vm.restore", {"source_url": f"file://{bad}"})
    assert 400 <= status < 600, (status, body)
    assert "plic" in json.dumps(body).lower(), body

    good = vms("good")
    good.serial = vm.serial
    good.start("--restore", f"source_url=file://{snapdir}")
    assert good.info()["state"] == "Paused"
    resnap = os.path.join(workdir, "resnap")
    os.makedirs(resnap)
    good.remote("snapshot", f"file://{resnap}")
    # The same PLIC, but for the edge the restore raised on the VMGenID source (12).
    plic = load_vm_json(resnap)["state"]["machine"]["plic"]
    assert plic["pending"][0] & (1 << 12), plic
    plic["pending"][0] &= ~(1 << 12)
    assert plic == doc_plic(snapdir)
    assert load_vm_json(resnap)["state"]["machine"]["uart"] == load_vm_json(snapdir)["state"]["machine"]["uart"]
    good.remote("resume")
    text = good.wait_serial(lambda t: all(h in first_counts_after(t, offset) for h in range(HARTS)),
                            what="every hart to count again")
    first = first_counts_after(text, offset)
    assert all(first[h] == before[h] + 1 for h in range(HARTS)), (before, first)


def doc_plic(snapdir):
    return load_vm_json(snapdir)["state"]["machine"]["plic"]


# A bare-metal guest that only speaks to the UART and the PLIC: it prints through
# THR, enables the THR-empty interrupt, and takes it as an S-mode external
# interrupt through the PLIC. Each step prints one letter; the end is SBI shutdown.
IRQ_GUEST = r"""
	.section .text
	.globl _start
_start:
	li	s0, 0x10000000		/* UART */
	li	s1, 0x0c000000		/* PLIC */
	li	t0, 0x200000
	add	s2, s1, t0		/* context 0: threshold, then claim at +4 */
	la	t0, trap
	csrw	stvec, t0
	li	t0, 'U'
	sb	t0, 0(s0)
	lbu	t0, 5(s0)		/* LSR: THRE and TEMT, no data */
	li	t1, 0x60
	bne	t0, t1, fail
	li	t0, 1
	sw	t0, 40(s1)		/* priority of source 10 */
	li	t0, 0x2000
	add	t0, s1, t0
	li	t1, 1 << 10
	sw	t1, 0(t0)		/* context 0 enables source 10 */
	sw	zero, 0(s2)		/* threshold 0 */
	lw	t0, 4(s2)
	bnez	t0, fail		/* nothing to claim yet */
	li	t0, 0x200
	csrs	sie, t0			/* SEIE */
	csrsi	sstatus, 2		/* SIE */
	li	t0, 2
	sb	t0, 1(s0)		/* IER = THRI: the interrupt is due at once */
1:	wfi
	j	1b

	.align 4
trap:
	csrr	t0, scause
	li	t1, (1 << 63) | 9
	bne	t0, t1, fail
	li	t0, 'S'
	sb	t0, 0(s0)
	lw	t1, 4(s2)		/* claim */
	addi	t0, t1, 'A' - 1		/* source 10 prints J */
	sb	t0, 0(s0)
	lbu	t0, 2(s0)		/* IIR: THRE, which acknowledges it */
	li	t2, 0x02
	bne	t0, t2, fail
	sw	t1, 4(s2)		/* complete */
	lw	t0, 4(s2)
	bnez	t0, fail		/* the line went low with the IIR read */
	li	t0, '\n'
	sb	t0, 0(s0)
	j	shutdown

fail:
	li	t0, '!'
	sb	t0, 0(s0)
shutdown:
	li	a7, 0x53525354		/* SBI SRST: shutdown */
	li	a6, 0
	li	a0, 0
	li	a1, 0
	ecall
2:	j	2b
"""


def build_irq_guest(workdir):
    cc = shutil.which("riscv64-linux-gnu-gcc")
    if not cc:
        pytest.skip("riscv64-linux-gnu-gcc is not installed")
    src = os.path.join(workdir, "irqguest.S")
    elf = os.path.join(workdir, "irqguest.elf")
    with open(src, "w") as f:
        f.write(IRQ_GUEST)
    subprocess.run([cc, "-march=rv64imac_zicsr_zifencei", "-mabi=lp64", "-nostdlib",
                    "-nostartfiles", "-static", "-Wl,-Ttext=0x80200000", "-Wl,--build-id=none",
                    "-o", elf, src], check=True, capture_output=True)
    return elf


def test_guest_takes_a_uart_interrupt_through_the_plic(vms, workdir):
    elf = build_irq_guest(workdir)
    vm = vms("irq")
    vm.start("--cpus", "boot=1", "--memory", "size=1G", "--kernel", elf,
             "--serial", f"file={vm.serial}")
    text = vm.wait_serial(lambda t: "\n" in t or "!" in t, timeout=30, what="the guest's interrupt")
    assert text == "USJ\n", text
