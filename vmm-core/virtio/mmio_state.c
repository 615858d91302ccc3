/* SPDX-License-Identifier: Apache-2.0 */
/* The transport's pause, resume, save and restore, and the transport as a machine component. */
#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "component.h"
#include "frame.h"
#include "log.h"
#include "mmio_priv.h"

/* ---- pause, resume, save, restore ---- */

/*
 * A request that timed out still reaches the device when it wakes: follow it
 * with its opposite, unanswered, so the device ends where the transport is.
 */
static void device_undo_late(struct virtio_mmio_dev *d, Cloister__Envelope__MsgCase opposite)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	ProtobufCMessage body;

	if (frame_envelope_empty(&env, opposite, &body) < 0 || mmio_device_send(d, &env, NULL, 0) < 0)
		return;
	d->owed++;
}

static int pause_or_resume(struct virtio_mmio_dev *d, Cloister__Envelope__MsgCase which,
			   Cloister__Envelope__MsgCase opposite)
{
	int r;

	pthread_mutex_lock(&d->lock);
	r = mmio_device_request_empty(d, which, true);
	if (r == -ETIMEDOUT)
		device_undo_late(d, opposite);
	pthread_mutex_unlock(&d->lock);
	return r;
}

int virtio_mmio_pause(struct virtio_mmio_dev *d)
{
	return pause_or_resume(d, CLOISTER__ENVELOPE__MSG_DEV_PAUSE,
			       CLOISTER__ENVELOPE__MSG_DEV_RESUME);
}

int virtio_mmio_resume(struct virtio_mmio_dev *d)
{
	return pause_or_resume(d, CLOISTER__ENVELOPE__MSG_DEV_RESUME,
			       CLOISTER__ENVELOPE__MSG_DEV_PAUSE);
}

/* Takes the device's ring positions from its saved state. */
static int take_device_queues(struct virtio_mmio_dev *d, const Cloister__DeviceState *s)
{
	for (size_t i = 0; i < s->n_queues; i++) {
		const Cloister__VirtqueueState *qs = s->queues[i];

		if (qs->index >= d->num_queues || qs->last_avail_idx > UINT16_MAX ||
		    qs->used_idx > UINT16_MAX)
			return -EPROTO;
		d->queues[qs->index].last_avail_idx = qs->last_avail_idx;
		d->queues[qs->index].used_idx = qs->used_idx;
	}
	return 0;
}

/* Packs and unpacks, so the caller gets one message that owns all its memory. */
static int state_clone(const Cloister__DeviceState *s, Cloister__DeviceState **ret)
{
	size_t len = cloister__device_state__get_packed_size(s);
	_cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
	Cloister__DeviceState *copy;

	if (!buf)
		return -ENOMEM;
	cloister__device_state__pack(s, buf);
	copy = cloister__device_state__unpack(NULL, len, buf);
	if (!copy)
		return -ENOMEM;
	*ret = copy;
	return 0;
}

static int save_locked(struct virtio_mmio_dev *d, Cloister__DeviceState **ret_state)
{
	Cloister__DevSave req = CLOISTER__DEV_SAVE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply = NULL;
	Cloister__DeviceState s = CLOISTER__DEVICE_STATE__INIT;
	Cloister__VirtqueueState qs[VIRTIO_MMIO_MAX_QUEUES];
	Cloister__VirtqueueState *qptrs[VIRTIO_MMIO_MAX_QUEUES];
	const Cloister__DeviceState *ds;
	int fds[2 * VIRTIO_MMIO_MAX_QUEUES];
	int r;

	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_DEV_SAVE, &req.base);
	r = mmio_device_exchange(d, &env, NULL, 0, &reply);
	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY ||
	    reply->dev_save_reply->error > 0 ||
	    (reply->dev_save_reply->error == 0 && !reply->dev_save_reply->state)) {
		frame_free(reply);
		mmio_mark_broken(d, -EPROTO, "dev_save");
		return -EPROTO;
	}
	r = reply->dev_save_reply->error;
	ds = reply->dev_save_reply->state;
	if (r >= 0)
		r = take_device_queues(d, ds);
	if (r >= 0) {
		d->status |= ds->status & VIRTIO_STATUS_NEEDS_RESET;
		mmio_build_state(d, &s, qs, qptrs, fds);
		s.requests_served = ds->requests_served;
		s.bytes_served = ds->bytes_served;
		s.blob = ds->blob;
		r = state_clone(&s, ret_state);
	} else {
		log_error("device %s: save failed: %s", d->id, strerror(-r));
	}
	frame_free(reply);
	return r;
}

int virtio_mmio_save(struct virtio_mmio_dev *d, Cloister__DeviceState **ret_state)
{
	int r;

	pthread_mutex_lock(&d->lock);
	r = save_locked(d, ret_state);
	pthread_mutex_unlock(&d->lock);
	return r;
}

void virtio_mmio_state_free(Cloister__DeviceState *s)
{
	if (s)
		cloister__device_state__free_unpacked(s, NULL);
}

static int restore_validate_queues(const struct virtio_mmio_dev *d, const Cloister__DeviceState *s)
{
	uint32_t seen = 0;

	if (s->n_queues > d->num_queues)
		return -EINVAL;
	for (size_t i = 0; i < s->n_queues; i++) {
		const Cloister__VirtqueueState *q = s->queues[i];

		if (q->index >= d->num_queues || (seen & (1u << q->index)))
			return -EINVAL;
		seen |= 1u << q->index;
		if (q->last_avail_idx > UINT16_MAX || q->used_idx > UINT16_MAX)
			return -EINVAL;
		if (q->ready &&
		    !mmio_queue_layout_valid(d, q->size, q->desc_addr, q->avail_addr, q->used_addr))
			return -EINVAL;
	}
	return 0;
}

static int restore_validate(const struct virtio_mmio_dev *d, const Cloister__DeviceState *s)
{
	if (strcmp(s->kind, d->kind) != 0 || strcmp(s->id, d->id) != 0)
		return -EINVAL;
	/* The device process must offer what the saved driver negotiated with. */
	if (s->device_features != d->device_features)
		return -EINVAL;
	if (s->status & ~STATUS_KNOWN_BITS)
		return -EINVAL;
	if ((s->status & VIRTIO_STATUS_FEATURES_OK) && !mmio_features_valid(d, s->driver_features))
		return -EINVAL;
	if ((s->status & VIRTIO_STATUS_DRIVER_OK) && !(s->status & VIRTIO_STATUS_FEATURES_OK))
		return -EINVAL;
	if (s->interrupt_status & ~(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG))
		return -EINVAL;
	return restore_validate_queues(d, s);
}

static void restore_transport(struct virtio_mmio_dev *d, const Cloister__DeviceState *s)
{
	d->driver_features = s->driver_features;
	d->device_features_sel = s->device_features_sel;
	d->driver_features_sel = s->driver_features_sel;
	d->queue_sel = s->queue_sel;
	d->config_generation = s->config_generation;
	for (size_t i = 0; i < s->n_queues; i++) {
		const Cloister__VirtqueueState *q = s->queues[i];

		d->queues[q->index] = (struct mmio_queue){
			.num = q->size,
			.ready = q->ready,
			.desc = q->desc_addr,
			.driver = q->avail_addr,
			.device = q->used_addr,
			.last_avail_idx = q->last_avail_idx,
			.used_idx = q->used_idx,
			.kick_fd = -1,
			.call_fd = -1,
		};
	}
}

static int send_restore(struct virtio_mmio_dev *d, const Cloister__DeviceState *saved)
{
	Cloister__DeviceState s = CLOISTER__DEVICE_STATE__INIT;
	Cloister__VirtqueueState qs[VIRTIO_MMIO_MAX_QUEUES];
	Cloister__VirtqueueState *qptrs[VIRTIO_MMIO_MAX_QUEUES];
	Cloister__DevRestore msg = CLOISTER__DEV_RESTORE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	int fds[2 * VIRTIO_MMIO_MAX_QUEUES];
	size_t n_fds = mmio_build_state(d, &s, qs, qptrs, fds);

	s.requests_served = saved->requests_served;
	s.bytes_served = saved->bytes_served;
	s.blob = saved->blob;
	msg.state = &s;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_DEV_RESTORE, &msg.base);
	return mmio_device_request(d, &env, fds, n_fds);
}

static int restore_locked(struct virtio_mmio_dev *d, const Cloister__DeviceState *s)
{
	int r;

	r = restore_validate(d, s);
	if (r < 0) {
		log_error("device %s: saved state refused", d->id);
		return r;
	}
	mmio_transport_reset(d);
	restore_transport(d, s);
	d->status = s->status;
	if (s->status & VIRTIO_STATUS_DRIVER_OK) {
		for (uint32_t i = 0; i < d->num_queues && r >= 0; i++)
			if (d->queues[i].ready)
				r = mmio_queue_eventfds(d, &d->queues[i], i);
	}
	if (r >= 0)
		r = send_restore(d, s);
	if (r < 0) {
		mmio_queues_close(d);
		d->status |= VIRTIO_STATUS_NEEDS_RESET;
		return r;
	}
	d->interrupt_status = s->interrupt_status;
	mmio_irq_update(d);
	return 0;
}

int virtio_mmio_restore(struct virtio_mmio_dev *d, const Cloister__DeviceState *state)
{
	int r;

	pthread_mutex_lock(&d->lock);
	r = restore_locked(d, state);
	pthread_mutex_unlock(&d->lock);
	return r;
}

static int uffd_locked(struct virtio_mmio_dev *d, int dev_fd, uint64_t *host_addrs,
		       size_t n_regions)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__DevUffd req = CLOISTER__DEV_UFFD__INIT;
	Cloister__Envelope *reply = NULL;
	const Cloister__DevUffdReply *ur;
	int fds[1] = { -1 };
	size_t n_fds = 0;
	int r;

	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_DEV_UFFD, &req.base);
	r = mmio_device_exchange_fds(d, &env, &dev_fd, 1, &reply, fds, 1, &n_fds);
	if (r < 0)
		return r;
	ur = reply->msg_case == CLOISTER__ENVELOPE__MSG_DEV_UFFD_REPLY ? reply->dev_uffd_reply : NULL;
	if (!ur || ur->error > 0 || (ur->error == 0 && (n_fds != 1 || ur->n_host_addrs != n_regions))) {
		r = -EPROTO;
		mmio_mark_broken(d, r, "dev_uffd");
	} else if (ur->error < 0) {
		r = ur->error;
		log_error("device %s cannot register its memory for faults: %s", d->id, ur->message);
	} else {
		memcpy(host_addrs, ur->host_addrs, n_regions * sizeof(host_addrs[0]));
		r = TAKE_FD(fds[0]);
	}
	if (fds[0] >= 0)
		close(fds[0]);
	frame_free(reply);
	return r;
}

int virtio_mmio_uffd(struct virtio_mmio_dev *d, int dev_fd, uint64_t *host_addrs, size_t n_regions)
{
	int r;

	pthread_mutex_lock(&d->lock);
	r = uffd_locked(d, dev_fd, host_addrs, n_regions);
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* ---- the transport as one of the machine's components ---- */

static void component_error(int r, const char *what, char *err, size_t errlen)
{
	if (r == -ETIMEDOUT)
		snprintf(err, errlen, "the device process did not answer the %s within %d ms", what,
			 VIRTIO_MMIO_TIMEOUT_MS);
	else
		snprintf(err, errlen, "%s failed: %s", what, strerror(-r));
}

static int component_pause(void *obj, char *err, size_t errlen)
{
	int r = virtio_mmio_pause(obj);

	if (r < 0)
		component_error(r, "pause", err, errlen);
	return r;
}

static int component_resume(void *obj, char *err, size_t errlen)
{
	int r = virtio_mmio_resume(obj);

	if (r < 0)
		component_error(r, "resume", err, errlen);
	return r;
}

static int component_save(void *obj, Cloister__VmState *state, char *err, size_t errlen)
{
	Cloister__DeviceState **grown, *ds = NULL;
	int r;

	grown = realloc(state->devices, (state->n_devices + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	state->devices = grown;
	r = virtio_mmio_save(obj, &ds);
	if (r < 0) {
		component_error(r, "save", err, errlen);
		return r;
	}
	state->devices[state->n_devices++] = ds;
	return 0;
}

static int component_restore(void *obj, const Cloister__VmState *state, char *err, size_t errlen)
{
	struct virtio_mmio_dev *d = obj;
	const Cloister__DeviceState *ds = NULL;
	int r;

	for (size_t i = 0; i < state->n_devices; i++) {
		if (state->devices[i]->id && strcmp(state->devices[i]->id, d->id) == 0) {
			if (ds) {
				snprintf(err, errlen, "the snapshot has two states for it");
				return -EINVAL;
			}
			ds = state->devices[i];
		}
	}
	if (!ds) {
		snprintf(err, errlen, "no state for this device in the snapshot");
		return -EINVAL;
	}
	r = virtio_mmio_restore(d, ds);
	if (r == -EINVAL)
		snprintf(err, errlen, "saved transport state refused (kind, features, status or queues)");
	else if (r < 0)
		component_error(r, "restore", err, errlen);
	return r;
}

const struct component_ops virtio_mmio_component_ops = {
	.pause = component_pause,
	.resume = component_resume,
	.save = component_save,
	.restore = component_restore,
};
