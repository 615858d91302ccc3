/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entry points. The boot hart arrives at _start with a0 = hartid and
 * a1 = FDT; harts started through SBI HSM arrive at _secondary_start with
 * a0 = hartid and a1 = the opaque value. Both run in S-mode with satp 0.
 */
#include "rt.h"

	.section .text.start, "ax", @progbits
	.globl _start
_start:
	/* The boot hart clears bss before any C runs (a reboot reuses RAM). */
	la	t0, __bss_start
	la	t1, __bss_end
1:	bgeu	t0, t1, 2f
	sd	zero, 0(t0)
	addi	t0, t0, 8
	j	1b
2:	la	t2, boot_main
	j	enter_c

	.globl _secondary_start
_secondary_start:
	la	t2, secondary_main

/* Sets gp, tp = hartid, a per-hart stack and the trap vector, then calls t2. */
enter_c:
	.option push
	.option norelax
	la	gp, __global_pointer$
	.option pop
	csrw	sie, zero
	li	t0, GUEST_MAX_HARTS
	bgeu	a0, t0, park
	mv	tp, a0
	la	sp, guest_stacks_end
	li	t1, GUEST_STACK_SIZE
	mul	t1, t1, a0
	sub	sp, sp, t1
	la	t0, trap_entry
	csrw	stvec, t0
	jalr	t2
park:
	wfi
	j	park

/* Nothing is expected to trap: report and stop (trap_report does not return). */
	.balign 4
trap_entry:
	csrr	a0, scause
	csrr	a1, sepc
	csrr	a2, stval
	call	trap_report
	j	park

	.section .stacks, "aw", @nobits
	.balign 16
	.globl guest_stacks
guest_stacks:
	.space GUEST_MAX_HARTS * GUEST_STACK_SIZE
guest_stacks_end:
