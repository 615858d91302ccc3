/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for frame_recv(): the first input byte says how many fds
 * ride on the first write (up to a few more than a frame may carry), the rest
 * is the byte stream a hostile peer sends. Every frame is read until an error;
 * a received fd that is not handed back or closed aborts the run.
 *
 * Build and run (from the top of the tree, after any meson setup generated
 * cloister.pb-c.[ch] in BUILD/proto):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iproto -Icommon \
 *     -IBUILD/proto tests/fuzz/fuzz_frame.c proto/frame.c BUILD/proto/cloister.pb-c.c \
 *     common/log.c -lprotobuf-c -o fuzz_frame
 *   ./fuzz_frame -close_fd_mask=2 CORPUS_COPY tests/fuzz/corpus/frame
 * (-close_fd_mask=2 silences the log line each refused frame produces.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"

#define FUZZ_MAX_INPUT (64u * 1024u)
#define FUZZ_MAX_FDS (CL_FRAME_MAX_FDS + 4u)

static void feed(int sock, const uint8_t *data, size_t len, size_t n_fds)
{
	union {
		char buf[CMSG_SPACE(FUZZ_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} control = { 0 };
	int fds[FUZZ_MAX_FDS];
	uint8_t dummy = 0;
	struct iovec iov = { .iov_base = len ? (void *)data : &dummy, .iov_len = len ? len : 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n_fds) {
		struct cmsghdr *c;
		int memfd = memfd_create("fuzz", MFD_CLOEXEC);

		if (memfd < 0)
			abort();
		for (size_t i = 0; i < n_fds; i++)
			fds[i] = memfd;
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
		if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
			abort();
		close(memfd);
	} else if (len && send(sock, data, len, MSG_NOSIGNAL) != (ssize_t)len) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[CL_FRAME_MAX_FDS];
	Cloister__Envelope *env;
	size_t n_fds;
	int sv[2], probe;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* Fits in the socket buffer, so one thread can write it all before reading. */
	feed(sv[0], data + 1, size - 1, data[0] % (FUZZ_MAX_FDS + 1));
	close(sv[0]);
	while (frame_recv(sv[1], &env, fds, data[0] & 0x80 ? 2 : CL_FRAME_MAX_FDS, &n_fds) == 0) {
		if (env->n_fds != n_fds || !frame_msg_name(env))
			abort();
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		frame_free(env);
	}
	close(sv[1]);
	/* socketpair() took the lowest free fds; a leak would push the next one higher. */
	probe = dup(STDIN_FILENO);
	if (probe > (sv[0] < sv[1] ? sv[0] : sv[1]))
		abort();
	if (probe >= 0)
		close(probe);
	return 0;
}
