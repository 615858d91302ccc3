/* SPDX-License-Identifier: Apache-2.0 */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "devices.h"
#include "errmsg.h"
#include "frame.h"
#include "log.h"

#define HELLO_TIMEOUT_MS 5000

void tree_init(struct vm_tree *t, uid_t child_uid, gid_t child_gid, int cancel_fd,
	       const struct tree_hooks *hooks)
{
	*t = (struct vm_tree){
		.core = { .pidfd = -1, .sock = -1 },
		.pager = { .pidfd = -1, .sock = -1 },
		.saving = SAVE_PROGRESS_INIT,
		.serial_sink = SINK_INIT,
		.console_sink = SINK_INIT,
		.child_uid = child_uid,
		.child_gid = child_gid,
		.cancel_fd = cancel_fd,
		.hooks = *hooks,
	};
}

bool tree_alive(const struct vm_tree *t)
{
	return t->core.pidfd >= 0;
}

void tree_reap(struct vm_tree *t, bool kill_first)
{
	char why[96];

	for (size_t i = 0; i < t->n_devs; i++)
		child_reap(&t->devs[i], kill_first, why, sizeof(why));
	t->n_devs = 0;
	child_reap(&t->core, kill_first, why, sizeof(why));
	/* The page server ends when we hang up; a short wait lets it say how it went. */
	if (t->pager.pidfd >= 0 && t->pager.sock >= 0) {
		shutdown(t->pager.sock, SHUT_RDWR);
		child_wait_exit(&t->pager, 500);
	}
	child_reap(&t->pager, true, why, sizeof(why));
	__atomic_store_n(&t->paging.active, false, __ATOMIC_RELEASE);
	tree_paging_drop_working_set(t);
}

void tree_adopt_pager(struct vm_tree *t, struct child *ch)
{
	child_reap(&t->pager, true, NULL, 0);
	t->pager = *ch;
	*ch = (struct child){ .pidfd = -1, .sock = -1 };
	__atomic_store_n(&t->paging.present, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&t->paging.total, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&t->paging.done, false, __ATOMIC_RELAXED);
	t->paging.error[0] = '\0';
	tree_paging_drop_working_set(t);
	__atomic_store_n(&t->paging.active, true, __ATOMIC_RELEASE);
}

/* At most this many messages a call: a page server that floods us cannot hold the gateway. */
#define PAGER_DRAIN_MAX 64

void tree_pager_drain(struct vm_tree *t)
{
	for (int n = 0; n < PAGER_DRAIN_MAX && t->pager.sock >= 0; n++) {
		struct pollfd p = { .fd = t->pager.sock, .events = POLLIN };
		Cloister__Envelope *env = NULL;
		int fds[CL_FRAME_MAX_FDS];
		size_t n_fds = 0;
		const Cloister__SnapdProgress *pr;

		if (poll(&p, 1, 0) != 1 || frame_recv(t->pager.sock, &env, fds, 0, &n_fds) < 0)
			return;
		pr = env->msg_case == CLOISTER__ENVELOPE__MSG_SNAPD_PROGRESS ? env->snapd_progress : NULL;
		if (pr && pr->error < 0 && !t->paging.error[0])
			snprintf(t->paging.error, sizeof(t->paging.error), "%s",
				 pr->message && pr->message[0] ? pr->message : strerror(-pr->error));
		/* vm.info reads these without the lock this runs under. */
		if (pr && pr->error == 0 && pr->done)
			tree_paging_keep_working_set(t, pr->working_set, pr->n_working_set);
		if (pr && pr->error == 0) {
			__atomic_store_n(&t->paging.present, pr->present, __ATOMIC_RELAXED);
			__atomic_store_n(&t->paging.total, pr->total, __ATOMIC_RELAXED);
			__atomic_store_n(&t->paging.done, pr->done, __ATOMIC_RELEASE);
		}
		frame_free(env);
	}
}

/* The page server failed or died: the VM cannot go on (its faults would wait forever). */
static bool pager_failed(struct vm_tree *t, char *what, size_t len)
{
	char why[96];

	if (t->pager.pidfd < 0)
		return false;
	tree_pager_drain(t);
	if (t->paging.error[0]) {
		snprintf(what, len, "snapshotd (page server) failed: %s", t->paging.error);
		return true;
	}
	if (!child_exited(&t->pager))
		return false;
	tree_pager_drain(t);
	child_reap(&t->pager, false, why, sizeof(why));
	if (t->paging.error[0])
		snprintf(what, len, "snapshotd (page server) failed: %s", t->paging.error);
	else
		snprintf(what, len, "snapshotd (page server) %s", why);
	return true;
}

static void drop_tap_fds(struct vm_tree *t)
{
	for (size_t i = 0; i < t->n_tap_fds; i++)
		close(t->tap_fds[i].fd);
	t->n_tap_fds = 0;
}

void tree_release(struct vm_tree *t)
{
	tree_reap(t, true);
	sink_close(&t->serial_sink);
	sink_close(&t->console_sink);
	drop_tap_fds(t);
}

bool tree_find_dead(struct vm_tree *t, char *what, size_t len)
{
	struct child *all[TREE_MAX_DEVICES + 1];
	size_t n = 0;

	if (pager_failed(t, what, len))
		return true;
	all[n++] = &t->core;
	for (size_t i = 0; i < t->n_devs; i++)
		all[n++] = &t->devs[i];
	for (size_t i = 0; i < n; i++) {
		char why[96];

		if (!child_exited(all[i]))
			continue;
		child_reap(all[i], false, why, sizeof(why));
		snprintf(what, len, "%s %s", all[i]->name, why);
		return true;
	}
	return false;
}

/* ---- talking to children ---- */

static int64_t ms_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

int tree_send(struct vm_tree *t, struct child *ch, Cloister__Envelope *env, const int *fds,
	      size_t n_fds, char *err, size_t errlen)
{
	int r;

	env->request_id = ++t->last_request_id;
	ch->awaited_id = env->request_id;
	r = frame_send(ch->sock, env, fds, n_fds);
	if (r < 0) {
		err_set(err, errlen, "cannot reach %s: %s", ch->name, strerror(-r));
		return r == -EPIPE ? -ECHILD : r;
	}
	return 0;
}

/* An event from vmm-core met while waiting: served, and whether the VM went on. */
static int serve_event(struct vm_tree *t, Cloister__Envelope *env, char *err, size_t errlen)
{
	t->hooks.event(t->hooks.opaque, env->event);
	frame_free(env);
	if (tree_alive(t))
		return 0;
	err_set(err, errlen, "the VM stopped");
	return -ECHILD;
}

/* A frame from ch: 1 when it is the awaited reply, 0 when it was consumed, or -errno. */
static int take_frame(struct vm_tree *t, struct child *ch, Cloister__Envelope **ret_env, char *err,
		      size_t errlen)
{
	Cloister__Envelope *env = NULL;
	int fds[CL_FRAME_MAX_FDS];
	size_t n_fds = 0;
	int r = frame_recv(ch->sock, &env, fds, 0, &n_fds);

	if (r < 0) {
		err_set(err, errlen, "%s went away (%s)", ch->name,
			r == -EPIPE ? "connection closed" : strerror(-r));
		return r == -EPIPE ? -ECHILD : r;
	}
	if (env->msg_case == CLOISTER__ENVELOPE__MSG_EVENT && ch == &t->core)
		return serve_event(t, env, err, errlen);
	if (env->request_id && env->request_id != ch->awaited_id) {
		/* Its request timed out and failed already: too late to matter. */
		log_info("dropped a late %s from %s (request %llu)", frame_msg_name(env), ch->name,
			 (unsigned long long)env->request_id);
		frame_free(env);
		return 0;
	}
	ch->awaited_id = 0;
	*ret_env = env;
	return 1;
}

int tree_wait_reply(struct vm_tree *t, struct child *ch, int timeout_ms,
		    Cloister__Envelope **ret_env, char *err, size_t errlen)
{
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = ch->sock, .events = POLLIN },
			{ .fd = t->cancel_fd, .events = POLLIN },
		};
		int64_t left = timeout_ms - ms_since(&start);
		int r;

		if (left <= 0) {
			/* Whatever it answers later is late. */
			ch->awaited_id = 0;
			err_set(err, errlen, "%s did not answer in time", ch->name);
			return -ETIMEDOUT;
		}
		r = poll(p, 2, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		if (p[1].revents) {
			err_set(err, errlen, "the gateway is stopping");
			return -ECANCELED;
		}
		r = take_frame(t, ch, ret_env, err, errlen);
		if (r != 0)
			return r < 0 ? r : 0;
	}
}

int tree_call(struct vm_tree *t, struct child *ch, Cloister__Envelope *env, const int *fds,
	      size_t n_fds, int timeout_ms, char *err, size_t errlen)
{
	Cloister__Envelope *reply = NULL;
	int r = tree_send(t, ch, env, fds, n_fds, err, errlen);

	if (r == 0)
		r = tree_wait_reply(t, ch, timeout_ms, &reply, err, errlen);
	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_REPLY) {
		err_set(err, errlen, "%s answered with %s", ch->name, frame_msg_name(reply));
		frame_free(reply);
		return -EPROTO;
	}
	r = reply->reply->error;
	if (r > 0)
		r = -EPROTO;
	if (r < 0)
		err_set(err, errlen, "%s", reply->reply->message && reply->reply->message[0] ?
			reply->reply->message : strerror(-r));
	frame_free(reply);
	return r;
}

int tree_core_simple(struct vm_tree *t, Cloister__Envelope__MsgCase what, char *err, size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	ProtobufCMessage body;
	int r = frame_envelope_empty(&env, what, &body);

	if (r < 0) {
		err_set(err, errlen, "request %d is not one without fields", (int)what);
		return r;
	}
	return tree_call(t, &t->core, &env, NULL, 0, TREE_CALL_TIMEOUT_MS, err, errlen);
}

int tree_handshake(struct child *ch, Cloister__Role role, char *err, size_t errlen)
{
	int r = frame_hello_send(ch->sock, CLOISTER__ROLE__ROLE_GATEWAY);

	if (r == 0)
		r = frame_hello_expect(ch->sock, role, HELLO_TIMEOUT_MS);
	if (r < 0)
		err_set(err, errlen, "%s did not start properly (handshake: %s)", ch->name, strerror(-r));
	return r;
}

int tree_spawn_helper(struct vm_tree *t, struct child *ch, const char *name, const char *subdir,
		      const char *program, const char *const *args, const int *extra, size_t n_extra,
		      char *err, size_t errlen)
{
	char path[4096], uid[16], gid[16];
	char *argv[12];
	int fds[SPAWN_MAX_FDS];
	int sv[2] = { -1, -1 };
	size_t n = 0, a = 0;
	int r;

	r = helper_path(subdir, program, path, sizeof(path));
	if (r < 0) {
		err_set(err, errlen, "cannot find %s", program);
		return r;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		err_set(err, errlen, "socketpair: %m");
		return -errno;
	}
	fds[n++] = sv[1];
	for (size_t i = 0; i < n_extra && n < SPAWN_MAX_FDS; i++)
		fds[n++] = extra[i];
	snprintf(uid, sizeof(uid), "%u", (unsigned)t->child_uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)t->child_gid);
	argv[a++] = path;
	for (size_t i = 0; args && args[i] && a < ARRAY_SIZE(argv) - 5; i++)
		argv[a++] = (char *)args[i];
	argv[a++] = "--uid";
	argv[a++] = uid;
	argv[a++] = "--gid";
	argv[a++] = gid;
	argv[a] = NULL;
	r = spawn_child(name, path, argv, fds, n, ch);
	cleanup_closep(&sv[1]);
	if (r < 0) {
		cleanup_closep(&sv[0]);
		err_set(err, errlen, "cannot start %s: %s", name, strerror(-r));
		return r;
	}
	ch->sock = sv[0];
	return 0;
}

/* ---- building the tree ---- */

static int open_payload(const char *path, const char *what, int *ret_fd, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	*ret_fd = -1;
	if (!path || !path[0])
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		err_set(err, errlen, "cannot open the %s %s: %m", what, path);
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		err_set(err, errlen, "the %s %s is not a regular file", what, path);
		return -EINVAL;
	}
	*ret_fd = fd;
	return 0;
}

/*
 * Takes over what the gateway must hold of a sink for the VM's life, leaving
 * the fds to hand over in from. A pty is new for every tree: its path goes
 * into the config and the log.
 */
static void sink_keep(struct vm_tree *t, struct sink *keep, struct sink *from,
		      Cloister__SerialConfig *s, const char *what)
{
	sink_close(keep);
	keep->pty_slave_fd = TAKE_FD(from->pty_slave_fd);
	keep->relay = TAKE_PTR(from->relay);
	if (s->mode != CLOISTER__SERIAL_MODE__SERIAL_PTY)
		return;
	memcpy(keep->pty_path, from->pty_path, sizeof(keep->pty_path));
	t->hooks.sink_path(t->hooks.opaque, s, keep->pty_path);
	log_info("%s: pty %s", what, keep->pty_path);
}

/* The tap descriptor the restorer passed for device id, if any. */
static const struct tree_tap_fd *kept_tap_fd(const struct vm_tree *t, const char *id)
{
	for (size_t i = 0; i < t->n_tap_fds; i++)
		if (strcmp(t->tap_fds[i].id, id) == 0)
			return &t->tap_fds[i];
	return NULL;
}

int tree_keep_tap_fds(struct vm_tree *t, const struct restore_binds *binds, char *err,
		      size_t errlen)
{
	drop_tap_fds(t);
	for (size_t i = 0; binds && i < binds->n; i++) {
		const struct restore_bind *b = &binds->b[i];
		struct tree_tap_fd *k = &t->tap_fds[t->n_tap_fds];

		if (!b->has_tap_fd)
			continue;
		if (t->n_tap_fds >= TREE_MAX_DEVICES || strlen(b->id) >= sizeof(k->id)) {
			err_set(err, errlen, "too many tap descriptors");
			drop_tap_fds(t);
			return -E2BIG;
		}
		k->fd = fcntl(b->tap_fd, F_DUPFD_CLOEXEC, 3);
		if (k->fd < 0) {
			int e = errno;

			err_set(err, errlen, "net %s: cannot keep its tap descriptor: %s", b->id,
				strerror(e));
			drop_tap_fds(t);
			return -e;
		}
		snprintf(k->id, sizeof(k->id), "%s", b->id);
		t->n_tap_fds++;
	}
	return 0;
}

static int start_device(struct vm_tree *t, Cloister__DeviceConfig *d, bool restore, char *err,
			size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__CoreAttachDevice att = CLOISTER__CORE_ATTACH_DEVICE__INIT;
	struct child *ch = &t->devs[t->n_devs];
	struct device_host host;
	const struct tree_tap_fd *tap;
	const char *args[4] = { d->id, NULL, NULL, NULL };
	int r;

	if (t->n_devs >= TREE_MAX_DEVICES) {
		err_set(err, errlen, "too many devices");
		return -E2BIG;
	}
	if ((tap = kept_tap_fd(t, d->id)))
		r = device_host_open_tap_fd(d, tap->fd, &host, err, errlen);
	else
		r = device_host_open(d, restore, &host, err, errlen);
	if (r < 0)
		return r;
	if (host.mac_arg[0]) {
		args[1] = "--mac";
		args[2] = host.mac_arg;
	}
	/* The device's control socket goes to vmm-core, not to us: we keep its pidfd. */
	r = tree_spawn_helper(t, ch, d->id, "device-procs", host.program, args, host.fds, host.n_fds,
			      err, errlen);
	if (r == 0 && d->console)
		sink_keep(t, &t->console_sink, &host.sink, d->console, "console");
	device_host_close(&host);
	if (r < 0)
		return r;
	t->n_devs++;
	att.device = d;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_ATTACH_DEVICE, &att.base);
	r = tree_call(t, &t->core, &env, &ch->sock, 1, TREE_CALL_TIMEOUT_MS, err, errlen);
	cleanup_closep(&ch->sock);
	return r;
}

static int start_devices(struct vm_tree *t, Cloister__VmConfig *config, bool restore, char *err,
			 size_t errlen)
{
	for (size_t i = 0; i < config->n_devices; i++) {
		int r = start_device(t, config->devices[i], restore, err, errlen);

		if (r < 0)
			return r;
	}
	return 0;
}

/* The fds CoreConfigure carries, and their indices in it. */
struct configure_fds {
	int fds[4 + 2 * LAYOUT_MAX_REGIONS];
	size_t n;
};

static int32_t configure_fd_add(struct configure_fds *f, int fd)
{
	if (fd < 0)
		return -1;
	f->fds[f->n] = fd;
	return (int32_t)f->n++;
}

static int core_configure(struct vm_tree *t, Cloister__VmConfig *config, bool restore, int kernel_fd,
			  int initramfs_fd, const struct sink *serial, const struct tree_memory *mem,
			  char *err, size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__CoreConfigure cfg = CLOISTER__CORE_CONFIGURE__INIT;
	struct configure_fds f = { .n = 0 };
	int32_t rw[LAYOUT_MAX_REGIONS], ro[LAYOUT_MAX_REGIONS];
	size_t n = mem && mem->n <= LAYOUT_MAX_REGIONS ? mem->n : 0;

	cfg.config = config;
	cfg.restore = restore;
	cfg.kernel_fd = configure_fd_add(&f, kernel_fd);
	cfg.serial_fd = configure_fd_add(&f, serial->out_fd);
	cfg.initramfs_fd = configure_fd_add(&f, initramfs_fd);
	cfg.serial_in_fd = configure_fd_add(&f, serial->in_fd);
	for (size_t i = 0; i < n; i++) {
		rw[i] = configure_fd_add(&f, mem->rw[i]);
		ro[i] = configure_fd_add(&f, mem->ro[i]);
	}
	cfg.memory_fds = rw;
	cfg.n_memory_fds = n;
	cfg.memory_ro_fds = ro;
	cfg.n_memory_ro_fds = n;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_CONFIGURE, &cfg.base);
	return tree_call(t, &t->core, &env, f.fds, f.n, TREE_CALL_TIMEOUT_MS, err, errlen);
}

static int core_start(struct vm_tree *t, char *err, size_t errlen)
{
	int r = tree_spawn_helper(t, &t->core, "vmm-core", "vmm-core", "cloister-vmm", NULL, NULL, 0,
				  err, errlen);

	if (r == 0)
		r = tree_handshake(&t->core, CLOISTER__ROLE__ROLE_VMM, err, errlen);
	return r;
}

static int start_tree(struct vm_tree *t, Cloister__VmConfig *config, bool restore,
		      const struct tree_memory *mem, char *err, size_t errlen)
{
	_cleanup_close_ int kernel_fd = -1, initramfs_fd = -1;
	struct sink serial = SINK_INIT;
	int r;

	if (!restore) {
		r = open_payload(config->payload->kernel, "kernel", &kernel_fd, err, errlen);
		if (r == 0)
			r = open_payload(config->payload->initramfs, "initramfs", &initramfs_fd, err, errlen);
		if (r < 0)
			return r;
	}
	/* A socket path is ours again only once the relay of the last tree let go of it. */
	sink_close(&t->serial_sink);
	sink_close(&t->console_sink);
	r = sink_open(config->serial, restore, &serial, err, errlen);
	if (r < 0)
		return r;
	if (config->serial)
		sink_keep(t, &t->serial_sink, &serial, config->serial, "serial");
	r = core_start(t, err, errlen);
	if (r == 0)
		r = core_configure(t, config, restore, kernel_fd, initramfs_fd, &serial, mem, err,
				   errlen);
	sink_handed_over(&serial);
	if (r < 0)
		return r;
	return start_devices(t, config, restore, err, errlen);
}

int tree_start(struct vm_tree *t, Cloister__VmConfig *config, bool restore, char *err,
	       size_t errlen)
{
	return start_tree(t, config, restore, NULL, err, errlen);
}

int tree_start_kept(struct vm_tree *t, Cloister__VmConfig *config, const struct tree_memory *mem,
		    char *err, size_t errlen)
{
	return start_tree(t, config, true, mem, err, errlen);
}

int tree_poll_events(struct vm_tree *t, char *err, size_t errlen)
{
	tree_pager_drain(t);
	while (tree_alive(t) && t->core.sock >= 0) {
		struct pollfd p = { .fd = t->core.sock, .events = POLLIN };
		Cloister__Envelope *env = NULL;
		int fds[CL_FRAME_MAX_FDS];
		size_t n_fds = 0;
		int r;

		if (poll(&p, 1, 0) != 1)
			return 0;
		r = frame_recv(t->core.sock, &env, fds, 0, &n_fds);
		if (r < 0) {
			err_set(err, errlen, "vmm-core %s", r == -EPIPE ? "closed its control socket" :
				"broke the protocol");
			return r == -EPIPE ? -ECHILD : -EPROTO;
		}
		if (env->msg_case == CLOISTER__ENVELOPE__MSG_EVENT) {
			t->hooks.event(t->hooks.opaque, env->event);
		} else if (env->request_id) {
			/* No request is outstanding between operations: this one timed out. */
			log_info("dropped a late %s from vmm-core", frame_msg_name(env));
		} else {
			err_set(err, errlen, "vmm-core sent %s unasked", frame_msg_name(env));
			frame_free(env);
			return -EPROTO;
		}
		frame_free(env);
	}
	return 0;
}
