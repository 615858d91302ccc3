/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the framework's two halves share: device.c runs the loop and the
 * queues, device_control.c serves the core's requests.
 */
#ifndef CLOISTER_DEVICE_INTERNAL_H
#define CLOISTER_DEVICE_INTERNAL_H

#include "device.h"
#include "virtio_spec.h"


/* Feature bits the transport offers: the kind's own plus VERSION_1 and INDIRECT_DESC. */
uint64_t device_offered_features(const struct device *dev);

/* Tears every queue down (ops->reset first, so the kind forgets what it held). */
void device_queues_stop(struct device *dev);

/* Serves whatever every ready queue has pending, while the device is ACTIVE. */
void device_serve_all_queues(struct device *dev);

void device_unmap_memory(struct device *dev);

/*
 * Receives one request (waiting up to timeout_ms, -1 for ever), checks it
 * against the state table, serves it and answers. Returns 0, 1 when the core
 * hung up, or a socket error; *ret_error (may be NULL) gets the answer's error.
 */
int device_control_handle(struct device *dev, int timeout_ms, int *ret_error,
			  Cloister__Envelope__MsgCase *ret_msg);

#endif
