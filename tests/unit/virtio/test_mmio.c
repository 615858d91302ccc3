/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-mmio transport against a fake device process: a thread on the
 * other end of a socketpair that speaks the device protocol and records what
 * it was sent.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "component.h"
#include "frame.h"
#include "mmio.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (1ull << 20)
#define F_VERSION_1 (1ull << 32)
#define F_DEVICE_BIT (1ull << 3)

enum fake_behaviour {
	FAKE_ANSWER,
	FAKE_HANG_UP_ON_PAUSE,
	FAKE_SILENT_ON_PAUSE,	/* the first pause is never answered */
	FAKE_LATE_ON_PAUSE,	/* the first pause is answered after the transport gave up */
};

/* Longer than VIRTIO_MMIO_TIMEOUT_MS: the answer comes after the transport gave up. */
#define FAKE_LATE_MS (VIRTIO_MMIO_TIMEOUT_MS + 500)

struct fake_dev {
	int sock;
	pthread_t thread;
	enum fake_behaviour behaviour;
	/* Replies carry request id 0, as from a device that does not echo ids. */
	bool legacy_ids;
	unsigned pauses;
	pthread_mutex_t lock;
	unsigned count[128];
	uint64_t driver_features;
	size_t activate_queues, n_fds;
	int fds[CL_FRAME_MAX_FDS];
	Cloister__DeviceState *restored;
};

static int memfd = -1;
static struct virtio_mem_region ram;
static int irq_level = -1;
static unsigned irq_calls;

static void set_irq(void *opaque, uint32_t irq, bool level)
{
	__atomic_store_n(&irq_level, level, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&irq_calls, 1, __ATOMIC_SEQ_CST);
}

static void fake_keep_fds(struct fake_dev *f, const int *fds, size_t n)
{
	for (size_t i = 0; i < f->n_fds; i++)
		close(f->fds[i]);
	if (n)
		memcpy(f->fds, fds, n * sizeof(int));
	f->n_fds = n;
}

static void fake_send_info(struct fake_dev *f)
{
	static const uint8_t config[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	Cloister__DevInfo info = CLOISTER__DEV_INFO__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	info.kind = "fake";
	info.id = "dev0";
	info.virtio_device_id = 4;
	info.device_features = F_DEVICE_BIT | (1ull << 34); /* packed rings: must be masked */
	info.num_queues = 2;
	info.max_queue_size = 256;
	info.config_space = (ProtobufCBinaryData){ .len = sizeof(config), .data = (uint8_t *)config };
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_INFO;
	env.dev_info = &info;
	frame_send(f->sock, &env, NULL, 0);
}

static void fake_save_reply(struct fake_dev *f, const Cloister__Envelope *req)
{
	Cloister__VirtqueueState q = CLOISTER__VIRTQUEUE_STATE__INIT;
	Cloister__VirtqueueState *qs[] = { &q };
	Cloister__DeviceState s = CLOISTER__DEVICE_STATE__INIT;
	Cloister__DevSaveReply reply = CLOISTER__DEV_SAVE_REPLY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	q.index = 0;
	q.last_avail_idx = 5;
	q.used_idx = 4;
	s.n_queues = 1;
	s.queues = qs;
	s.requests_served = 7;
	s.bytes_served = 99;
	s.blob = (ProtobufCBinaryData){ .len = 2, .data = (uint8_t *)"xy" };
	reply.state = &s;
	env.msg_case = CLOISTER__ENVELOPE__MSG_DEV_SAVE_REPLY;
	env.dev_save_reply = &reply;
	env.request_id = f->legacy_ids ? 0 : req->request_id;
	frame_send(f->sock, &env, NULL, 0);
}

static void fake_record(struct fake_dev *f, const Cloister__Envelope *env, const int *fds, size_t n)
{
	pthread_mutex_lock(&f->lock);
	f->count[env->msg_case % 128]++;
	if (env->msg_case == CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE) {
		f->driver_features = env->dev_activate->driver_features;
		f->activate_queues = env->dev_activate->n_queues;
		fake_keep_fds(f, fds, n);
	} else if (env->msg_case == CLOISTER__ENVELOPE__MSG_DEV_RESTORE) {
		uint8_t buf[4096];
		size_t len = cloister__device_state__pack(env->dev_restore->state, buf);

		f->restored = cloister__device_state__unpack(NULL, len, buf);
		fake_keep_fds(f, fds, n);
	} else {
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
	}
	pthread_mutex_unlock(&f->lock);
}

static void *fake_thread(void *arg)
{
	struct fake_dev *f = arg;

	frame_hello_send(f->sock, CLOISTER__ROLE__ROLE_DEVICE);
	if (frame_hello_expect(f->sock, CLOISTER__ROLE__ROLE_VMM, 2000) < 0)
		return NULL;
	fake_send_info(f);
	for (;;) {
		Cloister__Envelope *env = NULL;
		int fds[CL_FRAME_MAX_FDS];
		size_t n = 0;
		bool pause;

		if (frame_recv(f->sock, &env, fds, CL_FRAME_MAX_FDS, &n) < 0)
			return NULL;
		fake_record(f, env, fds, n);
		pause = env->msg_case == CLOISTER__ENVELOPE__MSG_DEV_PAUSE && f->pauses++ == 0;
		if (env->msg_case == CLOISTER__ENVELOPE__MSG_DEV_PAUSE &&
		    f->behaviour == FAKE_HANG_UP_ON_PAUSE) {
			frame_free(env);
			close(f->sock);
			return NULL;
		}
		if (pause && f->behaviour == FAKE_LATE_ON_PAUSE)
			usleep(FAKE_LATE_MS * 1000);
		if (!(pause && f->behaviour == FAKE_SILENT_ON_PAUSE)) {
			if (env->msg_case == CLOISTER__ENVELOPE__MSG_DEV_SAVE)
				fake_save_reply(f, env);
			else
				frame_reply_to(f->sock, f->legacy_ids ? NULL : env, 0, NULL);
		}
		frame_free(env);
	}
}

static struct virtio_mmio_dev *attach_ids(struct fake_dev *f, enum fake_behaviour behaviour,
					  bool legacy_ids)
{
	struct virtio_mmio_dev *d = NULL;
	int sv[2];
	struct virtio_mmio_params p = {
		.id = "dev0", .mem = &ram, .n_mem = 1, .irq = 5, .set_irq = set_irq,
	};

	*f = (struct fake_dev){ .behaviour = behaviour, .legacy_ids = legacy_ids };
	pthread_mutex_init(&f->lock, NULL);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->sock = sv[1];
	p.sock = sv[0];
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_thread, f), 0);
	cr_assert_eq(virtio_mmio_attach(&p, &d), 0);
	return d;
}

static struct virtio_mmio_dev *attach(struct fake_dev *f, enum fake_behaviour behaviour)
{
	return attach_ids(f, behaviour, false);
}

static void setup(void)
{
	memfd = memfd_create("ram", MFD_CLOEXEC);
	cr_assert(memfd >= 0);
	cr_assert_eq(ftruncate(memfd, RAM_SIZE), 0);
	ram = (struct virtio_mem_region){ .gpa = RAM_BASE, .size = RAM_SIZE, .fd = memfd };
	irq_level = -1;
	irq_calls = 0;
}

TestSuite(mmio, .init = setup, .timeout = 20);

static uint32_t rd(struct virtio_mmio_dev *d, uint64_t off)
{
	uint64_t v = 0xdead;

	cr_assert_eq(virtio_mmio_read(d, off, 4, &v), 0);
	return (uint32_t)v;
}

static void wr(struct virtio_mmio_dev *d, uint64_t off, uint32_t v)
{
	cr_assert_eq(virtio_mmio_write(d, off, 4, v), 0);
}

static uint64_t device_features(struct virtio_mmio_dev *d)
{
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t lo = rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return lo | (uint64_t)rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static void driver_features(struct virtio_mmio_dev *d, uint64_t f)
{
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
}

static void negotiate(struct virtio_mmio_dev *d, uint64_t f)
{
	wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	driver_features(d, f);
	wr(d, VIRTIO_MMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

static void queue_setup(struct virtio_mmio_dev *d, uint32_t q, uint32_t num, uint64_t desc,
			uint64_t driver, uint64_t device)
{
	wr(d, VIRTIO_MMIO_QUEUE_SEL, q);
	wr(d, VIRTIO_MMIO_QUEUE_NUM, num);
	wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)driver);
	wr(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(driver >> 32));
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)device);
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(device >> 32));
	wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
}

#define STATUS_UP (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK)

/* The whole driver bring-up with both queues. */
static void bring_up(struct virtio_mmio_dev *d)
{
	negotiate(d, F_VERSION_1 | F_DEVICE_BIT);
	queue_setup(d, 0, 128, RAM_BASE, RAM_BASE + 0x1000, RAM_BASE + 0x2000);
	queue_setup(d, 1, 64, RAM_BASE + 0x4000, RAM_BASE + 0x5000, RAM_BASE + 0x6000);
	wr(d, VIRTIO_MMIO_STATUS, STATUS_UP | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), STATUS_UP | VIRTIO_STATUS_DRIVER_OK);
}

static unsigned fake_count(struct fake_dev *f, Cloister__Envelope__MsgCase c)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->count[c];
	pthread_mutex_unlock(&f->lock);
	return n;
}

static void finish(struct virtio_mmio_dev *d, struct fake_dev *f)
{
	virtio_mmio_destroy(d);
	pthread_join(f->thread, NULL);
	fake_keep_fds(f, NULL, 0);
	if (f->restored)
		cloister__device_state__free_unpacked(f->restored, NULL);
	close(f->sock);
}

Test(mmio, identity_registers)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);

	cr_assert_eq(rd(d, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	cr_assert_eq(rd(d, VIRTIO_MMIO_VERSION_REG), 2);
	cr_assert_eq(rd(d, VIRTIO_MMIO_DEVICE_ID), 4);
	cr_assert_eq(rd(d, VIRTIO_MMIO_VENDOR_ID_REG), VIRTIO_MMIO_VENDOR_ID);
	cr_assert_str_eq(virtio_mmio_id(d), "dev0");
	cr_assert_eq(fake_count(&f, CLOISTER__ENVELOPE__MSG_DEV_MEMORY), 1);
	finish(d, &f);
}

Test(mmio, empty_slot)
{
	uint64_t v;

	cr_assert_eq(virtio_mmio_empty_read(VIRTIO_MMIO_MAGIC_VALUE, 4, &v), 0);
	cr_assert_eq(v, 0x74726976);
	cr_assert_eq(virtio_mmio_empty_read(VIRTIO_MMIO_VERSION_REG, 4, &v), 0);
	cr_assert_eq(v, 2);
	cr_assert_eq(virtio_mmio_empty_read(VIRTIO_MMIO_DEVICE_ID, 4, &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(virtio_mmio_empty_read(VIRTIO_MMIO_MAGIC_VALUE, 3, &v), -EINVAL);
}

Test(mmio, narrow_register_access_and_config_space)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);
	uint64_t v = 1;

	cr_assert_eq(virtio_mmio_read(d, VIRTIO_MMIO_MAGIC_VALUE, 2, &v), 0);
	cr_assert_eq(v, 0, "registers answer only 32-bit reads");
	cr_assert_eq(virtio_mmio_read(d, VIRTIO_MMIO_CONFIG + 2, 2, &v), 0);
	cr_assert_eq(v, 0x0403);
	cr_assert_eq(virtio_mmio_read(d, VIRTIO_MMIO_CONFIG, 8, &v), 0);
	cr_assert_eq(v, 0x0807060504030201ull);
	cr_assert_eq(virtio_mmio_read(d, VIRTIO_MMIO_CONFIG + 6, 4, &v), 0);
	cr_assert_eq(v, 0, "a read past the config space end reads 0");
	cr_assert_eq(virtio_mmio_read(d, 0x1000, 4, &v), -EINVAL);
	finish(d, &f);
}

Test(mmio, feature_negotiation)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);

	cr_assert_eq(device_features(d), F_VERSION_1 | F_DEVICE_BIT, "packed rings masked out");
	negotiate(d, F_DEVICE_BIT);
	cr_assert_not(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, "VERSION_1 required");
	wr(d, VIRTIO_MMIO_STATUS, 0);
	negotiate(d, F_VERSION_1 | (1ull << 7));
	cr_assert_not(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, "unoffered bit");
	wr(d, VIRTIO_MMIO_STATUS, 0);
	negotiate(d, F_VERSION_1 | F_DEVICE_BIT);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), STATUS_UP);
	/* Features are frozen once accepted. */
	driver_features(d, F_VERSION_1 | (1ull << 7));
	wr(d, VIRTIO_MMIO_STATUS, STATUS_UP | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(f.driver_features, F_VERSION_1 | F_DEVICE_BIT);
	finish(d, &f);
}

Test(mmio, queue_setup_validation)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);

	negotiate(d, F_VERSION_1);
	wr(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
	queue_setup(d, 0, 100, RAM_BASE, RAM_BASE + 0x1000, RAM_BASE + 0x2000);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0, "size not a power of two");
	queue_setup(d, 0, 512, RAM_BASE, RAM_BASE + 0x1000, RAM_BASE + 0x2000);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0, "size above max");
	queue_setup(d, 0, 128, RAM_BASE + 8, RAM_BASE + 0x1000, RAM_BASE + 0x2000);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0, "misaligned descriptor table");
	queue_setup(d, 0, 128, RAM_BASE, RAM_BASE + 0x1000, RAM_BASE + RAM_SIZE - 16);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0, "used ring leaves RAM");
	queue_setup(d, 0, 128, 0x1000, RAM_BASE + 0x1000, RAM_BASE + 0x2000);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0, "descriptor table outside RAM");
	queue_setup(d, 0, 128, RAM_BASE, RAM_BASE + 0x1000, RAM_BASE + 0x2000);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 1);
	wr(d, VIRTIO_MMIO_QUEUE_SEL, 2);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "no queue 2");
	finish(d, &f);
}

Test(mmio, driver_ok_activates_with_two_fds_per_queue)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);

	bring_up(d);
	cr_assert_eq(fake_count(&f, CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE), 1);
	cr_assert_eq(f.activate_queues, 2);
	cr_assert_eq(f.n_fds, 4);
	cr_assert_eq(f.driver_features, F_VERSION_1 | F_DEVICE_BIT);
	finish(d, &f);
}

Test(mmio, driver_ok_needs_features_ok)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);

	wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(d, VIRTIO_MMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_not(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(fake_count(&f, CLOISTER__ENVELOPE__MSG_DEV_ACTIVATE), 0);
	finish(d, &f);
}

Test(mmio, notify_signals_kick_eventfd)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);
	uint64_t v = 0;

	bring_up(d);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	cr_assert_eq(read(f.fds[2], &v, sizeof(v)), sizeof(v), "queue 1's kick fd");
	cr_assert_eq(v, 1);
	cr_assert_eq(read(f.fds[0], &v, sizeof(v)), -1, "queue 0 was not kicked");
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 9);
	finish(d, &f);
}

static bool wait_for(uint32_t (*cond)(struct virtio_mmio_dev *), struct virtio_mmio_dev *d)
{
	for (int i = 0; i < 200; i++) {
		if (cond(d))
			return true;
		usleep(10000);
	}
	return false;
}

static uint32_t vring_irq(struct virtio_mmio_dev *d)
{
	return rd(d, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING;
}

Test(mmio, call_eventfd_raises_interrupt)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);
	uint64_t one = 1;

	bring_up(d);
	cr_assert_eq(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(write(f.fds[1], &one, sizeof(one)), sizeof(one));
	cr_assert(wait_for(vring_irq, d), "used-buffer notification lost");
	cr_assert_eq(__atomic_load_n(&irq_level, __ATOMIC_SEQ_CST), 1);
	wr(d, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	cr_assert_eq(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(__atomic_load_n(&irq_level, __ATOMIC_SEQ_CST), 0);
	finish(d, &f);
}

Test(mmio, reset)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);
	uint64_t one = 1;

	bring_up(d);
	wr(d, VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(fake_count(&f, CLOISTER__ENVELOPE__MSG_DEV_RESET), 1);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), 0);
	wr(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0);
	/* The old call eventfd no longer reaches the guest. */
	cr_assert_eq(write(f.fds[1], &one, sizeof(one)), sizeof(one));
	usleep(50000);
	cr_assert_eq(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	finish(d, &f);
}

Test(mmio, status_bits_cannot_be_cleared_without_reset)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);

	negotiate(d, F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), STATUS_UP);
	wr(d, VIRTIO_MMIO_STATUS, STATUS_UP | VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), STATUS_UP, "NEEDS_RESET is the device's bit");
	finish(d, &f);
}

Test(mmio, save_restore_round_trip)
{
	struct fake_dev f, f2;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);
	struct virtio_mmio_dev *d2;
	Cloister__DeviceState *s = NULL;

	bring_up(d);
	wr(d, VIRTIO_MMIO_QUEUE_SEL, 1);
	cr_assert_eq(virtio_mmio_pause(d), 0);
	cr_assert_eq(virtio_mmio_save(d, &s), 0);
	cr_assert_str_eq(s->kind, "fake");
	cr_assert_str_eq(s->id, "dev0");
	cr_assert_eq(s->status, STATUS_UP | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(s->driver_features, F_VERSION_1 | F_DEVICE_BIT);
	cr_assert_eq(s->queue_sel, 1);
	cr_assert_eq(s->n_queues, 2);
	cr_assert_eq(s->queues[0]->size, 128);
	cr_assert_eq(s->queues[0]->last_avail_idx, 5);
	cr_assert_eq(s->queues[0]->used_idx, 4);
	cr_assert_eq(s->queues[1]->avail_addr, RAM_BASE + 0x5000);
	cr_assert_eq(s->requests_served, 7);
	cr_assert_eq(s->bytes_served, 99);
	cr_assert_eq(s->blob.len, 2);
	finish(d, &f);

	d2 = attach(&f2, FAKE_ANSWER);
	cr_assert_eq(virtio_mmio_restore(d2, s), 0);
	cr_assert_eq(rd(d2, VIRTIO_MMIO_STATUS), STATUS_UP | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(rd(d2, VIRTIO_MMIO_QUEUE_READY), 1, "queue_sel 1 restored and ready");
	cr_assert_eq(f2.n_fds, 4, "kick and call for both ready queues");
	cr_assert_not_null(f2.restored);
	cr_assert_eq(f2.restored->queues[0]->last_avail_idx, 5);
	cr_assert_eq(f2.restored->requests_served, 7);
	cr_assert_eq(f2.restored->blob.len, 2);
	wr(d2, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	uint64_t v = 0;
	cr_assert_eq(read(f2.fds[0], &v, sizeof(v)), sizeof(v), "restored kick fd works");
	virtio_mmio_state_free(s);
	finish(d2, &f2);
}

Test(mmio, restore_refuses_bad_state)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER);
	Cloister__DeviceState *s = NULL;

	bring_up(d);
	cr_assert_eq(virtio_mmio_save(d, &s), 0);
	s->queues[0]->size = 100;
	cr_assert_eq(virtio_mmio_restore(d, s), -EINVAL, "queue size");
	s->queues[0]->size = 128;
	s->queues[1]->used_addr = RAM_BASE + RAM_SIZE;
	cr_assert_eq(virtio_mmio_restore(d, s), -EINVAL, "ring outside RAM");
	s->queues[1]->used_addr = RAM_BASE + 0x6000;
	s->driver_features |= 1ull << 9;
	cr_assert_eq(virtio_mmio_restore(d, s), -EINVAL, "features not offered");
	s->driver_features &= ~(1ull << 9);
	s->queues[1]->index = 0;
	cr_assert_eq(virtio_mmio_restore(d, s), -EINVAL, "duplicate queue");
	s->queues[1]->index = 1;
	cr_assert_eq(fake_count(&f, CLOISTER__ENVELOPE__MSG_DEV_RESTORE), 0);
	cr_assert_eq(virtio_mmio_restore(d, s), 0);
	virtio_mmio_state_free(s);
	finish(d, &f);
}

/* The transport as a machine component: its part of a VmState, found by id, or refused. */
Test(mmio, component_round_trip_and_refusals)
{
	struct fake_dev f, f2;
	struct virtio_mmio_dev *d = attach(&f, FAKE_ANSWER), *d2;
	Cloister__VmState st = CLOISTER__VM_STATE__INIT, none = CLOISTER__VM_STATE__INIT;
	char err[COMPONENT_ERR_MAX] = "";

	bring_up(d);
	cr_assert_eq(virtio_mmio_component_ops.pause(d, err, sizeof(err)), 0);
	cr_assert_eq(virtio_mmio_component_ops.save(d, &st, err, sizeof(err)), 0);
	cr_assert_eq(st.n_devices, 1);
	cr_assert_str_eq(st.devices[0]->id, "dev0");
	finish(d, &f);

	d2 = attach(&f2, FAKE_ANSWER);
	cr_assert_eq(virtio_mmio_component_ops.restore(d2, &none, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "no state") != NULL, "%s", err);
	st.devices[0]->status |= 0x100;
	cr_assert_eq(virtio_mmio_component_ops.restore(d2, &st, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "refused") != NULL, "%s", err);
	cr_assert_eq(fake_count(&f2, CLOISTER__ENVELOPE__MSG_DEV_RESTORE), 0,
		     "a refused state never reaches the device");
	st.devices[0]->status &= ~0x100u;
	cr_assert_eq(virtio_mmio_component_ops.restore(d2, &st, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rd(d2, VIRTIO_MMIO_STATUS), STATUS_UP | VIRTIO_STATUS_DRIVER_OK);
	virtio_mmio_state_free(st.devices[0]);
	free(st.devices);
	finish(d2, &f2);
}

Test(mmio, device_that_hangs_up_fails_pause)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_HANG_UP_ON_PAUSE);
	Cloister__DeviceState *s = NULL;

	bring_up(d);
	cr_assert_lt(virtio_mmio_pause(d), 0);
	cr_assert(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	cr_assert_lt(virtio_mmio_save(d, &s), 0);
	cr_assert_null(s);
	cr_assert_lt(virtio_mmio_resume(d), 0);
	/* The driver resetting a dead device stays safe too. */
	wr(d, VIRTIO_MMIO_STATUS, 0);
	virtio_mmio_destroy(d);
	pthread_join(f.thread, NULL);
}

/* A pause that times out leaves the device usable and sends the resume that undoes it. */
Test(mmio, silent_device_times_out)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach(&f, FAKE_SILENT_ON_PAUSE);
	struct timespec a, b;

	bring_up(d);
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert_eq(virtio_mmio_pause(d), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	cr_assert_lt(b.tv_sec - a.tv_sec, 4);
	cr_assert_not(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	/* The undoing resume's answer is late too: the next pause is answered by its own. */
	cr_assert_eq(virtio_mmio_pause(d), 0);
	cr_assert_eq(fake_count(&f, CLOISTER__ENVELOPE__MSG_DEV_RESUME), 1);
	cr_assert_eq(fake_count(&f, CLOISTER__ENVELOPE__MSG_DEV_PAUSE), 2);
	finish(d, &f);
}

/*
 * The answer to a pause that timed out comes later: it is dropped, not taken
 * for the answer to the next request (here a save, whose reply has another type).
 */
static void late_reply_dropped(bool legacy_ids)
{
	struct fake_dev f;
	struct virtio_mmio_dev *d = attach_ids(&f, FAKE_LATE_ON_PAUSE, legacy_ids);
	Cloister__DeviceState *s = NULL;

	bring_up(d);
	cr_assert_eq(virtio_mmio_pause(d), -ETIMEDOUT);
	usleep((FAKE_LATE_MS - VIRTIO_MMIO_TIMEOUT_MS + 200) * 1000);
	cr_assert_eq(virtio_mmio_pause(d), 0);
	cr_assert_eq(virtio_mmio_save(d, &s), 0);
	cr_assert_not_null(s);
	cr_assert_eq(s->requests_served, 7);
	cr_assert_not(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	virtio_mmio_state_free(s);
	cr_assert_eq(virtio_mmio_resume(d), 0);
	finish(d, &f);
}

Test(mmio, late_reply_with_request_id_dropped)
{
	late_reply_dropped(false);
}

Test(mmio, late_reply_without_request_id_dropped)
{
	late_reply_dropped(true);
}

Test(mmio, attach_refuses_wrong_peer)
{
	struct virtio_mmio_dev *d = NULL;
	int sv[2];
	struct virtio_mmio_params p = { .id = "dev0", .mem = &ram, .n_mem = 1 };

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p.sock = sv[0];
	/* A peer claiming to be a gateway is not a device. */
	cr_assert_eq(frame_hello_send(sv[1], CLOISTER__ROLE__ROLE_GATEWAY), 0);
	cr_assert_lt(virtio_mmio_attach(&p, &d), 0);
	cr_assert_null(d);
	close(sv[1]);
}
