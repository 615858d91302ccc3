/* SPDX-License-Identifier: Apache-2.0 */
#include "console.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/*
 * Blob v2: version, le32 output length, le32 input length, le64 bytes of
 * the next transmit chain already taken, then the bytes. v1 (from before
 * transmit chains could be held) has no le64 and is still read.
 */
#define CONSOLE_BLOB_V1 1u
#define CONSOLE_BLOB_V2 2u
#define CONSOLE_BLOB_V1_HEADER 9u
#define CONSOLE_BLOB_V2_HEADER 17u

/* vm.counters: bytes the guest wrote (tx) and bytes it was given (rx). */
enum console_counter { CONSOLE_TX_BYTES, CONSOLE_RX_BYTES };
static const char *const console_counter_names[] = {
	[CONSOLE_TX_BYTES] = "tx_bytes",
	[CONSOLE_RX_BYTES] = "rx_bytes",
	NULL,
};

struct console {
	uint8_t out[CONSOLE_PENDING_OUT_MAX];
	size_t out_len;
	uint8_t in[CONSOLE_PENDING_IN_MAX];
	size_t in_len;
	/*
	 * The transmit chain out[] had no room for all of: it stays the
	 * guest's (not on the used ring) until every byte is taken, and no
	 * other chain is taken meanwhile. held_taken bytes of it are.
	 */
	struct vq_chain held;
	bool holding;
	uint64_t held_taken;
	/* Bytes of the next chain taken before a pause handed it back. */
	uint64_t skip;
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
		.tx_held = c->holding,
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

/* The host end is gone (not slow): what it would have taken is lost, and counted. */
static void output_failed(struct device *dev, int err, size_t lost)
{
	struct console *c = console_of(dev);

	c->out_dropped += lost;
	if (!c->out_error_logged) {
		c->out_error_logged = true;
		log_error("console output failed (%s); dropping it", strerror(-err));
	}
}

/* Writes what out[] holds, oldest first, as far as the host takes it now. */
static void output_flush(struct device *dev)
{
	struct console *c = console_of(dev);
	ssize_t w;

	if (c->out_len == 0)
		return;
	w = write_some(dev->host_fd, c->out, c->out_len);
	if (w < 0) {
		output_failed(dev, (int)w, c->out_len);
		w = (ssize_t)c->out_len;
	} else {
		c->out_bytes += (size_t)w;
	}
	memmove(c->out, c->out + w, c->out_len - (size_t)w);
	c->out_len -= (size_t)w;
}

/*
 * Takes up to len guest bytes: written if the host end takes them now and
 * nothing older waits, kept in out[] while it has room. Returns how many
 * were taken; fewer than len means out[] is full.
 */
static size_t output_take(struct device *dev, const uint8_t *buf, size_t len)
{
	struct console *c = console_of(dev);
	size_t taken = 0, room, keep;

	output_flush(dev);
	if (c->out_len == 0) {
		ssize_t w = write_some(dev->host_fd, buf, len);

		if (w < 0) {
			output_failed(dev, (int)w, len);
			return len;
		}
		c->out_bytes += (size_t)w;
		taken = (size_t)w;
	}
	room = CONSOLE_PENDING_OUT_MAX - c->out_len;
	keep = len - taken < room ? len - taken : room;
	memcpy(c->out + c->out_len, buf + taken, keep);
	c->out_len += keep;
	return taken + keep;
}

/* Takes the rest of the held chain; true once all of it is taken. */
static bool held_take(struct device *dev)
{
	struct console *c = console_of(dev);
	uint64_t skip = c->held_taken;

	for (uint32_t i = 0; i < c->held.n_bufs; i++) {
		const struct vq_buf *b = &c->held.bufs[i];
		size_t n;

		if (b->writable)
			break;
		if (skip >= b->len) {
			skip -= b->len;
			continue;
		}
		n = output_take(dev, b->host + skip, b->len - skip);
		c->held_taken += n;
		device_count(dev, CONSOLE_TX_BYTES, n);
		if (n < b->len - skip)
			return false;
		skip = 0;
	}
	return true;
}

/*
 * Serves the transmit queue: one chain at a time, each given back to the
 * guest once all its bytes are taken. When the host end is slow and out[]
 * is full, the chain is held and the rest stay in the queue: the guest
 * waits for its buffers, as it would for a busy UART, and no byte is lost.
 */
static int console_tx_run(struct device *dev, struct virtqueue *vq)
{
	struct console *c = console_of(dev);
	uint32_t budget = vq->size;
	bool pushed = false;
	int r = 0;

	while (budget) {
		if (!c->holding) {
			r = virtqueue_pop(vq, &dev->mem, &c->held);
			if (r < 0)
				break;
			c->holding = true;
			c->held_taken = c->skip;
			c->skip = 0;
		}
		if (!held_take(dev))
			break;
		c->holding = false;
		r = virtqueue_push(vq, &c->held, 0);
		if (r < 0)
			break;
		device_account(dev, c->held_taken);
		pushed = true;
		budget--;
	}
	if (budget == 0)
		virtqueue_rearm_kick(vq);
	if (pushed)
		(void)virtqueue_notify(vq);
	output_flush(dev);
	device_want_output(dev, c->out_len > 0 || c->holding);
	return r == -EAGAIN ? 0 : r;
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
		device_count(dev, CONSOLE_RX_BYTES, n);
		pushed = true;
	}
	if (pushed)
		(void)virtqueue_notify(vq);
	return r == -EAGAIN ? 0 : r;
}

static int console_process_queue(struct device *dev, struct virtqueue *vq)
{
	if (vq->index == CONSOLE_TX_QUEUE)
		return console_tx_run(dev, vq);
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
	struct virtqueue *vq = &dev->queues[CONSOLE_TX_QUEUE];
	struct console *c = console_of(dev);

	if (vq->ready)
		return console_tx_run(dev, vq);
	output_flush(dev);
	device_want_output(dev, c->out_len > 0);
	return 0;
}

/*
 * A held chain goes back to the guest's side of the queue: nothing of it
 * is on the used ring, so stepping back leaves the ring as the guest made
 * it, and skip remembers what was taken. The saved queue is then exact.
 */
static void console_pause(struct device *dev)
{
	struct console *c = console_of(dev);

	if (!c->holding)
		return;
	dev->queues[CONSOLE_TX_QUEUE].last_avail_idx--;
	c->skip = c->held_taken;
	c->holding = false;
}

/* The driver starts over: its old chains are gone, what out[] holds is still the guest's output. */
static void console_reset(struct device *dev)
{
	struct console *c = console_of(dev);

	c->holding = false;
	c->held_taken = 0;
	c->skip = 0;
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

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* Saved while paused, so no chain is held: out[], in[] and the skip are the whole state. */
static int console_save(struct device *dev, Cloister__DeviceState *state)
{
	const struct console *c = console_of(dev);
	size_t len = CONSOLE_BLOB_V2_HEADER + c->out_len + c->in_len;
	uint8_t *blob;

	if (c->holding)
		return -EBUSY;
	blob = malloc(len);
	if (!blob)
		return -ENOMEM;
	blob[0] = CONSOLE_BLOB_V2;
	put_le32(blob + 1, (uint32_t)c->out_len);
	put_le32(blob + 5, (uint32_t)c->in_len);
	put_le64(blob + 9, c->skip);
	memcpy(blob + CONSOLE_BLOB_V2_HEADER, c->out, c->out_len);
	memcpy(blob + CONSOLE_BLOB_V2_HEADER + c->out_len, c->in, c->in_len);
	state->blob = (ProtobufCBinaryData){ .len = len, .data = blob };
	return 0;
}

static int console_restore(struct device *dev, const Cloister__DeviceState *state)
{
	const ProtobufCBinaryData *b = &state->blob;
	struct console *c = console_of(dev);
	uint32_t out_len, in_len;
	size_t header;

	if (b->len < CONSOLE_BLOB_V1_HEADER)
		return -EINVAL;
	if (b->data[0] == CONSOLE_BLOB_V1)
		header = CONSOLE_BLOB_V1_HEADER;
	else if (b->data[0] == CONSOLE_BLOB_V2 && b->len >= CONSOLE_BLOB_V2_HEADER)
		header = CONSOLE_BLOB_V2_HEADER;
	else
		return -EINVAL;
	out_len = get_le32(b->data + 1);
	in_len = get_le32(b->data + 5);
	if (out_len > CONSOLE_PENDING_OUT_MAX || in_len > CONSOLE_PENDING_IN_MAX ||
	    b->len != header + (size_t)out_len + in_len)
		return -EINVAL;
	/* A skip past the end of the chain just means the chain was all taken. */
	c->skip = header == CONSOLE_BLOB_V2_HEADER ? get_le64(b->data + 9) : 0;
	memcpy(c->out, b->data + header, out_len);
	c->out_len = out_len;
	memcpy(c->in, b->data + header + out_len, in_len);
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
	.pause = console_pause,
	.reset = console_reset,
	.counter_names = console_counter_names,
};
