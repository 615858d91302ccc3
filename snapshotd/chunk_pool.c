/* SPDX-License-Identifier: Apache-2.0 */
#include "chunk_pool.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "errmsg.h"

/* The region and chunk of item g. */
static void item_place(const struct chunk_pool *p, size_t g, size_t *ret_i, size_t *ret_k)
{
	size_t i = p->first;

	while (g >= p->s->t[i].n) {
		g -= p->s->t[i].n;
		i++;
	}
	*ret_i = i;
	*ret_k = g;
}

/* Keeps the failure of the lowest item; wakes whoever waits for a turn. */
static void record_failure(struct chunk_pool *p, size_t g, int r, const char *err)
{
	pthread_mutex_lock(&p->lock);
	if (g < atomic_load(&p->fail_at)) {
		atomic_store(&p->fail_at, g);
		p->ret = r;
		memcpy(p->err, err, sizeof(p->err));
	}
	pthread_cond_broadcast(&p->moved);
	pthread_mutex_unlock(&p->lock);
}

static void work(struct chunk_pool *p, struct chunk_buf *b)
{
	char err[CHUNK_POOL_ERR_LEN];

	for (;;) {
		size_t g = atomic_fetch_add(&p->next, 1), i, k;
		int r;

		/* Every item before a failure is taken already and runs to its end. */
		if (g >= p->n || g > atomic_load(&p->fail_at))
			return;
		item_place(p, g, &i, &k);
		err[0] = '\0';
		r = p->fn(p, b, g, i, k, err, sizeof(err));
		if (r < 0)
			record_failure(p, g, r, err);
	}
}

struct worker {
	struct chunk_pool *p;
	struct chunk_buf b;
	pthread_t thread;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	work(w->p, &w->b);
	return NULL;
}

/* Starts up to n - 1 helpers; fewer if buffers or threads run out (the caller works anyway). */
static size_t start_helpers(struct chunk_pool *p, struct worker *w, size_t n)
{
	size_t started = 0;

	for (size_t h = 0; h + 1 < n; h++) {
		w[h] = (struct worker){ .p = p };
		if (chunk_buf_init(&w[h].b, &p->s->fmt) < 0) {
			chunk_buf_release(&w[h].b);
			break;
		}
		if (pthread_create(&w[h].thread, NULL, worker_main, &w[h]) != 0) {
			chunk_buf_release(&w[h].b);
			break;
		}
		started++;
	}
	return started;
}

int chunk_pool_run(struct chunk_pool *p, size_t workers, char *err, size_t errlen)
{
	struct worker helpers[CHUNK_MAX_WORKERS];
	size_t started;

	p->n = 0;
	for (size_t i = p->first; i < p->end; i++)
		p->n += p->s->t[i].n;
	atomic_init(&p->next, 0);
	atomic_init(&p->fail_at, SIZE_MAX);
	p->turn = 0;
	p->ret = 0;
	p->err[0] = '\0';
	if (workers == 0)
		workers = chunk_workers();
	if (workers > CHUNK_MAX_WORKERS)
		workers = CHUNK_MAX_WORKERS;
	if (workers > p->n)
		workers = p->n;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		err_set(err, errlen, "no lock for the chunk workers");
		return -ENOMEM;
	}
	if (pthread_cond_init(&p->moved, NULL) != 0) {
		pthread_mutex_destroy(&p->lock);
		err_set(err, errlen, "no condition variable for the chunk workers");
		return -ENOMEM;
	}
	started = workers > 1 ? start_helpers(p, helpers, workers) : 0;
	work(p, &p->s->buf);
	for (size_t h = 0; h < started; h++) {
		pthread_join(helpers[h].thread, NULL);
		chunk_buf_release(&helpers[h].b);
	}
	pthread_cond_destroy(&p->moved);
	pthread_mutex_destroy(&p->lock);
	if (p->ret < 0)
		err_set(err, errlen, "%s", p->err);
	return p->ret;
}

bool chunk_pool_wait_turn(struct chunk_pool *p, size_t g)
{
	bool mine;

	pthread_mutex_lock(&p->lock);
	while (p->turn != g && atomic_load(&p->fail_at) > g)
		pthread_cond_wait(&p->moved, &p->lock);
	mine = p->turn == g && atomic_load(&p->fail_at) > g;
	pthread_mutex_unlock(&p->lock);
	return mine;
}

void chunk_pool_pass_turn(struct chunk_pool *p, size_t g)
{
	pthread_mutex_lock(&p->lock);
	if (p->turn == g)
		p->turn = g + 1;
	pthread_cond_broadcast(&p->moved);
	pthread_mutex_unlock(&p->lock);
}
