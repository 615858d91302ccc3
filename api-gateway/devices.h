/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the gateway must know of each device kind: its program, and the host
 * resource it opens for it (the device process never opens a path).
 */
#ifndef CLOISTER_DEVICES_H
#define CLOISTER_DEVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister.pb-c.h"

struct device_host {
	const char *program;	/* "cloister-blk" */
	int fds[2];		/* handed over as the device's fd 4 and 5; -1 when none */
	size_t n_fds;
	char mac_arg[24];	/* net: the MAC to pass with --mac */
};

/*
 * Opens d's host resource. On first creation (restore false) it also fills
 * in what the config must remember: a disk's size, a generated MAC. On
 * restore it refuses a disk whose size changed. Returns 0 or -errno with err set.
 */
int device_host_open(Cloister__DeviceConfig *d, bool restore, struct device_host *ret, char *err,
		     size_t errlen);
void device_host_close(struct device_host *h);

/* Opens a serial or console sink by its config; *ret_fd is -1 for off. */
int sink_open(const Cloister__SerialConfig *s, bool restore, int *ret_fd, char *err, size_t errlen);

#endif
