/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_vmm_core_rv64_engine_c(void);
int placeholder_vmm_core_rv64_engine_c(void) { return 0; }
