/* SPDX-License-Identifier: Apache-2.0 */
#include "chunk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zstd.h>

#include "chunk_pool.h"
#include "digest.h"
#include "errmsg.h"
#include "io.h"

#define PAGE 4096u
#define ZSTD_LEVEL 1

size_t chunk_max_stored(const struct chunk_format *fmt)
{
	size_t n = fmt->zstd ? ZSTD_COMPRESSBOUND(CHUNK_SIZE) : CHUNK_SIZE;

	return fmt->sealed ? n + CHUNK_NONCE_BYTES + CHUNK_TAG_BYTES : n;
}

static bool stored_form(const struct chunk_format *fmt)
{
	return fmt->zstd || fmt->sealed;
}

int chunk_buf_init(struct chunk_buf *b, const struct chunk_format *fmt)
{
	*b = (struct chunk_buf){ .stored = malloc(chunk_max_stored(fmt)),
				 .plain = malloc(CHUNK_SIZE) };
	return b->stored && b->plain ? 0 : -ENOMEM;
}

void chunk_buf_release(struct chunk_buf *b)
{
	free(b->stored);
	free(b->plain);
	ZSTD_freeCCtx(b->cctx);
	ZSTD_freeDCtx(b->dctx);
	*b = (struct chunk_buf){ .stored = NULL };
}

static pthread_once_t workers_once = PTHREAD_ONCE_INIT;
static size_t n_workers = 1;

static void count_workers(void)
{
	cpu_set_t set;
	long n = 0;

	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	n_workers = n <= 1 ? 1 : n >= CHUNK_MAX_WORKERS ? CHUNK_MAX_WORKERS : (size_t)n;
}

size_t chunk_workers(void)
{
	pthread_once(&workers_once, count_workers);
	return n_workers;
}

int chunk_set_init(struct chunk_set *s, const struct chunk_format *fmt, const uint64_t *sizes,
		   size_t n)
{
	int r;

	*s = (struct chunk_set){ .fmt = *fmt, .n_regions = n };
	if (n > LAYOUT_MAX_REGIONS)
		return -EINVAL;
	r = chunk_buf_init(&s->buf, fmt);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		s->t[i].size = sizes[i];
		s->t[i].n = (size_t)((sizes[i] + CHUNK_SIZE - 1) / CHUNK_SIZE);
		s->t[i].e = calloc(s->t[i].n ? s->t[i].n : 1, sizeof(struct chunk_entry));
		if (!s->t[i].e)
			return -ENOMEM;
	}
	return 0;
}

void chunk_forget_key(struct chunk_set *s)
{
	sodium_memzero(s->fmt.key, sizeof(s->fmt.key));
}

void chunk_set_release(struct chunk_set *s)
{
	chunk_forget_key(s);
	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++) {
		free(s->t[i].e);
		s->t[i].e = NULL;
	}
	for (size_t c = 0; c < CHUNK_CACHE; c++) {
		free(s->cache[c].data);
		s->cache[c] = (struct chunk_slot){ .valid = false };
	}
	chunk_buf_release(&s->buf);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Associated data of a sealed chunk: where it belongs, in which snapshot. */
static void chunk_ad(const struct chunk_format *fmt, size_t i, size_t k, uint8_t ad[32])
{
	uint64_t region = i, index = k;

	memcpy(ad, fmt->id, CHUNK_ID_BYTES);
	memcpy(ad + 16, &region, 8);
	memcpy(ad + 24, &index, 8);
}

/* Whether [off, off + len) of fd holds any data (SEEK_DATA; everything counts without it). */
static bool has_data(int fd, uint64_t off, uint64_t len)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	if (d < 0)
		return errno != ENXIO;
	return (uint64_t)d < off + len;
}

/* ---- save ---- */

/* Writes the runs of pages of buf (len bytes, for fd at off) that are not all zero. */
static int write_nonzero_pages(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t run = 0, pos = 0;

	while (pos < len) {
		size_t n = len - pos < PAGE ? len - pos : PAGE;

		if (all_zero(buf + pos, n)) {
			if (pos > run) {
				int r = io_pwrite_all(fd, buf + run, pos - run, (off_t)(off + run));

				if (r < 0)
					return r;
			}
			run = pos + n;
		}
		pos += n;
	}
	return pos > run ? io_pwrite_all(fd, buf + run, pos - run, (off_t)(off + run)) : 0;
}

/* The stored form of b->plain (len bytes) into b->stored; its length in *ret_len. */
static int encode(const struct chunk_set *s, struct chunk_buf *b, size_t i, size_t k, size_t len,
		  size_t *ret_len)
{
	uint8_t *body = b->stored + (s->fmt.sealed ? CHUNK_NONCE_BYTES : 0);
	size_t n = len;

	if (s->fmt.zstd) {
		if (!b->cctx && !(b->cctx = ZSTD_createCCtx()))
			return -ENOMEM;
		n = ZSTD_compressCCtx(b->cctx, body, ZSTD_COMPRESSBOUND(CHUNK_SIZE), b->plain, len,
				      ZSTD_LEVEL);
		if (ZSTD_isError(n))
			return -EIO;
	} else {
		memcpy(body, b->plain, len);
	}
	if (s->fmt.sealed) {
		unsigned long long clen;
		uint8_t ad[32];

		randombytes_buf(b->stored, CHUNK_NONCE_BYTES);
		chunk_ad(&s->fmt, i, k, ad);
		crypto_aead_xchacha20poly1305_ietf_encrypt(body, &clen, body, n, ad, sizeof(ad), NULL,
							   b->stored, s->fmt.key);
		n = CHUNK_NONCE_BYTES + (size_t)clen;
	}
	*ret_len = n;
	return 0;
}

struct save_job {
	int memfd, out_fd;
	uint64_t file_end;	/* a stored form's: written by the item whose turn it is */
	uint64_t handed;	/* a stored form's: bytes before it handed to the disk */
};

/*
 * Every WRITEBACK_EVERY bytes the file's pages written so far are handed to
 * the disk, so the disk works while the next chunks are hashed and the final
 * fdatasync() has little left to wait for. Only a head start: that sync is
 * what makes the file durable, so a failure here is no failure.
 */
#define WRITEBACK_EVERY (16ull * CHUNK_SIZE)

static void start_writeback(int fd, uint64_t off, uint64_t len)
{
	(void)sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
}

/*
 * Chunk k read from memory into b->plain, its entry filled (zero, digest);
 * a stored form's chunk encoded into b->stored, its length in *ret_n (0:
 * nothing to store).
 */
static int save_prepare(const struct chunk_set *s, struct chunk_buf *b, int memfd, size_t i,
			size_t k, size_t *ret_n)
{
	struct chunk_entry *e = &s->t[i].e[k];
	uint64_t off = (uint64_t)k * CHUNK_SIZE;
	size_t len = chunk_len(s->t[i].size, k);
	ssize_t got;
	int r;

	*ret_n = 0;
	*e = (struct chunk_entry){ .zero = true };
	if (!stored_form(&s->fmt))
		*e = (struct chunk_entry){ .offset = off, .length = (uint32_t)len, .zero = true };
	if (!has_data(memfd, off, len))
		return 0;
	got = io_pread_full(memfd, b->plain, len, (off_t)off);
	if (got < 0)
		return (int)got;
	if ((size_t)got != len)
		return -EIO;
	if (all_zero(b->plain, len))
		return 0;
	e->zero = false;
	r = digest_bytes(b->plain, len, e->digest);
	if (r < 0 || !stored_form(&s->fmt))
		return r;
	return encode(s, b, i, k, len, ret_n);
}

/* A stored chunk goes where the one before it ended: it waits for its turn. */
static int save_commit(struct chunk_pool *p, struct chunk_buf *b, size_t g, size_t i, size_t k,
		       size_t n)
{
	struct save_job *j = p->arg;
	struct chunk_entry *e = &p->s->t[i].e[k];
	uint64_t from = 0, len = 0;
	int r = 0;

	if (!chunk_pool_wait_turn(p, g))
		return -ECANCELED;
	if (n > 0) {
		r = io_pwrite_all(j->out_fd, b->stored, n, (off_t)j->file_end);
		e->offset = j->file_end;
		e->length = (uint32_t)n;
		j->file_end += n;
	}
	if (j->file_end - j->handed >= WRITEBACK_EVERY) {
		from = j->handed;
		len = j->file_end - j->handed;
		j->handed = j->file_end;
	}
	chunk_pool_pass_turn(p, g);
	if (r == 0 && len > 0)
		start_writeback(j->out_fd, from, len);
	return r;
}

static int save_chunk(struct chunk_pool *p, struct chunk_buf *b, size_t g, size_t i, size_t k,
		      char *err, size_t errlen)
{
	const struct chunk_set *s = p->s;
	struct save_job *j = p->arg;
	size_t n = 0;
	int r = save_prepare(s, b, j->memfd, i, k, &n);

	if (r == 0 && !stored_form(&s->fmt) && !s->t[i].e[k].zero)
		r = write_nonzero_pages(j->out_fd, b->plain, chunk_len(s->t[i].size, k),
					(uint64_t)k * CHUNK_SIZE);
	/* Plain chunks sit at their memory offsets: hand over each run of them as it ends. */
	if (r == 0 && !stored_form(&s->fmt) && (k + 1) % (WRITEBACK_EVERY / CHUNK_SIZE) == 0)
		start_writeback(j->out_fd, (k + 1) * (uint64_t)CHUNK_SIZE - WRITEBACK_EVERY,
				WRITEBACK_EVERY);
	/* A failed item passes no turn: the pool's failure releases those waiting. */
	if (r == 0 && stored_form(&s->fmt))
		r = save_commit(p, b, g, i, k, n);
	if (r < 0)
		err_set(err, errlen, "writing memory-region-%zu chunk %zu failed: %s", i, k,
			strerror(-r));
	else if (s->progress)
		__atomic_fetch_add(s->progress, chunk_len(s->t[i].size, k), __ATOMIC_RELAXED);
	return r;
}

int chunk_write_region(struct chunk_set *s, size_t i, int memfd, int out_fd, char *err,
		       size_t errlen)
{
	const struct chunk_table *t = &s->t[i];
	struct save_job j = { .memfd = memfd, .out_fd = out_fd };
	struct chunk_pool p = { .s = s, .first = i, .end = i + 1, .fn = save_chunk, .arg = &j };
	struct stat st;
	uint64_t file_end;
	int r;

	if (fstat(out_fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 0 ||
	    fstat(memfd, &st) < 0 || (uint64_t)st.st_size < t->size || t->size > INT64_MAX) {
		err_set(err, errlen, "memory-region-%zu: not an empty file, or memory smaller than"
			" its region", i);
		return -EINVAL;
	}
	r = chunk_pool_run(&p, s->workers, err, errlen);
	if (r < 0)
		return r;
	file_end = stored_form(&s->fmt) ? j.file_end : t->size;
	if (ftruncate(out_fd, (off_t)file_end) < 0 || fdatasync(out_fd) < 0) {
		err_set(err, errlen, "writing memory-region-%zu failed: %m", i);
		return -errno;
	}
	return 0;
}

/* ---- checks ---- */

static size_t min_stored(const struct chunk_format *fmt)
{
	return fmt->sealed ? CHUNK_NONCE_BYTES + CHUNK_TAG_BYTES + 1 : 1;
}

int chunk_check_table(const struct chunk_set *s, size_t i, uint64_t file_size, char *err,
		      size_t errlen)
{
	const struct chunk_table *t = &s->t[i];
	uint64_t end = 0;

	if (!stored_form(&s->fmt) && file_size != t->size) {
		err_set(err, errlen, "memory-region-%zu is %" PRIu64 " bytes, expected %" PRIu64, i,
			file_size, t->size);
		return -EINVAL;
	}
	for (size_t k = 0; k < t->n; k++) {
		const struct chunk_entry *e = &t->e[k];
		const char *why = NULL;

		if (!stored_form(&s->fmt))
			why = e->offset != (uint64_t)k * CHUNK_SIZE || e->length != chunk_len(t->size, k) ?
			      "is not where a plain chunk is" : NULL;
		else if (e->zero)
			why = e->offset || e->length ? "is zero but has a place in the file" : NULL;
		else if (e->length < min_stored(&s->fmt) || e->length > chunk_max_stored(&s->fmt))
			why = "has a length its format does not allow";
		else if (e->offset < end)
			why = "overlaps the chunk before it (or is out of order)";
		else if (e->offset > file_size || file_size - e->offset < e->length)
			why = "lies beyond the end of the file";
		if (why) {
			err_set(err, errlen, "memory-region-%zu chunk %zu (offset %" PRIu64 ", length %"
				PRIu32 ") %s", i, k, e->offset, e->length, why);
			return -EINVAL;
		}
		if (stored_form(&s->fmt) && !e->zero)
			end = e->offset + e->length;
	}
	return 0;
}

/* ---- load ---- */

static int bad_chunk(size_t i, size_t k, const char *why, char *err, size_t errlen)
{
	err_set(err, errlen, "memory-region-%zu chunk %zu (memory offset %#" PRIx64 ") %s", i, k,
		(uint64_t)k * CHUNK_SIZE, why);
	return -EBADMSG;
}

static int read_stored(int fd, uint8_t *buf, const struct chunk_entry *e, size_t i, size_t k,
		       char *err, size_t errlen)
{
	ssize_t n = io_pread_full(fd, buf, e->length, (off_t)e->offset);

	if (n < 0) {
		err_set(err, errlen, "memory-region-%zu chunk %zu cannot be read: %s", i, k,
			strerror((int)-n));
		return (int)n;
	}
	if ((size_t)n != e->length) {
		err_set(err, errlen, "memory-region-%zu ends inside chunk %zu: the snapshot was cut"
			" short, or changed during an OnDemand restore", i, k);
		return -EIO;
	}
	return 0;
}

/* The stored chunk in b->stored (length bytes) decoded into out (len bytes). */
static int decode(const struct chunk_set *s, struct chunk_buf *b, size_t i, size_t k,
		  size_t length, uint8_t *out, size_t len, char *err, size_t errlen)
{
	uint8_t *body = b->stored;
	size_t n = length;

	if (s->fmt.sealed) {
		unsigned long long plen;
		uint8_t ad[32];

		chunk_ad(&s->fmt, i, k, ad);
		body = b->stored + CHUNK_NONCE_BYTES;
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(body, &plen, NULL, body,
							       length - CHUNK_NONCE_BYTES, ad,
							       sizeof(ad), b->stored, s->fmt.key) != 0)
			return bad_chunk(i, k, "does not open with the key: altered, moved or"
					 " damaged", err, errlen);
		n = (size_t)plen;
	}
	if (s->fmt.zstd) {
		if (!b->dctx && !(b->dctx = ZSTD_createDCtx()))
			return -ENOMEM;
		n = ZSTD_decompressDCtx(b->dctx, out, len, body, n);
		if (ZSTD_isError(n) || n != len)
			return bad_chunk(i, k, "is not a zstd frame of the chunk's length", err,
					 errlen);
		return 0;
	}
	if (n != len)
		return bad_chunk(i, k, "has the wrong length", err, errlen);
	memcpy(out, body, len);
	return 0;
}

static int load_plain(int fd, const struct chunk_entry *e, size_t i, size_t k, uint8_t *out,
		      size_t len, char *err, size_t errlen)
{
	if (e->zero && !has_data(fd, e->offset, len)) {
		memset(out, 0, len);
		return 0;
	}
	return read_stored(fd, out, e, i, k, err, errlen);
}

/* chunk_load() with the buffers b. */
static int load(const struct chunk_set *s, struct chunk_buf *b, size_t i, int fd, size_t k,
		uint8_t *out, char *err, size_t errlen)
{
	const struct chunk_entry *e = &s->t[i].e[k];
	size_t len = chunk_len(s->t[i].size, k);
	uint8_t d[CHUNK_DIGEST_BYTES];
	int r;

	if (!stored_form(&s->fmt))
		r = load_plain(fd, e, i, k, out, len, err, errlen);
	else if (e->zero)
		r = (memset(out, 0, len), 0);
	else if ((r = read_stored(fd, b->stored, e, i, k, err, errlen)) == 0)
		r = decode(s, b, i, k, e->length, out, len, err, errlen);
	if (r < 0)
		return r;
	if (e->zero)
		return all_zero(out, len) ? 0 : bad_chunk(i, k, "should be all zero but is not:"
							  " the snapshot is damaged or was altered",
							  err, errlen);
	r = digest_bytes(out, len, d);
	if (r < 0) {
		err_set(err, errlen, "memory-region-%zu chunk %zu: its digest cannot be computed",
			i, k);
		return r;
	}
	if (sodium_memcmp(d, e->digest, sizeof(d)) != 0)
		return bad_chunk(i, k, "does not match its digest: the snapshot is damaged or"
				 " was altered", err, errlen);
	return 0;
}

int chunk_load(struct chunk_set *s, size_t i, int fd, size_t k, uint8_t *out, char *err,
	       size_t errlen)
{
	return load(s, &s->buf, i, fd, k, out, err, errlen);
}

/* The region files and memfds of a fill or a verify (memfds NULL), by region. */
struct fill_job {
	const int *fds, *memfds;
};

/*
 * A zero chunk with nothing in the file (stored: never anything; plain: a
 * hole) has nothing to read or check, and fresh memory is zero already.
 * Most of a large guest's chunks are such.
 */
static bool nothing_stored(const struct chunk_set *s, size_t i, int fd, size_t k)
{
	const struct chunk_entry *e = &s->t[i].e[k];
	size_t len = chunk_len(s->t[i].size, k);

	return e->zero && (stored_form(&s->fmt) || !has_data(fd, e->offset, len));
}

static int fill_chunk(struct chunk_pool *p, struct chunk_buf *b, size_t g, size_t i, size_t k,
		      char *err, size_t errlen)
{
	const struct fill_job *j = p->arg;
	const struct chunk_set *s = p->s;
	int r;

	(void)g;
	if (nothing_stored(s, i, j->fds[i], k))
		return 0;
	r = load(s, b, i, j->fds[i], k, b->plain, err, errlen);
	if (r < 0 || !j->memfds || s->t[i].e[k].zero)
		return r;
	r = write_nonzero_pages(j->memfds[i], b->plain, chunk_len(s->t[i].size, k),
				(uint64_t)k * CHUNK_SIZE);
	if (r < 0)
		err_set(err, errlen, "loading memory-region-%zu failed: %s", i, strerror(-r));
	return r;
}

static int run_fill(struct chunk_set *s, size_t first, size_t end, const int *fds,
		    const int *memfds, char *err, size_t errlen)
{
	struct fill_job j = { .fds = fds, .memfds = memfds };
	struct chunk_pool p = { .s = s, .first = first, .end = end, .fn = fill_chunk, .arg = &j };

	return chunk_pool_run(&p, s->workers, err, errlen);
}

int chunk_fill_region(struct chunk_set *s, size_t i, int fd, int memfd, char *err,
		      size_t errlen)
{
	int fds[LAYOUT_MAX_REGIONS], memfds[LAYOUT_MAX_REGIONS];

	if (i >= s->n_regions)
		return -EINVAL;
	fds[i] = fd;
	memfds[i] = memfd;
	return run_fill(s, i, i + 1, fds, memfds, err, errlen);
}

int chunk_fill_regions(struct chunk_set *s, const int *fds, const int *memfds, char *err,
		       size_t errlen)
{
	return run_fill(s, 0, s->n_regions, fds, memfds, err, errlen);
}

int chunk_verify_region(struct chunk_set *s, size_t i, int fd, char *err, size_t errlen)
{
	int fds[LAYOUT_MAX_REGIONS];

	if (i >= s->n_regions)
		return -EINVAL;
	fds[i] = fd;
	return run_fill(s, i, i + 1, fds, NULL, err, errlen);
}

static struct chunk_slot *cached(struct chunk_set *s, size_t i, size_t k, int fd, char *err,
				 size_t errlen)
{
	struct chunk_slot *c;

	for (size_t n = 0; n < CHUNK_CACHE; n++) {
		c = &s->cache[n];
		if (c->valid && c->region == i && c->index == k)
			return c;
	}
	c = &s->cache[s->next_slot];
	s->next_slot = (s->next_slot + 1) % CHUNK_CACHE;
	c->valid = false;
	if (!c->data && !(c->data = malloc(CHUNK_SIZE))) {
		err_set(err, errlen, "out of memory for a chunk");
		return NULL;
	}
	if (chunk_load(s, i, fd, k, c->data, err, errlen) < 0)
		return NULL;
	*c = (struct chunk_slot){ .region = i, .index = k, .valid = true, .data = c->data };
	return c;
}

int chunk_read(struct chunk_set *s, size_t i, int fd, uint64_t off, size_t len, uint8_t *out,
	       char *err, size_t errlen)
{
	if (i >= s->n_regions || off > s->t[i].size || s->t[i].size - off < len) {
		err_set(err, errlen, "memory-region-%zu has no bytes at %#" PRIx64 "+%zu", i, off, len);
		return -EINVAL;
	}
	while (len > 0) {
		size_t k = (size_t)(off / CHUNK_SIZE), in = (size_t)(off % CHUNK_SIZE);
		size_t n = chunk_len(s->t[i].size, k) - in;
		struct chunk_slot *c = cached(s, i, k, fd, err, errlen);

		if (!c)
			return -EBADMSG;
		n = n < len ? n : len;
		memcpy(out, c->data + in, n);
		out += n;
		off += n;
		len -= n;
	}
	return 0;
}

void chunk_next_data(const struct chunk_set *s, size_t i, int fd, uint64_t pos,
		     uint64_t *ret_start, uint64_t *ret_end)
{
	const struct chunk_table *t = &s->t[i];
	size_t k;

	*ret_start = *ret_end = t->size;
	if (!stored_form(&s->fmt)) {
		off_t d = pos < t->size ? lseek(fd, (off_t)pos, SEEK_DATA) : -1, e;

		if (d < 0 && errno != ENXIO && pos < t->size)
			d = (off_t)pos;
		if (d < 0 || (uint64_t)d >= t->size)
			return;
		e = lseek(fd, d, SEEK_HOLE);
		*ret_start = (uint64_t)d;
		*ret_end = e < 0 || (uint64_t)e > t->size ? t->size : (uint64_t)e;
		return;
	}
	for (k = (size_t)(pos / CHUNK_SIZE); k < t->n && t->e[k].zero; k++)
		;
	if (k >= t->n)
		return;
	*ret_start = (uint64_t)k * CHUNK_SIZE > pos ? (uint64_t)k * CHUNK_SIZE : pos;
	*ret_end = (uint64_t)k * CHUNK_SIZE + chunk_len(t->size, k);
}

uint64_t chunk_data_bytes(const struct chunk_set *s)
{
	uint64_t n = 0;

	for (size_t i = 0; i < s->n_regions; i++)
		for (size_t k = 0; k < s->t[i].n; k++)
			n += s->t[i].e[k].zero ? 0 : chunk_len(s->t[i].size, k);
	return n;
}
