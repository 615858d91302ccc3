/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The file work of a snapshot, on fds the gateway opened: snapshotd itself
 * never opens a path. Region files are sparse both ways: memory the guest
 * never wrote (or left zeroed) costs no disk, and loading leaves those pages
 * unallocated in the memfd.
 */
#ifndef CLOISTER_SNAPSHOT_H
#define CLOISTER_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

/* Largest vm.json snapshot_read_json() accepts. */
#define SNAPSHOT_MAX_JSON (16u << 20)

/*
 * Copies the first size bytes of memfd_ro into out_fd, an empty regular file:
 * only data ranges of the memfd (SEEK_DATA/SEEK_HOLE) and, within them, only
 * pages that are not all zero are written. Then out_fd is sized to size and
 * fdatasync()ed. -EINVAL if out_fd is not an empty regular file or the memfd
 * is smaller than size.
 */
int snapshot_write_region(int memfd_ro, uint64_t size, int out_fd);

/* Writes text to out_fd (empty, regular) and fsync()s it. */
int snapshot_write_json(int out_fd, const char *text);

/*
 * Checks that fd, the region file called name, is a regular file of exactly
 * size bytes. -EINVAL with "memory-region-1 is 12345 bytes, expected
 * 1073741824" (or similar) in err otherwise.
 */
int snapshot_check_region_file(int fd, const char *name, uint64_t size, char *err,
			       size_t errlen);

/*
 * Copies the first size bytes of file_fd into memfd_rw (at least size bytes,
 * fresh, so reading as zero), writing only data ranges and non-zero pages.
 */
int snapshot_fill_region(int file_fd, uint64_t size, int memfd_rw);

/*
 * Reads the whole of fd (a regular file) into a NUL-terminated string.
 * -EFBIG beyond SNAPSHOT_MAX_JSON. *ret_text is free()d by the caller,
 * *ret_len gets its length.
 */
int snapshot_read_json(int fd, char **ret_text, size_t *ret_len);

#endif
