/* SPDX-License-Identifier: Apache-2.0 */
#include "vm_counters.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>

#include "errmsg.h"
#include "frame.h"

/* {"rng0": {"bytes": N}, "disk0": {"read_bytes": N, ...}, ...} from vmm-core's reply. */
static struct json_object *counters_json(const Cloister__CoreCountersReply *r)
{
	struct json_object *o = json_object_new_object();

	for (size_t i = 0; i < r->n_devices; i++) {
		const Cloister__DeviceCounters *d = r->devices[i];
		struct json_object *dev = json_object_new_object();

		for (size_t j = 0; j < d->n_counters; j++)
			json_object_object_add(dev, d->counters[j]->name,
					       json_object_new_int64((int64_t)(d->counters[j]->value & INT64_MAX)));
		json_object_object_add(o, d->id, dev);
	}
	return o;
}

int vm_counters_query(struct vm_tree *t, struct json_object **ret, char *err, size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT, *reply = NULL;
	ProtobufCMessage body;
	int r;

	if (!tree_alive(t)) {
		err_set(err, errlen, "counters need a booted VM");
		return -EINVAL;
	}
	r = frame_envelope_empty(&env, CLOISTER__ENVELOPE__MSG_CORE_COUNTERS, &body);
	if (r == 0)
		r = tree_send(t, &t->core, &env, NULL, 0, err, errlen);
	if (r == 0)
		r = tree_wait_reply(t, &t->core, TREE_CALL_TIMEOUT_MS, &reply, err, errlen);
	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_CORE_COUNTERS_REPLY) {
		/* vmm-core refused it (a Reply): not in a state with devices. */
		err_set(err, errlen, "vmm-core gave no counters%s%s",
			reply->msg_case == CLOISTER__ENVELOPE__MSG_REPLY && reply->reply->message ? ": " : "",
			reply->msg_case == CLOISTER__ENVELOPE__MSG_REPLY && reply->reply->message ?
			reply->reply->message : "");
		frame_free(reply);
		return -EINVAL;
	}
	*ret = counters_json(reply->core_counters_reply);
	frame_free(reply);
	return 0;
}
