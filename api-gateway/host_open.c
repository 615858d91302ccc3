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
	/* A path handle first: what it names is looked at before anything opens it. */
	_cleanup_close_ int handle = open_no_links(path, O_PATH | O_CLOEXEC);
	struct stat st, again;
	char proc[64];
	int fd;

	if (handle < 0)
		return handle;
	if (fstat(handle, &st) < 0 || !S_ISREG(st.st_mode))
		return -EINVAL;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", handle);
	fd = open(proc, flags | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &again) < 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino) {
		close(fd);
		return -EINVAL;
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
