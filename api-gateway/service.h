/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister as a systemd service: snapshot on stop, restore on start, and
 * the exit status that tells systemd how the VM ended.
 *
 * With "snapshot_on_stop": true in the --config file, a stop by signal
 * pauses the VM and snapshots it into $STATE_DIRECTORY/snapshot; the next
 * start restores from there and resumes. The snapshot is removed only
 * once a restore from it succeeded, the guest runs again and (OnDemand,
 * the default) every page of it is in guest memory; one that is refused
 * is kept aside as snapshot.refused and the VM boots afresh.
 *
 * A stop that is half of a restart (systemctl restart, asked of the
 * manager over D-Bus) with FileDescriptorStoreMax= set keeps guest memory
 * in the fd store instead: vmm-core's memfds as region-N, and only vm.json
 * in $STATE_DIRECTORY/snapshot-fdstore. The next start restores into them
 * without a copy; any failure on either side falls back to the disk.
 */
#ifndef CLOISTER_SERVICE_H
#define CLOISTER_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

struct controller;
struct notify_passed;
struct service;
struct vm_options;

/* Reads the service keys of o->config_path (may be NULL). -EINVAL with err set. */
int service_new(const struct vm_options *o, struct service **ret, char *err, size_t errlen);
void service_free(struct service *s);

/*
 * Takes the fds the fd store handed back (p's stored fds; p keeps its API
 * socket) for service_restore(). Without snapshot_on_stop they are released
 * at once (FDSTOREREMOVE=1), as is whatever a restore does not use.
 */
void service_take_stored(struct service *s, struct notify_passed *p);

/*
 * Restores and resumes the VM from the fd store, or else from the state
 * directory's snapshot.
 * 0 when it runs again, 1 when there is nothing to restore or the snapshot
 * was refused (the caller boots afresh; the VM is NotCreated), -errno when
 * the VM cannot be put back into a bootable state.
 */
int service_restore(struct service *s, struct controller *c, char *err, size_t errlen);

/*
 * Every supervision tick: removes the snapshot restored from once the page
 * server has brought every page in, or once the VM ended without failing
 * before that (a VM that failed keeps it: it is still the last good state).
 */
void service_tick(struct service *s, struct controller *c);

/* snapshot_on_stop is set. */
bool service_saves_on_stop(const struct service *s);

/*
 * The gateway was told to stop by a signal: STOPPING=1, and with
 * snapshot_on_stop a pause and a snapshot of a running or paused VM.
 * -errno with err set when the VM could not be saved.
 */
int service_stop(struct service *s, struct controller *c, char *err, size_t errlen);

/*
 * Under a service manager, the VM --config gave is the service: true once
 * it is Shutdown (the guest powered off, or it failed), with *ret_failed
 * and err saying whether it failed and why. vm.shutdown leaves the VM
 * Created, and the gateway up for a vm.boot.
 */
bool service_vm_ended(struct service *s, struct controller *c, bool *ret_failed, char *err,
		      size_t errlen);

#endif
