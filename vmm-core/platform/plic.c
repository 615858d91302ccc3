/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PLIC's gateways and core behind one lock. A level-triggered gateway
 * passes its line straight into the pending bit until the source is
 * claimed; then it holds back until the completion, when the line (still
 * high or not) decides the pending bit again. A line that drops before the
 * claim takes its request back, so a driver that already served its device
 * does not see a stray interrupt.
 */
#include "plic.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PLIC_WORDS (PLIC_MAX_SOURCES / 32)

struct plic {
	pthread_mutex_t lock;
	unsigned n_sources, n_contexts, n_words;
	plic_notify_fn notify;
	void *opaque;
	uint32_t priority[PLIC_MAX_SOURCES];
	uint32_t pending[PLIC_WORDS];
	uint32_t claimed[PLIC_WORDS];
	uint32_t level[PLIC_WORDS];
	uint32_t enable[PLIC_MAX_CONTEXTS][PLIC_WORDS];
	uint32_t threshold[PLIC_MAX_CONTEXTS];
	bool eip[PLIC_MAX_CONTEXTS];	/* what notify was last told */
};

static bool bit_test(const uint32_t *map, unsigned bit)
{
	return map[bit / 32] & (1u << (bit % 32));
}

static void bit_put(uint32_t *map, unsigned bit, bool on)
{
	if (on)
		map[bit / 32] |= 1u << (bit % 32);
	else
		map[bit / 32] &= ~(1u << (bit % 32));
}

/* The bits of bitmap word w that name existing sources. */
static uint32_t word_valid_mask(const struct plic *p, unsigned w)
{
	unsigned first = w * 32, end = first + 32;
	uint32_t mask = ~0u;

	if (end > p->n_sources)
		mask = p->n_sources > first ? (1u << (p->n_sources - first)) - 1 : 0;
	if (w == 0)
		mask &= ~1u;	/* source 0 does not exist */
	return mask;
}

/* The pending source ctx would get from a claim, above floor; ties go to the lowest ID; 0 if none. */
static unsigned plic_best(const struct plic *p, unsigned ctx, uint32_t floor)
{
	unsigned best = 0;
	uint32_t best_prio = floor;

	for (unsigned s = 1; s < p->n_sources; s++) {
		if (!bit_test(p->pending, s) || !bit_test(p->enable[ctx], s))
			continue;
		if (p->priority[s] > best_prio) {
			best = s;
			best_prio = p->priority[s];
		}
	}
	return best;
}

/* With the lock held: tells notify about every context whose line changed (every one if force). */
static void plic_update(struct plic *p, bool force)
{
	for (unsigned c = 0; c < p->n_contexts; c++) {
		bool eip = plic_best(p, c, p->threshold[c]) != 0;

		if (eip == p->eip[c] && !force)
			continue;
		p->eip[c] = eip;
		if (p->notify)
			p->notify(p->opaque, c, eip);
	}
}

int plic_create(unsigned n_sources, unsigned n_contexts, plic_notify_fn notify, void *opaque,
		struct plic **ret_plic)
{
	struct plic *p;

	if (n_sources < 2 || n_sources > PLIC_MAX_SOURCES ||
	    n_contexts == 0 || n_contexts > PLIC_MAX_CONTEXTS)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->n_sources = n_sources;
	p->n_contexts = n_contexts;
	p->n_words = (n_sources + 31) / 32;
	p->notify = notify;
	p->opaque = opaque;
	*ret_plic = p;
	return 0;
}

void plic_destroy(struct plic *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void plic_set_level(struct plic *p, uint32_t source, bool level)
{
	if (source == 0 || source >= p->n_sources)
		return;
	pthread_mutex_lock(&p->lock);
	bit_put(p->level, source, level);
	if (!bit_test(p->claimed, source))
		bit_put(p->pending, source, level);
	plic_update(p, false);
	pthread_mutex_unlock(&p->lock);
}

void plic_pulse(struct plic *p, uint32_t source)
{
	if (source == 0 || source >= p->n_sources)
		return;
	pthread_mutex_lock(&p->lock);
	if (!bit_test(p->claimed, source))
		bit_put(p->pending, source, true);
	plic_update(p, false);
	pthread_mutex_unlock(&p->lock);
}

/* The claim ignores the threshold, as the specification says; priority 0 still means never. */
static uint32_t plic_claim(struct plic *p, unsigned ctx)
{
	unsigned s = plic_best(p, ctx, 0);

	if (s) {
		bit_put(p->pending, s, false);
		bit_put(p->claimed, s, true);
		plic_update(p, false);
	}
	return s;
}

/* A completion for a source the context does not have enabled is ignored, per the specification. */
static void plic_complete(struct plic *p, unsigned ctx, uint64_t source)
{
	if (source == 0 || source >= p->n_sources || !bit_test(p->enable[ctx], (unsigned)source) ||
	    !bit_test(p->claimed, (unsigned)source))
		return;
	bit_put(p->claimed, (unsigned)source, false);
	bit_put(p->pending, (unsigned)source, bit_test(p->level, (unsigned)source));
	plic_update(p, false);
}

/* Reads with the lock held; offsets that hold nothing read as zero. */
static uint32_t plic_read_locked(struct plic *p, uint64_t off)
{
	uint64_t ctx, word;

	if (off < PLIC_PENDING_BASE)
		return off / 4 < p->n_sources ? p->priority[off / 4] : 0;
	if (off < PLIC_ENABLE_BASE) {
		word = (off - PLIC_PENDING_BASE) / 4;
		return word < p->n_words ? p->pending[word] : 0;
	}
	if (off < PLIC_CONTEXT_BASE) {
		ctx = (off - PLIC_ENABLE_BASE) / PLIC_ENABLE_STRIDE;
		word = (off - PLIC_ENABLE_BASE) % PLIC_ENABLE_STRIDE / 4;
		return ctx < p->n_contexts && word < p->n_words ? p->enable[ctx][word] : 0;
	}
	ctx = (off - PLIC_CONTEXT_BASE) / PLIC_CONTEXT_STRIDE;
	if (ctx >= p->n_contexts)
		return 0;
	switch ((off - PLIC_CONTEXT_BASE) % PLIC_CONTEXT_STRIDE) {
	case PLIC_CONTEXT_THRESHOLD:
		return p->threshold[ctx];
	case PLIC_CONTEXT_CLAIM:
		return plic_claim(p, (unsigned)ctx);
	default:
		return 0;
	}
}

/* Writes with the lock held; read-only and empty offsets ignore them. */
static void plic_write_locked(struct plic *p, uint64_t off, uint32_t val)
{
	uint64_t ctx, word;

	if (off < PLIC_PENDING_BASE) {
		if (off / 4 != 0 && off / 4 < p->n_sources) {
			p->priority[off / 4] = val & PLIC_MAX_PRIORITY;
			plic_update(p, false);
		}
		return;
	}
	if (off < PLIC_ENABLE_BASE)
		return;	/* pending bits are read-only */
	if (off < PLIC_CONTEXT_BASE) {
		ctx = (off - PLIC_ENABLE_BASE) / PLIC_ENABLE_STRIDE;
		word = (off - PLIC_ENABLE_BASE) % PLIC_ENABLE_STRIDE / 4;
		if (ctx < p->n_contexts && word < p->n_words) {
			p->enable[ctx][word] = val & word_valid_mask(p, (unsigned)word);
			plic_update(p, false);
		}
		return;
	}
	ctx = (off - PLIC_CONTEXT_BASE) / PLIC_CONTEXT_STRIDE;
	if (ctx >= p->n_contexts)
		return;
	switch ((off - PLIC_CONTEXT_BASE) % PLIC_CONTEXT_STRIDE) {
	case PLIC_CONTEXT_THRESHOLD:
		p->threshold[ctx] = val & PLIC_MAX_PRIORITY;
		plic_update(p, false);
		break;
	case PLIC_CONTEXT_CLAIM:
		plic_complete(p, (unsigned)ctx, val);
		break;
	default:
		break;
	}
}

static bool plic_access_ok(uint64_t offset, unsigned size)
{
	return size == 4 && offset % 4 == 0 && offset < PLIC_WINDOW_SIZE;
}

int plic_read(struct plic *p, uint64_t offset, unsigned size, uint64_t *ret_val)
{
	uint32_t v;

	if (!plic_access_ok(offset, size))
		return -EFAULT;
	pthread_mutex_lock(&p->lock);
	v = plic_read_locked(p, offset);
	pthread_mutex_unlock(&p->lock);
	*ret_val = v;
	return 0;
}

int plic_write(struct plic *p, uint64_t offset, unsigned size, uint64_t val)
{
	if (!plic_access_ok(offset, size))
		return -EFAULT;
	pthread_mutex_lock(&p->lock);
	plic_write_locked(p, offset, (uint32_t)val);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* ---- state ---- */

void plic_state_free(Cloister__PlicState *s)
{
	if (!s)
		return;
	free(s->priority);
	free(s->pending);
	free(s->claimed);
	free(s->level);
	free(s->enable);
	free(s->threshold);
	free(s);
}

static uint32_t *words_dup(const uint32_t *src, size_t n)
{
	uint32_t *dst = malloc(n * sizeof(*dst));

	if (dst)
		memcpy(dst, src, n * sizeof(*dst));
	return dst;
}

static int plic_state_fill(const struct plic *p, Cloister__PlicState *s)
{
	s->num_sources = p->n_sources;
	s->num_contexts = p->n_contexts;
	s->priority = words_dup(p->priority, p->n_sources);
	s->pending = words_dup(p->pending, p->n_words);
	s->claimed = words_dup(p->claimed, p->n_words);
	s->level = words_dup(p->level, p->n_words);
	s->enable = malloc(p->n_contexts * p->n_words * sizeof(uint32_t));
	s->threshold = words_dup(p->threshold, p->n_contexts);
	if (!s->priority || !s->pending || !s->claimed || !s->level || !s->enable || !s->threshold)
		return -ENOMEM;
	s->n_priority = p->n_sources;
	s->n_pending = s->n_claimed = s->n_level = p->n_words;
	s->n_enable = p->n_contexts * p->n_words;
	s->n_threshold = p->n_contexts;
	for (unsigned c = 0; c < p->n_contexts; c++)
		memcpy(&s->enable[c * p->n_words], p->enable[c], p->n_words * sizeof(uint32_t));
	return 0;
}

int plic_save(struct plic *p, Cloister__PlicState **ret_state)
{
	Cloister__PlicState *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	cloister__plic_state__init(s);
	pthread_mutex_lock(&p->lock);
	r = plic_state_fill(p, s);
	pthread_mutex_unlock(&p->lock);
	if (r < 0) {
		plic_state_free(s);
		return r;
	}
	*ret_state = s;
	return 0;
}

static bool bitmap_ok(const struct plic *p, const uint32_t *map, size_t n)
{
	if (n != p->n_words)
		return false;
	for (unsigned w = 0; w < n; w++)
		if (map[w] & ~word_valid_mask(p, w))
			return false;
	return true;
}

static bool values_ok(const uint32_t *v, size_t n, size_t want, uint32_t max)
{
	if (n != want)
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] > max)
			return false;
	return true;
}

static bool plic_state_ok(const struct plic *p, const Cloister__PlicState *s)
{
	if (s->num_sources != p->n_sources || s->num_contexts != p->n_contexts)
		return false;
	if (!values_ok(s->priority, s->n_priority, p->n_sources, PLIC_MAX_PRIORITY) ||
	    s->priority[0] != 0 ||
	    !values_ok(s->threshold, s->n_threshold, p->n_contexts, PLIC_MAX_PRIORITY))
		return false;
	if (!bitmap_ok(p, s->pending, s->n_pending) || !bitmap_ok(p, s->claimed, s->n_claimed) ||
	    !bitmap_ok(p, s->level, s->n_level))
		return false;
	if (s->n_enable != (size_t)p->n_contexts * p->n_words)
		return false;
	for (unsigned c = 0; c < p->n_contexts; c++)
		if (!bitmap_ok(p, &s->enable[c * p->n_words], p->n_words))
			return false;
	return true;
}

int plic_restore(struct plic *p, const Cloister__PlicState *s)
{
	pthread_mutex_lock(&p->lock);
	if (!plic_state_ok(p, s)) {
		pthread_mutex_unlock(&p->lock);
		return -EINVAL;
	}
	memcpy(p->priority, s->priority, p->n_sources * sizeof(uint32_t));
	memcpy(p->pending, s->pending, p->n_words * sizeof(uint32_t));
	memcpy(p->claimed, s->claimed, p->n_words * sizeof(uint32_t));
	memcpy(p->level, s->level, p->n_words * sizeof(uint32_t));
	memcpy(p->threshold, s->threshold, p->n_contexts * sizeof(uint32_t));
	for (unsigned c = 0; c < p->n_contexts; c++)
		memcpy(p->enable[c], &s->enable[c * p->n_words], p->n_words * sizeof(uint32_t));
	plic_update(p, true);
	pthread_mutex_unlock(&p->lock);
	return 0;
}
