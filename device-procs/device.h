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
 *   core -> device  DevCounters                                 -> DevCountersReply
 * Every answer echoes its request's request_id. Which request is accepted
 * in which state is one table (control_rules[] in device_control.c),
 * checked before any handler runs:
 *
 *   state        Memory Activate Reset Pause Resume Save Restore Counters
 *   CONFIGURING  yes    -        -     -     -      -    -       yes
 *   READY        -      yes      yes   yes   no-op  -    yes     yes
 *   ACTIVE       -      -        yes   yes   no-op  -    -       yes
 *   BROKEN       -      -        yes   yes   no-op  -    -       yes
 *   PAUSED       -      -        yes   no-op yes    yes  yes     yes
 *
 * A refused request gets an answer with -EBUSY (-EPERM for a message no
 * device serves) and a reason, and the device goes on as it was. A
 * device that found a bad chain is BROKEN: it serves nothing until reset,
 * but still pauses, and its snapshot says NEEDS_RESET.
 *
 * Host input (a tap, a console's input) is polled by the same loop: when
 * the input fd is readable, ops->host_ready moves what it can to the guest.
 * A device that runs out of receive buffers answers DEVICE_HOST_NEED_BUFFERS
 * and the fd is left alone until the guest kicks ops->rx_queue, so a chatty
 * host cannot make the device spin. Host output that could not be written
 * at once is retried through ops->host_writable while device_want_output()
 * says so. Nothing host-side runs while paused.
 */
#ifndef CLOISTER_DEVICE_H
#define CLOISTER_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "cloister.pb-c.h"
#include "sandbox.h"
#include "virtqueue.h"
#include "virtio_spec.h"

/* Fixed fd numbers a device program is started with. */
#define DEVICE_CORE_FD 3
#define DEVICE_HOST_FD 4
/* Optional second host fd: input that differs from fd 4 (a console's stdin). */
#define DEVICE_INPUT_FD 5
/* Device-specific options a program accepts (--mac ...). */
#define DEVICE_MAX_OPTIONS 4u

/* Two eventfds per queue must fit one frame. */
#define DEVICE_MAX_QUEUES 8u


struct device;

/* Where a device process is in its life; see the table above. */
enum device_state {
	DEVICE_CONFIGURING,	/* no guest memory yet */
	DEVICE_READY,		/* memory mapped, no queue served (before DRIVER_OK, after a reset) */
	DEVICE_ACTIVE,		/* serving its queues and host fds */
	DEVICE_BROKEN,		/* found a chain it cannot serve: waits for a reset */
	DEVICE_PAUSED,		/* touches nothing; resume goes back to dev->resume_state */
	DEVICE_STATE_COUNT,
};

/* Counters a device kind keeps (names in ops->counter_names). */
#define DEVICE_MAX_COUNTERS 8u

/* Where a device's host input comes from. */
enum device_input {
	DEVICE_INPUT_NONE,
	DEVICE_INPUT_HOST_FD,	/* fd 4 itself (a tap) */
	DEVICE_INPUT_SECOND_FD,	/* fd 5, which may be absent */
};

/* What ops->host_ready reports, besides a negative errno (the device needs a reset). */
enum device_host_status {
	DEVICE_HOST_DRAINED,		/* keep polling the input fd */
	DEVICE_HOST_NEED_BUFFERS,	/* stop polling until the guest kicks rx_queue */
	DEVICE_HOST_CLOSED,		/* end of input or a host error: never poll it again */
};

struct device_ops {
	const char *kind;
	enum sandbox_role sandbox_role;
	uint32_t virtio_id;
	/* Device-specific feature bits; the framework adds VERSION_1 and INDIRECT_DESC. */
	uint64_t features;
	uint32_t num_queues;
	uint32_t max_queue_size;
	bool needs_host_fd;
	enum device_input input;
	/* The queue whose kick means "new receive buffers" (with host_ready). */
	uint32_t rx_queue;
	/* Default config space; create() may give dev its own (dev->config). */
	const uint8_t *config;
	size_t config_len;
	/* Names of "--name VALUE" options, NULL-terminated; NULL when none. */
	const char *const *options;
	/*
	 * Optional: builds dev->priv from the option values (same index as
	 * options, NULL when absent). destroy() undoes it.
	 */
	int (*create)(struct device *dev, const char *const *option_values);
	void (*destroy)(struct device *dev);
	/* Serves what is pending on vq. Negative errno: the device needs a reset. */
	int (*process_queue)(struct device *dev, struct virtqueue *vq);
	/* Input fd readable (or hung up): an enum device_host_status or -errno. */
	int (*host_ready)(struct device *dev);
	/* Output fd writable again: 0 or -errno (the device needs a reset). */
	int (*host_writable)(struct device *dev);
	/* Device-specific part of a snapshot (state->blob); required for snapshots. */
	int (*save)(struct device *dev, Cloister__DeviceState *state);
	int (*restore)(struct device *dev, const Cloister__DeviceState *state);
	/*
	 * Optional: the device is about to stop; anything it holds half done
	 * (a chain the host end has not taken yet) is finished or handed back
	 * now, so the queues it saves are exact. Must not wait for the host.
	 */
	void (*pause)(struct device *dev);
	/* Optional: the queues are being torn down; forget what was tied to them. */
	void (*reset)(struct device *dev);
	/* What dev->counters[i] are called, NULL-terminated, at most DEVICE_MAX_COUNTERS. */
	const char *const *counter_names;
};

struct device {
	const struct device_ops *ops;
	const char *id;
	int sock;
	int host_fd;
	int input_fd;		/* DEVICE_INPUT_SECOND_FD only; -1 when absent */
	const uint8_t *config;
	size_t config_len;
	struct guest_memory mem;
	int uffd;	/* OnDemand restore: the mapping's userfaultfd, kept for the VM's life */
	struct virtqueue queues[DEVICE_MAX_QUEUES];
	uint64_t driver_features;
	enum device_state state;
	enum device_state resume_state;	/* where DevResume goes from DEVICE_PAUSED */
	bool created;
	bool input_blocked;	/* waiting for receive buffers */
	bool input_closed;
	bool want_output;
	uint64_t requests_served;
	uint64_t bytes_served;
	/* Reported by DevCounters; not part of a snapshot (a restored process starts at 0). */
	uint64_t counters[DEVICE_MAX_COUNTERS];
	void *priv;
};

/* "configuring", "ready", ... for logs and refusals. */
const char *device_state_name(enum device_state state);

/*
 * 0 when a request of kind msg may be served in state, otherwise the error
 * it is refused with: -EBUSY (not in this state) or -EPERM (never).
 */
int device_state_check(enum device_state state, Cloister__Envelope__MsgCase msg);

/* Prepares dev; sock and host_fd (-1 if none) become dev's. */
void device_init(struct device *dev, const struct device_ops *ops, const char *id, int sock,
		 int host_fd);

/* Gives dev the optional second host fd (fd 5): dev owns it from now on. */
void device_set_input_fd(struct device *dev, int fd);

/*
 * Runs ops->create (if any) with option values indexed as ops->options
 * (NULL for all absent). Returns 0 or -errno; device_cleanup() undoes it.
 */
int device_configure(struct device *dev, const char *const *option_values);

/* The device has host output waiting: poll the output fd for POLLOUT or not. */
void device_want_output(struct device *dev, bool want);

/* The fd host input is read from, or -1. */
int device_input_fd(const struct device *dev);

/* Hello, DevInfo, then DevMemory: maps guest memory. Returns 0 or -errno. */
int device_handshake(struct device *dev);

/* Serves control messages and kicks until the core closes the socket (returns 0). */
int device_serve(struct device *dev);

/* Unmaps memory, closes every fd, runs ops->destroy. */
void device_cleanup(struct device *dev);

/* Counts one served request of bytes bytes (for DevSave). */
void device_account(struct device *dev, uint64_t bytes);

/* Adds n to the device's counter index (an index into ops->counter_names). */
static inline void device_count(struct device *dev, unsigned int index, uint64_t n)
{
	if (index < DEVICE_MAX_COUNTERS)
		dev->counters[index] += n;
}

/*
 * Serves a queue: hands each available chain to serve(), which says how many
 * bytes it wrote into the chain, and returns the chain with that length; at
 * most one queue's worth per call (the kick is re-armed for the rest), then
 * signals the guest once. A negative errno from serve() or the ring means the
 * device needs a reset and is returned; otherwise 0.
 */
int device_drain_queue(struct device *dev, struct virtqueue *vq,
		       int (*serve)(struct device *dev, const struct vq_chain *chain,
				    uint32_t *ret_used));

/*
 * The whole program: `<prog> ID [--uid N --gid N] [--OPTION VALUE...]`, fd 3
 * the core socket, fd 4 the host resource when ops->needs_host_fd, fd 5 the
 * input when ops->input is DEVICE_INPUT_SECOND_FD and the parent passed one.
 * Sandboxes, then serves.
 */
int device_main(int argc, char **argv, const struct device_ops *ops);

#endif
