/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the machine: how its components' parts of a VmState are made and
 * taken (machine.c owns the harts and guest time, this half the conversions
 * and the PLIC and UART components).
 */
#ifndef CLOISTER_MACHINE_STATE_H
#define CLOISTER_MACHINE_STATE_H

#include "machine.h"

/* state->machine, made on first use; NULL when out of memory. */
Cloister__MachineState *machine_state_get(Cloister__VmState *state);

/* With m->lock held and the hart parked. */
int machine_hart_save(struct machine *m, struct hart *h, Cloister__VmState *state, char *err,
		      size_t errlen);
int machine_hart_restore(struct machine *m, struct hart *h, const Cloister__VmState *state,
			 char *err, size_t errlen);

/* Registers the PLIC and the UART, in that order. */
int machine_platform_components_add(struct machine *m);

/* Refuses a state with parts no component would claim (more vCPUs or devices than the VM's). */
int machine_state_claimed(const struct machine *m, const Cloister__VmState *state, char *err,
			  size_t errlen);

#endif
