/* SPDX-License-Identifier: Apache-2.0 */
#include "vm_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include <json-c/json.h>

#include "bindings.h"
#include "cleanup.h"
#include "errmsg.h"
#include "frame.h"
#include "log.h"
#include "snapshot_dir.h"
#include "vmconfig.h"

/* Far below any disk's rate: a snapshot slower than this has stalled. */
#define SNAPSHOT_MIN_RATE (32ull << 20)
#define SNAPSHOT_BASE_TIMEOUT_MS 30000

int vm_snapshot_timeout_ms(uint64_t memory_size)
{
	uint64_t ms = SNAPSHOT_BASE_TIMEOUT_MS + memory_size / (SNAPSHOT_MIN_RATE / 1000);

	return ms > 3600000 ? 3600000 : (int)ms;
}

static double ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

/*
 * Starts snapshotd for one operation (mode "save" or "load") with a fresh
 * socketpair: its end is snapshotd's fd 4, *ret_core_end goes to vmm-core.
 */
static int snapd_start(struct vm_tree *t, struct child *snapd, const char *mode, int *ret_core_end,
		       char *err, size_t errlen)
{
	const char *const args[] = { mode, NULL };
	int sv[2];
	int r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		err_set(err, errlen, "socketpair: %m");
		return -errno;
	}
	r = tree_spawn_helper(t, snapd, "snapshotd", "snapshotd", "cloister-snapshotd", args, &sv[1], 1,
			      err, errlen);
	close(sv[1]);
	if (r == 0)
		r = tree_handshake(snapd, CLOISTER__ROLE__ROLE_SNAPSHOTD, err, errlen);
	if (r < 0) {
		close(sv[0]);
		return r;
	}
	*ret_core_end = sv[0];
	return 0;
}

static void snapd_finish(struct child *snapd)
{
	char why[96];

	if (snapd->pidfd < 0)
		return;
	child_wait_exit(snapd, 2000);
	child_reap(snapd, true, why, sizeof(why));
	log_debug("snapshotd %s", why);
}

static int snapd_reply(struct vm_tree *t, struct child *snapd, int timeout_ms, char *err,
		       size_t errlen)
{
	Cloister__Envelope *reply = NULL;
	int r = tree_wait_reply(t, snapd, timeout_ms, &reply, err, errlen);

	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_REPLY) {
		err_set(err, errlen, "snapshotd answered with %s", frame_msg_name(reply));
		r = -EPROTO;
	} else if (reply->reply->error < 0) {
		err_set(err, errlen, "%s", reply->reply->message ? reply->reply->message : "snapshot failed");
		r = reply->reply->error;
	}
	frame_free(reply);
	return r;
}

/*
 * The page snapshotd counts in, or -1: only a number for vm.info, a save goes
 * on without it. The regions are laid out from memory_size, so they cover it.
 */
static int progress_page(struct vm_tree *t, const Cloister__VmConfig *config)
{
	int fd = save_progress_start(&t->saving, config->memory_size);

	if (fd < 0)
		log_warn("no progress for this snapshot: %s", strerror(-fd));
	return fd < 0 ? -1 : fd;
}

/* snapshotd and vmm-core, each told its part of one save. */
static int snapshot_stream(struct vm_tree *t, Cloister__VmConfig *config, const int *files,
			   size_t n_regions, bool fdstore, const struct snapshot_seal *seal, char *err,
			   size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__SnapdSave save = CLOISTER__SNAPD_SAVE__INIT;
	Cloister__CoreSnapshot snap = CLOISTER__CORE_SNAPSHOT__INIT;
	struct child snapd = { .pidfd = -1, .sock = -1 };
	int timeout = vm_snapshot_timeout_ms(config->memory_size);
	int fds[2 + LAYOUT_MAX_REGIONS];
	size_t n_fds = fdstore ? 1 : 1 + n_regions;
	_cleanup_close_ int progress = fdstore ? -1 : progress_page(t, config);
	int core_end = -1;
	int r;

	memcpy(fds, files, n_fds * sizeof(*fds));
	save.progress_fd = progress >= 0;
	if (save.progress_fd)
		fds[n_fds++] = progress;
	r = snapd_start(t, &snapd, "save", &core_end, err, errlen);
	if (r < 0)
		goto out;
	save.config = config;
	save.fdstore = fdstore;
	save.compress_zstd = seal && seal->zstd;
	if (seal && seal->keyed)
		save.encryption_key = (ProtobufCBinaryData){ .len = SNAPSHOT_KEY_BYTES,
							     .data = (uint8_t *)seal->key };
	save.working_set = t->paging.ws;
	save.n_working_set = t->paging.n_ws;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAPD_SAVE, &save.base);
	r = tree_send(t, &snapd, &env, fds, n_fds, err, errlen);
	if (r == 0) {
		env = (Cloister__Envelope)CLOISTER__ENVELOPE__INIT;
		frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_SNAPSHOT, &snap.base);
		r = tree_call(t, &t->core, &env, &core_end, 1, timeout, err, errlen);
	}
	cleanup_closep(&core_end);
	if (r == 0)
		r = snapd_reply(t, &snapd, timeout, err, errlen);
	snapd_finish(&snapd);
out:
	save_progress_stop(&t->saving);
	return r;
}

static int snapshot_write(struct vm_tree *t, Cloister__VmConfig *config, const char *url,
			  bool fdstore, const struct snapshot_seal *seal, char *err, size_t errlen)
{
	_cleanup_close_ int dirfd = -1;
	int files[1 + LAYOUT_MAX_REGIONS];
	/* With the fd store, memory stays where it is: no region files. */
	size_t n_regions = fdstore ? 0 : config->n_regions;
	struct timespec t0, t1;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		files[i] = -1;
	/*
	 * Pages not yet present read as zero through the memfds: the snapshot
	 * would lose them. The page server brings them all in first.
	 */
	r = tree_pager_finish(t, vm_snapshot_timeout_ms(config->memory_size), err, errlen);
	if (r < 0)
		return r;
	dirfd = snapdir_open(url, err, errlen);
	if (dirfd < 0)
		return dirfd;
	r = snapdir_create_partials(dirfd, n_regions, files, err, errlen);
	if (r == 0)
		r = snapshot_stream(t, config, files, n_regions, fdstore, seal, err, errlen);
	if (r == 0)
		r = bindings_seal(dirfd, config, err, errlen);
	if (r == 0)
		r = snapdir_publish(dirfd, n_regions, err, errlen);
	if (r < 0)
		snapdir_unlink_partials(dirfd, n_regions);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		cleanup_closep(&files[i]);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r == 0)
		log_info("snapshot%s written to %s in %.1f ms", fdstore ? " (memory in the fd store)" : "",
			 url, ms_between(&t0, &t1));
	return r;
}

int vm_snapshot_write(struct vm_tree *t, Cloister__VmConfig *config, const char *url,
		      const struct snapshot_seal *seal, char *err, size_t errlen)
{
	return snapshot_write(t, config, url, false, seal, err, errlen);
}

int vm_snapshot_write_fdstore(struct vm_tree *t, Cloister__VmConfig *config, const char *url,
			      char *err, size_t errlen)
{
	return snapshot_write(t, config, url, true, NULL, err, errlen);
}

static int snapd_load(struct vm_tree *t, struct vm_restore *rs, const struct snapshot_seal *seal,
		      char *err, size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__SnapdLoad load = CLOISTER__SNAPD_LOAD__INIT;
	Cloister__Envelope *reply = NULL;
	const Cloister__SnapdLoadReply *lr;
	int r;

	load.region_files = (uint32_t)rs->n_regions;
	load.on_demand = rs->on_demand;
	load.fdstore = rs->fdstore;
	if (seal && seal->keyed)
		load.encryption_key = (ProtobufCBinaryData){ .len = SNAPSHOT_KEY_BYTES,
							     .data = (uint8_t *)seal->key };
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD, &load.base);
	r = tree_send(t, &rs->snapd, &env, rs->files, 1 + rs->n_regions, err, errlen);
	if (r == 0)
		r = tree_wait_reply(t, &rs->snapd, TREE_CALL_TIMEOUT_MS, &reply, err, errlen);
	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY) {
		err_set(err, errlen, "snapshotd answered with %s", frame_msg_name(reply));
		frame_free(reply);
		return -EPROTO;
	}
	lr = reply->snapd_load_reply;
	if (lr->error < 0 || !lr->config) {
		err_set(err, errlen, "invalid snapshot: %s", lr->message && lr->message[0] ? lr->message :
			"no configuration");
		frame_free(reply);
		return -EBADMSG;
	}
	rs->config = vmconfig_dup(lr->config);
	frame_free(reply);
	return rs->config ? 0 : -ENOMEM;
}

/*
 * The gateway opens /dev/userfaultfd, so no sandboxed process needs a
 * capability for it; this is also what decides OnDemand, before any process
 * of the VM exists. Not named, OnDemand falls back to Copy on a host (or
 * container) without it; named, the restore is refused.
 */
/* An fd of /dev/userfaultfd that makes uffds, or -errno. */
static int userfaultfd_device(void)
{
	_cleanup_close_ int fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	_cleanup_close_ int probe = -1;

	if (fd < 0)
		return -errno;
	/* Something else in its place (a container's stand-in) makes no uffd. */
	probe = ioctl(fd, USERFAULTFD_IOC_NEW, O_CLOEXEC);
	return probe < 0 ? -errno : TAKE_FD(fd);
}

static int open_userfaultfd(enum restore_mode mode, char *err, size_t errlen)
{
	int fd;

	if (mode == RESTORE_MODE_COPY)
		return -1;
	fd = userfaultfd_device();
	if (fd >= 0)
		return fd;
	if (mode == RESTORE_MODE_ON_DEMAND) {
		err_set(err, errlen, "memory_restore_mode OnDemand needs a usable /dev/userfaultfd"
			" (Linux 6.1 or later): %s; ask for Copy instead", strerror(-fd));
		return -EOPNOTSUPP;
	}
	log_warn("no usable /dev/userfaultfd (%s): the restore copies memory in (Copy)",
		 strerror(-fd));
	return -1;
}

static int restore_open(struct vm_tree *t, struct vm_restore *rs, const char *url,
			enum restore_mode mode, bool fdstore, const struct snapshot_seal *seal,
			char *err, size_t errlen)
{
	_cleanup_close_ int dirfd = -1;
	int r;

	*rs = (struct vm_restore){ .snapd = { .pidfd = -1, .sock = -1 }, .core_end = -1,
				   .uffd = -1, .fdstore = fdstore };
	for (size_t i = 0; i < ARRAY_SIZE(rs->files); i++)
		rs->files[i] = -1;
	r = open_userfaultfd(mode, err, errlen);
	if (r < -1)
		return r;
	rs->uffd = r;
	rs->on_demand = rs->uffd >= 0;
	dirfd = snapdir_open(url, err, errlen);
	if (dirfd < 0)
		return dirfd;
	r = snapdir_open_files(dirfd, rs->files, &rs->n_regions, err, errlen);
	if (r == 0 && fdstore && rs->n_regions) {
		err_set(err, errlen, "region files beside a vm.json whose memory is in the fd store");
		r = -EBADMSG;
	}
	/* For tests: faults only, so the fault path and files cut meanwhile can be seen. */
	if (r == 0)
		r = snapd_start(t, &rs->snapd, rs->on_demand && getenv("CLOISTER_ONDEMAND_NO_PREFETCH") ?
				"load-faults-only" : "load", &rs->core_end, err, errlen);
	if (r == 0)
		r = snapd_load(t, rs, seal, err, errlen);
	return r;
}

int vm_restore_open(struct vm_tree *t, struct vm_restore *rs, const char *url,
		    enum restore_mode mode, const struct snapshot_seal *seal, char *err,
		    size_t errlen)
{
	return restore_open(t, rs, url, mode, false, seal, err, errlen);
}

int vm_restore_open_fdstore(struct vm_tree *t, struct vm_restore *rs, const char *url, char *err,
			    size_t errlen)
{
	return restore_open(t, rs, url, RESTORE_MODE_COPY, true, NULL, err, errlen);
}

int vm_restore_fill(struct vm_tree *t, struct vm_restore *rs, char *err, size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__CoreRestore rest = CLOISTER__CORE_RESTORE__INIT;
	int fds[2] = { rs->core_end, rs->uffd };
	int r;

	rest.on_demand = rs->on_demand;
	rest.memory_kept = rs->fdstore;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_RESTORE, &rest.base);
	r = tree_call(t, &t->core, &env, fds, rs->on_demand ? 2 : 1,
		      vm_snapshot_timeout_ms(rs->config ? rs->config->memory_size : 0), err, errlen);
	cleanup_closep(&rs->uffd);
	cleanup_closep(&rs->core_end);
	if (r == 0 && rs->on_demand)
		tree_adopt_pager(t, &rs->snapd);
	return r;
}

struct json_object *vm_restore_progress_json(const struct vm_tree *t)
{
	const struct tree_paging *pg = &t->paging;
	struct json_object *o;

	if (!__atomic_load_n(&pg->active, __ATOMIC_ACQUIRE))
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "mode", json_object_new_string("OnDemand"));
	json_object_object_add(o, "done", json_object_new_boolean(
		__atomic_load_n(&pg->done, __ATOMIC_ACQUIRE)));
	json_object_object_add(o, "bytes_present", json_object_new_uint64(
		__atomic_load_n(&pg->present, __ATOMIC_RELAXED)));
	json_object_object_add(o, "bytes_total", json_object_new_uint64(
		__atomic_load_n(&pg->total, __ATOMIC_RELAXED)));
	return o;
}

void vm_restore_close(struct vm_restore *rs)
{
	for (size_t i = 0; i < ARRAY_SIZE(rs->files); i++)
		cleanup_closep(&rs->files[i]);
	cleanup_closep(&rs->core_end);
	cleanup_closep(&rs->uffd);
	snapd_finish(&rs->snapd);
	if (rs->config)
		cloister__vm_config__free_unpacked(rs->config, NULL);
	rs->config = NULL;
}
