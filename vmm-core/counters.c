/* SPDX-License-Identifier: Apache-2.0 */
#include "counters.h"

#include <string.h>

#include "frame.h"
#include "layout.h"
#include "log.h"
#include "virtio/mmio.h"

struct gathered {
	Cloister__Envelope *replies[LAYOUT_VIRTIO_SLOTS];
	Cloister__DeviceCounters devices[LAYOUT_VIRTIO_SLOTS];
	Cloister__DeviceCounters *ptrs[LAYOUT_VIRTIO_SLOTS];
	size_t n;
};

static void gather(struct machine *m, struct gathered *g)
{
	for (size_t i = 0; i < m->n_virtio && i < LAYOUT_VIRTIO_SLOTS; i++) {
		Cloister__DevCountersReply *dr;
		Cloister__DeviceCounters *dc = &g->devices[g->n];
		int r = virtio_mmio_counters(m->virtio[i], &g->replies[i]);

		if (r < 0) {
			log_warn("device %s gave no counters: %s", virtio_mmio_id(m->virtio[i]), strerror(-r));
			continue;
		}
		dr = g->replies[i]->dev_counters_reply;
		cloister__device_counters__init(dc);
		dc->id = (char *)virtio_mmio_id(m->virtio[i]);
		dc->counters = dr->counters;
		dc->n_counters = dr->n_counters;
		g->ptrs[g->n++] = dc;
	}
}

int counters_answer(int gw, pthread_mutex_t *send_lock, const Cloister__Envelope *request,
		    struct machine *m)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__CoreCountersReply reply = CLOISTER__CORE_COUNTERS_REPLY__INIT;
	struct gathered g = { .n = 0 };
	int r;

	gather(m, &g);
	reply.devices = g.ptrs;
	reply.n_devices = g.n;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_CORE_COUNTERS_REPLY, &reply.base);
	env.request_id = request->request_id;
	pthread_mutex_lock(send_lock);
	r = frame_send(gw, &env, NULL, 0);
	pthread_mutex_unlock(send_lock);
	for (size_t i = 0; i < LAYOUT_VIRTIO_SLOTS; i++)
		if (g.replies[i])
			frame_free(g.replies[i]);
	return r;
}
