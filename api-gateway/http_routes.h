/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's routes: from a parsed request to a response, either at once on
 * the serving thread or through an op run on the op thread (see http.h for
 * which is which). No sockets here, so tests and fuzzers can drive it.
 */
#ifndef CLOISTER_HTTP_ROUTES_H
#define CLOISTER_HTTP_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

struct api_route;

struct api_response {
	int status;
	char *body;		/* ASCII-only JSON, malloc'd; NULL for none */
	size_t len;
	const char *allow;	/* Allow header for 405 */
	bool shutdown_vmm;	/* call ops->shutdown_vmm once the response is sent */
};

/* What the op thread needs to run one request. */
struct api_call {
	const struct api_route *route;
	char *url;				/* vm.snapshot */
	bool disks_checkpoint;			/* vm.snapshot: "disks": "checkpoint" */
	struct json_object *sealed;		/* vm.snapshot: compression or a key asked for */
	struct api_restore_request restore;	/* vm.restore */
	struct json_object *body;		/* vm.create */
};

/*
 * Routes and checks a request on the serving thread. Returns false with
 * *resp filled when the answer is known now, true with *call filled when
 * an op must run on the op thread (api_call_run).
 */
bool api_dispatch(const struct api_ops *ops, void *opaque, const char *method, const char *target,
		  const char *body, size_t len, struct api_call *call, struct api_response *resp);
/*
 * The same, for a request that came with n_fds file descriptors (SCM_RIGHTS).
 * Takes them all: the call holds those the request takes (vm.restore's
 * "net_fds"), every other is closed, and a request that takes none, or not
 * that many, or fds that are not taps, is answered 400.
 */
bool api_dispatch_fds(const struct api_ops *ops, void *opaque, const char *method, const char *target,
		      const char *body, size_t len, int *fds, size_t n_fds, struct api_call *call,
		      struct api_response *resp);
void api_call_run(const struct api_ops *ops, void *opaque, struct api_call *call,
		  struct api_response *resp);
/* "vm.snapshot" for a call routed there */
const char *api_call_name(const struct api_call *call);
void api_call_release(struct api_call *call);

/* A JSON error body: an array of messages, outermost first, as CH writes them. */
void api_response_error(struct api_response *resp, int status, const char *summary, const char *detail);
void api_response_release(struct api_response *resp);
/*
 * The bytes to write: status line with an empty reason phrase (as CH's own
 * client requires), headers, body. Connection: close always.
 */
int api_response_format(const struct api_response *resp, char **ret, size_t *ret_len);

#endif
