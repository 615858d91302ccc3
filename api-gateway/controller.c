/* SPDX-License-Identifier: Apache-2.0 */
#include "controller.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bindings.h"
#include "cleanup.h"
#include "devices.h"
#include "disk_checkpoint.h"
#include "errmsg.h"
#include "event_monitor.h"
#include "fdstore.h"
#include "frame.h"
#include "lifecycle.h"
#include "log.h"
#include "notify.h"
#include "tree.h"
#include "vm_counters.h"
#include "vm_snapshot.h"
#include "vmconfig.h"
#include "vminfo.h"

struct controller {
	/*
	 * Set for a whole lifecycle operation: a second one meanwhile is
	 * refused (409). The operation also holds op_lock, which the
	 * supervision tick takes for a moment between operations.
	 */
	atomic_bool op_busy;
	/* The guest asked for a reboot; the tick carries it out. */
	atomic_bool reboot_pending;
	pthread_mutex_t op_lock;
	/* Held briefly around changes of what vm.info shows. */
	pthread_mutex_t info_lock;
	enum vm_state state;
	/* Counts state changes: an operation that saw one did not end as it began. */
	unsigned state_changes;
	char error[256];
	Cloister__VmConfig *config;
	/* The operation under way, for vm.info; VM_OP_COUNT when none. */
	enum vm_op op;
	struct timespec op_started;

	const struct vm_options *opts;
	struct event_monitor *events;
	struct vm_tree tree;
	int quit_efd;
	/* Readable once the gateway stops: waits on children give up. */
	int cancel_efd;
};

/* What one operation needs beyond the controller. */
struct op_args {
	const char *url;
	const struct restore_binds *binds;	/* restore: what the restorer names, or NULL */
	enum restore_mode mode;			/* restore: how memory comes in */
	bool disks_checkpoint;		/* snapshot: copy the writable disks in too */
	bool fdstore;			/* snapshot: guest memory into the fd store, vm.json to url */
	const struct notify_passed *stored;	/* restore: guest memory from the fd store */
	const struct snapshot_seal *seal;	/* snapshot, restore: compression and key, or NULL */
	Cloister__VmConfig *config;	/* create: taken by the op */
};

/* ---- what vm.info shows ---- */

static void set_state(struct controller *c, enum vm_state s)
{
	pthread_mutex_lock(&c->info_lock);
	if (c->state != s)
		log_info("VM state %s -> %s", vm_state_name(c->state), vm_state_name(s));
	c->state = s;
	c->state_changes++;
	notify_vm_status(vm_state_name(s), NULL, c->error);
	pthread_mutex_unlock(&c->info_lock);
}

static unsigned get_state_changes(struct controller *c)
{
	unsigned n;

	pthread_mutex_lock(&c->info_lock);
	n = c->state_changes;
	pthread_mutex_unlock(&c->info_lock);
	return n;
}

static enum vm_state get_state(struct controller *c)
{
	enum vm_state s;

	pthread_mutex_lock(&c->info_lock);
	s = c->state;
	pthread_mutex_unlock(&c->info_lock);
	return s;
}

static void set_error(struct controller *c, const char *msg)
{
	pthread_mutex_lock(&c->info_lock);
	snprintf(c->error, sizeof(c->error), "%s", msg ? msg : "");
	pthread_mutex_unlock(&c->info_lock);
}

static void set_config(struct controller *c, Cloister__VmConfig *config)
{
	pthread_mutex_lock(&c->info_lock);
	if (c->config)
		cloister__vm_config__free_unpacked(c->config, NULL);
	c->config = config;
	pthread_mutex_unlock(&c->info_lock);
}

static void set_op(struct controller *c, enum vm_op op)
{
	pthread_mutex_lock(&c->info_lock);
	c->op = op;
	clock_gettime(CLOCK_MONOTONIC, &c->op_started);
	pthread_mutex_unlock(&c->info_lock);
}

static void emit(struct controller *c, const char *event, const char *detail);

/* Something broke: stop every process of the VM and say why in vm.info. */
static void vm_fail(struct controller *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vm_fail(struct controller *c, const char *fmt, ...)
{
	char msg[sizeof(c->error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("VM failed: %s", msg);
	tree_reap(&c->tree, true);
	set_error(c, msg);
	set_state(c, VM_STATE_SHUTDOWN);
	emit(c, "failed", msg);
}

/* ---- what the tree reports ---- */

static void on_event(void *opaque, const Cloister__Event *ev)
{
	struct controller *c = opaque;
	const char *msg = ev->message ? ev->message : "";
	switch (ev->kind) {
	case CLOISTER__EVENT_KIND__EVENT_GUEST_SHUTDOWN:
		log_info("the guest shut down: %s", msg);
		tree_reap(&c->tree, true);
		set_state(c, VM_STATE_SHUTDOWN);
		emit(c, "shutdown", NULL);
		break;
	case CLOISTER__EVENT_KIND__EVENT_CONSOLE_QUIT: {
		uint64_t one = 1;

		/* As vmm.shutdown: main() stops the tree in order. */
		log_info("%s: shutting down", msg);
		if (write(c->quit_efd, &one, sizeof(one)) != sizeof(one))
			log_error("cannot signal the main loop: %m");
		break;
	}
	case CLOISTER__EVENT_KIND__EVENT_GUEST_REBOOT:
		/* Done between operations, by the supervision tick: a new tree, the same config. */
		log_info("the guest asked for a reboot (%s)", msg);
		atomic_store(&c->reboot_pending, true);
		break;
	default:
		vm_fail(c, "the guest failed: %s", msg);
		break;
	}
}

/* A pty's path is only known once it exists: the config vm.info shows gets it. */
static void on_sink_path(void *opaque, Cloister__SerialConfig *s, const char *path)
{
	struct controller *c = opaque;
	char *copy = strdup(path);

	if (!copy)
		return;
	pthread_mutex_lock(&c->info_lock);
	/* The default value belongs to protobuf-c: only a string of our own is freed. */
	if (s->path && s->path != protobuf_c_empty_string)
		free(s->path);
	s->path = copy;
	pthread_mutex_unlock(&c->info_lock);
}

/* ---- the operations (op_lock held, lifecycle checked) ---- */

static int op_create(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	set_config(c, a->config);
	return 0;
}

/* The guest asked SBI for a shutdown (as opposed to something failing). */
static bool guest_shut_down(struct controller *c)
{
	bool clean;

	pthread_mutex_lock(&c->info_lock);
	clean = c->state == VM_STATE_SHUTDOWN && !c->error[0];
	pthread_mutex_unlock(&c->info_lock);
	return clean;
}

/* A new tree for the config, started from its kernel. */
static int boot_tree(struct controller *c, char *err, size_t errlen)
{
	int r = tree_start(&c->tree, c->config, false, err, errlen);

	if (r == 0)
		r = tree_core_simple(&c->tree, CLOISTER__ENVELOPE__MSG_CORE_START, err, errlen);
	if (r < 0)
		tree_reap(&c->tree, true);
	return r;
}

static int op_boot(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	int r;

	(void)a;
	set_error(c, NULL);
	r = boot_tree(c, err, errlen);
	/* It booted and shut itself down before vmm-core's answer reached us. */
	if (r < 0 && guest_shut_down(c))
		return 0;
	return r;
}

static int core_op(struct controller *c, Cloister__Envelope__MsgCase msg, const char *what,
		   char *err, size_t errlen)
{
	int r = tree_core_simple(&c->tree, msg, err, errlen);

	if (r == -ECHILD || r == -EPROTO)
		vm_fail(c, "%s failed: %s", what, err);
	return r;
}

static int op_pause(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	ProtobufCMessage body;
	char ignored[64];
	int r;

	(void)a;
	r = core_op(c, CLOISTER__ENVELOPE__MSG_CORE_PAUSE, "pause", err, errlen);
	if (r != -ETIMEDOUT)
		return r;
	/*
	 * vmm-core may still pause once it gets to it: a resume queued behind
	 * the pause leaves it running, as the VM's state says. Both late
	 * replies are dropped by their request ids.
	 */
	if (frame_envelope_empty(&env, CLOISTER__ENVELOPE__MSG_CORE_RESUME, &body) == 0)
		tree_send(&c->tree, &c->tree.core, &env, NULL, 0, ignored, sizeof(ignored));
	return r;
}

static int op_resume(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	int r;

	(void)a;
	r = core_op(c, CLOISTER__ENVELOPE__MSG_CORE_RESUME, "resume", err, errlen);
	if (r == 0)
		tree_pager_resumed(&c->tree);
	return r;
}

/* Memory into the fd store first: a vm.json without it would be no snapshot. */
static int snapshot_fdstore(struct controller *c, const char *url, char *err, size_t errlen)
{
	int fds[LAYOUT_MAX_REGIONS];
	size_t n = c->config->n_regions;
	int r = fdstore_export(&c->tree, c->config, fds, err, errlen);

	if (r < 0)
		return r;
	r = fdstore_put_regions(fds, n, err, errlen);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	if (r == 0)
		r = vm_snapshot_write_fdstore(&c->tree, c->config, url, err, errlen);
	if (r < 0)
		fdstore_remove_regions();
	return r;
}

static int op_snapshot(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	int r = a->fdstore ? snapshot_fdstore(c, a->url, err, errlen) :
			     disk_checkpoint_snapshot(&c->tree, c->config, a->url,
						      a->disks_checkpoint, a->seal, err, errlen);

	if (r == -ECHILD)
		vm_fail(c, "snapshot failed: %s", err);
	return r;
}

static void stop_tree(struct controller *c);

static int op_restore(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	struct vm_restore rs;
	struct restore_binds binds = { 0 };
	struct timespec t0, t1;
	int r;

	int rw[LAYOUT_MAX_REGIONS], ro[LAYOUT_MAX_REGIONS];
	struct tree_memory kept = { .rw = rw, .ro = ro, .n = 0 };

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = a->stored ? vm_restore_open_fdstore(&c->tree, &rs, a->url, err, errlen) :
			vm_restore_open(&c->tree, &rs, a->url, a->mode, a->seal, err, errlen);
	/* The stored memory is checked against the snapshot before any of it is used. */
	if (r == 0 && a->stored && (r = fdstore_take_regions(a->stored, rs.config, rw, ro, err,
							     errlen)) == 0)
		kept.n = rs.config->n_regions;
	if (r == 0)
		r = disk_checkpoint_restore(rs.config, a->url, a->binds, &binds, err, errlen);
	if (r == 0)
		r = devices_prepare_restore(rs.config, a->url, &binds, err, errlen);
	if (r < 0)
		goto out;
	/* The snapshot is sound: from here on its VM exists. */
	set_error(c, NULL);
	set_config(c, TAKE_PTR(rs.config));
	set_state(c, VM_STATE_CREATED);
	rs.config = c->config;
	r = tree_keep_tap_fds(&c->tree, &binds, err, errlen);
	if (r == 0)
		r = a->stored ? tree_start_kept(&c->tree, c->config, &kept, err, errlen) :
				tree_start(&c->tree, c->config, true, err, errlen);
	if (r == 0)
		r = vm_restore_fill(&c->tree, &rs, err, errlen);
	rs.config = NULL;
	if (r == -EBADMSG) {
		/* Memory that fails its checks (a damaged chunk): refused, and no VM is left. */
		log_error("restore refused: %s", err);
		stop_tree(c);
		tree_release(&c->tree);
		set_config(c, NULL);
		set_error(c, NULL);
		goto out;
	}
	if (r < 0) {
		vm_fail(c, "restore failed: %s", err);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("restored from %s in %.1f ms, paused", a->url,
		 (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
out:
	for (size_t i = 0; i < kept.n; i++)
		close(ro[i]);
	restore_binds_free(&binds);
	vm_restore_close(&rs);
	return r;
}

/* Asks vmm-core to stop, then stops what is left. */
static void stop_tree(struct controller *c)
{
	char why[96];

	if (!tree_alive(&c->tree))
		return;
	/* Best effort: the tree is reaped either way. */
	tree_core_simple(&c->tree, CLOISTER__ENVELOPE__MSG_CORE_SHUTDOWN, why, sizeof(why));
	child_wait_exit(&c->tree.core, 2000);
	tree_reap(&c->tree, true);
}

static int op_shutdown(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	(void)a;
	(void)err;
	(void)errlen;
	stop_tree(c);
	set_error(c, NULL);
	return 0;
}

static int op_delete(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	(void)a;
	(void)err;
	(void)errlen;
	stop_tree(c);
	tree_release(&c->tree);
	set_config(c, NULL);
	set_error(c, NULL);
	return 0;
}

/* The same config on a new tree: a reset of every device and hart. */
static int reboot_tree(struct controller *c, char *err, size_t errlen)
{
	stop_tree(c);
	return boot_tree(c, err, errlen);
}

static int op_reboot(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	int r;

	(void)a;
	r = reboot_tree(c, err, errlen);
	if (r < 0)
		vm_fail(c, "reboot failed: %s", err);
	return r;
}

static int op_power_button(struct controller *c, const struct op_args *a, char *err, size_t errlen)
{
	(void)c;
	(void)a;
	err_set(err, errlen, "this machine has no power button the guest could act on: use "
		"vm.shutdown, or shut down from inside the guest");
	return -EOPNOTSUPP;
}

typedef int (*op_fn)(struct controller *c, const struct op_args *a, char *err, size_t errlen);

struct op_def {
	op_fn run;
	/* Cloud Hypervisor's event names, before and after; NULL for none. */
	const char *starting, *done;
};

static const struct op_def op_table[VM_OP_COUNT] = {
	[VM_OP_CREATE] = { op_create, NULL, "created" },
	[VM_OP_BOOT] = { op_boot, "booting", "booted" },
	[VM_OP_PAUSE] = { op_pause, "pausing", "paused" },
	[VM_OP_RESUME] = { op_resume, "resuming", "resumed" },
	[VM_OP_SNAPSHOT] = { op_snapshot, "snapshotting", "snapshotted" },
	[VM_OP_RESTORE] = { op_restore, "restoring", "restored" },
	[VM_OP_SHUTDOWN] = { op_shutdown, NULL, "shutdown" },
	[VM_OP_DELETE] = { op_delete, NULL, "deleted" },
	[VM_OP_REBOOT] = { op_reboot, "rebooting", "rebooted" },
	[VM_OP_POWER_BUTTON] = { op_power_button, NULL, NULL },
};

static void emit(struct controller *c, const char *event, const char *detail)
{
	if (event)
		event_monitor_emit(c->events, "vm", event, detail);
}

/*
 * The one way an operation runs: checked against the lifecycle table before
 * anything is touched, then run, then the state the table gives applied,
 * unless the operation ended the VM itself (vm_fail, a guest shutdown).
 */
static int run_op_locked(struct controller *c, enum vm_op op, const struct op_args *a, char *err,
			 size_t errlen)
{
	enum vm_state before = get_state(c);
	unsigned changes = get_state_changes(c);
	const char *why = NULL;
	int r = lifecycle_check(before, op, &why);

	if (r < 0) {
		err_set(err, errlen, "cannot %s: %s", vm_op_name(op), why ? why : "not allowed now");
		return r;
	}
	set_op(c, op);
	emit(c, op_table[op].starting, NULL);
	notify_vm_status(vm_state_name(before), vm_op_name(op), NULL);
	r = op_table[op].run(c, a, err, errlen);
	set_op(c, VM_OP_COUNT);
	if (r < 0) {
		log_error("%s failed: %s", vm_op_name(op), err);
		notify_vm_status(vm_state_name(get_state(c)), NULL, err);
		if (op_table[op].starting)
			emit(c, "failed", err);
		/* vm_fail() has said why already when the VM ended. */
		if (get_state_changes(c) == changes)
			set_error(c, err);
		return r;
	}
	/* A restore makes its VM on the way; any other change means the VM ended meanwhile. */
	if (get_state_changes(c) == changes || op == VM_OP_RESTORE) {
		set_error(c, NULL);
		set_state(c, lifecycle_next(before, op));
	}
	emit(c, op_table[op].done, NULL);
	return 0;
}

/* One operation at a time: a second one meanwhile is refused (409); the tick waits. */
static int op_claim(struct controller *c, char *err, size_t errlen)
{
	if (atomic_exchange(&c->op_busy, true)) {
		err_set(err, errlen, "another operation is in progress");
		return -EBUSY;
	}
	pthread_mutex_lock(&c->op_lock);
	return 0;
}

static void op_release(struct controller *c)
{
	pthread_mutex_unlock(&c->op_lock);
	atomic_store(&c->op_busy, false);
}

static int run_op(struct controller *c, enum vm_op op, const struct op_args *a, char *err,
		  size_t errlen)
{
	int r = op_claim(c, err, errlen);

	if (r < 0)
		return r;
	r = run_op_locked(c, op, a, err, errlen);
	op_release(c);
	return r;
}

/* ---- the API ---- */

static int api_info(void *opaque, struct json_object **ret_info, char *err, size_t errlen)
{
	struct controller *c = opaque;
	struct json_object *info, *progress;

	pthread_mutex_lock(&c->info_lock);
	if (c->state == VM_STATE_NOT_CREATED || !c->config) {
		pthread_mutex_unlock(&c->info_lock);
		err_set(err, errlen, "no VM has been created");
		return -ENOENT;
	}
	info = json_object_new_object();
	json_object_object_add(info, "config", vminfo_config_json(c->config));
	json_object_object_add(info, "state", json_object_new_string(vm_state_name(c->state)));
	json_object_object_add(info, "memory_actual_size", json_object_new_uint64(c->config->memory_size));
	if (c->error[0])
		json_object_object_add(info, "error", json_object_new_string(c->error));
	progress = vm_restore_progress_json(&c->tree);
	if (progress)
		json_object_object_add(info, "memory_restore", progress);
	progress = save_progress_json(&c->tree.saving);
	if (progress)
		json_object_object_add(info, "snapshot_progress", progress);
	if (c->op != VM_OP_COUNT) {
		struct json_object *op = json_object_new_object();
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		json_object_object_add(op, "name", json_object_new_string(vm_op_name(c->op)));
		json_object_object_add(op, "elapsed_ms", json_object_new_int64(
			(now.tv_sec - c->op_started.tv_sec) * 1000 +
			(now.tv_nsec - c->op_started.tv_nsec) / 1000000));
		json_object_object_add(info, "operation", op);
	}
	pthread_mutex_unlock(&c->info_lock);
	*ret_info = info;
	return 0;
}

static int counters_locked(struct controller *c, struct json_object **ret, char *err, size_t errlen)
{
	if (get_state(c) == VM_STATE_NOT_CREATED) {
		err_set(err, errlen, "no VM has been created");
		return -ENOENT;
	}
	return vm_counters_query(&c->tree, ret, err, errlen);
}

static int api_counters(void *opaque, struct json_object **ret, char *err, size_t errlen)
{
	struct controller *c = opaque;
	int r = op_claim(c, err, errlen);

	if (r < 0)
		return r;
	r = counters_locked(c, ret, err, errlen);
	op_release(c);
	return r;
}

static int api_pause(void *opaque, char *err, size_t errlen)
{
	return run_op(opaque, VM_OP_PAUSE, &(struct op_args){ 0 }, err, errlen);
}

static int api_resume(void *opaque, char *err, size_t errlen)
{
	return run_op(opaque, VM_OP_RESUME, &(struct op_args){ 0 }, err, errlen);
}

static int api_snapshot(void *opaque, const char *url, char *err, size_t errlen)
{
	return run_op(opaque, VM_OP_SNAPSHOT, &(struct op_args){ .url = url }, err, errlen);
}

static int api_snapshot_checkpoint(void *opaque, const char *url, char *err, size_t errlen)
{
	return run_op(opaque, VM_OP_SNAPSHOT, &(struct op_args){ .url = url, .disks_checkpoint = true },
		      err, errlen);
}

/* vm.snapshot with Cloister's keys: the key, if any, is read here and forgotten after. */
static int api_snapshot_sealed(void *opaque, const char *url, bool checkpoint,
			       struct json_object *body, char *err, size_t errlen)
{
	struct snapshot_seal seal;
	int r = snapshot_seal_from_json(body, true, &seal, err, errlen);

	if (r == 0)
		r = run_op(opaque, VM_OP_SNAPSHOT, &(struct op_args){ .url = url,
			   .disks_checkpoint = checkpoint, .seal = &seal }, err, errlen);
	snapshot_seal_wipe(&seal);
	return r;
}

static int restore_run(struct controller *c, const struct op_args *a, bool resume, char *err,
		       size_t errlen)
{
	int r = op_claim(c, err, errlen);

	if (r < 0)
		return r;
	r = run_op_locked(c, VM_OP_RESTORE, a, err, errlen);
	if (r == 0 && resume)
		r = run_op_locked(c, VM_OP_RESUME, &(struct op_args){ 0 }, err, errlen);
	op_release(c);
	return r;
}

static int api_restore_request(void *opaque, const struct api_restore_request *req, char *err,
			       size_t errlen)
{
	struct json_object *devices = NULL;
	struct restore_binds binds;
	struct snapshot_seal seal;
	bool have_binds = false;
	int r;

	if (snapshot_seal_from_json(req->body, false, &seal, err, errlen) < 0)
		return -EBADMSG;
	if (req->body && json_object_object_get_ex(req->body, "devices", &devices)) {
		if (bindings_from_json(devices, &binds, err, errlen) < 0) {
			snapshot_seal_wipe(&seal);
			return -EBADMSG;
		}
		have_binds = true;
	}
	if (req->n_net_fds) {
		if (!have_binds)
			binds = (struct restore_binds){ .n = 0 };
		have_binds = true;
		r = bindings_add_net_fds(&binds, req->net_fds, req->n_net_fds, err, errlen);
		if (r < 0) {
			restore_binds_free(&binds);
			snapshot_seal_wipe(&seal);
			return r == -ENOMEM ? r : -EBADMSG;
		}
	}
	r = restore_run(opaque, &(struct op_args){ .url = req->source_url,
			.binds = have_binds ? &binds : NULL, .seal = &seal,
			.mode = req->memory_restore_mode },
			req->resume, err, errlen);
	snapshot_seal_wipe(&seal);
	if (have_binds)
		restore_binds_free(&binds);
	return r;
}

static int api_shutdown_vm(void *opaque, char *err, size_t errlen)
{
	return run_op(opaque, VM_OP_SHUTDOWN, &(struct op_args){ 0 }, err, errlen);
}

static int api_create(void *opaque, struct json_object *vm_config, char *err, size_t errlen)
{
	return controller_create_json(opaque, vm_config, err, errlen);
}

static int api_boot(void *opaque, char *err, size_t errlen)
{
	return run_op(opaque, VM_OP_BOOT, &(struct op_args){ 0 }, err, errlen);
}

static int api_delete(void *opaque, char *err, size_t errlen)
{
	return run_op(opaque, VM_OP_DELETE, &(struct op_args){ 0 }, err, errlen);
}

static int api_reboot(void *opaque, char *err, size_t errlen)
{
	return run_op(opaque, VM_OP_REBOOT, &(struct op_args){ 0 }, err, errlen);
}

static int api_power_button(void *opaque, char *err, size_t errlen)
{
	return run_op(opaque, VM_OP_POWER_BUTTON, &(struct op_args){ 0 }, err, errlen);
}

static int api_shutdown_vmm(void *opaque, char *err, size_t errlen)
{
	struct controller *c = opaque;
	uint64_t one = 1;

	/* main() tears the VM down once the server has answered. */
	if (write(c->quit_efd, &one, sizeof(one)) != sizeof(one)) {
		err_set(err, errlen, "cannot signal the main loop: %m");
		return -errno;
	}
	return 0;
}

const struct api_ops controller_api_ops = {
	.info = api_info,
	.counters = api_counters,
	.create = api_create,
	.boot = api_boot,
	.delete_vm = api_delete,
	.reboot = api_reboot,
	.power_button = api_power_button,
	.restore_request = api_restore_request,
	.pause = api_pause,
	.resume = api_resume,
	.snapshot = api_snapshot,
	.snapshot_checkpoint = api_snapshot_checkpoint,
	.snapshot_sealed = api_snapshot_sealed,
	.shutdown_vm = api_shutdown_vm,
	.shutdown_vmm = api_shutdown_vmm,
};

/* ---- life of the controller ---- */

int controller_new(const struct vm_options *opts, struct event_monitor *events,
		   struct controller **ret)
{
	struct controller *c = calloc(1, sizeof(*c));
	struct tree_hooks hooks = { .event = on_event, .sink_path = on_sink_path };
	uid_t child_uid;
	gid_t child_gid;
	int r;

	if (!c)
		return -ENOMEM;
	r = spawn_setup(opts, &child_uid, &child_gid);
	if (r < 0) {
		free(c);
		return r;
	}
	pthread_mutex_init(&c->op_lock, NULL);
	pthread_mutex_init(&c->info_lock, NULL);
	c->state = VM_STATE_NOT_CREATED;
	c->op = VM_OP_COUNT;
	c->opts = opts;
	c->events = events;
	c->quit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->cancel_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->quit_efd < 0 || c->cancel_efd < 0) {
		int e = -errno;

		cleanup_closep(&c->quit_efd);
		cleanup_closep(&c->cancel_efd);
		free(c);
		return e;
	}
	hooks.opaque = c;
	bindings_set_key_path(opts->host_key);
	tree_init(&c->tree, child_uid, child_gid, c->cancel_efd, &hooks);
	*ret = c;
	return 0;
}

void controller_cancel(struct controller *c)
{
	uint64_t one = 1;

	if (c && write(c->cancel_efd, &one, sizeof(one)) != sizeof(one))
		log_error("cannot cancel the operation under way: %m");
}

void controller_free(struct controller *c)
{
	if (!c)
		return;
	controller_cancel(c);
	pthread_mutex_lock(&c->op_lock);
	/* The operation has given up; vmm-core gets its own chance to stop in order. */
	c->tree.cancel_fd = -1;
	stop_tree(c);
	tree_release(&c->tree);
	pthread_mutex_unlock(&c->op_lock);
	set_config(c, NULL);
	close(c->quit_efd);
	close(c->cancel_efd);
	free(c);
}

int controller_boot(struct controller *c, char *err, size_t errlen)
{
	struct op_args a = { .config = vmconfig_from_options(c->opts) };
	int r;

	if (!a.config)
		return -ENOMEM;
	r = run_op(c, VM_OP_CREATE, &a, err, errlen);
	if (r < 0) {
		cloister__vm_config__free_unpacked(a.config, NULL);
		return r;
	}
	return run_op(c, VM_OP_BOOT, &(struct op_args){ 0 }, err, errlen);
}

int controller_create_json(struct controller *c, struct json_object *vm_config, char *err,
			   size_t errlen)
{
	struct op_args a = { 0 };
	int r = vmconfig_from_json(vm_config, c->opts, &a.config, err, errlen);

	if (r < 0)
		return r;
	r = run_op(c, VM_OP_CREATE, &a, err, errlen);
	if (r < 0)
		cloister__vm_config__free_unpacked(a.config, NULL);
	return r;
}

int controller_run(struct controller *c, enum vm_op op, char *err, size_t errlen)
{
	return run_op(c, op, &(struct op_args){ 0 }, err, errlen);
}

int controller_restore(struct controller *c, const char *source_url, bool resume, char *err,
		       size_t errlen)
{
	struct snapshot_seal seal = { .keyed = false };
	int r = 0;

	if (c->opts->restore_key_file)
		r = snapshot_seal_key_file(c->opts->restore_key_file, seal.key, err, errlen);
	else if (c->opts->restore_key_credential)
		r = snapshot_seal_key_credential(c->opts->restore_key_credential, seal.key, err, errlen);
	seal.keyed = r == 0 && (c->opts->restore_key_file || c->opts->restore_key_credential);
	if (r == 0)
		r = restore_run(c, &(struct op_args){ .url = source_url,
				.binds = &c->opts->restore_binds,
				.mode = c->opts->restore_mode, .seal = &seal },
				resume, err, errlen);
	snapshot_seal_wipe(&seal);
	return r;
}

int controller_restore_fdstore(struct controller *c, const char *url,
			       const struct notify_passed *stored, char *err, size_t errlen)
{
	return restore_run(c, &(struct op_args){ .url = url, .binds = &c->opts->restore_binds,
			   .stored = stored }, true, err, errlen);
}

int controller_snapshot_fdstore(struct controller *c, const char *url, char *err, size_t errlen)
{
	return run_op(c, VM_OP_SNAPSHOT, &(struct op_args){ .url = url, .fdstore = true }, err,
		      errlen);
}

int controller_snapshot(struct controller *c, const char *url, char *err, size_t errlen)
{
	return run_op(c, VM_OP_SNAPSHOT, &(struct op_args){ .url = url }, err, errlen);
}

enum vm_state controller_state(struct controller *c, char *error, size_t errlen)
{
	enum vm_state s;

	pthread_mutex_lock(&c->info_lock);
	s = c->state;
	if (error && errlen)
		snprintf(error, errlen, "%s", c->error);
	pthread_mutex_unlock(&c->info_lock);
	return s;
}

bool controller_memory_paged(struct controller *c)
{
	const struct tree_paging *pg = &c->tree.paging;

	return !__atomic_load_n(&pg->active, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&pg->done, __ATOMIC_ACQUIRE);
}

int controller_quit_fd(const struct controller *c)
{
	return c->quit_efd;
}

static void tick_locked(struct controller *c)
{
	char what[160];
	int r;

	if (!tree_alive(&c->tree))
		return;
	if (tree_find_dead(&c->tree, what, sizeof(what))) {
		vm_fail(c, "%s", what);
		return;
	}
	r = tree_poll_events(&c->tree, what, sizeof(what));
	if (r < 0)
		vm_fail(c, "%s", what);
}

void controller_tick(struct controller *c)
{
	char err[256];

	/* An operation in progress watches the tree itself. */
	if (pthread_mutex_trylock(&c->op_lock) != 0)
		return;
	tick_locked(c);
	pthread_mutex_unlock(&c->op_lock);
	if (atomic_exchange(&c->reboot_pending, false) &&
	    run_op(c, VM_OP_REBOOT, &(struct op_args){ 0 }, err, sizeof(err)) == -EBUSY)
		atomic_store(&c->reboot_pending, true);
}
