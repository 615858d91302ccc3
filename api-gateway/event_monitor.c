/* SPDX-License-Identifier: Apache-2.0 */
#include "event_monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errmsg.h"
#include "io.h"
#include "log.h"

struct event_monitor {
	int fd;
	struct timespec start;
	/* Events from the API's worker and the supervision tick come out whole and in order. */
	pthread_mutex_t lock;
};

static int monitor_fd(const char *spec, char *err, size_t errlen)
{
	char *end;
	long n;
	int fd;

	if (strncmp(spec, "path=", 5) == 0 && spec[5] == '/') {
		fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY | O_CLOEXEC, 0600);
		if (fd < 0)
			err_set(err, errlen, "--event-monitor: cannot open %s: %m", spec + 5);
		return fd < 0 ? -errno : fd;
	}
	if (strncmp(spec, "fd=", 3) == 0) {
		errno = 0;
		n = strtol(spec + 3, &end, 10);
		if (!errno && !*end && end != spec + 3 && n > 2 && n < INT_MAX &&
		    fcntl((int)n, F_SETFD, FD_CLOEXEC) == 0)
			return (int)n;
		err_set(err, errlen, "--event-monitor fd=%s: not an open file descriptor above 2", spec + 3);
		return -EBADF;
	}
	err_set(err, errlen, "--event-monitor %s: expected path=/ABSOLUTE/FILE or fd=N", spec);
	return -EINVAL;
}

int event_monitor_open(const char *spec, struct event_monitor **ret, char *err, size_t errlen)
{
	struct event_monitor *m;
	int fd = monitor_fd(spec, err, errlen);

	if (fd < 0)
		return fd;
	m = calloc(1, sizeof(*m));
	if (!m) {
		close(fd);
		return -ENOMEM;
	}
	m->fd = fd;
	clock_gettime(CLOCK_MONOTONIC, &m->start);
	pthread_mutex_init(&m->lock, NULL);
	*ret = m;
	return 0;
}

static struct json_object *event_json(const struct event_monitor *m, const char *source,
				      const char *event, const char *detail)
{
	struct json_object *o = json_object_new_object(), *ts = json_object_new_object();
	struct timespec now;
	int64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (now.tv_sec - m->start.tv_sec) * 1000000000ll + (now.tv_nsec - m->start.tv_nsec);
	json_object_object_add(ts, "secs", json_object_new_int64(ns / 1000000000ll));
	json_object_object_add(ts, "nanos", json_object_new_int64(ns % 1000000000ll));
	json_object_object_add(o, "timestamp", ts);
	json_object_object_add(o, "source", json_object_new_string(source));
	json_object_object_add(o, "event", json_object_new_string(event));
	if (detail) {
		struct json_object *p = json_object_new_object();

		json_object_object_add(p, "error", json_object_new_string(detail));
		json_object_object_add(o, "properties", p);
	} else {
		json_object_object_add(o, "properties", NULL);
	}
	return o;
}

void event_monitor_emit(struct event_monitor *m, const char *source, const char *event,
			const char *detail)
{
	struct json_object *o;
	char *line;

	log_debug("event: %s %s", source, event);
	if (!m)
		return;
	o = event_json(m, source, event, detail);
	if (asprintf(&line, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) >= 0) {
		pthread_mutex_lock(&m->lock);
		if (io_write_all(m->fd, line, strlen(line)) < 0)
			log_warn("event monitor: cannot write an event");
		pthread_mutex_unlock(&m->lock);
		free(line);
	}
	json_object_put(o);
}

void event_monitor_close(struct event_monitor *m)
{
	if (!m)
		return;
	close(m->fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
