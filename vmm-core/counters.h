/* SPDX-License-Identifier: Apache-2.0 */
/* vm.counters: every device process's counters, gathered for the gateway. */
#ifndef CLOISTER_COUNTERS_H
#define CLOISTER_COUNTERS_H

#include <pthread.h>

#include "cloister.pb-c.h"
#include "machine.h"

/*
 * Asks each of m's devices for its counters and answers request on gw
 * (under send_lock) with one CoreCountersReply. A device that does not
 * answer in time is left out of it. Returns what sending returned.
 */
int counters_answer(int gw, pthread_mutex_t *send_lock, const Cloister__Envelope *request,
		    struct machine *m);

#endif
