/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the virtio-mmio transport: its state and what its three files share.
 * mmio.c has the registers, interrupts and attach; mmio_request.c the
 * requests to the device process; mmio_state.c pause, resume, save, restore.
 */
#ifndef CLOISTER_VIRTIO_MMIO_PRIV_H
#define CLOISTER_VIRTIO_MMIO_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister.pb-c.h"
#include "mmio.h"
#include "virtio_spec.h"

/* Transport features this transport does not implement: packed rings, notification data, queue reset, ... */
#define TRANSPORT_UNSUPPORTED                                                                  \
	((1ull << 33) | (1ull << 34) | (1ull << 36) | (1ull << 37) | (1ull << 38) |           \
	 (1ull << 39) | (1ull << 40) | (1ull << 41))
#define VQ_MAX_SIZE 32768u
#define STATUS_KNOWN_BITS                                                                      \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |          \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

/* epoll tags besides queue indices. */
#define TAG_STOP 0xffffffffu
#define TAG_SOCK 0xfffffffeu

struct mmio_queue {
	uint32_t num;
	bool ready;
	uint64_t desc, driver, device;
	/* Device-side ring positions, only carried from a save or into a restore. */
	uint32_t last_avail_idx, used_idx;
	int kick_fd, call_fd;
};

struct mmio_region {
	uint64_t gpa, size;
};

struct virtio_mmio_dev {
	pthread_mutex_t lock;
	int sock;
	/* The control stream is unusable (device died, timed out, or spoke nonsense). */
	bool broken;
	/* The id of the last request sent; replies carrying another are late. */
	uint64_t request_id;
	/* Requests that timed out but may still be answered: their replies are dropped. */
	unsigned owed;
	char *id, *kind;
	uint32_t device_id, num_queues, max_queue_size;
	uint64_t device_features;
	uint8_t *config;
	size_t config_len;
	struct mmio_region mem[VIRTIO_MMIO_MAX_REGIONS];
	size_t n_mem;

	uint64_t driver_features;
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint32_t status, interrupt_status, config_generation;
	struct mmio_queue queues[VIRTIO_MMIO_MAX_QUEUES];

	uint32_t irq;
	void (*set_irq)(void *opaque, uint32_t irq, bool level);
	void *irq_opaque;

	int epfd, stop_fd;
	pthread_t thread;
	bool thread_started;
};

/* ---- shared by the transport's files (mmio.c, mmio_request.c, mmio_state.c) ---- */

/* With d->lock held, as every function below. Drives the interrupt line from InterruptStatus. */
void mmio_irq_update(struct virtio_mmio_dev *d);
/* The device can no longer be trusted to answer: NEEDS_RESET for the driver. */
void mmio_mark_broken(struct virtio_mmio_dev *d, int err, const char *what);

bool mmio_queue_layout_valid(const struct virtio_mmio_dev *d, uint32_t num, uint64_t desc,
			     uint64_t driver, uint64_t device);
bool mmio_features_valid(const struct virtio_mmio_dev *d, uint64_t driver_features);

void mmio_queues_close(struct virtio_mmio_dev *d);
void mmio_transport_reset(struct virtio_mmio_dev *d);
int mmio_queue_eventfds(struct virtio_mmio_dev *d, struct mmio_queue *q, uint32_t index);
size_t mmio_build_state(const struct virtio_mmio_dev *d, Cloister__DeviceState *s,
			Cloister__VirtqueueState *qs, Cloister__VirtqueueState **qptrs, int *fds);

/* mmio_request.c: requests to the device process, each with a fresh request id. */
int mmio_device_send(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
		     size_t n_fds);
int mmio_device_exchange(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
			 size_t n_fds, Cloister__Envelope **ret_reply);
int mmio_device_request(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
			size_t n_fds);
/* As mmio_device_exchange(), taking the fds the reply carries (at most max_fds). */
int mmio_device_exchange_fds(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
			     size_t n_fds, Cloister__Envelope **ret_reply, int *ret_fds,
			     size_t max_fds, size_t *ret_n_fds);
/* A request that carries only its kind; with may_time_out, see virtio_mmio_pause(). */
int mmio_device_request_empty(struct virtio_mmio_dev *d, Cloister__Envelope__MsgCase which,
			      bool may_time_out);

#endif
