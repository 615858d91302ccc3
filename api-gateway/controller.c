/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_api_gateway_controller_c(void);
int placeholder_api_gateway_controller_c(void) { return 0; }
