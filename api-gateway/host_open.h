/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening a host file a snapshot named, as a setuid program would: no
 * symbolic link anywhere in the path, a regular file only (no FIFO, device,
 * socket or directory), never created.
 */
#ifndef CLOISTER_HOST_OPEN_H
#define CLOISTER_HOST_OPEN_H

/*
 * Opens the absolute path with flags (O_RDONLY, O_RDWR or O_WRONLY, and
 * O_APPEND) plus O_CLOEXEC | O_NOCTTY. Returns the fd, -ELOOP when a
 * component is a link, -EINVAL when it is not a regular file, or -errno.
 */
int host_open_strict(const char *path, int flags);

/* Whether every directory above the absolute path is reached without a link; 0 or -errno. */
int host_parent_strict(const char *path);

#endif
