/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Split virtqueues (virtio 1.2, 2.7) served from guest memory mapped into a
 * device process. Everything read from guest memory is a hostile value: each
 * address and length is checked against the memory table before use, and a
 * chain that breaks a rule makes the queue refuse to go on rather than guess.
 */
#ifndef CLOISTER_VIRTQUEUE_H
#define CLOISTER_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "virtio_spec.h"

#define GUEST_MEM_MAX_REGIONS 4u
/* The largest split queue the spec allows. */
#define VQ_MAX_SIZE 32768u



/* Ring sizes for a queue of n entries, event fields included. */
#define VQ_DESC_BYTES(n) (16ull * (n))
#define VQ_AVAIL_BYTES(n) (6ull + 2ull * (n))
#define VQ_USED_BYTES(n) (6ull + 8ull * (n))

struct guest_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_memory {
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
	size_t n_regions;
};

/*
 * Host address of [gpa, gpa + len) when the whole range lies inside one
 * region, NULL otherwise (also for len 0).
 */
void *guest_memory_translate(const struct guest_memory *mem, uint64_t gpa, uint64_t len);

/* One buffer of a chain, already translated; host is NULL when len is 0. */
struct vq_buf {
	uint8_t *host;
	uint32_t len;
	bool writable;
};

/* A popped chain; bufs points into the queue and is valid until the next pop. */
struct vq_chain {
	uint16_t head;
	uint32_t n_bufs;
	struct vq_buf *bufs;
};

struct virtqueue_config {
	uint32_t index;
	uint32_t size;
	uint64_t desc_addr, avail_addr, used_addr;
	uint16_t last_avail_idx, used_idx;
	bool indirect;		/* VIRTIO_F_INDIRECT_DESC negotiated */
	int kick_fd, call_fd;	/* -1 when none */
};

struct virtqueue {
	uint32_t index;
	uint32_t size;
	uint64_t desc_addr, avail_addr, used_addr;
	uint16_t last_avail_idx, used_idx;
	bool indirect;
	bool ready;
	/* Set once the driver broke a rule; the queue is not served any more. */
	bool broken;
	int kick_fd, call_fd;
	uint8_t *desc, *avail, *used;
	struct vq_buf *scratch;
};

/* An unset queue: not ready, no fds. */
void virtqueue_init(struct virtqueue *vq);

/*
 * Checks cfg against mem (size a power of two <= VQ_MAX_SIZE, rings aligned
 * and each inside one region) and makes vq ready. On success vq owns the fds
 * in cfg; on failure they stay the caller's and vq is left unset.
 */
int virtqueue_setup(struct virtqueue *vq, const struct guest_memory *mem,
		    const struct virtqueue_config *cfg);

/* Closes the fds, frees memory, back to virtqueue_init() state. */
void virtqueue_teardown(struct virtqueue *vq);

/*
 * Takes the next available chain. Returns 0, -EAGAIN when none is pending,
 * or -EINVAL/-EFAULT/-ELOOP for a chain (or avail index) that breaks the
 * rules, after which the queue is marked broken and refuses everything.
 */
int virtqueue_pop(struct virtqueue *vq, const struct guest_memory *mem, struct vq_chain *ret_chain);

/* Puts chain on the used ring with len bytes written. */
int virtqueue_push(struct virtqueue *vq, const struct vq_chain *chain, uint32_t len);

/* Signals the call eventfd, if any. */
int virtqueue_notify(struct virtqueue *vq);

/*
 * Signals the queue's own kick eventfd, so a queue left unfinished after a
 * budget is served again on the next loop: a guest that keeps a queue full
 * cannot starve the control socket or the other queues.
 */
void virtqueue_rearm_kick(struct virtqueue *vq);

/* Drains the kick eventfd; returns 0 whether or not it was signalled. */
int virtqueue_drain_kick(struct virtqueue *vq);

#endif
