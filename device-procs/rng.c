/* SPDX-License-Identifier: Apache-2.0 */
#include "rng.h"

#include <errno.h>
#include <sys/random.h>
#include <unistd.h>

/* vm.counters: random bytes handed to the guest. */
enum rng_counter { RNG_BYTES };
static const char *const rng_counter_names[] = { [RNG_BYTES] = "bytes", NULL };

static int rng_fill_buf(const struct vq_buf *buf, uint32_t len)
{
	uint32_t done = 0;

	while (done < len) {
		ssize_t n = getrandom(buf->host + done, len - done, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (uint32_t)n;
	}
	return 0;
}

/* Fills the writable buffers of chain, up to RNG_MAX_REQUEST_BYTES in all. */
static int rng_fill_chain(const struct vq_chain *chain, uint32_t *ret_written)
{
	uint32_t written = 0;

	for (uint32_t i = 0; i < chain->n_bufs && written < RNG_MAX_REQUEST_BYTES; i++) {
		const struct vq_buf *buf = &chain->bufs[i];
		uint32_t len = buf->len;
		int r;

		if (!buf->writable || len == 0)
			continue;
		if (len > RNG_MAX_REQUEST_BYTES - written)
			len = RNG_MAX_REQUEST_BYTES - written;
		r = rng_fill_buf(buf, len);
		if (r < 0)
			return r;
		written += len;
	}
	*ret_written = written;
	return 0;
}

static int rng_serve_chain(struct device *dev, const struct vq_chain *chain, uint32_t *ret_used)
{
	int r = rng_fill_chain(chain, ret_used);

	if (r >= 0) {
		device_account(dev, *ret_used);
		device_count(dev, RNG_BYTES, *ret_used);
	}
	return r;
}

static int rng_process_queue(struct device *dev, struct virtqueue *vq)
{
	return device_drain_queue(dev, vq, rng_serve_chain);
}

/* virtio-rng keeps no state besides the queues and the framework's counters. */
static int rng_save(struct device *dev, Cloister__DeviceState *state)
{
	state->blob = (ProtobufCBinaryData){ .len = 0, .data = NULL };
	return 0;
}

static int rng_restore(struct device *dev, const Cloister__DeviceState *state)
{
	return state->blob.len == 0 ? 0 : -EINVAL;
}

const struct device_ops rng_ops = {
	.kind = "rng",
	.sandbox_role = SANDBOX_ROLE_DEVICE_RNG,
	.virtio_id = VIRTIO_ID_RNG,
	.features = 0,
	.num_queues = 1,
	.max_queue_size = 256,
	.needs_host_fd = false,
	.process_queue = rng_process_queue,
	.save = rng_save,
	.restore = rng_restore,
	.counter_names = rng_counter_names,
};
