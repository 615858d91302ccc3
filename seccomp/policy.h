/* SPDX-License-Identifier: Apache-2.0 */
/* Per-role seccomp allowlists; anything not listed kills the process. */
#ifndef CLOISTER_SECCOMP_POLICY_H
#define CLOISTER_SECCOMP_POLICY_H

#include "sandbox.h"

/*
 * Loads the allowlist for role into the calling thread (and threads it creates
 * later). With CLOISTER_SECCOMP_TRAP=1 in the environment a forbidden call
 * prints its name and exits 159 instead of killing silently.
 * Returns 0 or a negative errno.
 */
int seccomp_policy_load(enum sandbox_role role);

#endif
