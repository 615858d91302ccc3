/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one way a child process (vmm-core, snapshotd, a device) confines itself,
 * before it reads any input: rlimits, then (as root) private namespaces, an
 * empty root, an unprivileged uid and no capabilities, then no_new_privs and
 * the role's seccomp allowlist.
 */
#ifndef CLOISTER_SANDBOX_H
#define CLOISTER_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

enum sandbox_role {
	SANDBOX_ROLE_VMM,
	SANDBOX_ROLE_SNAPSHOTD,
	SANDBOX_ROLE_DEVICE_RNG,
	SANDBOX_ROLE_DEVICE_BLK,
	SANDBOX_ROLE_DEVICE_NET,
	SANDBOX_ROLE_DEVICE_CONSOLE,
};

struct sandbox_config {
	enum sandbox_role role;
	uid_t uid; /* uid/gid used only when running as root */
	gid_t gid;
	bool seccomp_trap; /* --seccomp-trap: report a forbidden syscall, do not kill silently */
};

/*
 * Parses the common child options --uid N --gid N (also --uid=N) and
 * --seccomp-trap (anywhere in
 * argv; "--" ends options) and, like GNU getopt, permutes argv so that the
 * operands come last, in order: *ret_optind = index of the first of them.
 * cfg->uid/gid default to 65534 (nobody) when absent; cfg->role is untouched.
 * -EINVAL on junk: an unknown option, a missing, non-decimal or zero id.
 */
int sandbox_parse_args(int argc, char **argv, struct sandbox_config *cfg, int *ret_optind);

/*
 * Call it before creating any thread (unshare() of the mount namespace needs a
 * single-threaded caller) and after closing every fd the child must not keep.
 * Returns 0 or -errno; a child that gets an error must exit.
 */
int sandbox_enter(const struct sandbox_config *cfg);

#endif
