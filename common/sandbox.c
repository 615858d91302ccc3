/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_common_sandbox_c(void);
int placeholder_common_sandbox_c(void) { return 0; }
