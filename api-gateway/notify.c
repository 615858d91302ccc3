/* SPDX-License-Identifier: Apache-2.0 */
#include "notify.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "errmsg.h"
#include "log.h"

/* STATUS= lines longer than this are cut: systemctl shows one line anyway. */
#define NOTIFY_STATUS_MAX 256

bool notify_enabled(void)
{
	const char *s = getenv("NOTIFY_SOCKET");

	return s && *s;
}

/* sd_notify() returns 0 when nobody listens, > 0 when sent. */
static int notify_send(const char *msg)
{
	int r = sd_notify(0, msg);

	if (r < 0)
		log_warn("cannot notify the service manager: %s", strerror(-r));
	return r < 0 ? r : 0;
}

/* Keeps a status line to one line of printable text. */
static void status_clean(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

static int notify_with_status(const char *what, const char *status)
{
	char msg[NOTIFY_STATUS_MAX + 32];

	if (!notify_enabled())
		return 0;
	snprintf(msg, sizeof(msg), "%s%sSTATUS=%.*s", what ? what : "", what ? "\n" : "",
		 NOTIFY_STATUS_MAX, status ? status : "");
	status_clean(msg + strlen(what ? what : "") + (what ? 1 : 0));
	return notify_send(msg);
}

int notify_ready(const char *vm_state)
{
	char status[64];

	snprintf(status, sizeof(status), "VM %s", vm_state);
	return notify_with_status("READY=1", status);
}

int notify_status(const char *fmt, ...)
{
	char status[NOTIFY_STATUS_MAX + 1];
	va_list ap;

	if (!notify_enabled())
		return 0;
	va_start(ap, fmt);
	vsnprintf(status, sizeof(status), fmt, ap);
	va_end(ap);
	return notify_with_status(NULL, status);
}

int notify_vm_status(const char *state, const char *op, const char *error)
{
	if (error && *error)
		return notify_status("VM %s: %s", state, error);
	if (op && *op)
		return notify_status("VM %s, %s under way", state, op);
	return notify_status("VM %s", state);
}

int notify_stopping(const char *status)
{
	if (!status)
		return notify_enabled() ? notify_send("STOPPING=1") : 0;
	return notify_with_status("STOPPING=1", status);
}

int notify_extend_timeout(uint64_t usec)
{
	char msg[64];

	if (!notify_enabled())
		return 0;
	snprintf(msg, sizeof(msg), "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
	return notify_send(msg);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void notify_watchdog_tick(void)
{
	static int enabled = -1;
	static uint64_t interval, last;
	uint64_t now;

	/* WATCHDOG_USEC does not change while we run: read it once. */
	if (enabled < 0) {
		enabled = sd_watchdog_enabled(0, &interval) > 0 && interval > 0;
		if (enabled)
			log_info("systemd watchdog: every %llu ms", (unsigned long long)interval / 2000u);
	}
	if (!enabled)
		return;
	now = now_usec();
	if (last && now - last < interval / 2)
		return;
	last = now;
	notify_send("WATCHDOG=1");
}

/* An fd store name goes into a newline-separated message: a short, plain word. */
static bool fdname_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > NOTIFY_FDNAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i]))
			return false;
	return true;
}

int notify_fdstore_put(const char *name, int fd)
{
	char msg[NOTIFY_FDNAME_MAX + 32];
	int r;

	if (!fdname_ok(name) || fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EINVAL;
	if (!notify_enabled())
		return 0;
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	r = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	if (r < 0)
		log_warn("cannot put %s in the service manager's fd store: %s", name, strerror(-r));
	return r < 0 ? r : 0;
}

int notify_fdstore_remove(const char *name)
{
	char msg[NOTIFY_FDNAME_MAX + 32];

	if (!fdname_ok(name))
		return -EINVAL;
	if (!notify_enabled())
		return 0;
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	return notify_send(msg);
}

/* The passed fd is a listening AF_UNIX stream socket, bound where we expect. */
static int listen_fd_check(int fd, const char *expected_path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { 0 };
	socklen_t len = sizeof(sa);

	if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
		err_set(err, errlen, "socket activation: fd %d is not a listening Unix stream socket", fd);
		return -EINVAL;
	}
	if (!expected_path)
		return 0;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
	    len <= offsetof(struct sockaddr_un, sun_path) || sa.sun_path[0] == '\0') {
		err_set(err, errlen, "socket activation: fd %d is not bound to a path", fd);
		return -EINVAL;
	}
	sa.sun_path[sizeof(sa.sun_path) - 1] = '\0';
	if (strcmp(sa.sun_path, expected_path) != 0) {
		err_set(err, errlen, "socket activation: the passed socket is %s, not --api-socket %s",
			sa.sun_path, expected_path);
		return -EINVAL;
	}
	return 0;
}

static bool is_stored_name(const char *name)
{
	return strncmp(name, NOTIFY_STORED_PREFIX, strlen(NOTIFY_STORED_PREFIX)) == 0 && fdname_ok(name);
}

/* One passed fd: kept in the store's list, or the API socket (at most one). */
static int listen_take(int fd, const char *name, const char *expected_path, struct notify_passed *p,
		       char *err, size_t errlen)
{
	if (is_stored_name(name)) {
		if (p->n_stored == NOTIFY_STORED_MAX) {
			log_warn("fd store: more than %d fds handed back; %s dropped", NOTIFY_STORED_MAX, name);
			close(fd);
			return 0;
		}
		p->stored_fd[p->n_stored] = fd;
		snprintf(p->stored_name[p->n_stored], sizeof(p->stored_name[0]), "%s", name);
		p->n_stored++;
		return 0;
	}
	if (p->api_fd >= 0) {
		err_set(err, errlen, "socket activation: more than one socket passed (%s too)", name);
		close(fd);
		return -EINVAL;
	}
	if (listen_fd_check(fd, expected_path, err, errlen) < 0) {
		close(fd);
		return -EINVAL;
	}
	p->api_fd = fd;
	return 0;
}

int notify_listen_fds(const char *expected_path, struct notify_passed *ret, char *err, size_t errlen)
{
	struct notify_passed p = { .api_fd = -1 };
	char **names = NULL;
	/* sd_listen_fds_with_names() checks LISTEN_PID against getpid() and unsets the variables. */
	int n = sd_listen_fds_with_names(1, &names), r = 0;

	if (n < 0) {
		err_set(err, errlen, "socket activation: bad LISTEN_FDS, LISTEN_PID or LISTEN_FDNAMES: %s",
			strerror(-n));
		return -EINVAL;
	}
	for (int i = 0; i < n; i++) {
		const char *name = names && names[i] ? names[i] : "unknown";
		int fd = SD_LISTEN_FDS_START + i;

		if (r < 0)
			close(fd);
		else
			r = listen_take(fd, name, expected_path, &p, err, errlen);
	}
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	if (r < 0) {
		notify_passed_close(&p);
		return r;
	}
	*ret = p;
	return 0;
}

void notify_passed_close(struct notify_passed *p)
{
	if (p->api_fd >= 0)
		close(p->api_fd);
	p->api_fd = -1;
	for (size_t i = 0; i < p->n_stored; i++)
		close(p->stored_fd[i]);
	p->n_stored = 0;
}

int notify_listen_fd(const char *expected_path, int *ret_fd, char *err, size_t errlen)
{
	struct notify_passed p;
	int r = notify_listen_fds(expected_path, &p, err, errlen);

	if (r < 0)
		return r;
	/* This caller restores nothing from the store: it must not keep guest memory alive for nobody. */
	for (size_t i = 0; i < p.n_stored; i++) {
		log_warn("fd store: %s was handed back, but nothing here restores from it; released",
			 p.stored_name[i]);
		notify_fdstore_remove(p.stored_name[i]);
	}
	*ret_fd = p.api_fd;
	p.api_fd = -1;
	notify_passed_close(&p);
	return 0;
}
