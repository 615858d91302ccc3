/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The framework's host-input path with a toy device: fd 5 is a pipe, and
 * host_ready takes one byte per receive buffer, counting its calls so a
 * device that spins on a readable fd would show.
 */
#include <errno.h>
#include <fcntl.h>

#include "harness.h"

#define V1 (1ull << VIRTIO_F_VERSION_1)

static int in_wr, out_rd;
static int calls;	/* host_ready calls */
static int writable_calls;

static int toy_host_ready(struct device *dev)
{
	struct virtqueue *vq = &dev->queues[0];
	struct vq_chain chain;
	ssize_t n;
	int r;

	__atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
	r = virtqueue_pop(vq, &dev->mem, &chain);
	if (r == -EAGAIN)
		return DEVICE_HOST_NEED_BUFFERS;
	if (r < 0)
		return r;
	n = read(dev->input_fd, chain.bufs[0].host, 1);
	if (n <= 0) {
		vq->last_avail_idx--;
		return n == 0 ? DEVICE_HOST_CLOSED : DEVICE_HOST_DRAINED;
	}
	virtqueue_push(vq, &chain, 1);
	virtqueue_notify(vq);
	return DEVICE_HOST_DRAINED;
}

/* Wants output once, then is satisfied. */
static int toy_host_writable(struct device *dev)
{
	__atomic_add_fetch(&writable_calls, 1, __ATOMIC_SEQ_CST);
	device_want_output(dev, false);
	return 0;
}

static int toy_process_queue(struct device *dev, struct virtqueue *vq)
{
	/* A kick on queue 1 asks for a POLLOUT round. */
	if (vq->index == 1)
		device_want_output(dev, true);
	return 0;
}

static int toy_save(struct device *dev, Cloister__DeviceState *state)
{
	state->blob = (ProtobufCBinaryData){ .len = 0, .data = NULL };
	return 0;
}

static const struct device_ops toy_ops = {
	.kind = "toy",
	.virtio_id = 42,
	.num_queues = 2,
	.max_queue_size = 16,
	.needs_host_fd = true,
	.input = DEVICE_INPUT_SECOND_FD,
	.rx_queue = 0,
	.process_queue = toy_process_queue,
	.host_ready = toy_host_ready,
	.host_writable = toy_host_writable,
	.save = toy_save,
};

static void setup(void)
{
	int in[2], out[2];

	cr_assert_eq(pipe2(in, O_CLOEXEC | O_NONBLOCK), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	in_wr = in[1];
	out_rd = out[0];
	calls = writable_calls = 0;
	h_start(&toy_ops, "toy0", out[1], in[0], NULL);
	cr_assert_eq(h_activate(V1), 0);
}

static void teardown(void)
{
	h_stop();
	close(in_wr);
	close(out_rd);
}

TestSuite(framework, .init = setup, .fini = teardown, .timeout = 20);

static int ncalls(void)
{
	return __atomic_load_n(&calls, __ATOMIC_SEQ_CST);
}

Test(framework, second_fd_feeds_host_ready)
{
	cr_assert_eq(device_input_fd(&h.dev), h.dev.input_fd);
	g_desc(0, 0, GM_BUFS, 4, VIRTQ_DESC_F_WRITE, 0);
	g_avail(0, 0);
	cr_assert_eq(write(in_wr, "Q", 1), 1);
	cr_assert(h_called(0, 2000));
	cr_assert_eq(*gp(GM_BUFS), 'Q');
}

Test(framework, no_buffers_means_no_spinning_until_the_rx_kick)
{
	cr_assert_eq(write(in_wr, "ab", 2), 2);
	cr_assert(h_wait_for(ncalls() >= 1));
	usleep(100 * 1000);
	cr_assert_eq(ncalls(), 1, "a readable fd without buffers must not be polled again");
	/* A kick on another queue does not count as new receive buffers. */
	h_kick(1);
	usleep(50 * 1000);
	cr_assert_eq(ncalls(), 1);
	g_desc(0, 0, GM_BUFS, 4, VIRTQ_DESC_F_WRITE, 0);
	g_avail(0, 0);
	h_kick(0);
	cr_assert(h_called(0, 2000));
	cr_assert_eq(*gp(GM_BUFS), 'a');
}

Test(framework, paused_device_leaves_the_input_alone)
{
	cr_assert_eq(h_pause(), 0);
	g_desc(0, 0, GM_BUFS, 4, VIRTQ_DESC_F_WRITE, 0);
	g_avail(0, 0);
	cr_assert_eq(write(in_wr, "z", 1), 1);
	usleep(100 * 1000);
	cr_assert_eq(ncalls(), 0);
	cr_assert_eq(h_resume(), 0);
	cr_assert(h_called(0, 2000));
	cr_assert_eq(*gp(GM_BUFS), 'z');
}

Test(framework, end_of_input_stops_polling)
{
	int seen;

	g_desc(0, 0, GM_BUFS, 4, VIRTQ_DESC_F_WRITE, 0);
	g_avail(0, 0);
	h_kick(0);
	close(in_wr);
	in_wr = -1;
	cr_assert(h_wait_for(h.dev.input_closed));
	seen = ncalls();
	usleep(50 * 1000);
	cr_assert_eq(ncalls(), seen, "a hung-up fd is not polled again");
	cr_assert_eq(g_used_idx(0), 0, "the buffer was given back untouched");
	in_wr = dup(out_rd); /* something for teardown to close */
}

static int nwritable(void)
{
	return __atomic_load_n(&writable_calls, __ATOMIC_SEQ_CST);
}

Test(framework, want_output_polls_fd4_once)
{
	int before;

	/* Activation already ran queue 1 once. */
	cr_assert(h_wait_for(nwritable() == 1));
	before = nwritable();
	h_kick(1);
	cr_assert(h_wait_for(nwritable() == before + 1));
	usleep(50 * 1000);
	cr_assert_eq(nwritable(), before + 1, "output is polled only while wanted");
}
