/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Remote fences and code changes: vcpu_flush_tlb() is synchronous with a
 * running hart, two harts fencing each other do not deadlock, and rewritten
 * or remapped code runs after FENCE.I / SFENCE.VMA, however it was changed.
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "harness.h"

static struct tmachine tm;

#define PTE_V (1u << 0)
#define PTE_R (1u << 1)
#define PTE_W (1u << 2)
#define PTE_X (1u << 3)
#define PTE_A (1u << 6)
#define PTE_D (1u << 7)
#define PTE_RWX (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)

#define ROOT (RAM_BASE + 0x100000)
#define L1 (RAM_BASE + 0x101000)
#define L0 (RAM_BASE + 0x102000)
#define FRAME1 (RAM_BASE + 0x200000)
#define FRAME2 (RAM_BASE + 0x201000)
#define MAILBOX (RAM_BASE + 0x300000)
#define VA 0x40000000ull
#define POISON 0xdeadull

static uint64_t pte(uint64_t pa, unsigned flags)
{
	return (pa >> 12) << 10 | flags;
}

static void setup(void)
{
	tm_init(&tm);
	tm_trap_to_ecall(&tm);
	/* RAM identity-mapped by a gigapage; VA's page through L1/L0. */
	tm_poke64(&tm, ROOT + 8 * 2, pte(RAM_BASE, PTE_RWX));
	tm_poke64(&tm, ROOT + 8 * 1, pte(L1, PTE_V));
	tm_poke64(&tm, L1, pte(L0, PTE_V));
	tm_poke64(&tm, L0, pte(FRAME1, PTE_RWX));
}

static void teardown(void)
{
	tm_fini(&tm);
}

TestSuite(rv64_fence, .init = setup, .fini = teardown);

static uint64_t satp_sv39(void)
{
	return 8ull << 60 | ROOT >> 12;
}

static void emit_paging_on(void)
{
	emit(&tm, CSRRW(ZERO, CSR_SATP, S0));
	emit(&tm, SFENCE_VMA);
}

struct runner {
	const struct accel_ops *ops;
	struct accel_vcpu *self, *peer;
	unsigned rounds;
	unsigned done;
};

/* Each SBI exit fences the peer, which may be running or may be fencing us. */
static void *fence_peer_loop(void *arg)
{
	struct runner *r = arg;
	struct vcpu_exit e;

	while (r->done < r->rounds) {
		if (r->ops->vcpu_run(r->self, &e) < 0 || e.reason != VCPU_EXIT_SBI)
			break;
		r->ops->vcpu_flush_tlb(r->peer);
		r->done++;
	}
	return NULL;
}

Test(rv64_fence, harts_fencing_each_other_do_not_deadlock, .timeout = 60)
{
	struct accel_vcpu *other;
	struct runner a, b;
	pthread_t ta, tb;
	struct vcpu_state s;

	tm.cursor = RAM_BASE;
	emit_paging_on();
	emit(&tm, ADDI(T1, ZERO, 100));
	emit(&tm, ADDI(T1, T1, -1));
	emit(&tm, BNE(T1, ZERO, -4));
	emit(&tm, ECALL);
	emit(&tm, JAL(ZERO, -16));
	cr_assert_eq(tm.ops->vcpu_create(&tm.map, 1, &other), 0);
	s = tm_state(&tm);
	s.pc = RAM_BASE;
	s.x[S0] = satp_sv39();
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	cr_assert_eq(tm.ops->vcpu_set_state(other, &s), 0);
	a = (struct runner){ .ops = tm.ops, .self = tm.cpu, .peer = other, .rounds = 20000 };
	b = (struct runner){ .ops = tm.ops, .self = other, .peer = tm.cpu, .rounds = 20000 };
	cr_assert_eq(pthread_create(&ta, NULL, fence_peer_loop, &a), 0);
	cr_assert_eq(pthread_create(&tb, NULL, fence_peer_loop, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	cr_expect_eq(a.done, a.rounds);
	cr_expect_eq(b.done, b.rounds);
	tm.ops->vcpu_destroy(other);
}

struct spinner {
	const struct accel_ops *ops;
	struct accel_vcpu *cpu;
	struct vcpu_exit exit;
};

static void *run_until_kicked(void *arg)
{
	struct spinner *sp = arg;

	do
		sp->ops->vcpu_run(sp->cpu, &sp->exit);
	while (sp->exit.reason == VCPU_EXIT_SBI);
	return NULL;
}

static uint64_t mailbox(void)
{
	return __atomic_load_n((uint64_t *)tm_host(&tm, MAILBOX), __ATOMIC_ACQUIRE);
}

static void wait_mailbox(uint64_t want)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (mailbox() != want) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		cr_assert(now.tv_sec - start.tv_sec < 10, "mailbox stuck at %#lx",
			  (unsigned long)mailbox());
		sched_yield();
	}
}

/*
 * A hart loads through VA in a loop. The test remaps VA and flushes; once
 * the flush returns it poisons the old frame: a hart still using the stale
 * translation would read the poison.
 */
Test(rv64_fence, remote_flush_is_synchronous, .timeout = 60)
{
	uint64_t *old_frame = tm_host(&tm, FRAME1);
	struct spinner sp = { .ops = tm.ops, .cpu = tm.cpu };
	pthread_t t;

	for (unsigned round = 0; round < 200; round++) {
		uint64_t v_old = 0x1000 + 2 * round, v_new = v_old + 1;
		uint64_t frame_old = round % 2 ? FRAME2 : FRAME1, frame_new = round % 2 ? FRAME1 : FRAME2;
		struct vcpu_state s;

		tm_poke64(&tm, L0, pte(frame_old, PTE_RWX));
		tm_poke64(&tm, frame_old, v_old);
		tm_poke64(&tm, frame_new, v_new);
		tm.cursor = RAM_BASE;
		emit_paging_on();
		emit(&tm, LD(T0, S1, 0));
		emit(&tm, SD(S2, T0, 0));
		emit(&tm, BNE(T0, S3, 8));
		emit(&tm, SD(S2, T0, 8));	/* sticky: the poison was seen */
		emit(&tm, JAL(ZERO, -16));
		s = tm_state(&tm);
		s.pc = RAM_BASE;
		s.x[S0] = satp_sv39();
		s.x[S1] = VA;
		s.x[S2] = MAILBOX;
		s.x[S3] = POISON;
		cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
		cr_assert_eq(pthread_create(&t, NULL, run_until_kicked, &sp), 0);
		wait_mailbox(v_old);
		tm_poke64(&tm, L0, pte(frame_new, PTE_RWX));
		tm.ops->vcpu_flush_tlb(tm.cpu);
		old_frame = tm_host(&tm, frame_old);
		__atomic_store_n(old_frame, POISON, __ATOMIC_RELEASE);
		wait_mailbox(v_new);
		tm.ops->vcpu_kick(tm.cpu);
		pthread_join(t, NULL);
		cr_assert_eq(sp.exit.reason, VCPU_EXIT_KICK);
		cr_assert_neq(tm_peek64(&tm, MAILBOX + 8), POISON, "round %u: stale translation used",
			      round);
	}
}

Test(rv64_fence, flush_of_a_stopped_hart_applies_on_next_run)
{
	tm_poke64(&tm, FRAME1, 11);
	tm_poke64(&tm, FRAME2, 22);
	tm.cursor = RAM_BASE;
	emit_paging_on();
	emit(&tm, LD(A0, S1, 0));
	emit(&tm, ECALL);
	emit(&tm, LD(A0, S1, 0));
	emit(&tm, ECALL);
	set_reg(&tm, S0, satp_sv39());
	set_reg(&tm, S1, VA);
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 11);
	tm_poke64(&tm, L0, pte(FRAME2, PTE_RWX));
	tm.ops->vcpu_flush_tlb(tm.cpu);	/* not running: must not wait */
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 22);
}

/* Executes `addi a0, a0, 1`, rewrites it to `addi a0, a0, 100`, FENCE.I, runs it again. */
Test(rv64_fence, rewritten_instruction_runs_after_fence_i)
{
	uint64_t target = RAM_BASE + 0x40;
	uint32_t new_insn = ADDI(A0, A0, 100);

	tm.cursor = RAM_BASE;
	emit(&tm, JAL(RA, 0x40));		/* 0x00: call target */
	emit(&tm, SW(S1, S2, 0));		/* 0x04: overwrite it */
	emit(&tm, FENCE_I);			/* 0x08 */
	emit(&tm, JAL(RA, 0x40 - 0x0c));	/* 0x0c: call it again */
	emit(&tm, ECALL);			/* 0x10 */
	tm.cursor = target;
	emit(&tm, ADDI(A0, A0, 1));
	emit(&tm, JALR(ZERO, RA, 0));
	set_reg(&tm, S1, target);
	set_reg(&tm, S2, new_insn);
	set_reg(&tm, A0, 0);
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 101);
	cr_expect_eq(tm_peek64(&tm, target) & 0xffffffff, new_insn);
}

/* Same through a compressed instruction overwritten by a 32-bit one's halves. */
Test(rv64_fence, loop_body_rewritten_in_place)
{
	tm.cursor = RAM_BASE;
	/* a0 += 1 four times, then patch the add to += 16 and go round four more. */
	emit(&tm, ADDI(T1, ZERO, 4));		/* 0x00 */
	emit(&tm, ADDI(A0, A0, 1));		/* 0x04: patched */
	emit(&tm, ADDI(T1, T1, -1));		/* 0x08 */
	emit(&tm, BNE(T1, ZERO, -8));		/* 0x0c */
	emit(&tm, BNE(T2, ZERO, 20));		/* 0x10: second pass done? */
	emit(&tm, SW(S1, S2, 0));		/* 0x14 */
	emit(&tm, FENCE_I);			/* 0x18 */
	emit(&tm, ADDI(T2, ZERO, 1));		/* 0x1c */
	emit(&tm, JAL(ZERO, -0x20));		/* 0x20: back to 0x00 */
	emit(&tm, ECALL);			/* 0x24 */
	set_reg(&tm, S1, RAM_BASE + 4);
	set_reg(&tm, S2, ADDI(A0, A0, 16));
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 4 + 64);
}

/*
 * The hart's own stores into a code page are seen without FENCE.I, also
 * after a block stamped itself: a block whose page stopped being watched
 * (a store of data there) and whose bytes still match must watch it again,
 * or the next store into its code would go unseen. Each call adds the
 * immediate of the target's first instruction to a0: 1, 1 (FENCE.I
 * alone), 100 (rewritten), 100 (after a store beside it), 1000.
 */
Test(rv64_fence, own_stores_seen_after_blocks_stamp_themselves)
{
	uint64_t target = RAM_BASE + 0x2000, data = RAM_BASE + 0x2800;

	tm.cursor = target;
	emit(&tm, ADDI(A0, A0, 1));
	emit(&tm, JALR(ZERO, RA, 0));
	tm.cursor = RAM_BASE;
	emit(&tm, JAL(RA, 0x2000));		/* 0x00 */
	emit(&tm, FENCE_I);			/* 0x04: the epoch moves, nothing written */
	emit(&tm, JAL(RA, 0x2000 - 0x08));	/* 0x08 */
	emit(&tm, SW(S1, S2, 0));		/* 0x0c: += 100 from now, no FENCE.I */
	emit(&tm, JAL(RA, 0x2000 - 0x10));	/* 0x10 */
	emit(&tm, SW(S3, ZERO, 0));		/* 0x14: data on the target's page */
	emit(&tm, JAL(RA, 0x2000 - 0x18));	/* 0x18 */
	emit(&tm, SW(S1, S4, 0));		/* 0x1c: += 1000 from now, no FENCE.I */
	emit(&tm, JAL(RA, 0x2000 - 0x20));	/* 0x20 */
	emit(&tm, ECALL);			/* 0x24 */
	set_reg(&tm, S1, target);
	set_reg(&tm, S2, ADDI(A0, A0, 100));
	set_reg(&tm, S3, data);
	set_reg(&tm, S4, ADDI(A0, A0, 1000));
	set_reg(&tm, A0, 0);
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 1 + 1 + 100 + 100 + 1000);
}

/*
 * The same: a block's VA remapped to another frame holding the same code
 * passes its full check there, and must watch that frame before it runs:
 * a store into the new frame's code is then seen without FENCE.I. a0 gets
 * 1 twice (FRAME1), 1 twice (FRAME2, same bytes), then 1000 (FRAME2
 * rewritten).
 */
Test(rv64_fence, own_stores_seen_after_a_block_moved_frames)
{
	for (uint64_t f = FRAME1; f <= FRAME2; f += FRAME2 - FRAME1) {
		tm.cursor = f;
		emit(&tm, ADDI(A0, A0, 1));
		emit(&tm, JALR(ZERO, RA, 0));
	}
	tm.cursor = RAM_BASE;
	emit_paging_on();
	emit(&tm, JALR(RA, S1, 0));		/* call VA, on FRAME1 */
	emit(&tm, JALR(RA, S1, 0));		/* again, translated there now */
	emit(&tm, SD(S4, S5, 0));		/* L0[0] = FRAME2's PTE */
	emit(&tm, SFENCE_VMA);
	emit(&tm, JALR(RA, S1, 0));		/* VA, on FRAME2 */
	emit(&tm, JALR(RA, S1, 0));		/* again, its block checked there now */
	emit(&tm, SW(S2, S3, 0));		/* FRAME2: += 1000, no FENCE.I */
	emit(&tm, JALR(RA, S1, 0));
	emit(&tm, ECALL);
	set_reg(&tm, S0, satp_sv39());
	set_reg(&tm, S1, VA);
	set_reg(&tm, S2, FRAME2);
	set_reg(&tm, S3, ADDI(A0, A0, 1000));
	set_reg(&tm, S4, L0);
	set_reg(&tm, S5, pte(FRAME2, PTE_RWX));
	set_reg(&tm, A0, 0);
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 1 + 1 + 1 + 1 + 1000);
}

/*
 * A block may start with an instruction the translator leaves to the
 * interpreter (a CSR access): it runs every time it is reached, and once
 * rewritten into one the translator knows, then FENCE.I, the new one runs.
 */
Test(rv64_fence, rewritten_interpreted_instruction_runs_after_fence_i)
{
	uint64_t target = RAM_BASE + 0x40;

	tm.cursor = RAM_BASE;
	emit(&tm, CSRRW(ZERO, CSR_SSCRATCH, T0));	/* 0x00: sscratch = 5 */
	emit(&tm, JAL(RA, 0x40 - 0x04));	/* 0x04: call target */
	emit(&tm, JAL(RA, 0x40 - 0x08));	/* 0x08: twice */
	emit(&tm, SW(S1, S2, 0));		/* 0x0c: overwrite its CSR access */
	emit(&tm, FENCE_I);			/* 0x10 */
	emit(&tm, JAL(RA, 0x40 - 0x14));	/* 0x14: call it again */
	emit(&tm, ECALL);			/* 0x18 */
	tm.cursor = target;
	emit(&tm, CSRRS(A1, CSR_SSCRATCH, ZERO));
	emit(&tm, ADD(A0, A0, A1));
	emit(&tm, JALR(ZERO, RA, 0));
	set_reg(&tm, S1, target);
	set_reg(&tm, S2, ADDI(A1, ZERO, 40));
	set_reg(&tm, A0, 0);
	set_reg(&tm, T0, 5);
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 2 * 5 + 40);
}

/* Hart 1 rewrites code hart 0 has executed; hart 0 runs FENCE.I and sees the new code. */
Test(rv64_fence, code_written_by_another_hart)
{
	uint64_t target = RAM_BASE + 0x800;
	struct accel_vcpu *other;
	struct vcpu_exit e;
	struct vcpu_state s;

	tm.cursor = target;
	emit(&tm, ADDI(A0, ZERO, 1));
	emit(&tm, JALR(ZERO, RA, 0));
	tm.cursor = RAM_BASE;
	emit(&tm, JAL(RA, 0x800));		/* 0x00 */
	emit(&tm, ECALL);			/* 0x04 */
	emit(&tm, FENCE_I);			/* 0x08 */
	emit(&tm, JAL(RA, 0x800 - 0x0c));	/* 0x0c */
	emit(&tm, ECALL);			/* 0x10 */
	tm.cursor = RAM_BASE + 0x400;		/* hart 1's program */
	emit(&tm, SW(S1, S2, 0));
	emit(&tm, ECALL);
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 1);

	cr_assert_eq(tm.ops->vcpu_create(&tm.map, 1, &other), 0);
	s = tm_state(&tm);
	s.pc = RAM_BASE + 0x400;
	s.x[S1] = target;
	s.x[S2] = ADDI(A0, ZERO, 2);
	cr_assert_eq(tm.ops->vcpu_set_state(other, &s), 0);
	cr_assert_eq(tm.ops->vcpu_run(other, &e), 0);
	cr_assert_eq(e.reason, VCPU_EXIT_SBI);
	tm.ops->vcpu_destroy(other);

	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 2);
}

/* The same VA, remapped to a frame holding other code, runs the new code after SFENCE.VMA. */
Test(rv64_fence, remapped_code_page_after_sfence)
{
	tm.cursor = FRAME1;
	emit(&tm, ADDI(A0, ZERO, 1));
	emit(&tm, JALR(ZERO, RA, 0));
	tm.cursor = FRAME2;
	emit(&tm, ADDI(A0, ZERO, 2));
	emit(&tm, JALR(ZERO, RA, 0));
	tm.cursor = RAM_BASE;
	emit_paging_on();
	emit(&tm, JALR(RA, S1, 0));		/* call VA */
	emit(&tm, ADDI(S3, A0, 0));
	emit(&tm, SD(S4, S5, 0));		/* L0[0] = FRAME2's PTE */
	emit(&tm, SFENCE_VMA);
	emit(&tm, JALR(RA, S1, 0));
	emit(&tm, ECALL);
	set_reg(&tm, S0, satp_sv39());
	set_reg(&tm, S1, VA);
	set_reg(&tm, S4, L0);
	set_reg(&tm, S5, pte(FRAME2, PTE_RWX));
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, S3), 1);
	cr_expect_eq(reg(&tm, A0), 2);
}
