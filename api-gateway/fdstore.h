/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest memory kept in the service manager's fd store over a restart: the
 * memfds go from vmm-core through the gateway (which never maps them) into
 * the store as "region-N", and come back at the next start through
 * LISTEN_FDS, where they are checked before vmm-core gets them.
 */
#ifndef CLOISTER_FDSTORE_H
#define CLOISTER_FDSTORE_H

#include <stddef.h>

#include "cloister.pb-c.h"
#include "layout.h"
#include "notify.h"
#include "tree.h"

/*
 * Asks vmm-core (paused) for its memfds: ret_fds[i] is region i of config,
 * read-write, checked (memfd, sealed at the region's size). 0, or -errno
 * with err set and nothing left open.
 */
int fdstore_export(struct vm_tree *t, const Cloister__VmConfig *config, int *ret_fds, char *err,
		   size_t errlen);

/* Puts fds[i] in the store as region-i; on failure takes back what it put. */
int fdstore_put_regions(const int *fds, size_t n, char *err, size_t errlen);

/* FDSTOREREMOVE=1 for region-0 .. region-(LAYOUT_MAX_REGIONS - 1). */
void fdstore_remove_regions(void);

/*
 * The stored fds of p, in region order for config: exactly one named
 * region-i for each region i, each a memfd sealed at the region's size and
 * open read-write; ro[i] is a read-only descriptor of the same memfd. The
 * fds stay p's; ro[] are the caller's to close. -EINVAL with err set.
 */
int fdstore_take_regions(const struct notify_passed *p, const Cloister__VmConfig *config, int *rw,
			 int *ro, char *err, size_t errlen);

#endif
