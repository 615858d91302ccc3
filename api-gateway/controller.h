/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's supervisor: builds the process tree for a VM, drives it
 * through the lifecycle one operation at a time, and tears it down when a
 * child fails. The HTTP server reaches it through controller_api_ops.
 */
#ifndef CLOISTER_CONTROLLER_H
#define CLOISTER_CONTROLLER_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "lifecycle.h"
#include "notify.h"
#include "options.h"

struct controller;

extern const struct api_ops controller_api_ops;

struct event_monitor;
struct json_object;

/* events (may be NULL) must outlive the controller. */
int controller_new(const struct vm_options *opts, struct event_monitor *events,
		   struct controller **ret);
/* Kills and reaps every child. */
void controller_free(struct controller *c);

/* Creates and boots the VM the options describe (--kernel). */
int controller_boot(struct controller *c, char *err, size_t errlen);
/*
 * vm.create and --config: a VM from Cloud Hypervisor's VmConfig JSON.
 * -EINVAL (a bad config, err says why) before anything is created.
 */
int controller_create_json(struct controller *c, struct json_object *vm_config, char *err,
			   size_t errlen);

/* An operation that takes no arguments (boot, shutdown, delete, reboot, ...). */
int controller_run(struct controller *c, enum vm_op op, char *err, size_t errlen);

/* --restore */
int controller_restore(struct controller *c, const char *source_url, bool resume, char *err,
		       size_t errlen);

/* vm.snapshot into url (file:///ABSOLUTE); the VM must be paused. */
int controller_snapshot(struct controller *c, const char *url, char *err, size_t errlen);

/*
 * The systemd restart: guest memory (vmm-core's memfds) into the service
 * manager's fd store as region-N, vm.json and the host bindings into url.
 * The VM must be paused. On failure nothing stays in the store.
 */
int controller_snapshot_fdstore(struct controller *c, const char *url, char *err, size_t errlen);

/*
 * Restores the VM of a controller_snapshot_fdstore() at url into the memfds
 * stored hands back (checked first), without copying, and resumes it. The
 * fds stay stored's.
 */
int controller_restore_fdstore(struct controller *c, const char *url,
			       const struct notify_passed *stored, char *err, size_t errlen);

/* The VM's state, and into error (may be NULL) why it failed, or "". */
enum vm_state controller_state(struct controller *c, char *error, size_t errlen);

/* Supervision: notices dead children and guest events. Call often (every ~100 ms). */
void controller_tick(struct controller *c);

/*
 * No page server (not an OnDemand restore, or no VM), or every page is in
 * and the snapshot files are closed: the snapshot restored from is no
 * longer needed.
 */
bool controller_memory_paged(struct controller *c);

/*
 * The gateway is stopping: an operation under way stops waiting for its
 * children and fails. Safe from any thread; controller_free() does it too.
 */
void controller_cancel(struct controller *c);

/* Readable once vmm.shutdown was asked for. */
int controller_quit_fd(const struct controller *c);

#endif
