/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-console in-process: fd 4 and fd 5 are pipes the test holds the other ends of. */
#include <errno.h>
#include <fcntl.h>

#include "console.h"
#include "harness.h"

#define V1 (1ull << VIRTIO_F_VERSION_1)
#define RXQ CONSOLE_RX_QUEUE
#define TXQ CONSOLE_TX_QUEUE

static int out_rd, in_wr;	/* what the guest printed; what the host types */

static void setup(void)
{
	int out[2], in[2];

	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	out_rd = out[0];
	in_wr = in[1];
	h_start(&console_ops, "con0", out[1], in[0], NULL);
	cr_assert_eq(h_activate(V1), 0);
}

static void teardown(void)
{
	h_stop();
	close(out_rd);
	if (in_wr >= 0)
		close(in_wr);
}

TestSuite(console, .init = setup, .fini = teardown, .timeout = 30);

static void guest_print(uint16_t head, uint64_t gpa, const void *text, uint32_t len)
{
	memcpy(gp(gpa), text, len);
	g_desc(TXQ, head, gpa, len, 0, 0);
	g_avail(TXQ, head);
}

Test(console, identifies_as_a_console_without_size)
{
	cr_assert_eq(h.info->virtio_device_id, VIRTIO_ID_CONSOLE);
	cr_assert_eq(h.info->num_queues, 2);
	cr_assert_eq(h.info->device_features & 0x7, 0, "no SIZE, MULTIPORT or EMERG_WRITE");
	cr_assert_eq(h.info->config_space.len, CONSOLE_CONFIG_LEN);
}

Test(console, guest_output_reaches_fd4_in_order)
{
	char got[32] = { 0 };

	memcpy(gp(GM_BUFS), "hello, ", 7);
	memcpy(gp(GM_BUFS + 0x100), "world", 5);
	g_desc(TXQ, 0, GM_BUFS, 7, VIRTQ_DESC_F_NEXT, 1);
	g_desc(TXQ, 1, GM_BUFS + 0x100, 5, 0, 0);
	g_avail(TXQ, 0);
	guest_print(2, GM_BUFS + 0x200, "!\n", 2);
	h_kick(TXQ);
	cr_assert(h_wait_for(g_used_idx(TXQ) == 2));
	cr_assert_eq(read(out_rd, got, sizeof(got)), 14);
	cr_assert_str_eq(got, "hello, world!\n");
}

Test(console, host_input_reaches_posted_buffers)
{
	g_desc(RXQ, 0, GM_BUFS, 2, VIRTQ_DESC_F_WRITE, 0);
	g_desc(RXQ, 1, GM_BUFS + 0x100, 64, VIRTQ_DESC_F_WRITE, 0);
	g_avail(RXQ, 0);
	g_avail(RXQ, 1);
	h_kick(RXQ);
	cr_assert_eq(write(in_wr, "ls -l\n", 6), 6);
	cr_assert(h_wait_for(g_used_idx(RXQ) == 2));
	cr_assert_eq(g_used_len(RXQ, 0), 2);
	cr_assert_eq(g_used_len(RXQ, 1), 4);
	cr_assert_arr_eq(gp(GM_BUFS), "ls", 2);
	cr_assert_arr_eq(gp(GM_BUFS + 0x100), " -l\n", 4);
}

Test(console, input_waits_for_buffers_then_arrives)
{
	cr_assert_eq(write(in_wr, "xyz", 3), 3);
	cr_assert(h_wait_for(console_stats(&h.dev).in_pending == 3));
	/* More typing is left in the pipe: the device stopped polling it. */
	cr_assert_eq(write(in_wr, "w", 1), 1);
	usleep(50 * 1000);
	cr_assert_eq(console_stats(&h.dev).in_pending, 3);
	g_desc(RXQ, 0, GM_BUFS, 64, VIRTQ_DESC_F_WRITE, 0);
	g_avail(RXQ, 0);
	h_kick(RXQ);
	cr_assert(h_called(RXQ, 2000));
	cr_assert_eq(g_used_len(RXQ, 0), 3);
	cr_assert_arr_eq(gp(GM_BUFS), "xyz", 3);
	g_avail(RXQ, 0);
	h_kick(RXQ);
	cr_assert(h_wait_for(g_used_idx(RXQ) == 2));
	cr_assert_eq(g_used_len(RXQ, 1), 1);
	cr_assert_eq(*gp(GM_BUFS), 'w');
}

/* Prints total bytes of a known pattern through chains of 32 KiB. */
static void print_pattern(size_t total)
{
	uint8_t *p = gp(GM_BUFS);
	uint16_t head = 0;

	for (size_t i = 0; i < total; i++)
		p[i] = (uint8_t)(i % 251);
	for (size_t off = 0; off < total; off += 32768, head++) {
		size_t len = total - off < 32768 ? total - off : 32768;

		g_desc(TXQ, head, GM_BUFS + off, (uint32_t)len, 0, 0);
		g_avail(TXQ, head);
	}
	h_kick(TXQ);
	cr_assert(h_wait_for(g_used_idx(TXQ) == head));
}

static size_t read_all(uint8_t *buf, size_t max)
{
	size_t got = 0;
	struct pollfd p = { .fd = out_rd, .events = POLLIN };

	while (got < max && poll(&p, 1, 300) == 1) {
		ssize_t n = read(out_rd, buf + got, max - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

Test(console, pending_output_is_bounded_then_flushed_in_order)
{
	const size_t total = 4 * CONSOLE_PENDING_OUT_MAX;
	struct console_stats st;
	uint8_t *got = malloc(total);
	size_t n;

	/* A slow host end: a small pipe nobody reads, which a pty without a reader resembles. */
	cr_assert_geq(fcntl(h.dev.host_fd, F_SETPIPE_SZ, 4096), 4096);
	cr_assert_eq(fcntl(h.dev.host_fd, F_SETFL, O_NONBLOCK), 0);
	print_pattern(total);
	st = console_stats(&h.dev);
	cr_assert_eq(st.out_pending, CONSOLE_PENDING_OUT_MAX);
	cr_assert_gt(st.out_dropped, 0);
	cr_assert_eq(st.out_bytes + st.out_pending + st.out_dropped, total);
	n = read_all(got, total);
	cr_assert(h_wait_for(console_stats(&h.dev).out_pending == 0));
	n += read_all(got + n, total - n);
	cr_assert_eq(n, total - st.out_dropped, "everything kept is written");
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(got[i], (uint8_t)(i % 251), "byte %zu out of order", i);
	free(got);
}

Test(console, pending_bytes_survive_save_and_restore)
{
	Cloister__Envelope *reply;
	struct console_stats st;
	uint8_t *blob;
	size_t len;

	cr_assert_eq(fcntl(h.dev.host_fd, F_SETPIPE_SZ, 4096), 4096);
	cr_assert_eq(fcntl(h.dev.host_fd, F_SETFL, O_NONBLOCK), 0);
	print_pattern(4096 + 100);
	cr_assert_eq(write(in_wr, "abc", 3), 3);
	cr_assert(h_wait_for(console_stats(&h.dev).in_pending == 3));
	cr_assert_eq(h_pause(), 0);
	reply = h_save();
	cr_assert_eq(reply->dev_save_reply->error, 0);
	len = reply->dev_save_reply->state->blob.len;
	blob = malloc(len);
	memcpy(blob, reply->dev_save_reply->state->blob.data, len);
	frame_free(reply);
	cr_assert_eq(len, 9 + 100 + 3);
	cr_assert_arr_eq(blob + 9 + 100, "abc", 3);
	cr_assert_eq(blob[9], (uint8_t)(4096 % 251));
	/* Lengths that disagree with the blob are refused. */
	blob[5] = 4;
	cr_assert_eq(h_restore("console", "con0", blob, len), -EINVAL);
	blob[5] = 3;
	cr_assert_eq(h_restore("console", "con0", blob, len - 1), -EINVAL);
	cr_assert_eq(h_restore("console", "con0", blob, len), 0);
	st = console_stats(&h.dev);
	cr_assert_eq(st.out_pending, 100);
	cr_assert_eq(st.in_pending, 3);
	cr_assert_eq(h_resume(), 0);
	g_desc(RXQ, 0, GM_BUFS, 64, VIRTQ_DESC_F_WRITE, 0);
	g_avail(RXQ, 0);
	h_kick(RXQ);
	cr_assert(h_called(RXQ, 2000));
	cr_assert_arr_eq(gp(GM_BUFS), "abc", 3);
	free(blob);
}

Test(console, closed_input_is_not_polled_again)
{
	close(in_wr);
	in_wr = -1;
	cr_assert(h_wait_for(h.dev.input_closed));
	/* Output still works. */
	guest_print(0, GM_BUFS, "ok", 2);
	h_kick(TXQ);
	cr_assert(h_called(TXQ, 2000));
}

Test(console_noinput, works_without_fd5)
{
	int out[2];
	char got[4] = { 0 };

	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	h_start(&console_ops, "con1", out[1], -1, NULL);
	cr_assert_eq(h_activate(V1), 0);
	guest_print(0, GM_BUFS, "hi", 2);
	h_kick(TXQ);
	cr_assert(h_called(TXQ, 2000));
	cr_assert_eq(read(out[0], got, sizeof(got)), 2);
	cr_assert_str_eq(got, "hi");
	h_stop();
	close(out[0]);
}
