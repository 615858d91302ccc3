/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "snapshot.h"
#include "io.h"

#define COPY_CHUNK (1u << 20)
#define COPY_PAGE 4096u

static int read_full(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = io_pread_full(fd, buf, len, off);

	if (n < 0)
		return (int)n;
	/* The source shrank under us: refuse rather than save a short copy. */
	if ((size_t)n != len)
		return -EIO;
	return 0;
}

static int write_full(int fd, const void *buf, size_t len, off_t off)
{
	return io_pwrite_all(fd, buf, len, off);
}

static bool page_is_zero(const uint8_t *p, size_t len)
{
	return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

/* Writes the pages of buf (file offset off) that hold anything but zeros. */
static int write_nonzero_pages(int fd, const uint8_t *buf, size_t len, off_t off)
{
	size_t run = 0, pos = 0;

	while (pos < len) {
		size_t page = len - pos < COPY_PAGE ? len - pos : COPY_PAGE;

		if (page_is_zero(buf + pos, page)) {
			if (pos > run) {
				int r = write_full(fd, buf + run, pos - run, off + (off_t)run);

				if (r < 0)
					return r;
			}
			run = pos + page;
		}
		pos += page;
	}
	if (pos > run)
		return write_full(fd, buf + run, pos - run, off + (off_t)run);
	return 0;
}

/*
 * Finds the next data range of fd in [pos, end). Without SEEK_DATA support
 * everything counts as data; *ret_start == end means no more data.
 */
static int next_data_range(int fd, off_t pos, off_t end, off_t *ret_start, off_t *ret_end)
{
	off_t s = lseek(fd, pos, SEEK_DATA), e;

	if (s < 0 && errno == ENXIO)
		s = end;
	else if (s < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
		s = pos;
	else if (s < 0)
		return -errno;
	if (s >= end) {
		*ret_start = *ret_end = end;
		return 0;
	}
	e = lseek(fd, s, SEEK_HOLE);
	if (e < 0 || e > end)
		e = end;
	*ret_start = s;
	*ret_end = e;
	return 0;
}

static int copy_range(int src, int dst, off_t start, off_t end, uint8_t *buf)
{
	while (start < end) {
		size_t len = (uint64_t)(end - start) < COPY_CHUNK ? (size_t)(end - start) : COPY_CHUNK;
		int r = read_full(src, buf, len, start);

		if (r < 0)
			return r;
		r = write_nonzero_pages(dst, buf, len, start);
		if (r < 0)
			return r;
		start += (off_t)len;
	}
	return 0;
}

static int copy_sparse(int src, int dst, uint64_t size)
{
	_cleanup_free_ uint8_t *buf = malloc(COPY_CHUNK);
	off_t pos = 0, end = (off_t)size;

	if (!buf)
		return -ENOMEM;
	while (pos < end) {
		off_t s = end, e = end;
		int r = next_data_range(src, pos, end, &s, &e);

		if (r < 0)
			return r;
		if (s >= end)
			break;
		r = copy_range(src, dst, s, e, buf);
		if (r < 0)
			return r;
		pos = e;
	}
	return 0;
}

static int check_fd_size(int fd, uint64_t min_size, bool want_empty_file)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (want_empty_file)
		return S_ISREG(st.st_mode) && st.st_size == 0 ? 0 : -EINVAL;
	return (uint64_t)st.st_size >= min_size ? 0 : -EINVAL;
}

int snapshot_write_region(int memfd_ro, uint64_t size, int out_fd)
{
	int r;

	if (size > INT64_MAX)
		return -EINVAL;
	r = check_fd_size(memfd_ro, size, false);
	if (r == 0)
		r = check_fd_size(out_fd, 0, true);
	if (r == 0)
		r = copy_sparse(memfd_ro, out_fd, size);
	if (r < 0)
		return r;
	if (ftruncate(out_fd, (off_t)size) < 0 || fdatasync(out_fd) < 0)
		return -errno;
	return 0;
}

int snapshot_write_json(int out_fd, const char *text)
{
	int r = check_fd_size(out_fd, 0, true);

	if (r == 0)
		r = write_full(out_fd, text, strlen(text), 0);
	if (r < 0)
		return r;
	return fsync(out_fd) < 0 ? -errno : 0;
}

int snapshot_check_region_file(int fd, const char *name, uint64_t size, char *err,
			       size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", name);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size != size) {
		snprintf(err, errlen, "%s is %" PRIu64 " bytes, expected %" PRIu64, name,
			 (uint64_t)st.st_size, size);
		return -EINVAL;
	}
	return 0;
}

int snapshot_fill_region(int file_fd, uint64_t size, int memfd_rw)
{
	int r;

	if (size > INT64_MAX)
		return -EINVAL;
	r = check_fd_size(file_fd, size, false);
	if (r == 0)
		r = check_fd_size(memfd_rw, size, false);
	if (r < 0)
		return r;
	return copy_sparse(file_fd, memfd_rw, size);
}

int snapshot_read_json(int fd, char **ret_text, size_t *ret_len)
{
	_cleanup_free_ char *text = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > SNAPSHOT_MAX_JSON)
		return -EFBIG;
	text = malloc((size_t)st.st_size + 1);
	if (!text)
		return -ENOMEM;
	/* Read what fstat promised and no more, so a growing file cannot push past the cap. */
	n = io_pread_full(fd, text, (size_t)st.st_size, 0);
	if (n < 0)
		return (int)n;
	len = (size_t)n;
	text[len] = '\0';
	*ret_text = TAKE_PTR(text);
	*ret_len = len;
	return 0;
}
