/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rng device end to end in-process: the framework runs on a thread, the
 * test speaks the core's side of the protocol over a socketpair.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "device.h"
#include "frame.h"
#include "guest_mem.h"
#include "rng.h"

#define QSIZE 16u

static struct test_guest g;
static struct device dev;
static pthread_t thread;
static int core;
static int serve_result;
static int kick, call;

static void *device_thread(void *arg)
{
	serve_result = device_handshake(&dev);
	if (serve_result >= 0)
		serve_result = device_serve(&dev);
	return NULL;
}

static int request(Cloister__Envelope *env, const int *fds, size_t n_fds)
{
	Cloister__Envelope *reply = NULL;
	int r;

	cr_assert_eq(frame_send(core, env, fds, n_fds), 0);
	cr_assert_eq(frame_recv_timeout(core, 2000, &reply, NULL, 0, NULL), 0);
	cr_assert_eq(reply->msg_case, CLOISTER__ENVELOPE__MSG_REPLY);
	r = reply->reply->error;
	frame_free(reply);
	return r;
}

static void send_memory(void)
{
	Cloister__MemoryRegion reg = CLOISTER__MEMORY_REGION__INIT;
	Cloister__MemoryRegion *regs[] = { &reg };
	Cloister__DevMemory msg = CLOISTER__DEV_MEMORY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	reg.guest_addr = GM_BASE;
	reg.size = GM_SIZE;
	msg.n_regions = 1;
	msg.regions = regs;
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_MEMORY;
	env.dev_memory = &msg;
	cr_assert_eq(request(&env, &g.memfd, 1), 0);
}

static void expect_info(void)
{
	Cloister__Envelope *env = NULL;

	cr_assert_eq(frame_recv_timeout(core, 2000, &env, NULL, 0, NULL), 0);
	cr_assert_eq(env->msg_case, CLOISTER__ENVELOPE__MSG_DEV_INFO);
	cr_assert_eq(env->dev_info->virtio_device_id, VIRTIO_ID_RNG);
	cr_assert_str_eq(env->dev_info->id, "rng0");
	cr_assert_eq(env->dev_info->num_queues, 1);
	cr_assert(env->dev_info->device_features & (1ull << VIRTIO_F_VERSION_1));
	frame_free(env);
}

static void setup(void)
{
	int sv[2];

	guest_open(&g);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	core = sv[0];
	device_init(&dev, &rng_ops, "rng0", sv[1], -1);
	cr_assert_eq(pthread_create(&thread, NULL, device_thread, NULL), 0);
	cr_assert_eq(frame_hello_send(core, CLOISTER__ROLE__ROLE_VMM), 0);
	cr_assert_eq(frame_hello_expect(core, CLOISTER__ROLE__ROLE_DEVICE, 2000), 0);
	expect_info();
	send_memory();
}

static void teardown(void)
{
	close(core);
	pthread_join(thread, NULL);
	cr_assert_eq(serve_result, 0, "device must exit cleanly on EOF");
	device_cleanup(&dev);
}

TestSuite(rng, .init = setup, .fini = teardown, .timeout = 20);

static Cloister__VirtqueueState queue_state(void)
{
	Cloister__VirtqueueState q = CLOISTER__VIRTQUEUE_STATE__INIT;

	q.index = 0;
	q.size = QSIZE;
	q.ready = true;
	q.desc_addr = GM_DESC;
	q.avail_addr = GM_AVAIL;
	q.used_addr = GM_USED;
	return q;
}

static int activate(uint64_t features)
{
	Cloister__VirtqueueState q = queue_state();
	Cloister__VirtqueueState *qs[] = { &q };
	Cloister__DevActivate act = CLOISTER__DEV_ACTIVATE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	int fds[2];

	kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fds[0] = kick;
	fds[1] = call;
	act.driver_features = features;
	act.n_queues = 1;
	act.queues = qs;
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE;
	env.dev_activate = &act;
	return request(&env, fds, 2);
}

static void wait_call(void)
{
	struct pollfd p = { .fd = call, .events = POLLIN };
	uint64_t v;

	cr_assert_eq(poll(&p, 1, 2000), 1, "device did not signal the call eventfd");
	cr_assert_eq(read(call, &v, sizeof(v)), sizeof(v));
}

static void kick_queue(void)
{
	uint64_t one = 1;

	cr_assert_eq(write(kick, &one, sizeof(one)), sizeof(one));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int empty_request(Cloister__Envelope__MsgCase which)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	ProtobufCMessage body;

	cr_assert_eq(frame_envelope_empty(&env, which, &body), 0);
	return request(&env, NULL, 0);
}

Test(rng, fills_writable_buffers)
{
	uint32_t id, len;

	cr_assert_eq(activate(1ull << VIRTIO_F_VERSION_1), 0);
	guest_desc(&g, GM_DESC, 0, GM_BUFS, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	guest_desc(&g, GM_DESC, 1, GM_BUFS + 0x100, 48, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 0);
	kick_queue();
	wait_call();
	cr_assert_eq(guest_used_idx(&g), 1);
	guest_used_elem(&g, 0, &id, &len);
	cr_assert_eq(id, 0);
	cr_assert_eq(len, 64);
	cr_assert_not(all_zero(guest_ptr(&g, GM_BUFS), 16));
	cr_assert_not(all_zero(guest_ptr(&g, GM_BUFS + 0x100), 48));
	/* Bytes between the two buffers are not the device's to touch. */
	cr_assert(all_zero(guest_ptr(&g, GM_BUFS + 16), 0x100 - 16));
}

static uint64_t bytes_counter(void)
{
	Cloister__DevCounters req = CLOISTER__DEV_COUNTERS__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply = NULL;
	const Cloister__DevCountersReply *cr_;
	uint64_t value;

	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_COUNTERS;
	env.dev_counters = &req;
	env.request_id = 77;
	cr_assert_eq(frame_send(core, &env, NULL, 0), 0);
	cr_assert_eq(frame_recv_timeout(core, 2000, &reply, NULL, 0, NULL), 0);
	cr_assert_eq(reply->msg_case, CLOISTER__ENVELOPE__MSG_DEV_COUNTERS_REPLY);
	cr_assert_eq(reply->request_id, 77);
	cr_ = reply->dev_counters_reply;
	cr_assert_eq(cr_->n_counters, 1);
	cr_assert_str_eq(cr_->counters[0]->name, "bytes");
	value = cr_->counters[0]->value;
	frame_free(reply);
	return value;
}

Test(rng, counts_the_bytes_it_hands_out)
{
	cr_assert_eq(bytes_counter(), 0, "counters answer before activation");
	cr_assert_eq(activate(1ull << VIRTIO_F_VERSION_1), 0);
	guest_desc(&g, GM_DESC, 0, GM_BUFS, 40, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 0);
	kick_queue();
	wait_call();
	cr_assert_eq(bytes_counter(), 40);
}

Test(rng, readable_buffers_are_left_alone)
{
	uint32_t id, len;

	cr_assert_eq(activate(1ull << VIRTIO_F_VERSION_1), 0);
	guest_desc(&g, GM_DESC, 2, GM_BUFS, 32, 0, 0);
	guest_avail(&g, QSIZE, 2);
	kick_queue();
	wait_call();
	guest_used_elem(&g, 0, &id, &len);
	cr_assert_eq(id, 2);
	cr_assert_eq(len, 0);
	cr_assert(all_zero(guest_ptr(&g, GM_BUFS), 32));
}

Test(rng, buffers_posted_before_activation_are_served)
{
	guest_desc(&g, GM_DESC, 0, GM_BUFS, 8, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 0);
	cr_assert_eq(activate(1ull << VIRTIO_F_VERSION_1), 0);
	wait_call();
	cr_assert_eq(guest_used_idx(&g), 1);
}

Test(rng, refuses_unoffered_features)
{
	cr_assert_eq(activate((1ull << VIRTIO_F_VERSION_1) | (1ull << 5)), -EINVAL);
	close(kick);
	close(call);
	cr_assert_eq(activate(0), -EINVAL, "VERSION_1 is required");
}

Test(rng, refuses_queue_outside_memory)
{
	Cloister__VirtqueueState q = queue_state();
	Cloister__VirtqueueState *qs[] = { &q };
	Cloister__DevActivate act = CLOISTER__DEV_ACTIVATE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	int fds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };

	q.used_addr = GM_BASE + GM_SIZE;
	act.driver_features = 1ull << VIRTIO_F_VERSION_1;
	act.n_queues = 1;
	act.queues = qs;
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE;
	env.dev_activate = &act;
	cr_assert_lt(request(&env, fds, 2), 0);
	/* Missing fds are refused too. */
	q.used_addr = GM_USED;
	cr_assert_eq(request(&env, fds, 1), -EINVAL);
	cr_assert_eq(activate(1ull << VIRTIO_F_VERSION_1), 0, "device goes on after refusals");
}

Test(rng, bad_chain_stops_the_device_until_reset)
{
	Cloister__DevSave save = CLOISTER__DEV_SAVE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply = NULL;

	cr_assert_eq(activate(1ull << VIRTIO_F_VERSION_1), 0);
	guest_desc(&g, GM_DESC, 0, GM_BUFS, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 0);
	kick_queue();
	cr_assert_eq(empty_request(CLOISTER__ENVELOPE__MSG_DEV_PAUSE), 0);
	cr_assert_eq(guest_used_idx(&g), 0);
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_SAVE;
	env.dev_save = &save;
	cr_assert_eq(frame_send(core, &env, NULL, 0), 0);
	cr_assert_eq(frame_recv_timeout(core, 2000, &reply, NULL, 0, NULL), 0);
	cr_assert_eq(reply->msg_case, CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY);
	cr_assert_eq(reply->dev_save_reply->error, 0);
	cr_assert(reply->dev_save_reply->state->status & 0x40, "save must carry NEEDS_RESET");
	frame_free(reply);
	cr_assert_eq(empty_request(CLOISTER__ENVELOPE__MSG_DEV_RESET), 0);
	close(kick);
	close(call);
	cr_assert_eq(empty_request(CLOISTER__ENVELOPE__MSG_DEV_RESUME), 0);
	cr_assert_eq(activate(1ull << VIRTIO_F_VERSION_1), 0, "reset makes the device usable again");
}

static Cloister__Envelope *save(void)
{
	Cloister__DevSave req = CLOISTER__DEV_SAVE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply = NULL;

	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_SAVE;
	env.dev_save = &req;
	cr_assert_eq(frame_send(core, &env, NULL, 0), 0);
	cr_assert_eq(frame_recv_timeout(core, 2000, &reply, NULL, 0, NULL), 0);
	cr_assert_eq(reply->msg_case, CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY);
	return reply;
}

Test(rng, save_needs_pause_and_counts_requests)
{
	Cloister__Envelope *reply;
	const Cloister__DeviceState *s;

	cr_assert_eq(activate(1ull << VIRTIO_F_VERSION_1), 0);
	for (uint16_t i = 0; i < 3; i++) {
		guest_desc(&g, GM_DESC, i, GM_BUFS + 0x100u * i, 10, VIRTQ_DESC_F_WRITE, 0);
		guest_avail(&g, QSIZE, i);
	}
	kick_queue();
	wait_call();
	reply = save();
	cr_assert_eq(reply->dev_save_reply->error, -EBUSY);
	frame_free(reply);
	cr_assert_eq(empty_request(CLOISTER__ENVELOPE__MSG_DEV_PAUSE), 0);
	reply = save();
	s = reply->dev_save_reply->state;
	cr_assert_eq(reply->dev_save_reply->error, 0);
	cr_assert_eq(s->requests_served, 3);
	cr_assert_eq(s->bytes_served, 30);
	cr_assert_eq(s->n_queues, 1);
	cr_assert_eq(s->queues[0]->last_avail_idx, 3);
	cr_assert_eq(s->queues[0]->used_idx, 3);
	frame_free(reply);
}

Test(rng, restore_continues_from_saved_indices)
{
	Cloister__VirtqueueState q = queue_state();
	Cloister__VirtqueueState *qs[] = { &q };
	Cloister__DeviceState s = CLOISTER__DEVICE_STATE__INIT;
	Cloister__DevRestore msg = CLOISTER__DEV_RESTORE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	uint32_t id, len;
	int fds[2];

	/* As if the guest had already had 5 requests served before the snapshot. */
	q.last_avail_idx = q.used_idx = 5;
	g.avail_idx = 5;
	((uint16_t *)guest_ptr(&g, GM_AVAIL))[1] = htole16(5);
	((uint16_t *)guest_ptr(&g, GM_USED))[1] = htole16(5);
	s.kind = "rng";
	s.id = "rng0";
	s.driver_features = 1ull << VIRTIO_F_VERSION_1;
	s.status = 0xf;
	s.n_queues = 1;
	s.queues = qs;
	s.requests_served = 5;
	s.bytes_served = 50;
	kick = fds[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	call = fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	msg.state = &s;
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_RESTORE;
	env.dev_restore = &msg;
	cr_assert_eq(request(&env, fds, 2), 0);
	cr_assert_eq(empty_request(CLOISTER__ENVELOPE__MSG_DEV_RESUME), 0);
	guest_desc(&g, GM_DESC, 7, GM_BUFS, 4, VIRTQ_DESC_F_WRITE, 0);
	guest_avail(&g, QSIZE, 7);
	kick_queue();
	wait_call();
	cr_assert_eq(guest_used_idx(&g), 6);
	guest_used_elem(&g, 5, &id, &len);
	cr_assert_eq(id, 7);
	cr_assert_eq(len, 4);
	s.id = "rng1";
	cr_assert_eq(request(&env, NULL, 0), -EBUSY, "no restore while the device runs");
	cr_assert_eq(empty_request(CLOISTER__ENVELOPE__MSG_DEV_PAUSE), 0);
	cr_assert_eq(request(&env, NULL, 0), -EINVAL, "state of another device is refused");
}

Test(rng, unexpected_messages_are_refused)
{
	Cloister__CorePause pause = CLOISTER__CORE_PAUSE__INIT;
	Cloister__DevMemory mem = CLOISTER__DEV_MEMORY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	env.msg_case = CLOISTER__ENVELOPE__MSG_CORE_PAUSE;
	env.core_pause = &pause;
	cr_assert_eq(request(&env, NULL, 0), -EPERM);
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_MEMORY;
	env.dev_memory = &mem;
	cr_assert_eq(request(&env, NULL, 0), -EBUSY, "memory table is fixed after the handshake");
	cr_assert_eq(activate(1ull << VIRTIO_F_VERSION_1), 0);
}
