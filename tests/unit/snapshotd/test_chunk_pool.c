/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chunks on several worker threads: a restore fills exactly the non-zero
 * pages, a damaged chunk anywhere is found and named (the first in order
 * when there are several), a save writes the same file whatever the number
 * of workers, and a failed write names the first chunk it failed on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "chunk.h"
#include "fixture.h"

/* 24 chunks and a short tail: data, zero, part data, zeros written, ... */
#define N_CHUNKS 24
#define SIZE ((uint64_t)N_CHUNKS * CHUNK_SIZE + 8192)
#define PAGE 4096u
#define N_FORMS 4

struct saved {
	int memfd[2], file[2];
	size_t n_regions;
	struct chunk_set set;
};

static const struct chunk_format forms[N_FORMS] = {
	{ .zstd = false, .sealed = false },
	{ .zstd = true, .sealed = false },
	{ .zstd = false, .sealed = true },
	{ .zstd = true, .sealed = true },
};

/* Which chunks hold data in the pattern below (chunk k of region r). */
static bool holds_data(size_t k)
{
	return k == N_CHUNKS || (k % 6 != 1 && k % 6 != 5);
}

static void write_pattern(int memfd, unsigned seed)
{
	uint8_t *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

	cr_assert_neq(m, MAP_FAILED);
	for (size_t k = 0; k < N_CHUNKS; k++) {
		uint8_t *c = m + k * CHUNK_SIZE;
		uint32_t x = (uint32_t)(k * 2654435761u + seed);

		if (k % 6 == 1)
			continue;
		if (k % 6 == 5) {
			memset(c, 0, CHUNK_SIZE);	/* allocated, but zero */
			continue;
		}
		for (size_t i = 0; i < CHUNK_SIZE; i += 4) {
			x = x * 1103515245u + 12345u;
			/* k % 6 == 3: every other page of data, zero pages between. */
			if (k % 6 == 3 && (i / PAGE) % 2)
				continue;
			memcpy(c + i, &x, 4);
		}
	}
	m[N_CHUNKS * CHUNK_SIZE + 5000] = 9;
	munmap(m, SIZE);
}

static void save_with(struct saved *s, const struct chunk_format *f, size_t n_regions,
		      size_t workers)
{
	struct chunk_format fmt = *f;
	uint64_t sizes[2] = { SIZE, SIZE };
	char err[256] = "";

	/* As snapshotd does before any worker draws a nonce. */
	cr_assert_geq(sodium_init(), 0);

	memset(fmt.key, 0x42, sizeof(fmt.key));
	memset(fmt.id, 0x17, sizeof(fmt.id));
	s->n_regions = n_regions;
	cr_assert_eq(chunk_set_init(&s->set, &fmt, sizes, n_regions), 0);
	s->set.workers = workers;
	for (size_t i = 0; i < n_regions; i++) {
		s->memfd[i] = memfd_of_size(SIZE);
		s->file[i] = tmpfile_fd();
		cr_assert_geq(s->memfd[i], 0);
		cr_assert_geq(s->file[i], 0);
		write_pattern(s->memfd[i], (unsigned)i + 1);
		cr_assert_eq(chunk_write_region(&s->set, i, s->memfd[i], s->file[i], err,
						sizeof(err)), 0, "%s", err);
	}
}

static void release(struct saved *s)
{
	chunk_set_release(&s->set);
	for (size_t i = 0; i < s->n_regions; i++) {
		close(s->memfd[i]);
		close(s->file[i]);
	}
}

static uint64_t blocks_of(int fd)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks;
}

/* Pages of memfd that hold anything but zeros, in 512-byte blocks as st_blocks counts. */
static uint64_t nonzero_blocks(int memfd)
{
	uint8_t *m = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, memfd, 0);
	uint64_t n = 0;

	cr_assert_neq(m, MAP_FAILED);
	for (uint64_t off = 0; off < SIZE; off += PAGE) {
		const uint8_t *p = m + off;

		n += p[0] != 0 || memcmp(p, p + 1, PAGE - 1) != 0;
	}
	munmap(m, SIZE);
	return n * (PAGE / 512);
}

/* Fills fresh memfds with workers threads; 0 or the error. On success, they equal the source. */
static int fill_with(struct saved *s, size_t workers, char *err, size_t errlen)
{
	int out[2];
	int r;

	for (size_t i = 0; i < s->n_regions; i++)
		out[i] = memfd_of_size(SIZE);
	s->set.workers = workers;
	r = chunk_fill_regions(&s->set, s->file, out, err, errlen);
	for (size_t i = 0; r == 0 && i < s->n_regions; i++) {
		/* Counted before reading: a read through a mapping allocates a hole's page. */
		uint64_t blocks = blocks_of(out[i]), want = nonzero_blocks(s->memfd[i]);
		uint8_t *a = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, s->memfd[i], 0);
		uint8_t *b = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, out[i], 0);

		/* Only the non-zero pages were written: a restore allocates no more. */
		cr_expect_eq(blocks, want, "region %zu: %lu blocks, %lu expected", i,
			     (unsigned long)blocks, (unsigned long)want);
		cr_expect_eq(memcmp(a, b, SIZE), 0, "region %zu differs (%zu workers)", i, workers);
		munmap(a, SIZE);
		munmap(b, SIZE);
	}
	for (size_t i = 0; i < s->n_regions; i++)
		close(out[i]);
	return r;
}

static void flip(int fd, uint64_t off)
{
	uint8_t b;

	cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x80;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
}

/* A byte of data chunk k's stored bytes. */
static void damage(struct saved *s, size_t i, size_t k)
{
	const struct chunk_entry *e = &s->set.t[i].e[k];
	uint64_t len = e->length;

	cr_assert(holds_data(k) && !e->zero, "chunk %zu holds no data", k);

	/* A plain chunk with every other page zero: hit a page that holds data. */
	flip(s->file[i], e->offset + (len > PAGE ? PAGE / 2 : len / 2));
}

static void expect_named(const char *err, size_t i, size_t k)
{
	char want[64];

	snprintf(want, sizeof(want), "memory-region-%zu chunk %zu ", i, k);
	cr_expect_not_null(strstr(err, want), "\"%s\" not in \"%s\"", want, err);
}

Test(chunk_pool, every_form_fills_exactly_with_any_number_of_workers)
{
	for (size_t f = 0; f < N_FORMS; f++) {
		struct saved s;
		char err[256] = "";

		save_with(&s, &forms[f], 2, 3);
		for (size_t k = 0; k <= N_CHUNKS; k++)
			cr_expect_eq(!s.set.t[0].e[k].zero, holds_data(k), "form %zu, chunk %zu",
				     f, k);
		for (size_t w = 0; w <= CHUNK_MAX_WORKERS + 1; w++)
			cr_expect_eq(fill_with(&s, w, err, sizeof(err)), 0,
				     "form %zu, %zu workers: %s", f, w, err);
		release(&s);
	}
}

Test(chunk_pool, a_damaged_chunk_anywhere_is_named_with_several_workers)
{
	for (size_t f = 0; f < N_FORMS; f++) {
		struct saved s;

		save_with(&s, &forms[f], 1, 1);
		for (size_t k = 0; k <= N_CHUNKS; k++) {
			char err[256] = "";

			if (!holds_data(k))
				continue;
			damage(&s, 0, k);
			cr_expect_eq(fill_with(&s, CHUNK_MAX_WORKERS, err, sizeof(err)), -EBADMSG,
				     "form %zu chunk %zu", f, k);
			expect_named(err, 0, k);
			/* cloister-snapshot verify goes through the same workers. */
			cr_expect_eq(chunk_verify_region(&s.set, 0, s.file[0], err, sizeof(err)),
				     -EBADMSG);
			expect_named(err, 0, k);
			/* The same flip again: whole, and whole it fills. */
			damage(&s, 0, k);
		}
		cr_expect_eq(fill_with(&s, CHUNK_MAX_WORKERS, NULL, 0), 0, "form %zu", f);
		release(&s);
	}
}

Test(chunk_pool, of_several_damaged_chunks_the_first_in_order_is_named)
{
	for (size_t f = 0; f < N_FORMS; f += 3) {
		struct saved s;

		save_with(&s, &forms[f], 2, 2);
		/* Neighbours fail together on different workers; the lowest must win. */
		damage(&s, 1, 20);
		damage(&s, 1, 6);
		damage(&s, 1, 4);
		damage(&s, 1, 3);
		damage(&s, 1, 2);
		damage(&s, 1, 14);
		/* Timing differs between rounds; the answer may not. */
		for (int round = 0; round < 20; round++) {
			char err[256] = "";

			cr_expect_eq(fill_with(&s, 1 + round % CHUNK_MAX_WORKERS, err, sizeof(err)),
				     -EBADMSG);
			expect_named(err, 1, 2);
		}
		release(&s);
	}
}

Test(chunk_pool, data_in_a_plain_zero_chunk_is_named)
{
	struct saved s;
	char err[256] = "";
	uint8_t b = 1;

	save_with(&s, &forms[0], 1, 2);
	cr_assert(s.set.t[0].e[19].zero);
	cr_assert_eq(pwrite(s.file[0], &b, 1, 19 * (off_t)CHUNK_SIZE + 77), 1);
	cr_expect_eq(fill_with(&s, 3, err, sizeof(err)), -EBADMSG);
	expect_named(err, 0, 19);
	cr_expect_not_null(strstr(err, "should be all zero"), "%s", err);
	release(&s);
}

Test(chunk_pool, a_file_cut_short_is_named)
{
	struct saved s;
	char err[256] = "";

	save_with(&s, &forms[1], 1, 2);
	cr_assert_eq(ftruncate(s.file[0], (off_t)(s.set.t[0].e[14].offset + 10)), 0);
	cr_expect_eq(fill_with(&s, 4, err, sizeof(err)), -EIO);
	cr_expect_not_null(strstr(err, "ends inside chunk 14"), "%s", err);
	release(&s);
}

static uint8_t *file_bytes(int fd, size_t *len)
{
	struct stat st;
	uint8_t *p;

	cr_assert_eq(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	p = malloc(*len + 1);
	cr_assert_not_null(p);
	cr_assert_eq(pread(fd, p, *len, 0), (ssize_t)*len);
	return p;
}

/* zstd without a seal is deterministic: the same bytes in the same places. */
Test(chunk_pool, a_save_writes_the_same_file_with_any_number_of_workers)
{
	for (size_t f = 0; f < 2; f++) {
		struct saved one, many;
		uint8_t *a, *b;
		size_t la, lb;

		save_with(&one, &forms[f], 1, 1);
		save_with(&many, &forms[f], 1, CHUNK_MAX_WORKERS);
		cr_expect_eq(memcmp(one.set.t[0].e, many.set.t[0].e,
				    (N_CHUNKS + 1) * sizeof(struct chunk_entry)), 0, "form %zu", f);
		a = file_bytes(one.file[0], &la);
		b = file_bytes(many.file[0], &lb);
		cr_expect_eq(la, lb);
		cr_expect(la == lb && memcmp(a, b, la) == 0, "form %zu: files differ", f);
		free(a);
		free(b);
		release(&one);
		release(&many);
	}
}

/* A sealed save with workers: chunks in order, each where the one before it ended. */
Test(chunk_pool, sealed_chunks_are_stored_in_order)
{
	struct saved s;
	uint64_t end = 0;

	save_with(&s, &forms[3], 1, CHUNK_MAX_WORKERS);
	for (size_t k = 0; k <= N_CHUNKS; k++) {
		const struct chunk_entry *e = &s.set.t[0].e[k];

		if (e->zero)
			continue;
		cr_expect_eq(e->offset, end, "chunk %zu", k);
		end = e->offset + e->length;
	}
	cr_expect_eq(end, (uint64_t)lseek(s.file[0], 0, SEEK_END));
	release(&s);
}

Test(chunk_pool, a_failed_save_names_the_first_chunk_it_could_not_write)
{
	for (size_t f = 0; f < N_FORMS; f++) {
		struct chunk_format fmt = forms[f];
		struct chunk_set set;
		uint64_t size = SIZE;
		char path[64], err[256] = "";
		int memfd = memfd_of_size(SIZE), rw = tmpfile_fd(), ro;

		cr_assert_geq(sodium_init(), 0);
		write_pattern(memfd, 1);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
		ro = open(path, O_RDONLY | O_CLOEXEC);
		cr_assert_geq(ro, 0);
		cr_assert_eq(chunk_set_init(&set, &fmt, &size, 1), 0);
		set.workers = CHUNK_MAX_WORKERS;
		cr_expect_eq(chunk_write_region(&set, 0, memfd, ro, err, sizeof(err)), -EBADF);
		cr_expect_not_null(strstr(err, "writing memory-region-0 chunk 0 failed"), "%s",
				   err);
		chunk_set_release(&set);
		close(ro);
		close(rw);
		close(memfd);
	}
}
