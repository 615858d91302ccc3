/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The files of a snapshot directory: vm.json and memory-region-N. The
 * gateway opens and creates them (snapshotd may not open paths); a new
 * snapshot is written under .partial names and put in place at the end.
 */
#ifndef CLOISTER_SNAPSHOT_DIR_H
#define CLOISTER_SNAPSHOT_DIR_H

#include <stddef.h>

#define SNAPDIR_REGION_FMT "memory-region-%zu"

/* The directory a file:///ABSOLUTE url names, as an O_DIRECTORY fd, or -errno with err set. */
int snapdir_open(const char *url, char *err, size_t errlen);

/*
 * Creates vm.json.partial and memory-region-N.partial for n_regions
 * regions: fds[0] is vm.json's, fds[1 + i] region i's.
 */
int snapdir_create_partials(int dirfd, size_t n_regions, int *fds, char *err, size_t errlen);

/* Gives the partial files their final names, vm.json last. */
int snapdir_publish(int dirfd, size_t n_regions, char *err, size_t errlen);

/* Removes what snapdir_create_partials() made. */
void snapdir_unlink_partials(int dirfd, size_t n_regions);

/*
 * Opens vm.json (fds[0]) and every memory-region-N there is (fds[1 + i])
 * for reading, without following links. -EBADMSG with err set when there
 * is no complete snapshot.
 */
int snapdir_open_files(int dirfd, int *fds, size_t *ret_n_regions, char *err, size_t errlen);

#endif
