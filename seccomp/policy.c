/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_seccomp_policy_c(void);
int placeholder_seccomp_policy_c(void) { return 0; }
