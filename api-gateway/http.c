/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API server: a Unix socket, one serving thread with a poll() loop over
 * at most API_CONNECTION_LIMIT connections, and one op thread. Each
 * connection carries one request: read whole (http_parse.c), routed
 * (http_routes.c), answered, closed. File descriptors the client sends
 * along (SCM_RIGHTS, in any read of the request) stay with the connection
 * until the request is routed, which takes them or closes them.
 *
 * Why our own loop and parser rather than a library: CH's client needs an
 * empty reason phrase, and the API needs refusals that Debian's HTTP server
 * libraries do not make (libmicrohttpd and libevent's evhttp both accept
 * obs-fold and take one of several Content-Length headers; evhttp writes
 * its own HTML error pages and its timeout restarts on every byte); llhttp
 * is not packaged in Debian 12. One request per connection over a local
 * socket needs little: the parser is short, strict and fuzzed.
 */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "http_parse.h"
#include "http_routes.h"
#include "log.h"

#define READ_CHUNK (16u * 1024u)
/* After the response, what the client still sends is read and dropped for a while. */
#define LINGER_MS 2000u
#define LINGER_BYTES (4u * API_BODY_MAX)
#define ACCEPTS_PER_ROUND 8
/* Out of file descriptors: accepting pauses this long rather than spinning. */
#define ACCEPT_BACKOFF_MS 200u
#define NO_DEADLINE UINT64_MAX

enum conn_state {
	CONN_FREE,
	CONN_READING,
	CONN_WAITING,		/* its op runs on the op thread */
	CONN_WRITING,
	CONN_LINGERING,
};

struct conn {
	enum conn_state state;
	int fd;
	uint64_t accepted_seq, deadline_ms;
	struct http_request req;
	bool continue_sent, shutdown_vmm;
	/* descriptors received with the request; fds_overflow: more came than fit */
	int fds[API_REQUEST_FDS_MAX];
	size_t n_fds;
	bool fds_overflow;
	char *out;
	size_t out_len, out_off, drained;
};

struct api_server {
	int listen_fd, wake_fd;
	char *path;
	/* identity of the socket file we created, so stop never unlinks a stranger's */
	dev_t dev;
	ino_t ino;
	const struct api_ops *ops;
	void *opaque;
	pthread_t serve_thread, op_thread;
	bool serve_started, op_started;
	atomic_bool stopping;
	struct conn conns[API_CONNECTION_LIMIT];
	uint64_t accepts;
	uint64_t accept_resume_ms;	/* accepting pauses until then */

	/* The serving thread's view: an op was handed over and has not been answered. */
	bool op_busy;
	const char *op_name;
	size_t op_conn;

	/* Handover to and from the op thread, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool job_pending, job_done, op_exit;
	struct api_call job;
	struct api_response job_resp;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wake(struct api_server *s)
{
	uint64_t one = 1;

	(void)!write(s->wake_fd, &one, sizeof(one));
}

/* ---- the op thread ---- */

static void *op_thread_main(void *opaque)
{
	struct api_server *s = opaque;

	pthread_setname_np(pthread_self(), "api-op");
	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct api_call call;
		struct api_response resp = { 0 };

		while (!s->job_pending && !s->op_exit)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->op_exit)
			break;
		call = s->job;
		s->job = (struct api_call){ 0 };
		s->job_pending = false;
		pthread_mutex_unlock(&s->lock);

		api_call_run(s->ops, s->opaque, &call, &resp);
		api_call_release(&call);

		pthread_mutex_lock(&s->lock);
		s->job_resp = resp;
		s->job_done = true;
		wake(s);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- connections ---- */

static void conn_close_fds(struct conn *c)
{
	for (size_t i = 0; i < c->n_fds; i++)
		close(c->fds[i]);
	c->n_fds = 0;
}

static void conn_close(struct conn *c)
{
	conn_close_fds(c);
	if (c->fd >= 0)
		close(c->fd);
	http_request_release(&c->req);
	free(c->out);
	*c = (struct conn){ .state = CONN_FREE, .fd = -1 };
}

static void conn_try_write(struct api_server *s, struct conn *c);

static void conn_respond(struct api_server *s, struct conn *c, struct api_response *resp)
{
	int r = api_response_format(resp, &c->out, &c->out_len);

	/* Answered: descriptors the request did not take go now. */
	conn_close_fds(c);
	c->shutdown_vmm = resp->shutdown_vmm;
	api_response_release(resp);
	if (r < 0) {
		conn_close(c);
		return;
	}
	c->out_off = 0;
	c->state = CONN_WRITING;
	c->deadline_ms = now_ms() + API_WRITE_DEADLINE_S * 1000u;
	conn_try_write(s, c);
}

static void conn_error(struct api_server *s, struct conn *c, int status, const char *summary,
		       const char *detail)
{
	struct api_response resp;

	api_response_error(&resp, status, summary, detail);
	conn_respond(s, c, &resp);
}

static void conn_sent(struct api_server *s, struct conn *c)
{
	char err[256] = "";

	if (c->shutdown_vmm && s->ops->shutdown_vmm(s->opaque, err, sizeof(err)) < 0)
		log_error("api: vmm.shutdown: %s", err);
	c->shutdown_vmm = false;
	/* Read what the client still sends, so that closing does not reset it. */
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_LINGERING;
	c->drained = 0;
	c->deadline_ms = now_ms() + LINGER_MS;
}

static void conn_try_write(struct api_server *s, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* The client left: the op (if any) still took place. */
			if (c->shutdown_vmm)
				conn_sent(s, c);
			conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	conn_sent(s, c);
}

static const char *error_summary(int status)
{
	switch (status) {
	case 408: return "request timeout";
	case 413: return "request body too large";
	case 414: return "request target too long";
	case 417: return "expectation failed";
	case 431: return "request header fields too large";
	case 505: return "HTTP version not supported";
	case 500: return "internal error";
	default: return "bad request";
	}
}

static void conn_dispatch(struct api_server *s, struct conn *c)
{
	struct http_request *r = &c->req;
	struct api_call call;
	struct api_response resp = { 0 };
	char detail[96];
	size_t n_fds = c->n_fds;

	if (c->fds_overflow) {
		conn_close_fds(c);
		snprintf(detail, sizeof(detail), "more than %u file descriptors came with the request",
			 API_REQUEST_FDS_MAX);
		conn_error(s, c, 400, "bad request", detail);
		return;
	}
	/* From here on the descriptors are the router's. */
	c->n_fds = 0;
	if (!api_dispatch_fds(s->ops, s->opaque, r->method, r->target, r->body, r->body_len, c->fds,
			      n_fds, &call, &resp)) {
		conn_respond(s, c, &resp);
		return;
	}
	if (s->op_busy) {
		snprintf(detail, sizeof(detail), "%s is in progress", s->op_name);
		api_call_release(&call);
		conn_error(s, c, 409, "another operation is in progress", detail);
		return;
	}
	s->op_busy = true;
	s->op_name = api_call_name(&call);
	s->op_conn = (size_t)(c - s->conns);
	c->state = CONN_WAITING;
	c->deadline_ms = NO_DEADLINE;
	pthread_mutex_lock(&s->lock);
	s->job = call;
	s->job_pending = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* The head is in and a body follows: the body gets its own deadline. */
static void conn_head_done(struct conn *c)
{
	static const char cont[] = "HTTP/1.1 100 \r\n\r\n";

	c->deadline_ms = now_ms() + API_BODY_DEADLINE_S * 1000u;
	if (c->req.expect_continue && !c->continue_sent) {
		c->continue_sent = true;
		(void)!send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
}

/* Keeps what SCM_RIGHTS brought, up to API_REQUEST_FDS_MAX; closes the rest. */
static void conn_take_fds(struct conn *c, struct msghdr *msg)
{
	if (msg->msg_flags & MSG_CTRUNC)
		c->fds_overflow = true;	/* the kernel closed what did not fit */
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t n;
		int *fds;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, fds + i, sizeof(fd));
			if (c->n_fds < API_REQUEST_FDS_MAX) {
				c->fds[c->n_fds++] = fd;
			} else {
				close(fd);
				c->fds_overflow = true;
			}
		}
	}
}

/* read(), but descriptors sent along are received (close-on-exec) and kept. */
static ssize_t conn_recv(struct conn *c, char *buf, size_t len)
{
	union {
		char buf[CMSG_SPACE(API_REQUEST_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	ssize_t n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

	if (n >= 0)
		conn_take_fds(c, &msg);
	return n;
}

static void conn_read(struct api_server *s, struct conn *c)
{
	char buf[READ_CHUNK];
	bool was_in_body = http_request_in_body(&c->req);
	size_t used;
	ssize_t n;

	n = conn_recv(c, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The client hung up (or shut its side) before a whole request. */
		conn_close(c);
		return;
	}
	used = http_request_feed(&c->req, buf, (size_t)n);
	if (c->req.state == HTTP_PARSE_ERROR) {
		conn_error(s, c, c->req.error_status, error_summary(c->req.error_status), c->req.error);
		return;
	}
	if (!was_in_body && http_request_in_body(&c->req))
		conn_head_done(c);
	if (c->req.state != HTTP_PARSE_DONE)
		return;
	if (used < (size_t)n) {
		conn_error(s, c, 400, "bad request",
			   "data after the end of the request (one request per connection)");
		return;
	}
	conn_dispatch(s, c);
}

static void conn_linger(struct conn *c)
{
	char buf[READ_CHUNK];
	ssize_t n = read(c->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	c->drained += n > 0 ? (size_t)n : 0;
	if (n <= 0 || c->drained > LINGER_BYTES)
		conn_close(c);
}

static void conn_deadline(struct api_server *s, struct conn *c)
{
	if (c->state != CONN_READING) {
		conn_close(c);
		return;
	}
	conn_error(s, c, 408, "request timeout",
		   http_request_in_body(&c->req) ? "the request body did not arrive in time" :
						   "the request head did not arrive in time");
}

/* ---- accepting ---- */

static struct conn *conn_free_slot(struct api_server *s)
{
	for (size_t i = 0; i < API_CONNECTION_LIMIT; i++)
		if (s->conns[i].state == CONN_FREE)
			return &s->conns[i];
	return NULL;
}

/* Which of two connections to drop first: one already answered, else the older reader. */
static bool evict_before(const struct conn *a, const struct conn *b)
{
	if ((a->state == CONN_LINGERING) != (b->state == CONN_LINGERING))
		return a->state == CONN_LINGERING;
	return a->accepted_seq < b->accepted_seq;
}

/*
 * Frees a slot: a connection whose answer has gone out, else the one (other
 * than keep) that has been reading its request longest.
 */
static void evict_slowest(struct api_server *s, const struct conn *keep)
{
	static const char busy[] = "HTTP/1.1 503 \r\nConnection: close\r\nContent-Type: application/json\r\n"
				   "Content-Length: 43\r\n\r\n[\"too many connections\",\"request too slow\"]";
	struct conn *victim = NULL;

	for (size_t i = 0; i < API_CONNECTION_LIMIT; i++) {
		struct conn *c = &s->conns[i];

		if (c != keep && (c->state == CONN_READING || c->state == CONN_LINGERING) &&
		    (!victim || evict_before(c, victim)))
			victim = c;
	}
	if (!victim)
		return;
	if (victim->state == CONN_READING)
		(void)!send(victim->fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	conn_close(victim);
}

static void accept_clients(struct api_server *s)
{
	for (int i = 0; i < ACCEPTS_PER_ROUND; i++) {
		struct conn *c = conn_free_slot(s);
		int fd;

		if (!c)
			return;
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			/* Logged once per pause, so a full fd table cannot flood the log. */
			log_error("api: accept: %m; accepting again in %u ms", ACCEPT_BACKOFF_MS);
			s->accept_resume_ms = now_ms() + ACCEPT_BACKOFF_MS;
			return;
		}
		*c = (struct conn){ .state = CONN_READING, .fd = fd, .accepted_seq = ++s->accepts };
		c->deadline_ms = now_ms() + API_HEAD_DEADLINE_S * 1000u;
		http_request_init(&c->req, API_BODY_MAX);
		/* A client that wrote its request at once is served before anyone is dropped. */
		conn_read(s, c);
		/* Keep one slot free for whoever comes next. */
		if (!conn_free_slot(s))
			evict_slowest(s, c);
	}
}

/* ---- the serving thread ---- */

static void take_op_result(struct api_server *s)
{
	struct api_response resp;
	uint64_t count;
	bool done;

	(void)!read(s->wake_fd, &count, sizeof(count));
	pthread_mutex_lock(&s->lock);
	done = s->job_done;
	resp = s->job_resp;
	s->job_done = false;
	s->job_resp = (struct api_response){ 0 };
	pthread_mutex_unlock(&s->lock);
	if (!done)
		return;
	s->op_busy = false;
	if (s->conns[s->op_conn].state == CONN_WAITING)
		conn_respond(s, &s->conns[s->op_conn], &resp);
	else
		api_response_release(&resp);
}

static short conn_events(const struct conn *c)
{
	switch (c->state) {
	case CONN_READING:
	case CONN_LINGERING:
		return POLLIN;
	case CONN_WRITING:
		return POLLOUT;
	default:
		return 0;
	}
}

static int poll_timeout(const struct api_server *s, uint64_t now)
{
	uint64_t next = s->accept_resume_ms > now ? s->accept_resume_ms : NO_DEADLINE;

	for (size_t i = 0; i < API_CONNECTION_LIMIT; i++)
		if (s->conns[i].state != CONN_FREE && s->conns[i].deadline_ms < next)
			next = s->conns[i].deadline_ms;
	if (next == NO_DEADLINE)
		return -1;
	return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

static void serve_round(struct api_server *s)
{
	struct pollfd pfd[2 + API_CONNECTION_LIMIT];
	uint64_t now = now_ms();
	int n;

	pfd[0] = (struct pollfd){ .fd = s->wake_fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .events = POLLIN,
		.fd = conn_free_slot(s) && s->accept_resume_ms <= now ? s->listen_fd : -1 };
	for (size_t i = 0; i < API_CONNECTION_LIMIT; i++) {
		const struct conn *c = &s->conns[i];
		short ev = conn_events(c);

		pfd[2 + i] = (struct pollfd){ .fd = ev ? c->fd : -1, .events = ev };
	}
	n = poll(pfd, 2 + API_CONNECTION_LIMIT, poll_timeout(s, now));
	if (n < 0)
		return;
	if (pfd[0].revents)
		take_op_result(s);
	now = now_ms();
	for (size_t i = 0; i < API_CONNECTION_LIMIT; i++) {
		struct conn *c = &s->conns[i];
		short rev = pfd[2 + i].revents;

		if (rev && c->state == CONN_READING)
			conn_read(s, c);
		else if (rev && c->state == CONN_WRITING)
			conn_try_write(s, c);
		else if (rev && c->state == CONN_LINGERING)
			conn_linger(c);
		if (c->state != CONN_FREE && c->deadline_ms <= now)
			conn_deadline(s, c);
	}
	if (pfd[1].revents)
		accept_clients(s);
}

static void *serve_thread_main(void *opaque)
{
	struct api_server *s = opaque;

	pthread_setname_np(pthread_self(), "api-serve");
	while (!atomic_load(&s->stopping))
		serve_round(s);
	return NULL;
}

/* ---- socket ---- */

/* 0 when path is free (or held a dead socket, now removed). */
static int api_socket_clear_stale(const char *path, const struct sockaddr_un *sa)
{
	_cleanup_close_ int probe = -1;
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	if (connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		return -EADDRINUSE;
	if (errno != ECONNREFUSED)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/*
 * Binds and listens under a temporary name beside path, then renames it
 * into place: whoever sees the path can connect at once. (A path too long
 * for a temporary name is bound directly.)
 */
static int api_socket_listen(const char *path, int *ret_fd, struct stat *ret_st)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX }, bound = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	struct stat st;
	mode_t old_mask;
	int r, n;

	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	r = api_socket_clear_stale(path, &sa);
	if (r < 0)
		return r;
	n = snprintf(bound.sun_path, sizeof(bound.sun_path), "%s.%d", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(bound.sun_path))
		bound = sa;
	unlink(bound.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* The socket is created 0600 from the start: no window where others may connect. */
	old_mask = umask(0177);
	r = bind(fd, (struct sockaddr *)&bound, sizeof(bound));
	umask(old_mask);
	if (r < 0)
		return -errno;
	if (lstat(bound.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode) || (st.st_mode & 0077)) {
		unlink(bound.sun_path);
		return -EPERM;
	}
	if (listen(fd, 64) < 0 ||
	    (strcmp(bound.sun_path, path) != 0 && rename(bound.sun_path, path) < 0)) {
		r = -errno;
		unlink(bound.sun_path);
		return r;
	}
	*ret_fd = TAKE_FD(fd);
	*ret_st = st;
	return 0;
}

/* ---- start and stop ---- */

static void api_server_free(struct api_server *s)
{
	for (size_t i = 0; i < API_CONNECTION_LIMIT; i++)
		conn_close(&s->conns[i]);
	api_call_release(&s->job);
	api_response_release(&s->job_resp);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->path);
	free(s);
}

static struct api_server *api_server_new(const char *socket_path, const struct api_ops *ops, void *opaque)
{
	struct api_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->listen_fd = -1;
	s->ops = ops;
	s->opaque = opaque;
	for (size_t i = 0; i < API_CONNECTION_LIMIT; i++)
		s->conns[i] = (struct conn){ .state = CONN_FREE, .fd = -1 };
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	atomic_init(&s->stopping, false);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->path = strdup(socket_path);
	if (s->wake_fd < 0 || !s->path) {
		api_server_free(s);
		return NULL;
	}
	return s;
}

/* Both threads start with every signal blocked: signals are the main loop's. */
static int api_server_spawn(struct api_server *s)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&s->op_thread, NULL, op_thread_main, s);
	s->op_started = r == 0;
	if (r == 0) {
		r = -pthread_create(&s->serve_thread, NULL, serve_thread_main, s);
		s->serve_started = r == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* Stops the serving thread, then waits for the op thread to finish what it runs. */
static void api_server_join(struct api_server *s, bool unlink_path)
{
	struct stat st;

	atomic_store(&s->stopping, true);
	wake(s);
	if (s->serve_started)
		pthread_join(s->serve_thread, NULL);
	/* Nobody new gets in while an op finishes. */
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	s->listen_fd = -1;
	if (unlink_path && lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	for (size_t i = 0; i < API_CONNECTION_LIMIT; i++)
		conn_close(&s->conns[i]);
	pthread_mutex_lock(&s->lock);
	s->op_exit = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->op_started)
		pthread_join(s->op_thread, NULL);
}

int api_server_start(const char *socket_path, const struct api_ops *ops, void *opaque,
		     struct api_server **ret)
{
	struct api_server *s;
	struct stat st = { 0 };
	int r;

	if (!socket_path || !ops || !ret)
		return -EINVAL;
	s = api_server_new(socket_path, ops, opaque);
	if (!s)
		return -ENOMEM;
	r = api_socket_listen(socket_path, &s->listen_fd, &st);
	if (r < 0) {
		log_error("api: cannot listen on %s: %s", socket_path, strerror(-r));
		api_server_free(s);
		return r;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	r = api_server_spawn(s);
	if (r < 0) {
		log_error("api: cannot start the server threads: %s", strerror(-r));
		api_server_join(s, true);
		api_server_free(s);
		return r;
	}
	log_info("api: listening on %s", socket_path);
	*ret = s;
	return 0;
}

int api_server_start_fd(int listen_fd, const char *socket_path, const struct api_ops *ops,
			void *opaque, struct api_server **ret)
{
	struct api_server *s;
	int flags, r;

	if (listen_fd < 0 || !socket_path || !ops || !ret)
		return -EINVAL;
	s = api_server_new(socket_path, ops, opaque);
	if (!s)
		return -ENOMEM;
	flags = fcntl(listen_fd, F_GETFL);
	if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(listen_fd, F_SETFD, FD_CLOEXEC) < 0) {
		r = -errno;
		api_server_free(s);
		return r;
	}
	/* dev and ino stay 0: the path belongs to whoever made the socket, and stays. */
	s->listen_fd = listen_fd;
	r = api_server_spawn(s);
	if (r < 0) {
		log_error("api: cannot start the server threads: %s", strerror(-r));
		api_server_join(s, false);
		api_server_free(s);
		return r;
	}
	log_info("api: serving the passed socket %s", socket_path);
	*ret = s;
	return 0;
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	api_server_join(s, true);
	api_server_free(s);
}
