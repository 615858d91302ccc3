/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmm-core's control loop, driven over a socketpair as the gateway would:
 * every reply echoes its request's id, and a configure that fails midway
 * leaves no half-built machine behind (the core then only takes a shutdown).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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

/* ---- memory given by the fd store, and handed back ---- */

static int memfd_of(uint64_t size, int seals)
{
	int fd = memfd_create("given", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	if (seals)
		cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* A configure for restore into the memfd rw (and its read-only twin), 16 MiB. */
static int configure_given(int sock, uint64_t id, int rw, char *msg, size_t msglen)
{
	struct layout_region lr[LAYOUT_MAX_REGIONS];
	size_t n = layout_memory(16u << 20, lr);
	Cloister__MemoryRegion region = CLOISTER__MEMORY_REGION__INIT, *regions[] = { &region };
	Cloister__VmConfig cfg = CLOISTER__VM_CONFIG__INIT;
	Cloister__CoreConfigure req = CLOISTER__CORE_CONFIGURE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT, *reply = NULL;
	int32_t rw_index = 0, ro_index = 1;
	char path[64];
	int fds[2], err;

	cr_assert_eq(n, 1);
	region.guest_addr = lr[0].gpa;
	region.size = lr[0].size;
	cfg.boot_vcpus = 1;
	cfg.memory_size = 16u << 20;
	cfg.n_regions = 1;
	cfg.regions = regions;
	req.config = &cfg;
	req.restore = true;
	req.kernel_fd = req.serial_fd = req.initramfs_fd = req.serial_in_fd = -1;
	req.memory_fds = &rw_index;
	req.n_memory_fds = 1;
	req.memory_ro_fds = &ro_index;
	req.n_memory_ro_fds = 1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
	fds[0] = rw;
	fds[1] = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fds[1], 0);
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_CONFIGURE, &req.base);
	env.request_id = id;
	cr_assert_eq(frame_send(sock, &env, fds, 2), 0);
	close(fds[1]);
	cr_assert_eq(frame_recv_timeout(sock, 20000, &reply, NULL, 0, NULL), 0);
	cr_assert_eq(reply->msg_case, CLOISTER__ENVELOPE__MSG_REPLY);
	err = reply->reply->error;
	snprintf(msg, msglen, "%s", reply->reply->message ? reply->reply->message : "");
	frame_free(reply);
	return err;
}

static void start_core(struct served *s, pthread_t *t, int sv[2])
{
	*s = (struct served){ .ret = 1 };
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(memory_prepare(&s->mem), 0);
	s->sock = sv[1];
	cr_assert_eq(pthread_create(t, NULL, serve, s), 0);
}

static void stop_core(struct served *s, pthread_t t, int sv[2], uint64_t id)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	ProtobufCMessage body;
	char msg[256];

	cr_assert_eq(frame_envelope_empty(&env, CLOISTER__ENVELOPE__MSG_CORE_SHUTDOWN, &body), 0);
	cr_assert_eq(ask(sv[0], &env, id, msg, sizeof(msg)), 0);
	pthread_join(t, NULL);
	cr_assert_eq(s->ret, 0);
	memory_release(&s->mem);
	close(sv[0]);
	close(sv[1]);
}

Test(control, given_memory_is_mapped_and_must_be_restored_as_kept)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__CoreRestore rest = CLOISTER__CORE_RESTORE__INIT;
	Cloister__CoreExportMemory exp = CLOISTER__CORE_EXPORT_MEMORY__INIT;
	uint64_t word = 0x0123456789abcdefull, back = 0;
	int rw = memfd_of(16u << 20, F_SEAL_SHRINK | F_SEAL_GROW);
	struct served s;
	char msg[256];
	pthread_t t;
	int sv[2], sp[2];

	cr_assert_eq(pwrite(rw, &word, sizeof(word), 8192), (ssize_t)sizeof(word));
	start_core(&s, &t, sv);
	cr_assert_eq(configure_given(sv[0], 51, rw, msg, sizeof(msg)), 0, "%s", msg);
	close(rw);
	cr_assert_eq(memory_read(&s.mem, s.mem.ram[0].gpa + 8192, &back, sizeof(back)), 0);
	cr_expect_eq(back, word, "vmm-core maps the memory it was given, as it is");

	/* Only a paused VM hands its memory out. */
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_EXPORT_MEMORY, &exp.base);
	cr_expect_eq(ask(sv[0], &env, 52, msg, sizeof(msg)), -EPERM);
	cr_expect(strstr(msg, "ready") != NULL, "%s", msg);

	/* Memory that holds the guest is never filled: a plain restore is refused. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	env = (Cloister__Envelope)CLOISTER__ENVELOPE__INIT;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_RESTORE, &rest.base);
	env.request_id = 53;
	cr_assert_eq(frame_send(sv[0], &env, &sp[1], 1), 0);
	{
		Cloister__Envelope *reply = NULL;

		cr_assert_eq(frame_recv_timeout(sv[0], 20000, &reply, NULL, 0, NULL), 0);
		cr_assert_eq(reply->msg_case, CLOISTER__ENVELOPE__MSG_REPLY);
		cr_expect_eq(reply->reply->error, -EINVAL);
		cr_expect(strstr(reply->reply->message, "given its memory") != NULL, "%s",
			  reply->reply->message);
		frame_free(reply);
	}
	close(sp[0]);
	close(sp[1]);
	stop_core(&s, t, sv, 54);
}

Test(control, given_memory_that_is_not_sealed_is_refused)
{
	int rw = memfd_of(16u << 20, 0);
	struct served s;
	char msg[256];
	pthread_t t;
	int sv[2];

	start_core(&s, &t, sv);
	cr_expect_eq(configure_given(sv[0], 61, rw, msg, sizeof(msg)), -EINVAL);
	cr_expect(strstr(msg, "seals") != NULL, "%s", msg);
	cr_expect_eq(s.mem.n_regions, 0);
	close(rw);
	stop_core(&s, t, sv, 62);
}
