/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST API, compatible with Cloud Hypervisor's /api/v1 on a Unix socket,
 * as docs/openapi.yaml describes it. The server knows routes, bodies and
 * status codes; what an operation does is the caller's business, through
 * struct api_ops.
 *
 * Threading contract. The server runs two threads of its own:
 *   - the serving thread accepts, reads, parses and answers. It calls info
 *     itself, at any time, also while an operation runs: info must answer
 *     at once from what is already known (a short lock around shared state
 *     is fine; waiting on a child or on the lock an operation holds is
 *     not). ping never reaches the ops.
 *   - the op thread calls every other op (counters, which asks every
 *     device process, create, boot, delete_vm, reboot, power_button,
 *     pause, resume, snapshot, restore, shutdown_vm), one at a time: two
 *     of these never run concurrently through the API. While one runs,
 *     another such request is answered 409 by the server without reaching
 *     the ops; ping and info go on being answered. These ops still run
 *     concurrently with info, shutdown_vmm and with the rest of the
 *     program, and serialize against those themselves.
 *   - shutdown_vmm is called on the serving thread once its 204 has been
 *     written, possibly while an op runs: it must only ask the main loop
 *     to exit.
 * All ops get the opaque pointer given to api_server_start().
 */
#ifndef CLOISTER_HTTP_H
#define CLOISTER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "restore_mode.h"
#include "tap_fd.h"

struct json_object;
struct api_server;

#define API_BODY_MAX (1024u * 1024u)	/* larger request bodies get 413 */
/*
 * At most this many connections at once. When the last slot is taken, a
 * connection already answered, else the one that has spent longest reading
 * its request, is dropped, so a slot is always free for the next client
 * (cloister-remote gets in however many slow clients hold the others).
 */
#define API_CONNECTION_LIMIT 32u
/*
 * Deadlines that a client cannot stretch by trickling bytes: the whole
 * request head must arrive within API_HEAD_DEADLINE_S of connecting, the
 * whole body within API_BODY_DEADLINE_S of the end of the head, and the
 * client must take the whole response within API_WRITE_DEADLINE_S.
 */
#define API_HEAD_DEADLINE_S 5u
#define API_BODY_DEADLINE_S 10u
#define API_WRITE_DEADLINE_S 10u
#define API_JSON_DEPTH 10
/*
 * A request may carry at most this many file descriptors (SCM_RIGHTS, in
 * any of the reads of one request); more is a 400, and every descriptor of
 * a request is closed unless the request takes it.
 */
#define API_REQUEST_FDS_MAX 8
/* vm.restore's "net_fds": at most this many net devices. */
#define API_NET_FDS_MAX 4

/* A vm.restore request, checked against CH's RestoreConfig. */
struct api_restore_request {
	const char *source_url;		/* checked to be file:///ABSOLUTE */
	bool resume;
	bool prefault;			/* true: memory_restore_mode is COPY */
	enum restore_mode memory_restore_mode;
	/* The whole request body, borrowed for the call, for options added later. */
	struct json_object *body;
	/*
	 * "net_fds" (CH's RestoredNetConfig: {"id", "num_fds", "fds"}): taps
	 * passed with the request, one per net device, in the order of the
	 * request's descriptors. Each fd is owned, checked to be a tap.
	 */
	struct tap_fd net_fds[API_NET_FDS_MAX];
	size_t n_net_fds;
};

/*
 * Each op returns 0 or a negative errno; on error it writes a human message
 * into err (which starts empty). A NULL op answers 500 with a JSON error
 * body ("not implemented"), as CH answers a valid request it cannot serve.
 */
struct api_ops {
	/* -ENOENT when no VM exists; *ret_info is a JSON object the server releases */
	int (*info)(void *opaque, struct json_object **ret_info, char *err, size_t errlen);
	/*
	 * vm.counters: *ret is {"device id": {"counter": integer, ...}, ...},
	 * released by the server; -ENOENT when no VM exists.
	 */
	int (*counters)(void *opaque, struct json_object **ret, char *err, size_t errlen);
	/*
	 * vm.create with the body's VmConfig object (borrowed for the call;
	 * the op validates it): -EINVAL answers 400, -EEXIST 409.
	 */
	int (*create)(void *opaque, struct json_object *vm_config, char *err, size_t errlen);
	int (*boot)(void *opaque, char *err, size_t errlen);
	int (*delete_vm)(void *opaque, char *err, size_t errlen);
	int (*reboot)(void *opaque, char *err, size_t errlen);
	/* -EOPNOTSUPP (400) when the machine has no button the guest listens to */
	int (*power_button)(void *opaque, char *err, size_t errlen);
	int (*pause)(void *opaque, char *err, size_t errlen);
	int (*resume)(void *opaque, char *err, size_t errlen);
	/* destination_url has been checked to be file:///ABSOLUTE */
	int (*snapshot)(void *opaque, const char *destination_url, char *err, size_t errlen);
	/*
	 * vm.snapshot with "disks": "checkpoint" (Cloister's own): every writable
	 * disk is copied in too. NULL: such a request is refused (400).
	 */
	int (*snapshot_checkpoint)(void *opaque, const char *destination_url, char *err,
				   size_t errlen);
	/*
	 * vm.snapshot with "compression" or an encryption key (Cloister's own,
	 * snapshot_seal.h), body the request's object. NULL: refused (400).
	 */
	int (*snapshot_sealed)(void *opaque, const char *destination_url, bool checkpoint,
			       struct json_object *body, char *err, size_t errlen);
	/*
	 * vm.restore. -EEXIST answers 404 (CH: "already created"), -EOPNOTSUPP
	 * 400 (e.g. OnDemand before it is implemented).
	 */
	int (*restore_request)(void *opaque, const struct api_restore_request *req, char *err,
			       size_t errlen);
	int (*shutdown_vm)(void *opaque, char *err, size_t errlen);
	/*
	 * Called once the 204 has been sent. Must only ask the main loop to
	 * exit: api_server_stop() must not be called from this thread.
	 */
	int (*shutdown_vmm)(void *opaque, char *err, size_t errlen);
};

/*
 * Creates socket_path (mode 0600) and serves it on threads of its own.
 * A stale socket at that path is replaced; -EADDRINUSE when something still
 * listens there, -EEXIST when the path is not a socket.
 */
int api_server_start(const char *socket_path, const struct api_ops *ops, void *opaque,
		     struct api_server **ret);

/*
 * Stops serving, closes every connection and the socket (unlinked if it is
 * still ours), then waits for an op still running on the op thread to
 * return: whoever stops the server first makes long ops return. NULL is fine.
 */
void api_server_stop(struct api_server *s);

/*
 * As api_server_start(), but serves listen_fd (a listening AF_UNIX stream
 * socket, taken over: socket activation) instead of making socket_path,
 * which only names it in logs. api_server_stop() leaves the path in place:
 * it belongs to the socket unit.
 */
int api_server_start_fd(int listen_fd, const char *socket_path, const struct api_ops *ops,
			void *opaque, struct api_server **ret);

/*
 * HTTP status for an op's negative errno, after Cloud Hypervisor's openapi:
 *   0            204
 *   -ENOENT      404  no VM has been created
 *   -EINVAL      405  the op is not valid in the VM's current state
 *                     (vm.create: 400, the configuration is not valid)
 *   -EEXIST      409  a VM already exists (vm.restore: 404, as CH documents)
 *   -EBUSY       409  another operation is in progress
 *   -EBADMSG     400  the request named something unusable (a corrupt snapshot)
 *   -EOPNOTSUPP  400  the request asks for something this VMM cannot do
 *   other        500  the operation failed
 */
int http_status_for_error(int err);

/*
 * Request-body decoders, exposed for tests and fuzzing. -EINVAL with a
 * message in err for anything but a JSON object with the right fields
 * (unknown keys included); outputs are written only on success.
 */
int api_parse_snapshot_body(const char *body, size_t len, char **ret_destination_url,
			    char *err, size_t errlen);
/* The same, with "disks": "checkpoint" (the only value) in *ret_checkpoint. */
int api_parse_snapshot_request(const char *body, size_t len, char **ret_destination_url,
			       bool *ret_checkpoint, char *err, size_t errlen);
/*
 * The same, and *ret_sealed (a reference to the body object, the caller's
 * to drop) when it asks for "compression" or names an encryption key.
 */
int api_parse_snapshot_call(const char *body, size_t len, char **ret_destination_url,
			    bool *ret_checkpoint, struct json_object **ret_sealed, char *err,
			    size_t errlen);
/*
 * On success *ret holds source_url (malloc'd) and body (a reference the
 * caller drops with api_restore_request_release()).
 */
int api_parse_restore_request(const char *body, size_t len, struct api_restore_request *ret,
			      char *err, size_t errlen);
/* The same checks, keeping only source_url (malloc'd) and resume. */
int api_parse_restore_body(const char *body, size_t len, char **ret_source_url, bool *ret_resume,
			   char *err, size_t errlen);
void api_restore_request_release(struct api_restore_request *req);
/*
 * Gives the n descriptors that came with a vm.restore request to its
 * "net_fds" entries, in order (each entry takes num_fds of them, always 1
 * here). Takes every fd: on success they belong to req, on failure (-EINVAL
 * with err set: a count that does not match, a descriptor that is not a
 * usable tap) they are closed.
 */
int api_restore_attach_fds(struct api_restore_request *req, int *fds, size_t n, char *err,
			   size_t errlen);
/* Any JSON object (vm.create and bodies of paths Cloister does not serve). */
int api_parse_object_body(const char *body, size_t len, struct json_object **ret,
			  char *err, size_t errlen);

#endif
