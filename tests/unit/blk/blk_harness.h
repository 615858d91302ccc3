/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blk device driven in-process: a fake guest, a temporary disk image and
 * the device's process_queue called directly, so each test sees exactly one
 * request served and what it did to the image.
 */
#ifndef TEST_BLK_HARNESS_H
#define TEST_BLK_HARNESS_H

#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk.h"
#include "guest_mem.h"

#define QSIZE BLK_QUEUE_SIZE
#define IMAGE_BYTES (1u << 20)
#define HDR_GPA (GM_BUFS)
#define DATA_GPA (GM_BUFS + 0x1000)
#define DATA_MAX 0x20000u
#define STATUS_GPA (GM_BUFS + 0x30000)

#define ALL_BLK_FEATURES                                                                          \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_SEG_MAX) |                          \
	 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |                         \
	 (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES))

struct blk_fixture {
	struct test_guest g;
	struct blk_disk disk;
	struct device dev;
	char path[64];
	int image_fd;
	uint16_t next_desc;
	/* descriptors of the chain being built */
	uint16_t chain[QSIZE];
	uint32_t chain_len;
};

/* A fresh image of size bytes, opened with flags; the path is unlinked at teardown. */
static inline int blk_image_create(struct blk_fixture *f, size_t size, int flags)
{
	int fd;

	strcpy(f->path, "/tmp/cloister-blk-test-XXXXXX");
	fd = mkstemp(f->path);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
	fd = open(f->path, flags | O_CLOEXEC);
	cr_assert(fd >= 0);
	return fd;
}

static inline void blk_queue_start(struct blk_fixture *f, uint64_t features)
{
	struct virtqueue_config cfg = {
		.index = 0, .size = QSIZE,
		.desc_addr = GM_DESC, .avail_addr = GM_AVAIL, .used_addr = GM_USED,
		.indirect = true, .kick_fd = -1, .call_fd = -1,
	};

	memset(guest_ptr(&f->g, GM_AVAIL), 0, VQ_AVAIL_BYTES(QSIZE));
	memset(guest_ptr(&f->g, GM_USED), 0, VQ_USED_BYTES(QSIZE));
	f->g.avail_idx = 0;
	f->dev.driver_features = features;
	cr_assert_eq(virtqueue_setup(&f->dev.queues[0], &f->dev.mem, &cfg), 0);
}

/* The device over an image fd; the guest memory must be open already. */
static inline void blk_attach(struct blk_fixture *f, int image_fd, uint64_t features)
{
	f->image_fd = image_fd;
	cr_assert_eq(blk_disk_init(&f->disk, image_fd), 0);
	device_init(&f->dev, &f->disk.ops, "blk0", -1, image_fd);
	f->dev.mem = f->g.mem;
	blk_queue_start(f, features);
}

static inline void blk_detach(struct blk_fixture *f)
{
	virtqueue_teardown(&f->dev.queues[0]);
	close(f->image_fd);
	unlink(f->path);
}

static inline void chain_add(struct blk_fixture *f, uint64_t gpa, uint32_t len, bool writable)
{
	cr_assert_lt(f->chain_len, QSIZE);
	f->chain[f->chain_len++] = f->next_desc;
	guest_desc(&f->g, GM_DESC, f->next_desc, gpa, len, writable ? VIRTQ_DESC_F_WRITE : 0, 0);
	f->next_desc = (uint16_t)((f->next_desc + 1) % QSIZE);
}

/* Links the chain built so far and makes it available; returns its head. */
static inline uint16_t chain_post(struct blk_fixture *f)
{
	uint16_t head = f->chain[0];

	for (uint32_t i = 0; i + 1 < f->chain_len; i++) {
		uint8_t *d = guest_ptr(&f->g, GM_DESC) + 16u * f->chain[i];
		uint16_t flags, next = htole16(f->chain[i + 1]);

		memcpy(&flags, d + 12, 2);
		flags = htole16(le16toh(flags) | VIRTQ_DESC_F_NEXT);
		memcpy(d + 12, &flags, 2);
		memcpy(d + 14, &next, 2);
	}
	f->chain_len = 0;
	guest_avail(&f->g, QSIZE, head);
	return head;
}

static inline int blk_run(struct blk_fixture *f)
{
	return f->disk.ops.process_queue(&f->dev, &f->dev.queues[0]);
}

static inline void blk_header(struct blk_fixture *f, uint32_t type, uint64_t sector)
{
	uint8_t *h = guest_ptr(&f->g, HDR_GPA);
	uint32_t t = htole32(type), reserved = 0;
	uint64_t s = htole64(sector);

	memcpy(h, &t, 4);
	memcpy(h + 4, &reserved, 4);
	memcpy(h + 8, &s, 8);
}

/* Serves the posted chain and checks it was completed; returns its used length. */
static inline uint32_t blk_complete(struct blk_fixture *f, uint16_t head)
{
	uint16_t before = guest_used_idx(&f->g);
	uint32_t id, len;

	cr_assert_eq(blk_run(f), 0);
	cr_assert_eq(guest_used_idx(&f->g), (uint16_t)(before + 1), "request was not completed");
	guest_used_elem(&f->g, before % QSIZE, &id, &len);
	cr_assert_eq(id, head);
	return len;
}

/*
 * The usual layout: header, data (writable or not, none when len is 0),
 * one status byte. Returns the status; *ret_used gets the used length.
 */
static inline uint8_t blk_request(struct blk_fixture *f, uint32_t type, uint64_t sector,
				  uint32_t data_len, bool data_writable, uint32_t *ret_used)
{
	uint32_t used;

	cr_assert_leq(data_len, DATA_MAX);
	blk_header(f, type, sector);
	*guest_ptr(&f->g, STATUS_GPA) = 0xff;
	chain_add(f, HDR_GPA, BLK_REQ_HEADER_BYTES, false);
	if (data_len)
		chain_add(f, DATA_GPA, data_len, data_writable);
	chain_add(f, STATUS_GPA, 1, true);
	used = blk_complete(f, chain_post(f));
	if (ret_used)
		*ret_used = used;
	return *guest_ptr(&f->g, STATUS_GPA);
}

/* One discard/write-zeroes segment at DATA_GPA. */
static inline uint8_t blk_dwz_request(struct blk_fixture *f, uint32_t type, uint64_t sector,
				      uint32_t n_sectors, uint32_t flags)
{
	uint8_t *seg = guest_ptr(&f->g, DATA_GPA);
	uint64_t s = htole64(sector);
	uint32_t n = htole32(n_sectors), fl = htole32(flags);

	memcpy(seg, &s, 8);
	memcpy(seg + 8, &n, 4);
	memcpy(seg + 12, &fl, 4);
	return blk_request(f, type, 0, BLK_DWZ_SEGMENT_BYTES, false, NULL);
}

static inline void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 9));
}

static inline bool bytes_all(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

#endif
