/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_snapshotd_snapshot_c(void);
int placeholder_snapshotd_snapshot_c(void) { return 0; }
