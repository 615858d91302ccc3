/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net (device ID 1, virtio 1.2 5.1) over a tap opened by the gateway
 * with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte vnet header, so each
 * guest frame and its virtio_net_hdr_v1 is one writev/readv on the tap. No
 * offloads and no mergeable buffers are offered: every header the guest
 * sends is zero and every receive chain holds a whole packet.
 */
#ifndef CLOISTER_NET_H
#define CLOISTER_NET_H

#include "device.h"
#include "virtio_spec.h"

#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_S_LINK_UP 1u

#define NET_RX_QUEUE 0u
#define NET_TX_QUEUE 1u
#define NET_QUEUE_SIZE 256u

/* struct virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers. */
#define NET_HDR_LEN 12u
#define NET_HDR_NUM_BUFFERS_OFF 10u
/* The largest frame a tap takes: 64 KiB of payload plus an Ethernet header with VLAN tags. */
#define NET_MAX_FRAME 65550u
/* mac[6], status (le16) */
#define NET_CONFIG_LEN 8u

struct net_stats {
	uint64_t tx_frames, tx_dropped, tx_bad;
	uint64_t rx_frames, rx_bad_chains;
};

extern const struct device_ops net_ops;

/* Parses "xx:xx:xx:xx:xx:xx" (hex, either case). Returns 0 or -EINVAL. */
int net_parse_mac(const char *s, uint8_t ret_mac[6]);

/* Counters of a device made with net_ops (for tests and logs). */
const struct net_stats *net_stats(const struct device *dev);

#endif
