/* SPDX-License-Identifier: Apache-2.0 */
/* The A extension: LR/SC, AMO results, alignment, atomicity across vCPU threads. */
#include <pthread.h>

#include "harness.h"

static struct tmachine tm;

#define DATA (RAM_BASE + 0x8000)

static void setup(void)
{
	tm_init(&tm);
	tm_trap_to_ecall(&tm);
}

static void teardown(void)
{
	tm_fini(&tm);
}

TestSuite(rv64_amo, .init = setup, .fini = teardown);

static void run_program(void)
{
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
}

Test(rv64_amo, lr_sc_success)
{
	tm_poke64(&tm, DATA, 41);
	tm.cursor = RAM_BASE;
	emit(&tm, LR_D(A0, A1));
	emit(&tm, ADDI(A0, A0, 1));
	emit(&tm, SC_D(A2, A1, A0));
	emit(&tm, ECALL);
	set_reg(&tm, A1, DATA);
	run_program();
	cr_expect_eq(reg(&tm, A2), 0, "sc succeeded");
	cr_expect_eq(tm_peek64(&tm, DATA), 42);
}

Test(rv64_amo, sc_without_reservation_fails)
{
	tm_poke64(&tm, DATA, 5);
	tm.cursor = RAM_BASE;
	emit(&tm, SC_D(A2, A1, A3));
	emit(&tm, ECALL);
	set_reg(&tm, A1, DATA);
	set_reg(&tm, A3, 99);
	run_program();
	cr_expect_eq(reg(&tm, A2), 1);
	cr_expect_eq(tm_peek64(&tm, DATA), 5);
}

Test(rv64_amo, sc_fails_after_intervening_store_or_other_address)
{
	tm.cursor = RAM_BASE;
	emit(&tm, LR_W(A0, A1));
	emit(&tm, SW(A1, A4, 0));		/* someone changes the word */
	emit(&tm, SC_W(A2, A1, A3));		/* fails */
	emit(&tm, LR_W(A0, A1));
	emit(&tm, SC_W(A5, A6, A3));		/* other address: fails */
	emit(&tm, SC_W(A7, A1, A3));		/* reservation gone: fails */
	emit(&tm, ECALL);
	set_reg(&tm, A1, DATA);
	set_reg(&tm, A6, DATA + 8);
	set_reg(&tm, A3, 123);
	set_reg(&tm, A4, 7);
	run_program();
	cr_expect_eq(reg(&tm, A2), 1);
	cr_expect_eq(reg(&tm, A5), 1);
	cr_expect_eq(reg(&tm, A7), 1);
	cr_expect_eq(tm_peek64(&tm, DATA), 7);
	cr_expect_eq(tm_peek64(&tm, DATA + 8), 0);
}

Test(rv64_amo, lr_w_sign_extends)
{
	tm_poke64(&tm, DATA, 0x80000000ull);
	tm.cursor = RAM_BASE;
	emit(&tm, LR_W(A0, A1));
	emit(&tm, ECALL);
	set_reg(&tm, A1, DATA);
	run_program();
	cr_expect_eq(reg(&tm, A0), 0xffffffff80000000ull);
}

static uint64_t amo_expect(unsigned f5, uint64_t mem, uint64_t src, bool w)
{
	int64_t sm = w ? (int32_t)mem : (int64_t)mem, ss = w ? (int32_t)src : (int64_t)src;
	uint64_t um = w ? (uint32_t)mem : mem, us = w ? (uint32_t)src : src;

	switch (f5) {
	case 0x00: return mem + src;
	case 0x01: return src;
	case 0x04: return mem ^ src;
	case 0x08: return mem | src;
	case 0x0c: return mem & src;
	case 0x10: return sm < ss ? mem : src;
	case 0x14: return sm > ss ? mem : src;
	case 0x18: return um < us ? mem : src;
	default: return um > us ? mem : src;
	}
}

Test(rv64_amo, amo_results_all_ops_both_widths)
{
	static const unsigned ops[] = { 0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c };
	static const uint64_t pairs[][2] = {
		{ 0xfffffffffffffff0ull, 5 }, { 0x7fffffff, 0x80000001 }, { 3, 0xffffffff00000000ull },
	};

	for (size_t o = 0; o < N_ELEMS(ops); o++) {
		for (size_t p = 0; p < N_ELEMS(pairs); p++) {
			for (int w = 0; w < 2; w++) {
				uint64_t mem = pairs[p][0], src = pairs[p][1], want_mem, want_rd;

				tm_poke64(&tm, DATA, mem);
				tm.cursor = RAM_BASE;
				emit(&tm, AMO(ops[o], w ? 2 : 3, A0, A1, A2));
				emit(&tm, ECALL);
				set_reg(&tm, A1, DATA);
				set_reg(&tm, A2, src);
				run_program();
				want_rd = w ? (uint64_t)(int64_t)(int32_t)mem : mem;
				want_mem = amo_expect(ops[o], mem, src, w);
				if (w)
					want_mem = (mem & ~0xffffffffull) | (uint32_t)want_mem;
				cr_expect_eq(reg(&tm, A0), want_rd, "op %#x pair %zu w %d", ops[o], p, w);
				cr_expect_eq(tm_peek64(&tm, DATA), want_mem, "op %#x pair %zu w %d",
					     ops[o], p, w);
			}
		}
	}
}

Test(rv64_amo, misaligned_amo_and_mmio_amo_fault)
{
	tm.cursor = RAM_BASE;
	emit(&tm, AMOADD_W(A0, A1, A2));
	emit(&tm, ECALL);
	set_reg(&tm, A1, DATA + 2);
	run_program();
	cr_expect_eq(tm_state(&tm).scause, 6);
	cr_expect_eq(tm_state(&tm).stval, DATA + 2);

	set_reg(&tm, A1, MMIO_BASE);
	run_program();
	cr_expect_eq(tm_state(&tm).scause, 7, "no AMOs on device memory");

	tm.cursor = RAM_BASE;
	emit(&tm, LR_D(A0, A1));
	set_reg(&tm, A1, DATA + 4);
	run_program();
	cr_expect_eq(tm_state(&tm).scause, 4, "LR misaligned is a load fault");
}

#define ITERATIONS 100000

struct hart_thread {
	struct accel_vcpu *cpu;
	int exit_reason;
};

static void *hart_main(void *arg)
{
	struct hart_thread *t = arg;
	struct vcpu_exit e;

	do
		tm.ops->vcpu_run(t->cpu, &e);
	while (e.reason == VCPU_EXIT_KICK);
	t->exit_reason = e.reason;
	return NULL;
}

/* Emits: loop ITERATIONS times { amoadd.w / lr-sc increment of *a1 }, then ecall. */
static void emit_counter_loop(bool use_lr_sc)
{
	tm.cursor = RAM_BASE;
	emit(&tm, LUI(T0, (ITERATIONS + 0x800) & 0xfffff000u));
	emit(&tm, ADDI(T0, T0, ((ITERATIONS & 0xfff) ^ 0x800) - 0x800));
	emit(&tm, ADDI(T1, ZERO, 1));
	if (use_lr_sc) {
		emit(&tm, LR_D(A0, A1));		/* retry: */
		emit(&tm, ADDI(A0, A0, 1));
		emit(&tm, SC_D(A2, A1, A0));
		emit(&tm, BNE(A2, ZERO, -12));
	} else {
		emit(&tm, AMOADD_W(ZERO, A1, T1));
	}
	emit(&tm, ADDI(T0, T0, -1));
	emit(&tm, BNE(T0, ZERO, use_lr_sc ? -20 : -8));
	emit(&tm, ECALL);
}

static void two_harts_count(bool use_lr_sc)
{
	struct hart_thread t[2] = { { .cpu = tm.cpu } };
	pthread_t th[2];

	cr_assert_eq(tm.ops->vcpu_create(&tm.map, 1, &t[1].cpu), 0);
	emit_counter_loop(use_lr_sc);
	for (int i = 0; i < 2; i++) {
		struct vcpu_state s;

		cr_assert_eq(tm.ops->vcpu_get_state(t[i].cpu, &s), 0);
		s.pc = RAM_BASE;
		s.x[A1] = DATA;
		cr_assert_eq(tm.ops->vcpu_set_state(t[i].cpu, &s), 0);
	}
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, hart_main, &t[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	tm.ops->vcpu_destroy(t[1].cpu);
	cr_expect_eq(t[0].exit_reason, VCPU_EXIT_SBI);
	cr_expect_eq(t[1].exit_reason, VCPU_EXIT_SBI);
	cr_expect_eq(tm_peek64(&tm, DATA), 2 * ITERATIONS);
}

Test(rv64_amo, two_threads_amoadd_exact_sum)
{
	two_harts_count(false);
}

Test(rv64_amo, two_threads_lr_sc_exact_sum)
{
	two_harts_count(true);
}
