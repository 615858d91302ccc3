/* SPDX-License-Identifier: Apache-2.0 */
/* A device's counter by name, read in-process (DevCounters reports the same array). */
#ifndef TEST_DEVICE_COUNTERS_H
#define TEST_DEVICE_COUNTERS_H

#include <criterion/criterion.h>
#include <string.h>

#include "device.h"

static inline uint64_t device_counter(const struct device *dev, const char *name)
{
	const char *const *names = dev->ops->counter_names;

	for (size_t i = 0; names && names[i] && i < DEVICE_MAX_COUNTERS; i++)
		if (strcmp(names[i], name) == 0)
			return dev->counters[i];
	cr_assert_fail("device kind %s has no counter %s", dev->ops->kind, name);
	return 0;
}

#endif
