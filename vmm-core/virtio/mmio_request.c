/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Requests to the device process: each carries a fresh request id, and a
 * reply with another id (or, from a device that does not echo ids, one owed
 * to a request that timed out) is late and dropped.
 */
#include <errno.h>
#include <unistd.h>
#include <poll.h>
#include <time.h>

#include "frame.h"
#include "log.h"
#include "mmio_priv.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- requests to the device process ---- */

/* -ETIMEDOUT when nothing at all arrived before deadline_ms (monotonic). */
static int wait_readable(int sock, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int64_t left = deadline_ms - now_ms();
		int n = poll(&p, 1, left > 0 ? (int)left : 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		return n == 0 ? -ETIMEDOUT : 0;
	}
}

/*
 * A device that does not echo request ids answers with 0: then the first
 * replies after a timeout are the late ones.
 */
static bool reply_is_late(struct virtio_mmio_dev *d, const Cloister__Envelope *reply)
{
	if (reply->request_id == d->request_id) {
		d->owed = 0;
		return false;
	}
	if (reply->request_id == 0 && d->owed == 0)
		return false;
	if (d->owed)
		d->owed--;
	log_info("device %s: late %s (request %llu) dropped", d->id, frame_msg_name(reply),
		 (unsigned long long)reply->request_id);
	return true;
}

/*
 * Waits for the reply to the request just sent, dropping late ones. A
 * deadline passed with nothing arrived is -ETIMEDOUT and leaves the stream
 * usable; a frame cut short or malformed does not.
 */
static int receive_reply(struct virtio_mmio_dev *d, Cloister__Envelope **ret_reply, int *ret_fds,
			 size_t max_fds, size_t *ret_n_fds)
{
	int64_t deadline = now_ms() + VIRTIO_MMIO_TIMEOUT_MS;

	for (;;) {
		Cloister__Envelope *reply = NULL;
		size_t n = 0;
		int r = wait_readable(d->sock, deadline);

		if (r < 0)
			return r == -ETIMEDOUT ? -EAGAIN : r;
		r = frame_recv_timeout(d->sock, VIRTIO_MMIO_TIMEOUT_MS, &reply, ret_fds, max_fds, &n);
		if (r < 0)
			return r;
		if (!reply_is_late(d, reply)) {
			if (ret_n_fds)
				*ret_n_fds = n;
			*ret_reply = reply;
			return 0;
		}
		for (size_t i = 0; i < n; i++)
			close(ret_fds[i]);
		frame_free(reply);
	}
}

/* Sends env with a fresh request id; the stream stays usable on return. */
int mmio_device_send(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
		       size_t n_fds)
{
	int r;

	if (d->broken)
		return -EIO;
	env->request_id = ++d->request_id;
	r = frame_send(d->sock, env, fds, n_fds);
	if (r < 0)
		mmio_mark_broken(d, r, frame_msg_name(env));
	return r;
}

/*
 * Sends env and waits for its answer. With may_time_out, a device that
 * answers nothing in time gives -ETIMEDOUT and its reply is dropped when it
 * comes; any other failure (and a timeout without it) leaves the stream
 * unusable.
 */
static int device_exchange_ex(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
			      size_t n_fds, bool may_time_out, Cloister__Envelope **ret_reply,
			      int *ret_fds, size_t max_fds, size_t *ret_n_fds)
{
	const char *what = frame_msg_name(env);
	int r = mmio_device_send(d, env, fds, n_fds);

	if (r < 0)
		return r;
	r = receive_reply(d, ret_reply, ret_fds, max_fds, ret_n_fds);
	/* The caller decides what a missed answer costs, and says so. */
	if (r == -EAGAIN && may_time_out) {
		d->owed++;
		return -ETIMEDOUT;
	}
	if (r == -EAGAIN)
		r = -ETIMEDOUT;
	if (r < 0)
		mmio_mark_broken(d, r, what);
	return r;
}

int mmio_device_exchange(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
			   size_t n_fds, Cloister__Envelope **ret_reply)
{
	return device_exchange_ex(d, env, fds, n_fds, false, ret_reply, NULL, 0, NULL);
}

int mmio_device_exchange_fds(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
			     size_t n_fds, Cloister__Envelope **ret_reply, int *ret_fds,
			     size_t max_fds, size_t *ret_n_fds)
{
	return device_exchange_ex(d, env, fds, n_fds, false, ret_reply, ret_fds, max_fds, ret_n_fds);
}

/* A request answered by a plain Reply: returns its error. */
static int device_request_ex(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
			     size_t n_fds, bool may_time_out)
{
	const char *what = frame_msg_name(env);
	Cloister__Envelope *reply = NULL;
	int r;

	r = device_exchange_ex(d, env, fds, n_fds, may_time_out, &reply, NULL, 0, NULL);
	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_REPLY || reply->reply->error > 0) {
		frame_free(reply);
		mmio_mark_broken(d, -EPROTO, what);
		return -EPROTO;
	}
	r = reply->reply->error;
	if (r < 0)
		log_error("device %s refused %s: %s", d->id, what, reply->reply->message);
	frame_free(reply);
	return r;
}

int mmio_device_request(struct virtio_mmio_dev *d, Cloister__Envelope *env, const int *fds,
			  size_t n_fds)
{
	return device_request_ex(d, env, fds, n_fds, false);
}

/* A request whose message carries only its kind; pause and resume may time out. */
int mmio_device_request_empty(struct virtio_mmio_dev *d, Cloister__Envelope__MsgCase which,
				bool may_time_out)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	ProtobufCMessage body;
	int r = frame_envelope_empty(&env, which, &body);

	return r < 0 ? r : device_request_ex(d, &env, NULL, 0, may_time_out);
}

int virtio_mmio_counters(struct virtio_mmio_dev *d, Cloister__Envelope **ret_reply)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply = NULL;
	ProtobufCMessage body;
	int r = frame_envelope_empty(&env, CLOISTER__ENVELOPE__MSG_DEV_COUNTERS, &body);

	if (r < 0)
		return r;
	pthread_mutex_lock(&d->lock);
	/* A device that does not answer in time is left out, not marked broken. */
	r = device_exchange_ex(d, &env, NULL, 0, true, &reply, NULL, 0, NULL);
	pthread_mutex_unlock(&d->lock);
	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_DEV_COUNTERS_REPLY ||
	    reply->dev_counters_reply->error < 0) {
		frame_free(reply);
		return -EPROTO;
	}
	*ret_reply = reply;
	return 0;
}
