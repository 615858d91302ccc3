/* SPDX-License-Identifier: Apache-2.0 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"

/* Far above anything the child keeps, so moving fds into place never clobbers one. */
#define SPAWN_HIGH_FD 512
/* One lock file per uid in use by a running cloister's children. */
#define SPAWN_UID_LOCK_DIR "/run/cloister/uids"
#define LOG_LINE_MAX 1024

static bool seccomp_trap;
/* The write end every child's stderr is; the gateway reads the other. */
static int log_pipe_w = -1;
static int uid_lock_fd = -1;

/* ---- the children's log ---- */

/* A child's bytes are not trusted on the operator's terminal: control characters become '?'. */
static void log_emit(char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
		else if ((unsigned char)line[i] == 0x7f)
			line[i] = '?';
	line[len] = '\n';
	/* One writev per line, so relayed lines do not interleave with the gateway's. */
	(void)!writev(STDERR_FILENO, (struct iovec[]){
		{ .iov_base = (void *)log_journal_prefix(line, len),
		  .iov_len = strlen(log_journal_prefix(line, len)) },
		{ .iov_base = line, .iov_len = len + 1 } }, 2);
}

static void *log_relay(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[LOG_LINE_MAX + 1];
	size_t len = 0;

	for (;;) {
		ssize_t n = read(fd, buf + len, LOG_LINE_MAX - len);
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		for (size_t i = 0; i < len; i++)
			if (buf[i] == '\n') {
				log_emit(buf + start, i - start);
				start = i + 1;
			}
		memmove(buf, buf + start, len - start);
		len -= start;
		/* A line longer than the buffer goes out in pieces. */
		if (len == LOG_LINE_MAX) {
			log_emit(buf, len);
			len = 0;
		}
	}
	close(fd);
	return NULL;
}

static int log_relay_start(void)
{
	pthread_attr_t attr;
	pthread_t thread;
	int p[2], r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&thread, &attr, log_relay, (void *)(intptr_t)p[0]);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		close(p[0]);
		close(p[1]);
		return r;
	}
	log_pipe_w = p[1];
	return 0;
}

/* ---- one identity per VM ---- */

static int mkdir_private(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
		return -EPERM;
	return 0;
}

/* Holds uid's lock file for the life of the gateway; -EBUSY when another cloister has it. */
static int uid_try_claim(int dirfd, uid_t uid)
{
	char name[16];
	int fd;

	snprintf(name, sizeof(name), "%u", (unsigned)uid);
	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -EBUSY;
	}
	return fd;
}

/*
 * A uid (the gid is the same number) from the range that no other running
 * cloister holds and no account has, so one VM's children can signal no
 * other VM's, nor any other process running as nobody.
 */
static int uid_claim(uid_t first, uint32_t count, uid_t *ret)
{
	_cleanup_close_ int dirfd = -1;
	uint32_t start;

	if (mkdir_private("/run/cloister") < 0 || mkdir_private(SPAWN_UID_LOCK_DIR) < 0)
		return -EPERM;
	dirfd = open(SPAWN_UID_LOCK_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	/* Starting anywhere keeps gateways started together from contending for one lock. */
	if (getrandom(&start, sizeof(start), 0) != sizeof(start))
		start = (uint32_t)getpid();
	for (uint32_t i = 0; i < count && i < 4096; i++) {
		uid_t uid = first + (uid_t)((start + i) % count);
		int fd;

		if (getpwuid(uid) || getgrgid((gid_t)uid))
			continue;
		fd = uid_try_claim(dirfd, uid);
		if (fd == -EBUSY)
			continue;
		if (fd < 0)
			return fd;
		uid_lock_fd = fd;
		*ret = uid;
		return 0;
	}
	return -EUSERS;
}

int spawn_setup(const struct vm_options *o, uid_t *ret_uid, gid_t *ret_gid)
{
	uid_t uid = o->child_uid;
	gid_t gid = o->child_gid;
	int r;

	seccomp_trap = o->seccomp_trap;
	if (geteuid() == 0 && !o->sandbox_user_given && o->uid_range_count) {
		r = uid_claim(o->uid_range_first, o->uid_range_count, &uid);
		if (r < 0) {
			log_error("cannot claim a uid for the VM's processes from %u-%u: %s",
				  (unsigned)o->uid_range_first,
				  (unsigned)(o->uid_range_first + o->uid_range_count - 1), strerror(-r));
			return r;
		}
		gid = (gid_t)uid;
		log_info("the VM's processes run as uid and gid %u", (unsigned)uid);
	}
	r = log_relay_start();
	if (r < 0) {
		log_error("cannot start relaying the children's log: %s", strerror(-r));
		return r;
	}
	*ret_uid = uid;
	*ret_gid = gid;
	return 0;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(const char *path, char *const argv[], const int *fds, size_t n_fds,
		       char *const envp[], pid_t parent, int log_fd)
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
	/* Not the operator's terminal: nothing in, nothing out, the log through the gateway. */
	null_fd = open("/dev/null", O_RDWR);
	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0)
		_exit(127);
	if (log_fd >= 0 && dup2(log_fd, 2) < 0)
		_exit(127);
	if (syscall(SYS_close_range, 3 + n_fds, ~0u, 0) < 0)
		_exit(127);
	execve(path, argv, envp);
	_exit(127);
}

int spawn_child(const char *name, const char *path, char *const argv[], const int *fds, size_t n_fds,
		struct child *ret)
{
	static const char *const passthrough[] = { "CLOISTER_LOG", "CLOISTER_JIT" };
	char env_store[ARRAY_SIZE(passthrough)][256];
	char *envp[ARRAY_SIZE(passthrough) + 1];
	char *args[64];
	size_t n_env = 0, n_args = 0;
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
	while (argv[n_args] && n_args < ARRAY_SIZE(args) - 2) {
		args[n_args] = argv[n_args];
		n_args++;
	}
	if (argv[n_args])
		return -E2BIG;
	if (seccomp_trap)
		args[n_args++] = "--seccomp-trap";
	args[n_args] = NULL;

	pid = fork();
	if (pid < 0) {
		log_error("cannot fork %s: %m", name);
		return -errno;
	}
	if (pid == 0)
		child_exec(path, args, fds, n_fds, envp, parent, log_pipe_w);

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
