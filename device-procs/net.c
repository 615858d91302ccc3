/* SPDX-License-Identifier: Apache-2.0 */
#include "net.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "ratelimit.h"

#define NET_BLOB_VERSION 1u
#define NET_BLOB_LEN 7u
/* A chain has at most one buffer per queue entry, plus our own header. */
#define NET_MAX_IOV (NET_QUEUE_SIZE + 1u)

struct net {
	uint8_t mac[6];
	uint8_t config[NET_CONFIG_LEN];
	struct net_stats stats;
	bool tx_error_logged;
};

/* What one receive attempt came to. */
enum rx_result {
	RX_DELIVERED,
	RX_EMPTY,	/* the tap has nothing more for now */
	RX_NO_BUFFERS,
	RX_CLOSED,
};

static const uint8_t zero_hdr[NET_HDR_LEN];

/* vm.counters: Ethernet frames and their bytes (virtio-net header not counted), guest's view. */
enum net_counter { NET_RX_BYTES, NET_RX_FRAMES, NET_TX_BYTES, NET_TX_FRAMES };
static const char *const net_counter_names[] = {
	[NET_RX_BYTES] = "rx_bytes",
	[NET_RX_FRAMES] = "rx_frames",
	[NET_TX_BYTES] = "tx_bytes",
	[NET_TX_FRAMES] = "tx_frames",
	NULL,
};

static struct net *net_of(const struct device *dev)
{
	return dev->priv;
}

const struct net_stats *net_stats(const struct device *dev)
{
	return &net_of(dev)->stats;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int net_parse_mac(const char *s, uint8_t ret_mac[6])
{
	uint8_t mac[6];

	for (size_t i = 0; i < 6; i++) {
		int hi = hex_digit(s[0]), lo = hi < 0 ? -1 : hex_digit(s[1]);

		if (hi < 0 || lo < 0 || s[2] != (i == 5 ? '\0' : ':'))
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
		s += 3;
	}
	/* A NIC address must be unicast and not all zeros. */
	if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EINVAL;
	memcpy(ret_mac, mac, 6);
	return 0;
}

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int net_create(struct device *dev, const char *const *values)
{
	uint16_t status = htole16(VIRTIO_NET_S_LINK_UP);
	struct net *n;
	uint8_t mac[6];
	int r;

	if (!values[0] || net_parse_mac(values[0], mac) < 0)
		return -EINVAL;
	if (dev->host_fd < 0)
		return -EBADF;
	/* The loop must never sleep in a tap read or write: the tap is polled. */
	r = set_nonblocking(dev->host_fd);
	if (r < 0)
		return r;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	memcpy(n->mac, mac, 6);
	memcpy(n->config, mac, 6);
	memcpy(n->config + 6, &status, 2);
	dev->priv = n;
	dev->config = n->config;
	dev->config_len = sizeof(n->config);
	return 0;
}

static void net_destroy(struct device *dev)
{
	free(dev->priv);
	dev->priv = NULL;
}

/*
 * The frame without the guest's header, behind a header of our own: with no
 * offloads negotiated it must be all zeros, so a hostile one never reaches
 * the host's stack. Returns the iov count or -EINVAL/-EMSGSIZE.
 */
static int tx_gather(const struct vq_chain *chain, struct iovec *iov, size_t *ret_len)
{
	uint32_t skip = NET_HDR_LEN;
	size_t n = 1, total = 0;

	iov[0] = (struct iovec){ .iov_base = (void *)zero_hdr, .iov_len = NET_HDR_LEN };
	for (uint32_t i = 0; i < chain->n_bufs; i++) {
		const struct vq_buf *b = &chain->bufs[i];
		uint32_t off;

		/* Writable buffers come last and carry nothing to send. */
		if (b->writable)
			break;
		off = b->len < skip ? b->len : skip;
		skip -= off;
		if (off == b->len)
			continue;
		if (n >= NET_MAX_IOV)
			return -EINVAL;
		iov[n++] = (struct iovec){ .iov_base = b->host + off, .iov_len = b->len - off };
		total += b->len - off;
		if (total > NET_MAX_FRAME)
			return -EMSGSIZE;
	}
	if (skip || total == 0)
		return -EINVAL;
	*ret_len = total;
	return (int)n;
}

static void tx_send(struct device *dev, const struct iovec *iov, int n_iov, size_t len)
{
	struct net *net = net_of(dev);
	ssize_t w;

	do
		w = writev(dev->host_fd, iov, n_iov);
	while (w < 0 && errno == EINTR);
	if (w >= 0) {
		net->stats.tx_frames++;
		device_count(dev, NET_TX_FRAMES, 1);
		device_count(dev, NET_TX_BYTES, len);
		device_account(dev, len);
		return;
	}
	/* A full or downed tap loses the frame, as a wire would; the guest goes on. */
	net->stats.tx_dropped++;
	if (errno != EAGAIN && errno != ENOBUFS && !net->tx_error_logged) {
		net->tx_error_logged = true;
		log_error("tap write failed (%s); dropping frames", strerror(errno));
	}
}


static int net_tx_one(struct device *dev, const struct vq_chain *chain, uint32_t *ret_used)
{
	struct iovec iov[NET_MAX_IOV];
	size_t len;
	int n_iov = tx_gather(chain, iov, &len);

	if (n_iov < 0)
		net_of(dev)->stats.tx_bad++;
	else
		tx_send(dev, iov, n_iov, len);
	return 0;
}

static int net_process_tx(struct device *dev, struct virtqueue *vq)
{
	return device_drain_queue(dev, vq, net_tx_one);
}

/* Receive buffers are filled from the tap in host_ready; a kick only unblocks that. */
static int net_process_queue(struct device *dev, struct virtqueue *vq)
{
	if (vq->index == NET_TX_QUEUE)
		return net_process_tx(dev, vq);
	return 0;
}

/* The writable part of chain as an iovec; returns the count and the total bytes. */
static size_t rx_scatter(const struct vq_chain *chain, struct iovec *iov, size_t *ret_len)
{
	size_t n = 0, total = 0;

	for (uint32_t i = 0; i < chain->n_bufs && n < NET_MAX_IOV; i++) {
		const struct vq_buf *b = &chain->bufs[i];

		if (!b->writable || b->len == 0)
			continue;
		iov[n++] = (struct iovec){ .iov_base = b->host, .iov_len = b->len };
		total += b->len;
	}
	*ret_len = total;
	return n;
}

/* Writes len bytes at offset off of the data described by iov (known to be long enough). */
static void iov_write_at(const struct iovec *iov, size_t n, size_t off, const void *src, size_t len)
{
	const uint8_t *p = src;

	for (size_t i = 0; i < n && len; i++) {
		size_t chunk;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		chunk = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
		memcpy((uint8_t *)iov[i].iov_base + off, p, chunk);
		p += chunk;
		len -= chunk;
		off = 0;
	}
}

/*
 * The chain was popped for nothing: nothing was written to the used ring,
 * so stepping back leaves the queue exactly as the guest made it.
 */
static void rx_give_back(struct virtqueue *vq)
{
	vq->last_avail_idx--;
}

static ssize_t tap_read(int fd, const struct iovec *iov, size_t n)
{
	ssize_t r;

	do
		r = readv(fd, iov, (int)n);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static int rx_fill(struct device *dev, struct virtqueue *vq, const struct vq_chain *chain)
{
	uint16_t one = htole16(1);
	struct iovec iov[NET_MAX_IOV];
	size_t n, room;
	ssize_t got;

	n = rx_scatter(chain, iov, &room);
	if (room < NET_HDR_LEN) {
		/* Too small for even the header: handed back empty, the frame stays queued. */
		net_of(dev)->stats.rx_bad_chains++;
		return virtqueue_push(vq, chain, 0) < 0 ? -EIO : RX_DELIVERED;
	}
	got = tap_read(dev->host_fd, iov, n);
	if (got == -EAGAIN || got <= 0) {
		rx_give_back(vq);
		if (got == -EAGAIN)
			return RX_EMPTY;
		log_ratelimited(LOG_LVL_ERROR, "tap read failed (%s); no more receiving",
				got ? strerror((int)-got) : "EOF");
		return RX_CLOSED;
	}
	if ((size_t)got < NET_HDR_LEN) {
		/* A tap always writes the header; anything shorter is not a frame. */
		net_of(dev)->stats.rx_bad_chains++;
		return virtqueue_push(vq, chain, 0) < 0 ? -EIO : RX_DELIVERED;
	}
	/* Without MRG_RXBUF a packet is always one chain (5.1.6.3.2); the tap leaves the field alone. */
	iov_write_at(iov, n, NET_HDR_NUM_BUFFERS_OFF, &one, sizeof(one));
	if (virtqueue_push(vq, chain, (uint32_t)got) < 0)
		return -EIO;
	net_of(dev)->stats.rx_frames++;
	device_count(dev, NET_RX_FRAMES, 1);
	device_count(dev, NET_RX_BYTES, (uint64_t)got - NET_HDR_LEN);
	device_account(dev, (uint64_t)got);
	return RX_DELIVERED;
}

static int rx_one(struct device *dev, struct virtqueue *vq)
{
	struct vq_chain chain;
	int r = virtqueue_pop(vq, &dev->mem, &chain);

	if (r == -EAGAIN)
		return RX_NO_BUFFERS;
	if (r < 0)
		return r;
	return rx_fill(dev, vq, &chain);
}

static int net_host_ready(struct device *dev)
{
	struct virtqueue *vq = &dev->queues[NET_RX_QUEUE];
	uint32_t budget = vq->size;
	bool pushed = false;
	int r = RX_NO_BUFFERS;

	if (!vq->ready)
		return DEVICE_HOST_NEED_BUFFERS;
	/* Bounded, so the control socket and the transmit queue get their turn. */
	while (budget--) {
		r = rx_one(dev, vq);
		if (r != RX_DELIVERED)
			break;
		pushed = true;
	}
	if (pushed)
		(void)virtqueue_notify(vq);
	if (r < 0)
		return r;
	if (r == RX_NO_BUFFERS)
		return DEVICE_HOST_NEED_BUFFERS;
	return r == RX_CLOSED ? DEVICE_HOST_CLOSED : DEVICE_HOST_DRAINED;
}

/*
 * Frames are read straight into guest buffers, so the device never holds
 * one: what the tap still queues at snapshot time stays in the host's tap
 * and is lost if the VM is restored elsewhere, as on a real link.
 */
static int net_save(struct device *dev, Cloister__DeviceState *state)
{
	uint8_t *blob = malloc(NET_BLOB_LEN);

	if (!blob)
		return -ENOMEM;
	blob[0] = NET_BLOB_VERSION;
	memcpy(blob + 1, net_of(dev)->mac, 6);
	state->blob = (ProtobufCBinaryData){ .len = NET_BLOB_LEN, .data = blob };
	return 0;
}

/* The config space (the MAC) went to the core at startup, so the snapshot's must match it. */
static int net_restore(struct device *dev, const Cloister__DeviceState *state)
{
	const ProtobufCBinaryData *b = &state->blob;

	if (b->len != NET_BLOB_LEN || b->data[0] != NET_BLOB_VERSION)
		return -EINVAL;
	if (memcmp(b->data + 1, net_of(dev)->mac, 6) != 0)
		return -EINVAL;
	return 0;
}

static const char *const net_options[] = { "mac", NULL };

const struct device_ops net_ops = {
	.kind = "net",
	.sandbox_role = SANDBOX_ROLE_DEVICE_NET,
	.virtio_id = VIRTIO_ID_NET,
	.features = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS),
	.num_queues = 2,
	.max_queue_size = NET_QUEUE_SIZE,
	.needs_host_fd = true,
	.input = DEVICE_INPUT_HOST_FD,
	.rx_queue = NET_RX_QUEUE,
	.options = net_options,
	.create = net_create,
	.destroy = net_destroy,
	.process_queue = net_process_queue,
	.host_ready = net_host_ready,
	.save = net_save,
	.restore = net_restore,
	.counter_names = net_counter_names,
};
