/* SPDX-License-Identifier: Apache-2.0 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"

/* Far above anything the child keeps, so moving fds into place never clobbers one. */
#define SPAWN_HIGH_FD 512

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(const char *path, char *const argv[], const int *fds, size_t n_fds,
		       char *const envp[], pid_t parent)
{
	sigset_t all;
	int null_fd;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	/*
	 * A session of its own: a terminal's Ctrl-C (or a signal to the process
	 * group) reaches the gateway only, which then stops the tree in order.
	 */
	if (setsid() < 0)
		_exit(127);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	for (size_t i = 0; i < n_fds; i++)
		if (fcntl(fds[i], F_DUPFD, SPAWN_HIGH_FD + (int)i) != SPAWN_HIGH_FD + (int)i)
			_exit(127);
	for (size_t i = 0; i < n_fds; i++)
		if (dup2(SPAWN_HIGH_FD + (int)i, 3 + (int)i) < 0)
			_exit(127);
	null_fd = open("/dev/null", O_RDONLY);
	if (null_fd < 0 || dup2(null_fd, 0) < 0)
		_exit(127);
	if (syscall(SYS_close_range, 3 + n_fds, ~0u, 0) < 0)
		_exit(127);
	execve(path, argv, envp);
	_exit(127);
}

int spawn_child(const char *name, const char *path, char *const argv[], const int *fds, size_t n_fds,
		struct child *ret)
{
	static const char *const passthrough[] = { "CLOISTER_LOG", "CLOISTER_SECCOMP_TRAP", "CLOISTER_JIT" };
	char env_store[ARRAY_SIZE(passthrough)][256];
	char *envp[ARRAY_SIZE(passthrough) + 1];
	size_t n_env = 0;
	pid_t parent = getpid(), pid;
	int pidfd;

	if (n_fds > SPAWN_MAX_FDS)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(passthrough); i++) {
		const char *v = getenv(passthrough[i]);

		if (v && strlen(v) < 128) {
			snprintf(env_store[n_env], sizeof(env_store[0]), "%s=%s", passthrough[i], v);
			envp[n_env] = env_store[n_env];
			n_env++;
		}
	}
	envp[n_env] = NULL;

	pid = fork();
	if (pid < 0) {
		log_error("cannot fork %s: %m", name);
		return -errno;
	}
	if (pid == 0)
		child_exec(path, argv, fds, n_fds, envp, parent);

	pidfd = pidfd_open_(pid);
	if (pidfd < 0) {
		int err = -errno;

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return err;
	}
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	*ret = (struct child){ .pid = pid, .pidfd = pidfd, .sock = -1 };
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	log_debug("started %s as pid %d", name, (int)pid);
	return 0;
}

bool child_exited(const struct child *c)
{
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };

	if (c->pidfd < 0)
		return false;
	return poll(&p, 1, 0) == 1;
}

bool child_wait_exit(const struct child *c, int timeout_ms)
{
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };

	if (c->pidfd < 0)
		return true;
	return poll(&p, 1, timeout_ms) == 1;
}

void child_reap(struct child *c, bool kill_first, char *why, size_t whylen)
{
	siginfo_t info = { 0 };

	if (why && whylen)
		why[0] = '\0';
	if (c->pidfd >= 0) {
		if (kill_first && !child_exited(c))
			syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
		if (waitid(P_PIDFD, (id_t)c->pidfd, &info, WEXITED) == 0 && why) {
			if (info.si_code == CLD_EXITED)
				snprintf(why, whylen, "exited with status %d", info.si_status);
			else
				snprintf(why, whylen, "killed by SIG%s", sigabbrev_np(info.si_status) ?
					 sigabbrev_np(info.si_status) : "?");
		}
		close(c->pidfd);
		c->pidfd = -1;
	}
	cleanup_closep(&c->sock);
	c->sock = -1;
	c->pid = 0;
}

int helper_path(const char *subdir, const char *program, char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/%s/%s", self, subdir, program);
			if (access(buf, X_OK) == 0)
				return 0;
		}
	}
	snprintf(buf, len, "%s/%s", CLOISTER_LIBEXECDIR, program);
	if (access(buf, X_OK) == 0)
		return 0;
	log_error("cannot find the helper program %s (looked in the build tree and %s)", program,
		  CLOISTER_LIBEXECDIR);
	return -ENOENT;
}
