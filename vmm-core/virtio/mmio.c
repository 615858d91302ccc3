/* SPDX-License-Identifier: Apache-2.0 */
#include "mmio.h"
#include "mmio_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "frame.h"
#include "layout.h"
#include "log.h"

/* ---- interrupts ---- */

void mmio_irq_update(struct virtio_mmio_dev *d)
{
	if (d->set_irq && d->irq)
		d->set_irq(d->irq_opaque, d->irq, d->interrupt_status != 0);
}

static void irq_raise(struct virtio_mmio_dev *d, uint32_t bits)
{
	d->interrupt_status |= bits;
	mmio_irq_update(d);
}

/* The device can no longer be trusted to answer: tell the driver (virtio 1.2, 2.1.2). */
void mmio_mark_broken(struct virtio_mmio_dev *d, int err, const char *what)
{
	if (!d->broken)
		log_error("device %s: %s failed (%s), needs reset", d->id, what, strerror(-err));
	d->broken = true;
	/* A late answer must not be taken for the reply to a later request. */
	shutdown(d->sock, SHUT_RDWR);
	d->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (d->status & VIRTIO_STATUS_DRIVER_OK)
		irq_raise(d, VIRTIO_MMIO_INT_CONFIG);
}

static void queue_close_fds(struct virtio_mmio_dev *d, struct mmio_queue *q)
{
	/* The device holds the same file, so closing alone would not take it out of epoll. */
	if (q->call_fd >= 0) {
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, q->call_fd, NULL);
		close(q->call_fd);
	}
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = q->call_fd = -1;
}

static void queue_signalled(struct virtio_mmio_dev *d, uint32_t index)
{
	struct mmio_queue *q;
	uint64_t v;

	if (index >= d->num_queues)
		return;
	q = &d->queues[index];
	/* The event may predate a reset that closed the fd: then there is nothing to read. */
	if (q->call_fd < 0 || read(q->call_fd, &v, sizeof(v)) != sizeof(v))
		return;
	if (d->status & VIRTIO_STATUS_DRIVER_OK)
		irq_raise(d, VIRTIO_MMIO_INT_VRING);
}

static void *irq_thread(void *arg)
{
	struct virtio_mmio_dev *d = arg;

	for (;;) {
		struct epoll_event ev[8];
		int n = epoll_wait(d->epfd, ev, ARRAY_SIZE(ev), -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		pthread_mutex_lock(&d->lock);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u32 == TAG_STOP) {
				pthread_mutex_unlock(&d->lock);
				return NULL;
			}
			if (ev[i].data.u32 == TAG_SOCK) {
				epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->sock, NULL);
				mmio_mark_broken(d, -EPIPE, "control socket");
				continue;
			}
			queue_signalled(d, ev[i].data.u32);
		}
		pthread_mutex_unlock(&d->lock);
	}
}

static int epoll_add(int epfd, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event ev = { .events = events, .data.u32 = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int irq_thread_start(struct virtio_mmio_dev *d)
{
	int r;

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0)
		return -errno;
	d->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->stop_fd < 0)
		return -errno;
	r = epoll_add(d->epfd, d->stop_fd, EPOLLIN, TAG_STOP);
	if (r >= 0)
		r = epoll_add(d->epfd, d->sock, EPOLLRDHUP, TAG_SOCK);
	if (r < 0)
		return r;
	r = -pthread_create(&d->thread, NULL, irq_thread, d);
	if (r < 0)
		return r;
	d->thread_started = true;
	return 0;
}

/* ---- validation of what the guest (or a snapshot) set up ---- */

static bool range_in_ram(const struct virtio_mmio_dev *d, uint64_t gpa, uint64_t len)
{
	for (size_t i = 0; i < d->n_mem; i++) {
		const struct mmio_region *r = &d->mem[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return true;
	}
	return false;
}

bool mmio_queue_layout_valid(const struct virtio_mmio_dev *d, uint32_t num, uint64_t desc,
			       uint64_t driver, uint64_t device)
{
	if (num == 0 || num > d->max_queue_size || (num & (num - 1)))
		return false;
	if (desc % 16 || driver % 2 || device % 4)
		return false;
	return range_in_ram(d, desc, 16ull * num) && range_in_ram(d, driver, 6ull + 2ull * num) &&
	       range_in_ram(d, device, 6ull + 8ull * num);
}

bool mmio_features_valid(const struct virtio_mmio_dev *d, uint64_t driver_features)
{
	return (driver_features & ~d->device_features) == 0 &&
	       (driver_features & (1ull << VIRTIO_F_VERSION_1));
}

/* ---- transport state ---- */

void mmio_queues_close(struct virtio_mmio_dev *d)
{
	for (uint32_t i = 0; i < d->num_queues; i++)
		queue_close_fds(d, &d->queues[i]);
}

void mmio_transport_reset(struct virtio_mmio_dev *d)
{
	mmio_queues_close(d);
	for (uint32_t i = 0; i < d->num_queues; i++)
		d->queues[i] = (struct mmio_queue){ .kick_fd = -1, .call_fd = -1 };
	d->driver_features = 0;
	d->device_features_sel = d->driver_features_sel = d->queue_sel = 0;
	d->status = 0;
	d->interrupt_status = 0;
	mmio_irq_update(d);
}

int mmio_queue_eventfds(struct virtio_mmio_dev *d, struct mmio_queue *q, uint32_t index)
{
	q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->kick_fd < 0 || q->call_fd < 0) {
		int r = -errno;

		queue_close_fds(d, q);
		return r;
	}
	return epoll_add(d->epfd, q->call_fd, EPOLLIN, index);
}

/*
 * Fills state with the transport's view; queue entries go in qs[] (one per
 * queue), and each ready queue's kick and call fds in order in fds[].
 */
size_t mmio_build_state(const struct virtio_mmio_dev *d, Cloister__DeviceState *s,
			  Cloister__VirtqueueState *qs, Cloister__VirtqueueState **qptrs, int *fds)
{
	size_t n_fds = 0;

	s->kind = d->kind;
	s->id = d->id;
	s->device_features = d->device_features;
	s->driver_features = d->driver_features;
	s->device_features_sel = d->device_features_sel;
	s->driver_features_sel = d->driver_features_sel;
	s->status = d->status;
	s->queue_sel = d->queue_sel;
	s->interrupt_status = d->interrupt_status;
	s->config_generation = d->config_generation;
	s->n_queues = d->num_queues;
	s->queues = qptrs;
	for (uint32_t i = 0; i < d->num_queues; i++) {
		const struct mmio_queue *q = &d->queues[i];

		cloister__virtqueue_state__init(&qs[i]);
		qs[i].index = i;
		qs[i].size = q->num;
		qs[i].ready = q->ready;
		qs[i].desc_addr = q->desc;
		qs[i].avail_addr = q->driver;
		qs[i].used_addr = q->device;
		qs[i].last_avail_idx = q->last_avail_idx;
		qs[i].used_idx = q->used_idx;
		qptrs[i] = &qs[i];
		if (q->ready && q->kick_fd >= 0) {
			fds[n_fds++] = q->kick_fd;
			fds[n_fds++] = q->call_fd;
		}
	}
	return n_fds;
}

static int send_activate(struct virtio_mmio_dev *d)
{
	Cloister__DeviceState s = CLOISTER__DEVICE_STATE__INIT;
	Cloister__VirtqueueState qs[VIRTIO_MMIO_MAX_QUEUES];
	Cloister__VirtqueueState *qptrs[VIRTIO_MMIO_MAX_QUEUES];
	Cloister__VirtqueueState *ready[VIRTIO_MMIO_MAX_QUEUES];
	Cloister__DevActivate act = CLOISTER__DEV_ACTIVATE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	int fds[2 * VIRTIO_MMIO_MAX_QUEUES];
	size_t n_fds = mmio_build_state(d, &s, qs, qptrs, fds);

	act.driver_features = d->driver_features;
	act.queues = ready;
	for (uint32_t i = 0; i < d->num_queues; i++)
		if (qs[i].ready)
			ready[act.n_queues++] = &qs[i];
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE, &act.base);
	return mmio_device_request(d, &env, fds, n_fds);
}

static int activate(struct virtio_mmio_dev *d)
{
	int r = 0;

	for (uint32_t i = 0; i < d->num_queues && r >= 0; i++) {
		d->queues[i].last_avail_idx = d->queues[i].used_idx = 0;
		if (d->queues[i].ready)
			r = mmio_queue_eventfds(d, &d->queues[i], i);
	}
	if (r >= 0)
		r = send_activate(d);
	if (r < 0)
		mmio_queues_close(d);
	return r;
}

/* ---- registers ---- */

static uint32_t reg_read(struct virtio_mmio_dev *d, uint64_t offset)
{
	const struct mmio_queue *q = d->queue_sel < d->num_queues ? &d->queues[d->queue_sel] : NULL;

	switch (offset) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION_REG:
		return VIRTIO_MMIO_VERSION;
	case VIRTIO_MMIO_DEVICE_ID:
		return d->device_id;
	case VIRTIO_MMIO_VENDOR_ID_REG:
		return VIRTIO_MMIO_VENDOR_ID;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (d->device_features_sel > 1)
			return 0;
		return (uint32_t)(d->device_features >> (32 * d->device_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? d->max_queue_size : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return q ? q->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return d->interrupt_status;
	case VIRTIO_MMIO_STATUS:
		return d->status;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		/* No shared memory regions: length reads as -1 (4.2.2). */
		return 0xffffffffu;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return d->config_generation;
	default:
		return 0;
	}
}

static void write_driver_features(struct virtio_mmio_dev *d, uint32_t val)
{
	/* Features are fixed once FEATURES_OK is set. */
	if (d->driver_features_sel > 1 || (d->status & VIRTIO_STATUS_FEATURES_OK))
		return;
	if (d->driver_features_sel == 0)
		d->driver_features = (d->driver_features & ~0xffffffffull) | val;
	else
		d->driver_features = (d->driver_features & 0xffffffffull) | ((uint64_t)val << 32);
}

static void write_queue_ready(struct virtio_mmio_dev *d, struct mmio_queue *q, uint32_t val)
{
	if (!val) {
		q->ready = false;
		return;
	}
	if (!mmio_queue_layout_valid(d, q->num, q->desc, q->driver, q->device)) {
		log_debug("device %s: queue %u refused (size %u)", d->id, d->queue_sel, q->num);
		return;
	}
	q->ready = true;
}

static void set_addr_half(uint64_t *addr, bool high, uint32_t val)
{
	if (high)
		*addr = (*addr & 0xffffffffull) | ((uint64_t)val << 32);
	else
		*addr = (*addr & ~0xffffffffull) | val;
}

/* Queue registers; only for an existing queue that is not live yet. */
static void write_queue_reg(struct virtio_mmio_dev *d, uint64_t offset, uint32_t val)
{
	struct mmio_queue *q;

	if (d->queue_sel >= d->num_queues || (d->status & VIRTIO_STATUS_DRIVER_OK))
		return;
	q = &d->queues[d->queue_sel];
	if (offset == VIRTIO_MMIO_QUEUE_READY) {
		write_queue_ready(d, q, val);
		return;
	}
	if (q->ready)
		return;
	switch (offset) {
	case VIRTIO_MMIO_QUEUE_NUM:
		q->num = val;
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		set_addr_half(&q->desc, offset == VIRTIO_MMIO_QUEUE_DESC_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		set_addr_half(&q->driver, offset == VIRTIO_MMIO_QUEUE_DRIVER_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		set_addr_half(&q->device, offset == VIRTIO_MMIO_QUEUE_DEVICE_HIGH, val);
		break;
	}
}

static void queue_notify(struct virtio_mmio_dev *d, uint32_t index)
{
	uint64_t one = 1;

	if (index >= d->num_queues || d->queues[index].kick_fd < 0)
		return;
	/* A full counter already means "kicked"; EAGAIN loses nothing. */
	(void)!write(d->queues[index].kick_fd, &one, sizeof(one));
}

static void reset_device(struct virtio_mmio_dev *d)
{
	int r = mmio_device_request_empty(d, CLOISTER__ENVELOPE__MSG_DEV_RESET, false);

	mmio_transport_reset(d);
	/* A device that cannot even reset stays flagged, so the driver does not bring it up again. */
	if (r < 0)
		d->status = VIRTIO_STATUS_NEEDS_RESET;
}

static void write_status(struct virtio_mmio_dev *d, uint32_t val)
{
	uint32_t keep = d->status & VIRTIO_STATUS_NEEDS_RESET;
	uint32_t added;

	if (val == 0) {
		reset_device(d);
		return;
	}
	val &= STATUS_KNOWN_BITS & ~VIRTIO_STATUS_NEEDS_RESET;
	/* Only a reset clears status bits (2.1.1). */
	if (d->status & ~val & ~VIRTIO_STATUS_NEEDS_RESET)
		return;
	added = val & ~d->status;
	if ((added & VIRTIO_STATUS_FEATURES_OK) && !mmio_features_valid(d, d->driver_features)) {
		log_debug("device %s: feature set %#llx refused", d->id,
			  (unsigned long long)d->driver_features);
		val &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	if (added & VIRTIO_STATUS_DRIVER_OK) {
		if (!(val & VIRTIO_STATUS_FEATURES_OK) || keep) {
			val &= ~VIRTIO_STATUS_DRIVER_OK;
		} else if (activate(d) < 0) {
			val &= ~VIRTIO_STATUS_DRIVER_OK;
			keep = VIRTIO_STATUS_NEEDS_RESET;
		}
	}
	d->status = val | keep | (d->status & VIRTIO_STATUS_NEEDS_RESET);
}

static void reg_write(struct virtio_mmio_dev *d, uint64_t offset, uint32_t val)
{
	switch (offset) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		d->device_features_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		write_driver_features(d, val);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		d->driver_features_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		d->queue_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
	case VIRTIO_MMIO_QUEUE_READY:
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		write_queue_reg(d, offset, val);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		queue_notify(d, val);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		d->interrupt_status &= ~val;
		mmio_irq_update(d);
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(d, val);
		break;
	default:
		log_debug("device %s: write to %#llx ignored", d->id, (unsigned long long)offset);
		break;
	}
}

static uint64_t config_read(const struct virtio_mmio_dev *d, uint64_t off, unsigned size)
{
	uint64_t val = 0;

	if (off > d->config_len || size > d->config_len - off)
		return 0;
	/* Config space is little-endian, as is every host we build for. */
	memcpy(&val, d->config + off, size);
	return val;
}

static bool access_size_valid(unsigned size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

int virtio_mmio_read(struct virtio_mmio_dev *d, uint64_t offset, unsigned size, uint64_t *ret_val)
{
	uint64_t val = 0;

	if (!access_size_valid(size) || offset >= LAYOUT_VIRTIO_SLOT_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	if (offset >= VIRTIO_MMIO_CONFIG)
		val = config_read(d, offset - VIRTIO_MMIO_CONFIG, size);
	else if (size == 4 && offset % 4 == 0)
		val = reg_read(d, offset);
	else
		log_debug("device %s: %u-byte read at %#llx", d->id, size, (unsigned long long)offset);
	pthread_mutex_unlock(&d->lock);
	*ret_val = val;
	return 0;
}

int virtio_mmio_write(struct virtio_mmio_dev *d, uint64_t offset, unsigned size, uint64_t val)
{
	if (!access_size_valid(size) || offset >= LAYOUT_VIRTIO_SLOT_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	/* Config writes are dropped: no device kind here has writable config fields yet. */
	if (offset < VIRTIO_MMIO_CONFIG && size == 4 && offset % 4 == 0)
		reg_write(d, offset, (uint32_t)val);
	else
		log_debug("device %s: %u-byte write at %#llx ignored", d->id, size,
			  (unsigned long long)offset);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int virtio_mmio_empty_read(uint64_t offset, unsigned size, uint64_t *ret_val)
{
	uint64_t val = 0;

	if (!access_size_valid(size) || offset >= LAYOUT_VIRTIO_SLOT_SIZE)
		return -EINVAL;
	if (size == 4 && offset == VIRTIO_MMIO_MAGIC_VALUE)
		val = VIRTIO_MMIO_MAGIC;
	else if (size == 4 && offset == VIRTIO_MMIO_VERSION_REG)
		val = VIRTIO_MMIO_VERSION;
	*ret_val = val;
	return 0;
}

/* ---- attach / destroy ---- */

static int info_validate(const Cloister__DevInfo *info, const char *id)
{
	uint32_t mq = info->max_queue_size;

	if (strcmp(info->id, id) != 0 || info->kind[0] == '\0' || strlen(info->kind) > 32)
		return -EINVAL;
	if (info->virtio_device_id == 0 || info->virtio_device_id > 0xffff)
		return -EINVAL;
	if (info->num_queues == 0 || info->num_queues > VIRTIO_MMIO_MAX_QUEUES)
		return -EINVAL;
	if (mq == 0 || mq > VQ_MAX_SIZE || (mq & (mq - 1)))
		return -EINVAL;
	if (info->config_space.len > VIRTIO_MMIO_CONFIG_MAX)
		return -EINVAL;
	return 0;
}

static int take_info(struct virtio_mmio_dev *d, const Cloister__DevInfo *info)
{
	d->kind = strdup(info->kind);
	d->config = malloc(info->config_space.len ? info->config_space.len : 1);
	if (!d->kind || !d->config)
		return -ENOMEM;
	if (info->config_space.len)
		memcpy(d->config, info->config_space.data, info->config_space.len);
	d->config_len = info->config_space.len;
	d->device_id = info->virtio_device_id;
	d->num_queues = info->num_queues;
	d->max_queue_size = info->max_queue_size;
	d->device_features = (info->device_features & ~TRANSPORT_UNSUPPORTED) |
			     (1ull << VIRTIO_F_VERSION_1);
	return 0;
}

static int receive_info(struct virtio_mmio_dev *d)
{
	Cloister__Envelope *env = NULL;
	int r;

	r = frame_recv_timeout(d->sock, VIRTIO_MMIO_TIMEOUT_MS, &env, NULL, 0, NULL);
	if (r < 0)
		return r;
	if (env->msg_case != CLOISTER__ENVELOPE__MSG_DEV_INFO)
		r = -EPROTO;
	else
		r = info_validate(env->dev_info, d->id);
	if (r >= 0)
		r = take_info(d, env->dev_info);
	frame_free(env);
	return r;
}

static int send_memory(struct virtio_mmio_dev *d, const struct virtio_mmio_params *p)
{
	Cloister__MemoryRegion regs[VIRTIO_MMIO_MAX_REGIONS];
	Cloister__MemoryRegion *rptrs[VIRTIO_MMIO_MAX_REGIONS];
	Cloister__DevMemory msg = CLOISTER__DEV_MEMORY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	int fds[VIRTIO_MMIO_MAX_REGIONS];

	for (size_t i = 0; i < p->n_mem; i++) {
		cloister__memory_region__init(&regs[i]);
		regs[i].guest_addr = p->mem[i].gpa;
		regs[i].size = p->mem[i].size;
		rptrs[i] = &regs[i];
		fds[i] = p->mem[i].fd;
		d->mem[i] = (struct mmio_region){ .gpa = p->mem[i].gpa, .size = p->mem[i].size };
	}
	d->n_mem = p->n_mem;
	msg.n_regions = p->n_mem;
	msg.regions = rptrs;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_DEV_MEMORY, &msg.base);
	return mmio_device_request(d, &env, fds, p->n_mem);
}

static int handshake(struct virtio_mmio_dev *d, const struct virtio_mmio_params *p)
{
	int r;

	r = frame_hello_send(d->sock, CLOISTER__ROLE__ROLE_VMM);
	if (r >= 0)
		r = frame_hello_expect(d->sock, CLOISTER__ROLE__ROLE_DEVICE, VIRTIO_MMIO_TIMEOUT_MS);
	if (r >= 0)
		r = receive_info(d);
	if (r >= 0)
		r = send_memory(d, p);
	return r;
}

static struct virtio_mmio_dev *dev_alloc(const struct virtio_mmio_params *p)
{
	struct virtio_mmio_dev *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	pthread_mutex_init(&d->lock, NULL);
	d->sock = p->sock;
	d->epfd = d->stop_fd = -1;
	d->irq = p->irq;
	d->set_irq = p->set_irq;
	d->irq_opaque = p->irq_opaque;
	for (size_t i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		d->queues[i] = (struct mmio_queue){ .kick_fd = -1, .call_fd = -1 };
	d->id = strdup(p->id);
	if (!d->id) {
		free(d);
		return NULL;
	}
	return d;
}

int virtio_mmio_attach(const struct virtio_mmio_params *p, struct virtio_mmio_dev **ret)
{
	struct virtio_mmio_dev *d;
	int r;

	if (!p->id || p->n_mem == 0 || p->n_mem > VIRTIO_MMIO_MAX_REGIONS) {
		close(p->sock);
		return -EINVAL;
	}
	d = dev_alloc(p);
	if (!d) {
		close(p->sock);
		return -ENOMEM;
	}
	r = handshake(d, p);
	if (r >= 0)
		r = irq_thread_start(d);
	if (r < 0) {
		log_error("device %s: attach failed: %s", p->id, strerror(-r));
		virtio_mmio_destroy(d);
		return r;
	}
	log_info("device %s: %s attached (virtio id %u, %u queues)", d->id, d->kind, d->device_id,
		 d->num_queues);
	*ret = d;
	return 0;
}

const char *virtio_mmio_id(const struct virtio_mmio_dev *d)
{
	return d->id;
}

void virtio_mmio_destroy(struct virtio_mmio_dev *d)
{
	uint64_t one = 1;

	if (!d)
		return;
	if (d->thread_started) {
		(void)!write(d->stop_fd, &one, sizeof(one));
		pthread_join(d->thread, NULL);
	}
	mmio_queues_close(d);
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	if (d->sock >= 0)
		close(d->sock);
	pthread_mutex_destroy(&d->lock);
	free(d->config);
	free(d->kind);
	free(d->id);
	free(d);
}
