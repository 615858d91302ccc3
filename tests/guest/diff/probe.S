/* SPDX-License-Identifier: Apache-2.0 */
/*
 * probe_run saves the callee-saved registers, points stvec at probe_trap and
 * srets into the probed code. Both the normal return and a trap land back
 * here with the saved registers, so the probed code may clobber anything
 * but gp and tp.
 */
#define SSTATUS_SPIE (1 << 5)
#define SSTATUS_SPP (1 << 8)

#define CTX_RA 0
#define CTX_SP 8
#define CTX_S0 16
#define CTX_RESULT 112
#define CTX_STVEC 120
#define CTX_SIZE 128

#define RES_TRAPPED 0
#define RES_CAUSE 8
#define RES_TVAL 16
#define RES_EPC 24
#define RES_VALUE 32

	.text
	.globl probe_run
/* int probe_run(entry, a0, a1, user, struct probe_result *r) */
probe_run:
	la	t0, probe_ctx
	sd	ra, CTX_RA(t0)
	sd	sp, CTX_SP(t0)
	sd	s0, CTX_S0 + 0(t0)
	sd	s1, CTX_S0 + 8(t0)
	sd	s2, CTX_S0 + 16(t0)
	sd	s3, CTX_S0 + 24(t0)
	sd	s4, CTX_S0 + 32(t0)
	sd	s5, CTX_S0 + 40(t0)
	sd	s6, CTX_S0 + 48(t0)
	sd	s7, CTX_S0 + 56(t0)
	sd	s8, CTX_S0 + 64(t0)
	sd	s9, CTX_S0 + 72(t0)
	sd	s10, CTX_S0 + 80(t0)
	sd	s11, CTX_S0 + 88(t0)
	sd	a4, CTX_RESULT(t0)
	csrr	t1, stvec
	sd	t1, CTX_STVEC(t0)
	la	t1, probe_trap
	csrw	stvec, t1
	csrw	sepc, a0
	li	t1, SSTATUS_SPP
	beqz	a3, 1f
	csrc	sstatus, t1
	j	2f
1:	csrs	sstatus, t1
	/* Interrupts stay off inside the probe. */
2:	li	t1, SSTATUS_SPIE
	csrc	sstatus, t1
	mv	a0, a1
	mv	a1, a2
	la	ra, probe_return
	sret

probe_return:
	la	t0, probe_ctx
	ld	t1, CTX_RESULT(t0)
	sd	zero, RES_TRAPPED(t1)
	sd	zero, RES_CAUSE(t1)
	sd	zero, RES_TVAL(t1)
	sd	zero, RES_EPC(t1)
	sd	a0, RES_VALUE(t1)
	li	a0, 0
	j	probe_restore

	.balign 4
probe_trap:
	la	t0, probe_ctx
	ld	t1, CTX_RESULT(t0)
	li	t2, 1
	sd	t2, RES_TRAPPED(t1)
	csrr	t2, scause
	sd	t2, RES_CAUSE(t1)
	csrr	t2, stval
	sd	t2, RES_TVAL(t1)
	csrr	t2, sepc
	sd	t2, RES_EPC(t1)
	sd	a0, RES_VALUE(t1)
	li	a0, 1

probe_restore:
	ld	t1, CTX_STVEC(t0)
	csrw	stvec, t1
	ld	ra, CTX_RA(t0)
	ld	sp, CTX_SP(t0)
	ld	s0, CTX_S0 + 0(t0)
	ld	s1, CTX_S0 + 8(t0)
	ld	s2, CTX_S0 + 16(t0)
	ld	s3, CTX_S0 + 24(t0)
	ld	s4, CTX_S0 + 32(t0)
	ld	s5, CTX_S0 + 40(t0)
	ld	s6, CTX_S0 + 48(t0)
	ld	s7, CTX_S0 + 56(t0)
	ld	s8, CTX_S0 + 64(t0)
	ld	s9, CTX_S0 + 72(t0)
	ld	s10, CTX_S0 + 80(t0)
	ld	s11, CTX_S0 + 88(t0)
	ret

	.bss
	.balign 8
probe_ctx:
	.space CTX_SIZE
