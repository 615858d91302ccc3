/* SPDX-License-Identifier: Apache-2.0 */
#include "service.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "controller.h"
#include "errmsg.h"
#include "fdstore.h"
#include "layout.h"
#include "log.h"
#include "notify.h"
#include "options.h"
#include "restart_query.h"

/* Inside $STATE_DIRECTORY: the snapshot, one being written, one a restore refused. */
#define SNAPSHOT_NAME "snapshot"
#define SNAPSHOT_NEW_NAME "snapshot.new"
#define SNAPSHOT_REFUSED_NAME "snapshot.refused"
/* vm.json of a VM whose memory waits in the fd store over a restart. */
#define FDSTORE_NAME "snapshot-fdstore"
/* Files a snapshot directory may hold; anything else makes its removal stop. */
#define SNAPSHOT_FILES_MAX 64

/* EXTEND_TIMEOUT_USEC for saving or loading this much guest memory: 30 s + 1 s per 32 MiB. */
#define EXTEND_BASE_USEC (30ull * 1000000ull)
#define EXTEND_BYTES_PER_SEC (32ull << 20)

struct service {
	bool managed;			/* a service manager listens and --config gave the VM */
	bool snapshot_on_stop;
	bool remove_pending;		/* the snapshot restored from goes once every page is in */
	uint64_t memory_size;
	int state_dirfd;		/* -1 without a state directory */
	char state_dir[PATH_MAX];
	struct notify_passed stored;	/* what the fd store handed back; api_fd unused */
};

static uint64_t extend_usec(uint64_t bytes)
{
	return EXTEND_BASE_USEC + bytes / EXTEND_BYTES_PER_SEC * 1000000ull;
}

/* The first entry of $STATE_DIRECTORY (systemd lists one per StateDirectory=, ':' apart). */
static int state_dir_open(struct service *s, char *err, size_t errlen)
{
	const char *env = getenv("STATE_DIRECTORY");
	size_t len = env ? strcspn(env, ":") : 0;

	if (!env || len == 0 || env[0] != '/' || len >= sizeof(s->state_dir)) {
		err_set(err, errlen, "snapshot_on_stop needs a state directory: StateDirectory= in the "
			"unit, or STATE_DIRECTORY=/ABSOLUTE/DIR");
		return -EINVAL;
	}
	memcpy(s->state_dir, env, len);
	s->state_dir[len] = '\0';
	s->state_dirfd = open(s->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (s->state_dirfd < 0) {
		err_set(err, errlen, "cannot open the state directory %s: %m", s->state_dir);
		return -errno;
	}
	return 0;
}

/* The keys of the config file only the service reads. */
static int config_read(struct service *s, const char *path, char *err, size_t errlen)
{
	struct json_object *cfg = json_object_from_file(path), *v, *mem;
	int r = 0;

	/* A file that does not parse is refused, with reasons, when the VM is created. */
	if (!cfg || !json_object_is_type(cfg, json_type_object)) {
		json_object_put(cfg);
		return 0;
	}
	if (json_object_object_get_ex(cfg, "snapshot_on_stop", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			err_set(err, errlen, "--config %s: snapshot_on_stop must be true or false", path);
			r = -EINVAL;
		} else {
			s->snapshot_on_stop = json_object_get_boolean(v);
		}
	}
	if (json_object_object_get_ex(cfg, "memory", &mem) &&
	    json_object_object_get_ex(mem, "size", &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > 0)
		s->memory_size = (uint64_t)json_object_get_int64(v);
	json_object_put(cfg);
	return r;
}

int service_new(const struct vm_options *o, struct service **ret, char *err, size_t errlen)
{
	struct service *s = calloc(1, sizeof(*s));
	int r = 0;

	if (!s)
		return -ENOMEM;
	*s = (struct service){ .managed = notify_enabled() && o->config_path, .state_dirfd = -1,
			       .memory_size = OPTIONS_MEMORY_DEFAULT, .stored = { .api_fd = -1 } };
	if (o->config_path)
		r = config_read(s, o->config_path, err, errlen);
	if (r == 0 && s->snapshot_on_stop)
		r = state_dir_open(s, err, errlen);
	if (r < 0) {
		service_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

/* The store keeps nothing for nobody: FDSTOREREMOVE=1 for each, and our copies closed. */
static void stored_release(struct service *s)
{
	for (size_t i = 0; i < s->stored.n_stored; i++)
		notify_fdstore_remove(s->stored.stored_name[i]);
	notify_passed_close(&s->stored);
}

void service_take_stored(struct service *s, struct notify_passed *p)
{
	s->stored = (struct notify_passed){ .api_fd = -1, .n_stored = p->n_stored };
	memcpy(s->stored.stored_fd, p->stored_fd, sizeof(p->stored_fd));
	memcpy(s->stored.stored_name, p->stored_name, sizeof(p->stored_name));
	p->n_stored = 0;
	if (s->stored.n_stored && !s->snapshot_on_stop) {
		log_warn("fd store: %zu fds handed back, but snapshot_on_stop is off: released",
			 s->stored.n_stored);
		stored_release(s);
	}
}

void service_free(struct service *s)
{
	if (!s)
		return;
	stored_release(s);
	cleanup_closep(&s->state_dirfd);
	free(s);
}

/* vm.json, or the commit marker of a write a crash cut short, which restore completes. */
static bool snapshot_present(const struct service *s, const char *name)
{
	char path[64], marker[64];

	snprintf(path, sizeof(path), "%s/vm.json", name);
	snprintf(marker, sizeof(marker), "%s/commit", name);
	return faccessat(s->state_dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
	       faccessat(s->state_dirfd, marker, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Unlinks one snapshot directory's files (vm.json first, so it stops being a snapshot), then it. */
static int snapshot_remove(const struct service *s, const char *name)
{
	int dfd = openat(s->state_dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *e;
	unsigned n = 0;
	DIR *d;
	int r = 0;

	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (unlinkat(dfd, "vm.json", 0) < 0 && errno != ENOENT)
		r = -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while (r == 0 && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		/* Only files: a directory in there is not ours to remove. */
		if (++n > SNAPSHOT_FILES_MAX || unlinkat(dfd, e->d_name, 0) < 0)
			r = n > SNAPSHOT_FILES_MAX ? -E2BIG : -errno;
	}
	closedir(d);
	if (r == 0 && unlinkat(s->state_dirfd, name, AT_REMOVEDIR) < 0)
		r = -errno;
	if (r < 0)
		log_error("cannot remove %s/%s: %s", s->state_dir, name, strerror(-r));
	return r;
}

static void snapshot_url(const struct service *s, const char *name, char *url, size_t len)
{
	snprintf(url, len, "file://%s/%s", s->state_dir, name);
}

/* A refused snapshot stays for whoever wants to know why; the older refused one goes. */
static void snapshot_set_aside(const struct service *s)
{
	snapshot_remove(s, SNAPSHOT_REFUSED_NAME);
	if (renameat(s->state_dirfd, SNAPSHOT_NAME, s->state_dirfd, SNAPSHOT_REFUSED_NAME) < 0)
		log_error("cannot move the refused snapshot aside: %m");
	else
		log_warn("the refused snapshot is kept as %s/%s", s->state_dir, SNAPSHOT_REFUSED_NAME);
}

/* The restore did not give a running VM: back to no VM, so the config can boot one. */
static int restore_undo(struct service *s, struct controller *c, char *err, size_t errlen)
{
	char why[256];

	if (controller_state(c, NULL, 0) == VM_STATE_NOT_CREATED)
		return 0;
	if (controller_run(c, VM_OP_DELETE, why, sizeof(why)) < 0) {
		err_set(err, errlen, "after a refused restore, the VM cannot be deleted: %s", why);
		return -EIO;
	}
	return 0;
}

/* 0: restored from the fd store and running; 1: not (the disk is next); -errno: stuck. */
static int restore_from_fdstore(struct service *s, struct controller *c, char *err, size_t errlen)
{
	bool have_json = snapshot_present(s, FDSTORE_NAME);
	char url[PATH_MAX + 32], why[512] = "";
	int r;

	if (!s->stored.n_stored && !have_json)
		return 1;
	if (!s->stored.n_stored) {
		log_warn("%s/%s is there but the fd store handed back no memory (the unit was stopped,"
			 " or the host restarted): removed", s->state_dir, FDSTORE_NAME);
		snapshot_remove(s, FDSTORE_NAME);
		return 1;
	}
	if (!have_json) {
		log_warn("the fd store handed back %zu fds but %s/%s holds no vm.json: released",
			 s->stored.n_stored, s->state_dir, FDSTORE_NAME);
		stored_release(s);
		return 1;
	}
	snapshot_url(s, FDSTORE_NAME, url, sizeof(url));
	log_info("restoring the VM from the fd store (%zu memfds) and %s/%s", s->stored.n_stored,
		 s->state_dir, FDSTORE_NAME);
	r = controller_restore_fdstore(c, url, &s->stored, why, sizeof(why));
	/* Running again or refused: either way the store keeps no second copy of guest RAM. */
	stored_release(s);
	snapshot_remove(s, FDSTORE_NAME);
	if (r == 0)
		return 0;
	log_warn("the VM kept in the fd store was refused (%s): trying the state directory", why);
	r = restore_undo(s, c, err, errlen);
	return r < 0 ? r : 1;
}

int service_restore(struct service *s, struct controller *c, char *err, size_t errlen)
{
	char url[PATH_MAX + 32], why[512] = "";
	int r;

	if (!s->snapshot_on_stop)
		return 1;
	r = restore_from_fdstore(s, c, err, errlen);
	if (r != 1)
		return r;
	if (!snapshot_present(s, SNAPSHOT_NAME)) {
		log_info("no snapshot in %s/%s: booting afresh", s->state_dir, SNAPSHOT_NAME);
		return 1;
	}
	snapshot_url(s, SNAPSHOT_NAME, url, sizeof(url));
	log_info("restoring the VM from %s/%s", s->state_dir, SNAPSHOT_NAME);
	notify_extend_timeout(extend_usec(s->memory_size));
	r = controller_restore(c, url, true, why, sizeof(why));
	if (r == 0) {
		/* The guest runs again; the snapshot goes once the page server is done with it. */
		s->remove_pending = true;
		service_tick(s, c);
		return 0;
	}
	log_warn("the snapshot in %s/%s was refused (%s): booting afresh", s->state_dir, SNAPSHOT_NAME,
		 why);
	snapshot_set_aside(s);
	r = restore_undo(s, c, err, errlen);
	return r < 0 ? r : 1;
}

static int pause_to_save(struct controller *c, char *err, size_t errlen)
{
	char why[512] = "";
	int r;

	if (controller_state(c, NULL, 0) == VM_STATE_RUNNING &&
	    (r = controller_run(c, VM_OP_PAUSE, why, sizeof(why))) < 0) {
		err_set(err, errlen, "cannot pause the VM to save it: %s", why);
		return r;
	}
	return 0;
}

/* How many fds guest memory takes in the store: one per region. */
static unsigned regions_needed(const struct service *s)
{
	struct layout_region regions[LAYOUT_MAX_REGIONS];

	return (unsigned)layout_memory(s->memory_size, regions);
}

/*
 * A restart keeps guest memory in the fd store and writes vm.json only.
 * 0 when saved so; < 0 when the disk has to do (logged why, nothing left).
 */
static int fdstore_save(struct service *s, struct controller *c)
{
	char url[PATH_MAX + 32], why[512] = "";
	int r = restart_query(regions_needed(s), why, sizeof(why));

	if (r <= 0) {
		log_info("saving through the state directory: %s", why);
		return -EAGAIN;
	}
	r = pause_to_save(c, why, sizeof(why));
	snapshot_remove(s, FDSTORE_NAME);
	if (r == 0 && mkdirat(s->state_dirfd, FDSTORE_NAME, 0700) < 0) {
		err_set(why, sizeof(why), "cannot create %s/%s: %m", s->state_dir, FDSTORE_NAME);
		r = -errno;
	}
	snapshot_url(s, FDSTORE_NAME, url, sizeof(url));
	if (r == 0)
		r = controller_snapshot_fdstore(c, url, why, sizeof(why));
	if (r == 0 && fsync(s->state_dirfd) < 0)
		log_warn("fsync %s: %m", s->state_dir);
	if (r < 0) {
		log_warn("cannot keep the VM in the fd store (%s): saving through the state directory",
			 why);
		snapshot_remove(s, FDSTORE_NAME);
		return r;
	}
	/* An older disk snapshot would bring back a VM from before this one. */
	snapshot_remove(s, SNAPSHOT_NAME);
	return 0;
}

/* pause, snapshot into snapshot.new, then make it the snapshot. */
static int snapshot_save(struct service *s, struct controller *c, char *err, size_t errlen)
{
	char url[PATH_MAX + 32], why[512] = "";
	int r = pause_to_save(c, err, errlen);

	if (r < 0)
		return r;
	snapshot_remove(s, FDSTORE_NAME);
	snapshot_remove(s, SNAPSHOT_NEW_NAME);
	if (mkdirat(s->state_dirfd, SNAPSHOT_NEW_NAME, 0700) < 0) {
		err_set(err, errlen, "cannot create %s/%s: %m", s->state_dir, SNAPSHOT_NEW_NAME);
		return -errno;
	}
	snapshot_url(s, SNAPSHOT_NEW_NAME, url, sizeof(url));
	notify_extend_timeout(extend_usec(s->memory_size));
	r = controller_snapshot(c, url, why, sizeof(why));
	if (r < 0) {
		err_set(err, errlen, "cannot snapshot the VM: %s", why);
		snapshot_remove(s, SNAPSHOT_NEW_NAME);
		return r;
	}
	/* On disk before it counts: the host may be going down. */
	if (syncfs(s->state_dirfd) < 0)
		log_warn("syncfs %s: %m", s->state_dir);
	s->remove_pending = false;
	snapshot_remove(s, SNAPSHOT_NAME);
	if (renameat(s->state_dirfd, SNAPSHOT_NEW_NAME, s->state_dirfd, SNAPSHOT_NAME) < 0 ||
	    fsync(s->state_dirfd) < 0) {
		err_set(err, errlen, "cannot put the snapshot in place in %s: %m", s->state_dir);
		return -errno;
	}
	return 0;
}

void service_tick(struct service *s, struct controller *c)
{
	char why[256] = "";
	enum vm_state st;

	if (!s->remove_pending)
		return;
	st = controller_state(c, why, sizeof(why));
	if ((st == VM_STATE_RUNNING || st == VM_STATE_PAUSED) && !controller_memory_paged(c))
		return;
	s->remove_pending = false;
	if (st != VM_STATE_RUNNING && st != VM_STATE_PAUSED && why[0]) {
		log_warn("the VM failed before it was all paged in: %s/%s is kept", s->state_dir,
			 SNAPSHOT_NAME);
		return;
	}
	snapshot_remove(s, SNAPSHOT_NAME);
}

bool service_saves_on_stop(const struct service *s)
{
	return s->snapshot_on_stop;
}

int service_stop(struct service *s, struct controller *c, char *err, size_t errlen)
{
	enum vm_state st = controller_state(c, NULL, 0);
	int r;

	if (!s->snapshot_on_stop || (st != VM_STATE_RUNNING && st != VM_STATE_PAUSED)) {
		notify_stopping("VM stopping");
		return 0;
	}
	notify_stopping("VM saving into the state directory");
	if (fdstore_save(s, c) == 0) {
		log_info("the VM's memory is in the fd store and its state in %s/%s; the restart "
			 "restores it", s->state_dir, FDSTORE_NAME);
		return 0;
	}
	r = snapshot_save(s, c, err, errlen);
	if (r == 0)
		log_info("the VM is saved in %s/%s; the next start restores it", s->state_dir,
			 SNAPSHOT_NAME);
	return r;
}

bool service_vm_ended(struct service *s, struct controller *c, bool *ret_failed, char *err,
		      size_t errlen)
{
	if (!s->managed || controller_state(c, err, errlen) != VM_STATE_SHUTDOWN)
		return false;
	*ret_failed = err[0] != '\0';
	return true;
}
