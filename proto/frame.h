/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Framing for every pair of Cloister processes: a little-endian u32 length,
 * then one packed cloister.Envelope, on a SOCK_STREAM Unix socket. File
 * descriptors ride as SCM_RIGHTS on the sendmsg() that carries the length
 * prefix and must match Envelope.n_fds exactly.
 */
#ifndef CLOISTER_FRAME_H
#define CLOISTER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "cloister.pb-c.h"

#define CL_PROTOCOL_VERSION 1u
/* Largest payload a reader accepts; a VmState for 64 vCPUs is far below. */
#define CL_FRAME_MAX (1u << 20)
/* Most fds one frame may carry. */
#define CL_FRAME_MAX_FDS 16u

/*
 * Sends all len bytes of data on sock, the fds (at most CL_FRAME_MAX_FDS)
 * riding on its first bytes (SCM_RIGHTS); waits out EAGAIN and EINTR.
 * Returns 0 or a negative errno (-EINVAL for too many fds).
 */
int frame_send_bytes(int sock, const void *data, size_t len, const int *fds, size_t n_fds);

/*
 * Sends env (its n_fds is set from n_fds) with fds attached.
 * Returns 0 or a negative errno.
 */
int frame_send(int sock, Cloister__Envelope *env, const int *fds, size_t n_fds);

/*
 * Receives one frame, blocking. On success *ret_env is a message to free with
 * frame_free(), and ret_fds[0..*ret_n_fds) hold the received fds (O_CLOEXEC),
 * owned by the caller. No more than max_fds are accepted: a frame carrying
 * more is refused. Nothing is written to ret_* on failure, and fds that came
 * with a refused frame are closed.
 * Returns 0; -EPIPE when the peer closed cleanly between frames;
 * -EPROTO for a malformed frame (bad length, undecodable payload, no message
 * set, n_fds that does not match the fds received); other negative errno for
 * socket errors.
 */
int frame_recv(int sock, Cloister__Envelope **ret_env, int *ret_fds, size_t max_fds,
	       size_t *ret_n_fds);

/* Same as frame_recv() but gives up with -ETIMEDOUT after timeout_ms (-1: never). */
int frame_recv_timeout(int sock, int timeout_ms, Cloister__Envelope **ret_env, int *ret_fds,
		       size_t max_fds, size_t *ret_n_fds);

void frame_free(Cloister__Envelope *env);

/* Sends Hello{CL_PROTOCOL_VERSION, role}. */
int frame_hello_send(int sock, Cloister__Role role);
/* Receives a Hello and checks its version and that the peer has role expected. -EPROTO otherwise. */
int frame_hello_expect(int sock, Cloister__Role expected, int timeout_ms);

/* Sends Reply{error, message} (message may be NULL). */
int frame_reply_send(int sock, int error, const char *message);

/* As frame_reply_send(), echoing request's request_id so the asker can match it. */
int frame_reply_to(int sock, const Cloister__Envelope *request, int error, const char *message);

/*
 * A deep copy of any message, through the wire format, that outlives the
 * envelope it came in. Free with protobuf_c_message_free_unpacked(m, NULL).
 * NULL when out of memory.
 */
ProtobufCMessage *proto_message_dup(const ProtobufCMessage *msg);

/*
 * Makes env a request of kind which whose message carries nothing but its
 * kind (core_start, core_pause, dev_reset, ...), with body as that empty
 * message: body must live as long as env. -EINVAL for a kind whose message
 * has fields to fill.
 */
int frame_envelope_empty(Cloister__Envelope *env, Cloister__Envelope__MsgCase which,
			 ProtobufCMessage *body);

/*
 * Makes env carry msg as the member of its oneof that which names; msg must
 * be of that member's type (checked against its descriptor) and live as
 * long as env. -EINVAL, env untouched, otherwise.
 */
int frame_wrap(Cloister__Envelope *env, Cloister__Envelope__MsgCase which, ProtobufCMessage *msg);

/* Name of the message set in env, for logs ("hello", "core_pause", ...). */
const char *frame_msg_name(const Cloister__Envelope *env);

#endif
