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
#include "sink.h"

struct device_host {
	const char *program;	/* "cloister-blk" */
	int fds[2];		/* handed over as the device's fd 4 and 5; -1 when none */
	size_t n_fds;
	char mac_arg[24];	/* net: the MAC to pass with --mac */
	struct sink sink;	/* console: what the gateway holds for its output */
};

/*
 * Opens d's host resource. On first creation (restore false) it also fills
 * in what the config must remember: a disk's size, a generated MAC. On
 * restore it refuses a disk whose size changed. Returns 0 or -errno with err set.
 */
int device_host_open(Cloister__DeviceConfig *d, bool restore, struct device_host *ret, char *err,
		     size_t errlen);
void device_host_close(struct device_host *h);

/*
 * Before a restore creates anything: every disk image is where the snapshot
 * says and has the size it had. -EBADMSG with err set otherwise. The images
 * are checked again when opened.
 */
int devices_check_restorable(const Cloister__VmConfig *config, char *err, size_t errlen);

#endif
