/* SPDX-License-Identifier: Apache-2.0 */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cleanup.h"
#include "host_open.h"
#include "options.h"

/* What one direction of the relay holds back while the other side is slow. */
#define RELAY_BUF 4096
#define RELAY_BACKLOG 1

struct socket_relay {
	pthread_t thread;
	int listen_fd, vm_fd, stop_fd;	/* vm_fd: our end of the pair vmm-core has the other of */
	char path[OPTIONS_SOCKET_PATH_MAX];
	dev_t dev;			/* the socket file we made, to remove only that */
	ino_t ino;
};

struct relay_buf {
	char data[RELAY_BUF];
	size_t len;
};

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* A new pty in raw mode: no echo, no line editing, no CR/LF translation. */
static int pty_open(struct sink *ret, char *err, size_t errlen)
{
	_cleanup_close_ int master = -1, slave = -1, in = -1;
	struct termios t;
	char path[sizeof(ret->pty_path)];
	int e;

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
	    ptsname_r(master, path, sizeof(path)) != 0)
		goto fail;
	slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0 || tcgetattr(slave, &t) < 0)
		goto fail;
	cfmakeraw(&t);
	if (tcsetattr(slave, TCSANOW, &t) < 0 || set_nonblocking(master) < 0)
		goto fail;
	in = fcntl(master, F_DUPFD_CLOEXEC, 0);
	if (in < 0)
		goto fail;
	ret->out_fd = TAKE_FD(master);
	ret->in_fd = TAKE_FD(in);
	ret->pty_slave_fd = TAKE_FD(slave);
	memcpy(ret->pty_path, path, sizeof(path));
	return 0;
fail:
	e = errno;
	snprintf(err, errlen, "cannot make a pty: %s", strerror(e));
	return -e;
}

static int socket_address(const char *path, struct sockaddr_un *ret)
{
	*ret = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (!path || path[0] != '/' || strlen(path) >= sizeof(ret->sun_path))
		return -EINVAL;
	memcpy(ret->sun_path, path, strlen(path) + 1);
	return 0;
}

/* A socket left at path by an earlier run goes; anything else stays and is refused. */
static int socket_path_claim(const struct sockaddr_un *sa, char *err, size_t errlen)
{
	_cleanup_close_ int probe = -1;
	struct stat st;

	if (lstat(sa->sun_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "serial socket %s: %m", sa->sun_path);
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "serial socket %s: exists and is not a socket", sa->sun_path);
		return -EEXIST;
	}
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
		snprintf(err, errlen, "serial socket %s: another process listens on it", sa->sun_path);
		return -EADDRINUSE;
	}
	if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "serial socket %s: cannot remove the stale one: %m", sa->sun_path);
		return -errno;
	}
	return 0;
}

static int socket_listen(struct socket_relay *r, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	int ret;

	if (socket_address(path, &sa) < 0) {
		snprintf(err, errlen, "serial socket path must be absolute and under %zu bytes",
			 sizeof(sa.sun_path));
		return -EINVAL;
	}
	ret = socket_path_claim(&sa, err, errlen);
	if (ret < 0)
		return ret;
	r->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	/* Nobody can connect before listen(): the mode is right by then. */
	if (r->listen_fd < 0 || bind(r->listen_fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "serial socket %s: %m", path);
		return -errno;
	}
	if (chmod(path, 0600) < 0 || lstat(path, &st) < 0 || listen(r->listen_fd, RELAY_BACKLOG) < 0) {
		ret = -errno;
		snprintf(err, errlen, "serial socket %s: %m", path);
		unlink(path);
		return ret;
	}
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	memcpy(r->path, sa.sun_path, sizeof(r->path));
	return 0;
}

/* Moves what buf holds to fd as far as fd takes it; -1 when fd is gone. */
static int relay_flush(int fd, struct relay_buf *b)
{
	ssize_t n = send(fd, b->data, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	memmove(b->data, b->data + n, b->len - (size_t)n);
	b->len -= (size_t)n;
	return 0;
}

/* Fills buf from fd; -1 at end of file or on an error. */
static int relay_fill(int fd, struct relay_buf *b)
{
	ssize_t n = recv(fd, b->data + b->len, sizeof(b->data) - b->len, MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	b->len += (size_t)n;
	return 0;
}

/* One client at a time: later ones are hung up on until it leaves. */
static void relay_accept(struct socket_relay *r, int *client, struct relay_buf *to_client)
{
	int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (*client >= 0) {
		close(fd);
		return;
	}
	*client = fd;
	/* The client sees output from when it came, not what nobody read. */
	to_client->len = 0;
}

static void relay_drop_client(int *client, struct relay_buf *to_client)
{
	cleanup_closep(client);
	*client = -1;
	to_client->len = 0;
}

/*
 * Copies bytes between the client and vmm-core. Each direction holds at most
 * RELAY_BUF bytes and stops reading while they wait, so a slow side makes the
 * other wait (vmm-core then drops output); with no client, output is dropped.
 */
static void *relay_thread(void *arg)
{
	struct socket_relay *r = arg;
	struct relay_buf *to_client = calloc(1, sizeof(*to_client)), *to_vm = calloc(1, sizeof(*to_vm));
	int client = -1;

	while (to_client && to_vm) {
		struct pollfd p[4] = {
			{ .fd = r->stop_fd, .events = POLLIN },
			{ .fd = r->listen_fd, .events = POLLIN },
			{ .fd = r->vm_fd, .events = (to_client->len ? 0 : POLLIN) | (to_vm->len ? POLLOUT : 0) },
			{ .fd = client, .events = (to_vm->len ? 0 : POLLIN) | (to_client->len ? POLLOUT : 0) },
		};

		if (poll(p, ARRAY_SIZE(p), -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN)
			relay_accept(r, &client, to_client);
		/* vmm-core is gone: the VM has failed, and the relay with it. */
		if (p[2].revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		if ((p[2].revents & POLLIN) && relay_fill(r->vm_fd, to_client) < 0)
			break;
		if (client < 0)
			to_client->len = 0;
		if ((p[2].revents & POLLOUT) && relay_flush(r->vm_fd, to_vm) < 0)
			break;
		if (client < 0 || p[3].fd < 0)
			continue;
		/* What a leaving client sent last is read before its hangup counts. */
		if ((p[3].revents & POLLIN) ? relay_fill(client, to_vm) < 0 :
		    (p[3].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0)
			relay_drop_client(&client, to_client);
		else if ((p[3].revents & POLLOUT) && relay_flush(client, to_client) < 0)
			relay_drop_client(&client, to_client);
	}
	cleanup_closep(&client);
	free(to_client);
	free(to_vm);
	return NULL;
}

static void relay_free(struct socket_relay *r)
{
	struct stat st;

	if (!r)
		return;
	/* Another process may have put its own file there since: leave that one alone. */
	if (r->path[0] && lstat(r->path, &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino)
		unlink(r->path);
	cleanup_closep(&r->listen_fd);
	cleanup_closep(&r->vm_fd);
	cleanup_closep(&r->stop_fd);
	free(r);
}

static void relay_stop(struct socket_relay *r)
{
	uint64_t one = 1;

	if (!r)
		return;
	/* An eventfd far from its maximum always takes the write. */
	(void)!write(r->stop_fd, &one, sizeof(one));
	pthread_join(r->thread, NULL);
	relay_free(r);
}

static int socket_open(const char *path, struct sink *ret, char *err, size_t errlen)
{
	struct socket_relay *r = calloc(1, sizeof(*r));
	int sv[2] = { -1, -1 }, in = -1, e;

	if (!r)
		return -ENOMEM;
	*r = (struct socket_relay){ .listen_fd = -1, .vm_fd = -1, .stop_fd = -1 };
	e = socket_listen(r, path, err, errlen);
	if (e < 0)
		goto fail;
	r->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (r->stop_fd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    set_nonblocking(sv[0]) < 0 || (in = fcntl(sv[0], F_DUPFD_CLOEXEC, 0)) < 0) {
		e = -errno;
		snprintf(err, errlen, "serial socket %s: %m", path);
		goto fail;
	}
	r->vm_fd = TAKE_FD(sv[1]);
	e = -pthread_create(&r->thread, NULL, relay_thread, r);
	if (e < 0) {
		snprintf(err, errlen, "serial socket %s: cannot start its thread: %s", path, strerror(-e));
		goto fail;
	}
	ret->out_fd = TAKE_FD(sv[0]);
	ret->in_fd = in;
	ret->relay = r;
	return 0;
fail:
	cleanup_closep(&sv[0]);
	cleanup_closep(&sv[1]);
	cleanup_closep(&in);
	relay_free(r);
	return e;
}

static int file_open(const char *path, bool restore, int *ret_fd, char *err, size_t errlen)
{
	int fd;

	if (!path || path[0] != '/') {
		snprintf(err, errlen, "output file path must be absolute");
		return -EINVAL;
	}
	/*
	 * A restored VM goes on writing where the snapshotted one stopped, to a
	 * file that exists (a named one was made when the binding was taken),
	 * reached without links: the path may come from the snapshot.
	 */
	if (restore) {
		fd = host_open_strict(path, O_WRONLY | O_APPEND);
		if (fd < 0) {
			snprintf(err, errlen, "cannot open the output %s: %s", path, fd == -ELOOP ?
				 "a symbolic link is on the way" : fd == -EINVAL ?
				 "not a regular file" : strerror(-fd));
			return fd == -ELOOP || fd == -EINVAL ? -EBADMSG : fd;
		}
		*ret_fd = fd;
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC | O_TRUNC,
		  0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open the output %s: %m", path);
		return -errno;
	}
	*ret_fd = fd;
	return 0;
}

/* Our own terminal: output to stdout, and what is typed on stdin goes to the guest. */
static int tty_open(struct sink *ret, char *err, size_t errlen)
{
	int out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);

	if (out < 0) {
		snprintf(err, errlen, "cannot use standard output: %m");
		return -errno;
	}
	ret->out_fd = out;
	/* Without a standard input the guest simply gets no input. */
	ret->in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
	return 0;
}

int sink_open_null(struct sink *ret, char *err, size_t errlen)
{
	ret->out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (ret->out_fd < 0) {
		snprintf(err, errlen, "cannot open /dev/null: %m");
		return -errno;
	}
	return 0;
}

int sink_open(const Cloister__SerialConfig *s, bool restore, struct sink *ret, char *err, size_t errlen)
{
	struct sink k = SINK_INIT;
	int r = 0;

	switch (s ? s->mode : CLOISTER__SERIAL_MODE__SERIAL_OFF) {
	case CLOISTER__SERIAL_MODE__SERIAL_OFF:
		break;
	case CLOISTER__SERIAL_MODE__SERIAL_NULL:
		r = sink_open_null(&k, err, errlen);
		break;
	case CLOISTER__SERIAL_MODE__SERIAL_TTY:
		r = tty_open(&k, err, errlen);
		break;
	case CLOISTER__SERIAL_MODE__SERIAL_FILE:
		r = file_open(s->path, restore, &k.out_fd, err, errlen);
		break;
	case CLOISTER__SERIAL_MODE__SERIAL_PTY:
		r = pty_open(&k, err, errlen);
		break;
	case CLOISTER__SERIAL_MODE__SERIAL_SOCKET:
		if (restore && (r = host_parent_strict(s->path)) < 0) {
			snprintf(err, errlen, "serial socket %s: its directory is not reached without "
				 "links", s->path);
			return -EBADMSG;
		}
		r = socket_open(s->path, &k, err, errlen);
		break;
	default:
		snprintf(err, errlen, "output mode %d is not supported", s->mode);
		return -EINVAL;
	}
	if (r < 0)
		return r;
	*ret = k;
	return 0;
}

void sink_handed_over(struct sink *s)
{
	cleanup_closep(&s->out_fd);
	cleanup_closep(&s->in_fd);
	s->out_fd = s->in_fd = -1;
}

void sink_close(struct sink *s)
{
	sink_handed_over(s);
	relay_stop(s->relay);
	cleanup_closep(&s->pty_slave_fd);
	*s = SINK_INIT;
}

