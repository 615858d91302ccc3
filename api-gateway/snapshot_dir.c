/* SPDX-License-Identifier: Apache-2.0 */
#include "snapshot_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "errmsg.h"
#include "layout.h"
#include "log.h"
#include "options.h"

#define PARTIAL_SUFFIX ".partial"
#define COMMIT_NAME "commit"
/* How long a restore waits for another to finish recovering the directory: 1 s. */
#define SNAPDIR_LOCK_TRIES 100u
#define SNAPDIR_LOCK_RETRY_NS 10000000L
#define COMMIT_MAX_TEXT 32

/* The name of file i of a snapshot: 0 vm.json, 1 host-bindings, 2 + n memory-region-n. */
#define SNAPDIR_FIXED_FILES 2
#define SNAPDIR_ALL_FILES (SNAPDIR_FIXED_FILES + LAYOUT_MAX_REGIONS)

static void file_name(size_t i, bool partial, char *buf, size_t len)
{
	const char *tail = partial ? PARTIAL_SUFFIX : "";

	if (i == 0)
		snprintf(buf, len, "vm.json%s", tail);
	else if (i == 1)
		snprintf(buf, len, SNAPDIR_BINDINGS_NAME "%s", tail);
	else
		snprintf(buf, len, SNAPDIR_REGION_FMT "%s", i - SNAPDIR_FIXED_FILES, tail);
}

static bool name_exists(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Removes name if it is there; a directory we may not write is left alone quietly. */
static void remove_if_there(int dirfd, const char *name)
{
	if (name_exists(dirfd, name) && unlinkat(dirfd, name, 0) < 0)
		log_warn("snapshot directory: cannot remove %s: %m", name);
}

/* What an interrupted write left behind before its commit point. */
static void remove_partials(int dirfd)
{
	char name[64];

	for (size_t i = 0; i < SNAPDIR_ALL_FILES; i++) {
		file_name(i, true, name, sizeof(name));
		remove_if_there(dirfd, name);
	}
	remove_if_there(dirfd, COMMIT_NAME PARTIAL_SUFFIX);
}

static int dir_sync(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

/*
 * Past the commit point: every partial file takes its final name (one
 * already moved by an earlier, interrupted attempt is simply not there),
 * regions beyond the new count go, vm.json comes last, then the marker.
 */
static int roll_forward(int dirfd, size_t n_regions)
{
	char from[64], to[64];

	for (size_t i = SNAPDIR_ALL_FILES; i-- > 0;) {
		file_name(i, true, from, sizeof(from));
		file_name(i, false, to, sizeof(to));
		if (i >= SNAPDIR_FIXED_FILES + n_regions) {
			remove_if_there(dirfd, from);
			if (name_exists(dirfd, to) && unlinkat(dirfd, to, 0) < 0)
				return -errno;
			continue;
		}
		if (renameat(dirfd, from, dirfd, to) < 0 && errno != ENOENT)
			return -errno;
	}
	if (dir_sync(dirfd) < 0 || unlinkat(dirfd, COMMIT_NAME, 0) < 0 || dir_sync(dirfd) < 0)
		return -errno;
	return 0;
}

/* The region count a commit marker holds; -EBADMSG when it is not one of ours. */
static int commit_read(int dirfd, size_t *ret_n)
{
	_cleanup_close_ int fd = openat(dirfd, COMMIT_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	char text[COMMIT_MAX_TEXT + 1];
	unsigned n;
	char nl;
	ssize_t len;

	if (fd < 0)
		return -errno;
	len = read(fd, text, COMMIT_MAX_TEXT);
	if (len <= 0)
		return -EBADMSG;
	text[len] = '\0';
	if (sscanf(text, "regions %u%c", &n, &nl) != 2 || nl != '\n' || n > LAYOUT_MAX_REGIONS)
		return -EBADMSG;
	*ret_n = n;
	return 0;
}

/* Finishes a publish a killed gateway left half done, or clears what it left unfinished. */
static int recover(int dirfd, char *err, size_t errlen)
{
	size_t n = 0;
	int r;

	if (!name_exists(dirfd, COMMIT_NAME)) {
		remove_partials(dirfd);
		return 0;
	}
	r = commit_read(dirfd, &n);
	if (r == 0)
		r = roll_forward(dirfd, n);
	if (r < 0) {
		err_set(err, errlen, "the snapshot directory holds an interrupted snapshot that cannot "
			"be completed: %s", strerror(-r));
		return r == -EBADMSG ? r : -EIO;
	}
	log_info("completed a snapshot an earlier cloister had committed but not put in place");
	return 0;
}

/*
 * The lock goes with the fd: shared among readers (restores, which may run
 * side by side), exclusive for a writer (snapdir_create_partials() takes it
 * over). Whoever finds the directory unlocked takes it exclusively first,
 * completes or clears what an interrupted writer left, then shares it; a
 * reader that finds it shared joins without recovering, since the holder
 * recovered and no writer can have run since.
 */
static int lock_try(int fd, char *err, size_t errlen)
{
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		int r = recover(fd, err, errlen);

		if (r < 0)
			return r;
		return flock(fd, LOCK_SH | LOCK_NB) < 0 ? -errno : 0;
	}
	if (errno != EWOULDBLOCK)
		return -errno;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	return 0;
}

/*
 * Another reader holds the lock exclusively only while it recovers, so a
 * busy directory is tried again for a short while before a writer is
 * taken to hold it.
 */
static int lock_for_reading(int fd, char *err, size_t errlen)
{
	const struct timespec pause = { .tv_nsec = SNAPDIR_LOCK_RETRY_NS };
	int r = -EBUSY;

	for (unsigned i = 0; i < SNAPDIR_LOCK_TRIES && r == -EBUSY; i++) {
		if (i)
			nanosleep(&pause, NULL);
		r = lock_try(fd, err, errlen);
	}
	if (r < 0 && r != -EBUSY && r != -EBADMSG && r != -EIO)
		err_set(err, errlen, "cannot lock the snapshot directory: %s", strerror(-r));
	return r;
}

int snapdir_open(const char *url, char *err, size_t errlen)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (parse_file_url(url, &path) < 0) {
		err_set(err, errlen, "%s is not a file:/// URL of an absolute directory", url);
		return -EBADMSG;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		err_set(err, errlen, "snapshot directory %s: %s", path,
			e == ENOENT ? "does not exist" : strerror(e));
		return e == ENOENT || e == ENOTDIR ? -EBADMSG : -e;
	}
	r = lock_for_reading(fd, err, errlen);
	if (r == -EBUSY)
		err_set(err, errlen, "snapshot directory %s: another cloister is writing it", path);
	if (r < 0)
		return r;
	return TAKE_FD(fd);
}

void snapdir_unlink_partials(int dirfd, size_t n_regions)
{
	(void)n_regions;
	remove_partials(dirfd);
}

static int sync_name(int dirfd, const char *name)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

/* The commit point: a marker that exists under its final name only once complete. */
static int commit_write(int dirfd, size_t n_regions)
{
	_cleanup_close_ int fd = -1;
	char text[COMMIT_MAX_TEXT];
	int len = snprintf(text, sizeof(text), "regions %zu\n", n_regions);

	fd = openat(dirfd, COMMIT_NAME PARTIAL_SUFFIX, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, (size_t)len) != len)
		return errno ? -errno : -ENOSPC;
	if (fsync(fd) < 0 || renameat(dirfd, COMMIT_NAME PARTIAL_SUFFIX, dirfd, COMMIT_NAME) < 0)
		return -errno;
	/* Renamed is committed: the partial files must stay for whoever rolls forward. */
	if (dir_sync(dirfd) < 0)
		log_warn("snapshot directory: cannot sync the commit: %m");
	return 0;
}

int snapdir_publish(int dirfd, size_t n_regions, char *err, size_t errlen)
{
	char name[64];
	int r = 0;

	/* 0: the fd store keeps guest memory, only vm.json is written (vm_snapshot_write_fdstore). */
	if (n_regions > LAYOUT_MAX_REGIONS) {
		err_set(err, errlen, "a snapshot of %zu memory regions", n_regions);
		return -EINVAL;
	}
	for (size_t i = 0; i < SNAPDIR_FIXED_FILES + n_regions && r == 0; i++) {
		file_name(i, true, name, sizeof(name));
		r = sync_name(dirfd, name);
	}
	if (r == 0)
		r = commit_write(dirfd, n_regions);
	if (r < 0) {
		err_set(err, errlen, "cannot write the snapshot: %s", strerror(-r));
		return r;
	}
	/* Committed: a failure from here on is finished by the next open of the directory. */
	r = roll_forward(dirfd, n_regions);
	if (r < 0)
		log_warn("snapshot committed; putting its files in place is left to the next use of "
			 "the directory: %s", strerror(-r));
	return 0;
}

int snapdir_create_partials(int dirfd, size_t n_regions, int *fds, char *err, size_t errlen)
{
	char name[64];

	/* A writer has the directory to itself: no restore may be reading it. */
	if (flock(dirfd, LOCK_EX | LOCK_NB) < 0) {
		err_set(err, errlen, "the snapshot directory is being read by another cloister");
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	}

	for (size_t i = 0; i <= n_regions; i++) {
		/* fds[0] is vm.json's, fds[1 + n] region n's; host-bindings is written apart. */
		file_name(i == 0 ? 0 : SNAPDIR_FIXED_FILES + i - 1, true, name, sizeof(name));
		fds[i] = openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fds[i] < 0) {
			err_set(err, errlen, "cannot create %s in the snapshot directory: %m", name);
			return -errno;
		}
	}
	return 0;
}

int snapdir_write_partial(int dirfd, const char *name, const void *data, size_t len, char *err,
			  size_t errlen)
{
	_cleanup_close_ int fd = -1;
	char partial[64];
	const char *p = data;

	snprintf(partial, sizeof(partial), "%s" PARTIAL_SUFFIX, name);
	fd = openat(dirfd, partial, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	while (fd >= 0 && len) {
		ssize_t n = write(fd, p, len);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0)
				errno = ENOSPC;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fd < 0 || len) {
		err_set(err, errlen, "cannot write %s in the snapshot directory: %m", partial);
		return -errno;
	}
	return 0;
}

/* A file of the snapshot: regular, one link, so it is not another file seen twice. */
static int check_file(int fd, const char *name, bool owned, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(err, errlen, "%s is not a regular file", name);
		return -EBADMSG;
	}
	if (st.st_nlink != 1) {
		err_set(err, errlen, "%s has more than one name (a hard link): refused", name);
		return -EBADMSG;
	}
	if (owned && st.st_uid != geteuid() && st.st_uid != 0) {
		err_set(err, errlen, "%s belongs to another user (uid %u): refused", name,
			(unsigned)st.st_uid);
		return -EBADMSG;
	}
	return 0;
}

int snapdir_open_files(int dirfd, int *fds, size_t *ret_n, char *err, size_t errlen)
{
	char name[64];
	size_t n = 0;

	fds[0] = openat(dirfd, "vm.json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fds[0] < 0) {
		err_set(err, errlen, errno == ENOENT ? "no vm.json in the snapshot directory: it holds no "
			"complete snapshot" : "cannot open vm.json: %m");
		return -EBADMSG;
	}
	if (check_file(fds[0], "vm.json", false, err, errlen) < 0)
		return -EBADMSG;
	for (n = 0; n < LAYOUT_MAX_REGIONS; n++) {
		snprintf(name, sizeof(name), SNAPDIR_REGION_FMT, n);
		fds[1 + n] = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fds[1 + n] < 0 && errno == ENOENT)
			break;
		if (fds[1 + n] < 0) {
			err_set(err, errlen, "cannot open %s: %m", name);
			return -EBADMSG;
		}
		if (check_file(fds[1 + n], name, true, err, errlen) < 0)
			return -EBADMSG;
	}
	*ret_n = n;
	return 0;
}

int snapdir_read_small(int dirfd, const char *name, char *buf, size_t len, size_t *ret_len)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size >= len)
		return -EBADMSG;
	n = read(fd, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	*ret_len = (size_t)n;
	return 0;
}
