/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The chunks of a snapshot's memory regions: how each region file holds
 * guest memory, and the checks a restore makes before a byte of it reaches
 * the guest.
 *
 * A region is cut into CHUNK_SIZE chunks (the last may be short). vm.json
 * records, per chunk, "zero" or the SHA-256 digest of its bytes, and
 * (compressed or encrypted formats) where the chunk is stored in the region
 * file. Three stored forms:
 *
 *   plain   the region file is a sparse raw copy of guest memory, chunk k at
 *           k * CHUNK_SIZE, as before digests existed;
 *   zstd    chunks are zstd frames, back to back, each at its recorded
 *           offset and length; zero chunks take no space;
 *   sealed  each stored chunk (zstd or raw) is nonce (24 bytes) followed by
 *           its XChaCha20-Poly1305 ciphertext and tag; the associated data is
 *           the snapshot id, the region index and the chunk index, so a
 *           chunk cannot be moved to another place or snapshot.
 *
 * Every chunk is decoded and its digest checked before any of it is used.
 */
#ifndef CLOISTER_CHUNK_H
#define CLOISTER_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "layout.h"

#define CHUNK_SIZE (1u << 20)
#define CHUNK_DIGEST_BYTES DIGEST_BYTES
#define CHUNK_KEY_BYTES 32
#define CHUNK_NONCE_BYTES 24
#define CHUNK_TAG_BYTES 16
#define CHUNK_ID_BYTES 16
/* Decoded chunks kept for the pager: faults and the prefetch interleave. */
#define CHUNK_CACHE 4
/* Threads a restore, a verify or a snapshot's write uses at most (chunk_pool.h). */
#define CHUNK_MAX_WORKERS 4

struct chunk_entry {
	uint64_t offset;	/* in the region file (plain: index * CHUNK_SIZE) */
	uint32_t length;	/* stored bytes (plain: the chunk's length) */
	bool zero;		/* all zero: nothing stored (plain: reads as zero) */
	uint8_t digest[CHUNK_DIGEST_BYTES];	/* of the chunk's bytes */
};

struct chunk_table {
	uint64_t size;		/* the region's */
	size_t n;		/* chunks: size / CHUNK_SIZE rounded up */
	struct chunk_entry *e;
};

struct chunk_format {
	bool zstd;
	bool sealed;
	uint8_t key[CHUNK_KEY_BYTES];	/* sealed only; wiped by chunk_set_release() */
	uint8_t id[CHUNK_ID_BYTES];	/* the snapshot's, random at save */
};

struct chunk_slot {
	size_t region, index;
	bool valid;
	uint8_t *data;
};

/* What one thread needs to encode or decode a chunk. */
struct chunk_buf {
	uint8_t *stored;	/* a stored chunk as read, or as encoded */
	uint8_t *plain;		/* a decoded chunk */
	void *cctx, *dctx;	/* zstd contexts, made when first needed */
};

struct chunk_set {
	struct chunk_format fmt;
	size_t n_regions;
	struct chunk_table t[LAYOUT_MAX_REGIONS];
	struct chunk_buf buf;	/* the calling thread's (the pager's) */
	struct chunk_slot cache[CHUNK_CACHE];
	size_t next_slot;
	size_t workers;		/* threads for whole regions; 0: chunk_workers() */
	/* NULL, or a counter (shared with the gateway) a save adds each chunk's bytes to. */
	uint64_t *progress;
};

/* Buffers for fmt's chunks; chunk_buf_release() frees them, also after a failure. */
int chunk_buf_init(struct chunk_buf *b, const struct chunk_format *fmt);
void chunk_buf_release(struct chunk_buf *b);

/*
 * Threads for a whole region's chunks: the CPUs this process may run on, at
 * most CHUNK_MAX_WORKERS. Worked out once; a confined process calls it
 * before its sandbox (it asks the kernel for the CPU mask).
 */
size_t chunk_workers(void);

/* Largest stored form of a chunk a snapshot may record. */
size_t chunk_max_stored(const struct chunk_format *fmt);

/* An empty set of n tables for regions of sizes[i] bytes. */
int chunk_set_init(struct chunk_set *s, const struct chunk_format *fmt, const uint64_t *sizes,
		   size_t n);
/* Wipes the key: no chunk will be read again. */
void chunk_forget_key(struct chunk_set *s);

/* Frees the tables and buffers and wipes the key. */
void chunk_set_release(struct chunk_set *s);

/*
 * Writes the first size bytes of memfd (region i of s) into out_fd, an empty
 * regular file, in s's format, filling table i. Syncs out_fd. The chunks are
 * read, hashed and encoded by s's workers; a stored form's chunks reach
 * the file in order, as one thread would write them.
 */
int chunk_write_region(struct chunk_set *s, size_t i, int memfd, int out_fd, char *err,
		       size_t errlen);

/*
 * Checks table i against its file of file_size bytes: plain chunks in
 * place, stored chunks in order, not overlapping, inside the file and
 * of a length their format allows. -EINVAL naming the chunk otherwise.
 */
int chunk_check_table(const struct chunk_set *s, size_t i, uint64_t file_size, char *err,
		      size_t errlen);

/*
 * Chunk k of region i, read from fd, decoded and checked against its digest,
 * into out (CHUNK_SIZE bytes), with s's own buffers (one thread: the pager).
 * -EBADMSG naming region, chunk and offset on a mismatch or a chunk that
 * does not open; -EIO for a file cut short.
 */
int chunk_load(struct chunk_set *s, size_t i, int fd, size_t k, uint8_t *out, char *err,
	       size_t errlen);

/*
 * Copy restore: every chunk of region i checked, its non-zero pages written
 * to memfd, by s's workers. On failure, the error of the first bad chunk in
 * order; memfd then holds part of the region and must not be used.
 */
int chunk_fill_region(struct chunk_set *s, size_t i, int fd, int memfd, char *err,
		      size_t errlen);

/* The same for every region: fds[i] is region i's file, memfds[i] its memory. */
int chunk_fill_regions(struct chunk_set *s, const int *fds, const int *memfds, char *err,
		       size_t errlen);

/* Checks every chunk of region i without using it (cloister-snapshot verify), by s's workers. */
int chunk_verify_region(struct chunk_set *s, size_t i, int fd, char *err, size_t errlen);

/*
 * [off, off + len) of region i's memory, from checked chunks (a few kept
 * decoded), into out. For the pager.
 */
int chunk_read(struct chunk_set *s, size_t i, int fd, uint64_t off, size_t len, uint8_t *out,
	       char *err, size_t errlen);

/*
 * The next range of region i at or after pos that holds data: [*ret_start,
 * *ret_end); *ret_start == the region size when there is none.
 */
void chunk_next_data(const struct chunk_set *s, size_t i, int fd, uint64_t pos,
		     uint64_t *ret_start, uint64_t *ret_end);

/* Bytes of memory in non-zero chunks, over all regions. */
uint64_t chunk_data_bytes(const struct chunk_set *s);

/* Length of chunk k of a region of size bytes. */
static inline size_t chunk_len(uint64_t size, size_t k)
{
	uint64_t left = size - (uint64_t)k * CHUNK_SIZE;

	return left < CHUNK_SIZE ? (size_t)left : CHUNK_SIZE;
}

#endif
