/* SPDX-License-Identifier: Apache-2.0 */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

/*
 * Allowlists: one array of syscall names per role on top of a common base, so
 * adding a syscall is one line. Names the running architecture lacks (poll on
 * aarch64, ...) are skipped. Calls whose arguments are checked (fcntl, mmap,
 * mprotect, clone, kill, tgkill) have their own rules below and must not
 * appear here.
 */
static const char *const base_syscalls[] = {
	/* glibc runtime: malloc, stdio on fds we hold, exit */
	"brk", "munmap", "mremap", "madvise",
	"futex", "rt_sigreturn", "rt_sigprocmask", "rt_sigaction",
	"exit", "exit_group", "restart_syscall",
	"clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
	"getpid", "gettid",
	"getrandom", /* malloc's tcache seeds itself with it */
	"close", "fstat", "newfstatat", "lseek",
	"read", "write", "readv", "writev", "pread64", "pwrite64",
	/* the frame sockets and eventfds we were handed */
	"poll", "ppoll", "recvmsg", "sendmsg", "recvfrom", "sendto",
	"dup", "dup3",
	/*
	 * Changes only where this process's own signal handlers run; the
	 * sanitizers' runtime sets and clears one on every thread.
	 */
	"sigaltstack",
};

static const char *const vmm_syscalls[] = {
	/* vCPU threads (clone is checked below) */
	"set_robust_list", "rseq", "sched_yield", "sched_getaffinity",
	/* guest memory and kicks */
	"memfd_create", "ftruncate", "eventfd2",
	"timerfd_create", "timerfd_settime", "timerfd_gettime",
	/* virtio-mmio waits on device sockets and call eventfds */
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	/* cutting off a device that broke the protocol, so a late answer is never misread */
	"shutdown",
};

static const char *const snapshotd_syscalls[] = {
	/*
	 * Worker threads (clone is checked below) that read, check and write
	 * chunks on every CPU during a Copy restore, a verify or a save; the
	 * sanitizers' pthread_create asks for the new thread's CPU mask.
	 */
	"set_robust_list", "rseq", "sched_getaffinity",
	"fsync", "fdatasync", "ftruncate", "fallocate",
	/* a region file's pages handed to the disk while the next chunks are hashed */
	"sync_file_range",
	/* copying a region memfd into its file without a bounce buffer */
	"copy_file_range", "sendfile",
	/* a fresh nonce for every sealed chunk, and the snapshot id */
	"getrandom",
};

static const char *const device_rng_syscalls[] = {
	"getrandom",
};

/* A disk image: reads, writes and flushes on the fd it was handed. */
static const char *const device_blk_syscalls[] = {
	"preadv", "pwritev", "fdatasync", "fsync",
	/* discard and write zeroes: hole punching and zeroing ranges */
	"fallocate",
};

/* A tap: frames are read and written on the fd it was handed. */
static const char *const device_net_syscalls[] = {
	"readv", "writev",
};

/* A console's host end (file, terminal or pty): read and written as handed. */
static const char *const device_console_syscalls[] = {
	"readv", "writev",
};

/*
 * userfaultfd ioctls, by command and nothing else. A process that maps guest
 * memory makes its uffd from the /dev/userfaultfd fd the gateway handed it
 * and registers its own mapping (OnDemand restore); snapshotd, the page
 * server, fills, wakes and finally unregisters through the uffds it was
 * handed. No role may open /dev/userfaultfd or call userfaultfd(2).
 */
static const unsigned long uffd_client_ioctls[] = {
	USERFAULTFD_IOC_NEW, UFFDIO_API, UFFDIO_REGISTER,
};

static const unsigned long uffd_server_ioctls[] = {
	UFFDIO_COPY, UFFDIO_WAKE, UFFDIO_UNREGISTER,
};

struct role_policy {
	const char *const *names;
	size_t n_names;
	bool threads; /* may create threads and signal itself */
	const unsigned long *ioctls;
	size_t n_ioctls;
};

static const struct role_policy role_policies[] = {
	[SANDBOX_ROLE_VMM] = { vmm_syscalls, ARRAY_SIZE(vmm_syscalls), true,
			       uffd_client_ioctls, ARRAY_SIZE(uffd_client_ioctls) },
	[SANDBOX_ROLE_SNAPSHOTD] = { snapshotd_syscalls, ARRAY_SIZE(snapshotd_syscalls), true,
				     uffd_server_ioctls, ARRAY_SIZE(uffd_server_ioctls) },
	[SANDBOX_ROLE_DEVICE_RNG] = { device_rng_syscalls, ARRAY_SIZE(device_rng_syscalls), false,
				      uffd_client_ioctls, ARRAY_SIZE(uffd_client_ioctls) },
	[SANDBOX_ROLE_DEVICE_BLK] = { device_blk_syscalls, ARRAY_SIZE(device_blk_syscalls), false,
				      uffd_client_ioctls, ARRAY_SIZE(uffd_client_ioctls) },
	[SANDBOX_ROLE_DEVICE_NET] = { device_net_syscalls, ARRAY_SIZE(device_net_syscalls), false,
				      uffd_client_ioctls, ARRAY_SIZE(uffd_client_ioctls) },
	[SANDBOX_ROLE_DEVICE_CONSOLE] = { device_console_syscalls,
					  ARRAY_SIZE(device_console_syscalls), false,
					  uffd_client_ioctls, ARRAY_SIZE(uffd_client_ioctls) },
};

static const int fcntl_cmds[] = {
	F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_ADD_SEALS, F_GET_SEALS, F_DUPFD_CLOEXEC,
};

/* pthread_create's flags always include these; fork-like clones lack CLONE_THREAD/CLONE_VM. */
#define THREAD_CLONE_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD)

static int allow_names(scmp_filter_ctx ctx, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		int r;

		if (nr == __NR_SCMP_ERROR)
			continue;
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0) {
			log_error("seccomp: cannot allow %s: %s", names[i], strerror(-r));
			return r;
		}
	}
	return 0;
}

static int allow_fcntl(scmp_filter_ctx ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(fcntl_cmds); i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
					 SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)fcntl_cmds[i], 0));

		if (r < 0)
			return r;
	}
	return 0;
}

static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *cmds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)cmds[i]));

		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * No mapping is made executable once a process is confined: vmm-core maps
 * its translator's code buffers before (rv64_jit_prepare()).
 */
static int allow_memory(scmp_filter_ctx ctx)
{
	int r;

	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
			     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r < 0)
		return r;
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
}

/*
 * clone3 passes its flags in memory the filter cannot read, so it fails with
 * ENOSYS and glibc falls back to clone, whose flags we can check. Signals
 * (vCPU kicks) may only target this process.
 */
static int allow_threads(scmp_filter_ctx ctx)
{
	scmp_datum_t pid = (scmp_datum_t)getpid();
	int r;

	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r < 0)
		return r;
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
			     SCMP_A0(SCMP_CMP_MASKED_EQ, THREAD_CLONE_FLAGS, THREAD_CLONE_FLAGS));
	if (r < 0)
		return r;
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, pid, 0));
	if (r < 0)
		return r;
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_EQ, pid, 0));
}

/* Names for the SIGSYS handler, resolved up front because it may not allocate. */
#define TRAP_MAX_NR 512
static const char *trap_names[TRAP_MAX_NR];

static void trap_write(const char *s)
{
	(void)!write(STDERR_FILENO, s, strlen(s));
}

static void trap_sigsys(int sig, siginfo_t *info, void *uctx)
{
	char num[24];
	char *p = num + sizeof(num);
	unsigned int nr = (unsigned int)info->si_syscall;
	const char *name = nr < TRAP_MAX_NR && trap_names[nr] ? trap_names[nr] : "?";

	*--p = '\0';
	do
		*--p = (char)('0' + nr % 10);
	while ((nr /= 10) && p > num);
	trap_write("seccomp: forbidden syscall ");
	trap_write(name);
	trap_write(" (");
	trap_write(p);
	trap_write(")\n");
	_exit(159);
}

static int trap_install(void)
{
	struct sigaction sa = {
		.sa_sigaction = trap_sigsys,
		.sa_flags = SA_SIGINFO,
	};

	for (int nr = 0; nr < TRAP_MAX_NR; nr++)
		if (!trap_names[nr])
			trap_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return -errno;
	return 0;
}

static bool trap_flag;

void seccomp_policy_trap(void)
{
	trap_flag = true;
}

/*
 * The flag comes from the command line (the gateway's --seccomp-trap). The
 * variable serves tests that start a child themselves: the gateway hands
 * its children an environment without it.
 */
static bool trap_requested(void)
{
	const char *env = getenv("CLOISTER_SECCOMP_TRAP");

	return trap_flag || (env && strcmp(env, "1") == 0);
}

static int policy_build(scmp_filter_ctx ctx, const struct role_policy *policy)
{
	int r;

	r = allow_names(ctx, base_syscalls, ARRAY_SIZE(base_syscalls));
	if (r < 0)
		return r;
	r = allow_names(ctx, policy->names, policy->n_names);
	if (r < 0)
		return r;
	r = allow_fcntl(ctx);
	if (r < 0)
		return r;
	r = allow_memory(ctx);
	if (r < 0)
		return r;
	r = allow_ioctls(ctx, policy->ioctls, policy->n_ioctls);
	if (r == 0 && policy->threads)
		r = allow_threads(ctx);
	return r;
}

int seccomp_policy_load(enum sandbox_role role)
{
	bool trap = trap_requested();
	scmp_filter_ctx ctx;
	int r;

	if ((unsigned int)role >= ARRAY_SIZE(role_policies))
		return -EINVAL;
	if (trap) {
		log_warn("seccomp: trap mode, forbidden syscalls are reported, not killed");
		r = trap_install();
		if (r < 0)
			return r;
	}
	ctx = seccomp_init(trap ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return -ENOMEM;
	r = policy_build(ctx, &role_policies[role]);
	/* Threads that already exist must not keep running unfiltered. */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0)
		log_error("seccomp: loading the policy failed: %s", strerror(-r));
	return r;
}
