/* SPDX-License-Identifier: Apache-2.0 */
#include "http_routes.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "options.h"
#include "errmsg.h"
#include "http_net_fds.h"

#define API_ERR_MAX 512
#define API_PREFIX "/api/v1/"

enum body_kind {
	BODY_IGNORED,	/* GET: a body is read and dropped */
	BODY_NONE,	/* PUT without a body, as CH: a body is refused */
	BODY_SNAPSHOT,
	BODY_RESTORE,
	BODY_OBJECT,	/* any JSON object, checked further by the op (or no op) */
};

enum route_where {
	ROUTE_INLINE,		/* answered on the serving thread */
	ROUTE_OP_THREAD,
};

typedef void (*route_run)(const struct api_ops *ops, void *opaque, struct api_call *call,
			  struct api_response *resp);

struct api_route {
	const char *name;
	const char *method;
	enum body_kind body;
	enum route_where where;
	route_run run;
	/* offset of the op in struct api_ops; NO_OP when Cloister has none */
	size_t op;
};

#define NO_OP SIZE_MAX			/* Cloister has no op for this path */
#define NO_OP_NEEDED (SIZE_MAX - 1)	/* the server answers by itself */

typedef int (*simple_op)(void *opaque, char *err, size_t errlen);

static void json_put(struct json_object **o)
{
	if (*o)
		json_object_put(*o);
}

#define _cleanup_json_ __attribute__((cleanup(json_put)))

int http_status_for_error(int err)
{
	switch (err) {
	case 0:
		return 204;
	case -ENOENT:
		return 404;
	case -EINVAL:
		return 405;
	case -EEXIST:
	case -EBUSY:
		return 409;
	case -EBADMSG:
	case -EOPNOTSUPP:
		return 400;
	default:
		return 500;
	}
}

/* ---- JSON out: ASCII only ---- */

/*
 * CH's client decodes each 256-byte read as UTF-8 on its own, so a
 * multi-byte character split across two reads breaks it: everything past
 * ASCII is written as \u escapes (json-c only writes such bytes in strings).
 */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *ret)
{
	size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
	uint32_t cp;

	if (n == 0 || n > len || s[0] >= 0xf8)
		return 0;
	cp = s[0] & (0x3f >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret = cp;
	return n;
}

static char *json_ascii(const char *in, size_t len, size_t *ret_len)
{
	/* At most 6 bytes out per byte in: a stray byte becomes one \uXXXX. */
	char *out = malloc(len * 6 + 1), *p = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)in[i];
		uint32_t cp = 0xfffd;
		size_t n;

		if (c < 0x80) {
			*p++ = (char)c;
			i++;
			continue;
		}
		n = utf8_decode((const unsigned char *)in + i, len - i, &cp);
		i += n ? n : 1;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			p += sprintf(p, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
		} else {
			p += sprintf(p, "\\u%04x", cp);
		}
	}
	*p = '\0';
	*ret_len = (size_t)(p - out);
	return out;
}

static void response_json(struct api_response *resp, int status, struct json_object *o)
{
	size_t len;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	*resp = (struct api_response){ .status = status };
	if (s)
		resp->body = json_ascii(s, len, &resp->len);
	if (!resp->body) {
		resp->status = 500;
		resp->len = 0;
	}
}

void api_response_error(struct api_response *resp, int status, const char *summary, const char *detail)
{
	_cleanup_json_ struct json_object *arr = json_object_new_array();

	if (arr) {
		json_object_array_add(arr, json_object_new_string(summary));
		if (detail && *detail)
			json_object_array_add(arr, json_object_new_string(detail));
	}
	response_json(resp, status, arr);
	resp->status = status;
}

void api_response_release(struct api_response *resp)
{
	free(resp->body);
	*resp = (struct api_response){ 0 };
}

int api_response_format(const struct api_response *resp, char **ret, size_t *ret_len)
{
	char head[256];
	char *out;
	int n;

	/* 1xx and 204 carry no body and no Content-Length (RFC 9110 8.6). */
	if (resp->status == 204 || resp->status < 200)
		n = snprintf(head, sizeof(head), "HTTP/1.1 %d \r\nServer: Cloister\r\nConnection: close\r\n\r\n",
			     resp->status);
	else
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d \r\nServer: Cloister\r\nConnection: close\r\n%s%s%s"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			     resp->status, resp->allow ? "Allow: " : "", resp->allow ? resp->allow : "",
			     resp->allow ? "\r\n" : "", resp->len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -EOVERFLOW;
	out = malloc((size_t)n + resp->len + 1);
	if (!out)
		return -ENOMEM;
	memcpy(out, head, (size_t)n);
	*ret_len = (size_t)n;
	if (resp->status != 204 && resp->status >= 200 && resp->len) {
		memcpy(out + n, resp->body, resp->len);
		*ret_len += resp->len;
	}
	*ret = out;
	return 0;
}

/* ---- request bodies ---- */

int api_parse_object_body(const char *body, size_t len, struct json_object **ret, char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end;

	if (!body || len == 0) {
		err_set(err, errlen, "the request needs a JSON body");
		return -EINVAL;
	}
	if (len > API_BODY_MAX || memchr(body, '\0', len)) {
		err_set(err, errlen, "the request body is not JSON text");
		return -EINVAL;
	}
	tok = json_tokener_new_ex(API_JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success) {
		json_object_put(obj);
		err_set(err, errlen, "malformed JSON: %s",
			jerr == json_tokener_continue ? "truncated" : json_tokener_error_desc(jerr));
		return -EINVAL;
	}
	for (; end < len; end++)
		if (!strchr(" \t\r\n", body[end])) {
			json_object_put(obj);
			err_set(err, errlen, "malformed JSON: trailing data after the object");
			return -EINVAL;
		}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		err_set(err, errlen, "the request body must be a JSON object");
		return -EINVAL;
	}
	*ret = obj;
	return 0;
}

static int check_keys(struct json_object *obj, const char *const *known, char *err, size_t errlen)
{
	json_object_object_foreach(obj, key, val) {
		size_t i = 0;

		(void)val;
		while (known[i] && strcmp(known[i], key) != 0)
			i++;
		if (!known[i]) {
			err_set(err, errlen, "unknown key '%.64s'", key);
			return -EINVAL;
		}
	}
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
		err_set(err, errlen, "'%s' is missing or not a string", key);
		return -EINVAL;
	}
	url = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(url)) {
		err_set(err, errlen, "'%s' contains a NUL byte", key);
		return -EINVAL;
	}
	r = parse_file_url(url, &path);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		err_set(err, errlen, "'%s' must be a file:/// URL with an absolute path", key);
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
		err_set(err, errlen, "'%s' must be true or false", key);
		return -EINVAL;
	}
	*ret = json_object_get_boolean(v);
	return 0;
}

/* The mode the body names; *ret untouched when it names none. */
static int get_restore_mode(struct json_object *obj, enum restore_mode *ret, char *err,
			    size_t errlen)
{
	struct json_object *v;
	const char *s;

	if (!json_object_object_get_ex(obj, "memory_restore_mode", &v))
		return 0;
	s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
	if (strcmp(s, "Copy") == 0) {
		*ret = RESTORE_MODE_COPY;
	} else if (strcmp(s, "OnDemand") == 0) {
		*ret = RESTORE_MODE_ON_DEMAND;
	} else {
		err_set(err, errlen, "'memory_restore_mode' must be \"Copy\" or \"OnDemand\"");
		return -EINVAL;
	}
	return 1;
}

/* "disks": "checkpoint" asks for a disk checkpoint (disk_checkpoint.h); absent, none. */
static int get_disks_mode(struct json_object *obj, bool *ret_checkpoint, char *err, size_t errlen)
{
	struct json_object *v;

	*ret_checkpoint = false;
	if (!json_object_object_get_ex(obj, "disks", &v))
		return 0;
	if (!json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), "checkpoint") != 0) {
		err_set(err, errlen, "'disks' must be \"checkpoint\"");
		return -EINVAL;
	}
	*ret_checkpoint = true;
	return 0;
}

static bool asks_sealed(struct json_object *obj)
{
	return json_object_object_get_ex(obj, "compression", NULL) ||
	       json_object_object_get_ex(obj, "encryption_key_file", NULL) ||
	       json_object_object_get_ex(obj, "encryption_key_credential", NULL);
}

int api_parse_snapshot_call(const char *body, size_t len, char **ret_destination_url,
			    bool *ret_checkpoint, struct json_object **ret_sealed, char *err,
			    size_t errlen)
{
	static const char *const known[] = { "destination_url", "disks", "compression",
					     "encryption_key_file", "encryption_key_credential", NULL };
	_cleanup_json_ struct json_object *obj = NULL;
	bool checkpoint;
	int r;

	r = api_parse_object_body(body, len, &obj, err, errlen);
	if (r < 0)
		return r;
	r = check_keys(obj, known, err, errlen);
	if (r == 0)
		r = get_disks_mode(obj, &checkpoint, err, errlen);
	if (r == 0)
		r = get_file_url(obj, "destination_url", ret_destination_url, err, errlen);
	if (r == 0) {
		*ret_checkpoint = checkpoint;
		*ret_sealed = asks_sealed(obj) ? json_object_get(obj) : NULL;
	}
	return r;
}

int api_parse_snapshot_request(const char *body, size_t len, char **ret_destination_url,
			       bool *ret_checkpoint, char *err, size_t errlen)
{
	struct json_object *sealed = NULL;
	int r = api_parse_snapshot_call(body, len, ret_destination_url, ret_checkpoint, &sealed, err,
					errlen);

	if (sealed)
		json_object_put(sealed);
	return r;
}

int api_parse_snapshot_body(const char *body, size_t len, char **ret_destination_url,
			    char *err, size_t errlen)
{
	bool checkpoint;

	return api_parse_snapshot_request(body, len, ret_destination_url, &checkpoint, err, errlen);
}

/*
 * CH's RestoreConfig keys that Cloister understands. "devices", Cloister's
 * own, binds host resources per device id (bindings.h); "net_fds" binds a
 * net device to a tap passed with the request. vfio_fds, iommufd_fd and
 * zone_updates name things a Cloister VM does not have: taken only empty
 * (as ch-remote writes them when unused), refused otherwise.
 */
static const char *const restore_keys[] = {
	"source_url", "resume", "prefault", "memory_restore_mode", "devices", "net_fds",
	"vfio_fds", "iommufd_fd", "zone_updates", "encryption_key_file",
	"encryption_key_credential", NULL,
};

/* vfio_fds, iommufd_fd, zone_updates: null or [] only. */
static int check_unused(struct json_object *obj, char *err, size_t errlen)
{
	static const char *const keys[] = { "vfio_fds", "iommufd_fd", "zone_updates" };
	static const char *const what[] = { "VFIO devices", "VFIO devices", "memory zones" };

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		struct json_object *v;

		if (!json_object_object_get_ex(obj, keys[i], &v) || !v ||
		    (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0))
			continue;
		err_set(err, errlen, "'%s': a Cloister VM has no %s (only null or [] is taken)", keys[i],
			what[i]);
		return -EINVAL;
	}
	return 0;
}

int api_parse_restore_request(const char *body, size_t len, struct api_restore_request *ret,
			      char *err, size_t errlen)
{
	_cleanup_json_ struct json_object *obj = NULL;
	_cleanup_free_ char *url = NULL;
	struct api_restore_request req = { .memory_restore_mode = RESTORE_MODE_DEFAULT };
	int r;

	r = api_parse_object_body(body, len, &obj, err, errlen);
	if (r < 0)
		return r;
	r = check_keys(obj, restore_keys, err, errlen);
	if (r < 0)
		return r;
	r = get_file_url(obj, "source_url", &url, err, errlen);
	if (r < 0)
		return r;
	if (get_optional_bool(obj, "resume", &req.resume, err, errlen) < 0 ||
	    get_optional_bool(obj, "prefault", &req.prefault, err, errlen) < 0 ||
	    get_restore_mode(obj, &req.memory_restore_mode, err, errlen) < 0 ||
	    api_parse_net_fds(obj, &req, err, errlen) < 0 || check_unused(obj, err, errlen) < 0)
		return -EINVAL;
	if (req.prefault && req.memory_restore_mode == RESTORE_MODE_ON_DEMAND) {
		err_set(err, errlen, "'prefault' cannot be combined with memory_restore_mode OnDemand");
		return -EINVAL;
	}
	/* prefault alone asks for Copy. */
	if (req.prefault)
		req.memory_restore_mode = RESTORE_MODE_COPY;
	req.source_url = TAKE_PTR(url);
	req.body = TAKE_PTR(obj);
	*ret = req;
	return 0;
}

int api_parse_restore_body(const char *body, size_t len, char **ret_source_url, bool *ret_resume,
			   char *err, size_t errlen)
{
	struct api_restore_request req;
	int r = api_parse_restore_request(body, len, &req, err, errlen);

	if (r < 0)
		return r;
	*ret_source_url = (char *)TAKE_PTR(req.source_url);
	*ret_resume = req.resume;
	api_restore_request_release(&req);
	return 0;
}

void api_restore_request_release(struct api_restore_request *req)
{
	for (size_t i = 0; i < req->n_net_fds && i < API_NET_FDS_MAX; i++)
		if (req->net_fds[i].fd >= 0)
			close(req->net_fds[i].fd);
	free((char *)req->source_url);
	if (req->body)
		json_object_put(req->body);
	*req = (struct api_restore_request){ 0 };
}

/* ---- running ops ---- */

static simple_op op_at(const struct api_ops *ops, size_t offset)
{
	simple_op f;

	memcpy(&f, (const char *)ops + offset, sizeof(f));
	return f;
}

static bool op_present(const struct api_route *route, const struct api_ops *ops)
{
	if (route->op == NO_OP)
		return false;
	return op_at(ops, route->op) != NULL;
}

static void response_op(struct api_response *resp, int r, const char *what, char *err)
{
	if (r >= 0) {
		*resp = (struct api_response){ .status = 204 };
		return;
	}
	err[API_ERR_MAX - 1] = '\0';
	log_debug("api: %s failed: %s", what, err[0] ? err : strerror(-r));
	api_response_error(resp, http_status_for_error(r), what, err[0] ? err : strerror(-r));
}

static void run_simple(const struct api_ops *ops, void *opaque, struct api_call *call,
		       struct api_response *resp)
{
	char err[API_ERR_MAX] = "";

	response_op(resp, op_at(ops, call->route->op)(opaque, err, sizeof(err)), call->route->name, err);
}

static void run_snapshot(const struct api_ops *ops, void *opaque, struct api_call *call,
			 struct api_response *resp)
{
	char err[API_ERR_MAX] = "";
	int r;

	if (call->sealed && ops->snapshot_sealed) {
		r = ops->snapshot_sealed(opaque, call->url, call->disks_checkpoint, call->sealed, err,
					 sizeof(err));
	} else if (call->sealed) {
		snprintf(err, sizeof(err), "compressed or encrypted snapshots are not available here");
		r = -EOPNOTSUPP;
	} else if (!call->disks_checkpoint) {
		r = ops->snapshot(opaque, call->url, err, sizeof(err));
	} else if (ops->snapshot_checkpoint) {
		r = ops->snapshot_checkpoint(opaque, call->url, err, sizeof(err));
	} else {
		snprintf(err, sizeof(err), "disk checkpoints are not available here");
		r = -EOPNOTSUPP;
	}
	response_op(resp, r, "vm.snapshot", err);
}

static void run_restore(const struct api_ops *ops, void *opaque, struct api_call *call,
			struct api_response *resp)
{
	const struct api_restore_request *req = &call->restore;
	char err[API_ERR_MAX] = "";
	int r;

	r = ops->restore_request(opaque, req, err, sizeof(err));
	if (r == -EEXIST) {
		/* CH's openapi: 404 "could not be restored because it is already created". */
		err[API_ERR_MAX - 1] = '\0';
		api_response_error(resp, 404, "vm.restore", err[0] ? err : "a VM already exists");
		return;
	}
	response_op(resp, r, "vm.restore", err);
}

static void run_create(const struct api_ops *ops, void *opaque, struct api_call *call,
		       struct api_response *resp)
{
	char err[API_ERR_MAX] = "";
	int r = ops->create(opaque, call->body, err, sizeof(err));

	if (r == -EINVAL) {
		err[API_ERR_MAX - 1] = '\0';
		api_response_error(resp, 400, "vm.create: the VM configuration is not valid",
				   err[0] ? err : strerror(EINVAL));
		return;
	}
	response_op(resp, r, "vm.create", err);
}

/* info and counters: a JSON object from the op, 200. */
typedef int (*object_op)(void *opaque, struct json_object **ret, char *err, size_t errlen);

static void run_object_op(object_op op, void *opaque, const char *what, struct api_response *resp)
{
	_cleanup_json_ struct json_object *o = NULL;
	char err[API_ERR_MAX] = "";
	int r = op(opaque, &o, err, sizeof(err));

	if (r >= 0 && !json_object_is_type(o, json_type_object)) {
		err_set(err, sizeof(err), "the op did not give a JSON object");
		r = -EIO;
	}
	if (r < 0) {
		response_op(resp, r, what, err);
		return;
	}
	response_json(resp, 200, o);
}

static void run_info(const struct api_ops *ops, void *opaque, struct api_call *call,
		     struct api_response *resp)
{
	run_object_op(ops->info, opaque, "vm.info", resp);
}

static void run_counters(const struct api_ops *ops, void *opaque, struct api_call *call,
			 struct api_response *resp)
{
	run_object_op(ops->counters, opaque, "vm.counters", resp);
}

static void run_ping(const struct api_ops *ops, void *opaque, struct api_call *call,
		     struct api_response *resp)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();

	if (o) {
		json_object_object_add(o, "build_version", json_object_new_string(CLOISTER_VERSION));
		json_object_object_add(o, "version", json_object_new_string(CLOISTER_VERSION));
		json_object_object_add(o, "pid", json_object_new_int64(getpid()));
		json_object_object_add(o, "features", json_object_new_array());
	}
	response_json(resp, 200, o);
}

/* The VMM may only go away once the client has its 204: see api_response.shutdown_vmm. */
static void run_shutdown_vmm(const struct api_ops *ops, void *opaque, struct api_call *call,
			     struct api_response *resp)
{
	*resp = (struct api_response){ .status = 204, .shutdown_vmm = true };
}

#define OP(name) offsetof(struct api_ops, name)
#define PUT_SIMPLE(path, op) { path, "PUT", BODY_NONE, ROUTE_OP_THREAD, run_simple, OP(op) }
#define PUT_UNSERVED(path) { path, "PUT", BODY_OBJECT, ROUTE_INLINE, NULL, NO_OP }

/* Every path of CH's openapi, in its order. */
static const struct api_route routes[] = {
	{ "vmm.ping", "GET", BODY_IGNORED, ROUTE_INLINE, run_ping, NO_OP_NEEDED },
	{ "vmm.shutdown", "PUT", BODY_NONE, ROUTE_INLINE, run_shutdown_vmm, OP(shutdown_vmm) },
	{ "vm.info", "GET", BODY_IGNORED, ROUTE_INLINE, run_info, OP(info) },
	/* Counters ask every device process: not on the serving thread. */
	{ "vm.counters", "GET", BODY_IGNORED, ROUTE_OP_THREAD, run_counters, OP(counters) },
	{ "vm.create", "PUT", BODY_OBJECT, ROUTE_OP_THREAD, run_create, OP(create) },
	PUT_SIMPLE("vm.delete", delete_vm),
	PUT_SIMPLE("vm.boot", boot),
	PUT_SIMPLE("vm.pause", pause),
	PUT_SIMPLE("vm.resume", resume),
	PUT_SIMPLE("vm.shutdown", shutdown_vm),
	PUT_SIMPLE("vm.reboot", reboot),
	PUT_SIMPLE("vm.power-button", power_button),
	PUT_UNSERVED("vm.resize"),
	PUT_UNSERVED("vm.resize-disk"),
	PUT_UNSERVED("vm.resize-zone"),
	PUT_UNSERVED("vm.add-device"),
	PUT_UNSERVED("vm.remove-device"),
	PUT_UNSERVED("vm.add-disk"),
	PUT_UNSERVED("vm.add-fs"),
	PUT_UNSERVED("vm.add-generic-vhost-user"),
	PUT_UNSERVED("vm.add-pmem"),
	PUT_UNSERVED("vm.add-net"),
	PUT_UNSERVED("vm.add-vsock"),
	PUT_UNSERVED("vm.add-vdpa"),
	PUT_UNSERVED("vm.add-user-device"),
	{ "vm.snapshot", "PUT", BODY_SNAPSHOT, ROUTE_OP_THREAD, run_snapshot, OP(snapshot) },
	PUT_UNSERVED("vm.coredump"),
	{ "vm.nmi", "PUT", BODY_NONE, ROUTE_INLINE, NULL, NO_OP },
	{ "vm.restore", "PUT", BODY_RESTORE, ROUTE_OP_THREAD, run_restore, OP(restore_request) },
	PUT_UNSERVED("vm.receive-migration"),
	PUT_UNSERVED("vm.send-migration"),
};

static const struct api_route *route_find(const char *target)
{
	size_t plen = strcspn(target, "?");

	if (strncmp(target, API_PREFIX, strlen(API_PREFIX)) != 0)
		return NULL;
	target += strlen(API_PREFIX);
	plen -= strlen(API_PREFIX);
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
		if (strlen(routes[i].name) == plen && strncmp(routes[i].name, target, plen) == 0)
			return &routes[i];
	return NULL;
}

/* Decodes the body into call; false with *resp set when it is refused. */
static bool decode_body(const struct api_route *route, const char *body, size_t len,
			struct api_call *call, struct api_response *resp)
{
	char err[API_ERR_MAX] = "", what[64];
	int r = 0;

	snprintf(what, sizeof(what), "%s: bad request", route->name);
	switch (route->body) {
	case BODY_IGNORED:
		return true;
	case BODY_NONE:
		if (len == 0)
			return true;
		api_response_error(resp, 400, what, "this request takes no body");
		return false;
	case BODY_SNAPSHOT:
		r = api_parse_snapshot_call(body, len, &call->url, &call->disks_checkpoint,
					    &call->sealed, err, sizeof(err));
		break;
	case BODY_RESTORE:
		r = api_parse_restore_request(body, len, &call->restore, err, sizeof(err));
		break;
	case BODY_OBJECT:
		r = api_parse_object_body(body, len, &call->body, err, sizeof(err));
		break;
	}
	if (r == -ENOMEM) {
		api_response_error(resp, 500, route->name, strerror(ENOMEM));
		return false;
	}
	if (r < 0) {
		api_response_error(resp, 400, what, err);
		return false;
	}
	return true;
}

/* Checks that need the ops table, once the body is known to be well formed. */
static bool check_servable(const struct api_ops *ops, struct api_call *call, struct api_response *resp)
{
	const struct api_route *route = call->route;

	if (route->op != NO_OP_NEEDED && !op_present(route, ops)) {
		api_response_error(resp, 500, route->name, "not implemented in Cloister");
		return false;
	}
	return true;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; fds && i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* Descriptors that came with the request go to the one route that takes them. */
static bool take_fds(struct api_call *call, int *fds, size_t n_fds, struct api_response *resp)
{
	char err[API_ERR_MAX] = "", what[64];

	if (n_fds == 0 && call->route->body != BODY_RESTORE)
		return true;
	snprintf(what, sizeof(what), "%s: bad request", call->route->name);
	if (call->route->body != BODY_RESTORE) {
		close_fds(fds, n_fds);
		api_response_error(resp, 400, what, "this request takes no file descriptors");
		return false;
	}
	if (api_restore_attach_fds(&call->restore, fds, n_fds, err, sizeof(err)) < 0) {
		api_response_error(resp, 400, what, err);
		return false;
	}
	return true;
}

bool api_dispatch_fds(const struct api_ops *ops, void *opaque, const char *method, const char *target,
		      const char *body, size_t len, int *fds, size_t n_fds, struct api_call *call,
		      struct api_response *resp)
{
	const struct api_route *route = route_find(target);

	*call = (struct api_call){ .route = route };
	if (!route) {
		close_fds(fds, n_fds);
		api_response_error(resp, 404, "not found", target);
		return false;
	}
	if (strcmp(method, route->method) != 0) {
		close_fds(fds, n_fds);
		api_response_error(resp, 405, "method not allowed", route->method);
		resp->allow = route->method;
		return false;
	}
	if (!decode_body(route, body, len, call, resp)) {
		close_fds(fds, n_fds);
		api_call_release(call);
		return false;
	}
	if (!take_fds(call, fds, n_fds, resp) || !check_servable(ops, call, resp)) {
		api_call_release(call);
		return false;
	}
	if (route->where == ROUTE_OP_THREAD)
		return true;
	route->run(ops, opaque, call, resp);
	api_call_release(call);
	return false;
}

bool api_dispatch(const struct api_ops *ops, void *opaque, const char *method, const char *target,
		  const char *body, size_t len, struct api_call *call, struct api_response *resp)
{
	return api_dispatch_fds(ops, opaque, method, target, body, len, NULL, 0, call, resp);
}

void api_call_run(const struct api_ops *ops, void *opaque, struct api_call *call, struct api_response *resp)
{
	call->route->run(ops, opaque, call, resp);
}

const char *api_call_name(const struct api_call *call)
{
	return call->route ? call->route->name : "";
}

void api_call_release(struct api_call *call)
{
	free(call->url);
	api_restore_request_release(&call->restore);
	if (call->sealed)
		json_object_put(call->sealed);
	if (call->body)
		json_object_put(call->body);
	*call = (struct api_call){ .route = call->route };
}
