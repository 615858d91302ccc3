/* SPDX-License-Identifier: Apache-2.0 */
#include "virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "ratelimit.h"

/* Walk state shared by the direct and the indirect part of one chain. */
struct chain_walk {
	struct virtqueue *vq;
	const struct guest_memory *mem;
	uint32_t n_bufs;
	bool seen_writable;
};

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

void *guest_memory_translate(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		return NULL;
	for (size_t i = 0; i < mem->n_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		/* Written so that no sum can wrap: gpa - r->gpa < size, then len fits the rest. */
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return NULL;
		return r->host + (gpa - r->gpa);
	}
	return NULL;
}

void virtqueue_init(struct virtqueue *vq)
{
	*vq = (struct virtqueue){ .kick_fd = -1, .call_fd = -1 };
}

static bool queue_size_valid(uint32_t size)
{
	return size != 0 && size <= VQ_MAX_SIZE && (size & (size - 1)) == 0;
}

int virtqueue_setup(struct virtqueue *vq, const struct guest_memory *mem,
		    const struct virtqueue_config *cfg)
{
	uint8_t *desc, *avail, *used;
	struct vq_buf *scratch;

	if (!queue_size_valid(cfg->size))
		return -EINVAL;
	if (cfg->desc_addr % 16 || cfg->avail_addr % 2 || cfg->used_addr % 4)
		return -EINVAL;
	desc = guest_memory_translate(mem, cfg->desc_addr, VQ_DESC_BYTES(cfg->size));
	avail = guest_memory_translate(mem, cfg->avail_addr, VQ_AVAIL_BYTES(cfg->size));
	used = guest_memory_translate(mem, cfg->used_addr, VQ_USED_BYTES(cfg->size));
	if (!desc || !avail || !used)
		return -EFAULT;
	scratch = calloc(cfg->size, sizeof(*scratch));
	if (!scratch)
		return -ENOMEM;
	*vq = (struct virtqueue){
		.index = cfg->index,
		.size = cfg->size,
		.desc_addr = cfg->desc_addr,
		.avail_addr = cfg->avail_addr,
		.used_addr = cfg->used_addr,
		.last_avail_idx = cfg->last_avail_idx,
		.used_idx = cfg->used_idx,
		.indirect = cfg->indirect,
		.ready = true,
		.kick_fd = cfg->kick_fd,
		.call_fd = cfg->call_fd,
		.desc = desc,
		.avail = avail,
		.used = used,
		.scratch = scratch,
	};
	return 0;
}

void virtqueue_teardown(struct virtqueue *vq)
{
	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	free(vq->scratch);
	virtqueue_init(vq);
}

/* Copies one descriptor out of guest memory so the guest cannot change it under us. */
static struct vring_desc desc_read(const uint8_t *table, uint32_t i)
{
	struct vring_desc d;

	memcpy(&d, table + 16ull * i, sizeof(d));
	return (struct vring_desc){
		.addr = le64toh(d.addr),
		.len = le32toh(d.len),
		.flags = le16toh(d.flags),
		.next = le16toh(d.next),
	};
}

static int chain_add_buf(struct chain_walk *w, const struct vring_desc *d)
{
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	uint8_t *host = NULL;

	/* Every descriptor counts, so a cycle ends here at the latest. */
	if (w->n_bufs >= w->vq->size)
		return -ELOOP;
	/* Readable after writable is forbidden (2.7.4.2). */
	if (!writable && w->seen_writable)
		return -EINVAL;
	if (d->len) {
		host = guest_memory_translate(w->mem, d->addr, d->len);
		if (!host)
			return -EFAULT;
	}
	w->seen_writable |= writable;
	w->vq->scratch[w->n_bufs++] = (struct vq_buf){ .host = host, .len = d->len, .writable = writable };
	return 0;
}

static int chain_walk_indirect(struct chain_walk *w, const struct vring_desc *ind)
{
	const uint8_t *table;
	uint32_t n, i = 0;

	if (!w->vq->indirect || (ind->flags & VIRTQ_DESC_F_NEXT))
		return -EINVAL;
	if (ind->len == 0 || ind->len % 16)
		return -EINVAL;
	n = ind->len / 16;
	table = guest_memory_translate(w->mem, ind->addr, ind->len);
	if (!table)
		return -EFAULT;
	for (;;) {
		struct vring_desc d = desc_read(table, i);
		int r;

		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return -EINVAL;
		r = chain_add_buf(w, &d);
		if (r < 0)
			return r;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= n)
			return -EINVAL;
		i = d.next;
	}
}

static int chain_walk(struct chain_walk *w, uint16_t head)
{
	uint32_t i = head;

	for (;;) {
		struct vring_desc d = desc_read(w->vq->desc, i);
		int r;

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* An indirect descriptor ends the chain in the main table. */
			if (w->n_bufs >= w->vq->size)
				return -ELOOP;
			return chain_walk_indirect(w, &d);
		}
		r = chain_add_buf(w, &d);
		if (r < 0)
			return r;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= w->vq->size)
			return -EINVAL;
		i = d.next;
	}
}

static uint16_t load_le16_acquire(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE));
}

static int queue_fail(struct virtqueue *vq, int err, const char *why)
{
	vq->broken = true;
	/* The guest writes these chains, and may break one after every reset. */
	log_ratelimited(LOG_LVL_ERROR, "queue %u: %s (%s)", vq->index, why, strerror(-err));
	return err;
}

int virtqueue_pop(struct virtqueue *vq, const struct guest_memory *mem, struct vq_chain *ret_chain)
{
	struct chain_walk w = { .vq = vq, .mem = mem };
	uint16_t avail_idx, head;
	int r;

	if (!vq->ready || vq->broken)
		return -EIO;
	avail_idx = load_le16_acquire(vq->avail + 2);
	if (avail_idx == vq->last_avail_idx)
		return -EAGAIN;
	if ((uint16_t)(avail_idx - vq->last_avail_idx) > vq->size)
		return queue_fail(vq, -EINVAL, "avail index ran ahead of the queue");
	head = le16toh(*(const uint16_t *)(vq->avail + 4 + 2u * (vq->last_avail_idx % vq->size)));
	if (head >= vq->size)
		return queue_fail(vq, -EINVAL, "head index out of range");
	r = chain_walk(&w, head);
	if (r < 0)
		return queue_fail(vq, r, "bad descriptor chain");
	vq->last_avail_idx++;
	*ret_chain = (struct vq_chain){ .head = head, .n_bufs = w.n_bufs, .bufs = vq->scratch };
	return 0;
}

int virtqueue_push(struct virtqueue *vq, const struct vq_chain *chain, uint32_t len)
{
	uint8_t *elem;
	uint32_t id = htole32(chain->head), le_len = htole32(len);

	if (!vq->ready || vq->broken)
		return -EIO;
	elem = vq->used + 4 + 8u * (vq->used_idx % vq->size);
	memcpy(elem, &id, sizeof(id));
	memcpy(elem + 4, &le_len, sizeof(le_len));
	vq->used_idx++;
	/* The element must be visible before the index that publishes it. */
	__atomic_store_n((uint16_t *)(vq->used + 2), htole16(vq->used_idx), __ATOMIC_RELEASE);
	return 0;
}

int virtqueue_notify(struct virtqueue *vq)
{
	uint64_t one = 1;

	if (vq->call_fd < 0)
		return 0;
	/* The used index store must be visible before the guest can see the interrupt. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (write(vq->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

int virtqueue_drain_kick(struct virtqueue *vq)
{
	uint64_t v;

	if (vq->kick_fd < 0)
		return 0;
	if (read(vq->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

void virtqueue_rearm_kick(struct virtqueue *vq)
{
	uint64_t one = 1;

	if (vq->kick_fd >= 0)
		(void)!write(vq->kick_fd, &one, sizeof(one));
}
