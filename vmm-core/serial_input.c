/* SPDX-License-Identifier: Apache-2.0 */
#include "serial_input.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "component.h"
#include "machine.h"
#include "uart.h"

/* How often a blocked reader looks at the stop flag, and retries a full queue. */
#define INPUT_POLL_MS 50

struct serial_input {
	struct machine *m;
	int fd;
	pthread_t thread;
	atomic_bool stop;
	/* Held by the thread while it hands bytes to the UART. */
	pthread_mutex_t lock;
	/* A paused VM takes no input: it stays with the host until resume. */
	bool paused;
	/* Read but not yet taken by the UART: held back, never dropped. */
	char pending[256];
	size_t n_pending;
	bool escapes;		/* Ctrl-A x quits */
	bool escape;		/* the last byte read was Ctrl-A */
};

#define CTRL_A 0x01

/*
 * Ctrl-A x asks to quit (a raw terminal sends Ctrl-C to the guest, so the
 * user needs another way out); Ctrl-A Ctrl-A sends one Ctrl-A. Returns the
 * number of bytes left in buf for the guest, or -1 to quit.
 */
static ssize_t input_escapes(struct serial_input *in, char *buf, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = buf[i];

		if (in->escape) {
			in->escape = false;
			if (ch == 'x' || ch == 'X')
				return -1;
			if (ch != CTRL_A)
				buf[out++] = CTRL_A;
			buf[out++] = ch;
		} else if (ch == CTRL_A) {
			in->escape = true;
		} else {
			buf[out++] = ch;
		}
	}
	return (ssize_t)out;
}

/* Hands what is pending to the UART unless paused; true when all of it went. */
static bool input_flush(struct serial_input *in)
{
	size_t n = 0;

	pthread_mutex_lock(&in->lock);
	if (!in->paused)
		n = uart_push_input(in->m->uart, in->pending, in->n_pending);
	pthread_mutex_unlock(&in->lock);
	memmove(in->pending, in->pending + n, in->n_pending - n);
	in->n_pending -= n;
	return in->n_pending == 0;
}

static bool input_paused(struct serial_input *in)
{
	bool paused;

	pthread_mutex_lock(&in->lock);
	paused = in->paused;
	pthread_mutex_unlock(&in->lock);
	return paused;
}

static void *input_thread(void *arg)
{
	struct serial_input *in = arg;

	while (!atomic_load(&in->stop)) {
		struct pollfd p = { .fd = in->fd, .events = POLLIN };
		ssize_t n;

		if (input_paused(in) || (in->n_pending && !input_flush(in))) {
			usleep(INPUT_POLL_MS * 1000);
			continue;
		}
		if (poll(&p, 1, INPUT_POLL_MS) <= 0)
			continue;
		/* Room for the Ctrl-A that an escape which was not one gives back. */
		n = read(in->fd, in->pending, sizeof(in->pending) - 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			log_info("console input closed%s", n < 0 ? " on an error" : "");
			break;
		}
		if (in->escapes)
			n = input_escapes(in, in->pending, (size_t)n);
		if (n < 0) {
			if (in->m->event)
				in->m->event(in->m->event_opaque, CLOISTER__EVENT_KIND__EVENT_CONSOLE_QUIT,
					     "Ctrl-A x on the console");
			break;
		}
		in->n_pending = (size_t)n;
		input_flush(in);
	}
	return NULL;
}

/* Once this returns, no byte reaches the UART until resume. */
static int input_pause(void *obj, char *err, size_t errlen)
{
	struct serial_input *in = obj;

	pthread_mutex_lock(&in->lock);
	in->paused = true;
	pthread_mutex_unlock(&in->lock);
	return 0;
}

static int input_resume(void *obj, char *err, size_t errlen)
{
	struct serial_input *in = obj;

	pthread_mutex_lock(&in->lock);
	in->paused = false;
	pthread_mutex_unlock(&in->lock);
	return 0;
}

/* Bytes not yet taken by the UART are the host's, not the guest's: nothing to save. */
const struct component_ops serial_input_component_ops = {
	.pause = input_pause,
	.resume = input_resume,
	.stateless = true,
};

int serial_input_start(struct machine *m, int fd, bool escapes, struct serial_input **ret)
{
	struct serial_input *in = calloc(1, sizeof(*in));
	int r;

	if (!in) {
		close(fd);
		return -ENOMEM;
	}
	in->m = m;
	in->fd = fd;
	in->escapes = escapes;
	in->paused = true;
	pthread_mutex_init(&in->lock, NULL);
	r = -pthread_create(&in->thread, NULL, input_thread, in);
	if (r < 0) {
		pthread_mutex_destroy(&in->lock);
		close(fd);
		free(in);
		return r;
	}
	r = machine_add_component(m, "serial input", &serial_input_component_ops, in, true);
	if (r < 0) {
		serial_input_stop(in);
		return r;
	}
	*ret = in;
	return 0;
}

void serial_input_stop(struct serial_input *in)
{
	if (!in)
		return;
	atomic_store(&in->stop, true);
	pthread_join(in->thread, NULL);
	pthread_mutex_destroy(&in->lock);
	close(in->fd);
	free(in);
}
