/* SPDX-License-Identifier: Apache-2.0 */
#include "serial_output.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

struct serial_output {
	int fd;
	int wake_fd;
	pthread_t thread;
	void (*room)(void *opaque);
	void *opaque;

	pthread_mutex_t lock;
	uint8_t buf[SERIAL_OUTPUT_HARD];
	size_t head, count;
	bool refused;		/* a normal writer was turned away: call room() when it fits */
	bool failed;		/* the sink is gone: output is dropped */
	bool stop;
	size_t dropped;
};

static void output_wake(struct serial_output *so)
{
	uint64_t one = 1;

	(void)!write(so->wake_fd, &one, sizeof(one));
}

/* With the lock held: a write error other than "would block" means the sink is gone. */
static void output_fail(struct serial_output *so, int err)
{
	if (!so->failed)
		log_warn("console output fails (%s): the guest's output is dropped from now on",
			 err ? strerror(err) : "hang-up");
	so->failed = true;
	so->count = 0;
}

/* With the lock held: writes from the buffer what the fd takes now. */
static void output_drain(struct serial_output *so)
{
	while (so->count && !so->failed) {
		size_t chunk = SERIAL_OUTPUT_HARD - so->head;
		ssize_t n;

		if (chunk > so->count)
			chunk = so->count;
		n = write(so->fd, so->buf + so->head, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			output_fail(so, n < 0 ? errno : 0);
			return;
		}
		so->head = (so->head + (size_t)n) % SERIAL_OUTPUT_HARD;
		so->count -= (size_t)n;
	}
}

static void output_append(struct serial_output *so, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		so->buf[(so->head + so->count + i) % SERIAL_OUTPUT_HARD] = p[i];
	so->count += len;
}

size_t serial_output_write(struct serial_output *so, const void *buf, size_t len, bool forced)
{
	size_t limit = forced ? SERIAL_OUTPUT_HARD : SERIAL_OUTPUT_SOFT;
	size_t take;
	bool queued;

	pthread_mutex_lock(&so->lock);
	if (so->failed) {
		pthread_mutex_unlock(&so->lock);
		return len;
	}
	take = so->count < limit ? limit - so->count : 0;
	if (take > len)
		take = len;
	output_append(so, buf, take);
	output_drain(so);
	if (take < len && !forced)
		so->refused = true;
	if (take < len && forced)
		so->dropped += len - take;
	queued = so->count > 0;
	pthread_mutex_unlock(&so->lock);
	if (queued)
		output_wake(so);
	return forced ? len : take;
}

bool serial_output_has_room(struct serial_output *so)
{
	bool room;

	pthread_mutex_lock(&so->lock);
	room = so->failed || so->count < SERIAL_OUTPUT_SOFT;
	pthread_mutex_unlock(&so->lock);
	return room;
}

size_t serial_output_dropped(struct serial_output *so)
{
	size_t n;

	pthread_mutex_lock(&so->lock);
	n = so->dropped;
	pthread_mutex_unlock(&so->lock);
	return n;
}

/* One round: waits for the fd to take more (or for new output), writes, tells a refused writer. */
static bool output_round(struct serial_output *so)
{
	struct pollfd p[2] = { { .fd = so->wake_fd, .events = POLLIN }, { .fd = so->fd } };
	bool notify = false, stop;
	uint64_t v;

	pthread_mutex_lock(&so->lock);
	p[1].events = so->count && !so->failed ? POLLOUT : 0;
	stop = so->stop;
	pthread_mutex_unlock(&so->lock);
	if (stop)
		return false;
	if (poll(p, 2, -1) < 0 && errno != EINTR)
		return false;
	if (p[0].revents & POLLIN)
		(void)!read(so->wake_fd, &v, sizeof(v));
	pthread_mutex_lock(&so->lock);
	if (p[1].revents & (POLLERR | POLLNVAL))
		output_fail(so, EIO);
	else if (p[1].revents & (POLLOUT | POLLHUP))
		output_drain(so);
	if (so->refused && (so->failed || so->count < SERIAL_OUTPUT_SOFT)) {
		so->refused = false;
		notify = true;
	}
	pthread_mutex_unlock(&so->lock);
	if (notify && so->room)
		so->room(so->opaque);
	return true;
}

static void *output_thread(void *arg)
{
	struct serial_output *so = arg;

	while (output_round(so))
		;
	return NULL;
}

int serial_output_create(int fd, void (*room)(void *opaque), void *opaque,
			 struct serial_output **ret)
{
	struct serial_output *so = calloc(1, sizeof(*so));
	int r;

	if (!so)
		return -ENOMEM;
	so->fd = fd;
	so->room = room;
	so->opaque = opaque;
	pthread_mutex_init(&so->lock, NULL);
	so->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (so->wake_fd < 0) {
		r = -errno;
		free(so);
		return r;
	}
	r = -pthread_create(&so->thread, NULL, output_thread, so);
	if (r < 0) {
		close(so->wake_fd);
		free(so);
		return r;
	}
	*ret = so;
	return 0;
}

/* What the guest wrote last still goes out, if the reader takes it within a bound. */
#define OUTPUT_FLUSH_MS 2000

void serial_output_destroy(struct serial_output *so)
{
	if (!so)
		return;
	pthread_mutex_lock(&so->lock);
	for (int waited = 0; so->count && !so->failed && waited < OUTPUT_FLUSH_MS; waited += 50) {
		struct pollfd p = { .fd = so->fd, .events = POLLOUT };

		pthread_mutex_unlock(&so->lock);
		poll(&p, 1, 50);
		pthread_mutex_lock(&so->lock);
		output_drain(so);
	}
	so->stop = true;
	pthread_mutex_unlock(&so->lock);
	output_wake(so);
	pthread_join(so->thread, NULL);
	close(so->wake_fd);
	pthread_mutex_destroy(&so->lock);
	free(so);
}
