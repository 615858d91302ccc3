/* SPDX-License-Identifier: Apache-2.0 */
#include "sandbox.h"

#include <cap-ng.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "policy.h"

#define SANDBOX_NOBODY 65534u
/* vmm-core holds a memfd per region, eventfds per queue and a socket per device. */
#define SANDBOX_NOFILE_VMM 256u
#define SANDBOX_NOFILE 64u
/* An existing directory to hide under the empty root; it is only covered in our own namespace. */
#define SANDBOX_EMPTY_DIR "/tmp"

static const char *const role_names[] = {
	[SANDBOX_ROLE_VMM] = "vmm",
	[SANDBOX_ROLE_SNAPSHOTD] = "snapshotd",
	[SANDBOX_ROLE_DEVICE_RNG] = "device-rng",
	[SANDBOX_ROLE_DEVICE_BLK] = "device-blk",
	[SANDBOX_ROLE_DEVICE_NET] = "device-net",
	[SANDBOX_ROLE_DEVICE_CONSOLE] = "device-console",
};

/* Parses a decimal id; (uid_t)-1 means "unchanged" to the kernel, and 0 is root. */
static int parse_id(const char *s, unsigned int *ret)
{
	unsigned long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v >= UINT_MAX)
		return -EINVAL;
	*ret = (unsigned int)v;
	return 0;
}

/* Matches "--name N" or "--name=N"; returns how many argv slots it used, 0 if not this option. */
static int match_id_option(int argc, char **argv, int i, const char *name, unsigned int *ret)
{
	size_t len = strlen(name);
	const char *arg = argv[i];

	if (strncmp(arg, name, len) != 0)
		return 0;
	if (arg[len] == '=')
		return parse_id(arg + len + 1, ret) < 0 ? -EINVAL : 1;
	if (arg[len] != '\0')
		return 0;
	if (i + 1 >= argc)
		return -EINVAL;
	return parse_id(argv[i + 1], ret) < 0 ? -EINVAL : 2;
}

int sandbox_parse_args(int argc, char **argv, struct sandbox_config *cfg, int *ret_optind)
{
	unsigned int uid = SANDBOX_NOBODY, gid = SANDBOX_NOBODY;
	bool trap = false;
	_cleanup_free_ char **opts = NULL;
	_cleanup_free_ char **rest = NULL;
	int n_opts = 0, n_rest = 0;
	bool done = false;

	if (argc < 1 || !argv || !cfg || !ret_optind)
		return -EINVAL;
	opts = calloc((size_t)argc, sizeof(char *));
	rest = calloc((size_t)argc, sizeof(char *));
	if (!opts || !rest)
		return -ENOMEM;
	for (int i = 1; i < argc; i++) {
		int used = 0;

		if (!done && strcmp(argv[i], "--") == 0) {
			done = true;
			opts[n_opts++] = argv[i];
			continue;
		}
		if (done || argv[i][0] != '-' || argv[i][1] == '\0') {
			rest[n_rest++] = argv[i];
			continue;
		}
		if (strcmp(argv[i], "--seccomp-trap") == 0) {
			trap = true;
			used = 1;
		}
		if (used == 0)
			used = match_id_option(argc, argv, i, "--uid", &uid);
		if (used == 0)
			used = match_id_option(argc, argv, i, "--gid", &gid);
		if (used <= 0) {
			log_error("sandbox: bad or unknown option '%s'", argv[i]);
			return -EINVAL;
		}
		for (int k = 0; k < used; k++)
			opts[n_opts++] = argv[i + k];
		i += used - 1;
	}
	/* Options first, then operands in their order, as GNU getopt leaves them. */
	memcpy(argv + 1, opts, (size_t)n_opts * sizeof(char *));
	memcpy(argv + 1 + n_opts, rest, (size_t)n_rest * sizeof(char *));
	cfg->uid = uid;
	cfg->gid = gid;
	cfg->seccomp_trap = trap;
	*ret_optind = 1 + n_opts;
	return 0;
}

static int set_limit(int resource, rlim_t value)
{
	struct rlimit rl = { .rlim_cur = value, .rlim_max = value };

	return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

static int sandbox_limits(enum sandbox_role role)
{
	int r;

	r = set_limit(RLIMIT_CORE, 0);
	if (r == 0)
		r = set_limit(RLIMIT_NOFILE,
			      role == SANDBOX_ROLE_VMM ? SANDBOX_NOFILE_VMM : SANDBOX_NOFILE);
	/*
	 * A thread counts as a process, so only the single-threaded roles get
	 * this; vmm-core and snapshotd (worker threads) rely on seccomp, which
	 * lets clone make threads only.
	 */
	if (r == 0 && role != SANDBOX_ROLE_VMM && role != SANDBOX_ROLE_SNAPSHOTD)
		r = set_limit(RLIMIT_NPROC, 0);
	if (r < 0)
		log_error("sandbox: setrlimit failed: %s", strerror(-r));
	return r;
}

/* Private namespaces and an empty, read-only root. Must run single-threaded. */
static int sandbox_empty_root(void)
{
	const char *step;

	step = "unshare";
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET) < 0)
		goto fail;
	step = "making / private";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		goto fail;
	step = "mounting the empty root";
	if (mount("cloister-empty", SANDBOX_EMPTY_DIR, "tmpfs",
		  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0)
		goto fail;
	step = "chroot";
	if (chdir(SANDBOX_EMPTY_DIR) < 0 || chroot(".") < 0 || chdir("/") < 0)
		goto fail;
	return 0;
fail:
	log_error("sandbox: %s failed: %s", step, strerror(errno));
	return -errno;
}

/*
 * Dropping the bounding set needs CAP_SETPCAP, which setresuid() takes away,
 * so it goes first; the uid change then empties the other sets and the final
 * apply makes sure of it.
 */
static int sandbox_drop_bounding(void)
{
	int r;

	capng_clear(CAPNG_SELECT_ALL);
	r = capng_apply(CAPNG_SELECT_BOUNDS);
	if (r < 0) {
		log_error("sandbox: dropping the capability bounding set failed (%d)", r);
		return -EPERM;
	}
	return 0;
}

static int sandbox_change_ids(uid_t uid, gid_t gid)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
		int r = -errno;

		log_error("sandbox: switching to %u:%u failed: %s", (unsigned)uid, (unsigned)gid,
			  strerror(-r));
		return r;
	}
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 ||
	    ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid) {
		log_error("sandbox: ids did not change to %u:%u", (unsigned)uid, (unsigned)gid);
		return -EPERM;
	}
	return 0;
}

static int sandbox_drop_caps(void)
{
	int r;

	capng_clear(CAPNG_SELECT_BOTH);
	r = capng_apply(CAPNG_SELECT_CAPS);
	if (r == 0)
		r = capng_get_caps_process();
	if (r < 0 || capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE) {
		log_error("sandbox: capabilities are still held (%d)", r);
		return -EPERM;
	}
	return 0;
}

static int sandbox_root_steps(const struct sandbox_config *cfg)
{
	int r;

	if (cfg->uid == 0 || cfg->gid == 0) {
		log_error("sandbox: refusing to stay root (uid %u gid %u)", (unsigned)cfg->uid,
			  (unsigned)cfg->gid);
		return -EINVAL;
	}
	r = sandbox_empty_root();
	if (r == 0)
		r = sandbox_drop_bounding();
	if (r == 0)
		r = sandbox_change_ids(cfg->uid, cfg->gid);
	return r;
}

/*
 * The kernel forgets the parent-death signal when the uid changes, so it is
 * set again once every id and capability change is done. A parent that died
 * meanwhile left us with another parent: then we go at once.
 */
static int sandbox_rearm_parent_death(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		int r = -errno;

		log_error("sandbox: PR_SET_PDEATHSIG failed: %s", strerror(-r));
		return r;
	}
	if (getppid() != parent) {
		log_error("sandbox: the parent is gone");
		return -ESRCH;
	}
	return 0;
}

int sandbox_enter(const struct sandbox_config *cfg)
{
	/* Until the uid changes, the signal set at spawn still kills us with the parent. */
	pid_t parent = getppid();
	int r;

	if (!cfg || (unsigned int)cfg->role >= ARRAY_SIZE(role_names))
		return -EINVAL;
	r = sandbox_limits(cfg->role);
	if (r < 0)
		return r;
	if (geteuid() == 0) {
		r = sandbox_root_steps(cfg);
		if (r < 0)
			return r;
	} else {
		log_info("sandbox: not root, keeping uid %u and the host's namespaces",
			 (unsigned)geteuid());
	}
	r = sandbox_drop_caps();
	if (r == 0)
		r = sandbox_rearm_parent_death(parent);
	if (r < 0)
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		log_error("sandbox: PR_SET_NO_NEW_PRIVS failed: %s", strerror(-r));
		return r;
	}
	if (cfg->seccomp_trap)
		seccomp_policy_trap();
	r = seccomp_policy_load(cfg->role);
	if (r < 0)
		return r;
	log_info("sandbox: %s confined", role_names[cfg->role]);
	return 0;
}
