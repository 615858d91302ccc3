/* SPDX-License-Identifier: Apache-2.0 */
#include "fdstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "errmsg.h"
#include "frame.h"
#include "log.h"
#include "memfd_check.h"

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cleanup_closep(&fds[i]);
}

static int check_regions(const int *fds, const Cloister__VmConfig *config, int accmode,
			 const char *whose, char *err, size_t errlen)
{
	for (size_t i = 0; i < config->n_regions; i++) {
		char what[64];
		int r;

		snprintf(what, sizeof(what), "%s region %zu", whose, i);
		r = memfd_check(fds[i], config->regions[i]->size, accmode, what, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The awaited reply and its fds; events met meanwhile are served, late replies dropped. */
static int export_wait(struct vm_tree *t, Cloister__Envelope **ret_env, int *fds, size_t *n_fds,
		       char *err, size_t errlen)
{
	for (;;) {
		Cloister__Envelope *env = NULL;
		int r = frame_recv_timeout(t->core.sock, TREE_CALL_TIMEOUT_MS, &env, fds,
					   LAYOUT_MAX_REGIONS, n_fds);

		if (r < 0) {
			err_set(err, errlen, "vmm-core did not hand over its memory: %s", strerror(-r));
			return r == -EPIPE ? -ECHILD : r;
		}
		if (env->msg_case == CLOISTER__ENVELOPE__MSG_EVENT && *n_fds == 0) {
			t->hooks.event(t->hooks.opaque, env->event);
		} else if (env->request_id == t->core.awaited_id) {
			t->core.awaited_id = 0;
			*ret_env = env;
			return 0;
		}
		close_all(fds, *n_fds);
		frame_free(env);
	}
}

static int export_reply(const Cloister__Envelope *env, size_t n_fds,
			const Cloister__VmConfig *config, char *err, size_t errlen)
{
	const Cloister__CoreExportMemoryReply *rep = env->core_export_memory_reply;

	if (env->msg_case == CLOISTER__ENVELOPE__MSG_REPLY) {
		err_set(err, errlen, "vmm-core refused to hand over its memory: %s",
			env->reply->message ? env->reply->message : "no reason");
		return env->reply->error < 0 ? env->reply->error : -EPROTO;
	}
	if (env->msg_case != CLOISTER__ENVELOPE__MSG_CORE_EXPORT_MEMORY_REPLY || rep->error < 0 ||
	    rep->n_regions != config->n_regions || n_fds != config->n_regions) {
		err_set(err, errlen, "vmm-core answered the memory request with %s, %zu fds",
			frame_msg_name(env), n_fds);
		return -EPROTO;
	}
	for (size_t i = 0; i < config->n_regions; i++) {
		if (!rep->regions[i] || rep->regions[i]->guest_addr != config->regions[i]->guest_addr ||
		    rep->regions[i]->size != config->regions[i]->size) {
			err_set(err, errlen, "vmm-core's memory region %zu is not the VM's", i);
			return -EPROTO;
		}
	}
	return 0;
}

int fdstore_export(struct vm_tree *t, const Cloister__VmConfig *config, int *ret_fds, char *err,
		   size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT, *reply = NULL;
	Cloister__CoreExportMemory req = CLOISTER__CORE_EXPORT_MEMORY__INIT;
	int fds[LAYOUT_MAX_REGIONS];
	size_t n_fds = 0;
	int r;

	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_EXPORT_MEMORY, &req.base);
	r = tree_send(t, &t->core, &env, NULL, 0, err, errlen);
	if (r == 0)
		r = export_wait(t, &reply, fds, &n_fds, err, errlen);
	if (r < 0)
		return r;
	r = export_reply(reply, n_fds, config, err, errlen);
	frame_free(reply);
	/* vmm-core is a peer like any other: what it sent is checked before it is kept. */
	if (r == 0)
		r = check_regions(fds, config, O_RDWR, "vmm-core's memfd of", err, errlen);
	if (r < 0) {
		close_all(fds, n_fds);
		return r;
	}
	memcpy(ret_fds, fds, config->n_regions * sizeof(fds[0]));
	return 0;
}

static void region_name(size_t i, char *buf, size_t len)
{
	snprintf(buf, len, NOTIFY_STORED_PREFIX "%zu", i);
}

void fdstore_remove_regions(void)
{
	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++) {
		char name[32];

		region_name(i, name, sizeof(name));
		notify_fdstore_remove(name);
	}
}

int fdstore_put_regions(const int *fds, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		char name[32];
		int r;

		region_name(i, name, sizeof(name));
		r = notify_fdstore_put(name, fds[i]);
		if (r < 0) {
			err_set(err, errlen, "cannot put %s in the fd store: %s", name, strerror(-r));
			fdstore_remove_regions();
			return r;
		}
	}
	return 0;
}

/* "region-N", N a plain decimal below limit (no sign, no leading zero). */
static int region_index(const char *name, size_t limit)
{
	const char *s = name + strlen(NOTIFY_STORED_PREFIX);
	char *end;
	unsigned long v;

	if (strncmp(name, NOTIFY_STORED_PREFIX, strlen(NOTIFY_STORED_PREFIX)) != 0 ||
	    *s < '0' || *s > '9' || (s[0] == '0' && s[1]))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= limit)
		return -1;
	return (int)v;
}

static int sort_regions(const struct notify_passed *p, size_t n, int *rw, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		rw[i] = -1;
	if (p->n_stored != n) {
		err_set(err, errlen, "the fd store holds %zu fds, the snapshot has %zu memory regions",
			p->n_stored, n);
		return -EINVAL;
	}
	for (size_t k = 0; k < p->n_stored; k++) {
		int i = region_index(p->stored_name[k], n);

		if (i < 0 || rw[i] >= 0) {
			err_set(err, errlen, "the fd store holds %s, which is %s", p->stored_name[k],
				i < 0 ? "no region of the snapshot" : "there twice");
			return -EINVAL;
		}
		rw[i] = p->stored_fd[k];
	}
	return 0;
}

/* A read-only descriptor of the same memfd, for snapshots vmm-core lends to snapshotd. */
static int reopen_ro(int fd, char *err, size_t errlen)
{
	char path[64];
	int ro;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	if (ro < 0) {
		err_set(err, errlen, "cannot open a stored memfd read-only: %m");
		return -errno;
	}
	if (memfd_same_file(fd, ro) < 0) {
		close(ro);
		err_set(err, errlen, "a stored memfd reopened as another file");
		return -EINVAL;
	}
	return ro;
}

int fdstore_take_regions(const struct notify_passed *p, const Cloister__VmConfig *config, int *rw,
			 int *ro, char *err, size_t errlen)
{
	size_t n = config->n_regions;
	int r = n == 0 || n > LAYOUT_MAX_REGIONS ? -EINVAL : 0;

	if (r < 0)
		err_set(err, errlen, "the snapshot has %zu memory regions", n);
	if (r == 0)
		r = sort_regions(p, n, rw, err, errlen);
	if (r == 0)
		r = check_regions(rw, config, O_RDWR, "the stored memfd of", err, errlen);
	for (size_t i = 0; i < n && i < LAYOUT_MAX_REGIONS; i++)
		ro[i] = -1;
	for (size_t i = 0; r == 0 && i < n; i++) {
		ro[i] = reopen_ro(rw[i], err, errlen);
		if (ro[i] < 0) {
			r = ro[i];
			ro[i] = -1;
		}
	}
	if (r < 0)
		close_all(ro, n < LAYOUT_MAX_REGIONS ? n : LAYOUT_MAX_REGIONS);
	return r;
}
