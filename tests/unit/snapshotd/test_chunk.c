/* SPDX-License-Identifier: Apache-2.0 */
/* The chunk format: round trips in every form, and every damage refused naming the chunk. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk.h"
#include "chunk_json.h"
#include "digest.h"
#include "fixture.h"

/* Four chunks and a short fifth: data, zero, data, a hole, a short tail of data. */
#define SIZE (4ull * CHUNK_SIZE + 8192)

struct region {
	int memfd, file;
	struct chunk_set set;
	uint8_t key[CHUNK_KEY_BYTES];
};

static void fill_memory(int memfd)
{
	uint8_t *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

	cr_assert_neq(m, MAP_FAILED);
	for (size_t i = 0; i < CHUNK_SIZE; i += 8)
		memcpy(m + i, &i, sizeof(i));
	memset(m + 2 * CHUNK_SIZE + 4096, 0x5a, 3 * 4096);
	m[4 * CHUNK_SIZE + 100] = 7;
	munmap(m, SIZE);
}

static struct chunk_format format(bool zstd, bool sealed)
{
	struct chunk_format f = { .zstd = zstd, .sealed = sealed };

	memset(f.key, 0x42, sizeof(f.key));
	memset(f.id, 0x17, sizeof(f.id));
	return f;
}

static void save(struct region *r, bool zstd, bool sealed)
{
	struct chunk_format f = format(zstd, sealed);
	uint64_t size = SIZE;
	char err[256] = "";

	r->memfd = memfd_of_size(SIZE);
	r->file = tmpfile_fd();
	fill_memory(r->memfd);
	cr_assert_eq(chunk_set_init(&r->set, &f, &size, 1), 0);
	cr_assert_eq(chunk_write_region(&r->set, 0, r->memfd, r->file, err, sizeof(err)), 0, "%s", err);
}

static uint64_t file_size(int fd)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	return (uint64_t)st.st_size;
}

/* Fills a fresh memfd from the file; 0 or the error, with err set. */
static int restore(struct region *r, char *err, size_t errlen)
{
	int out = memfd_of_size(SIZE), ret;
	uint8_t *a, *b;

	ret = chunk_check_table(&r->set, 0, file_size(r->file), err, errlen);
	if (ret == 0)
		ret = chunk_fill_region(&r->set, 0, r->file, out, err, errlen);
	if (ret == 0) {
		a = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, r->memfd, 0);
		b = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, out, 0);
		cr_expect_eq(memcmp(a, b, SIZE), 0, "restored memory differs");
		munmap(a, SIZE);
		munmap(b, SIZE);
	}
	close(out);
	return ret;
}

static void release(struct region *r)
{
	chunk_set_release(&r->set);
	close(r->memfd);
	close(r->file);
}

static void flip(int fd, uint64_t off)
{
	uint8_t b;

	cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 1;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
}

static void round_trip(bool zstd, bool sealed)
{
	struct region r;
	char err[256] = "";

	save(&r, zstd, sealed);
	cr_expect(!r.set.t[0].e[0].zero && r.set.t[0].e[1].zero && !r.set.t[0].e[2].zero &&
		  r.set.t[0].e[3].zero && !r.set.t[0].e[4].zero);
	cr_expect_eq(chunk_data_bytes(&r.set), 2 * CHUNK_SIZE + 8192);
	cr_expect_eq(restore(&r, err, sizeof(err)), 0, "%s", err);
	release(&r);
}

Test(chunk, plain_round_trip_stays_a_sparse_raw_copy)
{
	struct region r;
	uint8_t b;

	round_trip(false, false);
	save(&r, false, false);
	cr_expect_eq(file_size(r.file), SIZE);
	cr_assert_eq(pread(r.file, &b, 1, 2 * CHUNK_SIZE + 4096), 1);
	cr_expect_eq(b, 0x5a);
	release(&r);
}

Test(chunk, zstd_round_trip_is_smaller)
{
	struct region r;

	round_trip(true, false);
	save(&r, true, false);
	cr_expect_lt(file_size(r.file), CHUNK_SIZE / 2, "%lu", (unsigned long)file_size(r.file));
	release(&r);
}

Test(chunk, sealed_round_trips)
{
	round_trip(false, true);
	round_trip(true, true);
}

static void expect_hex(const uint8_t *d, const char *want)
{
	char hex[2 * CHUNK_DIGEST_BYTES + 1];

	for (size_t i = 0; i < CHUNK_DIGEST_BYTES; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	cr_expect_str_eq(hex, want);
}

/* Known answers, worked out apart from this code (Python's hashlib.sha256). */
Test(chunk, the_digest_is_sha256_of_the_chunk_bytes)
{
	struct region r;
	uint8_t d[CHUNK_DIGEST_BYTES];

	cr_expect_str_eq(CHUNK_DIGEST_NAME, "sha256");
	cr_assert_eq(digest_bytes("abc", 3, d), 0);
	expect_hex(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	for (int zstd = 0; zstd < 2; zstd++) {
		save(&r, zstd, !zstd);
		/* 1 MiB of zeros but for 0x5a over [4096, 16384). */
		expect_hex(r.set.t[0].e[2].digest,
			   "1842d69c81fb4cf1d00c78c70c2d192e11fb69be9f6f006b765d4d7959b00211");
		/* The short tail: 8192 bytes, zero but for a 7 at 100. */
		expect_hex(r.set.t[0].e[4].digest,
			   "137369ffeaccfcb97c6d671fa4e87c67109cb0b300cc5ce1abe5a2ac7c26a688");
		release(&r);
	}
}

static void expect_flip_refused(bool zstd, bool sealed, size_t k, const char *needle)
{
	struct region r;
	char err[256] = "", want[64];

	save(&r, zstd, sealed);
	flip(r.file, r.set.t[0].e[k].offset + r.set.t[0].e[k].length / 2);
	cr_expect_eq(restore(&r, err, sizeof(err)), -EBADMSG);
	snprintf(want, sizeof(want), "memory-region-0 chunk %zu ", k);
	cr_expect_not_null(strstr(err, want), "\"%s\" not in \"%s\"", want, err);
	cr_expect_not_null(strstr(err, needle), "\"%s\" not in \"%s\"", needle, err);
	release(&r);
}

Test(chunk, one_flipped_byte_is_refused_naming_the_chunk)
{
	expect_flip_refused(false, false, 2, "does not match its digest");
	expect_flip_refused(false, false, 4, "does not match its digest");
	expect_flip_refused(true, false, 0, "chunk 0 (memory offset 0");
	expect_flip_refused(false, true, 2, "does not open with the key");
	expect_flip_refused(true, true, 4, "does not open with the key");
}

Test(chunk, a_changed_nonce_or_tag_does_not_open)
{
	struct region r;
	char err[256] = "";

	for (int where = 0; where < 2; where++) {
		const struct chunk_entry *e;

		save(&r, where, true);
		e = &r.set.t[0].e[2];
		/* The nonce's first byte, then the tag's last. */
		flip(r.file, where == 0 ? e->offset : e->offset + e->length - 1);
		cr_expect_eq(chunk_load(&r.set, 0, r.file, 2, r.set.buf.plain, err, sizeof(err)), -EBADMSG);
		cr_expect_not_null(strstr(err, "chunk 2 (memory offset 0x200000) does not open"), "%s",
				   err);
		release(&r);
	}
}

Test(chunk, data_in_a_zero_chunk_is_refused)
{
	struct region r;
	char err[256] = "";
	uint8_t b = 1;

	save(&r, false, false);
	cr_assert_eq(pwrite(r.file, &b, 1, CHUNK_SIZE + 5), 1);
	cr_expect_eq(restore(&r, err, sizeof(err)), -EBADMSG);
	cr_expect_not_null(strstr(err, "chunk 1 (memory offset 0x100000) should be all zero"), "%s",
			   err);
	release(&r);
}

Test(chunk, wrong_key_and_moved_chunks_do_not_open)
{
	struct region r;
	struct chunk_entry e;
	char err[256] = "";

	save(&r, false, true);
	r.set.fmt.key[0] ^= 1;
	cr_expect_eq(restore(&r, err, sizeof(err)), -EBADMSG);
	cr_expect_not_null(strstr(err, "chunk 0 "), "%s", err);
	r.set.fmt.key[0] ^= 1;
	/* Chunk 2's bytes and digest recorded as chunk 0: the associated data tells. */
	e = r.set.t[0].e[0];
	r.set.t[0].e[0] = r.set.t[0].e[2];
	r.set.t[0].e[2] = e;
	cr_expect_eq(chunk_load(&r.set, 0, r.file, 0, r.set.buf.plain, err, sizeof(err)), -EBADMSG);
	cr_expect_not_null(strstr(err, "does not open"), "%s", err);
	/* Another snapshot's id: the same. */
	r.set.t[0].e[2] = r.set.t[0].e[0];
	r.set.t[0].e[0] = e;
	r.set.fmt.id[3] ^= 1;
	cr_expect_eq(chunk_load(&r.set, 0, r.file, 0, r.set.buf.plain, err, sizeof(err)), -EBADMSG);
	release(&r);
}

static void expect_table_refused(bool zstd, void (*edit)(struct chunk_table *t, uint64_t fsize),
				 const char *needle)
{
	struct region r;
	char err[256] = "";
	uint64_t fsize;

	save(&r, zstd, !zstd);
	fsize = file_size(r.file);
	edit(&r.set.t[0], fsize);
	cr_expect_eq(chunk_check_table(&r.set, 0, fsize, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, needle), "\"%s\" not in \"%s\"", needle, err);
	release(&r);
}

static void overlap(struct chunk_table *t, uint64_t fs)
{
	(void)fs;
	t->e[2].offset = t->e[0].offset + 1;
}

static void beyond(struct chunk_table *t, uint64_t fs)
{
	t->e[4].offset = fs - 10;
}

static void huge(struct chunk_table *t, uint64_t fs)
{
	(void)fs;
	t->e[0].length = UINT32_MAX;
}

static void tiny(struct chunk_table *t, uint64_t fs)
{
	(void)fs;
	t->e[0].length = 3;
}

static void zero_with_place(struct chunk_table *t, uint64_t fs)
{
	(void)fs;
	t->e[1].length = 100;
}

static void wrapping(struct chunk_table *t, uint64_t fs)
{
	(void)fs;
	t->e[4].offset = UINT64_MAX - 5;
}

Test(chunk, hostile_tables_are_refused)
{
	expect_table_refused(true, overlap, "chunk 2 (offset");
	expect_table_refused(false, overlap, "overlaps");
	expect_table_refused(true, beyond, "beyond the end");
	expect_table_refused(true, wrapping, "beyond the end");
	expect_table_refused(true, huge, "length its format does not allow");
	expect_table_refused(false, tiny, "length its format does not allow");
	expect_table_refused(true, zero_with_place, "zero but has a place");
}

Test(chunk, plain_file_of_the_wrong_size_is_refused)
{
	struct region r;
	char err[256] = "";

	save(&r, false, false);
	cr_expect_eq(chunk_check_table(&r.set, 0, SIZE - 1, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "expected"), "%s", err);
	r.set.t[0].e[1].offset = 0;
	cr_expect_eq(chunk_check_table(&r.set, 0, SIZE, err, sizeof(err)), -EINVAL);
	release(&r);
}

Test(chunk, reads_across_chunks_for_the_pager)
{
	struct region r;
	char err[256] = "";
	static uint8_t buf[3 * CHUNK_SIZE];
	uint64_t s, e;

	for (int z = 0; z < 2; z++) {
		uint8_t *m;

		save(&r, z, z);
		m = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, r.memfd, 0);
		cr_assert_eq(chunk_read(&r.set, 0, r.file, 4096, sizeof(buf), buf, err, sizeof(err)), 0,
			     "%s", err);
		cr_expect_eq(memcmp(buf, m + 4096, sizeof(buf)), 0);
		cr_expect_eq(chunk_read(&r.set, 0, r.file, SIZE - 10, 11, buf, err, sizeof(err)),
			     -EINVAL);
		munmap(m, SIZE);
		chunk_next_data(&r.set, 0, r.file, CHUNK_SIZE, &s, &e);
		cr_expect_geq(s, 2 * CHUNK_SIZE);
		cr_expect_leq(e, 3 * CHUNK_SIZE);
		chunk_next_data(&r.set, 0, r.file, 3 * CHUNK_SIZE, &s, &e);
		cr_expect_eq(s, 4 * CHUNK_SIZE);
		chunk_next_data(&r.set, 0, r.file, SIZE, &s, &e);
		cr_expect_eq(s, SIZE);
		release(&r);
	}
}

/* The table through JSON and back, and entries a hostile vm.json could hold. */
Test(chunk, json_tables_round_trip_and_refuse_bad_entries)
{
	static const char *const bad[] = {
		"[\"zero\",\"zero\",\"zero\",\"zero\"]",
		"[\"zero\",\"zero\",\"zero\",\"zero\",\"zero\",\"zero\"]",
		"[\"zero\",\"zero\",\"zero\",\"zero\",\"abc\"]",
		"[\"zero\",\"zero\",\"zero\",\"zero\",[0,10]]",
		"[\"zero\",\"zero\",\"zero\",\"zero\",[-1,10,\"" "0000000000000000000000000000000000000000000000000000000000000000\"]]",
		"[\"zero\",\"zero\",\"zero\",\"zero\",[0,4294967296,\"" "0000000000000000000000000000000000000000000000000000000000000000\"]]",
		"[\"zero\",\"zero\",\"zero\",\"zero\",[0,1,\"" "000000000000000000000000000000000000000000000000000000000000000g\"]]",
		"{}",
	};
	struct region r;
	struct chunk_set back;
	struct json_object *arr;
	uint64_t size = SIZE;
	char err[256] = "";
	struct chunk_format f = format(true, false);

	save(&r, true, false);
	arr = chunk_table_json(&r.set, 0);
	cr_assert_eq(chunk_set_init(&back, &f, &size, 1), 0);
	cr_assert_eq(chunk_table_from_json(&back, 0, arr, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(memcmp(back.t[0].e, r.set.t[0].e, 5 * sizeof(struct chunk_entry)), 0);
	json_object_put(arr);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		arr = json_tokener_parse(bad[i]);
		cr_assert_not_null(arr, "%s", bad[i]);
		cr_expect_eq(chunk_table_from_json(&back, 0, arr, err, sizeof(err)), -EINVAL, "%s",
			     bad[i]);
		json_object_put(arr);
	}
	chunk_set_release(&back);
	release(&r);
}

Test(chunk, envelope_opens_with_its_key_only)
{
	uint8_t key[CHUNK_KEY_BYTES], other[CHUNK_KEY_BYTES];
	struct json_object *doc;
	char *sealed = NULL, *text = NULL, err[256] = "";
	size_t len = 0;

	memset(key, 1, sizeof(key));
	memset(other, 2, sizeof(other));
	cr_assert_eq(chunk_envelope_seal("{\"secret\": 42}", key, &sealed), 0);
	cr_expect_null(strstr(sealed, "secret"));
	doc = json_tokener_parse(sealed);
	cr_assert(chunk_envelope_is(doc));
	cr_expect_eq(chunk_envelope_open(doc, NULL, &text, &len, err, sizeof(err)), -ENOKEY);
	cr_expect_not_null(strstr(err, "needs its key"), "%s", err);
	cr_expect_eq(chunk_envelope_open(doc, other, &text, &len, err, sizeof(err)), -EKEYREJECTED);
	cr_assert_eq(chunk_envelope_open(doc, key, &text, &len, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(text, "{\"secret\": 42}");
	free(text);
	json_object_put(doc);
	free(sealed);
}
