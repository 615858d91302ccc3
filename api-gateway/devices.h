/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the gateway must know of each device kind: its program, and the host
 * resource it opens for it (the device process never opens a path).
 */
#ifndef CLOISTER_DEVICES_H
#define CLOISTER_DEVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister.pb-c.h"

struct socket_relay;

/*
 * A serial or console sink. out_fd and in_fd go to the process that runs
 * the device and are closed here once handed over; the rest stays with the
 * gateway as long as the VM uses the sink.
 */
struct sink {
	int out_fd;		/* the guest's output; -1 for off */
	int in_fd;		/* the guest's input; -1 when there is none */
	int pty_slave_fd;	/* held: a master whose slave nobody has open reads EIO */
	char pty_path[64];	/* "/dev/pts/N" with SERIAL_PTY */
	struct socket_relay *relay;	/* with SERIAL_SOCKET */
};

#define SINK_INIT ((struct sink){ .out_fd = -1, .in_fd = -1, .pty_slave_fd = -1 })

struct device_host {
	const char *program;	/* "cloister-blk" */
	int fds[2];		/* handed over as the device's fd 4 and 5; -1 when none */
	size_t n_fds;
	char mac_arg[24];	/* net: the MAC to pass with --mac */
	struct sink sink;	/* console: what the gateway holds for its output */
};

/*
 * Opens d's host resource. On first creation (restore false) it also fills
 * in what the config must remember: a disk's size, a generated MAC. On
 * restore it refuses a disk whose size changed. Returns 0 or -errno with err set.
 */
int device_host_open(Cloister__DeviceConfig *d, bool restore, struct device_host *ret, char *err,
		     size_t errlen);
void device_host_close(struct device_host *h);

/*
 * Opens a sink by its config: pty makes a new pty in raw mode whose master
 * is both ends, socket listens on the path (mode 0600) and relays one client
 * at a time. Output fds that could fill up are non-blocking, so a reader
 * that does not read loses output rather than stalling the guest.
 */
int sink_open(const Cloister__SerialConfig *s, bool restore, struct sink *ret, char *err, size_t errlen);
/* Closes out_fd and in_fd once they are handed over; keeps the rest. */
void sink_handed_over(struct sink *s);
/* Closes everything, stops the relay and removes its socket. */
void sink_close(struct sink *s);

#endif
