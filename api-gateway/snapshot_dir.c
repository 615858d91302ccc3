/* SPDX-License-Identifier: Apache-2.0 */
#include "snapshot_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "errmsg.h"
#include "layout.h"
#include "options.h"

#define PARTIAL_SUFFIX ".partial"

int snapdir_open(const char *url, char *err, size_t errlen)
{
	_cleanup_free_ char *path = NULL;
	int fd;

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
	return fd;
}

void snapdir_unlink_partials(int dirfd, size_t n_regions)
{
	char name[64];

	unlinkat(dirfd, "vm.json" PARTIAL_SUFFIX, 0);
	for (size_t i = 0; i < n_regions; i++) {
		snprintf(name, sizeof(name), SNAPDIR_REGION_FMT PARTIAL_SUFFIX, i);
		unlinkat(dirfd, name, 0);
	}
}

int snapdir_publish(int dirfd, size_t n_regions, char *err, size_t errlen)
{
	char from[64], to[64];

	for (size_t i = 0; i < n_regions; i++) {
		snprintf(from, sizeof(from), SNAPDIR_REGION_FMT PARTIAL_SUFFIX, i);
		snprintf(to, sizeof(to), SNAPDIR_REGION_FMT, i);
		if (renameat(dirfd, from, dirfd, to) < 0)
			goto fail;
	}
	if (fsync(dirfd) < 0 || renameat(dirfd, "vm.json" PARTIAL_SUFFIX, dirfd, "vm.json") < 0 ||
	    fsync(dirfd) < 0)
		goto fail;
	return 0;
fail:
	err_set(err, errlen, "cannot put the snapshot files in place: %m");
	return -errno;
}

int snapdir_create_partials(int dirfd, size_t n_regions, int *fds, char *err, size_t errlen)
{
	char name[64];

	/* An older snapshot here stops being one before any of its files change. */
	if (unlinkat(dirfd, "vm.json", 0) < 0 && errno != ENOENT) {
		err_set(err, errlen, "cannot replace the snapshot in place: %m");
		return -errno;
	}
	for (size_t i = 0; i <= n_regions; i++) {
		if (i == 0)
			snprintf(name, sizeof(name), "vm.json" PARTIAL_SUFFIX);
		else
			snprintf(name, sizeof(name), SNAPDIR_REGION_FMT PARTIAL_SUFFIX, i - 1);
		fds[i] = openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fds[i] < 0) {
			err_set(err, errlen, "cannot create %s in the snapshot directory: %m", name);
			return -errno;
		}
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
	for (n = 0; n < LAYOUT_MAX_REGIONS; n++) {
		snprintf(name, sizeof(name), SNAPDIR_REGION_FMT, n);
		fds[1 + n] = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fds[1 + n] < 0 && errno == ENOENT)
			break;
		if (fds[1 + n] < 0) {
			err_set(err, errlen, "cannot open %s: %m", name);
			return -EBADMSG;
		}
	}
	*ret_n = n;
	return 0;
}
