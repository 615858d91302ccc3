/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST API, compatible with Cloud Hypervisor's /api/v1 on a Unix socket.
 * The server knows routes, bodies and status codes; what an operation does
 * is the caller's business, through struct api_ops.
 */
#ifndef CLOISTER_HTTP_H
#define CLOISTER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;
struct api_server;

#define API_BODY_MAX (64u * 1024u)		/* larger request bodies get 413 */
#define API_CONNECTION_LIMIT 32u		/* further clients are refused */
#define API_CONNECTION_TIMEOUT_S 10u		/* idle or slow clients are dropped */
#define API_CONNECTION_MEMORY (32u * 1024u)	/* bounds request line + headers */
#define API_JSON_DEPTH 8

/*
 * Each op returns 0 or a negative errno; on error it writes a human message
 * into err (which starts empty). Ops run on the server's single thread, one
 * at a time, and must serialize themselves against the rest of the program.
 * A NULL op answers 500 "not implemented".
 */
struct api_ops {
	/* -ENOENT when no VM exists; *ret_info is a JSON object the server releases */
	int (*info)(void *opaque, struct json_object **ret_info, char *err, size_t errlen);
	int (*pause)(void *opaque, char *err, size_t errlen);
	int (*resume)(void *opaque, char *err, size_t errlen);
	/* destination_url has been checked to be file:///ABSOLUTE */
	int (*snapshot)(void *opaque, const char *destination_url, char *err, size_t errlen);
	/* source_url has been checked to be file:///ABSOLUTE */
	int (*restore)(void *opaque, const char *source_url, bool resume, char *err, size_t errlen);
	int (*shutdown_vm)(void *opaque, char *err, size_t errlen);
	/*
	 * Called once the 204 has been sent. Must only ask the main loop to
	 * exit: api_server_stop() must not be called from this thread.
	 */
	int (*shutdown_vmm)(void *opaque, char *err, size_t errlen);
};

/*
 * Creates socket_path (mode 0600) and serves it on a thread of its own.
 * A stale socket at that path is replaced; -EADDRINUSE when something still
 * listens there, -EEXIST when the path is not a socket.
 */
int api_server_start(const char *socket_path, const struct api_ops *ops, void *opaque,
		     struct api_server **ret);

/* Stops serving, closes the socket and unlinks it if it is still ours. NULL is fine. */
void api_server_stop(struct api_server *s);

/*
 * HTTP status for an op's negative errno, after Cloud Hypervisor's openapi:
 *   -ENOENT   404  no VM has been created
 *   -EINVAL   405  the op is not valid in the VM's current state
 *   -EEXIST   409  a VM already exists (vm.restore answers 404, as CH documents)
 *   -EBUSY    409  another operation is in progress
 *   -EBADMSG  400  the request named something unusable (e.g. a corrupt snapshot)
 *   other     500  the operation failed
 * 0 gives 204.
 */
int http_status_for_error(int err);

/*
 * Request-body decoders, exposed for tests and fuzzing. -EINVAL with a
 * message in err for anything but a JSON object with the right fields.
 */
int api_parse_snapshot_body(const char *body, size_t len, char **ret_destination_url,
			    char *err, size_t errlen);
int api_parse_restore_body(const char *body, size_t len, char **ret_source_url, bool *ret_resume,
			   char *err, size_t errlen);

#endif
