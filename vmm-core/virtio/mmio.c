/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_vmm_core_virtio_mmio_c(void);
int placeholder_vmm_core_virtio_mmio_c(void) { return 0; }
