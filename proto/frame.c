/* SPDX-License-Identifier: Apache-2.0 */
#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

#define FRAME_HDR_LEN 4u

/* Fds gathered while one frame is read; any that arrive are ours to close on failure. */
struct frame_fds {
	int fd[CL_FRAME_MAX_FDS];
	size_t n;
};

static void frame_fds_close(struct frame_fds *fds)
{
	for (size_t i = 0; i < fds->n; i++)
		close(fds->fd[i]);
	fds->n = 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on sock until deadline (ms on CLOCK_MONOTONIC, -1: none). */
static int wait_fd(int sock, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = sock, .events = events };

	for (;;) {
		int timeout = -1;
		int r;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			timeout = left > 0 ? (int)(left > INT32_MAX ? INT32_MAX : left) : 0;
		}
		r = poll(&pfd, 1, timeout);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int frame_send_bytes(int sock, const void *data, size_t len, const int *fds, size_t n_fds)
{
	const uint8_t *buf = data;
	union {
		char buf[CMSG_SPACE(CL_FRAME_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} control = { 0 };
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	size_t off = 0;
	ssize_t n;

	if (n_fds > CL_FRAME_MAX_FDS)
		return -EINVAL;
	if (n_fds > 0) {
		struct cmsghdr *cmsg;

		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, n_fds * sizeof(int));
	}

	/* The fds travel with the first byte, so only the first write carries them. */
	while (off < len) {
		int r;

		if (off == 0)
			n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		else
			n = send(sock, buf + off, len - off, MSG_NOSIGNAL);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		r = wait_fd(sock, POLLOUT, -1);
		if (r < 0)
			return r;
	}
	return 0;
}

int frame_send(int sock, Cloister__Envelope *env, const int *fds, size_t n_fds)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int r;

	if (!env || env->msg_case == CLOISTER__ENVELOPE__MSG__NOT_SET ||
	    n_fds > CL_FRAME_MAX_FDS || (n_fds > 0 && !fds))
		return -EINVAL;
	env->n_fds = (uint32_t)n_fds;
	len = cloister__envelope__get_packed_size(env);
	if (len > CL_FRAME_MAX)
		return -EMSGSIZE;
	buf = malloc(FRAME_HDR_LEN + len);
	if (!buf)
		return -ENOMEM;
	put_le32(buf, (uint32_t)len);
	cloister__envelope__pack(env, buf + FRAME_HDR_LEN);
	r = frame_send_bytes(sock, buf, FRAME_HDR_LEN + len, fds, n_fds);
	if (r < 0)
		log_error("frame: sending %s failed: %s", frame_msg_name(env), strerror(-r));
	return r;
}

/* Moves the SCM_RIGHTS fds of msg into fds; -EPROTO for anything else in the control data. */
static int collect_fds(struct msghdr *msg, struct frame_fds *fds)
{
	int r = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0)) {
			r = -EPROTO;
			continue;
		}
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (fds->n < CL_FRAME_MAX_FDS)
				fds->fd[fds->n++] = fd;
			else {
				close(fd);
				r = -EPROTO;
			}
		}
	}
	if (msg->msg_flags & MSG_CTRUNC)
		r = -EPROTO;
	return r;
}

/*
 * Reads exactly len bytes, gathering any fds. Returns 0, -EPIPE on EOF before
 * the first byte, -EPROTO on EOF after it or on bad control data.
 */
static int recv_all(int sock, uint8_t *buf, size_t len, struct frame_fds *fds, int64_t deadline)
{
	size_t off = 0;

	while (off < len) {
		union {
			char buf[CMSG_SPACE(CL_FRAME_MAX_FDS * sizeof(int))];
			struct cmsghdr align;
		} control;
		struct iovec iov = { .iov_base = buf + off, .iov_len = len - off };
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = control.buf,
			.msg_controllen = sizeof(control.buf),
		};
		ssize_t n;
		int r;

		if (deadline >= 0) {
			r = wait_fd(sock, POLLIN, deadline);
			if (r < 0)
				return r;
		}
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				r = wait_fd(sock, POLLIN, deadline);
				if (r < 0)
					return r;
				continue;
			}
			return -errno;
		}
		r = collect_fds(&msg, fds);
		if (r < 0)
			return r;
		if (n == 0)
			return off == 0 ? -EPIPE : -EPROTO;
		off += (size_t)n;
	}
	return 0;
}

static int frame_decode(const uint8_t *buf, size_t len, size_t n_fds, size_t max_fds,
			Cloister__Envelope **ret_env)
{
	Cloister__Envelope *env = cloister__envelope__unpack(NULL, len, buf);

	if (!env) {
		log_error("frame: undecodable payload of %zu bytes", len);
		return -EPROTO;
	}
	/* Unknown oneof members decode as unknown fields, leaving no message set. */
	if (env->msg_case == CLOISTER__ENVELOPE__MSG__NOT_SET) {
		log_error("frame: no known message in envelope");
		goto refuse;
	}
	if (env->n_fds != n_fds || n_fds > max_fds) {
		log_error("frame: %s declares %u fds, %zu arrived, %zu allowed", frame_msg_name(env),
			  env->n_fds, n_fds, max_fds);
		goto refuse;
	}
	*ret_env = env;
	return 0;
refuse:
	cloister__envelope__free_unpacked(env, NULL);
	return -EPROTO;
}

static int frame_read(int sock, int64_t deadline, struct frame_fds *fds, size_t max_fds,
		      Cloister__Envelope **ret_env)
{
	_cleanup_free_ uint8_t *payload = NULL;
	uint8_t hdr[FRAME_HDR_LEN];
	uint32_t len;
	int r;

	r = recv_all(sock, hdr, sizeof(hdr), fds, deadline);
	if (r < 0) {
		if (r == -EPROTO)
			log_error("frame: truncated header or bad control data");
		else if (r != -EPIPE && r != -ETIMEDOUT)
			log_error("frame: receive failed: %s", strerror(-r));
		return r;
	}
	len = get_le32(hdr);
	if (len == 0 || len > CL_FRAME_MAX) {
		log_error("frame: refusing length %u", len);
		return -EPROTO;
	}
	payload = malloc(len);
	if (!payload)
		return -ENOMEM;
	r = recv_all(sock, payload, len, fds, deadline);
	if (r == -EPIPE)
		r = -EPROTO;
	if (r < 0) {
		log_error("frame: payload of %u bytes cut short: %s", len, strerror(-r));
		return r;
	}
	return frame_decode(payload, len, fds->n, max_fds, ret_env);
}

int frame_recv_timeout(int sock, int timeout_ms, Cloister__Envelope **ret_env, int *ret_fds,
		       size_t max_fds, size_t *ret_n_fds)
{
	struct frame_fds fds = { .n = 0 };
	Cloister__Envelope *env = NULL;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int r;

	if (!ret_env || (max_fds > 0 && (!ret_fds || !ret_n_fds)))
		return -EINVAL;
	if (max_fds > CL_FRAME_MAX_FDS)
		max_fds = CL_FRAME_MAX_FDS;
	r = frame_read(sock, deadline, &fds, max_fds, &env);
	if (r < 0) {
		frame_fds_close(&fds);
		return r;
	}
	if (fds.n > 0)
		memcpy(ret_fds, fds.fd, fds.n * sizeof(int));
	if (ret_n_fds)
		*ret_n_fds = fds.n;
	*ret_env = env;
	return 0;
}

int frame_recv(int sock, Cloister__Envelope **ret_env, int *ret_fds, size_t max_fds,
	       size_t *ret_n_fds)
{
	return frame_recv_timeout(sock, -1, ret_env, ret_fds, max_fds, ret_n_fds);
}

void frame_free(Cloister__Envelope *env)
{
	if (env)
		cloister__envelope__free_unpacked(env, NULL);
}

int frame_hello_send(int sock, Cloister__Role role)
{
	Cloister__Hello hello = CLOISTER__HELLO__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	hello.protocol_version = CL_PROTOCOL_VERSION;
	hello.role = role;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_HELLO, &hello.base);
	return frame_send(sock, &env, NULL, 0);
}

int frame_hello_expect(int sock, Cloister__Role expected, int timeout_ms)
{
	Cloister__Envelope *env = NULL;
	int r;

	r = frame_recv_timeout(sock, timeout_ms, &env, NULL, 0, NULL);
	if (r < 0) {
		if (r == -ETIMEDOUT || r == -EPIPE)
			log_error("frame: no hello from peer: %s", strerror(-r));
		return r;
	}
	if (env->msg_case != CLOISTER__ENVELOPE__MSG_HELLO) {
		log_error("frame: expected hello, got %s", frame_msg_name(env));
		r = -EPROTO;
	} else if (env->hello->protocol_version != CL_PROTOCOL_VERSION) {
		log_error("frame: peer speaks protocol %u, we speak %u",
			  env->hello->protocol_version, CL_PROTOCOL_VERSION);
		r = -EPROTO;
	} else if (env->hello->role != expected) {
		log_error("frame: peer has role %d, expected %d", (int)env->hello->role,
			  (int)expected);
		r = -EPROTO;
	}
	frame_free(env);
	return r;
}

int frame_reply_to(int sock, const Cloister__Envelope *request, int error, const char *message)
{
	Cloister__Reply reply = CLOISTER__REPLY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	reply.error = error;
	if (message)
		reply.message = (char *)message;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_REPLY, &reply.base);
	env.request_id = request ? request->request_id : 0;
	return frame_send(sock, &env, NULL, 0);
}

int frame_reply_send(int sock, int error, const char *message)
{
	Cloister__Reply reply = CLOISTER__REPLY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	reply.error = error;
	if (message)
		reply.message = (char *)message;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_REPLY, &reply.base);
	return frame_send(sock, &env, NULL, 0);
}

int frame_envelope_empty(Cloister__Envelope *env, Cloister__Envelope__MsgCase which,
			 ProtobufCMessage *body)
{
	const ProtobufCFieldDescriptor *field =
		protobuf_c_message_descriptor_get_field(&cloister__envelope__descriptor,
							(unsigned)which);
	const ProtobufCMessageDescriptor *md;

	if (!field || field->type != PROTOBUF_C_TYPE_MESSAGE)
		return -EINVAL;
	md = field->descriptor;
	if (md->n_fields != 0 || md->sizeof_message != sizeof(*body))
		return -EINVAL;
	protobuf_c_message_init(md, body);
	/* Every member of the oneof sits at the same offset: field->offset. */
	memcpy((char *)env + field->offset, &body, sizeof(body));
	env->msg_case = which;
	return 0;
}

int frame_wrap(Cloister__Envelope *env, Cloister__Envelope__MsgCase which, ProtobufCMessage *msg)
{
	const ProtobufCFieldDescriptor *field =
		protobuf_c_message_descriptor_get_field(&cloister__envelope__descriptor,
							(unsigned)which);

	if (!field || field->type != PROTOBUF_C_TYPE_MESSAGE || !msg ||
	    msg->descriptor != field->descriptor)
		return -EINVAL;
	/* Every member of the oneof sits at the same offset: field->offset. */
	memcpy((char *)env + field->offset, &msg, sizeof(msg));
	env->msg_case = which;
	return 0;
}

const char *frame_msg_name(const Cloister__Envelope *env)
{
	const ProtobufCFieldDescriptor *field;

	if (!env || env->msg_case == CLOISTER__ENVELOPE__MSG__NOT_SET)
		return "none";
	/* The oneof case value is the field number, so the descriptor names it. */
	field = protobuf_c_message_descriptor_get_field(&cloister__envelope__descriptor,
							(unsigned)env->msg_case);
	return field ? field->name : "unknown";
}

ProtobufCMessage *proto_message_dup(const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len ? len : 1);
	ProtobufCMessage *copy;

	if (!buf)
		return NULL;
	protobuf_c_message_pack(msg, buf);
	copy = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
	free(buf);
	return copy;
}
