/* SPDX-License-Identifier: Apache-2.0 */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "options.h"

#define API_ERR_MAX 512

struct api_server {
	struct MHD_Daemon *daemon;
	int listen_fd;
	char *path;
	/* identity of the socket file we created, so stop never unlinks a stranger's */
	dev_t dev;
	ino_t ino;
	const struct api_ops *ops;
	void *opaque;
};

struct api_request {
	const struct route *route;
	bool shutdown_when_sent;
	char *body;
	size_t len;
	size_t discarded;
	bool too_large;
};

typedef enum MHD_Result (*route_handler)(struct api_server *s, struct api_request *req,
					 struct MHD_Connection *c);

struct route {
	const char *path;
	const char *method;
	route_handler handle;
};

static void json_put(struct json_object **o)
{
	if (*o)
		json_object_put(*o);
}

#define _cleanup_json_ __attribute__((cleanup(json_put)))

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int http_status_for_error(int err)
{
	switch (err) {
	case 0:
		return MHD_HTTP_NO_CONTENT;
	case -ENOENT:
		return MHD_HTTP_NOT_FOUND;
	case -EINVAL:
		return MHD_HTTP_METHOD_NOT_ALLOWED;
	case -EEXIST:
	case -EBUSY:
		return MHD_HTTP_CONFLICT;
	case -EBADMSG:
		return MHD_HTTP_BAD_REQUEST;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

/* ---- request bodies ---- */

static int parse_body_object(const char *body, size_t len, struct json_object **ret,
			     char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end;

	if (!body || len == 0) {
		set_err(err, errlen, "the request needs a JSON body");
		return -EINVAL;
	}
	if (len > API_BODY_MAX || memchr(body, '\0', len)) {
		set_err(err, errlen, "the request body is not JSON text");
		return -EINVAL;
	}
	tok = json_tokener_new_ex(API_JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	obj = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success) {
		json_object_put(obj);
		set_err(err, errlen, "malformed JSON: %s",
			jerr == json_tokener_continue ? "truncated" : json_tokener_error_desc(jerr));
		return -EINVAL;
	}
	for (; end < len; end++)
		if (!strchr(" \t\r\n", body[end])) {
			json_object_put(obj);
			set_err(err, errlen, "malformed JSON: trailing data after the object");
			return -EINVAL;
		}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		set_err(err, errlen, "the request body must be a JSON object");
		return -EINVAL;
	}
	*ret = obj;
	return 0;
}

/* A required string field holding a file:/// URL with an absolute path. */
static int get_file_url(struct json_object *obj, const char *key, char **ret, char *err, size_t errlen)
{
	_cleanup_free_ char *path = NULL;
	struct json_object *v;
	const char *url;
	char *copy;
	int r;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string)) {
		set_err(err, errlen, "'%s' is missing or not a string", key);
		return -EINVAL;
	}
	url = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(url)) {
		set_err(err, errlen, "'%s' contains a NUL byte", key);
		return -EINVAL;
	}
	r = parse_file_url(url, &path);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		set_err(err, errlen, "'%s' must be a file:/// URL with an absolute path", key);
		return -EINVAL;
	}
	copy = strdup(url);
	if (!copy)
		return -ENOMEM;
	*ret = copy;
	return 0;
}

/* An optional boolean field; *ret keeps its value when the key is absent. */
static int get_optional_bool(struct json_object *obj, const char *key, bool *ret, char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		set_err(err, errlen, "'%s' must be true or false", key);
		return -EINVAL;
	}
	*ret = json_object_get_boolean(v);
	return 0;
}

int api_parse_snapshot_body(const char *body, size_t len, char **ret_destination_url,
			    char *err, size_t errlen)
{
	_cleanup_json_ struct json_object *obj = NULL;
	int r;

	r = parse_body_object(body, len, &obj, err, errlen);
	if (r < 0)
		return r;
	return get_file_url(obj, "destination_url", ret_destination_url, err, errlen);
}

int api_parse_restore_body(const char *body, size_t len, char **ret_source_url, bool *ret_resume,
			   char *err, size_t errlen)
{
	_cleanup_json_ struct json_object *obj = NULL;
	_cleanup_free_ char *url = NULL;
	bool resume = false, prefault = false;
	int r;

	r = parse_body_object(body, len, &obj, err, errlen);
	if (r < 0)
		return r;
	r = get_file_url(obj, "source_url", &url, err, errlen);
	if (r < 0)
		return r;
	r = get_optional_bool(obj, "resume", &resume, err, errlen);
	if (r < 0)
		return r;
	/* Memory is always copied in, so prefault changes nothing; its type is still checked. */
	r = get_optional_bool(obj, "prefault", &prefault, err, errlen);
	if (r < 0)
		return r;
	*ret_source_url = TAKE_PTR(url);
	*ret_resume = resume;
	return 0;
}

/* ---- responses ---- */

static enum MHD_Result queue_buffer(struct MHD_Connection *c, unsigned status, const char *body,
				    size_t len, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (len)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result queue_json(struct MHD_Connection *c, unsigned status, struct json_object *o)
{
	size_t len;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);

	if (!s)
		return MHD_NO;
	return queue_buffer(c, status, s, len, NULL);
}

/*
 * Cloud Hypervisor answers errors with a JSON array of messages, outermost
 * first; clients that print it stay readable with ours.
 */
static enum MHD_Result queue_error_allow(struct MHD_Connection *c, unsigned status,
					 const char *summary, const char *detail, const char *allow)
{
	_cleanup_json_ struct json_object *arr = json_object_new_array();
	size_t len;
	const char *s;

	if (!arr)
		return MHD_NO;
	json_object_array_add(arr, json_object_new_string(summary));
	if (detail && *detail)
		json_object_array_add(arr, json_object_new_string(detail));
	s = json_object_to_json_string_length(arr, JSON_C_TO_STRING_PLAIN, &len);
	if (!s)
		return MHD_NO;
	return queue_buffer(c, status, s, len, allow);
}

static enum MHD_Result queue_error(struct MHD_Connection *c, unsigned status, const char *summary,
				   const char *detail)
{
	return queue_error_allow(c, status, summary, detail, NULL);
}

static enum MHD_Result queue_no_content(struct MHD_Connection *c)
{
	return queue_buffer(c, MHD_HTTP_NO_CONTENT, "", 0, NULL);
}

static enum MHD_Result queue_op_result(struct MHD_Connection *c, int r, const char *what, char *err)
{
	if (r >= 0)
		return queue_no_content(c);
	err[API_ERR_MAX - 1] = '\0';
	log_debug("api: %s failed: %s", what, err[0] ? err : strerror(-r));
	return queue_error(c, (unsigned)http_status_for_error(r), what, err[0] ? err : strerror(-r));
}

static enum MHD_Result queue_not_implemented(struct MHD_Connection *c, const char *what)
{
	return queue_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, what, "not implemented");
}

/* ---- routes ---- */

static enum MHD_Result handle_ping(struct api_server *s, struct api_request *req, struct MHD_Connection *c)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();

	if (!o)
		return MHD_NO;
	json_object_object_add(o, "build_version", json_object_new_string(CLOISTER_VERSION));
	json_object_object_add(o, "version", json_object_new_string(CLOISTER_VERSION));
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	json_object_object_add(o, "features", json_object_new_array());
	return queue_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result handle_info(struct api_server *s, struct api_request *req, struct MHD_Connection *c)
{
	_cleanup_json_ struct json_object *info = NULL;
	char err[API_ERR_MAX] = "";
	int r;

	if (!s->ops->info)
		return queue_not_implemented(c, "vm.info");
	r = s->ops->info(s->opaque, &info, err, sizeof(err));
	if (r >= 0 && !json_object_is_type(info, json_type_object)) {
		set_err(err, sizeof(err), "the VM information is not a JSON object");
		r = -EIO;
	}
	if (r < 0)
		return queue_op_result(c, r, "vm.info", err);
	return queue_json(c, MHD_HTTP_OK, info);
}

#define SIMPLE_HANDLER(fn, op, what)							\
	static enum MHD_Result fn(struct api_server *s, struct api_request *req,	\
				  struct MHD_Connection *c)				\
	{										\
		char err[API_ERR_MAX] = "";						\
											\
		if (!s->ops->op)							\
			return queue_not_implemented(c, what);				\
		return queue_op_result(c, s->ops->op(s->opaque, err, sizeof(err)), what, err); \
	}

SIMPLE_HANDLER(handle_pause, pause, "vm.pause")
SIMPLE_HANDLER(handle_resume, resume, "vm.resume")
SIMPLE_HANDLER(handle_shutdown_vm, shutdown_vm, "vm.shutdown")

/*
 * The VMM may only go away once the client has its 204: the op runs from
 * api_request_completed(), after the response has been sent.
 */
static enum MHD_Result handle_shutdown_vmm(struct api_server *s, struct api_request *req,
					   struct MHD_Connection *c)
{
	if (!s->ops->shutdown_vmm)
		return queue_not_implemented(c, "vmm.shutdown");
	req->shutdown_when_sent = true;
	return queue_op_result(c, 0, "vmm.shutdown", "");
}

static enum MHD_Result handle_snapshot(struct api_server *s, struct api_request *req,
				       struct MHD_Connection *c)
{
	_cleanup_free_ char *url = NULL;
	char err[API_ERR_MAX] = "";
	int r;

	r = api_parse_snapshot_body(req->body, req->len, &url, err, sizeof(err));
	if (r < 0)
		return queue_error(c, MHD_HTTP_BAD_REQUEST, "vm.snapshot: bad request", err);
	if (!s->ops->snapshot)
		return queue_not_implemented(c, "vm.snapshot");
	r = s->ops->snapshot(s->opaque, url, err, sizeof(err));
	return queue_op_result(c, r, "vm.snapshot", err);
}

static enum MHD_Result handle_restore(struct api_server *s, struct api_request *req,
				      struct MHD_Connection *c)
{
	_cleanup_free_ char *url = NULL;
	char err[API_ERR_MAX] = "";
	bool resume;
	int r;

	r = api_parse_restore_body(req->body, req->len, &url, &resume, err, sizeof(err));
	if (r < 0)
		return queue_error(c, MHD_HTTP_BAD_REQUEST, "vm.restore: bad request", err);
	if (!s->ops->restore)
		return queue_not_implemented(c, "vm.restore");
	r = s->ops->restore(s->opaque, url, resume, err, sizeof(err));
	if (r == -EEXIST) {
		/* CH's openapi: 404 "could not be restored because it is already created". */
		err[API_ERR_MAX - 1] = '\0';
		return queue_error(c, MHD_HTTP_NOT_FOUND, "vm.restore",
				   err[0] ? err : "a VM already exists");
	}
	return queue_op_result(c, r, "vm.restore", err);
}

static const struct route routes[] = {
	{ "/api/v1/vmm.ping", "GET", handle_ping },
	{ "/api/v1/vmm.shutdown", "PUT", handle_shutdown_vmm },
	{ "/api/v1/vm.info", "GET", handle_info },
	{ "/api/v1/vm.pause", "PUT", handle_pause },
	{ "/api/v1/vm.resume", "PUT", handle_resume },
	{ "/api/v1/vm.snapshot", "PUT", handle_snapshot },
	{ "/api/v1/vm.restore", "PUT", handle_restore },
	{ "/api/v1/vm.shutdown", "PUT", handle_shutdown_vm },
};

static const struct route *route_find(const char *url)
{
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
		if (strcmp(routes[i].path, url) == 0)
			return &routes[i];
	return NULL;
}

/* ---- MHD callbacks ---- */

/* Chunked bodies carry no length up front; past this much waste, hang up. */
#define API_DISCARD_MAX (16u * API_BODY_MAX)

/* The Content-Length the client announced, 0 when none; saturates on overflow. */
static unsigned long long declared_body_size(struct MHD_Connection *c)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long n;
	char *end;

	if (!cl)
		return 0;
	errno = 0;
	n = strtoull(cl, &end, 10);
	return errno == ERANGE ? ULLONG_MAX : n;
}

/* First call, headers only: refuse what can be refused before reading a body. */
static enum MHD_Result api_begin(struct MHD_Connection *c, const char *url, const char *method,
				 void **con_cls)
{
	const struct route *route = route_find(url);
	struct api_request *req;

	if (!route)
		return queue_error(c, MHD_HTTP_NOT_FOUND, "not found", url);
	if (strcmp(method, route->method) != 0)
		return queue_error_allow(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
					 route->method, route->method);
	/*
	 * A body too large to read is refused at once (the client may still be
	 * sending and miss the answer); a moderately large one is read and
	 * dropped first, so the client surely gets its 413.
	 */
	if (declared_body_size(c) > API_DISCARD_MAX)
		return queue_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL);
	req = calloc(1, sizeof(*req));
	if (!req)
		return MHD_NO;
	req->route = route;
	req->too_large = declared_body_size(c) > API_BODY_MAX;
	*con_cls = req;
	return MHD_YES;
}

static enum MHD_Result api_body_chunk(struct api_request *req, const char *data, size_t *size)
{
	size_t n = *size;
	char *grown;

	*size = 0;
	if (req->too_large || n > API_BODY_MAX - req->len) {
		req->too_large = true;
		req->discarded += n;
		return req->discarded > API_DISCARD_MAX ? MHD_NO : MHD_YES;
	}
	grown = realloc(req->body, req->len + n + 1);
	if (!grown)
		return MHD_NO;
	memcpy(grown + req->len, data, n);
	req->len += n;
	grown[req->len] = '\0';
	req->body = grown;
	return MHD_YES;
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct api_server *s = cls;
	struct api_request *req = *con_cls;

	if (!req)
		return api_begin(c, url, method, con_cls);
	if (*upload_data_size)
		return api_body_chunk(req, upload_data, upload_data_size);
	if (req->too_large)
		return queue_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL);
	return req->route->handle(s, req, c);
}

static void api_request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
				  enum MHD_RequestTerminationCode toe)
{
	struct api_server *s = cls;
	struct api_request *req = *con_cls;
	char err[API_ERR_MAX] = "";

	if (!req)
		return;
	if (req->shutdown_when_sent && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK &&
	    s->ops->shutdown_vmm(s->opaque, err, sizeof(err)) < 0)
		log_error("api: vmm.shutdown: %s", err);
	free(req->body);
	free(req);
	*con_cls = NULL;
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
	if (listen(fd, 16) < 0 ||
	    (strcmp(bound.sun_path, path) != 0 && rename(bound.sun_path, path) < 0)) {
		r = -errno;
		unlink(bound.sun_path);
		return r;
	}
	*ret_fd = TAKE_FD(fd);
	*ret_st = st;
	return 0;
}

static void api_server_free(struct api_server *s)
{
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	free(s->path);
	free(s);
}

int api_server_start(const char *socket_path, const struct api_ops *ops, void *opaque,
		     struct api_server **ret)
{
	struct api_server *s;
	struct stat st = { 0 };
	int r;

	if (!socket_path || !ops || !ret)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*s = (struct api_server){ .listen_fd = -1, .ops = ops, .opaque = opaque };
	s->path = strdup(socket_path);
	if (!s->path) {
		api_server_free(s);
		return -ENOMEM;
	}
	r = api_socket_listen(socket_path, &s->listen_fd, &st);
	if (r < 0) {
		log_error("api: cannot listen on %s: %s", socket_path, strerror(-r));
		api_server_free(s);
		return r;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->daemon = MHD_start_daemon(MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC,
				     0, NULL, NULL, api_access, s,
				     MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
				     MHD_OPTION_CONNECTION_LIMIT, API_CONNECTION_LIMIT,
				     MHD_OPTION_CONNECTION_TIMEOUT, API_CONNECTION_TIMEOUT_S,
				     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_CONNECTION_MEMORY,
				     MHD_OPTION_NOTIFY_COMPLETED, api_request_completed, s,
				     MHD_OPTION_END);
	if (!s->daemon) {
		log_error("api: cannot start the HTTP server on %s", socket_path);
		unlink(socket_path);
		api_server_free(s);
		return -EIO;
	}
	log_info("api: listening on %s", socket_path);
	*ret = s;
	return 0;
}

void api_server_stop(struct api_server *s)
{
	struct stat st;

	if (!s)
		return;
	/* Quiescing hands the listening socket back, so MHD does not close it under us. */
	if (MHD_quiesce_daemon(s->daemon) == MHD_INVALID_SOCKET)
		s->listen_fd = -1;
	MHD_stop_daemon(s->daemon);
	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	api_server_free(s);
}
