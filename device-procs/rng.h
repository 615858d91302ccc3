/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-rng (device ID 4): one queue, every device-writable buffer filled with random bytes. */
#ifndef CLOISTER_RNG_H
#define CLOISTER_RNG_H

#include "device.h"
#include "virtio_spec.h"

/* At most this many bytes per request, so one guest buffer cannot stall the loop. */
#define RNG_MAX_REQUEST_BYTES 65536u

extern const struct device_ops rng_ops;

#endif
