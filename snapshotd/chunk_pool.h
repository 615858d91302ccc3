/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Workers over the chunks of a chunk set: a Copy restore, a verify and a
 * snapshot's write hand each chunk of a range of regions to one of a few
 * threads, each with its own buffers (struct chunk_buf).
 *
 * Chunks are taken in order, one at a time, from a shared counter. When a
 * chunk fails, no chunk after it is started, but every chunk before it
 * (all already taken) is finished; of the failures the one of the lowest
 * chunk wins. So the error reported is the one a single thread going
 * through the chunks in order would have met first, whatever the timing.
 *
 * A job whose chunks must reach a file in order (a stored form, where each
 * chunk goes where the one before it ended) waits for its turn: item g
 * runs chunk_pool_wait_turn() after its CPU work and chunk_pool_pass_turn()
 * after its write, whether it failed or not.
 */
#ifndef CLOISTER_CHUNK_POOL_H
#define CLOISTER_CHUNK_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "chunk.h"

#define CHUNK_POOL_ERR_LEN 512

struct chunk_pool;

/*
 * Chunk k of region i (item g counting from the pool's first region) with
 * buffers b; 0 or -errno with err set.
 */
typedef int (*chunk_pool_fn)(struct chunk_pool *p, struct chunk_buf *b, size_t g, size_t i,
			     size_t k, char *err, size_t errlen);

struct chunk_pool {
	struct chunk_set *s;
	size_t first, end;	/* regions [first, end) */
	chunk_pool_fn fn;
	void *arg;		/* the job's own */
	/* filled by chunk_pool_run() */
	size_t n;		/* items */
	atomic_size_t next;	/* the next item to take */
	atomic_size_t fail_at;	/* the lowest failed item, or SIZE_MAX */
	pthread_mutex_t lock;
	pthread_cond_t moved;	/* the turn moved on, or an item failed */
	size_t turn;		/* the item whose write is next */
	int ret;
	char err[CHUNK_POOL_ERR_LEN];
};

/*
 * Runs p->fn over every chunk of regions [p->first, p->end) on up to
 * workers threads (the caller's among them; 0: chunk_workers()), the first
 * with s's own buffers. 0, or the error of the lowest failed chunk, its
 * message in err.
 */
int chunk_pool_run(struct chunk_pool *p, size_t workers, char *err, size_t errlen);

/* Waits until every item before g has passed its turn; false if one before g failed. */
bool chunk_pool_wait_turn(struct chunk_pool *p, size_t g);

/* Item g is written (or failed): the next may go. */
void chunk_pool_pass_turn(struct chunk_pool *p, size_t g);

#endif
