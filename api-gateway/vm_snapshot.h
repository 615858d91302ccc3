/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writing a paused VM to a snapshot directory and reading one back, with a
 * snapshotd started for the one operation: the gateway opens the files,
 * snapshotd (which may open nothing) reads or writes them, and vmm-core
 * streams its state and memory to it over a socketpair of their own.
 */
#ifndef CLOISTER_VM_SNAPSHOT_H
#define CLOISTER_VM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister.pb-c.h"
#include "layout.h"
#include "restore_mode.h"
#include "snapshot_seal.h"
#include "tree.h"

/* How long a snapshot or restore of a guest this big may take before it counts as hung. */
int vm_snapshot_timeout_ms(uint64_t memory_size);

/*
 * Writes the paused VM t runs with config into the directory url names,
 * its memory compressed and sealed as seal says (NULL: plain).
 */
int vm_snapshot_write(struct vm_tree *t, Cloister__VmConfig *config, const char *url,
		      const struct snapshot_seal *seal, char *err, size_t errlen);

/*
 * As vm_snapshot_write(), but guest memory stays in vmm-core's memfds, which
 * the caller keeps in the service manager's fd store: only vm.json (with
 * memory_regions naming fds "region-N") and the host bindings are written.
 */
int vm_snapshot_write_fdstore(struct vm_tree *t, Cloister__VmConfig *config, const char *url,
			      char *err, size_t errlen);

/* A restore under way: what the snapshot holds, and snapshotd ready to feed vmm-core. */
struct vm_restore {
	bool on_demand;		/* memory paged in by snapshotd rather than copied */
	int uffd;		/* on_demand: /dev/userfaultfd, opened by the gateway for vmm-core */
	bool fdstore;		/* memory given to vmm-core (the fd store): snapshotd fills nothing */
	int files[1 + LAYOUT_MAX_REGIONS];
	size_t n_regions;
	struct child snapd;
	int core_end;
	Cloister__VmConfig *config;	/* the snapshot's; the caller takes it */
};

/*
 * Opens the snapshot at url and has snapshotd check it; r->config is set on
 * success. mode: how memory comes in; OnDemand, by default or by name, has
 * snapshotd serve it as it is touched. Named OnDemand on a host without a
 * usable /dev/userfaultfd is -EOPNOTSUPP; the default falls back to Copy.
 * seal: the key of an encrypted snapshot (NULL or unkeyed: none given).
 */
int vm_restore_open(struct vm_tree *t, struct vm_restore *r, const char *url, enum restore_mode mode,
		    const struct snapshot_seal *seal, char *err, size_t errlen);

/*
 * As vm_restore_open() for a vm.json written by vm_snapshot_write_fdstore():
 * the caller starts t with tree_start_kept() and the stored memfds.
 */
int vm_restore_open_fdstore(struct vm_tree *t, struct vm_restore *r, const char *url, char *err,
			    size_t errlen);

/*
 * Once t runs vmm-core configured for r->config: fills it from the snapshot
 * (Copy), or has vmm-core register its memory with a userfaultfd made from
 * /dev/userfaultfd, which the gateway opens, and snapshotd page it in as it
 * is touched (OnDemand); snapshotd then stays on as t's page server.
 */
int vm_restore_fill(struct vm_tree *t, struct vm_restore *r, char *err, size_t errlen);

/*
 * What vm.info shows of an OnDemand restore's paging, or NULL if the VM was
 * not restored OnDemand: {"mode": "OnDemand", "bytes_present", "bytes_total",
 * "done"}. Safe to call without the lock the tree is driven under.
 */
struct json_object *vm_restore_progress_json(const struct vm_tree *t);

/* Ends snapshotd and closes everything (r->config too, unless taken). */
void vm_restore_close(struct vm_restore *r);

#endif
