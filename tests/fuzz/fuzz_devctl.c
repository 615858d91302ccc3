/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for a device process's control side: any sequence of
 * requests from a confused or hostile core, interleaved with guest writes
 * to its memory, kicks and a host end that drains, against the real state
 * table and handlers of virtio-rng or virtio-console. Every request must
 * be answered once, with its request id and its reply type; the device
 * never leaves a known state; nothing leaks or crashes.
 *
 * Input: byte 0 bit 0 picks the device (0 rng, 1 console), then records of
 *   u8 op, u8 arg, le16 len, len bytes
 * op % 12 < 9 sends a request (the message picked by op % 12, the payload
 * unpacked as that message, with arg % 5 fds: the guest memfd for
 * DevMemory, eventfds otherwise); 9 writes the payload to guest memory at
 * arg * 4 KiB; 10 serves every queue as a kick would; 11 drains the
 * console's host end and lets it write again.
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true
 *   build-fuzz/tests/fuzz/fuzz_devctl -close_fd_mask=2 CORPUS_COPY tests/fuzz/corpus/devctl
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "console.h"
#include "device_internal.h"
#include "frame.h"
#include "rng.h"

#define GUEST_BYTES (1u << 20)
#define MAX_FDS 4u

static const Cloister__Envelope__MsgCase requests[] = {
	CLOISTER__ENVELOPE__MSG_DEV_MEMORY,  CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE,
	CLOISTER__ENVELOPE__MSG_DEV_RESET,   CLOISTER__ENVELOPE__MSG_DEV_PAUSE,
	CLOISTER__ENVELOPE__MSG_DEV_RESUME,  CLOISTER__ENVELOPE__MSG_DEV_SAVE,
	CLOISTER__ENVELOPE__MSG_DEV_RESTORE, CLOISTER__ENVELOPE__MSG_DEV_COUNTERS,
	CLOISTER__ENVELOPE__MSG_CORE_START,
};
#define N_REQUESTS (sizeof(requests) / sizeof(requests[0]))

struct rig {
	struct device dev;
	int core;
	int memfd;
	uint8_t *guest;
	int pipe_rd;
	uint64_t next_id;
};

static Cloister__Envelope__MsgCase expected_answer(Cloister__Envelope__MsgCase asked)
{
	if (asked == CLOISTER__ENVELOPE__MSG_DEV_SAVE)
		return CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY;
	if (asked == CLOISTER__ENVELOPE__MSG_DEV_COUNTERS)
		return CLOISTER__ENVELOPE__MSG_DEV_COUNTERS_REPLY;
	return CLOISTER__ENVELOPE__MSG_REPLY;
}

static bool envelope_round_trips(const Cloister__Envelope *env)
{
	size_t len = cloister__envelope__get_packed_size(env);
	uint8_t *buf = malloc(len ? len : 1);
	Cloister__Envelope *back;

	if (!buf)
		abort();
	cloister__envelope__pack(env, buf);
	back = cloister__envelope__unpack(NULL, len, buf);
	free(buf);
	if (!back)
		return false;
	cloister__envelope__free_unpacked(back, NULL);
	return true;
}

/* Builds the request from payload, sends it with n_fds fds, has the device serve it, checks the answer. */
static void send_request(struct rig *r, Cloister__Envelope__MsgCase which, unsigned n_fds,
			 const uint8_t *payload, size_t len)
{
	const ProtobufCFieldDescriptor *field =
		protobuf_c_message_descriptor_get_field(&cloister__envelope__descriptor, which);
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply = NULL;
	ProtobufCMessage *body;
	int fds[MAX_FDS], err = 0;

	body = protobuf_c_message_unpack(field->descriptor, NULL, len, payload);
	if (!body)
		return;
	memcpy((char *)&env + field->offset, &body, sizeof(body));
	env.msg_case = which;
	env.request_id = ++r->next_id;
	/* protobuf-c keeps some unknown fields it cannot read back: such a frame tests the codec, not us. */
	if (!envelope_round_trips(&env)) {
		protobuf_c_message_free_unpacked(body, NULL);
		return;
	}
	for (unsigned i = 0; i < n_fds; i++)
		fds[i] = which == CLOISTER__ENVELOPE__MSG_DEV_MEMORY ?
				 dup(r->memfd) : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (frame_send(r->core, &env, fds, n_fds) < 0)
		abort();
	for (unsigned i = 0; i < n_fds; i++)
		close(fds[i]);
	protobuf_c_message_free_unpacked(body, NULL);
	if (device_control_handle(&r->dev, 0, &err, NULL) != 0)
		abort();
	if (frame_recv_timeout(r->core, 0, &reply, NULL, 0, NULL) < 0)
		abort();
	if (reply->request_id != env.request_id || reply->msg_case != expected_answer(which))
		abort();
	if ((unsigned)r->dev.state >= DEVICE_STATE_COUNT)
		abort();
	frame_free(reply);
}

static void drain_host(struct rig *r)
{
	uint8_t buf[4096];

	while (read(r->pipe_rd, buf, sizeof(buf)) > 0)
		;
	if (r->dev.state == DEVICE_ACTIVE && r->dev.want_output && r->dev.ops->host_writable &&
	    r->dev.ops->host_writable(&r->dev) < 0)
		r->dev.state = DEVICE_BROKEN;
}

static void run_record(struct rig *r, uint8_t op, uint8_t arg, const uint8_t *p, size_t len)
{
	op %= N_REQUESTS + 3;
	if (op < N_REQUESTS) {
		send_request(r, requests[op], arg % (MAX_FDS + 1), p, len);
	} else if (op == N_REQUESTS) {
		size_t off = (size_t)arg * 4096;

		memcpy(r->guest + off, p, len < GUEST_BYTES - off ? len : GUEST_BYTES - off);
	} else if (op == N_REQUESTS + 1) {
		device_serve_all_queues(&r->dev);
	} else if (r->pipe_rd >= 0) {
		drain_host(r);
	}
}

static void rig_open(struct rig *r, bool console)
{
	int sv[2], p[2] = { -1, -1 };

	memset(r, 0, sizeof(*r));
	r->pipe_rd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	r->memfd = memfd_create("guest", MFD_CLOEXEC);
	if (r->memfd < 0 || ftruncate(r->memfd, GUEST_BYTES) < 0)
		abort();
	r->guest = mmap(NULL, GUEST_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
	if (r->guest == MAP_FAILED)
		abort();
	r->core = sv[0];
	if (console) {
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
			abort();
		(void)fcntl(p[1], F_SETPIPE_SZ, 4096);
		r->pipe_rd = p[0];
	}
	device_init(&r->dev, console ? &console_ops : &rng_ops, console ? "con0" : "rng0", sv[1],
		    p[1]);
	if (device_configure(&r->dev, NULL) < 0)
		abort();
}

static void rig_close(struct rig *r)
{
	device_cleanup(&r->dev);
	close(r->core);
	if (r->pipe_rd >= 0)
		close(r->pipe_rd);
	munmap(r->guest, GUEST_BYTES);
	close(r->memfd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rig r;
	size_t at = 1;

	if (size < 1 || size > 256 * 1024)
		return 0;
	rig_open(&r, data[0] & 1);
	while (at + 4 <= size) {
		uint8_t op = data[at], arg = data[at + 1];
		size_t len = (size_t)data[at + 2] | (size_t)data[at + 3] << 8;

		at += 4;
		if (len > size - at)
			len = size - at;
		run_record(&r, op, arg, data + at, len);
		at += len;
	}
	rig_close(&r);
	return 0;
}
