/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A VM's process tree as the gateway holds it: vmm-core, one process per
 * device, and the sinks the gateway keeps for them; and how the gateway
 * talks to its children: one request, one reply matched by request id,
 * with vmm-core's events served while it waits.
 */
#ifndef CLOISTER_TREE_H
#define CLOISTER_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cloister.pb-c.h"
#include "layout.h"
#include "save_progress.h"
#include "sink.h"
#include "spawn.h"

struct restore_binds;

#define TREE_MAX_DEVICES LAYOUT_VIRTIO_SLOTS
#define TREE_CALL_TIMEOUT_MS 10000

struct tree_hooks {
	void *opaque;
	/* An event vmm-core sent; it may stop the tree (tree_reap). */
	void (*event)(void *opaque, const Cloister__Event *ev);
	/* A sink got a path only known now (a new pty): the VM's config shows it. */
	void (*sink_path)(void *opaque, Cloister__SerialConfig *s, const char *path);
};

/* What the page server of an OnDemand restore last said. */
struct tree_paging {
	bool active;		/* a page server runs (or ran) for this VM */
	bool done;		/* every page present, snapshot files closed */
	uint64_t present, total;
	char error[256];	/* why paging failed, or "" */
	/* The working set it reported when done, for the VM's next snapshots (op thread only). */
	uint64_t *ws;
	size_t n_ws;
};

/* The page server's bound (snapshotd/working_set.h WS_MAX_BLOCKS). */
#define TREE_WORKING_SET_MAX 16384u

struct vm_tree {
	struct child core;
	/* snapshotd, kept as the page server of an OnDemand restore */
	struct child pager;
	struct tree_paging paging;
	/* A snapshot's save under way: how far snapshotd has got (vm.info). */
	struct save_progress saving;
	struct child devs[TREE_MAX_DEVICES];
	size_t n_devs;
	/* What the gateway holds for the VM's sinks: a pty's slave, a socket's relay. */
	struct sink serial_sink, console_sink;
	uid_t child_uid;
	gid_t child_gid;
	/* Readable once the gateway is stopping: every wait gives up at once. */
	int cancel_fd;
	uint64_t last_request_id;
	struct tree_hooks hooks;
	/*
	 * NICs the restorer bound to tap descriptors (vm.restore's net_fds): the
	 * tree keeps its own copies for the VM's life, so that every start
	 * (the restore, a reboot) puts the NIC on that tap, never on a name.
	 */
	struct tree_tap_fd {
		char id[33];
		int fd;
	} tap_fds[TREE_MAX_DEVICES];
	size_t n_tap_fds;
};

void tree_init(struct vm_tree *t, uid_t child_uid, gid_t child_gid, int cancel_fd,
	       const struct tree_hooks *hooks);

/* Takes over ch (snapshotd, now serving guest memory) as the VM's page server. */
void tree_adopt_pager(struct vm_tree *t, struct child *ch);

/* Reads what the page server sent since (progress, an error); never blocks. */
void tree_pager_drain(struct vm_tree *t);

/* paging.c: tells the page server the VM runs now (its prefetch of the rest starts soon). */
void tree_pager_resumed(struct vm_tree *t);
/*
 * Has the page server bring every page in now, and waits until it has
 * (0 at once without one): a snapshot must not read a missing page as zero.
 * -EIO/-ECHILD when it failed or died, -ETIMEDOUT, -ECANCELED; err says why.
 */
int tree_pager_finish(struct vm_tree *t, int timeout_ms, char *err, size_t errlen);
/* Keeps (a copy of) the working set the page server reported; too long: ignored. */
void tree_paging_keep_working_set(struct vm_tree *t, const uint64_t *blocks, size_t n);
void tree_paging_drop_working_set(struct vm_tree *t);

/* Whether vmm-core runs (the tree exists). */
bool tree_alive(const struct vm_tree *t);

/*
 * vmm-core configured for config (a fresh boot, or ready for a restore), its
 * devices attached. Host resources are opened here; on restore they must
 * match the snapshot. On failure the caller reaps the tree.
 */
int tree_start(struct vm_tree *t, Cloister__VmConfig *config, bool restore, char *err,
	       size_t errlen);

/* Guest memory a restore from the fd store brings: a read-write and a read-only fd per region. */
struct tree_memory {
	const int *rw, *ro;
	size_t n;
};

/*
 * As tree_start() for a restore, but vmm-core maps mem (which holds the
 * guest) instead of making fresh memory; the fds stay the caller's.
 */
int tree_start_kept(struct vm_tree *t, Cloister__VmConfig *config, const struct tree_memory *mem,
		    char *err, size_t errlen);

/*
 * Keeps a copy of each tap descriptor binds names (restore_bind.has_tap_fd)
 * for the VM from now on, instead of those kept before. -errno with err set.
 */
int tree_keep_tap_fds(struct vm_tree *t, const struct restore_binds *binds, char *err,
		      size_t errlen);

/* Stops every process (SIGKILL unless kill_first is false and they are gone). */
void tree_reap(struct vm_tree *t, bool kill_first);
/* Also lets go of the sinks and the kept tap descriptors. */
void tree_release(struct vm_tree *t);

/* A child that died: true with what says who and how. */
bool tree_find_dead(struct vm_tree *t, char *what, size_t len);

/*
 * Spawns helper program (found under subdir in the build tree, else in
 * libexecdir) as a sandboxed child of this VM, with a fresh control socket
 * on its fd 3 and extra fds after it.
 */
int tree_spawn_helper(struct vm_tree *t, struct child *ch, const char *name, const char *subdir,
		      const char *program, const char *const *args, const int *extra, size_t n_extra,
		      char *err, size_t errlen);

/* Hello both ways on ch's socket; the peer must have role. */
int tree_handshake(struct child *ch, Cloister__Role role, char *err, size_t errlen);

/* Sends env to ch with a fresh request id, which the reply must echo. */
int tree_send(struct vm_tree *t, struct child *ch, Cloister__Envelope *env, const int *fds,
	      size_t n_fds, char *err, size_t errlen);

/*
 * Waits for ch's answer to the last request tree_send() sent it, serving
 * vmm-core's events meanwhile. A reply to an earlier request (one that
 * timed out) is dropped. Returns 0 with *ret_env set, -ETIMEDOUT,
 * -ECANCELED when the gateway is stopping, -ECHILD when ch (or the VM) is
 * gone; err says which.
 */
int tree_wait_reply(struct vm_tree *t, struct child *ch, int timeout_ms,
		    Cloister__Envelope **ret_env, char *err, size_t errlen);

/* tree_send(), then a Reply: its error (message in err). */
int tree_call(struct vm_tree *t, struct child *ch, Cloister__Envelope *env, const int *fds,
	      size_t n_fds, int timeout_ms, char *err, size_t errlen);

/* A request to vmm-core that carries nothing but its kind. */
int tree_core_simple(struct vm_tree *t, Cloister__Envelope__MsgCase what, char *err, size_t errlen);

/*
 * Serves what vmm-core sent unasked (events) without blocking. -EPROTO or
 * -ECHILD (err set) when it broke the protocol or went away.
 */
int tree_poll_events(struct vm_tree *t, char *err, size_t errlen);

#endif
