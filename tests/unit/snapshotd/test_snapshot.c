/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "snapshot.h"

#define MIB (1ull << 20)
#define PAGE 4096ull

static void put(int fd, uint64_t off, const void *buf, size_t len)
{
	cr_assert_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
}

/* Compares the first size bytes of two fds. */
static void expect_same_content(int a, int b, uint64_t size)
{
	static uint8_t ba[1 << 20], bb[1 << 20];

	for (uint64_t off = 0; off < size; off += sizeof(ba)) {
		size_t len = size - off < sizeof(ba) ? size - off : sizeof(ba);

		cr_assert_eq(pread(a, ba, len, (off_t)off), (ssize_t)len);
		cr_assert_eq(pread(b, bb, len, (off_t)off), (ssize_t)len);
		cr_assert_eq(memcmp(ba, bb, len), 0, "differ in [%lu, +%zu)", off, len);
	}
}

static uint64_t allocated(int fd)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* 64 MiB memfd: three data pages, one written-but-zero 1 MiB range, the rest never touched. */
static int sample_memfd(uint64_t size)
{
	static uint8_t zeros[1 << 20];
	int fd = memfd_of_size(size);

	cr_assert_geq(fd, 0);
	put(fd, 0, "first page", 10);
	put(fd, 5 * MIB + 100, "straddles", 9);
	put(fd, 10 * MIB, zeros, sizeof(zeros));
	put(fd, size - 3, "end", 3);
	return fd;
}

Test(snapshot, write_region_is_exact_and_sparse)
{
	uint64_t size = 64 * MIB;
	int mem = sample_memfd(size), out = tmpfile_fd();
	struct stat st;

	cr_assert_geq(out, 0);
	cr_assert_eq(snapshot_write_region(mem, size, out), 0);
	cr_assert_eq(fstat(out, &st), 0);
	cr_expect_eq((uint64_t)st.st_size, size);
	expect_same_content(mem, out, size);
	/* Three non-zero pages; the zeroed megabyte and untouched memory cost nothing. */
	cr_expect_leq(allocated(out), 3 * PAGE + 64 * 1024, "%lu bytes allocated", allocated(out));
	close(mem);
	close(out);
}

Test(snapshot, write_region_refuses_bad_fds)
{
	int mem = memfd_of_size(MIB), out = tmpfile_fd();

	cr_expect_eq(snapshot_write_region(mem, 2 * MIB, out), -EINVAL, "memfd shorter than region");
	put(out, 0, "x", 1);
	cr_expect_eq(snapshot_write_region(mem, MIB, out), -EINVAL, "output not empty");
	close(mem);
	close(out);
}

Test(snapshot, fill_region_restores_content_and_holes)
{
	uint64_t size = 64 * MIB;
	int mem = sample_memfd(size), file = tmpfile_fd(), back = memfd_of_size(size);

	cr_assert_eq(snapshot_write_region(mem, size, file), 0);
	cr_assert_eq(snapshot_fill_region(file, size, back), 0);
	expect_same_content(mem, back, size);
	cr_expect_leq(allocated(back), 3 * PAGE, "%lu bytes allocated", allocated(back));
	close(mem);
	close(file);
	close(back);
}

Test(snapshot, fill_region_refuses_short_sources)
{
	int file = tmpfile_fd(), mem = memfd_of_size(MIB);

	cr_assert_eq(ftruncate(file, MIB / 2), 0);
	cr_expect_eq(snapshot_fill_region(file, MIB, mem), -EINVAL);
	cr_assert_eq(ftruncate(file, 2 * MIB), 0);
	cr_expect_eq(snapshot_fill_region(file, 2 * MIB, mem), -EINVAL, "memfd too small");
	close(file);
	close(mem);
}

Test(snapshot, check_region_file_names_the_size)
{
	int fd = tmpfile_fd();
	char err[128] = "";

	cr_assert_eq(ftruncate(fd, 12345), 0);
	cr_expect_eq(snapshot_check_region_file(fd, "memory-region-1", 1ull << 30, err,
						sizeof(err)), -EINVAL);
	cr_expect_str_eq(err, "memory-region-1 is 12345 bytes, expected 1073741824");
	cr_assert_eq(ftruncate(fd, (1ull << 30) + 1), 0);
	cr_expect_eq(snapshot_check_region_file(fd, "memory-region-1", 1ull << 30, err,
						sizeof(err)), -EINVAL);
	cr_expect_str_eq(err, "memory-region-1 is 1073741825 bytes, expected 1073741824");
	cr_assert_eq(ftruncate(fd, 1ull << 30), 0);
	cr_expect_eq(snapshot_check_region_file(fd, "memory-region-1", 1ull << 30, err,
						sizeof(err)), 0);
	close(fd);
}

Test(snapshot, json_write_then_read)
{
	int fd = tmpfile_fd();
	char *text = NULL;
	size_t len = 0;

	cr_assert_eq(snapshot_write_json(fd, "{\"version\": 1}\n"), 0);
	cr_assert_eq(snapshot_read_json(fd, &text, &len), 0);
	cr_expect_str_eq(text, "{\"version\": 1}\n");
	cr_expect_eq(len, strlen(text));
	free(text);
	cr_expect_eq(snapshot_write_json(fd, "again"), -EINVAL, "file not empty");
	close(fd);
}

Test(snapshot, read_json_is_capped)
{
	int fd = tmpfile_fd();
	char *text = NULL;
	size_t len = 0;

	cr_assert_eq(ftruncate(fd, SNAPSHOT_MAX_JSON + 1ull), 0);
	cr_expect_eq(snapshot_read_json(fd, &text, &len), -EFBIG);
	cr_expect_null(text);
	close(fd);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* 4 GiB region with ~300 MB written in 1 MiB blocks spread over it. */
Test(snapshot, four_gib_region_with_300mb_written, .timeout = 240)
{
	uint64_t size = 4ull << 30;
	int mem = memfd_of_size(size), file = tmpfile_fd(), back = memfd_of_size(size);
	uint8_t *block = malloc(MIB);
	struct timespec t0;
	double wt, ft;

	for (size_t i = 0; i < MIB; i++)
		block[i] = (uint8_t)(i * 7 + 1);
	for (uint64_t i = 0; i < 300; i++)
		put(mem, i * (size / 300) & ~(MIB - 1), block, MIB);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(snapshot_write_region(mem, size, file), 0);
	wt = seconds_since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(snapshot_fill_region(file, size, back), 0);
	ft = seconds_since(&t0);
	fprintf(stderr, "4 GiB region, 300 MiB data: write_region %.3f s, fill_region %.3f s, "
		"file uses %lu MiB\n", wt, ft, allocated(file) >> 20);
	cr_expect_leq(allocated(file), 301 * MIB);
	expect_same_content(mem, back, size);
	free(block);
	close(mem);
	close(file);
	close(back);
}
