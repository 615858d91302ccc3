/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm.restore's "net_fds" (CH's RestoredNetConfig list) and the descriptors
 * that came with the request: which NIC gets which tap.
 */
#ifndef CLOISTER_HTTP_NET_FDS_H
#define CLOISTER_HTTP_NET_FDS_H

#include <stddef.h>

#include "http.h"

/*
 * Reads "net_fds" of the restore body obj (absent or null: none) into
 * req->net_fds, every fd -1 until api_restore_attach_fds(). -EINVAL with
 * err set for anything but [{"id", "num_fds": 1, "fds": null|[N]}, ...].
 */
int api_parse_net_fds(struct json_object *obj, struct api_restore_request *req, char *err,
		      size_t errlen);

#endif
