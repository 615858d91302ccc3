/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_vmm_core_platform_loader_c(void);
int placeholder_vmm_core_platform_loader_c(void) { return 0; }
