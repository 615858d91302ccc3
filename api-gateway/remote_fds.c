/* SPDX-License-Identifier: Apache-2.0 */
#include "remote_fds.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "errmsg.h"
#include "frame.h"
#include "options.h"

#define KEY "net_fds="
#define IO_TIMEOUT_S 600

/* Where the value that starts at s ends: at the ',' or NUL outside brackets. */
static const char *value_end(const char *s)
{
	int depth = 0;

	for (; *s; s++) {
		if (*s == '[')
			depth++;
		else if (*s == ']')
			depth--;
		else if (*s == ',' && depth == 0)
			break;
	}
	return s;
}

static int parse_fd(const char *s, const char *end, long *ret)
{
	char *e;
	long v;

	if (s == end || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &e, 10);
	if (errno || e != end || v > INT_MAX)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int add_fd(struct remote_net_fds *n, long fd, char *err, size_t errlen)
{
	if (n->n_fds >= REMOTE_FDS_MAX) {
		err_set(err, errlen, "net_fds: at most %d descriptors", REMOTE_FDS_MAX);
		return -EINVAL;
	}
	if (fcntl((int)fd, F_GETFD) < 0) {
		err_set(err, errlen, "net_fds: descriptor %ld is not open", fd);
		return -EINVAL;
	}
	n->fds[n->n_fds++] = (int)fd;
	n->dev[n->n_dev - 1].num_fds++;
	return 0;
}

/* "3", "[3,4]" or "[3-5]" between s and end. */
static int parse_fds(const char *s, const char *end, struct remote_net_fds *n, char *err,
		     size_t errlen)
{
	bool list = end > s && *s == '[';

	if (list) {
		if (end[-1] != ']')
			return -EINVAL;
		s++;
		end--;
	}
	while (s < end) {
		const char *comma = memchr(s, ',', (size_t)(end - s)), *item_end = comma ? comma : end;
		const char *dash = memchr(s, '-', (size_t)(item_end - s));
		long a, b;

		if ((!list && (comma || dash)) || parse_fd(s, dash ? dash : item_end, &a) < 0 ||
		    (dash && parse_fd(dash + 1, item_end, &b) < 0) || (dash && b <= a))
			return -EINVAL;
		for (long fd = a; fd <= (dash ? b : a); fd++)
			if (add_fd(n, fd, err, errlen) < 0)
				return -E2BIG;
		s = comma ? comma + 1 : end;
	}
	return 0;
}

/* "[ID@FDS,ID@FDS]" between s and end. */
static int parse_list(const char *s, const char *end, struct remote_net_fds *n, char *err,
		      size_t errlen)
{
	if (end - s < 2 || *s != '[' || end[-1] != ']')
		return -EINVAL;
	s++;
	end--;
	while (s < end) {
		const char *item_end = value_end(s), *at;
		size_t id_len;
		int r;

		if (item_end > end)
			item_end = end;
		at = memchr(s, '@', (size_t)(item_end - s));
		id_len = at ? (size_t)(at - s) : 0;
		if (!at || id_len == 0 || id_len >= sizeof(n->dev[0].id) || n->n_dev >= REMOTE_NET_FDS_MAX)
			return -EINVAL;
		memcpy(n->dev[n->n_dev].id, s, id_len);
		n->dev[n->n_dev].id[id_len] = '\0';
		if (!options_device_id_ok(n->dev[n->n_dev].id))
			return -EINVAL;
		n->dev[n->n_dev++].num_fds = 0;
		r = parse_fds(at + 1, item_end, n, err, errlen);
		if (r < 0)
			return r;
		s = *item_end == ',' ? item_end + 1 : item_end;
	}
	return 0;
}

int remote_take_net_fds(const char *spec, char **ret_rest, struct remote_net_fds *ret, char *err,
			size_t errlen)
{
	struct remote_net_fds n = { .n_dev = 0 };
	const char *p = spec, *start = NULL, *end;
	char *rest;
	int r;

	/* The key at the start of an item, never inside another's value. */
	while (*p) {
		if (strncmp(p, KEY, strlen(KEY)) == 0) {
			start = p;
			break;
		}
		p = value_end(strchr(p, '=') ? strchr(p, '=') + 1 : p + strlen(p));
		if (*p == ',')
			p++;
	}
	if (!start) {
		*ret = n;
		*ret_rest = strdup(spec);
		return *ret_rest ? 0 : -ENOMEM;
	}
	end = value_end(start + strlen(KEY));
	r = parse_list(start + strlen(KEY), end, &n, err, errlen);
	if (r < 0) {
		if (r != -E2BIG)
			err_set(err, errlen, "net_fds: expected [ID@FD,ID@[FD,...],...], got '%.*s'",
				(int)(end - start - strlen(KEY)), start + strlen(KEY));
		return -EINVAL;
	}
	if (asprintf(&rest, "%.*s%s", (int)(start - spec), spec, *end ? end + 1 : "") < 0)
		return -ENOMEM;
	/* "a,net_fds=[...]" leaves a trailing comma behind. */
	if (*rest && rest[strlen(rest) - 1] == ',')
		rest[strlen(rest) - 1] = '\0';
	*ret = n;
	*ret_rest = rest;
	return 0;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/* Reads to EOF (the server closes every connection after its answer). */
static int read_all(int sock, size_t max, char **ret, size_t *ret_len)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (cap - len < 2) {
			char *grown = cap > max + 4096 ? NULL : realloc(buf, cap * 2);

			if (!grown) {
				free(buf);
				return cap > max + 4096 ? -EFBIG : -ENOMEM;
			}
			buf = grown;
			cap *= 2;
		}
		n = read(sock, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			free(buf);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* Status and body of a Connection: close answer (the API never chunks). */
static int parse_answer(char *text, size_t len, long *ret_status, char **ret_body, size_t *ret_len)
{
	char *end = strstr(text, "\r\n\r\n"), *body;
	int status;

	if (sscanf(text, "HTTP/1.%*1[01] %3d", &status) != 1 || !end)
		return -EPROTO;
	body = end + 4;
	*ret_len = len - (size_t)(body - text);
	*ret_body = malloc(*ret_len + 1);
	if (!*ret_body)
		return -ENOMEM;
	memcpy(*ret_body, body, *ret_len);
	(*ret_body)[*ret_len] = '\0';
	*ret_status = status;
	return 0;
}

int remote_send_with_fds(const char *socket_path, const char *method, const char *path,
			 const char *body, const int *fds, size_t n_fds, size_t max, long *ret_status,
			 char **ret_body, size_t *ret_len, char *err, size_t errlen)
{
	_cleanup_free_ char *request = NULL, *answer = NULL;
	_cleanup_close_ int sock = -1;
	size_t answer_len = 0;
	int n, r;

	if (n_fds > REMOTE_FDS_MAX)
		return -E2BIG;
	body = body ? body : "";
	n = asprintf(&request, "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", method, path,
		     strlen(body), body);
	if (n < 0)
		return -ENOMEM;
	sock = connect_unix(socket_path);
	if (sock < 0) {
		err_set(err, errlen, "cannot connect to the API socket %s: %s", socket_path,
			strerror(-sock));
		return sock;
	}
	r = frame_send_bytes(sock, request, (size_t)n, fds, n_fds);
	if (r == 0)
		r = read_all(sock, max, &answer, &answer_len);
	if (r == 0)
		r = parse_answer(answer, answer_len, ret_status, ret_body, ret_len);
	if (r < 0)
		err_set(err, errlen, "request to %s failed: %s", socket_path,
			r == -EPROTO ? "not an HTTP answer" : strerror(-r));
	return r;
}
