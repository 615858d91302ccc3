/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-console (device ID 3, virtio 1.2 5.3): one port, no MULTIPORT, no
 * SIZE. What the guest writes to hvc0 goes to fd 4 (a file, /dev/null, a
 * terminal or a pty master); what arrives on the optional fd 5 goes to the
 * guest. Output the host end cannot take yet (EAGAIN) waits in a bounded
 * buffer; once that is full the device stops taking transmit buffers, so
 * the guest waits (the Linux driver spins until its buffers come back) and
 * no byte is lost however slow the host end. Only a host end that is gone
 * (EPIPE, EIO) loses output, counted. Both pending buffers are part of a
 * snapshot.
 */
#ifndef CLOISTER_CONSOLE_H
#define CLOISTER_CONSOLE_H

#include "device.h"
#include "virtio_spec.h"

#define CONSOLE_RX_QUEUE 0u
#define CONSOLE_TX_QUEUE 1u
#define CONSOLE_QUEUE_SIZE 256u
/* Output waiting for a slow host end, and input waiting for receive buffers. */
#define CONSOLE_PENDING_OUT_MAX 65536u
#define CONSOLE_PENDING_IN_MAX 4096u
/* cols, rows (le16), max_nr_ports, emerg_wr (le32): all zero, none offered. */
#define CONSOLE_CONFIG_LEN 12u

struct console_stats {
	uint64_t out_bytes, out_dropped;
	uint64_t in_bytes;
	size_t out_pending, in_pending;
	bool tx_held;		/* a transmit chain waits for room */
};

extern const struct device_ops console_ops;

/* Counters of a device made with console_ops. */
struct console_stats console_stats(const struct device *dev);

#endif
