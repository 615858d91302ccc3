/* SPDX-License-Identifier: Apache-2.0 */
#include "http_net_fds.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "errmsg.h"
#include "tap_fd.h"

static int check_keys(struct json_object *obj, const char *const *known, size_t i, char *err,
		      size_t errlen)
{
	json_object_object_foreach(obj, key, val) {
		size_t k = 0;

		(void)val;
		while (known[k] && strcmp(known[k], key) != 0)
			k++;
		if (!known[k]) {
			err_set(err, errlen, "'net_fds'[%zu]: unknown key '%.64s'", i, key);
			return -EINVAL;
		}
	}
	return 0;
}

static bool device_id_ok(const char *id)
{
	size_t len = strlen(id);

	if (len == 0 || len >= TAP_FD_ID_MAX)
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == len;
}

/*
 * How many descriptors one "net_fds" entry asks for: "num_fds", else the
 * length of "fds". The numbers in "fds" are the sender's and mean nothing
 * here (CH ignores them too); only their count is checked.
 */
static int net_fds_count(struct json_object *o, size_t i, int64_t *ret, char *err, size_t errlen)
{
	struct json_object *num = NULL, *fds = NULL;
	bool has_num = json_object_object_get_ex(o, "num_fds", &num);
	bool has_fds = json_object_object_get_ex(o, "fds", &fds) && fds;

	if (has_num && !json_object_is_type(num, json_type_int)) {
		err_set(err, errlen, "'net_fds'[%zu].num_fds must be an integer", i);
		return -EINVAL;
	}
	if (has_fds && !json_object_is_type(fds, json_type_array)) {
		err_set(err, errlen, "'net_fds'[%zu].fds must be an array or null", i);
		return -EINVAL;
	}
	*ret = has_num ? json_object_get_int64(num) : has_fds ? (int64_t)json_object_array_length(fds) : 0;
	if (has_num && has_fds && (int64_t)json_object_array_length(fds) != *ret) {
		err_set(err, errlen, "'net_fds'[%zu]: num_fds and the length of fds differ", i);
		return -EINVAL;
	}
	return 0;
}

static int net_fds_entry(struct json_object *o, size_t i, struct tap_fd *ret, char *err,
			 size_t errlen)
{
	static const char *const known[] = { "id", "num_fds", "fds", NULL };
	struct json_object *id;
	int64_t count;

	if (!json_object_is_type(o, json_type_object)) {
		err_set(err, errlen, "'net_fds'[%zu] must be an object {\"id\", \"num_fds\"}", i);
		return -EINVAL;
	}
	if (check_keys(o, known, i, err, errlen) < 0 || net_fds_count(o, i, &count, err, errlen) < 0)
		return -EINVAL;
	if (!json_object_object_get_ex(o, "id", &id) || !json_object_is_type(id, json_type_string) ||
	    !device_id_ok(json_object_get_string(id)) ||
	    (size_t)json_object_get_string_len(id) != strlen(json_object_get_string(id))) {
		err_set(err, errlen, "'net_fds'[%zu].id must be a device id (1..32 letters, digits, "
			"'-' or '_')", i);
		return -EINVAL;
	}
	/* Multiqueue taps need as many queue pairs; Cloister's net device has one. */
	if (count != 1) {
		err_set(err, errlen, "'net_fds'[%zu] (%s): num_fds must be 1: the net device has one "
			"queue pair", i, json_object_get_string(id));
		return -EINVAL;
	}
	*ret = (struct tap_fd){ .fd = -1 };
	snprintf(ret->id, sizeof(ret->id), "%s", json_object_get_string(id));
	return 0;
}

int api_parse_net_fds(struct json_object *obj, struct api_restore_request *req, char *err,
		      size_t errlen)
{
	struct json_object *v;
	size_t n;

	if (!json_object_object_get_ex(obj, "net_fds", &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_array)) {
		err_set(err, errlen, "'net_fds' must be an array of {\"id\", \"num_fds\"}");
		return -EINVAL;
	}
	n = json_object_array_length(v);
	if (n > API_NET_FDS_MAX) {
		err_set(err, errlen, "'net_fds': at most %d net devices", API_NET_FDS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		int r = net_fds_entry(json_object_array_get_idx(v, i), i, &req->net_fds[i], err, errlen);

		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (strcmp(req->net_fds[j].id, req->net_fds[i].id) == 0) {
				err_set(err, errlen, "'net_fds': %s is named twice", req->net_fds[i].id);
				return -EINVAL;
			}
		req->n_net_fds = i + 1;
	}
	return 0;
}

int api_restore_attach_fds(struct api_restore_request *req, int *fds, size_t n, char *err,
			   size_t errlen)
{
	int r = 0;

	if (n != req->n_net_fds) {
		err_set(err, errlen, "%zu file descriptor%s came with the request; 'net_fds' asks for %zu",
			n, n == 1 ? "" : "s", req->n_net_fds);
		r = -EINVAL;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		char why[160] = "";

		if (tap_fd_check(fds[i], req->net_fds[i].ifname, why, sizeof(why)) < 0) {
			err_set(err, errlen, "'net_fds' %s (descriptor %zu of the request): %s",
				req->net_fds[i].id, i, why);
			r = -EINVAL;
		}
	}
	/* All or none: on failure every descriptor is closed, none is the request's. */
	for (size_t i = 0; i < n; i++) {
		if (r < 0)
			close(fds[i]);
		else
			req->net_fds[i].fd = fds[i];
		fds[i] = -1;
	}
	return r;
}
