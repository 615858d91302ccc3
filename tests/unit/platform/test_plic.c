/* SPDX-License-Identifier: Apache-2.0 */
/* The PLIC through its registers, with a fake hart side that records each context's line. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "platform/plic.h"

#define N_SOURCES 64u
#define N_CONTEXTS 3u

struct lines {
	atomic_bool level[N_CONTEXTS];
	atomic_uint changes[N_CONTEXTS];
	atomic_uint bad_context;
};

static struct lines lines;
static struct plic *plic;

static void record(void *opaque, unsigned ctx, bool level)
{
	struct lines *l = opaque;

	/* Device threads call this too, where a Criterion assert cannot run. */
	if (ctx >= N_CONTEXTS) {
		atomic_fetch_add(&l->bad_context, 1);
		return;
	}
	atomic_store(&l->level[ctx], level);
	atomic_fetch_add(&l->changes[ctx], 1);
}

static void setup(void)
{
	memset(&lines, 0, sizeof(lines));
	cr_assert_eq(plic_create(N_SOURCES, N_CONTEXTS, record, &lines, &plic), 0);
}

static void teardown(void)
{
	cr_assert_eq(atomic_load(&lines.bad_context), 0);
	plic_destroy(plic);
	plic = NULL;
}

static uint32_t rd(uint64_t off)
{
	uint64_t v = ~0ull;

	cr_assert_eq(plic_read(plic, off, 4, &v), 0, "read at 0x%lx", (unsigned long)off);
	cr_assert_leq(v, UINT32_MAX);
	return (uint32_t)v;
}

static void wr(uint64_t off, uint32_t val)
{
	cr_assert_eq(plic_write(plic, off, 4, val), 0, "write at 0x%lx", (unsigned long)off);
}

static uint64_t prio_off(unsigned src) { return PLIC_PRIORITY_BASE + 4 * src; }
static uint64_t enable_off(unsigned ctx, unsigned src)
{
	return PLIC_ENABLE_BASE + PLIC_ENABLE_STRIDE * ctx + 4 * (src / 32);
}
static uint64_t threshold_off(unsigned ctx)
{
	return PLIC_CONTEXT_BASE + PLIC_CONTEXT_STRIDE * ctx + PLIC_CONTEXT_THRESHOLD;
}
static uint64_t claim_off(unsigned ctx)
{
	return PLIC_CONTEXT_BASE + PLIC_CONTEXT_STRIDE * ctx + PLIC_CONTEXT_CLAIM;
}

static void enable(unsigned ctx, unsigned src)
{
	wr(enable_off(ctx, src), rd(enable_off(ctx, src)) | 1u << (src % 32));
}

static bool pending(unsigned src)
{
	return rd(PLIC_PENDING_BASE + 4 * (src / 32)) & (1u << (src % 32));
}

static bool eip(unsigned ctx)
{
	return atomic_load(&lines.level[ctx]);
}

TestSuite(plic, .init = setup, .fini = teardown);

Test(plic, create_checks_its_sizes)
{
	struct plic *p = NULL;

	cr_assert_eq(plic_create(1, 1, NULL, NULL, &p), -EINVAL);
	cr_assert_eq(plic_create(PLIC_MAX_SOURCES + 1, 1, NULL, NULL, &p), -EINVAL);
	cr_assert_eq(plic_create(32, 0, NULL, NULL, &p), -EINVAL);
	cr_assert_eq(plic_create(32, PLIC_MAX_CONTEXTS + 1, NULL, NULL, &p), -EINVAL);
	cr_assert_null(p);
}

Test(plic, reset_state_is_quiet)
{
	for (unsigned s = 0; s < N_SOURCES; s++)
		cr_assert_eq(rd(prio_off(s)), 0);
	for (unsigned c = 0; c < N_CONTEXTS; c++) {
		cr_assert_eq(rd(threshold_off(c)), 0);
		cr_assert_eq(rd(claim_off(c)), 0);
		cr_assert_eq(atomic_load(&lines.changes[c]), 0);
	}
}

Test(plic, priority_is_three_bit_warl_and_source_zero_is_absent)
{
	wr(prio_off(5), 0xffffffff);
	cr_assert_eq(rd(prio_off(5)), PLIC_MAX_PRIORITY);
	wr(prio_off(5), 3);
	cr_assert_eq(rd(prio_off(5)), 3);
	wr(prio_off(0), 5);
	cr_assert_eq(rd(prio_off(0)), 0);
	wr(prio_off(N_SOURCES), 5);
	cr_assert_eq(rd(prio_off(N_SOURCES)), 0);
}

Test(plic, priority_zero_never_interrupts)
{
	enable(0, 7);
	plic_set_level(plic, 7, true);
	cr_assert(pending(7));
	cr_assert_not(eip(0));
	cr_assert_eq(rd(claim_off(0)), 0);
	cr_assert(pending(7), "a failed claim takes nothing");
}

Test(plic, enables_are_per_context)
{
	wr(prio_off(9), 1);
	enable(1, 9);
	plic_set_level(plic, 9, true);
	cr_assert_not(eip(0));
	cr_assert(eip(1));
	cr_assert_not(eip(2));
	cr_assert_eq(rd(claim_off(0)), 0, "context 0 has source 9 disabled");
	cr_assert_eq(rd(claim_off(1)), 9);
	cr_assert_not(eip(1));
}

Test(plic, threshold_masks_priorities_at_or_below_it)
{
	wr(prio_off(40), 2);
	enable(0, 40);
	wr(threshold_off(0), 2);
	plic_set_level(plic, 40, true);
	cr_assert_not(eip(0));
	wr(threshold_off(0), 1);
	cr_assert(eip(0));
	wr(threshold_off(0), 0xff);
	cr_assert_eq(rd(threshold_off(0)), PLIC_MAX_PRIORITY);
	cr_assert_not(eip(0));
	/* The claim itself ignores the threshold. */
	cr_assert_eq(rd(claim_off(0)), 40);
}

Test(plic, claim_takes_highest_priority_then_lowest_id)
{
	unsigned srcs[] = { 3, 4, 33, 50 };
	uint32_t prios[] = { 2, 5, 5, 1 };

	for (unsigned i = 0; i < 4; i++) {
		wr(prio_off(srcs[i]), prios[i]);
		enable(0, srcs[i]);
		plic_set_level(plic, srcs[i], true);
	}
	cr_assert_eq(rd(claim_off(0)), 4);
	cr_assert_not(pending(4));
	cr_assert_eq(rd(claim_off(0)), 33);
	cr_assert_eq(rd(claim_off(0)), 3);
	cr_assert(eip(0));
	cr_assert_eq(rd(claim_off(0)), 50);
	cr_assert_not(eip(0), "everything is claimed");
	cr_assert_eq(rd(claim_off(0)), 0);
}

Test(plic, level_held_high_comes_back_after_completion)
{
	wr(prio_off(10), 1);
	enable(0, 10);
	plic_set_level(plic, 10, true);
	cr_assert_eq(rd(claim_off(0)), 10);
	/* The gateway holds the source back while it is being served. */
	plic_set_level(plic, 10, false);
	plic_set_level(plic, 10, true);
	cr_assert_not(pending(10));
	cr_assert_not(eip(0));
	wr(claim_off(0), 10);
	cr_assert(pending(10));
	cr_assert(eip(0));
	cr_assert_eq(rd(claim_off(0)), 10);
	plic_set_level(plic, 10, false);
	wr(claim_off(0), 10);
	cr_assert_not(pending(10), "the line was low at completion");
	cr_assert_not(eip(0));
}

Test(plic, line_dropped_before_claim_withdraws_the_request)
{
	wr(prio_off(12), 1);
	enable(0, 12);
	plic_set_level(plic, 12, true);
	cr_assert(eip(0));
	plic_set_level(plic, 12, false);
	cr_assert_not(pending(12));
	cr_assert_not(eip(0));
	cr_assert_eq(rd(claim_off(0)), 0);
}

Test(plic, completion_of_a_disabled_source_is_ignored)
{
	wr(prio_off(20), 1);
	enable(0, 20);
	plic_set_level(plic, 20, true);
	cr_assert_eq(rd(claim_off(0)), 20);
	wr(claim_off(1), 20);	/* context 1 does not have it enabled */
	cr_assert_not(pending(20), "still claimed");
	wr(claim_off(0), 0);
	wr(claim_off(0), 9999);
	cr_assert_not(pending(20));
	wr(claim_off(0), 20);
	cr_assert(pending(20));
}

Test(plic, notify_fires_only_on_changes)
{
	wr(prio_off(2), 1);
	wr(prio_off(3), 1);
	enable(2, 2);
	enable(2, 3);
	plic_set_level(plic, 2, true);
	plic_set_level(plic, 3, true);
	plic_set_level(plic, 2, true);
	cr_assert_eq(atomic_load(&lines.changes[2]), 1);
	cr_assert_eq(atomic_load(&lines.changes[0]), 0);
}

Test(plic, hostile_sizes_and_offsets)
{
	uint64_t v = 0x5a;

	for (unsigned size = 1; size <= 8; size *= 2) {
		if (size == 4)
			continue;
		cr_assert_eq(plic_read(plic, claim_off(0), size, &v), -EFAULT);
		cr_assert_eq(plic_write(plic, prio_off(1), size, 1), -EFAULT);
	}
	cr_assert_eq(v, 0x5a, "a refused read writes nothing");
	cr_assert_eq(plic_read(plic, prio_off(1) + 2, 4, &v), -EFAULT);
	cr_assert_eq(plic_read(plic, PLIC_WINDOW_SIZE, 4, &v), -EFAULT);
	cr_assert_eq(plic_write(plic, UINT64_MAX - 3, 4, 1), -EFAULT);
	cr_assert_eq(rd(PLIC_WINDOW_SIZE - 4), 0);
	/* Gaps, contexts that do not exist and read-only words. */
	cr_assert_eq(rd(PLIC_PENDING_BASE + 0x7c), 0);
	cr_assert_eq(rd(PLIC_ENABLE_BASE - 4), 0);
	wr(enable_off(N_CONTEXTS, 1), ~0u);
	cr_assert_eq(rd(enable_off(N_CONTEXTS, 1)), 0);
	wr(threshold_off(N_CONTEXTS), 3);
	cr_assert_eq(rd(threshold_off(N_CONTEXTS)), 0);
	cr_assert_eq(rd(claim_off(PLIC_MAX_CONTEXTS)), 0);
	wr(PLIC_CONTEXT_BASE + 8, 1);
	cr_assert_eq(rd(PLIC_CONTEXT_BASE + 8), 0);
	wr(PLIC_PENDING_BASE, ~0u);
	cr_assert_not(pending(1), "pending bits are read-only");
	wr(enable_off(0, 0), ~0u);
	cr_assert_eq(rd(enable_off(0, 0)), ~1u, "source 0 cannot be enabled");
	plic_set_level(plic, 0, true);
	plic_set_level(plic, N_SOURCES, true);
	plic_set_level(plic, UINT32_MAX, true);
	cr_assert_eq(rd(PLIC_PENDING_BASE), 0);
}

Test(plic, fewer_sources_mask_the_enable_word)
{
	struct plic *small;
	uint64_t v;

	cr_assert_eq(plic_create(32, 1, NULL, NULL, &small), 0);
	cr_assert_eq(plic_write(small, PLIC_ENABLE_BASE, 4, ~0u), 0);
	cr_assert_eq(plic_read(small, PLIC_ENABLE_BASE, 4, &v), 0);
	cr_assert_eq(v, ~1u);
	cr_assert_eq(plic_write(small, PLIC_ENABLE_BASE + 4, 4, ~0u), 0);
	cr_assert_eq(plic_read(small, PLIC_ENABLE_BASE + 4, 4, &v), 0);
	cr_assert_eq(v, 0, "sources 32.. do not exist");
	plic_destroy(small);
}

/* A busy state: claimed, pending, a held line, thresholds and enables everywhere. */
static void build_state(void)
{
	for (unsigned s = 1; s < N_SOURCES; s++)
		wr(prio_off(s), s % 8);
	wr(enable_off(0, 0), 0xf0f0f0f0);
	wr(enable_off(0, 32), 0x0000ffff);
	wr(enable_off(2, 40), 0xdeadbeee);
	wr(threshold_off(1), 4);
	wr(threshold_off(2), 2);
	plic_set_level(plic, 5, true);
	plic_set_level(plic, 6, true);
	plic_set_level(plic, 37, true);
	/* Sources 4-7 are enabled on context 0; 6 has the higher priority. */
	cr_assert_eq(rd(claim_off(0)), 6);
}

Test(plic, save_restore_round_trip)
{
	Cloister__PlicState *s = NULL;
	struct lines other = { 0 };
	struct plic *q;
	uint64_t a, b;

	build_state();
	cr_assert_eq(plic_save(plic, &s), 0);
	cr_assert_eq(s->num_sources, N_SOURCES);
	cr_assert_eq(s->n_enable, N_CONTEXTS * 2);
	cr_assert_eq(plic_create(N_SOURCES, N_CONTEXTS, record, &other, &q), 0);
	cr_assert_eq(plic_restore(q, s), 0);
	for (unsigned c = 0; c < N_CONTEXTS; c++) {
		cr_assert_eq(atomic_load(&other.level[c]), eip(c), "context %u line", c);
		cr_assert_geq(atomic_load(&other.changes[c]), 1, "restore re-drives context %u", c);
	}
	for (uint64_t off = 0; off < PLIC_CONTEXT_BASE + PLIC_CONTEXT_STRIDE * N_CONTEXTS; off += 4) {
		if (off >= PLIC_CONTEXT_BASE && off % PLIC_CONTEXT_STRIDE == PLIC_CONTEXT_CLAIM)
			continue;	/* reading claims */
		cr_assert_eq(plic_read(plic, off, 4, &a), 0);
		cr_assert_eq(plic_read(q, off, 4, &b), 0);
		cr_assert_eq(a, b, "register 0x%lx differs", (unsigned long)off);
	}
	/* The claim survives: completing it on the copy re-pends the held line. */
	cr_assert_eq(plic_read(q, PLIC_PENDING_BASE, 4, &b), 0);
	cr_assert_eq(b & (1u << 6), 0);
	cr_assert_eq(plic_write(q, claim_off(0), 4, 6), 0);
	cr_assert_eq(plic_read(q, PLIC_PENDING_BASE, 4, &b), 0);
	cr_assert(b & (1u << 6));
	plic_state_free(s);
	plic_destroy(q);
}

Test(plic, restore_refuses_malformed_state)
{
	Cloister__PlicState *s = NULL;
	uint32_t saved;

	build_state();
	cr_assert_eq(plic_save(plic, &s), 0);
	s->num_sources = 32;
	cr_assert_eq(plic_restore(plic, s), -EINVAL);
	s->num_sources = N_SOURCES;
	s->num_contexts = N_CONTEXTS + 1;
	cr_assert_eq(plic_restore(plic, s), -EINVAL);
	s->num_contexts = N_CONTEXTS;
	s->priority[3] = 8;
	cr_assert_eq(plic_restore(plic, s), -EINVAL);
	s->priority[3] = 3;
	s->priority[0] = 1;
	cr_assert_eq(plic_restore(plic, s), -EINVAL);
	s->priority[0] = 0;
	s->pending[0] |= 1;
	cr_assert_eq(plic_restore(plic, s), -EINVAL);
	s->pending[0] &= ~1u;
	s->n_enable--;
	cr_assert_eq(plic_restore(plic, s), -EINVAL);
	s->n_enable++;
	s->n_level = 1;
	cr_assert_eq(plic_restore(plic, s), -EINVAL);
	s->n_level = 2;
	s->threshold[1] = 99;
	cr_assert_eq(plic_restore(plic, s), -EINVAL);
	s->threshold[1] = 7;
	/* A refused state left the registers alone. */
	cr_assert_eq(rd(threshold_off(1)), 4);
	saved = s->threshold[1];
	cr_assert_eq(plic_restore(plic, s), 0);
	cr_assert_eq(rd(threshold_off(1)), saved);
	plic_state_free(s);
}

/* Device threads move their lines while a hart claims and completes. */
struct storm {
	unsigned source;
};

static void *storm_thread(void *arg)
{
	struct storm *st = arg;

	for (unsigned i = 0; i < 20000; i++)
		plic_set_level(plic, st->source, i % 2 == 0);
	plic_set_level(plic, st->source, false);
	return NULL;
}

Test(plic, concurrent_lines_and_claims_settle)
{
	pthread_t t[4];
	struct storm st[4];

	for (unsigned i = 0; i < 4; i++) {
		wr(prio_off(1 + i), 1 + i);
		enable(0, 1 + i);
		st[i] = (struct storm){ .source = 1 + i };
		cr_assert_eq(pthread_create(&t[i], NULL, storm_thread, &st[i]), 0);
	}
	for (unsigned i = 0; i < 20000; i++) {
		uint32_t s = rd(claim_off(0));

		cr_assert_leq(s, 4);
		if (s)
			wr(claim_off(0), s);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* Every line ended low and every claim was completed, so nothing may be pending. */
	cr_assert_eq(rd(PLIC_PENDING_BASE), 0);
	cr_assert_not(eip(0));
	cr_assert_eq(rd(claim_off(0)), 0);
}

Test(plic, a_pulse_is_pending_once_and_not_again_on_completion)
{
	enable(0, 12);
	wr(prio_off(12), 1);
	plic_pulse(plic, 12);
	cr_assert(atomic_load(&lines.level[0]));
	cr_assert_eq(rd(claim_off(0)), 12, "claimed");
	cr_assert_not(atomic_load(&lines.level[0]));
	wr(claim_off(0), 12);
	cr_assert_not(atomic_load(&lines.level[0]), "an edge is not pending again");
	cr_assert_eq(rd(PLIC_PENDING_BASE), 0);
}
