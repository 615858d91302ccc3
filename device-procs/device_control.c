/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The core's requests to a device process: the handshake, one table of
 * what each state accepts, and the handlers. Nothing here runs before the
 * table said yes, and every answer echoes its request's id.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "device_internal.h"
#include "frame.h"
#include "log.h"
#include "ratelimit.h"

#define HANDSHAKE_TIMEOUT_MS 5000
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

/* ---- guest memory ---- */

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

void device_unmap_memory(struct device *dev)
{
	struct guest_memory *mem = &dev->mem;

	for (size_t i = 0; i < mem->n_regions; i++)
		munmap(mem->regions[i].host, mem->regions[i].size);
	mem->n_regions = 0;
}

static int handle_memory(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds)
{
	const Cloister__DevMemory *msg = env->dev_memory;
	int r;

	if (msg->n_regions == 0 || msg->n_regions > GUEST_MEM_MAX_REGIONS || msg->n_regions != fds->n)
		return -EINVAL;
	for (size_t i = 0; i < msg->n_regions; i++) {
		r = map_region(&dev->mem, msg->regions[i], fds->fd[i]);
		if (r < 0) {
			device_unmap_memory(dev);
			return r;
		}
	}
	dev->state = DEVICE_READY;
	return 0;
}

/*
 * OnDemand restore: a uffd made from the /dev/userfaultfd fd vmm-core passed
 * on, with every mapped region registered in missing mode, so that this
 * process's accesses (and the kernel's, a pread() into guest memory) wait
 * for snapshotd to fill the page rather than find it empty.
 */
static int handle_uffd(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
	int uffd;

	if (fds->n != 1 || dev->uffd >= 0 || dev->mem.n_regions == 0)
		return -EINVAL;
	uffd = ioctl(fds->fd[0], USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return -errno;
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		goto fail;
	for (size_t i = 0; i < dev->mem.n_regions; i++) {
		const struct guest_region *g = &dev->mem.regions[i];
		struct uffdio_register reg = {
			.range = { .start = (uint64_t)(uintptr_t)g->host, .len = g->size },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
			goto fail;
	}
	dev->uffd = uffd;
	return 0;
fail:;
	int err = -errno;

	close(uffd);
	return err;
}

static int answer_uffd(struct device *dev, const Cloister__Envelope *req, int error,
		       const char *message)
{
	Cloister__DevUffdReply reply = CLOISTER__DEV_UFFD_REPLY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	uint64_t host[GUEST_MEM_MAX_REGIONS];

	for (size_t i = 0; error == 0 && i < dev->mem.n_regions; i++)
		host[i] = (uint64_t)(uintptr_t)dev->mem.regions[i].host;
	reply.error = error;
	reply.message = (char *)(message ? message : "");
	reply.host_addrs = host;
	reply.n_host_addrs = error == 0 ? dev->mem.n_regions : 0;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_DEV_UFFD_REPLY, &reply.base);
	env.request_id = req->request_id;
	return frame_send(dev->sock, &env, &dev->uffd, error == 0 ? 1 : 0);
}

/* ---- queues from a DevActivate or a saved state ---- */

static bool features_acceptable(const struct device *dev, uint64_t features)
{
	return (features & ~device_offered_features(dev)) == 0 &&
	       (features & (1ull << VIRTIO_F_VERSION_1));
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
			device_queues_stop(dev);
			return r < 0 ? r : -EINVAL;
		}
		cfg.kick_fd = fds->fd[next_fd];
		cfg.call_fd = fds->fd[next_fd + 1];
		r = virtqueue_setup(&dev->queues[cfg.index], &dev->mem, &cfg);
		if (r < 0) {
			device_queues_stop(dev);
			return r;
		}
		fds->fd[next_fd] = fds->fd[next_fd + 1] = -1;
		next_fd += 2;
	}
	if (next_fd != fds->n) {
		device_queues_stop(dev);
		return -EINVAL;
	}
	return 0;
}

/* ---- the lifecycle requests ---- */

static int handle_activate(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds)
{
	const Cloister__DevActivate *msg = env->dev_activate;
	int r;

	if (!features_acceptable(dev, msg->driver_features))
		return -EINVAL;
	dev->driver_features = msg->driver_features;
	r = queues_start(dev, msg->queues, msg->n_queues, fds);
	if (r < 0) {
		dev->driver_features = 0;
		return r;
	}
	dev->state = DEVICE_ACTIVE;
	/* The driver may have made buffers available before DRIVER_OK. */
	device_serve_all_queues(dev);
	return 0;
}

/* Back to READY; a paused device stays paused and resumes as READY. */
static void device_reset(struct device *dev)
{
	device_queues_stop(dev);
	dev->driver_features = 0;
	/* A new driver posts new receive buffers; the input fd is worth a look again. */
	dev->input_blocked = false;
	if (dev->state == DEVICE_PAUSED)
		dev->resume_state = DEVICE_READY;
	else
		dev->state = DEVICE_READY;
}

static int handle_reset(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds)
{
	device_reset(dev);
	return 0;
}

/*
 * Requests are served synchronously, so nothing is in flight but what the
 * kind holds for a slow host end, which ops->pause hands back. While
 * paused no queue and no host fd is polled.
 */
static int handle_pause(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds)
{
	if (dev->state == DEVICE_PAUSED)
		return 0;
	if (dev->ops->pause)
		dev->ops->pause(dev);
	dev->resume_state = dev->state;
	dev->state = DEVICE_PAUSED;
	return 0;
}

static int handle_resume(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds)
{
	if (dev->state != DEVICE_PAUSED)
		return 0;
	dev->state = dev->resume_state;
	/* Kicks that came while paused still sit in the eventfds; this just does not wait for them. */
	device_serve_all_queues(dev);
	return 0;
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

static enum device_state restored_state(const Cloister__DeviceState *s)
{
	if (s->status & VIRTIO_STATUS_NEEDS_RESET)
		return DEVICE_BROKEN;
	return s->status & VIRTIO_STATUS_DRIVER_OK ? DEVICE_ACTIVE : DEVICE_READY;
}

/* A restored device waits for DevResume, like the rest of the paused VM. */
static int handle_restore(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds)
{
	const Cloister__DeviceState *s = env->dev_restore->state;
	int r = 0;

	if (!s)
		return -EINVAL;
	r = restore_validate(dev, s);
	if (r < 0)
		return r;
	device_reset(dev);
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
	dev->resume_state = restored_state(s);
	dev->state = DEVICE_PAUSED;
	return 0;
}

/* ---- requests with their own answer ---- */

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

static int build_save_state(struct device *dev, Cloister__DeviceState *state,
			    Cloister__VirtqueueState *qs, Cloister__VirtqueueState **qptrs)
{
	if (!dev->ops->save)
		return -EOPNOTSUPP;
	state->kind = (char *)dev->ops->kind;
	state->id = (char *)dev->id;
	state->driver_features = dev->driver_features;
	state->status = dev->resume_state == DEVICE_BROKEN ? VIRTIO_STATUS_NEEDS_RESET : 0;
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

/* DevSaveReply: the state when error is 0 and building it works, the error otherwise. */
static int answer_save(struct device *dev, const Cloister__Envelope *req, int error,
		       const char *message)
{
	Cloister__DeviceState state = CLOISTER__DEVICE_STATE__INIT;
	Cloister__VirtqueueState qs[DEVICE_MAX_QUEUES];
	Cloister__VirtqueueState *qptrs[DEVICE_MAX_QUEUES];
	Cloister__DevSaveReply reply = CLOISTER__DEV_SAVE_REPLY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	int r;

	if (error == 0) {
		error = build_save_state(dev, &state, qs, qptrs);
		if (error < 0) {
			log_error("cannot save: %s", strerror(-error));
			message = "the device cannot save its state";
		}
	}
	reply.error = error;
	reply.message = (char *)(message ? message : "");
	reply.state = error < 0 ? NULL : &state;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY, &reply.base);
	env.request_id = req->request_id;
	r = frame_send(dev->sock, &env, NULL, 0);
	free(state.blob.data);
	return r;
}

static int answer_counters(struct device *dev, const Cloister__Envelope *req, int error,
			   const char *message)
{
	Cloister__CounterValue values[DEVICE_MAX_COUNTERS], *ptrs[DEVICE_MAX_COUNTERS];
	Cloister__DevCountersReply reply = CLOISTER__DEV_COUNTERS_REPLY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	const char *const *names = dev->ops->counter_names;

	for (size_t i = 0; error == 0 && names && names[i] && i < DEVICE_MAX_COUNTERS; i++) {
		cloister__counter_value__init(&values[i]);
		values[i].name = (char *)names[i];
		values[i].value = dev->counters[i];
		ptrs[i] = &values[i];
		reply.n_counters++;
	}
	reply.counters = ptrs;
	reply.error = error;
	reply.message = (char *)(message ? message : "");
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_DEV_COUNTERS_REPLY, &reply.base);
	env.request_id = req->request_id;
	return frame_send(dev->sock, &env, NULL, 0);
}

/* ---- the table ---- */

#define IN(s) (1u << (s))
#define ONCE_RUNNING (IN(DEVICE_READY) | IN(DEVICE_ACTIVE) | IN(DEVICE_BROKEN) | IN(DEVICE_PAUSED))
#define ALWAYS (IN(DEVICE_CONFIGURING) | ONCE_RUNNING)

struct control_rule {
	Cloister__Envelope__MsgCase msg;
	uint32_t states;	/* IN(state) for each state that accepts msg */
	/* Does the work: 0 or -errno, answered with a plain Reply. NULL when answer does it. */
	int (*apply)(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds);
	/* For a message with its own reply type: does the work unless error, and answers. */
	int (*answer)(struct device *dev, const Cloister__Envelope *req, int error,
		      const char *message);
};

/*
 * Pause and resume are accepted wherever the other is, and are no-ops when
 * the device is already there: a core undoing a half-done pause may resume
 * every device, whichever had paused.
 */
static const struct control_rule control_rules[] = {
	{ CLOISTER__ENVELOPE__MSG_DEV_MEMORY, IN(DEVICE_CONFIGURING), handle_memory, NULL },
	{ CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE, IN(DEVICE_READY), handle_activate, NULL },
	{ CLOISTER__ENVELOPE__MSG_DEV_RESET, ONCE_RUNNING, handle_reset, NULL },
	{ CLOISTER__ENVELOPE__MSG_DEV_PAUSE, ONCE_RUNNING, handle_pause, NULL },
	{ CLOISTER__ENVELOPE__MSG_DEV_RESUME, ONCE_RUNNING, handle_resume, NULL },
	{ CLOISTER__ENVELOPE__MSG_DEV_SAVE, IN(DEVICE_PAUSED), NULL, answer_save },
	{ CLOISTER__ENVELOPE__MSG_DEV_RESTORE, IN(DEVICE_READY) | IN(DEVICE_PAUSED), handle_restore,
	  NULL },
	{ CLOISTER__ENVELOPE__MSG_DEV_COUNTERS, ALWAYS, NULL, answer_counters },
	{ CLOISTER__ENVELOPE__MSG_DEV_UFFD, IN(DEVICE_READY) | IN(DEVICE_PAUSED), handle_uffd,
	  answer_uffd },
};

static const struct control_rule *control_rule_for(Cloister__Envelope__MsgCase msg)
{
	for (size_t i = 0; i < ARRAY_SIZE(control_rules); i++)
		if (control_rules[i].msg == msg)
			return &control_rules[i];
	return NULL;
}

const char *device_state_name(enum device_state state)
{
	static const char *const names[DEVICE_STATE_COUNT] = {
		[DEVICE_CONFIGURING] = "configuring",
		[DEVICE_READY] = "ready",
		[DEVICE_ACTIVE] = "active",
		[DEVICE_BROKEN] = "broken",
		[DEVICE_PAUSED] = "paused",
	};

	return (unsigned)state < DEVICE_STATE_COUNT ? names[state] : "unknown";
}

int device_state_check(enum device_state state, Cloister__Envelope__MsgCase msg)
{
	const struct control_rule *rule = control_rule_for(msg);

	if (!rule)
		return -EPERM;
	if ((unsigned)state >= DEVICE_STATE_COUNT || !(rule->states & IN(state)))
		return -EBUSY;
	return 0;
}

/* ---- receiving and answering ---- */

static int recv_control(struct device *dev, int timeout_ms, Cloister__Envelope **ret_env,
			struct msg_fds *ret_fds)
{
	return frame_recv_timeout(dev->sock, timeout_ms, ret_env, ret_fds->fd, MAX_CONTROL_FDS,
				  &ret_fds->n);
}

/* Checks env against the table, runs it if allowed, answers either way. */
static int serve_request(struct device *dev, const Cloister__Envelope *env, struct msg_fds *fds,
			 int *ret_error)
{
	const struct control_rule *rule = control_rule_for(env->msg_case);
	const char *name = frame_msg_name(env);
	char why[160];
	int err = device_state_check(dev->state, env->msg_case);

	if (!rule)
		snprintf(why, sizeof(why), "%s is not a request a device serves", name);
	else if (err < 0)
		snprintf(why, sizeof(why), "%s is not accepted while the device is %s", name,
			 device_state_name(dev->state));
	else if (rule->apply && (err = rule->apply(dev, env, fds)) < 0)
		snprintf(why, sizeof(why), "%s failed: %s", name, strerror(-err));
	/* A guest can make some of these fail at will (a bad queue layout): bounded. */
	if (err < 0)
		log_ratelimited(LOG_LVL_ERROR, "refused: %s", why);
	*ret_error = err;
	if (rule && rule->answer)
		return rule->answer(dev, env, err, err < 0 ? why : NULL);
	return frame_reply_to(dev->sock, env, err, err < 0 ? why : NULL);
}

int device_control_handle(struct device *dev, int timeout_ms, int *ret_error,
			  Cloister__Envelope__MsgCase *ret_msg)
{
	Cloister__Envelope *env = NULL;
	struct msg_fds fds = { .n = 0 };
	int err = 0, r;

	r = recv_control(dev, timeout_ms, &env, &fds);
	if (r == -EPIPE)
		return 1;
	if (r == -EPROTO) {
		log_ratelimited(LOG_LVL_ERROR, "malformed frame from the core");
		if (ret_error)
			*ret_error = r;
		if (ret_msg)
			*ret_msg = CLOISTER__ENVELOPE__MSG__NOT_SET;
		return frame_reply_send(dev->sock, r, "malformed frame");
	}
	if (r < 0)
		return r;
	r = serve_request(dev, env, &fds, &err);
	if (ret_error)
		*ret_error = err;
	if (ret_msg)
		*ret_msg = env->msg_case;
	msg_fds_close(&fds);
	frame_free(env);
	return r;
}

/* ---- the handshake ---- */

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
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_DEV_INFO, &info.base);
	return frame_send(dev->sock, &env, NULL, 0);
}

static int64_t ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Serves requests (only DevMemory and DevCounters are accepted) until the memory table came. */
static int await_memory(struct device *dev)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += HANDSHAKE_TIMEOUT_MS / 1000;
	while (dev->state == DEVICE_CONFIGURING) {
		Cloister__Envelope__MsgCase msg = CLOISTER__ENVELOPE__MSG__NOT_SET;
		int64_t left = ms_left(&deadline);
		int err = 0, r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = device_control_handle(dev, (int)left, &err, &msg);
		if (r != 0)
			return r < 0 ? r : -EPIPE;
		/* Without its memory the device has nothing to serve. */
		if (msg == CLOISTER__ENVELOPE__MSG_DEV_MEMORY && err < 0)
			return err;
	}
	return 0;
}

int device_handshake(struct device *dev)
{
	int r;

	r = frame_hello_send(dev->sock, CLOISTER__ROLE__ROLE_DEVICE);
	if (r >= 0)
		r = frame_hello_expect(dev->sock, CLOISTER__ROLE__ROLE_VMM, HANDSHAKE_TIMEOUT_MS);
	if (r >= 0)
		r = send_dev_info(dev);
	if (r < 0) {
		log_error("handshake with the core failed: %s", strerror(-r));
		return r;
	}
	r = await_memory(dev);
	if (r < 0)
		log_error("no usable guest memory table from the core: %s", strerror(-r));
	return r;
}
