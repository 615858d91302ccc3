/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Random chains from a hostile guest. Guest memory sits between inaccessible
 * guard pages, so a device access outside it crashes the test; the image
 * must never grow, and every completion must stay inside the chain.
 */
#include <sys/mman.h>

#include "blk_harness.h"
#include "ratelimit.h"

#define GUARD 4096ull
#define ROUNDS 4000

static struct blk_fixture f;
static uint8_t *reservation;

/* Like guest_open, with a guard page on either side. */
static void guest_open_guarded(struct test_guest *g)
{
	g->memfd = memfd_create("guest", MFD_CLOEXEC);
	cr_assert(g->memfd >= 0);
	cr_assert_eq(ftruncate(g->memfd, GM_SIZE), 0);
	reservation = mmap(NULL, GM_SIZE + 2 * GUARD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(reservation != MAP_FAILED);
	g->host = mmap(reservation + GUARD, GM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		       g->memfd, 0);
	cr_assert(g->host == reservation + GUARD);
	g->mem = (struct guest_memory){
		.regions = { { .gpa = GM_BASE, .size = GM_SIZE, .host = g->host } },
		.n_regions = 1,
	};
	g->avail_idx = 0;
}

static void setup(void)
{
	memset(&f, 0, sizeof(f));
	guest_open_guarded(&f.g);
	blk_attach(&f, blk_image_create(&f, IMAGE_BYTES, O_RDWR), ALL_BLK_FEATURES);
}

static void teardown(void)
{
	blk_detach(&f);
	munmap(reservation, GM_SIZE + 2 * GUARD);
	close(f.g.memfd);
}

TestSuite(blk_hostile, .init = setup, .fini = teardown, .timeout = 120);

static uint32_t rnd(uint32_t below)
{
	return (uint32_t)random() % below;
}

/* Mostly sane addresses, some at the very edges of memory, some outside it. */
static uint64_t random_gpa(uint32_t len)
{
	switch (rnd(8)) {
	case 0:
		return GM_BASE + GM_SIZE - len;
	case 1:
		return GM_BASE + GM_SIZE - rnd(64);
	case 2:
		return GM_BASE - rnd(64);
	case 3:
		return ((uint64_t)random() << 32) | (uint64_t)random();
	default:
		return GM_BUFS + rnd(0x80000);
	}
}

static uint32_t random_len(void)
{
	static const uint32_t lens[] = { 0, 1, 15, 16, 17, 20, 511, 512, 513, 4096, 65536 };

	if (rnd(4) == 0)
		return rnd(70000);
	return lens[rnd(sizeof(lens) / sizeof(lens[0]))];
}

static void random_header(void)
{
	static const uint32_t types[] = { 0, 1, 4, 8, 11, 13, 2, 0xffffffffu };
	static const uint64_t sectors[] = { 0, 1, 2040, 2047, 2048, 2049, 1ull << 55, UINT64_MAX };
	uint8_t *seg = guest_ptr(&f.g, DATA_GPA);

	blk_header(&f, types[rnd(8)], rnd(2) ? sectors[rnd(8)] : rnd(4096));
	/* a discard/write-zeroes segment in case a readable buffer lands here */
	for (int i = 0; i < 16; i++)
		seg[i] = (uint8_t)random();
}

/* Header, sector-sized data in the direction the type wants, status: what a driver sends. */
static uint16_t plausible_chain(uint32_t *ret_writable_bytes)
{
	uint32_t type = rnd(2) ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
	uint32_t len = 512u * (1 + rnd(16));
	bool in = type == VIRTIO_BLK_T_IN;
	uint16_t head = (uint16_t)rnd(QSIZE - 2);

	blk_header(&f, type, rnd(2100));
	guest_desc(&f.g, GM_DESC, head, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(head + 1));
	guest_desc(&f.g, GM_DESC, (uint16_t)(head + 1), DATA_GPA + rnd(0x10000), len,
		   VIRTQ_DESC_F_NEXT | (in ? VIRTQ_DESC_F_WRITE : 0), (uint16_t)(head + 2));
	guest_desc(&f.g, GM_DESC, (uint16_t)(head + 2), STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	*ret_writable_bytes = 1 + (in ? len : 0);
	return head;
}

/* One random chain in the table, flags and links included; returns its head. */
static uint16_t random_chain(uint32_t *ret_writable_bytes)
{
	uint32_t n = 1 + rnd(6), writable = 0;
	uint16_t head = (uint16_t)rnd(QSIZE);
	uint16_t i = head;

	if (rnd(3) == 0)
		return plausible_chain(ret_writable_bytes);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t len = k == 0 && rnd(2) ? 16 : random_len();
		uint16_t flags = 0, next = (uint16_t)rnd(QSIZE);
		uint64_t gpa = k == 0 ? HDR_GPA : random_gpa(len);

		if (k > 0 && rnd(3))
			flags |= VIRTQ_DESC_F_WRITE;
		if (k + 1 < n)
			flags |= VIRTQ_DESC_F_NEXT;
		if (rnd(40) == 0)
			flags = (uint16_t)random();
		if (rnd(30) == 0)
			next = (uint16_t)random();
		if (flags & VIRTQ_DESC_F_WRITE)
			writable += len;
		guest_desc(&f.g, GM_DESC, i, gpa, len, flags, next);
		i = next;
	}
	*ret_writable_bytes = writable;
	return head;
}

/*
 * Writable bytes of the chain at head as the table now holds it, or
 * UINT32_MAX when that cannot be told from here (an indirect table).
 */
static uint32_t chain_writable_bytes(uint16_t head)
{
	uint64_t total = 0;
	uint32_t i = head;

	for (uint32_t steps = 0; steps < QSIZE; steps++) {
		const uint8_t *d = guest_ptr(&f.g, GM_DESC) + 16u * i;
		uint32_t len;
		uint16_t flags, next;

		memcpy(&len, d + 8, 4);
		memcpy(&flags, d + 12, 2);
		memcpy(&next, d + 14, 2);
		flags = le16toh(flags);
		if (flags & VIRTQ_DESC_F_INDIRECT)
			return UINT32_MAX;
		if (flags & VIRTQ_DESC_F_WRITE)
			total += le32toh(len);
		if (!(flags & VIRTQ_DESC_F_NEXT) || le16toh(next) >= QSIZE)
			break;
		i = le16toh(next);
	}
	return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

/* A queue the device gave up on is set up afresh, as a driver's reset would. */
static void requeue(void)
{
	virtqueue_teardown(&f.dev.queues[0]);
	blk_queue_start(&f, ALL_BLK_FEATURES);
}

Test(blk_hostile, random_chains_stay_inside_the_guest)
{
	uint32_t completed = 0, refused = 0;

	srandom(0x5eed);
	for (int round = 0; round < ROUNDS; round++) {
		uint16_t before = guest_used_idx(&f.g);
		uint32_t writable;
		uint16_t head;

		random_header();
		head = random_chain(&writable);
		guest_avail(&f.g, QSIZE, head);
		if (blk_run(&f) < 0) {
			refused++;
			requeue();
			continue;
		}
		cr_assert_eq(guest_used_idx(&f.g), (uint16_t)(before + 1));
		{
			uint32_t id, len;

			guest_used_elem(&f.g, before % QSIZE, &id, &len);
			cr_assert_eq(id, head);
			cr_assert_geq(len, 1);
		}
		completed++;
	}
	cr_assert_eq(lseek(f.image_fd, 0, SEEK_END), IMAGE_BYTES, "the image must not grow");
	/* both outcomes must have been exercised for the test to mean anything */
	cr_assert_gt(completed, ROUNDS / 10);
	cr_assert_gt(refused, ROUNDS / 10);
	cr_assert_gt(f.dev.bytes_served, 0, "some requests must have moved data");
}

Test(blk_hostile, used_length_never_exceeds_the_writable_bytes)
{
	srandom(0xb1c);
	for (int round = 0; round < ROUNDS; round++) {
		uint16_t before = guest_used_idx(&f.g);
		uint32_t writable, id, len;
		uint16_t head;

		memset(guest_ptr(&f.g, GM_DESC), 0, VQ_DESC_BYTES(QSIZE));
		random_header();
		head = random_chain(&writable);
		writable = chain_writable_bytes(head);
		guest_avail(&f.g, QSIZE, head);
		if (blk_run(&f) < 0) {
			requeue();
			continue;
		}
		guest_used_elem(&f.g, before % QSIZE, &id, &len);
		cr_assert_leq(len, writable, "used %u > %u writable bytes", len, writable);
	}
}

/* A guest looping over a request the host fails: the host log gets a bounded number of lines. */
Test(blk_hostile, failing_host_requests_log_a_bounded_number_of_lines)
{
	char path[] = "/tmp/cloister-blk-log-XXXXXX";
	int log_fd = mkstemp(path), saved = dup(STDERR_FILENO);
	char text[16384];
	ssize_t got;
	int lines = 0;

	cr_assert(log_fd >= 0 && saved >= 0);
	unlink(path);
	/* The image shrank under the device: every read of it fails on the host side. */
	cr_assert_eq(ftruncate(f.image_fd, 0), 0);
	cr_assert(dup2(log_fd, STDERR_FILENO) >= 0);
	for (int i = 0; i < 500; i++)
		cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, 0, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	got = pread(log_fd, text, sizeof(text) - 1, 0);
	close(log_fd);
	cr_assert_gt(got, 0, "the first failures are logged");
	text[got] = '\0';
	for (char *p = text; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, RATELIMIT_BURST, "%s", text);
}
