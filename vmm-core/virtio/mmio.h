/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-mmio transport (virtio 1.2, 4.2; version 2 registers only).
 * vmm-core keeps the registers; everything about the device itself
 * (features, queues, reset, snapshots) goes to the device process over its
 * socket, and the data path goes through eventfds: a QueueNotify write
 * signals the queue's kick eventfd, and a small thread turns the device's
 * call eventfds into InterruptStatus and the interrupt line.
 */
#ifndef CLOISTER_VIRTIO_MMIO_H
#define CLOISTER_VIRTIO_MMIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister.pb-c.h"
#include "virtio_spec.h"

#define VIRTIO_MMIO_VENDOR_ID 0x54534c43u /* "CLST" */
/* Two eventfds per queue in one frame. */
#define VIRTIO_MMIO_MAX_QUEUES 8u
#define VIRTIO_MMIO_MAX_REGIONS 4u
/* Device config space that fits the slot after the registers. */
#define VIRTIO_MMIO_CONFIG_MAX 0xf00u
/* How long the device process gets to answer a request. */
#define VIRTIO_MMIO_TIMEOUT_MS 2000




struct virtio_mem_region {
	uint64_t gpa, size;
	int fd; /* the region's memfd (not owned) */
};

struct virtio_mmio_params {
	int sock; /* connected socket to the device process; always becomes the transport's */
	const char *id;
	const struct virtio_mem_region *mem;
	size_t n_mem;
	uint32_t irq; /* interrupt line, 0 = none yet */
	/*
	 * May be NULL. Called with the device's lock held, from vCPU threads and
	 * the transport's interrupt thread: it must not call back into the transport.
	 */
	void (*set_irq)(void *opaque, uint32_t irq, bool level);
	void *irq_opaque;
};

struct virtio_mmio_dev;

/*
 * Hello (we are ROLE_VMM), DevInfo from the device, DevMemory with the
 * memfds. Returns 0, or -ETIMEDOUT/-EPROTO/... when the device does not
 * answer within VIRTIO_MMIO_TIMEOUT_MS or answers wrongly.
 */
int virtio_mmio_attach(const struct virtio_mmio_params *p, struct virtio_mmio_dev **ret);

/* Register accesses at offset inside the slot; thread-safe. */
int virtio_mmio_read(struct virtio_mmio_dev *d, uint64_t offset, unsigned size, uint64_t *ret_val);
int virtio_mmio_write(struct virtio_mmio_dev *d, uint64_t offset, unsigned size, uint64_t val);

/* A slot with no device: magic, version 2, device ID 0, the rest 0. */
int virtio_mmio_empty_read(uint64_t offset, unsigned size, uint64_t *ret_val);

/*
 * The device finishes in-flight requests and stops (or starts again).
 * -ETIMEDOUT when it does not answer within VIRTIO_MMIO_TIMEOUT_MS: the
 * transport then sends the opposite request after it, so the device ends
 * as it was once it wakes, and drops the late replies; any other error
 * means the device is broken.
 */
int virtio_mmio_pause(struct virtio_mmio_dev *d);
int virtio_mmio_resume(struct virtio_mmio_dev *d);

/* Transport fields plus the device's own; free with virtio_mmio_state_free(). */
int virtio_mmio_save(struct virtio_mmio_dev *d, Cloister__DeviceState **ret_state);
void virtio_mmio_state_free(Cloister__DeviceState *s);

/* Validates state, rebuilds the transport and restores the device from it. */
int virtio_mmio_restore(struct virtio_mmio_dev *d, const Cloister__DeviceState *state);

/*
 * Asks the device process for its counters: *ret_reply is its
 * DevCountersReply envelope (free with frame_free()). -ETIMEDOUT leaves the
 * device usable; its late answer is dropped.
 */
int virtio_mmio_counters(struct virtio_mmio_dev *d, Cloister__Envelope **ret_reply);

/*
 * OnDemand restore: has the device process register its mapping of guest
 * memory with a uffd made from dev_fd (/dev/userfaultfd). Returns that uffd
 * (for snapshotd), host_addrs[0..n_regions) where the device mapped each
 * region; -errno if the device refused or answered out of turn.
 */
int virtio_mmio_uffd(struct virtio_mmio_dev *d, int dev_fd, uint64_t *host_addrs, size_t n_regions);

const char *virtio_mmio_id(const struct virtio_mmio_dev *d);

/*
 * The transport as a machine component (obj is the virtio_mmio_dev): its
 * save appends to VmState.devices, its restore takes the entry with its id.
 */
struct component_ops;
extern const struct component_ops virtio_mmio_component_ops;

/* Stops the interrupt thread, closes every fd (the device sees EOF and exits). */
void virtio_mmio_destroy(struct virtio_mmio_dev *d);

#endif
