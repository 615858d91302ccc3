/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net in-process: a SOCK_SEQPACKET socketpair stands in for the tap
 * (one message per frame, vnet header first, like a tap with IFF_VNET_HDR).
 */
#include <errno.h>
#include <fcntl.h>

#include "harness.h"
#include "net.h"

#define V1 (1ull << VIRTIO_F_VERSION_1)
#define RXQ NET_RX_QUEUE
#define TXQ NET_TX_QUEUE

static int tap;	/* the host's end of the fake tap */
static const char *const mac_opt[] = { "52:54:00:12:34:ab", NULL };

static void setup(void)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	tap = sv[0];
	h_start(&net_ops, "net0", sv[1], -1, mac_opt);
	cr_assert_eq(h_activate(V1 | (1ull << VIRTIO_NET_F_MAC)), 0);
}

static void teardown(void)
{
	h_stop();
	close(tap);
}

TestSuite(net, .init = setup, .fini = teardown, .timeout = 20);

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* A frame from the host: a vnet header (num_buffers left 0, as a tap leaves it) and len bytes. */
static void host_send(size_t len, uint8_t seed)
{
	uint8_t msg[NET_HDR_LEN + 2048] = { 0 };

	cr_assert_leq(len, 2048);
	fill_pattern(msg + NET_HDR_LEN, len, seed);
	cr_assert_eq(send(tap, msg, NET_HDR_LEN + len, 0), (ssize_t)(NET_HDR_LEN + len));
}

static bool device_end_readable(void)
{
	struct pollfd p = { .fd = h.dev.host_fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

Test(net, config_carries_mac_and_link_up)
{
	const uint8_t want[NET_CONFIG_LEN] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0xab, 1, 0 };

	cr_assert_eq(h.info->virtio_device_id, VIRTIO_ID_NET);
	cr_assert_eq(h.info->num_queues, 2);
	cr_assert_eq(h.info->max_queue_size, NET_QUEUE_SIZE);
	cr_assert(h.info->device_features & (1ull << VIRTIO_NET_F_MAC));
	cr_assert(h.info->device_features & (1ull << VIRTIO_NET_F_STATUS));
	cr_assert_eq(h.info->device_features & 0x7, 0, "no checksum offloads are offered");
	cr_assert_eq(h.info->config_space.len, NET_CONFIG_LEN);
	cr_assert_arr_eq(h.info->config_space.data, want, NET_CONFIG_LEN);
}

Test(net, mac_parsing_refuses_junk)
{
	uint8_t mac[6] = { 0 };

	cr_assert_eq(net_parse_mac("02:AB:cd:00:00:01", mac), 0);
	cr_assert_eq(mac[1], 0xab);
	cr_assert_eq(net_parse_mac("01:00:5e:00:00:01", mac), -EINVAL, "multicast");
	cr_assert_eq(net_parse_mac("00:00:00:00:00:00", mac), -EINVAL);
	cr_assert_eq(net_parse_mac("02:00:00:00:00", mac), -EINVAL);
	cr_assert_eq(net_parse_mac("02:00:00:00:00:001", mac), -EINVAL);
	cr_assert_eq(net_parse_mac("02-00-00-00-00-01", mac), -EINVAL);
	cr_assert_eq(net_parse_mac("0g:00:00:00:00:01", mac), -EINVAL);
	cr_assert_eq(mac[1], 0xab, "a refused MAC leaves the output alone");
}

Test(net, tx_frame_reaches_the_tap_with_a_clean_header)
{
	uint8_t got[256], want[100];

	/* A guest header with junk flags and GSO type, then the frame split in two buffers. */
	memset(gp(GM_BUFS), 0xff, NET_HDR_LEN);
	fill_pattern(gp(GM_BUFS + 0x100), 40, 3);
	fill_pattern(gp(GM_BUFS + 0x200), 60, (uint8_t)(3 + 40 * 7));
	fill_pattern(want, 100, 3);
	g_desc(TXQ, 0, GM_BUFS, NET_HDR_LEN, VIRTQ_DESC_F_NEXT, 1);
	g_desc(TXQ, 1, GM_BUFS + 0x100, 40, VIRTQ_DESC_F_NEXT, 2);
	g_desc(TXQ, 2, GM_BUFS + 0x200, 60, 0, 0);
	g_avail(TXQ, 0);
	h_kick(TXQ);
	cr_assert(h_called(TXQ, 2000));
	cr_assert_eq(g_used_idx(TXQ), 1);
	cr_assert_eq(g_used_len(TXQ, 0), 0);
	cr_assert_eq(recv(tap, got, sizeof(got), MSG_DONTWAIT), NET_HDR_LEN + 100);
	for (size_t i = 0; i < NET_HDR_LEN; i++)
		cr_assert_eq(got[i], 0, "header byte %zu must be zero without offloads", i);
	cr_assert_arr_eq(got + NET_HDR_LEN, want, 100);
	cr_assert_eq(net_stats(&h.dev)->tx_frames, 1);
}

Test(net, counters_count_frames_and_their_bytes_each_way)
{
	uint8_t got[256];

	memset(gp(GM_BUFS), 0, NET_HDR_LEN);
	fill_pattern(gp(GM_BUFS + NET_HDR_LEN), 100, 1);
	g_desc(TXQ, 0, GM_BUFS, NET_HDR_LEN + 100, 0, 0);
	g_avail(TXQ, 0);
	h_kick(TXQ);
	cr_assert(h_called(TXQ, 2000));
	cr_assert_eq(recv(tap, got, sizeof(got), MSG_DONTWAIT), NET_HDR_LEN + 100);
	g_desc(RXQ, 0, GM_BUFS + 0x1000, 2048, VIRTQ_DESC_F_WRITE, 0);
	g_avail(RXQ, 0);
	h_kick(RXQ);
	host_send(300, 2);
	cr_assert(h_called(RXQ, 2000));
	cr_assert_eq(h_counter("tx_frames"), 1);
	cr_assert_eq(h_counter("tx_bytes"), 100, "the virtio-net header is not counted");
	cr_assert_eq(h_counter("rx_frames"), 1);
	cr_assert_eq(h_counter("rx_bytes"), 300);
}

Test(net, hostile_tx_chains_are_dropped_not_fatal)
{
	uint8_t got[64];

	/* Shorter than the header; larger than any frame; only writable buffers. */
	g_desc(TXQ, 0, GM_BUFS, 8, 0, 0);
	g_desc(TXQ, 1, GM_BUFS, NET_HDR_LEN + NET_MAX_FRAME + 1, 0, 0);
	g_desc(TXQ, 2, GM_BUFS, 64, VIRTQ_DESC_F_WRITE, 0);
	g_desc(TXQ, 3, GM_BUFS, NET_HDR_LEN + 20, 0, 0);
	for (uint16_t i = 0; i < 4; i++)
		g_avail(TXQ, i);
	h_kick(TXQ);
	cr_assert(h_wait_for(g_used_idx(TXQ) == 4));
	cr_assert_eq(net_stats(&h.dev)->tx_bad, 3);
	cr_assert_eq(h_counter("tx_frames"), 1, "dropped chains are not frames sent");
	cr_assert_eq(recv(tap, got, sizeof(got), MSG_DONTWAIT), NET_HDR_LEN + 20,
		     "only the good frame goes out");
	cr_assert_eq(recv(tap, got, sizeof(got), MSG_DONTWAIT), -1);
}

Test(net, rx_frame_fills_a_posted_chain)
{
	uint8_t want[300];
	uint16_t num_buffers;

	g_desc(RXQ, 0, GM_BUFS, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	g_desc(RXQ, 1, GM_BUFS + 0x1000, 1600, VIRTQ_DESC_F_WRITE, 0);
	memset(gp(GM_BUFS), 0xee, 64);
	g_avail(RXQ, 0);
	h_kick(RXQ);
	host_send(300, 9);
	cr_assert(h_called(RXQ, 2000));
	cr_assert_eq(g_used_idx(RXQ), 1);
	cr_assert_eq(g_used_len(RXQ, 0), NET_HDR_LEN + 300);
	memcpy(&num_buffers, gp(GM_BUFS) + NET_HDR_NUM_BUFFERS_OFF, 2);
	cr_assert_eq(le16toh(num_buffers), 1);
	fill_pattern(want, 300, 9);
	cr_assert_arr_eq(gp(GM_BUFS + NET_HDR_LEN), want, 64 - NET_HDR_LEN);
	cr_assert_arr_eq(gp(GM_BUFS + 0x1000), want + 64 - NET_HDR_LEN, 300 - (64 - NET_HDR_LEN));
}

Test(net, without_rx_buffers_the_tap_is_not_read)
{
	host_send(60, 1);
	usleep(100 * 1000);
	cr_assert(device_end_readable(), "the frame must wait in the tap");
	cr_assert_eq(net_stats(&h.dev)->rx_frames, 0);
	g_desc(RXQ, 5, GM_BUFS, 2048, VIRTQ_DESC_F_WRITE, 0);
	g_avail(RXQ, 5);
	h_kick(RXQ);
	cr_assert(h_called(RXQ, 2000));
	cr_assert_eq(g_used_len(RXQ, 0), NET_HDR_LEN + 60);
	cr_assert_not(device_end_readable());
}

Test(net, rx_chain_too_small_for_a_header_is_returned_empty)
{
	g_desc(RXQ, 0, GM_BUFS, 8, VIRTQ_DESC_F_WRITE, 0);
	g_desc(RXQ, 1, GM_BUFS + 0x1000, 2048, VIRTQ_DESC_F_WRITE, 0);
	g_avail(RXQ, 0);
	g_avail(RXQ, 1);
	h_kick(RXQ);
	host_send(100, 2);
	cr_assert(h_wait_for(g_used_idx(RXQ) == 2));
	cr_assert_eq(g_used_len(RXQ, 0), 0);
	cr_assert_eq(g_used_len(RXQ, 1), NET_HDR_LEN + 100, "the frame goes to the next chain");
	cr_assert_eq(net_stats(&h.dev)->rx_bad_chains, 1);
}

Test(net, pause_stops_receiving_until_resume)
{
	cr_assert_eq(h_pause(), 0);
	g_desc(RXQ, 0, GM_BUFS, 2048, VIRTQ_DESC_F_WRITE, 0);
	g_avail(RXQ, 0);
	h_kick(RXQ);
	host_send(80, 4);
	usleep(100 * 1000);
	cr_assert_eq(g_used_idx(RXQ), 0);
	cr_assert(device_end_readable());
	cr_assert_eq(h_resume(), 0);
	cr_assert(h_called(RXQ, 2000));
	cr_assert_eq(g_used_len(RXQ, 0), NET_HDR_LEN + 80);
}

Test(net, save_keeps_the_mac_and_restore_checks_it)
{
	Cloister__Envelope *reply;
	uint8_t blob[7];

	cr_assert_eq(h_pause(), 0);
	reply = h_save();
	cr_assert_eq(reply->dev_save_reply->error, 0);
	cr_assert_eq(reply->dev_save_reply->state->blob.len, sizeof(blob));
	memcpy(blob, reply->dev_save_reply->state->blob.data, sizeof(blob));
	frame_free(reply);
	cr_assert_eq(blob[0], 1);
	cr_assert_eq(blob[6], 0xab);
	blob[6] ^= 1;
	cr_assert_eq(h_restore("net", "net0", blob, sizeof(blob)), -EINVAL, "another MAC");
	blob[6] ^= 1;
	cr_assert_eq(h_restore("net", "net0", blob, 3), -EINVAL, "truncated blob");
	cr_assert_eq(h_restore("net", "net0", blob, sizeof(blob)), 0);
	cr_assert_eq(h_resume(), 0);
	/* The restored device still moves frames. */
	g_desc(TXQ, 0, GM_BUFS, NET_HDR_LEN + 30, 0, 0);
	g_avail(TXQ, 0);
	h_kick(TXQ);
	cr_assert(h_called(TXQ, 2000));
	cr_assert_eq(net_stats(&h.dev)->tx_frames, 1);
}

Test(net_config, configure_refuses_a_missing_or_bad_mac)
{
	static const char *const bad[] = { "ff:ff:ff:ff:ff:ff", NULL };
	struct device dev;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	device_init(&dev, &net_ops, "net0", -1, sv[0]);
	cr_assert_eq(device_configure(&dev, NULL), -EINVAL);
	cr_assert_eq(device_configure(&dev, bad), -EINVAL);
	cr_assert_eq(device_configure(&dev, mac_opt), 0);
	cr_assert(fcntl(sv[0], F_GETFL) & O_NONBLOCK, "the tap is made non-blocking");
	device_cleanup(&dev);
	close(sv[1]);
}
