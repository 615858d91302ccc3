/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A polled virtio-rng driver over virtio-mmio version 2 (virtio 1.2, 4.2.2
 * and 5.4): one queue of 8 entries, one device-writable buffer per request,
 * no interrupts.
 */
#include "rt.h"
#include "virtio_spec.h"

/* VIRTIO_F_VERSION_1 is feature bit 32: bit 0 of feature word 1. */
#define FEATURE_WORD1_VERSION_1 1u

#define RNG_QUEUE_SIZE 8

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[RNG_QUEUE_SIZE];
	uint16_t used_event;
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[RNG_QUEUE_SIZE];
	uint16_t avail_event;
};

struct virtio_rng {
	uint64_t base;
	uint16_t avail_idx, used_idx;
	struct virtq_desc desc[RNG_QUEUE_SIZE] __attribute__((aligned(16)));
	struct virtq_avail avail __attribute__((aligned(2)));
	struct virtq_used used __attribute__((aligned(4)));
	uint8_t buf[64];
};

/* One device: the guests only ever drive the first slot. */
static struct virtio_rng rng_dev __attribute__((aligned(4096)));

static uint32_t mmio_read(const struct virtio_rng *r, unsigned off)
{
	uint32_t v = *(volatile uint32_t *)(uintptr_t)(r->base + off);

	__asm__ volatile("fence i, r" ::: "memory");
	return v;
}

static void mmio_write(const struct virtio_rng *r, unsigned off, uint32_t v)
{
	__asm__ volatile("fence w, o" ::: "memory");
	*(volatile uint32_t *)(uintptr_t)(r->base + off) = v;
}

static void mmio_write64(const struct virtio_rng *r, unsigned low, unsigned high, uint64_t v)
{
	mmio_write(r, low, (uint32_t)v);
	mmio_write(r, high, (uint32_t)(v >> 32));
}

static int rng_negotiate(struct virtio_rng *r)
{
	mmio_write(r, VIRTIO_MMIO_STATUS, 0);
	if (mmio_read(r, VIRTIO_MMIO_STATUS) != 0)
		return -1;
	mmio_write(r, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	mmio_write(r, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	mmio_write(r, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	if (!(mmio_read(r, VIRTIO_MMIO_DEVICE_FEATURES) & FEATURE_WORD1_VERSION_1))
		return -1;
	mmio_write(r, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mmio_write(r, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	mmio_write(r, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mmio_write(r, VIRTIO_MMIO_DRIVER_FEATURES, FEATURE_WORD1_VERSION_1);
	mmio_write(r, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	if (!(mmio_read(r, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
		return -1;
	return 0;
}

static int rng_setup_queue(struct virtio_rng *r)
{
	mmio_write(r, VIRTIO_MMIO_QUEUE_SEL, 0);
	if (mmio_read(r, VIRTIO_MMIO_QUEUE_READY) != 0)
		return -1;
	if (mmio_read(r, VIRTIO_MMIO_QUEUE_NUM_MAX) < RNG_QUEUE_SIZE)
		return -1;
	mmio_write(r, VIRTIO_MMIO_QUEUE_NUM, RNG_QUEUE_SIZE);
	mmio_write64(r, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH,
		     (uintptr_t)r->desc);
	mmio_write64(r, VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
		     (uintptr_t)&r->avail);
	mmio_write64(r, VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
		     (uintptr_t)&r->used);
	mmio_write(r, VIRTIO_MMIO_QUEUE_READY, 1);
	return 0;
}

struct virtio_rng *virtio_rng_init(uint64_t base)
{
	struct virtio_rng *r = &rng_dev;

	memset(r, 0, sizeof(*r));
	r->base = base;
	if (mmio_read(r, VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC ||
	    mmio_read(r, VIRTIO_MMIO_VERSION_REG) != VIRTIO_MMIO_VERSION ||
	    mmio_read(r, VIRTIO_MMIO_DEVICE_ID) != VIRTIO_ID_RNG)
		return NULL;
	if (rng_negotiate(r) < 0 || rng_setup_queue(r) < 0) {
		mmio_write(r, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_FAILED);
		return NULL;
	}
	mmio_write(r, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		   VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	return r;
}

/* Posts one request for up to len bytes; returns how many came back, or -1. */
static int rng_request(struct virtio_rng *r, size_t len, uint64_t deadline)
{
	volatile uint16_t *used_idx = &r->used.idx;
	uint32_t got;

	r->desc[0] = (struct virtq_desc){
		.addr = (uintptr_t)r->buf, .len = (uint32_t)len, .flags = VIRTQ_DESC_F_WRITE,
	};
	r->avail.ring[r->avail_idx % RNG_QUEUE_SIZE] = 0;
	__asm__ volatile("fence w, w" ::: "memory");
	r->avail.idx = ++r->avail_idx;
	mmio_write(r, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	while (*used_idx == r->used_idx)
		if (rdtime() >= deadline)
			return -1;
	__asm__ volatile("fence r, r" ::: "memory");
	got = r->used.ring[r->used_idx % RNG_QUEUE_SIZE].len;
	r->used_idx++;
	mmio_write(r, VIRTIO_MMIO_INTERRUPT_ACK, mmio_read(r, VIRTIO_MMIO_INTERRUPT_STATUS));
	return got > len ? (int)len : (int)got;
}

int virtio_rng_read(struct virtio_rng *r, uint8_t *buf, size_t len, uint64_t timeout_ticks)
{
	uint64_t deadline = rdtime() + timeout_ticks;
	size_t done = 0;

	while (done < len) {
		size_t want = len - done < sizeof(r->buf) ? len - done : sizeof(r->buf);
		int got = rng_request(r, want, deadline);

		if (got < 0)
			return -1;
		memcpy(buf + done, r->buf, (size_t)got);
		done += (size_t)got;
		if (got == 0 && rdtime() >= deadline)
			return -1;
	}
	return 0;
}
