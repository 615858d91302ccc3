/* SPDX-License-Identifier: Apache-2.0 */
/* Whole reads and writes on blocking fds, retried on EINTR and short counts. */
#ifndef CLOISTER_IO_H
#define CLOISTER_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all len bytes: 0, or -errno (-EPIPE for a zero-length write). */
int io_write_all(int fd, const void *buf, size_t len);

/* Writes all len bytes at offset off: 0, or -errno. */
int io_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* Reads up to len bytes, stopping early only at end of file: the count, or -errno. */
ssize_t io_read_full(int fd, void *buf, size_t len);

/* Reads up to len bytes at offset off, stopping early only at end of file: the count, or -errno. */
ssize_t io_pread_full(int fd, void *buf, size_t len, off_t off);

#endif
