/* SPDX-License-Identifier: Apache-2.0 */
#include "device.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "frame.h"
#include "log.h"

#define HANDSHAKE_TIMEOUT_MS 5000
#define VIRTIO_STATUS_NEEDS_RESET 0x40u
#define MAX_CONTROL_FDS (2 * DEVICE_MAX_QUEUES)

/* The fds that came with one control message; a handler takes what it keeps. */
struct msg_fds {
	int fd[MAX_CONTROL_FDS];
	size_t n;
};

static void msg_fds_close(struct msg_fds *f)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->fd[i] >= 0)
			close(f->fd[i]);
	f->n = 0;
}

void device_init(struct device *dev, const struct device_ops *ops, const char *id, int sock,
		 int host_fd)
{
	*dev = (struct device){
		.ops = ops,
		.id = id,
		.sock = sock,
		.host_fd = host_fd,
		.input_fd = -1,
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

static uint64_t device_offered_features(const struct device *dev)
{
	return dev->ops->features | (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_INDIRECT_DESC);
}

static int send_dev_info(struct device *dev)
{
	Cloister__DevInfo info = CLOISTER__DEV_INFO__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	info.kind = (char *)dev->ops->kind;
	info.id = (char *)dev->id;
	info.virtio_device_id = dev->ops->virtio_id;
	info.device_features = device_offered_features(dev);
	info.num_queues = dev->ops->num_queues;
	info.max_queue_size = dev->ops->max_queue_size;
	info.config_space = (ProtobufCBinaryData){ .len = dev->config_len,
						   .data = (uint8_t *)dev->config };
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_INFO;
	env.dev_info = &info;
	return frame_send(dev->sock, &env, NULL, 0);
}

static bool region_overlaps(const struct guest_memory *mem, uint64_t gpa, uint64_t size)
{
	for (size_t i = 0; i < mem->n_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		if (gpa < r->gpa + r->size && r->gpa < gpa + size)
			return true;
	}
	return false;
}

static int map_region(struct guest_memory *mem, const Cloister__MemoryRegion *reg, int fd)
{
	struct stat st;
	void *host;

	if (reg->size == 0 || reg->guest_addr + reg->size < reg->guest_addr)
		return -EINVAL;
	if (region_overlaps(mem, reg->guest_addr, reg->size))
		return -EINVAL;
	/* A file shorter than the region would turn guest accesses into SIGBUS here. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < reg->size)
		return -EINVAL;
	host = mmap(NULL, reg->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (host == MAP_FAILED)
		return -errno;
	mem->regions[mem->n_regions++] = (struct guest_region){
		.gpa = reg->guest_addr, .size = reg->size, .host = host,
	};
	return 0;
}

static void unmap_memory(struct guest_memory *mem)
{
	for (size_t i = 0; i < mem->n_regions; i++)
		munmap(mem->regions[i].host, mem->regions[i].size);
	mem->n_regions = 0;
}

static int map_memory(struct device *dev, const Cloister__DevMemory *msg, const struct msg_fds *fds)
{
	int r;

	if (msg->n_regions == 0 || msg->n_regions > GUEST_MEM_MAX_REGIONS || msg->n_regions != fds->n)
		return -EINVAL;
	for (size_t i = 0; i < msg->n_regions; i++) {
		r = map_region(&dev->mem, msg->regions[i], fds->fd[i]);
		if (r < 0) {
			unmap_memory(&dev->mem);
			return r;
		}
	}
	dev->has_memory = true;
	return 0;
}

static int recv_control(struct device *dev, int timeout_ms, Cloister__Envelope **ret_env,
			struct msg_fds *ret_fds)
{
	return frame_recv_timeout(dev->sock, timeout_ms, ret_env, ret_fds->fd, MAX_CONTROL_FDS,
				  &ret_fds->n);
}

int device_handshake(struct device *dev)
{
	Cloister__Envelope *env = NULL;
	struct msg_fds fds = { .n = 0 };
	int r;

	r = frame_hello_send(dev->sock, CLOISTER__ROLE__ROLE_DEVICE);
	if (r >= 0)
		r = frame_hello_expect(dev->sock, CLOISTER__ROLE__ROLE_VMM, HANDSHAKE_TIMEOUT_MS);
	if (r >= 0)
		r = send_dev_info(dev);
	if (r >= 0)
		r = recv_control(dev, HANDSHAKE_TIMEOUT_MS, &env, &fds);
	if (r < 0) {
		log_error("handshake with the core failed: %s", strerror(-r));
		return r;
	}
	if (env->msg_case != CLOISTER__ENVELOPE__MSG_DEV_MEMORY)
		r = -EPROTO;
	else
		r = map_memory(dev, env->dev_memory, &fds);
	frame_free(env);
	msg_fds_close(&fds);
	if (r < 0)
		log_error("refusing the guest memory table: %s", strerror(-r));
	(void)frame_reply_send(dev->sock, r, r < 0 ? "bad memory table" : NULL);
	return r;
}

static void queues_stop(struct device *dev)
{
	for (size_t i = 0; i < DEVICE_MAX_QUEUES; i++)
		virtqueue_teardown(&dev->queues[i]);
	dev->active = false;
}

static void device_reset(struct device *dev)
{
	queues_stop(dev);
	dev->driver_features = 0;
	dev->needs_reset = false;
	/* A new driver posts new receive buffers; the input fd is worth a look again. */
	dev->input_blocked = false;
}

static int queue_config_from_state(const struct device *dev, const Cloister__VirtqueueState *qs,
				   struct virtqueue_config *ret)
{
	if (qs->index >= dev->ops->num_queues || qs->size > dev->ops->max_queue_size)
		return -EINVAL;
	if (qs->last_avail_idx > UINT16_MAX || qs->used_idx > UINT16_MAX)
		return -EINVAL;
	if (dev->queues[qs->index].ready)
		return -EINVAL;
	*ret = (struct virtqueue_config){
		.index = qs->index,
		.size = qs->size,
		.desc_addr = qs->desc_addr,
		.avail_addr = qs->avail_addr,
		.used_addr = qs->used_addr,
		.last_avail_idx = (uint16_t)qs->last_avail_idx,
		.used_idx = (uint16_t)qs->used_idx,
		.indirect = dev->driver_features & (1ull << VIRTIO_F_INDIRECT_DESC),
		.kick_fd = -1,
		.call_fd = -1,
	};
	return 0;
}

/* Sets up every ready queue in qs, taking its kick and call fds from fds in order. */
static int queues_start(struct device *dev, Cloister__VirtqueueState *const *qs, size_t n_qs,
			struct msg_fds *fds)
{
	size_t next_fd = 0;
	int r;

	if (n_qs > dev->ops->num_queues)
		return -EINVAL;
	for (size_t i = 0; i < n_qs; i++) {
		struct virtqueue_config cfg;

		if (!qs[i]->ready)
			continue;
		r = queue_config_from_state(dev, qs[i], &cfg);
		if (r < 0 || next_fd + 2 > fds->n) {
			queues_stop(dev);
			return r < 0 ? r : -EINVAL;
		}
		cfg.kick_fd = fds->fd[next_fd];
		cfg.call_fd = fds->fd[next_fd + 1];
		r = virtqueue_setup(&dev->queues[cfg.index], &dev->mem, &cfg);
		if (r < 0) {
			queues_stop(dev);
			return r;
		}
		fds->fd[next_fd] = fds->fd[next_fd + 1] = -1;
		next_fd += 2;
	}
	if (next_fd != fds->n) {
		queues_stop(dev);
		return -EINVAL;
	}
	dev->active = true;
	return 0;
}

static bool features_acceptable(const struct device *dev, uint64_t features)
{
	return (features & ~device_offered_features(dev)) == 0 &&
	       (features & (1ull << VIRTIO_F_VERSION_1));
}

static void device_fail(struct device *dev, int err, const char *what, uint32_t index)
{
	if (dev->needs_reset)
		return;
	dev->needs_reset = true;
	log_error("%s %u failed (%s); serving nothing until reset", what, index, strerror(-err));
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
	return dev->active && !dev->paused && !dev->needs_reset;
}

static void process_all_queues(struct device *dev)
{
	for (size_t i = 0; i < DEVICE_MAX_QUEUES && device_serving(dev); i++)
		if (dev->queues[i].ready)
			process_queue(dev, &dev->queues[i]);
}

static int handle_activate(struct device *dev, const Cloister__DevActivate *msg, struct msg_fds *fds)
{
	int r;

	if (dev->active)
		return -EBUSY;
	if (!features_acceptable(dev, msg->driver_features))
		return -EINVAL;
	dev->driver_features = msg->driver_features;
	r = queues_start(dev, msg->queues, msg->n_queues, fds);
	if (r < 0) {
		dev->driver_features = 0;
		return r;
	}
	/* The driver may have made buffers available before DRIVER_OK. */
	process_all_queues(dev);
	return 0;
}

static int handle_resume(struct device *dev)
{
	dev->paused = false;
	/* Kicks that came while paused still sit in the eventfds; this just does not wait for them. */
	process_all_queues(dev);
	return 0;
}

static void fill_queue_state(const struct virtqueue *vq, Cloister__VirtqueueState *qs)
{
	cloister__virtqueue_state__init(qs);
	qs->index = vq->index;
	qs->size = vq->size;
	qs->ready = vq->ready;
	qs->desc_addr = vq->desc_addr;
	qs->avail_addr = vq->avail_addr;
	qs->used_addr = vq->used_addr;
	qs->last_avail_idx = vq->last_avail_idx;
	qs->used_idx = vq->used_idx;
}

static int send_save_reply(struct device *dev, int error, Cloister__DeviceState *state)
{
	Cloister__DevSaveReply reply = CLOISTER__DEV_SAVE_REPLY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	reply.error = error;
	reply.state = state;
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY;
	env.dev_save_reply = &reply;
	return frame_send(dev->sock, &env, NULL, 0);
}

static int build_save_state(struct device *dev, Cloister__DeviceState *state,
			    Cloister__VirtqueueState *qs, Cloister__VirtqueueState **qptrs)
{
	if (!dev->paused)
		return -EBUSY;
	if (!dev->ops->save)
		return -EOPNOTSUPP;
	state->kind = (char *)dev->ops->kind;
	state->id = (char *)dev->id;
	state->driver_features = dev->driver_features;
	state->status = dev->needs_reset ? VIRTIO_STATUS_NEEDS_RESET : 0;
	state->requests_served = dev->requests_served;
	state->bytes_served = dev->bytes_served;
	state->queues = qptrs;
	for (size_t i = 0; i < DEVICE_MAX_QUEUES; i++) {
		if (!dev->queues[i].ready)
			continue;
		fill_queue_state(&dev->queues[i], &qs[state->n_queues]);
		qptrs[state->n_queues] = &qs[state->n_queues];
		state->n_queues++;
	}
	return dev->ops->save(dev, state);
}

/* Answers DevSave itself, since its reply is not a plain Reply. */
static int handle_save(struct device *dev)
{
	Cloister__DeviceState state = CLOISTER__DEVICE_STATE__INIT;
	Cloister__VirtqueueState qs[DEVICE_MAX_QUEUES];
	Cloister__VirtqueueState *qptrs[DEVICE_MAX_QUEUES];
	int r, err;

	err = build_save_state(dev, &state, qs, qptrs);
	r = send_save_reply(dev, err, err < 0 ? NULL : &state);
	free(state.blob.data);
	return r;
}

static int restore_validate(const struct device *dev, const Cloister__DeviceState *s)
{
	if (!dev->ops->restore)
		return -EOPNOTSUPP;
	if (strcmp(s->kind, dev->ops->kind) != 0 || strcmp(s->id, dev->id) != 0)
		return -EINVAL;
	if ((s->status & VIRTIO_STATUS_DRIVER_OK) && !features_acceptable(dev, s->driver_features))
		return -EINVAL;
	return 0;
}

static int handle_restore(struct device *dev, const Cloister__DevRestore *msg, struct msg_fds *fds)
{
	const Cloister__DeviceState *s = msg->state;
	int r;

	if (!s)
		return -EINVAL;
	r = restore_validate(dev, s);
	if (r < 0)
		return r;
	device_reset(dev);
	/* A restored device waits for DevResume, like the rest of the paused VM. */
	dev->paused = true;
	if (s->status & VIRTIO_STATUS_DRIVER_OK) {
		dev->driver_features = s->driver_features;
		r = queues_start(dev, s->queues, s->n_queues, fds);
	} else if (fds->n) {
		r = -EINVAL;
	}
	if (r >= 0)
		r = dev->ops->restore(dev, s);
	if (r < 0) {
		device_reset(dev);
		return r;
	}
	dev->requests_served = s->requests_served;
	dev->bytes_served = s->bytes_served;
	dev->needs_reset = s->status & VIRTIO_STATUS_NEEDS_RESET;
	return 0;
}

/* The permission table: what the core may ask, and what each request does. */
static int dispatch(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds)
{
	switch (env->msg_case) {
	case CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE:
		return handle_activate(dev, env->dev_activate, fds);
	case CLOISTER__ENVELOPE__MSG_DEV_RESET:
		device_reset(dev);
		return 0;
	case CLOISTER__ENVELOPE__MSG_DEV_PAUSE:
		/*
		 * Requests and host input are served synchronously, so nothing is
		 * in flight by now; while paused the host fds are not polled.
		 */
		dev->paused = true;
		return 0;
	case CLOISTER__ENVELOPE__MSG_DEV_RESUME:
		return handle_resume(dev);
	case CLOISTER__ENVELOPE__MSG_DEV_RESTORE:
		return handle_restore(dev, env->dev_restore, fds);
	default:
		return -EPERM;
	}
}

/* Returns 1 when the core hung up, 0 to go on, or a socket error. */
static int handle_control(struct device *dev)
{
	Cloister__Envelope *env = NULL;
	struct msg_fds fds = { .n = 0 };
	int r;

	r = recv_control(dev, -1, &env, &fds);
	if (r == -EPIPE)
		return 1;
	if (r == -EPROTO) {
		log_error("malformed frame from the core");
		return frame_reply_send(dev->sock, r, "malformed frame");
	}
	if (r < 0)
		return r;
	if (env->msg_case == CLOISTER__ENVELOPE__MSG_DEV_SAVE) {
		r = handle_save(dev);
	} else {
		int err = dispatch(dev, env, &fds);

		if (err < 0)
			log_error("refused %s: %s", frame_msg_name(env), strerror(-err));
		r = frame_reply_send(dev->sock, err, err < 0 ? strerror(-err) : NULL);
	}
	msg_fds_close(&fds);
	frame_free(env);
	return r;
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
			r = handle_control(dev);
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
	queues_stop(dev);
	unmap_memory(&dev->mem);
	if (dev->sock >= 0)
		close(dev->sock);
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
