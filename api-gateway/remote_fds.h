/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-remote's side of descriptor passing: ch-remote's
 * `restore source_url=...,net_fds=[net0@[3],net1@4]` names descriptors this
 * program inherited; they go to the server with SCM_RIGHTS on the request's
 * first bytes (as ch-remote sends them), and the JSON body says which
 * device takes how many, in order.
 */
#ifndef CLOISTER_REMOTE_FDS_H
#define CLOISTER_REMOTE_FDS_H

#include <stddef.h>

/* The most the server takes with one request (API_REQUEST_FDS_MAX). */
#define REMOTE_FDS_MAX 8
#define REMOTE_NET_FDS_MAX 4

struct remote_net_fds {
	struct {
		char id[33];
		size_t num_fds;
	} dev[REMOTE_NET_FDS_MAX];
	size_t n_dev;
	int fds[REMOTE_FDS_MAX];	/* every device's, in order; inherited, never closed */
	size_t n_fds;
};

/*
 * Takes "net_fds=[ID@FDS,...]" out of a restore spec (FDS: N, [N,...] or
 * [N-M], as ch-remote reads them). *ret_rest is the spec without it
 * (malloc'd). Every descriptor must be open in this process. -EINVAL with
 * err set for a malformed list.
 */
int remote_take_net_fds(const char *spec, char **ret_rest, struct remote_net_fds *ret, char *err,
			size_t errlen);

/*
 * Sends method path with body and the descriptors over the Unix socket at
 * socket_path, and reads the answer: *ret_status and *ret_body (malloc'd,
 * NUL-terminated, at most max bytes). -errno with err set.
 */
int remote_send_with_fds(const char *socket_path, const char *method, const char *path,
			 const char *body, const int *fds, size_t n_fds, size_t max, long *ret_status,
			 char **ret_body, size_t *ret_len, char *err, size_t errlen);

#endif
