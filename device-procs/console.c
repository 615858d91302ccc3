/* SPDX-License-Identifier: Apache-2.0 */
#include "console.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define CONSOLE_BLOB_VERSION 1u
/* version, le32 output length, le32 input length, then the bytes */
#define CONSOLE_BLOB_HEADER 9u

struct console {
	uint8_t out[CONSOLE_PENDING_OUT_MAX];
	size_t out_len;
	uint8_t in[CONSOLE_PENDING_IN_MAX];
	size_t in_len;
	uint64_t out_bytes, out_dropped, in_bytes;
	bool out_error_logged;
};

static const uint8_t console_config[CONSOLE_CONFIG_LEN];

static struct console *console_of(const struct device *dev)
{
	return dev->priv;
}

struct console_stats console_stats(const struct device *dev)
{
	const struct console *c = console_of(dev);

	return (struct console_stats){
		.out_bytes = c->out_bytes,
		.out_dropped = c->out_dropped,
		.in_bytes = c->in_bytes,
		.out_pending = c->out_len,
		.in_pending = c->in_len,
	};
}

static int console_create(struct device *dev, const char *const *values)
{
	struct console *c;

	(void)values;
	if (dev->host_fd < 0)
		return -EBADF;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	dev->priv = c;
	return 0;
}

static void console_destroy(struct device *dev)
{
	free(dev->priv);
	dev->priv = NULL;
}

/* Writes as much of buf as the host end takes now; returns the bytes written or -errno. */
static ssize_t write_some(int fd, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w = write(fd, buf + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		done += (size_t)w;
	}
	return (ssize_t)done;
}

static void output_failed(struct device *dev, int err, size_t lost)
{
	struct console *c = console_of(dev);

	c->out_dropped += lost;
	if (!c->out_error_logged) {
		c->out_error_logged = true;
		log_error("console output failed (%s); dropping it", strerror(-err));
	}
}

/* Keeps what the host could not take, up to the bound; the rest is counted as dropped. */
static void output_stash(struct device *dev, const uint8_t *buf, size_t len)
{
	struct console *c = console_of(dev);
	size_t room = CONSOLE_PENDING_OUT_MAX - c->out_len;
	size_t keep = len < room ? len : room;

	memcpy(c->out + c->out_len, buf, keep);
	c->out_len += keep;
	c->out_dropped += len - keep;
	device_want_output(dev, c->out_len > 0);
}

/* Pending output first, so bytes leave in the order the guest wrote them. */
static void output_flush(struct device *dev)
{
	struct console *c = console_of(dev);
	ssize_t w;

	if (c->out_len == 0)
		return;
	w = write_some(dev->host_fd, c->out, c->out_len);
	if (w < 0) {
		/* The host end is gone: what waited for it is lost, and counted. */
		output_failed(dev, (int)w, c->out_len);
		w = (ssize_t)c->out_len;
	} else {
		c->out_bytes += (size_t)w;
	}
	memmove(c->out, c->out + w, c->out_len - (size_t)w);
	c->out_len -= (size_t)w;
	device_want_output(dev, c->out_len > 0);
}

static void console_output(struct device *dev, const uint8_t *buf, size_t len)
{
	struct console *c = console_of(dev);
	ssize_t w;

	output_flush(dev);
	if (c->out_len) {
		output_stash(dev, buf, len);
		return;
	}
	w = write_some(dev->host_fd, buf, len);
	if (w < 0) {
		output_failed(dev, (int)w, len);
		return;
	}
	c->out_bytes += (size_t)w;
	if ((size_t)w < len)
		output_stash(dev, buf + w, len - (size_t)w);
}

static uint64_t tx_chain(struct device *dev, const struct vq_chain *chain)
{
	uint64_t bytes = 0;

	for (uint32_t i = 0; i < chain->n_bufs; i++) {
		const struct vq_buf *b = &chain->bufs[i];

		if (b->writable)
			break;
		if (b->len == 0)
			continue;
		console_output(dev, b->host, b->len);
		bytes += b->len;
	}
	return bytes;
}


static int console_tx_one(struct device *dev, const struct vq_chain *chain, uint32_t *ret_used)
{
	device_account(dev, tx_chain(dev, chain));
	return 0;
}

static int console_process_tx(struct device *dev, struct virtqueue *vq)
{
	return device_drain_queue(dev, vq, console_tx_one);
}

/* Copies pending input into one chain's writable buffers; returns the bytes copied. */
static uint32_t rx_chain(struct console *c, const struct vq_chain *chain)
{
	uint32_t done = 0;

	for (uint32_t i = 0; i < chain->n_bufs && done < c->in_len; i++) {
		const struct vq_buf *b = &chain->bufs[i];
		size_t n = c->in_len - done < b->len ? c->in_len - done : b->len;

		if (!b->writable || n == 0)
			continue;
		memcpy(b->host, c->in + done, n);
		done += (uint32_t)n;
	}
	memmove(c->in, c->in + done, c->in_len - done);
	c->in_len -= done;
	c->in_bytes += done;
	return done;
}

/* Moves pending input to the guest while it has buffers; returns 0 or -errno. */
static int rx_deliver(struct device *dev, struct virtqueue *vq)
{
	struct console *c = console_of(dev);
	uint32_t budget = vq->size;
	bool pushed = false;
	int r = 0;

	while (c->in_len && budget--) {
		struct vq_chain chain;
		uint32_t n;

		r = virtqueue_pop(vq, &dev->mem, &chain);
		if (r < 0)
			break;
		n = rx_chain(c, &chain);
		r = virtqueue_push(vq, &chain, n);
		if (r < 0)
			break;
		device_account(dev, n);
		pushed = true;
	}
	if (pushed)
		(void)virtqueue_notify(vq);
	return r == -EAGAIN ? 0 : r;
}

static int console_process_queue(struct device *dev, struct virtqueue *vq)
{
	if (vq->index == CONSOLE_TX_QUEUE)
		return console_process_tx(dev, vq);
	return rx_deliver(dev, vq);
}

/* One read per wake-up: fd 5 may be a blocking terminal that another read would sleep on. */
static int input_read(struct device *dev)
{
	struct console *c = console_of(dev);
	ssize_t n;

	do
		n = read(dev->input_fd, c->in + c->in_len, CONSOLE_PENDING_IN_MAX - c->in_len);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return DEVICE_HOST_DRAINED;
	if (n <= 0)
		return DEVICE_HOST_CLOSED;
	c->in_len += (size_t)n;
	return DEVICE_HOST_DRAINED;
}

static int console_host_ready(struct device *dev)
{
	struct virtqueue *vq = &dev->queues[CONSOLE_RX_QUEUE];
	struct console *c = console_of(dev);
	int status = DEVICE_HOST_DRAINED, r;

	if (!vq->ready)
		return DEVICE_HOST_NEED_BUFFERS;
	r = rx_deliver(dev, vq);
	if (r >= 0 && c->in_len < CONSOLE_PENDING_IN_MAX) {
		status = input_read(dev);
		r = rx_deliver(dev, vq);
	}
	if (r < 0)
		return r;
	/* What the guest has no room for waits here; the fd is left alone meanwhile. */
	if (status == DEVICE_HOST_DRAINED && c->in_len)
		status = DEVICE_HOST_NEED_BUFFERS;
	return status;
}

static int console_host_writable(struct device *dev)
{
	output_flush(dev);
	return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static int console_save(struct device *dev, Cloister__DeviceState *state)
{
	const struct console *c = console_of(dev);
	size_t len = CONSOLE_BLOB_HEADER + c->out_len + c->in_len;
	uint8_t *blob = malloc(len);

	if (!blob)
		return -ENOMEM;
	blob[0] = CONSOLE_BLOB_VERSION;
	put_le32(blob + 1, (uint32_t)c->out_len);
	put_le32(blob + 5, (uint32_t)c->in_len);
	memcpy(blob + CONSOLE_BLOB_HEADER, c->out, c->out_len);
	memcpy(blob + CONSOLE_BLOB_HEADER + c->out_len, c->in, c->in_len);
	state->blob = (ProtobufCBinaryData){ .len = len, .data = blob };
	return 0;
}

static int console_restore(struct device *dev, const Cloister__DeviceState *state)
{
	const ProtobufCBinaryData *b = &state->blob;
	struct console *c = console_of(dev);
	uint32_t out_len, in_len;

	if (b->len < CONSOLE_BLOB_HEADER || b->data[0] != CONSOLE_BLOB_VERSION)
		return -EINVAL;
	out_len = get_le32(b->data + 1);
	in_len = get_le32(b->data + 5);
	if (out_len > CONSOLE_PENDING_OUT_MAX || in_len > CONSOLE_PENDING_IN_MAX ||
	    b->len != CONSOLE_BLOB_HEADER + (size_t)out_len + in_len)
		return -EINVAL;
	memcpy(c->out, b->data + CONSOLE_BLOB_HEADER, out_len);
	c->out_len = out_len;
	memcpy(c->in, b->data + CONSOLE_BLOB_HEADER + out_len, in_len);
	c->in_len = in_len;
	device_want_output(dev, out_len > 0);
	return 0;
}

const struct device_ops console_ops = {
	.kind = "console",
	.sandbox_role = SANDBOX_ROLE_DEVICE_CONSOLE,
	.virtio_id = VIRTIO_ID_CONSOLE,
	.features = 0,
	.num_queues = 2,
	.max_queue_size = CONSOLE_QUEUE_SIZE,
	.needs_host_fd = true,
	.input = DEVICE_INPUT_SECOND_FD,
	.rx_queue = CONSOLE_RX_QUEUE,
	.config = console_config,
	.config_len = sizeof(console_config),
	.create = console_create,
	.destroy = console_destroy,
	.process_queue = console_process_queue,
	.host_ready = console_host_ready,
	.host_writable = console_host_writable,
	.save = console_save,
	.restore = console_restore,
};
