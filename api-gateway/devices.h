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
#include "options.h"
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
/*
 * A restored NIC on a tap descriptor the restorer passed (tap_fd.h), which
 * stays the caller's: the device gets its own copy. d must be a net device
 * whose MAC the snapshot holds.
 */
int device_host_open_tap_fd(Cloister__DeviceConfig *d, int tap_fd, struct device_host *ret,
			    char *err, size_t errlen);
void device_host_close(struct device_host *h);

/*
 * Before a restore creates anything: every disk image opens as a setuid
 * program would open it (no link on the way, a regular file) and has the
 * size it had; every serial or console output file exists and opens the
 * same way, every socket's directory is reached without a link. -EBADMSG
 * with err set otherwise. The images are checked again when opened.
 */
int devices_check_restorable(const Cloister__VmConfig *config, char *err, size_t errlen);

/*
 * What a restore calls once snapshotd has loaded config from the snapshot
 * at url: checks the seal of its host bindings (bindings.h), puts the restorer's binds in (NULL: none), then
 * devices_check_restorable(). Unsealed bindings reach no host resource:
 * every disk and NIC must be bound, unbound file and socket outputs go to
 * /dev/null. -EBADMSG with err set for every refusal (the API's 400).
 */
int devices_prepare_restore(Cloister__VmConfig *config, const char *url,
			    const struct restore_binds *binds, char *err, size_t errlen);

#endif
