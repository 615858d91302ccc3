/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_proto_frame_c(void);
int placeholder_proto_frame_c(void) { return 0; }
