/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for what an API client sends: the input is taken both as
 * a request body (vm.snapshot, vm.restore, any JSON object) and as raw bytes
 * on the socket, fed to the request parser in pieces and, when it parses,
 * routed to a table of ops that accept everything. Nothing may crash, leak
 * or read past the given length; accepted URLs must be usable; responses
 * must be well-formed ASCII with a numeric status and an empty reason.
 */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "http_parse.h"
#include "http_routes.h"
#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ok_object(void *opaque, struct json_object **ret, char *err, size_t errlen)
{
	*ret = json_object_new_object();
	return 0;
}

static int ok_config(void *opaque, struct json_object *cfg, char *err, size_t errlen)
{
	return json_object_is_type(cfg, json_type_object) ? 0 : (abort(), 0);
}

static int ok_simple(void *opaque, char *err, size_t errlen)
{
	return 0;
}

static int ok_url(void *opaque, const char *url, char *err, size_t errlen)
{
	char *path = NULL;

	if (parse_file_url(url, &path) != 0 || path[0] != '/')
		abort();
	free(path);
	return 0;
}

static int ok_restore(void *opaque, const struct api_restore_request *req, char *err, size_t errlen)
{
	if (req->prefault && req->memory_restore_mode == RESTORE_MODE_ON_DEMAND)
		abort();
	return ok_url(opaque, req->source_url, err, errlen);
}

static const struct api_ops ops = {
	.info = ok_object, .counters = ok_object, .create = ok_config, .boot = ok_simple,
	.delete_vm = ok_simple, .reboot = ok_simple, .power_button = ok_simple, .pause = ok_simple,
	.resume = ok_simple, .snapshot = ok_url, .restore_request = ok_restore,
	.shutdown_vm = ok_simple, .shutdown_vmm = ok_simple,
};

static void check_response(const struct api_response *resp)
{
	char *out, head[16];
	size_t len;
	int n;

	if (api_response_format(resp, &out, &len) != 0)
		return;
	n = snprintf(head, sizeof(head), "HTTP/1.1 %d \r\n", resp->status);
	if (resp->status < 100 || resp->status > 599 || len < (size_t)n || memcmp(out, head, (size_t)n) != 0)
		abort();
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)out[i] >= 0x80)
			abort();
	free(out);
}

static void route(const struct http_request *r)
{
	struct api_call call;
	struct api_response resp = { 0 };

	if (api_dispatch(&ops, NULL, r->method, r->target, r->body, r->body_len, &call, &resp)) {
		api_call_run(&ops, NULL, &call, &resp);
		api_call_release(&call);
	}
	check_response(&resp);
	api_response_release(&resp);
}

static void fuzz_request(const char *bytes, size_t size)
{
	struct http_request r;
	/* Pieces of 1..16 bytes, sized from the input itself. */
	size_t step = size ? (size_t)(bytes[0] & 15) + 1 : 1, off = 0;

	http_request_init(&r, API_BODY_MAX);
	while (off < size && r.state != HTTP_PARSE_DONE && r.state != HTTP_PARSE_ERROR) {
		size_t n = size - off < step ? size - off : step;
		size_t used = http_request_feed(&r, bytes + off, n);

		if (used > n || (used < n && r.state != HTTP_PARSE_DONE && r.state != HTTP_PARSE_ERROR))
			abort();
		off += used;
		if (used < n)
			break;
	}
	if (r.state == HTTP_PARSE_ERROR && (r.error_status < 400 || !r.error))
		abort();
	if (r.state == HTTP_PARSE_DONE) {
		if (r.body_len > r.body_max || (r.body && r.body[r.body_len] != '\0'))
			abort();
		route(&r);
	}
	http_request_release(&r);
}

static void fuzz_bodies(const char *body, size_t size)
{
	struct api_restore_request req;
	struct json_object *obj = NULL;
	char err[256], *url = NULL, *path = NULL;
	bool resume;

	if (api_parse_snapshot_body(body, size, &url, err, sizeof(err)) == 0) {
		/* Accepted URLs must be ones the snapshot writer can use. */
		if (parse_file_url(url, &path) != 0 || path[0] != '/')
			abort();
		free(path);
		free(url);
	}
	if (api_parse_restore_body(body, size, &url, &resume, err, sizeof(err)) == 0) {
		if (parse_file_url(url, &path) != 0)
			abort();
		free(path);
		free(url);
	}
	if (api_parse_restore_request(body, size, &req, err, sizeof(err)) == 0) {
		if (!json_object_is_type(req.body, json_type_object) ||
		    (req.prefault && req.memory_restore_mode == RESTORE_MODE_ON_DEMAND) ||
		    req.n_net_fds > API_NET_FDS_MAX)
			abort();
		/* net_fds: plain ids, no descriptor yet; none sent is a mismatch unless none named. */
		for (size_t i = 0; i < req.n_net_fds; i++)
			if (req.net_fds[i].fd != -1 || !req.net_fds[i].id[0] ||
			    strlen(req.net_fds[i].id) >= TAP_FD_ID_MAX ||
			    strspn(req.net_fds[i].id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789-_") != strlen(req.net_fds[i].id))
				abort();
		if ((api_restore_attach_fds(&req, NULL, 0, err, sizeof(err)) == 0) != (req.n_net_fds == 0))
			abort();
		api_restore_request_release(&req);
	}
	if (api_parse_object_body(body, size, &obj, err, sizeof(err)) == 0) {
		if (!json_object_is_type(obj, json_type_object))
			abort();
		json_object_put(obj);
	}
}

/* Any bytes in an error message still give an ASCII-only response. */
static void fuzz_message(const uint8_t *data, size_t size)
{
	struct api_response resp;
	char *msg = malloc(size + 1);

	if (!msg)
		return;
	memcpy(msg, data, size);
	msg[size] = '\0';
	api_response_error(&resp, 500, "fuzz", msg);
	check_response(&resp);
	api_response_release(&resp);
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so reading one byte too far is caught by ASan. */
	char *bytes = malloc(size ? size : 1);

	if (!bytes)
		return 0;
	memcpy(bytes, data, size);
	fuzz_bodies(bytes, size);
	fuzz_request(bytes, size);
	fuzz_message(data, size);
	free(bytes);
	return 0;
}
