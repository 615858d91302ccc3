/* SPDX-License-Identifier: Apache-2.0 */
/* Starting and ending the gateway's children. */
#ifndef CLOISTER_SPAWN_H
#define CLOISTER_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "options.h"

#define SPAWN_MAX_FDS 16

struct child {
	char name[48];		/* for logs: "vmm-core", "rng0", "snapshotd" */
	pid_t pid;
	int pidfd;		/* -1 when no process */
	int sock;		/* the gateway's end of its control socket, or -1 */
	uint64_t awaited_id;	/* the request a reply is awaited for; 0 when none */
};

/*
 * Once, before the first child: remembers --seccomp-trap (then every child
 * gets the flag), starts the thread that copies the children's stderr to
 * ours line by line, and picks the identity of the VM's processes: as root
 * and without --sandbox-user, a uid (= gid) from --sandbox-uid-range that
 * no other running cloister holds (a lock under /run/cloister/uids) and no
 * account has; else the --sandbox-user one. 0 or -errno (logged).
 */
int spawn_setup(const struct vm_options *o, uid_t *ret_uid, gid_t *ret_gid);

/*
 * fork+exec of path with argv; fds[i] lands on fd 3 + i in the child and
 * every other fd above 2 is closed. stdin and stdout are /dev/null, stderr
 * a pipe the gateway relays to its own (once spawn_setup() ran). The child
 * is killed if the gateway dies. The environment is empty but for
 * CLOISTER_LOG and CLOISTER_JIT.
 */
int spawn_child(const char *name, const char *path, char *const argv[], const int *fds, size_t n_fds,
		struct child *ret);

/* True when the child has exited (its pidfd is readable). */
bool child_exited(const struct child *c);

/* Kills (SIGKILL) unless already gone, reaps, closes everything. Fills why (if not NULL)
 * with how it ended, e.g. "exited with status 1" or "killed by SIGSYS". */
void child_reap(struct child *c, bool kill_first, char *why, size_t whylen);

/* Waits up to timeout_ms for a child to exit by itself; true when it did. */
bool child_wait_exit(const struct child *c, int timeout_ms);

/* Where the helper programs are: next to a build-tree cloister, else the libexec dir. */
int helper_path(const char *subdir, const char *program, char *buf, size_t len);

#endif
