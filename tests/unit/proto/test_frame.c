/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "frame.h"

static int sv[2] = { -1, -1 };

static void pair_open(void)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void pair_close(void)
{
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	sv[0] = sv[1] = -1;
}

TestSuite(frame, .init = pair_open, .fini = pair_close);

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Writes bytes and fds exactly as given, to play a broken or hostile peer. */
static void raw_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds)
{
	union {
		char buf[CMSG_SPACE(64 * sizeof(int))];
		struct cmsghdr align;
	} control = { 0 };
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	cr_assert_leq(n_fds, 64);
	if (n_fds) {
		struct cmsghdr *c;

		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	cr_assert_eq(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

/* Sends a length header followed by payload, with fds on the first byte. */
static void raw_frame(int sock, uint32_t len, const void *payload, size_t payload_len,
		      const int *fds, size_t n_fds)
{
	uint8_t buf[256];

	cr_assert_leq(payload_len + 4, sizeof(buf));
	buf[0] = (uint8_t)len;
	buf[1] = (uint8_t)(len >> 8);
	buf[2] = (uint8_t)(len >> 16);
	buf[3] = (uint8_t)(len >> 24);
	if (payload_len)
		memcpy(buf + 4, payload, payload_len);
	raw_send(sock, buf, 4 + payload_len, fds, n_fds);
}

static int send_core_start(int sock, const int *fds, size_t n_fds)
{
	Cloister__CoreStart start = CLOISTER__CORE_START__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	env.msg_case = CLOISTER__ENVELOPE__MSG_CORE_START;
	env.core_start = &start;
	return frame_send(sock, &env, fds, n_fds);
}

static int make_memfd(const char *content)
{
	int fd = memfd_create("frame-test", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	return fd;
}

Test(frame, round_trip_without_fds)
{
	Cloister__Envelope *env = NULL;
	int fds[1];
	size_t n = 99;

	cr_assert_eq(frame_reply_send(sv[0], -ENOENT, "no such vm"), 0);
	cr_assert_eq(frame_recv(sv[1], &env, fds, 1, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(env->msg_case, CLOISTER__ENVELOPE__MSG_REPLY);
	cr_assert_eq(env->reply->error, -ENOENT);
	cr_assert_str_eq(env->reply->message, "no such vm");
	cr_assert_str_eq(frame_msg_name(env), "reply");
	frame_free(env);
}

/* A kind without fields is sent as itself; one with fields is refused, env untouched. */
Test(frame, empty_request_round_trip)
{
	static const Cloister__Envelope__MsgCase kinds[] = {
		CLOISTER__ENVELOPE__MSG_CORE_PAUSE, CLOISTER__ENVELOPE__MSG_CORE_START,
		CLOISTER__ENVELOPE__MSG_DEV_RESET, CLOISTER__ENVELOPE__MSG_DEV_RESUME,
	};
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT, *got = NULL;
	ProtobufCMessage body;
	size_t n = 0;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		cr_assert_eq(frame_envelope_empty(&env, kinds[i], &body), 0);
		cr_assert_eq(frame_send(sv[0], &env, NULL, 0), 0);
		cr_assert_eq(frame_recv(sv[1], &got, NULL, 0, &n), 0);
		cr_assert_eq(got->msg_case, kinds[i]);
		cr_assert_not_null(got->core_pause, "no message for %s", frame_msg_name(got));
		frame_free(got);
	}
	env = (Cloister__Envelope)CLOISTER__ENVELOPE__INIT;
	cr_assert_eq(frame_envelope_empty(&env, CLOISTER__ENVELOPE__MSG_REPLY, &body), -EINVAL);
	{
		Cloister__Reply reply = CLOISTER__REPLY__INIT;
		Cloister__CorePause pause = CLOISTER__CORE_PAUSE__INIT;

		/* A message of another type than the member's is refused. */
		cr_assert_eq(frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_PAUSE, &reply.base), -EINVAL);
		cr_assert_eq(env.msg_case, CLOISTER__ENVELOPE__MSG__NOT_SET);
		reply.error = -5;
		cr_assert_eq(frame_wrap(&env, CLOISTER__ENVELOPE__MSG_REPLY, &reply.base), 0);
		cr_assert_eq(frame_send(sv[0], &env, NULL, 0), 0);
		cr_assert_eq(frame_recv(sv[1], &got, NULL, 0, &n), 0);
		cr_assert_eq(got->msg_case, CLOISTER__ENVELOPE__MSG_REPLY);
		cr_assert_eq(got->reply->error, -5);
		frame_free(got);
		cr_assert_eq(frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_PAUSE, &pause.base), 0);
		cr_assert_eq(env.core_pause, &pause);
		env = (Cloister__Envelope)CLOISTER__ENVELOPE__INIT;
	}
	cr_assert_eq(frame_envelope_empty(&env, CLOISTER__ENVELOPE__MSG__NOT_SET, &body), -EINVAL);
	cr_assert_eq(env.msg_case, CLOISTER__ENVELOPE__MSG__NOT_SET);
}

Test(frame, round_trip_with_memfd)
{
	Cloister__Envelope *env = NULL;
	int fd = make_memfd("guest ram");
	int got[2] = { -1, -1 };
	char buf[16] = { 0 };
	size_t n = 0;

	cr_assert_eq(send_core_start(sv[0], &fd, 1), 0);
	close(fd);
	cr_assert_eq(frame_recv(sv[1], &env, got, 2, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(env->n_fds, 1);
	cr_assert_str_eq(frame_msg_name(env), "core_start");
	cr_assert(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(pread(got[0], buf, sizeof(buf) - 1, 0), 9);
	cr_assert_str_eq(buf, "guest ram");
	close(got[0]);
	frame_free(env);
}

Test(frame, max_fds_accepted)
{
	int fds[CL_FRAME_MAX_FDS], got[CL_FRAME_MAX_FDS];
	Cloister__Envelope *env = NULL;
	size_t n = 0;

	for (size_t i = 0; i < CL_FRAME_MAX_FDS; i++)
		fds[i] = make_memfd(i % 2 ? "odd" : "even");
	cr_assert_eq(send_core_start(sv[0], fds, CL_FRAME_MAX_FDS), 0);
	for (size_t i = 0; i < CL_FRAME_MAX_FDS; i++)
		close(fds[i]);
	cr_assert_eq(frame_recv(sv[1], &env, got, CL_FRAME_MAX_FDS, &n), 0);
	cr_assert_eq(n, CL_FRAME_MAX_FDS);
	for (size_t i = 0; i < n; i++) {
		char buf[8] = { 0 };

		cr_assert_gt(pread(got[i], buf, sizeof(buf) - 1, 0), 0);
		cr_assert_str_eq(buf, i % 2 ? "odd" : "even");
		close(got[i]);
	}
	frame_free(env);
}

Test(frame, send_refuses_too_many_fds)
{
	int fds[CL_FRAME_MAX_FDS + 1];

	for (size_t i = 0; i <= CL_FRAME_MAX_FDS; i++)
		fds[i] = sv[0];
	cr_assert_eq(send_core_start(sv[0], fds, CL_FRAME_MAX_FDS + 1), -EINVAL);
}

Test(frame, more_fds_than_caller_allows)
{
	int fds[3] = { make_memfd("a"), make_memfd("b"), make_memfd("c") };
	Cloister__Envelope *env = NULL;
	int got[2] = { -1, -1 };
	size_t n = 77;
	int before;

	cr_assert_eq(send_core_start(sv[0], fds, 3), 0);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	before = count_open_fds();
	cr_assert_eq(frame_recv(sv[1], &env, got, 2, &n), -EPROTO);
	cr_assert_null(env);
	cr_assert_eq(n, 77);
	cr_assert_eq(got[0], -1);
	cr_assert_eq(count_open_fds(), before, "refused fds leaked");
}

Test(frame, more_fds_than_the_frame_limit)
{
	Cloister__CoreStart start = CLOISTER__CORE_START__INIT;
	Cloister__Envelope e = CLOISTER__ENVELOPE__INIT;
	int fds[CL_FRAME_MAX_FDS + 4];
	Cloister__Envelope *env = NULL;
	int got[CL_FRAME_MAX_FDS];
	uint8_t payload[64];
	size_t len, n;
	int before;

	e.msg_case = CLOISTER__ENVELOPE__MSG_CORE_START;
	e.core_start = &start;
	e.n_fds = ARRAY_SIZE(fds);
	len = cloister__envelope__pack(&e, payload);
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		fds[i] = sv[0];
	before = count_open_fds();
	raw_frame(sv[0], (uint32_t)len, payload, len, fds, ARRAY_SIZE(fds));
	cr_assert_eq(frame_recv(sv[1], &env, got, CL_FRAME_MAX_FDS, &n), -EPROTO);
	cr_assert_eq(count_open_fds(), before, "truncated fds leaked");
}

Test(frame, zero_length)
{
	Cloister__Envelope *env = NULL;

	raw_frame(sv[0], 0, NULL, 0, NULL, 0);
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), -EPROTO);
	cr_assert_null(env);
}

Test(frame, oversize_length)
{
	Cloister__Envelope *env = NULL;
	int fd = make_memfd("x");
	int before;

	raw_frame(sv[0], CL_FRAME_MAX + 1, "abc", 3, &fd, 1);
	close(fd);
	before = count_open_fds();
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), -EPROTO);
	cr_assert_eq(count_open_fds(), before, "fd of an oversize frame kept open");
}

Test(frame, truncated_payload_then_eof)
{
	Cloister__Envelope *env = NULL;

	raw_frame(sv[0], 100, "\x52\x00", 2, NULL, 0);
	close(sv[0]);
	sv[0] = -1;
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), -EPROTO);
}

Test(frame, truncated_header_then_eof)
{
	Cloister__Envelope *env = NULL;

	raw_send(sv[0], "\x02\x00", 2, NULL, 0);
	close(sv[0]);
	sv[0] = -1;
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), -EPROTO);
}

Test(frame, garbage_payload)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	Cloister__Envelope *env = NULL;

	raw_frame(sv[0], sizeof(junk), junk, sizeof(junk), NULL, 0);
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), -EPROTO);
	cr_assert_null(env);
}

Test(frame, unknown_message_field)
{
	/* field 99, length-delimited, empty: a oneof member this build does not know */
	static const uint8_t unknown[] = { 0x9a, 0x06, 0x00 };
	Cloister__Envelope *env = NULL;

	raw_frame(sv[0], sizeof(unknown), unknown, sizeof(unknown), NULL, 0);
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), -EPROTO);
}

Test(frame, only_n_fds_set)
{
	static const uint8_t only_n_fds[] = { 0x08, 0x00 };
	Cloister__Envelope *env = NULL;

	raw_frame(sv[0], sizeof(only_n_fds), only_n_fds, sizeof(only_n_fds), NULL, 0);
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), -EPROTO);
}

Test(frame, n_fds_mismatch)
{
	Cloister__CoreStart start = CLOISTER__CORE_START__INIT;
	Cloister__Envelope e = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *env = NULL;
	int fd = make_memfd("y");
	uint8_t payload[64];
	int got[4];
	size_t len, n;
	int before;

	e.msg_case = CLOISTER__ENVELOPE__MSG_CORE_START;
	e.core_start = &start;
	e.n_fds = 2;
	len = cloister__envelope__pack(&e, payload);
	raw_frame(sv[0], (uint32_t)len, payload, len, &fd, 1);
	close(fd);
	before = count_open_fds();
	cr_assert_eq(frame_recv(sv[1], &env, got, 4, &n), -EPROTO);
	cr_assert_eq(count_open_fds(), before);

	/* and the other way round: fds declared, none sent */
	e.n_fds = 1;
	len = cloister__envelope__pack(&e, payload);
	raw_frame(sv[0], (uint32_t)len, payload, len, NULL, 0);
	cr_assert_eq(frame_recv(sv[1], &env, got, 4, &n), -EPROTO);
}

Test(frame, eof_between_frames)
{
	Cloister__Envelope *env = NULL;

	cr_assert_eq(send_core_start(sv[0], NULL, 0), 0);
	close(sv[0]);
	sv[0] = -1;
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), 0);
	frame_free(env);
	env = NULL;
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), -EPIPE);
	cr_assert_null(env);
}

Test(frame, send_to_closed_peer)
{
	close(sv[1]);
	sv[1] = -1;
	cr_assert_eq(send_core_start(sv[0], NULL, 0), -EPIPE);
}

Test(frame, send_refuses_empty_envelope)
{
	Cloister__Envelope e = CLOISTER__ENVELOPE__INIT;

	cr_assert_eq(frame_send(sv[0], &e, NULL, 0), -EINVAL);
	cr_assert_str_eq(frame_msg_name(&e), "none");
}

Test(frame, hello_ok)
{
	cr_assert_eq(frame_hello_send(sv[0], CLOISTER__ROLE__ROLE_SNAPSHOTD), 0);
	cr_assert_eq(frame_hello_expect(sv[1], CLOISTER__ROLE__ROLE_SNAPSHOTD, 1000), 0);
}

Test(frame, hello_wrong_role)
{
	cr_assert_eq(frame_hello_send(sv[0], CLOISTER__ROLE__ROLE_DEVICE), 0);
	cr_assert_eq(frame_hello_expect(sv[1], CLOISTER__ROLE__ROLE_VMM, 1000), -EPROTO);
}

Test(frame, hello_wrong_version)
{
	Cloister__Hello hello = CLOISTER__HELLO__INIT;
	Cloister__Envelope e = CLOISTER__ENVELOPE__INIT;

	hello.protocol_version = CL_PROTOCOL_VERSION + 1;
	hello.role = CLOISTER__ROLE__ROLE_VMM;
	e.msg_case = CLOISTER__ENVELOPE__MSG_HELLO;
	e.hello = &hello;
	cr_assert_eq(frame_send(sv[0], &e, NULL, 0), 0);
	cr_assert_eq(frame_hello_expect(sv[1], CLOISTER__ROLE__ROLE_VMM, 1000), -EPROTO);
}

Test(frame, hello_not_a_hello)
{
	cr_assert_eq(frame_reply_send(sv[0], 0, NULL), 0);
	cr_assert_eq(frame_hello_expect(sv[1], CLOISTER__ROLE__ROLE_VMM, 1000), -EPROTO);
}

Test(frame, hello_with_fds_refused)
{
	Cloister__Hello hello = CLOISTER__HELLO__INIT;
	Cloister__Envelope e = CLOISTER__ENVELOPE__INIT;
	int fd = make_memfd("z");

	hello.protocol_version = CL_PROTOCOL_VERSION;
	hello.role = CLOISTER__ROLE__ROLE_VMM;
	e.msg_case = CLOISTER__ENVELOPE__MSG_HELLO;
	e.hello = &hello;
	cr_assert_eq(frame_send(sv[0], &e, &fd, 1), 0);
	close(fd);
	cr_assert_eq(frame_hello_expect(sv[1], CLOISTER__ROLE__ROLE_VMM, 1000), -EPROTO);
}

Test(frame, timeout_on_silence)
{
	Cloister__Envelope *env = NULL;

	cr_assert_eq(frame_recv_timeout(sv[1], 50, &env, NULL, 0, NULL), -ETIMEDOUT);
	cr_assert_eq(frame_hello_expect(sv[1], CLOISTER__ROLE__ROLE_VMM, 20), -ETIMEDOUT);
}

Test(frame, timeout_mid_frame)
{
	Cloister__Envelope *env = NULL;

	raw_frame(sv[0], 10, "\x52", 1, NULL, 0);
	cr_assert_eq(frame_recv_timeout(sv[1], 50, &env, NULL, 0, NULL), -ETIMEDOUT);
}

struct big_sender {
	int sock;
	size_t blob_len;
	int ret;
};

static void *send_big(void *arg)
{
	struct big_sender *s = arg;
	Cloister__DevSaveReply reply = CLOISTER__DEV_SAVE_REPLY__INIT;
	Cloister__DeviceState state = CLOISTER__DEVICE_STATE__INIT;
	Cloister__Envelope e = CLOISTER__ENVELOPE__INIT;
	uint8_t *blob = malloc(s->blob_len);
	int fd = make_memfd("big");

	for (size_t i = 0; i < s->blob_len; i++)
		blob[i] = (uint8_t)(i * 7);
	state.blob.data = blob;
	state.blob.len = s->blob_len;
	reply.state = &state;
	e.msg_case = CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY;
	e.dev_save_reply = &reply;
	s->ret = frame_send(s->sock, &e, &fd, 1);
	close(fd);
	free(blob);
	return NULL;
}

/* Larger than the socket buffer, so both sides see short reads and writes. */
Test(frame, large_frame_with_fd)
{
	struct big_sender s = { .sock = sv[0], .blob_len = 900 * 1024 };
	Cloister__Envelope *env = NULL;
	pthread_t t;
	size_t n = 0;
	int got[1];

	cr_assert_eq(pthread_create(&t, NULL, send_big, &s), 0);
	cr_assert_eq(frame_recv(sv[1], &env, got, 1, &n), 0);
	pthread_join(t, NULL);
	cr_assert_eq(s.ret, 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(env->dev_save_reply->state->blob.len, s.blob_len);
	for (size_t i = 0; i < s.blob_len; i++)
		cr_assert_eq(env->dev_save_reply->state->blob.data[i], (uint8_t)(i * 7));
	close(got[0]);
	frame_free(env);
}

Test(frame, send_refuses_oversize)
{
	Cloister__DevSaveReply reply = CLOISTER__DEV_SAVE_REPLY__INIT;
	Cloister__DeviceState state = CLOISTER__DEVICE_STATE__INIT;
	Cloister__Envelope e = CLOISTER__ENVELOPE__INIT;
	uint8_t *blob = calloc(1, CL_FRAME_MAX);

	state.blob.data = blob;
	state.blob.len = CL_FRAME_MAX;
	reply.state = &state;
	e.msg_case = CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY;
	e.dev_save_reply = &reply;
	cr_assert_eq(frame_send(sv[0], &e, NULL, 0), -EMSGSIZE);
	free(blob);
}

Test(frame, two_frames_back_to_back)
{
	Cloister__Envelope *env = NULL;

	cr_assert_eq(frame_hello_send(sv[0], CLOISTER__ROLE__ROLE_GATEWAY), 0);
	cr_assert_eq(frame_reply_send(sv[0], -5, "second"), 0);
	cr_assert_eq(frame_hello_expect(sv[1], CLOISTER__ROLE__ROLE_GATEWAY, 1000), 0);
	cr_assert_eq(frame_recv(sv[1], &env, NULL, 0, NULL), 0);
	cr_assert_eq(env->reply->error, -5);
	frame_free(env);
}
