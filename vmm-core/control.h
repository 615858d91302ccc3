/* SPDX-License-Identifier: Apache-2.0 */
/* vmm-core's side of the gateway protocol. */
#ifndef CLOISTER_CONTROL_H
#define CLOISTER_CONTROL_H

#include "memory.h"

/*
 * Serves the gateway on sock until it says CoreShutdown or goes away.
 * mem holds the memfds made before the sandbox. Returns 0 on an orderly
 * shutdown, negative errno when the gateway broke the protocol.
 */
int control_serve(int sock, struct guest_memory *mem);

#endif
