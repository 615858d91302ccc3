/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device process's lifecycle table, walked pair by pair: a fresh toy
 * device is brought into each state, sent each request, and must answer
 * with the right reply type, the request's id, the table's error, and end
 * in the table's next state, still serving.
 */
#include <errno.h>
#include <fcntl.h>

#include "harness.h"

#define V1 (1ull << VIRTIO_F_VERSION_1)
#define MSG(x) CLOISTER__ENVELOPE__MSG_##x

static int pauses;	/* ops->pause calls */
static bool break_queue1;

/* Once break_queue1 is set, queue 1 finds a chain it cannot serve. */
static int toy_process_queue(struct device *dev, struct virtqueue *vq)
{
	return vq->index == 1 && __atomic_load_n(&break_queue1, __ATOMIC_SEQ_CST) ? -EIO : 0;
}

static int toy_save(struct device *dev, Cloister__DeviceState *state)
{
	state->blob = (ProtobufCBinaryData){ .len = 0, .data = NULL };
	return 0;
}

static int toy_restore(struct device *dev, const Cloister__DeviceState *state)
{
	return state->blob.len == 0 ? 0 : -EINVAL;
}

static void toy_pause(struct device *dev)
{
	__atomic_add_fetch(&pauses, 1, __ATOMIC_SEQ_CST);
}

static const char *const toy_counter_names[] = { "widgets", "gadgets", NULL };

static const struct device_ops toy_ops = {
	.kind = "toy",
	.virtio_id = 42,
	.num_queues = NQ,
	.max_queue_size = QSIZE,
	.process_queue = toy_process_queue,
	.save = toy_save,
	.restore = toy_restore,
	.pause = toy_pause,
	.counter_names = toy_counter_names,
};

/* The requests of the walk; CORE_START stands for any message no device serves. */
static const Cloister__Envelope__MsgCase walk_msgs[] = {
	MSG(DEV_MEMORY), MSG(DEV_ACTIVATE), MSG(DEV_RESET), MSG(DEV_PAUSE), MSG(DEV_RESUME),
	MSG(DEV_SAVE), MSG(DEV_RESTORE), MSG(DEV_COUNTERS), MSG(CORE_START),
};
#define N_MSGS (sizeof(walk_msgs) / sizeof(walk_msgs[0]))

/* The start states of the walk; PAUSED is entered from ACTIVE. */
static const enum device_state walk_states[] = {
	DEVICE_CONFIGURING, DEVICE_READY, DEVICE_ACTIVE, DEVICE_BROKEN, DEVICE_PAUSED,
};
#define N_STATES (sizeof(walk_states) / sizeof(walk_states[0]))

struct outcome {
	int error;
	enum device_state next;
};

#define OK(s) { 0, DEVICE_##s }
#define BUSY(s) { -EBUSY, DEVICE_##s }
#define NEVER(s) { -EPERM, DEVICE_##s }

/* Written out by hand from the design, not read from the code under test. */
static const struct outcome expected[N_STATES][N_MSGS] = {
	/*            memory       activate      reset      pause       resume      save         restore      counters         core_start */
	/* CONFIG */ { OK(READY), BUSY(CONFIGURING), BUSY(CONFIGURING), BUSY(CONFIGURING),
		       BUSY(CONFIGURING), BUSY(CONFIGURING), BUSY(CONFIGURING), OK(CONFIGURING),
		       NEVER(CONFIGURING) },
	/* READY */  { BUSY(READY), OK(ACTIVE), OK(READY), OK(PAUSED), OK(READY), BUSY(READY),
		       OK(PAUSED), OK(READY), NEVER(READY) },
	/* ACTIVE */ { BUSY(ACTIVE), BUSY(ACTIVE), OK(READY), OK(PAUSED), OK(ACTIVE), BUSY(ACTIVE),
		       BUSY(ACTIVE), OK(ACTIVE), NEVER(ACTIVE) },
	/* BROKEN */ { BUSY(BROKEN), BUSY(BROKEN), OK(READY), OK(PAUSED), OK(BROKEN), BUSY(BROKEN),
		       BUSY(BROKEN), OK(BROKEN), NEVER(BROKEN) },
	/* PAUSED */ { BUSY(PAUSED), BUSY(PAUSED), OK(PAUSED), OK(PAUSED), OK(ACTIVE), OK(PAUSED),
		       OK(PAUSED), OK(PAUSED), NEVER(PAUSED) },
};

static enum device_state dev_state(void)
{
	return __atomic_load_n(&h.dev.state, __ATOMIC_SEQ_CST);
}

static void enter_state(enum device_state s)
{
	int out[2];

	pauses = 0;
	break_queue1 = false;
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	close(out[0]);
	h_start_configuring(&toy_ops, "toy0", out[1], -1, NULL);
	if (s == DEVICE_CONFIGURING)
		return;
	h_send_memory();
	if (s == DEVICE_READY)
		return;
	cr_assert_eq(h_activate(V1), 0);
	if (s == DEVICE_BROKEN) {
		__atomic_store_n(&break_queue1, true, __ATOMIC_SEQ_CST);
		h_kick(1);
		cr_assert(h_wait_for(dev_state() == DEVICE_BROKEN));
	} else if (s == DEVICE_PAUSED) {
		cr_assert_eq(h_pause(), 0);
	}
	cr_assert_eq(dev_state(), s);
}

/* The answer's error, whatever its type; checks the type fits the request. */
static int answer_error(const Cloister__Envelope *reply, Cloister__Envelope__MsgCase asked)
{
	switch (asked) {
	case MSG(DEV_SAVE):
		cr_assert_eq(reply->msg_case, MSG(DEV_SAVE_REPLY));
		if (reply->dev_save_reply->error == 0)
			cr_assert_not_null(reply->dev_save_reply->state);
		return reply->dev_save_reply->error;
	case MSG(DEV_COUNTERS):
		cr_assert_eq(reply->msg_case, MSG(DEV_COUNTERS_REPLY));
		return reply->dev_counters_reply->error;
	default:
		cr_assert_eq(reply->msg_case, MSG(REPLY));
		if (reply->reply->error < 0)
			cr_assert(reply->reply->message[0], "a refusal says why");
		return reply->reply->error;
	}
}

/* Sends a valid request of kind which (with the fds it needs); returns its error. */
static int send_request(Cloister__Envelope__MsgCase which)
{
	Cloister__MemoryRegion reg = CLOISTER__MEMORY_REGION__INIT, *regs[] = { &reg };
	Cloister__DevMemory mem = CLOISTER__DEV_MEMORY__INIT;
	Cloister__VirtqueueState q[NQ], *qs[NQ];
	Cloister__DevActivate act = CLOISTER__DEV_ACTIVATE__INIT;
	Cloister__DeviceState st = CLOISTER__DEVICE_STATE__INIT;
	Cloister__DevRestore rest = CLOISTER__DEV_RESTORE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply;
	ProtobufCMessage body;
	int fds[2 * NQ], n_fds = 0, err;

	h_queue_states(q, qs);
	switch (which) {
	case MSG(DEV_MEMORY):
		reg.guest_addr = GM_BASE;
		reg.size = GM_SIZE;
		mem.n_regions = 1;
		mem.regions = regs;
		env.msg_case = which;
		env.dev_memory = &mem;
		fds[n_fds++] = h.memfd;
		break;
	case MSG(DEV_ACTIVATE):
		h_new_eventfds(fds);
		n_fds = 2 * NQ;
		act.driver_features = V1;
		act.n_queues = NQ;
		act.queues = qs;
		env.msg_case = which;
		env.dev_activate = &act;
		break;
	case MSG(DEV_RESTORE):
		h_new_eventfds(fds);
		n_fds = 2 * NQ;
		st.kind = "toy";
		st.id = "toy0";
		st.driver_features = V1;
		st.status = 0xf;
		st.n_queues = NQ;
		st.queues = qs;
		rest.state = &st;
		env.msg_case = which;
		env.dev_restore = &rest;
		break;
	default:
		cr_assert_eq(frame_envelope_empty(&env, which, &body), 0);
		break;
	}
	reply = h_exchange(&env, fds, (size_t)n_fds, MSG(_NOT_SET));
	err = answer_error(reply, which);
	frame_free(reply);
	return err;
}

/* A device that never got its memory ends its handshake with an error when the core leaves. */
static void stop(void)
{
	if (dev_state() != DEVICE_CONFIGURING) {
		h_stop();
		return;
	}
	close(h.core);
	pthread_join(h.thread, NULL);
	cr_assert_lt(h.serve_result, 0);
	device_cleanup(&h.dev);
	frame_free(h.info_env);
	munmap(h.host, GM_SIZE);
	close(h.memfd);
}

static const char *msg_name(Cloister__Envelope__MsgCase which)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	env.msg_case = which;
	return frame_msg_name(&env);
}

static void walk_one(size_t si, size_t mi)
{
	enum device_state from = walk_states[si];
	const struct outcome *want = &expected[si][mi];
	const char *what = msg_name(walk_msgs[mi]);
	int err;

	enter_state(from);
	err = send_request(walk_msgs[mi]);
	cr_assert_eq(err, want->error, "%s while %s: error %d, table says %d", what,
		     device_state_name(from), err, want->error);
	cr_assert_eq(dev_state(), want->next, "%s while %s: now %s, table says %s", what,
		     device_state_name(from), device_state_name(dev_state()),
		     device_state_name(want->next));
	cr_assert_eq(device_state_check(from, walk_msgs[mi]), want->error == -EBUSY ? -EBUSY :
			     want->error == -EPERM ? -EPERM : 0,
		     "device_state_check agrees for %s while %s", what, device_state_name(from));
	/* Whatever happened, the device still answers. */
	h_counter("widgets");
	stop();
}

Test(states, every_request_in_every_state, .timeout = 60)
{
	for (size_t si = 0; si < N_STATES; si++)
		for (size_t mi = 0; mi < N_MSGS; mi++)
			walk_one(si, mi);
}

Test(states, paused_from_ready_resumes_to_ready)
{
	enter_state(DEVICE_READY);
	cr_assert_eq(h_pause(), 0);
	cr_assert_eq(dev_state(), DEVICE_PAUSED);
	cr_assert_eq(h_resume(), 0);
	cr_assert_eq(dev_state(), DEVICE_READY);
	h_stop();
}

Test(states, broken_device_pauses_and_saves_needs_reset)
{
	Cloister__Envelope *reply;

	enter_state(DEVICE_BROKEN);
	cr_assert_eq(h_pause(), 0);
	reply = h_save();
	cr_assert_eq(reply->dev_save_reply->error, 0);
	cr_assert_eq(reply->dev_save_reply->state->status & 0x40, 0x40, "NEEDS_RESET is saved");
	frame_free(reply);
	cr_assert_eq(h_resume(), 0);
	cr_assert_eq(dev_state(), DEVICE_BROKEN, "still waiting for its reset");
	h_stop();
}

Test(states, pause_twice_runs_the_pause_hook_once)
{
	enter_state(DEVICE_ACTIVE);
	cr_assert_eq(h_pause(), 0);
	cr_assert_eq(h_pause(), 0);
	cr_assert_eq(__atomic_load_n(&pauses, __ATOMIC_SEQ_CST), 1);
	cr_assert_eq(h_resume(), 0);
	cr_assert_eq(h_resume(), 0, "resume while active is a no-op");
	cr_assert_eq(dev_state(), DEVICE_ACTIVE);
	h_stop();
}

Test(states, reset_while_paused_resumes_to_ready)
{
	enter_state(DEVICE_PAUSED);
	cr_assert_eq(h_simple(MSG(DEV_RESET)), 0);
	cr_assert_eq(dev_state(), DEVICE_PAUSED, "a reset does not unpause");
	cr_assert_eq(h_resume(), 0);
	cr_assert_eq(dev_state(), DEVICE_READY);
	h_stop();
}

Test(states, failed_restore_leaves_a_ready_device)
{
	Cloister__VirtqueueState q[NQ], *qs[NQ];
	Cloister__DeviceState st = CLOISTER__DEVICE_STATE__INIT;
	Cloister__DevRestore rest = CLOISTER__DEV_RESTORE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	int fds[2 * NQ];

	enter_state(DEVICE_READY);
	h_queue_states(q, qs);
	q[1].size = QSIZE * 2;	/* larger than the device allows */
	h_new_eventfds(fds);
	st.kind = "toy";
	st.id = "toy0";
	st.driver_features = V1;
	st.status = 0xf;
	st.n_queues = NQ;
	st.queues = qs;
	rest.state = &st;
	env.msg_case = MSG(DEV_RESTORE);
	env.dev_restore = &rest;
	cr_assert_eq(h_request(&env, fds, 2 * NQ), -EINVAL);
	cr_assert_eq(dev_state(), DEVICE_READY);
	cr_assert_eq(h_activate(V1), 0, "the device can still be brought up");
	h_stop();
}

Test(states, counters_answer_before_memory)
{
	enter_state(DEVICE_CONFIGURING);
	cr_assert_eq(h_counter("widgets"), 0);
	cr_assert_eq(h_counter("gadgets"), 0);
	cr_assert_eq(h_pause(), -EBUSY);
	h_send_memory();
	cr_assert_eq(dev_state(), DEVICE_READY);
	h_stop();
}

Test(states, state_names)
{
	cr_assert_str_eq(device_state_name(DEVICE_PAUSED), "paused");
	cr_assert_str_eq(device_state_name(DEVICE_STATE_COUNT), "unknown");
	cr_assert_eq(device_state_check(DEVICE_STATE_COUNT, MSG(DEV_COUNTERS)), -EBUSY);
}
