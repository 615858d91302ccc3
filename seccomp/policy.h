/* SPDX-License-Identifier: Apache-2.0 */
/* Per-role seccomp allowlists; anything not listed kills the process. */
#ifndef CLOISTER_SECCOMP_POLICY_H
#define CLOISTER_SECCOMP_POLICY_H

#include "sandbox.h"

/*
 * Loads the allowlist for role into the calling thread (and threads it creates
 * later). In trap mode a forbidden call prints its name and exits 159
 * instead of killing silently.
 * Returns 0 or a negative errno.
 */
int seccomp_policy_load(enum sandbox_role role);

/*
 * Trap mode for the next seccomp_policy_load(), as --seccomp-trap asks (a
 * development aid; CLOISTER_SECCOMP_TRAP=1 does the same for tests that
 * start a child directly).
 */
void seccomp_policy_trap(void);

#endif
