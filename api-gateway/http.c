/* SPDX-License-Identifier: Apache-2.0 */
/* placeholder until the module lands */
int placeholder_api_gateway_http_c(void);
int placeholder_api_gateway_http_c(void) { return 0; }
