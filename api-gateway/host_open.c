/* SPDX-License-Identifier: Apache-2.0 */
#include "host_open.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"

static int openat2_(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (unsigned)flags,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};

	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* Kernels before 5.6: one component at a time, none of them followed. */
static int walk_open(const char *path, int flags)
{
	char copy[PATH_MAX];
	char *save = NULL, *comp, *next;
	_cleanup_close_ int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	comp = strtok_r(copy, "/", &save);
	while (dir >= 0 && comp) {
		int fd;

		next = strtok_r(NULL, "/", &save);
		fd = openat(dir, comp, next ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC :
			    flags | O_NOFOLLOW);
		if (fd < 0)
			return errno == ENOTDIR && next ? -ELOOP : -errno;
		if (!next)
			return fd;
		close(dir);
		dir = fd;
		comp = next;
	}
	return dir < 0 ? -errno : -EISDIR;
}

static int open_no_links(const char *path, int flags)
{
	int fd;

	if (!path || path[0] != '/')
		return -EINVAL;
	fd = openat2_(AT_FDCWD, path, flags);
	if (fd >= 0)
		return fd;
	if (errno == ENOSYS)
		return walk_open(path, flags);
	return -errno;
}

int host_open_strict(const char *path, int flags)
{
	/* Non-blocking, so that opening a FIFO neither waits nor succeeds unseen. */
	int fd = open_no_links(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

int host_parent_strict(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd;

	if (!path || path[0] != '/' || snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -EINVAL;
	slash = strrchr(dir, '/');
	if (slash == dir)
		return 0;
	*slash = '\0';
	fd = open_no_links(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}
