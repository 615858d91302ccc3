/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Console input: bytes from the fd the gateway handed over (its terminal
 * or pipe for --serial tty) go to the UART's receive queue.
 */
#ifndef CLOISTER_SERIAL_INPUT_H
#define CLOISTER_SERIAL_INPUT_H

struct machine;
struct serial_input;

/* Takes fd. Returns 0 or -errno. */
int serial_input_start(struct machine *m, int fd, struct serial_input **ret);
void serial_input_stop(struct serial_input *in);

#endif
