/* SPDX-License-Identifier: Apache-2.0 */
/* ECALL exits, exceptions, SRET, U-mode, interrupts, WFI, kick, CSRs. */
#include "harness.h"

static struct tmachine tm;

static void setup(void)
{
	tm_init(&tm);
	tm_trap_to_ecall(&tm);
}

static void teardown(void)
{
	tm_fini(&tm);
}

TestSuite(rv64_trap, .init = setup, .fini = teardown);

static void set_state_field(uint64_t struct_offset, uint64_t v)
{
	struct vcpu_state s = tm_state(&tm);

	memcpy((char *)&s + struct_offset, &v, sizeof(v));
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
}

#define SET_STATE(field, v) set_state_field(offsetof(struct vcpu_state, field), v)

static void start(void)
{
	tm.cursor = RAM_BASE;
}

static void go(void)
{
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
}

Test(rv64_trap, ecall_from_s_exits_with_sbi_args)
{
	struct vcpu_exit e;

	start();
	emit(&tm, ECALL);
	emit(&tm, ADDI(T0, A0, 1));
	emit(&tm, ECALL);
	tm_set_pc(&tm, RAM_BASE);
	for (unsigned r = A0; r <= A7; r++)
		set_reg(&tm, r, 100 + r);
	e = tm_run(&tm);
	cr_assert_eq(e.reason, VCPU_EXIT_SBI);
	cr_expect_eq(e.sbi.ext, 100 + A7);
	cr_expect_eq(e.sbi.fid, 100 + A6);
	for (unsigned i = 0; i < 6; i++)
		cr_expect_eq(e.sbi.args[i], 100 + A0 + i);
	cr_expect_eq(tm_state(&tm).pc, RAM_BASE + 4);
	/* The VMM answers in a0 and resumes. */
	set_reg(&tm, A0, 41);
	e = tm_run(&tm);
	cr_assert_eq(e.reason, VCPU_EXIT_SBI);
	cr_expect_eq(reg(&tm, T0), 42);
}

Test(rv64_trap, illegal_instruction_traps_with_bits)
{
	struct vcpu_state s;

	start();
	emit(&tm, NOP);
	emit(&tm, 0xffffffffu);
	SET_STATE(sstatus, SSTATUS_SIE);
	go();
	s = tm_state(&tm);
	cr_expect_eq(s.scause, 2);
	cr_expect_eq(s.stval, 0xffffffffu);
	cr_expect_eq(s.sepc, RAM_BASE + 4);
	cr_expect_eq(s.priv, PRIV_S);
	cr_expect(s.sstatus & SSTATUS_SPP, "came from S");
	cr_expect(s.sstatus & SSTATUS_SPIE, "SIE saved");
	cr_expect_not(s.sstatus & SSTATUS_SIE, "SIE cleared");
}

/* The hart starts with sstatus.FS = Off: the FPU is unusable until the guest turns it on. */
Test(rv64_trap, fp_opcodes_are_illegal_while_fs_off)
{
	uint32_t fld = enc_i(0x07, 1, 3, A1, 0);

	start();
	emit(&tm, fld);
	set_reg(&tm, A1, RAM_BASE);
	go();
	cr_expect_eq(tm_state(&tm).scause, 2);
	cr_expect_eq(tm_state(&tm).stval, fld);
}

Test(rv64_trap, ebreak_is_breakpoint)
{
	start();
	emit(&tm, EBREAK);
	go();
	cr_expect_eq(tm_state(&tm).scause, 3);
	cr_expect_eq(tm_state(&tm).sepc, RAM_BASE);
}

/* Enters U-mode at 'user' via SRET with SPP = 0. */
static void emit_enter_user(uint64_t user)
{
	set_reg(&tm, T0, user);
	emit(&tm, CSRRW(ZERO, CSR_SEPC, T0));
	emit(&tm, SRET);
}

Test(rv64_trap, sret_to_user_and_ecall_from_u)
{
	struct vcpu_state s;
	uint64_t user = RAM_BASE + 0x2000;

	start();
	emit_enter_user(user);
	tm.cursor = user;
	emit(&tm, ADDI(A0, ZERO, 9));
	emit(&tm, ECALL);
	SET_STATE(sstatus, SSTATUS_SPIE);
	go();
	s = tm_state(&tm);
	cr_expect_eq(reg(&tm, A0), 9, "user code ran");
	cr_expect_eq(s.scause, 8);
	cr_expect_eq(s.sepc, user + 4);
	cr_expect_not(s.sstatus & SSTATUS_SPP, "came from U");
	cr_expect(s.sstatus & SSTATUS_SPIE, "SIE was 1 in U after sret");
}

Test(rv64_trap, privileged_insns_illegal_in_user)
{
	uint32_t insns[] = { SRET, WFI, SFENCE_VMA, CSRRS(A0, CSR_SSTATUS, ZERO), 0x30200073u };

	for (size_t i = 0; i < N_ELEMS(insns); i++) {
		uint64_t user = RAM_BASE + 0x2000;

		start();
		emit_enter_user(user);
		tm.cursor = user;
		emit(&tm, insns[i]);
		SET_STATE(sstatus, 0);
		go();
		cr_expect_eq(tm_state(&tm).scause, 2, "insn %zu", i);
		cr_expect_eq(tm_state(&tm).stval, insns[i]);
	}
}

Test(rv64_trap, csr_read_write_set_clear)
{
	start();
	emit(&tm, CSRRW(A0, CSR_SSCRATCH, A1));	/* a0 = old (0) */
	emit(&tm, CSRRS(A2, CSR_SSCRATCH, A3));	/* a2 = a1; sscratch |= a3 */
	emit(&tm, CSRRC(A4, CSR_SSCRATCH, A5));	/* a4 = a1|a3; clear a5 */
	emit(&tm, CSRRSI(A6, CSR_SSCRATCH, 0));	/* a6 = result */
	emit(&tm, ECALL);
	set_reg(&tm, A1, 0xf0);
	set_reg(&tm, A3, 0x0f);
	set_reg(&tm, A5, 0x11);
	go();
	cr_expect_eq(reg(&tm, A0), 0);
	cr_expect_eq(reg(&tm, A2), 0xf0);
	cr_expect_eq(reg(&tm, A4), 0xff);
	cr_expect_eq(reg(&tm, A6), 0xff & ~0x11);
}

Test(rv64_trap, read_only_csr_write_is_illegal)
{
	uint32_t w = CSRRW(ZERO, CSR_CYCLE, A1);

	start();
	emit(&tm, CSRRS(A0, CSR_CYCLE, ZERO));	/* reading is fine */
	emit(&tm, w);
	go();
	cr_expect_eq(tm_state(&tm).scause, 2);
	cr_expect_eq(tm_state(&tm).stval, w);
	cr_expect_eq(tm_state(&tm).sepc, RAM_BASE + 4);
}

Test(rv64_trap, unknown_and_machine_csrs_are_illegal)
{
	uint32_t insns[] = { CSRRS(A0, 0x300, ZERO), CSRRS(A0, 0x7c0, ZERO), CSRRS(A0, 0x003, ZERO) };

	for (size_t i = 0; i < N_ELEMS(insns); i++) {
		start();
		emit(&tm, insns[i]);
		SET_STATE(scause, 0);
		go();
		cr_expect_eq(tm_state(&tm).scause, 2, "csr insn %zu", i);
	}
}

Test(rv64_trap, counters_time_and_scounteren)
{
	uint64_t user = RAM_BASE + 0x2000;

	tm.now = 123456;
	start();
	emit(&tm, CSRRS(A0, CSR_TIME, ZERO));
	emit(&tm, CSRRS(A1, CSR_INSTRET, ZERO));
	emit(&tm, CSRRS(A2, CSR_INSTRET, ZERO));
	emit(&tm, CSRRWI(ZERO, CSR_SCOUNTEREN, 2));	/* time only */
	emit_enter_user(user);
	tm.cursor = user;
	emit(&tm, CSRRS(A3, CSR_TIME, ZERO));
	emit(&tm, CSRRS(A4, CSR_CYCLE, ZERO));		/* not enabled: illegal */
	go();
	cr_expect_eq(reg(&tm, A0), 123456);
	cr_expect_eq(reg(&tm, A2), reg(&tm, A1) + 1);
	cr_expect_eq(reg(&tm, A3), 123456);
	cr_expect_eq(tm_state(&tm).scause, 2);
	cr_expect_eq(tm_state(&tm).sepc, user + 4);
}

Test(rv64_trap, sstatus_uxl_and_sd)
{
	start();
	emit(&tm, CSRRS(A0, CSR_SSTATUS, ZERO));
	emit(&tm, LUI(T0, 0x6000));			/* FS = 3 (bits 13-14) */
	emit(&tm, CSRRS(ZERO, CSR_SSTATUS, T0));
	emit(&tm, CSRRS(A1, CSR_SSTATUS, ZERO));
	emit(&tm, ECALL);
	go();
	cr_expect_eq((reg(&tm, A0) >> 32) & 3, 2, "UXL reads 64-bit");
	cr_expect_eq(reg(&tm, A0) >> 63, 0);
	cr_expect_eq(reg(&tm, A1) >> 63, 1, "SD follows FS dirty");
}

Test(rv64_trap, unsupported_satp_mode_is_ignored)
{
	start();
	emit(&tm, CSRRW(ZERO, CSR_SATP, A1));	/* mode 10 (Sv57): unsupported */
	emit(&tm, CSRRS(A0, CSR_SATP, ZERO));
	emit(&tm, ECALL);
	set_reg(&tm, A1, (10ull << 60) | 0x1234);
	go();
	cr_expect_eq(reg(&tm, A0), 0);
}

/* Enables interrupts in sie and SIE, then spins; the handler ECALLs. */
static void emit_enable_and_spin(uint64_t sie_bits)
{
	set_reg(&tm, T0, sie_bits);
	emit(&tm, CSRRS(ZERO, CSR_SIE, T0));
	emit(&tm, CSRRSI(ZERO, CSR_SSTATUS, 2));
	emit(&tm, JAL(ZERO, 0));
}

Test(rv64_trap, external_interrupt_delivery)
{
	start();
	emit_enable_and_spin(1u << IRQ_S_EXT);
	tm.ops->vcpu_set_irq(tm.cpu, IRQ_S_EXT, true);
	cr_expect(tm.ops->vcpu_irq_pending(tm.cpu) == false, "sie not yet set");
	go();
	cr_expect_eq(tm_state(&tm).scause, CAUSE_INTR | IRQ_S_EXT);
	cr_expect_eq(tm_state(&tm).sepc, RAM_BASE + 8, "interrupted the spin loop");
	cr_expect(tm.ops->vcpu_irq_pending(tm.cpu));
	tm.ops->vcpu_set_irq(tm.cpu, IRQ_S_EXT, false);
	cr_expect_not(tm.ops->vcpu_irq_pending(tm.cpu));
}

Test(rv64_trap, interrupt_priority_sei_ssi_sti)
{
	uint64_t all = (1u << IRQ_S_EXT) | (1u << IRQ_S_SOFT) | (1u << IRQ_S_TIMER);

	tm.now = 1000;
	tm.ops->vcpu_set_timer(tm.cpu, 10);
	tm.ops->vcpu_set_irq(tm.cpu, IRQ_S_SOFT, true);
	tm.ops->vcpu_set_irq(tm.cpu, IRQ_S_EXT, true);
	start();
	emit_enable_and_spin(all);
	go();
	cr_expect_eq(tm_state(&tm).scause, CAUSE_INTR | IRQ_S_EXT);

	tm.ops->vcpu_set_irq(tm.cpu, IRQ_S_EXT, false);
	go();
	cr_expect_eq(tm_state(&tm).scause, CAUSE_INTR | IRQ_S_SOFT);

	tm.ops->vcpu_set_irq(tm.cpu, IRQ_S_SOFT, false);
	go();
	cr_expect_eq(tm_state(&tm).scause, CAUSE_INTR | IRQ_S_TIMER);
	cr_expect(tm_state(&tm).sip == 0, "STIP is derived, not saved");
}

Test(rv64_trap, vectored_stvec)
{
	tm.cursor = HANDLER + 4 * IRQ_S_SOFT;
	emit(&tm, ECALL);
	SET_STATE(stvec, HANDLER | 1);
	start();
	emit(&tm, CSRRSI(ZERO, CSR_SIP, 2));		/* guest raises SSIP itself */
	emit_enable_and_spin(1u << IRQ_S_SOFT);
	go();
	cr_expect_eq(tm_state(&tm).scause, CAUSE_INTR | IRQ_S_SOFT);
	cr_expect_eq(tm_state(&tm).pc, HANDLER + 4 * IRQ_S_SOFT + 4);
}

Test(rv64_trap, sie_zero_masks_in_s_but_not_in_u)
{
	uint64_t user = RAM_BASE + 0x2000;
	struct vcpu_exit e;

	tm.ops->vcpu_set_irq(tm.cpu, IRQ_S_EXT, true);
	start();
	set_reg(&tm, T1, 1u << IRQ_S_EXT);
	emit(&tm, CSRRS(ZERO, CSR_SIE, T1));
	emit(&tm, ADDI(A0, ZERO, 1));
	emit(&tm, ECALL);			/* reached: SIE = 0 masks in S */
	emit_enter_user(user);
	tm.cursor = user;
	emit(&tm, JAL(ZERO, 0));
	tm_set_pc(&tm, RAM_BASE);
	e = tm_run(&tm);
	cr_assert_eq(e.reason, VCPU_EXIT_SBI);
	cr_expect_eq(tm_state(&tm).pc, RAM_BASE + 12);
	tm_run_to_ecall(&tm);
	cr_expect_eq(tm_state(&tm).scause, CAUSE_INTR | IRQ_S_EXT, "taken in U regardless of SIE");
	cr_expect_eq(tm_state(&tm).sepc, user);
}

Test(rv64_trap, wfi_exits_when_nothing_pending)
{
	struct vcpu_exit e;

	start();
	emit(&tm, WFI);
	emit(&tm, ECALL);
	tm_set_pc(&tm, RAM_BASE);
	e = tm_run(&tm);
	cr_expect_eq(e.reason, VCPU_EXIT_WFI);
	cr_expect_eq(tm_state(&tm).pc, RAM_BASE + 4);
}

Test(rv64_trap, wfi_continues_when_pending_even_if_sie_clear)
{
	start();
	set_reg(&tm, T0, 1u << IRQ_S_TIMER);
	emit(&tm, CSRRS(ZERO, CSR_SIE, T0));
	emit(&tm, WFI);
	emit(&tm, ECALL);
	tm.now = 50;
	tm.ops->vcpu_set_timer(tm.cpu, 50);
	go();
	cr_expect_eq(tm_state(&tm).pc, RAM_BASE + 12, "fell through to the ecall");
	cr_expect_eq(tm_state(&tm).scause, 0, "no trap: SIE is 0");
}

Test(rv64_trap, timer_fires_when_time_reaches_deadline)
{
	start();
	emit_enable_and_spin(1u << IRQ_S_TIMER);
	tm.now = 99;
	tm.ops->vcpu_set_timer(tm.cpu, 100);
	cr_expect_not(tm.ops->vcpu_irq_pending(tm.cpu));
	cr_expect_eq(tm_state(&tm).timer_deadline, 100);
	/* Time passes while the guest spins: kick it out, then move the clock. */
	tm.ops->vcpu_kick(tm.cpu);
	tm_set_pc(&tm, RAM_BASE);
	cr_expect_eq(tm_run(&tm).reason, VCPU_EXIT_KICK);
	tm.now = 100;
	tm_run_to_ecall(&tm);
	cr_expect_eq(tm_state(&tm).scause, CAUSE_INTR | IRQ_S_TIMER);
}

Test(rv64_trap, kick_before_run_returns_kick)
{
	start();
	emit(&tm, JAL(ZERO, 0));
	tm_set_pc(&tm, RAM_BASE);
	tm.ops->vcpu_kick(tm.cpu);
	cr_expect_eq(tm_run(&tm).reason, VCPU_EXIT_KICK);
	tm.ops->vcpu_kick(tm.cpu);
	cr_expect_eq(tm_run(&tm).reason, VCPU_EXIT_KICK, "each kick is consumed once");
}

Test(rv64_trap, state_roundtrip_and_validation)
{
	struct vcpu_state s = tm_state(&tm), back;

	for (unsigned i = 1; i < 32; i++)
		s.x[i] = i * 0x1111;
	s.pc = RAM_BASE + 0x40;
	s.priv = PRIV_U;
	s.sscratch = 7;
	s.satp = (8ull << 60) | 0x80123;
	s.cycle = 5;
	s.instret = 4;
	s.timer_deadline = 777;
	s.sip = 1u << IRQ_S_SOFT;
	s.sie = 0x222;
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	back = tm_state(&tm);
	cr_expect_eq(memcmp(back.x, s.x, sizeof(s.x)), 0);
	cr_expect_eq(back.pc, s.pc);
	cr_expect_eq(back.priv, PRIV_U);
	cr_expect_eq(back.satp, s.satp);
	cr_expect_eq(back.timer_deadline, 777);
	cr_expect_eq(back.sip, s.sip);
	cr_expect_eq(back.sie, s.sie);
	cr_expect_eq(back.cycle, 5);
	s.priv = 3;
	cr_expect_eq(tm.ops->vcpu_set_state(tm.cpu, &s), -EINVAL, "no M-mode");
	s.priv = PRIV_S;
	s.satp = 10ull << 60;
	cr_expect_eq(tm.ops->vcpu_set_state(tm.cpu, &s), -EINVAL, "Sv57 unsupported");
}

/*
 * Setting sstatus.SIE with an interrupt pending delivers it before the next
 * instruction; clearing SIE or toggling SUM needs no such stop.
 */
Test(rv64_trap, setting_sstatus_sie_delivers_at_once)
{
	tm.ops->vcpu_set_irq(tm.cpu, IRQ_S_EXT, true);
	start();
	set_reg(&tm, T1, 1u << IRQ_S_EXT);
	emit(&tm, CSRRS(ZERO, CSR_SIE, T1));		/* 0x00 */
	emit(&tm, CSRRSI(ZERO, CSR_SSTATUS, 1u << 18));	/* 0x04: SUM on: no interrupt yet */
	emit(&tm, ADDI(A0, ZERO, 7));			/* 0x08 */
	emit(&tm, CSRRSI(ZERO, CSR_SSTATUS, 2));	/* 0x0c: SIE on */
	emit(&tm, ADDI(A0, ZERO, 9));			/* 0x10: must not run first */
	emit(&tm, ECALL);
	go();
	cr_expect_eq(tm_state(&tm).scause, CAUSE_INTR | IRQ_S_EXT);
	cr_expect_eq(tm_state(&tm).sepc, RAM_BASE + 0x10);
	cr_expect_eq(reg(&tm, A0), 7);
}

/* Enabling a pending source in sie, SIE already set, delivers it before the next instruction. */
Test(rv64_trap, enabling_pending_source_in_sie_delivers_at_once)
{
	tm.ops->vcpu_set_irq(tm.cpu, IRQ_S_SOFT, true);
	start();
	set_reg(&tm, T1, 1u << IRQ_S_SOFT);
	emit(&tm, CSRRSI(ZERO, CSR_SSTATUS, 2));	/* 0x00: SIE on, nothing enabled */
	emit(&tm, ADDI(A0, ZERO, 3));			/* 0x04 */
	emit(&tm, CSRRS(ZERO, CSR_SIE, T1));		/* 0x08 */
	emit(&tm, ADDI(A0, ZERO, 5));			/* 0x0c: must not run first */
	emit(&tm, ECALL);
	go();
	cr_expect_eq(tm_state(&tm).scause, CAUSE_INTR | IRQ_S_SOFT);
	cr_expect_eq(tm_state(&tm).sepc, RAM_BASE + 0x0c);
	cr_expect_eq(reg(&tm, A0), 3);
}
