/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sys/eventfd.h>

#include "guest_mem.h"
#include "virtqueue.h"

#define QSIZE 8u

static struct test_guest g;
static struct virtqueue vq;

static void setup_queue(bool indirect)
{
	struct virtqueue_config cfg = {
		.index = 0,
		.size = QSIZE,
		.desc_addr = GM_DESC,
		.avail_addr = GM_AVAIL,
		.used_addr = GM_USED,
		.indirect = indirect,
		.kick_fd = -1,
		.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
	};

	guest_open(&g);
	virtqueue_init(&vq);
	cr_assert_eq(virtqueue_setup(&vq, &g.mem, &cfg), 0);
}

static void setup_direct(void)
{
	setup_queue(false);
}

static void setup_indirect(void)
{
	setup_queue(true);
}

static void teardown(void)
{
	virtqueue_teardown(&vq);
}

TestSuite(virtqueue, .init = setup_direct, .fini = teardown);
TestSuite(virtqueue_indirect, .init = setup_indirect, .fini = teardown);

Test(virtqueue, empty_queue_is_eagain)
{
	struct vq_chain c;

	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EAGAIN);
	cr_assert_not(vq.broken);
}

Test(virtqueue, single_writable_buffer)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 3, GM_BUFS, 64, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 3);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), 0);
	cr_assert_eq(c.head, 3);
	cr_assert_eq(c.n_bufs, 1);
	cr_assert_eq(c.bufs[0].host, guest_ptr(&g, GM_BUFS));
	cr_assert_eq(c.bufs[0].len, 64);
	cr_assert(c.bufs[0].writable);
	cr_assert_eq(vq.last_avail_idx, 1);
}

Test(virtqueue, chain_readable_then_writable)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 0, GM_BUFS, 16, VIRTQ_DESC_F_NEXT, 5);
	guest_desc(&g, GM_DESC, 5, GM_BUFS + 16, 32, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	guest_desc(&g, GM_DESC, 2, GM_BUFS + 48, 8, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), 0);
	cr_assert_eq(c.n_bufs, 3);
	cr_assert_not(c.bufs[0].writable);
	cr_assert(c.bufs[1].writable && c.bufs[2].writable);
	cr_assert_eq(c.bufs[2].host, guest_ptr(&g, GM_BUFS + 48));
}

Test(virtqueue, readable_after_writable_is_refused)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 0, GM_BUFS, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	guest_desc(&g, GM_DESC, 1, GM_BUFS + 16, 16, 0, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EINVAL);
}

Test(virtqueue, address_out_of_range)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 0, GM_BASE + GM_SIZE, 16, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EFAULT);
	cr_assert(vq.broken);
	/* A broken queue refuses everything after, even good chains. */
	guest_desc(&g, GM_DESC, 1, GM_BUFS, 16, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 1);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EIO);
}

Test(virtqueue, length_runs_past_region_end)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 0, GM_BASE + GM_SIZE - 8, 16, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EFAULT);
}

Test(virtqueue, address_plus_length_wraps)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 0, UINT64_MAX - 7, 0x100, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EFAULT);
}

Test(virtqueue, loop_is_detected)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 0, GM_BUFS, 16, VIRTQ_DESC_F_NEXT, 1);
	guest_desc(&g, GM_DESC, 1, GM_BUFS, 16, VIRTQ_DESC_F_NEXT, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -ELOOP);
}

Test(virtqueue, self_loop_is_detected)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 4, GM_BUFS, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 4);
	guest_avail(&g, QSIZE, 4);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -ELOOP);
}

Test(virtqueue, full_length_chain_is_accepted)
{
	struct vq_chain c;

	for (uint16_t i = 0; i < QSIZE; i++)
		guest_desc(&g, GM_DESC, i, GM_BUFS + 16u * i, 16,
			   VIRTQ_DESC_F_WRITE | (i + 1u < QSIZE ? VIRTQ_DESC_F_NEXT : 0), i + 1);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), 0);
	cr_assert_eq(c.n_bufs, QSIZE);
}

Test(virtqueue, next_index_out_of_range)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 0, GM_BUFS, 16, VIRTQ_DESC_F_NEXT, QSIZE);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EINVAL);
}

Test(virtqueue, head_out_of_range)
{
	struct vq_chain c;

	guest_avail(&g, QSIZE, 0xffff);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EINVAL);
}

Test(virtqueue, avail_index_running_ahead)
{
	uint16_t *ring = (uint16_t *)guest_ptr(&g, GM_AVAIL);
	struct vq_chain c;

	ring[1] = htole16(QSIZE + 1);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EINVAL);
}

Test(virtqueue, indirect_refused_when_not_negotiated)
{
	struct vq_chain c;

	guest_desc(&g, GM_BUFS, 0, GM_BUFS + 0x1000, 16, VIRTQ_DESC_F_WRITE, 0);
	guest_desc(&g, GM_DESC, 0, GM_BUFS, 16, VIRTQ_DESC_F_INDIRECT, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EINVAL);
}

Test(virtqueue, push_fills_used_ring_and_notifies)
{
	struct vq_chain c;
	uint32_t id, len;
	uint64_t v = 0;

	guest_desc(&g, GM_DESC, 6, GM_BUFS, 64, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 6);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), 0);
	cr_assert_eq(virtqueue_push(&vq, &c, 40), 0);
	cr_assert_eq(guest_used_idx(&g), 1);
	guest_used_elem(&g, 0, &id, &len);
	cr_assert_eq(id, 6);
	cr_assert_eq(len, 40);
	cr_assert_eq(virtqueue_notify(&vq), 0);
	cr_assert_eq(read(vq.call_fd, &v, sizeof(v)), sizeof(v));
	cr_assert_eq(v, 1);
}

Test(virtqueue, indices_wrap_around)
{
	struct vq_chain c;

	/* Start near the u16 wrap so the ring positions are computed modulo. */
	vq.last_avail_idx = vq.used_idx = 0xfffe;
	g.avail_idx = 0xfffe;
	for (int i = 0; i < 4; i++) {
		guest_desc(&g, GM_DESC, (uint16_t)i, GM_BUFS, 8, VIRTQ_DESC_F_WRITE, 0);
		guest_avail(&g, QSIZE, (uint16_t)i);
		cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), 0);
		cr_assert_eq(c.head, i);
		cr_assert_eq(virtqueue_push(&vq, &c, 8), 0);
	}
	cr_assert_eq(guest_used_idx(&g), 2);
}

Test(virtqueue_indirect, indirect_table)
{
	uint64_t table = GM_BUFS + 0x1000;
	struct vq_chain c;

	guest_desc(&g, table, 0, GM_BUFS, 16, VIRTQ_DESC_F_NEXT, 2);
	guest_desc(&g, table, 2, GM_BUFS + 16, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	guest_desc(&g, table, 1, GM_BUFS + 32, 16, VIRTQ_DESC_F_WRITE, 0);
	guest_desc(&g, GM_DESC, 0, table, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), 0);
	cr_assert_eq(c.n_bufs, 3);
	cr_assert_eq(c.bufs[2].host, guest_ptr(&g, GM_BUFS + 32));
}

Test(virtqueue_indirect, indirect_inside_indirect)
{
	uint64_t table = GM_BUFS + 0x1000, inner = GM_BUFS + 0x2000;
	struct vq_chain c;

	guest_desc(&g, inner, 0, GM_BUFS, 16, VIRTQ_DESC_F_WRITE, 0);
	guest_desc(&g, table, 0, inner, 16, VIRTQ_DESC_F_INDIRECT, 0);
	guest_desc(&g, GM_DESC, 0, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EINVAL);
}

Test(virtqueue_indirect, indirect_chain_longer_than_queue)
{
	uint64_t table = GM_BUFS + 0x1000;
	uint16_t n = 2 * QSIZE;
	struct vq_chain c;

	for (uint16_t i = 0; i < n; i++)
		guest_desc(&g, table, i, GM_BUFS, 16,
			   VIRTQ_DESC_F_WRITE | (i + 1u < n ? VIRTQ_DESC_F_NEXT : 0), i + 1);
	guest_desc(&g, GM_DESC, 0, table, 16u * n, VIRTQ_DESC_F_INDIRECT, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -ELOOP);
}

Test(virtqueue_indirect, indirect_loop)
{
	uint64_t table = GM_BUFS + 0x1000;
	struct vq_chain c;

	guest_desc(&g, table, 0, GM_BUFS, 16, VIRTQ_DESC_F_NEXT, 1);
	guest_desc(&g, table, 1, GM_BUFS, 16, VIRTQ_DESC_F_NEXT, 0);
	guest_desc(&g, GM_DESC, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -ELOOP);
}

Test(virtqueue_indirect, indirect_bad_table_length)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 0, GM_BUFS, 24, VIRTQ_DESC_F_INDIRECT, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EINVAL);
}

Test(virtqueue_indirect, indirect_table_outside_memory)
{
	struct vq_chain c;

	guest_desc(&g, GM_DESC, 0, GM_BASE + GM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EFAULT);
}

Test(virtqueue_indirect, indirect_next_out_of_table)
{
	uint64_t table = GM_BUFS + 0x1000;
	struct vq_chain c;

	guest_desc(&g, table, 0, GM_BUFS, 16, VIRTQ_DESC_F_NEXT, 2);
	guest_desc(&g, GM_DESC, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(virtqueue_pop(&vq, &g.mem, &c), -EINVAL);
}

Test(virtqueue_setup, rejects_bad_layouts)
{
	struct test_guest tg;
	struct virtqueue q;
	struct virtqueue_config cfg = {
		.size = QSIZE, .desc_addr = GM_DESC, .avail_addr = GM_AVAIL, .used_addr = GM_USED,
		.kick_fd = -1, .call_fd = -1,
	};

	guest_open(&tg);
	virtqueue_init(&q);
	cfg.size = 6;
	cr_assert_eq(virtqueue_setup(&q, &tg.mem, &cfg), -EINVAL);
	cfg.size = VQ_MAX_SIZE * 2;
	cr_assert_eq(virtqueue_setup(&q, &tg.mem, &cfg), -EINVAL);
	cfg.size = QSIZE;
	cfg.desc_addr = GM_DESC + 8;
	cr_assert_eq(virtqueue_setup(&q, &tg.mem, &cfg), -EINVAL);
	cfg.desc_addr = GM_BASE + GM_SIZE - 16;
	cr_assert_eq(virtqueue_setup(&q, &tg.mem, &cfg), -EFAULT);
	cfg.desc_addr = GM_DESC;
	cfg.used_addr = GM_BASE - 0x1000;
	cr_assert_eq(virtqueue_setup(&q, &tg.mem, &cfg), -EFAULT);
	cr_assert_not(q.ready);
	cfg.used_addr = GM_USED;
	cr_assert_eq(virtqueue_setup(&q, &tg.mem, &cfg), 0);
	cr_assert(q.ready);
	virtqueue_teardown(&q);
}

Test(guest_memory, translate_bounds)
{
	uint8_t backing[64];
	struct guest_memory m = {
		.regions = { { .gpa = 0x1000, .size = sizeof(backing), .host = backing } },
		.n_regions = 1,
	};

	cr_assert_eq(guest_memory_translate(&m, 0x1000, 64), backing);
	cr_assert_eq(guest_memory_translate(&m, 0x1010, 48), backing + 16);
	cr_assert_null(guest_memory_translate(&m, 0x1010, 49));
	cr_assert_null(guest_memory_translate(&m, 0xfff, 2));
	cr_assert_null(guest_memory_translate(&m, 0x1040, 1));
	cr_assert_null(guest_memory_translate(&m, 0x1000, 0));
	cr_assert_null(guest_memory_translate(&m, 0x1001, UINT64_MAX));
}
