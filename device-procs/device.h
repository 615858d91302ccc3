/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device-process framework: one program per virtio device kind, each
 * a table of ops over this loop. The process talks to vmm-core on one socket
 * (fd DEVICE_CORE_FD) for control and gets its data-path notifications as
 * eventfds, so a queue kick costs no message.
 *
 * Control protocol, after Hello (device ROLE_DEVICE, core ROLE_VMM):
 *   device -> core  DevInfo
 *   core -> device  DevMemory (fds: one memfd per region)      -> Reply
 *   core -> device  DevActivate (fds: kick, call per queue)     -> Reply
 *   core -> device  DevReset / DevPause / DevResume             -> Reply
 *   core -> device  DevSave                                     -> DevSaveReply
 *   core -> device  DevRestore (fds: kick, call per ready queue
 *                   when state.status has DRIVER_OK)            -> Reply
 * A request that is not allowed now is refused with a Reply error. A device
 * that found a bad chain stops serving and answers -EIO to pause and save
 * until it is reset.
 */
#ifndef CLOISTER_DEVICE_H
#define CLOISTER_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "cloister.pb-c.h"
#include "sandbox.h"
#include "virtqueue.h"

/* Fixed fd numbers a device program is started with. */
#define DEVICE_CORE_FD 3
#define DEVICE_HOST_FD 4

/* Two eventfds per queue must fit one frame. */
#define DEVICE_MAX_QUEUES 8u

#define VIRTIO_STATUS_DRIVER_OK 4u

struct device;

struct device_ops {
	const char *kind;
	enum sandbox_role sandbox_role;
	uint32_t virtio_id;
	/* Device-specific feature bits; the framework adds VERSION_1 and INDIRECT_DESC. */
	uint64_t features;
	uint32_t num_queues;
	uint32_t max_queue_size;
	bool needs_host_fd;
	const uint8_t *config;
	size_t config_len;
	/* Serves what is pending on vq. Negative errno: the device needs a reset. */
	int (*process_queue)(struct device *dev, struct virtqueue *vq);
	/* Device-specific part of a snapshot (state->blob); required for snapshots. */
	int (*save)(struct device *dev, Cloister__DeviceState *state);
	int (*restore)(struct device *dev, const Cloister__DeviceState *state);
};

struct device {
	const struct device_ops *ops;
	const char *id;
	int sock;
	int host_fd;
	struct guest_memory mem;
	struct virtqueue queues[DEVICE_MAX_QUEUES];
	uint64_t driver_features;
	bool has_memory;
	bool active;
	bool paused;
	bool needs_reset;
	uint64_t requests_served;
	uint64_t bytes_served;
	void *priv;
};

/* Prepares dev; sock and host_fd (-1 if none) become dev's. */
void device_init(struct device *dev, const struct device_ops *ops, const char *id, int sock,
		 int host_fd);

/* Hello, DevInfo, then DevMemory: maps guest memory. Returns 0 or -errno. */
int device_handshake(struct device *dev);

/* Serves control messages and kicks until the core closes the socket (returns 0). */
int device_serve(struct device *dev);

/* Unmaps memory, closes every fd. */
void device_cleanup(struct device *dev);

/* Counts one served request of bytes bytes (for DevSave). */
void device_account(struct device *dev, uint64_t bytes);

/*
 * The whole program: `<prog> ID [--uid N --gid N]`, fd 3 the core socket,
 * fd 4 the host resource when ops->needs_host_fd. Sandboxes, then serves.
 */
int device_main(int argc, char **argv, const struct device_ops *ops);

#endif
