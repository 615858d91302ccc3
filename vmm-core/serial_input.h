/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Console input: bytes from the fd the gateway handed over (its terminal
 * or pipe for --serial tty) go to the UART's receive queue.
 */
#ifndef CLOISTER_SERIAL_INPUT_H
#define CLOISTER_SERIAL_INPUT_H

#include <stdbool.h>

struct machine;
struct serial_input;

/*
 * Takes fd, and joins m's component list as "serial input", paused like the
 * rest until the first resume. With escapes, Ctrl-A x asks to quit: for a person at a terminal,
 * never for a pty or socket, whose peer may send any byte. Returns 0 or -errno.
 */
int serial_input_start(struct machine *m, int fd, bool escapes, struct serial_input **ret);
/* Only once the machine no longer walks its components (it has been torn down or is unused). */
void serial_input_stop(struct serial_input *in);

#endif
