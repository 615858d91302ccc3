/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Disk checkpoints (see disk_checkpoint.h). The copies are made while the
 * VM is paused: the disk processes have finished every request the guest
 * made, so each image holds exactly what the guest had written when its
 * memory was saved.
 *
 * Order on a snapshot: the old disks.json goes first; the copies are made
 * under .tmp names; the memory snapshot is written and committed; then the
 * copies take their names and disks.json is written last. A failure at any
 * point leaves no disks.json that pairs disks with the wrong memory: a
 * restore then uses the disks the snapshot's config names (or binds).
 */
#include "disk_checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "errmsg.h"
#include "io.h"
#include "log.h"
#include "snapshot_dir.h"
#include "vm_snapshot.h"

#define LIST_MAX_BYTES (64 * 1024)
#define TMP_SUFFIX ".tmp"
#define COPY_CHUNK (1u << 20)

bool disk_checkpoint_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > DISK_CHECKPOINT_ID_MAX)
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static const char *copy_method_name(enum disk_copy_method m)
{
	return m == DISK_COPY_REFLINK ? "reflink" : "sparse copy";
}

/* ---- copying an image ---- */

static int copy_range_rw(int src, int dst, off_t off, off_t end)
{
	_cleanup_free_ char *buf = malloc(COPY_CHUNK);

	if (!buf)
		return -ENOMEM;
	while (off < end) {
		size_t want = (size_t)(end - off) < COPY_CHUNK ? (size_t)(end - off) : COPY_CHUNK;
		ssize_t n = io_pread_full(src, buf, want, off);
		int r;

		if (n <= 0)
			return n < 0 ? (int)n : -EIO;
		r = io_pwrite_all(dst, buf, (size_t)n, off);
		if (r < 0)
			return r;
		off += n;
	}
	return 0;
}

/* One data extent: copy_file_range() where the kernel can, plain reads and writes else. */
static int copy_range(int src, int dst, off_t off, off_t end)
{
	while (off < end) {
		loff_t in = off, out = off;
		ssize_t n = copy_file_range(src, &in, dst, &out, (size_t)(end - off), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
			      errno == EOPNOTSUPP))
			return copy_range_rw(src, dst, off, end);
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += n;
	}
	return 0;
}

static int copy_sparse(int src, int dst, off_t size)
{
	off_t off = 0, end;
	int r;

	if (ftruncate(dst, size) < 0)
		return -errno;
	while (off < size) {
		off = lseek(src, off, SEEK_DATA);
		if (off < 0 && errno == ENXIO)
			return 0;
		if (off < 0 && errno == EINVAL)	/* no SEEK_DATA here: all of it is data */
			return copy_range(src, dst, 0, size);
		if (off < 0)
			return -errno;
		end = lseek(src, off, SEEK_HOLE);
		if (end < 0 || end > size)
			end = size;
		r = copy_range(src, dst, off, end);
		if (r < 0)
			return r;
		off = end;
	}
	return 0;
}

int disk_copy(int src, int dst, enum disk_copy_method how, enum disk_copy_method *ret_used)
{
	struct stat st;
	int r;

	if (fstat(src, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (how != DISK_COPY_SPARSE) {
		if (ioctl(dst, FICLONE, src) == 0) {
			*ret_used = DISK_COPY_REFLINK;
			return 0;
		}
		if (how == DISK_COPY_REFLINK)
			return -errno;
	}
	r = copy_sparse(src, dst, st.st_size);
	if (r == 0)
		*ret_used = DISK_COPY_SPARSE;
	return r;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Copies the image at src into name under dirfd (created, or emptied), and syncs it. */
static int copy_into(int src, int dirfd, const char *name, bool exclusive,
		     enum disk_copy_method *ret_used, char *err, size_t errlen)
{
	int flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
	_cleanup_close_ int dst = openat(dirfd, name, flags, 0600);
	int r;

	if (dst < 0) {
		err_set(err, errlen, "cannot create %s in the snapshot directory: %m", name);
		return -errno;
	}
	r = disk_copy(src, dst, DISK_COPY_AUTO, ret_used);
	if (r == 0 && fsync(dst) < 0)
		r = -errno;
	if (r < 0) {
		err_set(err, errlen, "cannot copy a disk into %s: %s", name, strerror(-r));
		unlinkat(dirfd, name, 0);
	}
	return r;
}

/* ---- the snapshot side ---- */

static bool disk_writable(const Cloister__DeviceConfig *d)
{
	return strcmp(d->kind, "blk") == 0 && !d->readonly;
}

static void checkpoint_name(const char *id, bool tmp, char *buf, size_t len)
{
	snprintf(buf, len, DISK_CHECKPOINT_FMT "%s", id, tmp ? TMP_SUFFIX : "");
}

static int open_dir(const char *url, char *err, size_t errlen)
{
	_cleanup_free_ char *path = NULL;
	int fd;

	if (parse_file_url(url, &path) < 0) {
		err_set(err, errlen, "%s is not a file:/// URL with an absolute path", url);
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		err_set(err, errlen, "cannot open the snapshot directory %s: %m", path);
	return fd < 0 ? -errno : fd;
}

static int remove_list(int dirfd)
{
	if (unlinkat(dirfd, DISK_CHECKPOINT_LIST, 0) < 0 && errno != ENOENT)
		return -errno;
	return fsync(dirfd) < 0 ? -errno : 0;
}

static void remove_tmps(int dirfd, const Cloister__VmConfig *config)
{
	char name[64];

	for (size_t i = 0; i < config->n_devices; i++) {
		if (!disk_writable(config->devices[i]) || !disk_checkpoint_id_ok(config->devices[i]->id))
			continue;
		checkpoint_name(config->devices[i]->id, true, name, sizeof(name));
		unlinkat(dirfd, name, 0);
	}
}

/* A snapshot without checkpoint: the older one's copies of these disks go too. */
static void remove_checkpoints(int dirfd, const Cloister__VmConfig *config)
{
	char name[64];

	for (size_t i = 0; i < config->n_devices; i++) {
		if (strcmp(config->devices[i]->kind, "blk") != 0 ||
		    !disk_checkpoint_id_ok(config->devices[i]->id))
			continue;
		checkpoint_name(config->devices[i]->id, false, name, sizeof(name));
		unlinkat(dirfd, name, 0);
	}
}

/* Copies one writable disk to its .tmp name and adds its entry to list. */
static int checkpoint_one(int dirfd, const Cloister__DeviceConfig *d, struct json_object *list,
			  char *err, size_t errlen)
{
	_cleanup_close_ int src = -1;
	enum disk_copy_method used;
	struct json_object *e;
	struct timespec t0;
	char name[64];
	struct stat st;
	int r;

	if (!disk_checkpoint_id_ok(d->id)) {
		err_set(err, errlen, "disk %s: a checkpoint needs an id of letters, digits, _ and -",
			d->id);
		return -EINVAL;
	}
	src = open(d->path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (src < 0 || fstat(src, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(err, errlen, "disk %s: a checkpoint copies a regular image file (%s)", d->id,
			src < 0 ? strerror(errno) : "not one");
		return src < 0 ? -errno : -EINVAL;
	}
	checkpoint_name(d->id, true, name, sizeof(name));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = copy_into(src, dirfd, name, false, &used, err, errlen);
	if (r < 0)
		return r;
	log_info("disk %s: checkpoint of %" PRIu64 " bytes by %s in %.1f ms", d->id,
		 (uint64_t)st.st_size, copy_method_name(used), ms_since(&t0));
	checkpoint_name(d->id, false, name, sizeof(name));
	e = json_object_new_object();
	if (!e)
		return -ENOMEM;
	json_object_object_add(e, "id", json_object_new_string(d->id));
	json_object_object_add(e, "file", json_object_new_string(name));
	json_object_object_add(e, "size", json_object_new_int64((int64_t)st.st_size));
	return json_object_array_add(list, e) < 0 ? -ENOMEM : 0;
}

static int checkpoint_all(int dirfd, const Cloister__VmConfig *config, struct json_object *list,
			  char *err, size_t errlen)
{
	int r = 0;

	for (size_t i = 0; i < config->n_devices && r == 0; i++)
		if (disk_writable(config->devices[i]))
			r = checkpoint_one(dirfd, config->devices[i], list, err, errlen);
	return r;
}

static int write_list(int dirfd, struct json_object *list)
{
	_cleanup_close_ int fd = -1;
	struct json_object *doc = json_object_new_object();
	const char *text;
	ssize_t len;
	int r = 0;

	if (!doc)
		return -ENOMEM;
	json_object_object_add(doc, "version", json_object_new_int(DISK_CHECKPOINT_VERSION));
	json_object_object_add(doc, "disks", json_object_get(list));
	text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY);
	len = (ssize_t)strlen(text);
	fd = openat(dirfd, DISK_CHECKPOINT_LIST TMP_SUFFIX,
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, (size_t)len) != len || fsync(fd) < 0)
		r = errno ? -errno : -ENOSPC;
	json_object_put(doc);
	if (r == 0 && renameat(dirfd, DISK_CHECKPOINT_LIST TMP_SUFFIX, dirfd, DISK_CHECKPOINT_LIST) < 0)
		r = -errno;
	return r;
}

/* After the memory snapshot committed: the copies take their names, then the list. */
static int publish(int dirfd, const Cloister__VmConfig *config, struct json_object *list)
{
	char from[64], to[64];

	for (size_t i = 0; i < config->n_devices; i++) {
		if (!disk_writable(config->devices[i]))
			continue;
		checkpoint_name(config->devices[i]->id, true, from, sizeof(from));
		checkpoint_name(config->devices[i]->id, false, to, sizeof(to));
		if (renameat(dirfd, from, dirfd, to) < 0)
			return -errno;
	}
	if (fsync(dirfd) < 0)
		return -errno;
	return write_list(dirfd, list) < 0 || fsync(dirfd) < 0 ? -EIO : 0;
}

int disk_checkpoint_snapshot(struct vm_tree *t, Cloister__VmConfig *config, const char *url,
			     bool checkpoint, const struct snapshot_seal *seal, char *err,
			     size_t errlen)
{
	_cleanup_close_ int dirfd = open_dir(url, err, errlen);
	struct json_object *list = NULL;
	int r;

	/* No directory: the snapshot itself says what is wrong with it. */
	if (dirfd < 0)
		return checkpoint ? dirfd : vm_snapshot_write(t, config, url, seal, err, errlen);
	r = remove_list(dirfd);
	if (r < 0) {
		err_set(err, errlen, "cannot remove the older disk checkpoint list: %s", strerror(-r));
		return r;
	}
	if (!checkpoint) {
		r = vm_snapshot_write(t, config, url, seal, err, errlen);
		if (r == 0)
			remove_checkpoints(dirfd, config);
		return r;
	}
	list = json_object_new_array();
	if (!list)
		return -ENOMEM;
	r = checkpoint_all(dirfd, config, list, err, errlen);
	if (r == 0)
		r = vm_snapshot_write(t, config, url, seal, err, errlen);
	if (r == 0 && (r = publish(dirfd, config, list)) < 0)
		err_set(err, errlen, "the memory snapshot is written but its disk checkpoint could not "
			"be put in place: %s", strerror(-r));
	if (r < 0)
		remove_tmps(dirfd, config);
	json_object_put(list);
	return r;
}

/* ---- the restore side ---- */

static int bind_copy(const struct restore_bind *from, struct restore_bind *to)
{
	*to = (struct restore_bind){ .has_sink = from->has_sink, .sink_mode = from->sink_mode,
				     .has_tap_fd = from->has_tap_fd, .tap_fd = from->tap_fd };
	to->id = strdup(from->id);
	to->path = from->path ? strdup(from->path) : NULL;
	to->tap = from->tap ? strdup(from->tap) : NULL;
	to->sink_path = from->sink_path ? strdup(from->sink_path) : NULL;
	if (!to->id || (from->path && !to->path) || (from->tap && !to->tap) ||
	    (from->sink_path && !to->sink_path))
		return -ENOMEM;
	return 0;
}

static int binds_copy(const struct restore_binds *from, struct restore_binds *to)
{
	int r = 0;

	to->n = 0;
	for (size_t i = 0; from && i < from->n && r == 0; i++) {
		r = bind_copy(&from->b[i], &to->b[i]);
		to->n = i + 1;
	}
	return r;
}

static bool bound(const struct restore_binds *binds, const char *id)
{
	for (size_t i = 0; binds && i < binds->n; i++)
		if (strcmp(binds->b[i].id, id) == 0)
			return true;
	return false;
}

static const Cloister__DeviceConfig *find_disk(const Cloister__VmConfig *config, const char *id)
{
	for (size_t i = 0; i < config->n_devices; i++)
		if (strcmp(config->devices[i]->id, id) == 0 && disk_writable(config->devices[i]))
			return config->devices[i];
	return NULL;
}

/* One entry of disks.json, checked against the snapshot's config. */
static int entry_parse(struct json_object *e, const Cloister__VmConfig *config, const char **ret_id,
		       uint64_t *ret_size, char *err, size_t errlen)
{
	struct json_object *id, *file, *size;
	const Cloister__DeviceConfig *d;
	char want[64];

	if (!json_object_is_type(e, json_type_object) ||
	    !json_object_object_get_ex(e, "id", &id) || !json_object_is_type(id, json_type_string) ||
	    !json_object_object_get_ex(e, "file", &file) || !json_object_is_type(file, json_type_string) ||
	    !json_object_object_get_ex(e, "size", &size) || !json_object_is_type(size, json_type_int) ||
	    json_object_get_int64(size) < 0 || !disk_checkpoint_id_ok(json_object_get_string(id))) {
		err_set(err, errlen, DISK_CHECKPOINT_LIST ": an entry is not {\"id\", \"file\", \"size\"}");
		return -EBADMSG;
	}
	checkpoint_name(json_object_get_string(id), false, want, sizeof(want));
	if (strcmp(json_object_get_string(file), want) != 0) {
		err_set(err, errlen, DISK_CHECKPOINT_LIST ": disk %s must be in %s",
			json_object_get_string(id), want);
		return -EBADMSG;
	}
	d = find_disk(config, json_object_get_string(id));
	if (!d || d->disk_size != (uint64_t)json_object_get_int64(size)) {
		err_set(err, errlen, DISK_CHECKPOINT_LIST ": disk %s is not a writable disk of that "
			"size in the snapshot's config", json_object_get_string(id));
		return -EBADMSG;
	}
	*ret_id = json_object_get_string(id);
	*ret_size = (uint64_t)json_object_get_int64(size);
	return 0;
}

/* The checkpoint file: regular, one link, ours, of the size recorded. */
static int open_checkpoint(int dirfd, const char *id, uint64_t size, char *err, size_t errlen)
{
	char name[64];
	struct stat st;
	int fd;

	checkpoint_name(id, false, name, sizeof(name));
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
	    (st.st_uid == geteuid() || st.st_uid == 0) && (uint64_t)st.st_size == size)
		return fd;
	err_set(err, errlen, "disk %s: its checkpoint %s is missing, or not a single regular file "
		"of ours of %" PRIu64 " bytes", id, name, size);
	if (fd >= 0)
		close(fd);
	return -EBADMSG;
}

/* A fresh copy of disk id's checkpoint, bound in ret. */
static int clone_one(int dirfd, const char *dir, const char *id, uint64_t size,
		     struct restore_binds *ret, char *err, size_t errlen)
{
	_cleanup_close_ int src = open_checkpoint(dirfd, id, size, err, errlen);
	enum disk_copy_method used;
	struct restore_bind *b;
	struct timespec t0;
	uint64_t tag;
	char name[96];
	int r;

	if (src < 0)
		return src;
	if (ret->n >= OPTIONS_MAX_RESTORE_BINDS) {
		err_set(err, errlen, "too many restore bindings");
		return -E2BIG;
	}
	if (getrandom(&tag, sizeof(tag), 0) != sizeof(tag))
		return -EIO;
	snprintf(name, sizeof(name), "clone-%s-%016" PRIx64 ".img", id, tag);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = copy_into(src, dirfd, name, true, &used, err, errlen);
	if (r < 0)
		return r;
	log_info("disk %s: restored from its checkpoint into %s by %s in %.1f ms", id, name,
		 copy_method_name(used), ms_since(&t0));
	b = &ret->b[ret->n++];
	*b = (struct restore_bind){ .id = strdup(id) };
	if (!b->id || asprintf(&b->path, "%s/%s", dir, name) < 0) {
		b->path = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int read_list(int dirfd, struct json_object **ret, char *err, size_t errlen)
{
	_cleanup_free_ char *text = malloc(LIST_MAX_BYTES);
	struct json_object *doc, *v;
	size_t len;
	int r;

	if (!text)
		return -ENOMEM;
	r = snapdir_read_small(dirfd, DISK_CHECKPOINT_LIST, text, LIST_MAX_BYTES, &len);
	if (r == -ENOENT)
		return 0;
	doc = r == 0 ? json_tokener_parse(text) : NULL;
	if (!doc || !json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "version", &v) ||
	    json_object_get_int(v) != DISK_CHECKPOINT_VERSION ||
	    !json_object_object_get_ex(doc, "disks", &v) || !json_object_is_type(v, json_type_array)) {
		json_object_put(doc);
		err_set(err, errlen, DISK_CHECKPOINT_LIST " is not a version %d disk checkpoint list",
			DISK_CHECKPOINT_VERSION);
		return -EBADMSG;
	}
	*ret = doc;
	return 0;
}

int disk_checkpoint_restore(const Cloister__VmConfig *config, const char *url,
			    const struct restore_binds *binds, struct restore_binds *ret, char *err,
			    size_t errlen)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dirfd = -1;
	struct json_object *doc = NULL, *disks;
	int r = binds_copy(binds, ret);

	if (r < 0 || parse_file_url(url, &dir) < 0)
		return r < 0 ? r : -EINVAL;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return 0;	/* the restore itself reports a missing directory */
	r = read_list(dirfd, &doc, err, errlen);
	if (r < 0 || !doc)
		return r;
	json_object_object_get_ex(doc, "disks", &disks);
	for (size_t i = 0; i < json_object_array_length(disks) && r == 0; i++) {
		const char *id = NULL;
		uint64_t size = 0;

		r = entry_parse(json_object_array_get_idx(disks, i), config, &id, &size, err, errlen);
		if (r == 0 && !bound(ret, id))
			r = clone_one(dirfd, dir, id, size, ret, err, errlen);
	}
	json_object_put(doc);
	return r;
}

int disk_checkpoint_check(int dirfd, const Cloister__VmConfig *config,
			  char ret_ids[][DISK_CHECKPOINT_ID_MAX + 1], size_t max, size_t *ret_n,
			  char *err, size_t errlen)
{
	struct json_object *doc = NULL, *disks;
	size_t n = 0;
	int r = read_list(dirfd, &doc, err, errlen);

	if (r < 0 || !doc) {
		*ret_n = 0;
		return r;
	}
	json_object_object_get_ex(doc, "disks", &disks);
	for (size_t i = 0; i < json_object_array_length(disks) && r == 0; i++) {
		const char *id = NULL;
		uint64_t size = 0;
		int fd;

		r = entry_parse(json_object_array_get_idx(disks, i), config, &id, &size, err, errlen);
		if (r < 0)
			break;
		fd = open_checkpoint(dirfd, id, size, err, errlen);
		if (fd < 0) {
			r = fd;
			break;
		}
		close(fd);
		if (n < max)
			snprintf(ret_ids[n++], DISK_CHECKPOINT_ID_MAX + 1, "%s", id);
	}
	json_object_put(doc);
	*ret_n = n;
	return r;
}
