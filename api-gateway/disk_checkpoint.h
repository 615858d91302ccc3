/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Disk checkpoints: a snapshot that also holds a copy of every writable
 * disk as it was at the snapshot, and restores that give each clone its own
 * copy of it. vm.snapshot with "disks": "checkpoint" copies each writable
 * disk, while the VM is paused, into disk-ID.img in the snapshot directory
 * and lists them in disks.json; a restore of such a snapshot copies each
 * listed disk the restorer did not bind to clone-ID-RANDOM.img there and
 * binds the disk to it. A copy is a reflink (FICLONE) where the filesystem
 * shares extents, else a sparse copy (SEEK_DATA/SEEK_HOLE).
 */
#ifndef CLOISTER_DISK_CHECKPOINT_H
#define CLOISTER_DISK_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister.pb-c.h"
#include "options.h"
#include "snapshot_seal.h"
#include "tree.h"

#define DISK_CHECKPOINT_LIST "disks.json"
#define DISK_CHECKPOINT_FMT "disk-%s.img"
#define DISK_CHECKPOINT_VERSION 1
/* Device ids that may name a file: [A-Za-z0-9_-], at most this long. */
#define DISK_CHECKPOINT_ID_MAX 32

enum disk_copy_method {
	DISK_COPY_AUTO,		/* reflink, else sparse */
	DISK_COPY_REFLINK,	/* reflink or fail (-EOPNOTSUPP, -EXDEV) */
	DISK_COPY_SPARSE,	/* never reflink */
};

/*
 * Copies all of src into dst (empty, same size after): its data extents
 * only, holes stay holes. On success *ret_used says which way it went
 * (DISK_COPY_REFLINK or DISK_COPY_SPARSE).
 */
int disk_copy(int src, int dst, enum disk_copy_method how, enum disk_copy_method *ret_used);

/*
 * vm.snapshot: writes the paused VM to url (vm_snapshot_write()), with
 * every writable disk checkpointed when checkpoint is set. Without it, a
 * checkpoint an older snapshot left in the directory is removed first, so
 * that memory and disks never come from two different snapshots.
 */
int disk_checkpoint_snapshot(struct vm_tree *t, Cloister__VmConfig *config, const char *url,
			     bool checkpoint, const struct snapshot_seal *seal, char *err,
			     size_t errlen);

/*
 * vm.restore: ret becomes binds plus, for each disk the snapshot at url
 * checkpointed and binds does not name, a binding to a fresh copy of its
 * checkpoint. Without disks.json, ret is a copy of binds. -EBADMSG with err
 * set for a checkpoint list or file that does not match the snapshot's
 * config. Free ret with restore_binds_free().
 */
int disk_checkpoint_restore(const Cloister__VmConfig *config, const char *url,
			    const struct restore_binds *binds, struct restore_binds *ret, char *err,
			    size_t errlen);

/*
 * For inspection: the disk ids the list in dirfd names, each entry and its
 * file checked as a restore would (ret_ids[i] as long as DISK_CHECKPOINT_ID_MAX
 * + 1). *ret_n is 0 without a list. -EBADMSG with err set.
 */
int disk_checkpoint_check(int dirfd, const Cloister__VmConfig *config,
			  char ret_ids[][DISK_CHECKPOINT_ID_MAX + 1], size_t max, size_t *ret_n,
			  char *err, size_t errlen);

/* Whether id may name a checkpoint file. */
bool disk_checkpoint_id_ok(const char *id);

#endif
