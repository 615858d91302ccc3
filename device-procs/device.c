/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device_internal.h"
#include "log.h"
#include "ratelimit.h"

void device_init(struct device *dev, const struct device_ops *ops, const char *id, int sock,
		 int host_fd)
{
	*dev = (struct device){
		.ops = ops,
		.id = id,
		.sock = sock,
		.uffd = -1,
		.host_fd = host_fd,
		.input_fd = -1,
		.state = DEVICE_CONFIGURING,
		.config = ops->config,
		.config_len = ops->config_len,
	};
	for (size_t i = 0; i < DEVICE_MAX_QUEUES; i++)
		virtqueue_init(&dev->queues[i]);
}

void device_set_input_fd(struct device *dev, int fd)
{
	if (dev->input_fd >= 0)
		close(dev->input_fd);
	dev->input_fd = fd;
}

int device_configure(struct device *dev, const char *const *option_values)
{
	static const char *const none[DEVICE_MAX_OPTIONS] = { NULL };
	int r;

	if (!dev->ops->create || dev->created)
		return dev->created ? -EBUSY : 0;
	r = dev->ops->create(dev, option_values ? option_values : none);
	if (r < 0)
		return r;
	dev->created = true;
	return 0;
}

void device_want_output(struct device *dev, bool want)
{
	dev->want_output = want;
}

int device_input_fd(const struct device *dev)
{
	switch (dev->ops->input) {
	case DEVICE_INPUT_HOST_FD:
		return dev->host_fd;
	case DEVICE_INPUT_SECOND_FD:
		return dev->input_fd;
	default:
		return -1;
	}
}

void device_account(struct device *dev, uint64_t bytes)
{
	dev->requests_served++;
	dev->bytes_served += bytes;
}

uint64_t device_offered_features(const struct device *dev)
{
	return dev->ops->features | (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_INDIRECT_DESC);
}

void device_queues_stop(struct device *dev)
{
	/* A kind with a create() has nothing to forget before it ran. */
	if (dev->ops->reset && (dev->created || !dev->ops->create))
		dev->ops->reset(dev);
	for (size_t i = 0; i < DEVICE_MAX_QUEUES; i++)
		virtqueue_teardown(&dev->queues[i]);
}

/* A guest can break its queues after every reset: the line is bounded. */
static void device_fail(struct device *dev, int err, const char *what, uint32_t index)
{
	if (dev->state != DEVICE_ACTIVE)
		return;
	dev->state = DEVICE_BROKEN;
	log_ratelimited(LOG_LVL_ERROR, "%s %u failed (%s); serving nothing until reset", what, index,
			strerror(-err));
}

static bool has_host_input(const struct device *dev)
{
	return dev->ops->host_ready && device_input_fd(dev) >= 0;
}

static void process_queue(struct device *dev, struct virtqueue *vq)
{
	int r;

	(void)virtqueue_drain_kick(vq);
	/* New receive buffers may be what the input was waiting for. */
	if (has_host_input(dev) && vq->index == dev->ops->rx_queue)
		dev->input_blocked = false;
	r = dev->ops->process_queue(dev, vq);
	if (r < 0)
		device_fail(dev, r, "queue", vq->index);
}

static void process_host_input(struct device *dev)
{
	int r = dev->ops->host_ready(dev);

	if (r < 0) {
		device_fail(dev, r, "host input on queue", dev->ops->rx_queue);
	} else if (r == DEVICE_HOST_NEED_BUFFERS) {
		dev->input_blocked = true;
	} else if (r == DEVICE_HOST_CLOSED) {
		dev->input_closed = true;
		log_info("host input closed; the guest gets no more input");
	}
}

static void process_host_output(struct device *dev)
{
	int r = dev->ops->host_writable(dev);

	if (r < 0)
		device_fail(dev, r, "host output for queue", dev->ops->rx_queue);
}

static bool device_serving(const struct device *dev)
{
	return dev->state == DEVICE_ACTIVE;
}

void device_serve_all_queues(struct device *dev)
{
	for (size_t i = 0; i < DEVICE_MAX_QUEUES && device_serving(dev); i++)
		if (dev->queues[i].ready)
			process_queue(dev, &dev->queues[i]);
}

/* One poll round: the control socket, the kick fds, then the host fds. */
struct poll_set {
	struct pollfd pfd[3 + DEVICE_MAX_QUEUES];
	struct virtqueue *vq[3 + DEVICE_MAX_QUEUES];
	nfds_t n;
	nfds_t first_host;
	int input_slot, output_slot;	/* -1 when not polled */
};

static void poll_add(struct poll_set *ps, int fd, short events, struct virtqueue *vq)
{
	ps->vq[ps->n] = vq;
	ps->pfd[ps->n++] = (struct pollfd){ .fd = fd, .events = events };
}

static void build_host_pollfds(struct device *dev, struct poll_set *ps)
{
	if (has_host_input(dev) && !dev->input_blocked && !dev->input_closed) {
		ps->input_slot = (int)ps->n;
		poll_add(ps, device_input_fd(dev), POLLIN, NULL);
	}
	if (dev->ops->host_writable && dev->want_output && dev->host_fd >= 0) {
		ps->output_slot = (int)ps->n;
		poll_add(ps, dev->host_fd, POLLOUT, NULL);
	}
}

static void build_pollfds(struct device *dev, struct poll_set *ps)
{
	*ps = (struct poll_set){ .input_slot = -1, .output_slot = -1 };
	poll_add(ps, dev->sock, POLLIN, NULL);
	ps->first_host = ps->n;
	if (!device_serving(dev))
		return;
	for (size_t i = 0; i < DEVICE_MAX_QUEUES; i++) {
		struct virtqueue *vq = &dev->queues[i];

		if (vq->ready && vq->kick_fd >= 0)
			poll_add(ps, vq->kick_fd, POLLIN, vq);
	}
	ps->first_host = ps->n;
	build_host_pollfds(dev, ps);
}

#define POLL_WAKE (POLLIN | POLLOUT | POLLHUP | POLLERR | POLLNVAL)

/* Queues first: a kick can unblock the input polled in the same round. */
static void serve_ready(struct device *dev, const struct poll_set *ps)
{
	for (nfds_t i = 1; i < ps->first_host && device_serving(dev); i++)
		if (ps->pfd[i].revents & POLLIN)
			process_queue(dev, ps->vq[i]);
	/* Hang-ups count as ready: the handler reads the EOF or error and says CLOSED. */
	if (ps->input_slot >= 0 && (ps->pfd[ps->input_slot].revents & POLL_WAKE) &&
	    device_serving(dev))
		process_host_input(dev);
	if (ps->output_slot >= 0 && (ps->pfd[ps->output_slot].revents & POLL_WAKE) &&
	    device_serving(dev))
		process_host_output(dev);
}

int device_serve(struct device *dev)
{
	struct poll_set ps;

	for (;;) {
		int r;

		build_pollfds(dev, &ps);
		if (ppoll(ps.pfd, ps.n, NULL, NULL) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		serve_ready(dev, &ps);
		if (ps.pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = device_control_handle(dev, -1, NULL, NULL);
			if (r == 1)
				return 0;
			if (r < 0) {
				log_error("control socket failed: %s", strerror(-r));
				return r;
			}
		}
	}
}

void device_cleanup(struct device *dev)
{
	device_queues_stop(dev);
	device_unmap_memory(dev);
	if (dev->sock >= 0)
		close(dev->sock);
	if (dev->uffd >= 0)
		close(dev->uffd);
	dev->uffd = -1;
	if (dev->host_fd >= 0)
		close(dev->host_fd);
	if (dev->input_fd >= 0)
		close(dev->input_fd);
	dev->sock = dev->host_fd = dev->input_fd = -1;
	if (dev->created && dev->ops->destroy)
		dev->ops->destroy(dev);
	dev->created = false;
}

int device_drain_queue(struct device *dev, struct virtqueue *vq,
		       int (*serve)(struct device *dev, const struct vq_chain *chain,
				    uint32_t *ret_used))
{
	uint32_t budget = vq->size;
	bool pushed = false;
	int r = 0;

	while (budget) {
		struct vq_chain chain;
		uint32_t used = 0;

		r = virtqueue_pop(vq, &dev->mem, &chain);
		if (r < 0)
			break;
		r = serve(dev, &chain, &used);
		if (r >= 0)
			r = virtqueue_push(vq, &chain, used);
		if (r < 0)
			break;
		pushed = true;
		budget--;
	}
	if (budget == 0)
		virtqueue_rearm_kick(vq);
	if (pushed)
		(void)virtqueue_notify(vq);
	return r == -EAGAIN ? 0 : r;
}
