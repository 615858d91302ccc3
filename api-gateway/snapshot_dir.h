/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The files of a snapshot directory: vm.json, host-bindings and
 * memory-region-N. The gateway opens and creates them (snapshotd may not
 * open paths).
 *
 * Writing is all or nothing. Every file is written under a .partial name
 * and synced; then a "commit" marker is made (written as commit.partial,
 * synced, renamed): that rename is the commit point. Only then do the
 * files take their final names, vm.json last, and the marker goes. Whoever
 * opens the directory next (a snapshot or a restore, under an exclusive
 * lock on it) finishes a publish whose marker exists and removes partial
 * files without one, so a failure or a kill at any point leaves either the
 * older snapshot or the new one, never a mix.
 */
#ifndef CLOISTER_SNAPSHOT_DIR_H
#define CLOISTER_SNAPSHOT_DIR_H

#include <stddef.h>

#define SNAPDIR_REGION_FMT "memory-region-%zu"
#define SNAPDIR_BINDINGS_NAME "host-bindings"

/*
 * The directory a file:///ABSOLUTE url names, as an O_DIRECTORY fd holding
 * an exclusive lock on it, with what an interrupted write left there
 * completed or removed. -EBUSY when another cloister holds it; -errno with
 * err set otherwise.
 */
int snapdir_open(const char *url, char *err, size_t errlen);

/*
 * Creates vm.json.partial and memory-region-N.partial for n_regions
 * regions: fds[0] is vm.json's, fds[1 + i] region i's. The snapshot there
 * before stays whole until snapdir_publish() commits.
 */
int snapdir_create_partials(int dirfd, size_t n_regions, int *fds, char *err, size_t errlen);

/* Writes name.partial with data, to be published with the rest. */
int snapdir_write_partial(int dirfd, const char *name, const void *data, size_t len, char *err,
			  size_t errlen);

/* Syncs the partial files, commits, and gives them their final names. */
int snapdir_publish(int dirfd, size_t n_regions, char *err, size_t errlen);

/* Removes every uncommitted partial file. */
void snapdir_unlink_partials(int dirfd, size_t n_regions);

/*
 * Opens vm.json (fds[0]) and every memory-region-N there is (fds[1 + i])
 * for reading, without following links. Each must be a regular file with a
 * single link; a region must belong to us (the euid) or root. -EBADMSG
 * with err set when there is no complete snapshot or a file is refused.
 */
int snapdir_open_files(int dirfd, int *fds, size_t *ret_n_regions, char *err, size_t errlen);

/* Reads a small regular file of the directory (under len - 1 bytes), NUL-terminated. */
int snapdir_read_small(int dirfd, const char *name, char *buf, size_t len, size_t *ret_len);

#endif
