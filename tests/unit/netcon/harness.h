/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A two-queue fake guest and the core's side of the device protocol: the
 * device under test runs device_serve() on a thread, the test drives it
 * over a socketpair and eventfds as vmm-core would.
 */
#ifndef TEST_NETCON_HARNESS_H
#define TEST_NETCON_HARNESS_H

#include <criterion/criterion.h>
#include <endian.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "device.h"
#include "frame.h"

#define GM_BASE 0x80000000ull
#define GM_SIZE (1ull << 20)
#define GM_BUFS (GM_BASE + 0x20000)
#define QSIZE 16u
#define NQ 2u

/* Queue q's rings: descriptors, then avail, then used, 16 KiB per queue. */
#define Q_DESC(q) (GM_BASE + 0x4000ull * (q))
#define Q_AVAIL(q) (Q_DESC(q) + 0x1000)
#define Q_USED(q) (Q_DESC(q) + 0x2000)

struct harness {
	int memfd;
	uint8_t *host;
	uint16_t avail_idx[NQ];
	struct device dev;
	pthread_t thread;
	int core;
	int serve_result;
	int kick[NQ], call[NQ];
	Cloister__DevInfo *info;
	Cloister__Envelope *info_env;
};

static struct harness h;

static inline uint8_t *gp(uint64_t gpa)
{
	return h.host + (gpa - GM_BASE);
}

static inline void g_desc(uint32_t q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
			  uint16_t next)
{
	uint8_t *d = gp(Q_DESC(q)) + 16u * i;
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	memcpy(d + 12, &f, 2);
	memcpy(d + 14, &n, 2);
}

static inline void g_avail(uint32_t q, uint16_t head)
{
	uint16_t *ring = (uint16_t *)gp(Q_AVAIL(q));

	ring[2 + h.avail_idx[q] % QSIZE] = htole16(head);
	h.avail_idx[q]++;
	__atomic_store_n(&ring[1], htole16(h.avail_idx[q]), __ATOMIC_RELEASE);
}

static inline uint16_t g_used_idx(uint32_t q)
{
	return le16toh(__atomic_load_n((uint16_t *)(gp(Q_USED(q)) + 2), __ATOMIC_ACQUIRE));
}

static inline uint32_t g_used_len(uint32_t q, uint32_t i)
{
	uint32_t len;

	memcpy(&len, gp(Q_USED(q)) + 4 + 8 * (i % QSIZE) + 4, 4);
	return le32toh(len);
}

static void *h_thread(void *arg)
{
	(void)arg;
	h.serve_result = device_handshake(&h.dev);
	if (h.serve_result >= 0)
		h.serve_result = device_serve(&h.dev);
	return NULL;
}

/* Sends env with a fresh request id; returns the answer, which must echo that id. */
static inline Cloister__Envelope *h_exchange(Cloister__Envelope *env, const int *fds, size_t n_fds,
					     Cloister__Envelope__MsgCase answer)
{
	static uint64_t next_id = 1000;
	Cloister__Envelope *reply = NULL;

	env->request_id = ++next_id;
	cr_assert_eq(frame_send(h.core, env, fds, n_fds), 0);
	cr_assert_eq(frame_recv_timeout(h.core, 2000, &reply, NULL, 0, NULL), 0);
	if (answer != CLOISTER__ENVELOPE__MSG__NOT_SET)
		cr_assert_eq(reply->msg_case, answer, "answered %s", frame_msg_name(reply));
	cr_assert_eq(reply->request_id, env->request_id, "the answer echoes the request id");
	return reply;
}

static inline int h_request(Cloister__Envelope *env, const int *fds, size_t n_fds)
{
	Cloister__Envelope *reply = h_exchange(env, fds, n_fds, CLOISTER__ENVELOPE__MSG_REPLY);
	int r = reply->reply->error;

	if (r < 0)
		cr_assert(reply->reply->message && reply->reply->message[0],
			  "a refusal says why");
	frame_free(reply);
	return r;
}

static inline void h_send_memory(void)
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
	cr_assert_eq(h_request(&env, &h.memfd, 1), 0);
}

/* Starts ops on a thread with host_fd (fd 4) and input_fd (fd 5, or -1), up to DevInfo. */
static inline void h_start_configuring(const struct device_ops *ops, const char *id, int host_fd,
				       int input_fd, const char *const *options)
{
	int sv[2];

	signal(SIGPIPE, SIG_IGN);
	memset(&h, 0, sizeof(h));
	h.memfd = memfd_create("guest", MFD_CLOEXEC);
	cr_assert(h.memfd >= 0);
	cr_assert_eq(ftruncate(h.memfd, GM_SIZE), 0);
	h.host = mmap(NULL, GM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd, 0);
	cr_assert(h.host != MAP_FAILED);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	h.core = sv[0];
	device_init(&h.dev, ops, id, sv[1], host_fd);
	if (input_fd >= 0)
		device_set_input_fd(&h.dev, input_fd);
	cr_assert_eq(device_configure(&h.dev, options), 0);
	cr_assert_eq(pthread_create(&h.thread, NULL, h_thread, NULL), 0);
	cr_assert_eq(frame_hello_send(h.core, CLOISTER__ROLE__ROLE_VMM), 0);
	cr_assert_eq(frame_hello_expect(h.core, CLOISTER__ROLE__ROLE_DEVICE, 2000), 0);
	cr_assert_eq(frame_recv_timeout(h.core, 2000, &h.info_env, NULL, 0, NULL), 0);
	cr_assert_eq(h.info_env->msg_case, CLOISTER__ENVELOPE__MSG_DEV_INFO);
	h.info = h.info_env->dev_info;
}

/* As h_start_configuring(), then DevMemory. */
static inline void h_start(const struct device_ops *ops, const char *id, int host_fd, int input_fd,
			   const char *const *options)
{
	h_start_configuring(ops, id, host_fd, input_fd, options);
	h_send_memory();
}

static inline void h_stop(void)
{
	close(h.core);
	pthread_join(h.thread, NULL);
	cr_assert_eq(h.serve_result, 0, "device must exit cleanly on EOF");
	device_cleanup(&h.dev);
	frame_free(h.info_env);
	munmap(h.host, GM_SIZE);
	close(h.memfd);
}

static inline void h_queue_states(Cloister__VirtqueueState *q, Cloister__VirtqueueState **qs)
{
	for (uint32_t i = 0; i < NQ; i++) {
		cloister__virtqueue_state__init(&q[i]);
		q[i].index = i;
		q[i].size = QSIZE;
		q[i].ready = true;
		q[i].desc_addr = Q_DESC(i);
		q[i].avail_addr = Q_AVAIL(i);
		q[i].used_addr = Q_USED(i);
		qs[i] = &q[i];
	}
}

/* Fresh kick/call eventfds for both queues, in the order a DevActivate carries them. */
static inline void h_new_eventfds(int *fds)
{
	for (uint32_t i = 0; i < NQ; i++) {
		fds[2 * i] = h.kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		fds[2 * i + 1] = h.call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
}

static inline int h_activate(uint64_t features)
{
	Cloister__VirtqueueState q[NQ], *qs[NQ];
	Cloister__DevActivate act = CLOISTER__DEV_ACTIVATE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	int fds[2 * NQ];

	h_queue_states(q, qs);
	h_new_eventfds(fds);
	act.driver_features = features;
	act.n_queues = NQ;
	act.queues = qs;
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE;
	env.dev_activate = &act;
	return h_request(&env, fds, 2 * NQ);
}

static inline void h_kick(uint32_t q)
{
	uint64_t one = 1;

	cr_assert_eq(write(h.kick[q], &one, sizeof(one)), sizeof(one));
}

static inline bool h_called(uint32_t q, int timeout_ms)
{
	struct pollfd p = { .fd = h.call[q], .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	return read(h.call[q], &v, sizeof(v)) == sizeof(v);
}

static inline int h_simple(Cloister__Envelope__MsgCase which)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	ProtobufCMessage body;

	cr_assert_eq(frame_envelope_empty(&env, which, &body), 0);
	return h_request(&env, NULL, 0);
}

#define h_pause() h_simple(CLOISTER__ENVELOPE__MSG_DEV_PAUSE)
#define h_resume() h_simple(CLOISTER__ENVELOPE__MSG_DEV_RESUME)

/* DevSave; the caller frees the reply with frame_free(). */
static inline Cloister__Envelope *h_save(void)
{
	Cloister__DevSave req = CLOISTER__DEV_SAVE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply = NULL;

	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_SAVE;
	env.dev_save = &req;
	reply = h_exchange(&env, NULL, 0, CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY);
	return reply;
}

/* DevCounters; the value of the counter called name (which must be there). */
static inline uint64_t h_counter(const char *name)
{
	Cloister__DevCounters req = CLOISTER__DEV_COUNTERS__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply;
	uint64_t value = 0;
	bool found = false;

	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_COUNTERS;
	env.dev_counters = &req;
	reply = h_exchange(&env, NULL, 0, CLOISTER__ENVELOPE__MSG_DEV_COUNTERS_REPLY);
	cr_assert_eq(reply->dev_counters_reply->error, 0);
	for (size_t i = 0; i < reply->dev_counters_reply->n_counters; i++) {
		if (strcmp(reply->dev_counters_reply->counters[i]->name, name) == 0) {
			value = reply->dev_counters_reply->counters[i]->value;
			found = true;
		}
	}
	frame_free(reply);
	cr_assert(found, "no counter %s", name);
	return value;
}

/*
 * DevRestore of a DRIVER_OK device with blob, queue q's ring indices both
 * at idx[q] (idx NULL: every queue at its start).
 */
static inline int h_restore_at(const char *kind, const char *id, uint8_t *blob, size_t blob_len,
			       const uint16_t *idx)
{
	Cloister__VirtqueueState q[NQ], *qs[NQ];
	Cloister__DeviceState s = CLOISTER__DEVICE_STATE__INIT;
	Cloister__DevRestore msg = CLOISTER__DEV_RESTORE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	int fds[2 * NQ];

	h_queue_states(q, qs);
	for (uint32_t i = 0; idx && i < NQ; i++)
		q[i].last_avail_idx = q[i].used_idx = idx[i];
	h_new_eventfds(fds);
	s.kind = (char *)kind;
	s.id = (char *)id;
	s.driver_features = 1ull << VIRTIO_F_VERSION_1;
	s.status = 0xf;
	s.n_queues = NQ;
	s.queues = qs;
	s.blob = (ProtobufCBinaryData){ .len = blob_len, .data = blob };
	msg.state = &s;
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_RESTORE;
	env.dev_restore = &msg;
	return h_request(&env, fds, 2 * NQ);
}

static inline int h_restore(const char *kind, const char *id, uint8_t *blob, size_t blob_len)
{
	return h_restore_at(kind, id, blob, blob_len, NULL);
}

/* Polls cond every millisecond for up to two seconds. */
#define h_wait_for(cond)                                                              \
	({                                                                            \
		bool ok_ = false;                                                     \
		for (int i_ = 0; i_ < 2000 && !(ok_ = (cond)); i_++)                  \
			usleep(1000);                                                 \
		ok_;                                                                  \
	})

#endif
