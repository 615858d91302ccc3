/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Console output towards the host fd the gateway handed over (file, pty,
 * socket, pipe). The fd may be non-blocking and its reader slow: what it
 * cannot take now waits in a bounded buffer that a thread writes out when
 * the fd is writable, so no byte is dropped. The buffer is full for normal
 * writers at SERIAL_OUTPUT_SOFT bytes (they get backpressure: the UART keeps
 * its transmitter busy, an SBI call waits); forced writes, from a writer
 * that has no way to wait (a driver that ignored THRE, a hart that must
 * park), may go on to SERIAL_OUTPUT_HARD. Beyond that, bytes are dropped
 * and counted.
 */
#ifndef CLOISTER_SERIAL_OUTPUT_H
#define CLOISTER_SERIAL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#define SERIAL_OUTPUT_SOFT 4096u
#define SERIAL_OUTPUT_HARD 65536u

struct serial_output;

/*
 * fd is not owned. room(opaque) is called from the output's thread, with no
 * lock held, when a writer was refused and there is room again.
 */
int serial_output_create(int fd, void (*room)(void *opaque), void *opaque,
			 struct serial_output **ret);
void serial_output_destroy(struct serial_output *so);

/*
 * Takes what fits of buf (up to the soft limit, or the hard one when
 * forced) and returns how many bytes it took. A failed sink (the reader
 * went away for good) takes everything and loses it, never the guest.
 */
size_t serial_output_write(struct serial_output *so, const void *buf, size_t len, bool forced);

/* True when a normal writer would be taken at least one byte. */
bool serial_output_has_room(struct serial_output *so);

/* Bytes dropped beyond the hard limit since creation. */
size_t serial_output_dropped(struct serial_output *so);

#endif
