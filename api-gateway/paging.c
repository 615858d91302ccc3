/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's side of a page server: telling it the VM was resumed or
 * must bring every page in now, waiting for that, and keeping the working
 * set it reports for the VM's next snapshot.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errmsg.h"
#include "frame.h"
#include "log.h"
#include "tree.h"

static int pager_control(struct vm_tree *t, bool resumed, bool finish)
{
	Cloister__SnapdControl ctl = CLOISTER__SNAPD_CONTROL__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	ctl.resumed = resumed;
	ctl.finish = finish;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAPD_CONTROL, &ctl.base);
	return frame_send(t->pager.sock, &env, NULL, 0);
}

static bool paging_under_way(const struct vm_tree *t)
{
	return t->pager.pidfd >= 0 && t->pager.sock >= 0 && !t->paging.done;
}

void tree_pager_resumed(struct vm_tree *t)
{
	/* A page server that cannot hear it is noticed by the supervision tick. */
	if (paging_under_way(t))
		pager_control(t, true, false);
}

static int64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Why paging cannot finish, or 0 while it may still. */
static int pager_broken(struct vm_tree *t, char *err, size_t errlen)
{
	tree_pager_drain(t);
	if (t->paging.error[0]) {
		err_set(err, errlen, "snapshotd (page server) failed: %s", t->paging.error);
		return -EIO;
	}
	if (!t->paging.done && child_exited(&t->pager)) {
		err_set(err, errlen, "snapshotd (page server) exited before every page was present");
		return -ECHILD;
	}
	return 0;
}

int tree_pager_finish(struct vm_tree *t, int timeout_ms, char *err, size_t errlen)
{
	int64_t end = ms_now() + timeout_ms;
	int r;

	tree_pager_drain(t);
	if (!paging_under_way(t))
		return 0;
	log_info("waiting for guest memory to be paged in (%" PRIu64 " of %" PRIu64 " bytes)",
		 t->paging.present, t->paging.total);
	if (pager_control(t, false, true) < 0) {
		err_set(err, errlen, "snapshotd (page server) cannot be reached");
		return -ECHILD;
	}
	while (!t->paging.done) {
		struct pollfd p[2] = {
			{ .fd = t->pager.sock, .events = POLLIN },
			{ .fd = t->cancel_fd, .events = POLLIN },
		};
		int64_t left = end - ms_now();

		if (left <= 0) {
			err_set(err, errlen, "guest memory was not all paged in within %d ms (%" PRIu64
				" of %" PRIu64 " bytes)", timeout_ms, t->paging.present, t->paging.total);
			return -ETIMEDOUT;
		}
		if (poll(p, 2, left < 100 ? (int)left : 100) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents) {
			err_set(err, errlen, "the gateway is stopping");
			return -ECANCELED;
		}
		r = pager_broken(t, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

void tree_paging_keep_working_set(struct vm_tree *t, const uint64_t *blocks, size_t n)
{
	uint64_t *copy;

	/* snapshotd checks it against the regions when it writes it; here only its size. */
	if (n == 0 || n > TREE_WORKING_SET_MAX)
		return;
	copy = malloc(n * sizeof(*copy));
	if (!copy)
		return;
	memcpy(copy, blocks, n * sizeof(*copy));
	tree_paging_drop_working_set(t);
	t->paging.ws = copy;
	t->paging.n_ws = n;
	log_info("page server: working set of %zu blocks recorded for the next snapshot", n);
}

void tree_paging_drop_working_set(struct vm_tree *t)
{
	free(t->paging.ws);
	t->paging.ws = NULL;
	t->paging.n_ws = 0;
}
