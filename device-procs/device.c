/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_device_procs_device_c(void);
int placeholder_device_procs_device_c(void) { return 0; }
