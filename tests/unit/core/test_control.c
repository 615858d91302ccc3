/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmm-core's control loop, driven over a socketpair as the gateway would:
 * every reply echoes its request's id, and a configure that fails midway
 * leaves no half-built machine behind (the core then only takes a shutdown).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"
#include "frame.h"
#include "layout.h"
#include "memory.h"

struct served {
	int sock;
	struct guest_memory mem;
	int ret;
};

static void *serve(void *arg)
{
	struct served *s = arg;

	s->ret = control_serve(s->sock, &s->mem);
	return NULL;
}

/* Sends env with request id and returns the Reply's error; message copied to msg. */
static int ask(int sock, Cloister__Envelope *env, uint64_t id, char *msg, size_t msglen)
{
	Cloister__Envelope *reply = NULL;
	int err;

	env->request_id = id;
	cr_assert_eq(frame_send(sock, env, NULL, 0), 0);
	cr_assert_eq(frame_recv_timeout(sock, 20000, &reply, NULL, 0, NULL), 0);
	cr_assert_eq(reply->msg_case, CLOISTER__ENVELOPE__MSG_REPLY);
	cr_assert_eq(reply->request_id, id, "the reply echoes the request's id");
	err = reply->reply->error;
	snprintf(msg, msglen, "%s", reply->reply->message ? reply->reply->message : "");
	frame_free(reply);
	return err;
}

static int configure(int sock, uint64_t id, char *msg, size_t msglen)
{
	struct layout_region lr[LAYOUT_MAX_REGIONS];
	size_t n = layout_memory(16u << 20, lr);
	Cloister__MemoryRegion region = CLOISTER__MEMORY_REGION__INIT, *regions[] = { &region };
	Cloister__VmConfig cfg = CLOISTER__VM_CONFIG__INIT;
	Cloister__CoreConfigure req = CLOISTER__CORE_CONFIGURE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	cr_assert_eq(n, 1);
	region.guest_addr = lr[0].gpa;
	region.size = lr[0].size;
	cfg.boot_vcpus = 2;
	cfg.memory_size = 16u << 20;
	cfg.n_regions = 1;
	cfg.regions = regions;
	req.config = &cfg;
	req.restore = true;
	req.kernel_fd = req.serial_fd = req.initramfs_fd = -1;
	/* Console input at fd index 0, but no fd comes: fails after the machine is built. */
	req.serial_in_fd = 0;
	env.msg_case = CLOISTER__ENVELOPE__MSG_CORE_CONFIGURE;
	env.core_configure = &req;
	return ask(sock, &env, id, msg, msglen);
}

Test(control, failed_configure_takes_everything_back)
{
	struct served s = { .ret = 1 };
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	ProtobufCMessage body;
	pthread_t t;
	char msg[256];
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(memory_prepare(&s.mem), 0);
	s.sock = sv[1];
	cr_assert_eq(pthread_create(&t, NULL, serve, &s), 0);

	cr_assert_eq(configure(sv[0], 41, msg, sizeof(msg)), -EBADF);
	cr_assert(strstr(msg, "console input") != NULL, "%s", msg);
	cr_assert_eq(s.mem.n_regions, 0, "guest memory was released");
	/* Sealed memory cannot be set up again: the core says so rather than half-work. */
	cr_assert_eq(configure(sv[0], 42, msg, sizeof(msg)), -EPERM);
	cr_assert(strstr(msg, "halted") != NULL, "%s", msg);
	cr_assert_eq(frame_envelope_empty(&env, CLOISTER__ENVELOPE__MSG_CORE_PAUSE, &body), 0);
	cr_assert_eq(ask(sv[0], &env, 43, msg, sizeof(msg)), -EPERM);

	cr_assert_eq(frame_envelope_empty(&env, CLOISTER__ENVELOPE__MSG_CORE_SHUTDOWN, &body), 0);
	cr_assert_eq(ask(sv[0], &env, 44, msg, sizeof(msg)), 0);
	pthread_join(t, NULL);
	cr_assert_eq(s.ret, 0);
	memory_release(&s.mem);
	close(sv[0]);
	close(sv[1]);
}
