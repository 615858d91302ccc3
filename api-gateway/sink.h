/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a guest's serial or console output goes and its input comes from:
 * off, /dev/null, our terminal, a file, a new pty, or a socket served by a
 * relay thread. The gateway opens all of them; the fds go to a confined
 * process.
 */
#ifndef CLOISTER_SINK_H
#define CLOISTER_SINK_H

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

/*
 * Opens a sink by its config: pty makes a new pty in raw mode whose master
 * is both ends, socket listens on the path (mode 0600) and relays one client
 * at a time. Output fds that could fill up are non-blocking, so a reader
 * that does not read loses output rather than stalling the guest.
 */
int sink_open(const Cloister__SerialConfig *s, bool restore, struct sink *ret, char *err, size_t errlen);
/* Output to /dev/null, no input: what a device needs when its sink is off. */
int sink_open_null(struct sink *ret, char *err, size_t errlen);
/* Closes out_fd and in_fd once they are handed over; keeps the rest. */
void sink_handed_over(struct sink *s);
/* Closes everything, stops the relay and removes its socket. */
void sink_close(struct sink *s);

#endif
