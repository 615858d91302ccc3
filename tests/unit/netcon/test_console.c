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

/* Lays total bytes of a known pattern out as chains of the given sizes, and kicks. */
static uint16_t print_chains(const size_t *sizes, size_t n_chains)
{
	uint8_t *p = gp(GM_BUFS);
	size_t off = 0;
	uint16_t head;

	for (head = 0; head < n_chains; head++) {
		for (size_t i = 0; i < sizes[head]; i++)
			p[off + i] = (uint8_t)((off + i) % 251);
		g_desc(TXQ, head, GM_BUFS + off, (uint32_t)sizes[head], 0, 0);
		g_avail(TXQ, head);
		off += sizes[head];
	}
	h_kick(TXQ);
	return head;
}

/* Makes fd 4 a 4 KiB pipe that is already full; returns how many filler bytes it holds. */
static size_t host_end_full(void)
{
	static const uint8_t filler[4096] = { [0 ... 4095] = 'F' };
	size_t n = 0;
	ssize_t w;

	cr_assert_geq(fcntl(h.dev.host_fd, F_SETPIPE_SZ, 4096), 4096);
	cr_assert_eq(fcntl(h.dev.host_fd, F_SETFL, O_NONBLOCK), 0);
	while ((w = write(h.dev.host_fd, filler, sizeof(filler))) > 0)
		n += (size_t)w;
	cr_assert_eq(errno, EAGAIN);
	return n;
}

/* Reads the pipe until len bytes came or it stays empty for a while. */
static size_t read_all(uint8_t *buf, size_t max)
{
	size_t got = 0;
	struct pollfd p = { .fd = out_rd, .events = POLLIN };

	while (got < max && poll(&p, 1, 1000) == 1) {
		ssize_t n = read(out_rd, buf + got, max - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* Reads the filler, then checks that exactly total pattern bytes follow, in order. */
static void expect_output(size_t filler, size_t total)
{
	uint8_t *got = malloc(filler + total + 1);
	size_t n = read_all(got, filler + total + 1);

	cr_assert_eq(n, filler + total, "every byte arrives once: got %zu of %zu", n,
		     filler + total);
	for (size_t i = 0; i < filler; i++)
		cr_assert_eq(got[i], 'F');
	for (size_t i = 0; i < total; i++)
		cr_assert_eq(got[filler + i], (uint8_t)(i % 251), "byte %zu out of order", i);
	free(got);
}

Test(console, full_host_end_holds_the_queue_and_loses_nothing)
{
	const size_t sizes[] = { 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768 };
	size_t filler = host_end_full();
	struct console_stats st;
	uint16_t chains = print_chains(sizes, 8);

	/* Two chains fill the 64 KiB buffer; the third is held, the rest stay queued. */
	cr_assert(h_wait_for(console_stats(&h.dev).tx_held));
	st = console_stats(&h.dev);
	cr_assert_eq(st.out_pending, CONSOLE_PENDING_OUT_MAX);
	cr_assert_eq(st.out_dropped, 0);
	cr_assert_eq(g_used_idx(TXQ), 2, "buffers the device has no room for stay the guest's");
	usleep(50 * 1000);
	cr_assert_eq(g_used_idx(TXQ), 2);
	expect_output(filler, 8 * 32768);
	cr_assert(h_wait_for(g_used_idx(TXQ) == chains), "every chain comes back once written");
	st = console_stats(&h.dev);
	cr_assert_eq(st.out_dropped, 0);
	cr_assert_eq(st.out_pending, 0);
}

Test(console, held_output_survives_pause_save_and_restore)
{
	/* 65468 bytes fit the buffer with the first two; 68 of the third are taken, 100 wait. */
	const size_t sizes[] = { 32768, 32700, 168 };
	const size_t total = 32768 + 32700 + 168;
	size_t filler = host_end_full();
	Cloister__Envelope *reply;
	struct console_stats st;
	uint64_t skip;
	uint8_t *blob;
	size_t len;

	print_chains(sizes, 3);
	cr_assert_eq(write(in_wr, "abc", 3), 3);
	cr_assert(h_wait_for(console_stats(&h.dev).tx_held));
	cr_assert(h_wait_for(console_stats(&h.dev).in_pending == 3));
	cr_assert_eq(h_pause(), 0);
	cr_assert_not(console_stats(&h.dev).tx_held, "pause hands the chain back");
	reply = h_save();
	cr_assert_eq(reply->dev_save_reply->error, 0);
	cr_assert_eq(reply->dev_save_reply->state->queues[1]->last_avail_idx, 2,
		     "the held chain is still the guest's in the saved queue");
	len = reply->dev_save_reply->state->blob.len;
	blob = malloc(len);
	memcpy(blob, reply->dev_save_reply->state->blob.data, len);
	frame_free(reply);
	cr_assert_eq(blob[0], 2);
	cr_assert_eq(len, 17 + CONSOLE_PENDING_OUT_MAX + 3);
	memcpy(&skip, blob + 9, 8);
	cr_assert_eq(le64toh(skip), 68);
	cr_assert_arr_eq(blob + 17 + CONSOLE_PENDING_OUT_MAX, "abc", 3);
	cr_assert_eq(blob[17], 0, "the buffer starts with the first byte printed");
	/* Lengths that disagree with the blob are refused. */
	blob[5] = 4;
	cr_assert_eq(h_restore("console", "con0", blob, len), -EINVAL);
	blob[5] = 3;
	cr_assert_eq(h_restore("console", "con0", blob, len - 1), -EINVAL);
	/* The restored queues start where the snapshot's were: chains 0 and 1 done. */
	cr_assert_eq(h_restore_at("console", "con0", blob, len, (const uint16_t[NQ]){ 0, 2 }), 0);
	st = console_stats(&h.dev);
	cr_assert_eq(st.out_pending, CONSOLE_PENDING_OUT_MAX);
	cr_assert_eq(st.in_pending, 3);
	cr_assert_eq(h_resume(), 0);
	expect_output(filler, total);
	cr_assert(h_wait_for(g_used_idx(TXQ) == 3));
	g_desc(RXQ, 0, GM_BUFS, 64, VIRTQ_DESC_F_WRITE, 0);
	g_avail(RXQ, 0);
	h_kick(RXQ);
	cr_assert(h_called(RXQ, 2000));
	cr_assert_arr_eq(gp(GM_BUFS), "abc", 3);
	free(blob);
}

Test(console, version_1_blob_is_still_restored)
{
	uint8_t blob[9 + 3] = { 1, 3, 0, 0, 0, 0, 0, 0, 0, 'x', 'y', 'z' };
	char got[4] = { 0 };

	cr_assert_eq(h_pause(), 0);
	cr_assert_eq(h_restore("console", "con0", blob, sizeof(blob)), 0);
	cr_assert_eq(h_resume(), 0);
	cr_assert_eq(read_all((uint8_t *)got, 3), 3);
	cr_assert_str_eq(got, "xyz");
}

Test(console, counts_bytes_each_way)
{
	char got[8] = { 0 };

	guest_print(0, GM_BUFS, "hello", 5);
	h_kick(TXQ);
	cr_assert(h_called(TXQ, 2000));
	cr_assert_eq(read_all((uint8_t *)got, 5), 5);
	cr_assert_eq(write(in_wr, "ab", 2), 2);
	g_desc(RXQ, 1, GM_BUFS + 0x100, 16, VIRTQ_DESC_F_WRITE, 0);
	g_avail(RXQ, 1);
	h_kick(RXQ);
	cr_assert(h_wait_for(g_used_idx(RXQ) == 1));
	cr_assert_eq(h_counter("tx_bytes"), 5);
	cr_assert_eq(h_counter("rx_bytes"), 2);
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
