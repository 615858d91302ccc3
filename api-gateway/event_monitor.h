/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --event-monitor path=FILE|fd=N, as in Cloud Hypervisor: one JSON object
 * per line for each lifecycle event, {"timestamp": {"secs", "nanos"} since
 * the VMM started, "source": "vm" or "vmm", "event": "booting", ...,
 * "properties": null or an object}, so a supervisor can follow the VM
 * without polling.
 */
#ifndef CLOISTER_EVENT_MONITOR_H
#define CLOISTER_EVENT_MONITOR_H

#include <stddef.h>

struct event_monitor;

/* Opens what spec names ("path=FILE" is created or truncated, "fd=N" is taken over). */
int event_monitor_open(const char *spec, struct event_monitor **ret, char *err, size_t errlen);

/* Writes one event; detail (may be NULL) becomes properties {"error": detail}. NULL m is fine. */
void event_monitor_emit(struct event_monitor *m, const char *source, const char *event,
			const char *detail);

void event_monitor_close(struct event_monitor *m);

#endif
