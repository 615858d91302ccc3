/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "sandbox.h"

#define NOBODY 65534

typedef int (*child_fn)(void *arg);

/*
 * Forks a child that enters role's sandbox and then runs fn, whose return
 * value becomes its exit status (100 when sandbox_enter() itself failed).
 * Returns the raw wait status.
 */
static int run_sandboxed(enum sandbox_role role, child_fn fn, void *arg)
{
	struct sandbox_config cfg = { .role = role, .uid = NOBODY, .gid = NOBODY };
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (sandbox_enter(&cfg) < 0)
			_exit(100);
		_exit(fn(arg));
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return status;
}

static void assert_exit_ok(int status)
{
	cr_assert(WIFEXITED(status), "child died by signal %d", WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "child exited %d", WEXITSTATUS(status));
}

static void assert_killed_by_seccomp(int status, const char *what)
{
	cr_assert(WIFSIGNALED(status), "%s: child was not killed (exit %d)", what,
		  WEXITSTATUS(status));
	cr_assert_eq(WTERMSIG(status), SIGSYS, "%s: killed by %d", what, WTERMSIG(status));
}

/* ---- allowed work ---- */

static int common_work(void)
{
	char *p = malloc(1 << 20);
	void *big;
	int fd;

	if (!p)
		return 1;
	memset(p, 0x5a, 1 << 20);
	free(p);
	big = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (big == MAP_FAILED || munmap(big, 4096) < 0)
		return 2;
	fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || fcntl(fd, F_GETFD) < 0 || close(fd) < 0)
		return 3;
	return 0;
}

static void *thread_body(void *arg)
{
	*(int *)arg = 42;
	return NULL;
}

static int vmm_work(void *arg)
{
	struct itimerspec its = { .it_value = { .tv_nsec = 1000000 } };
	pthread_t t;
	uint64_t v = 1;
	int value = 0;
	int mem, ev, tfd;
	char *ram;

	if (common_work())
		return 1;
	mem = memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mem < 0 || ftruncate(mem, 1 << 16) < 0)
		return 2;
	ram = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
	if (ram == MAP_FAILED)
		return 3;
	ram[100] = 7;
	if (fcntl(mem, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return 4;
	ev = eventfd(0, EFD_CLOEXEC);
	if (ev < 0 || write(ev, &v, 8) != 8 || read(ev, &v, 8) != 8)
		return 5;
	if (pthread_create(&t, NULL, thread_body, &value) || pthread_join(t, NULL) || value != 42)
		return 6;
	if (kill(getpid(), 0) < 0 || syscall(SYS_tgkill, getpid(), gettid(), 0) < 0)
		return 7;
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0 || read(tfd, &v, 8) != 8)
		return 8;
	return 0;
}

static int snapshotd_work(void *arg)
{
	int fd = *(int *)arg;
	char buf[5] = { 0 };
	pthread_t t;
	int value = 0;
	char *map;

	if (common_work())
		return 1;
	if (pwrite(fd, "state", 5, 0) != 5 || fsync(fd) < 0 || fdatasync(fd) < 0)
		return 2;
	if (ftruncate(fd, 8192) < 0 || fallocate(fd, 0, 0, 8192) < 0)
		return 3;
	map = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED || memcmp(map, "state", 5) != 0)
		return 4;
	if (lseek(fd, 0, SEEK_SET) != 0 || read(fd, buf, 5) != 5)
		return 5;
	/* Worker threads for a restore's or a save's chunks (fork stays forbidden). */
	if (pthread_create(&t, NULL, thread_body, &value) || pthread_join(t, NULL) || value != 42)
		return 6;
	return 0;
}

static int rng_work(void *arg)
{
	int ev = *(int *)arg;
	struct pollfd pfd = { .fd = ev, .events = POLLIN };
	struct timespec zero = { 0 };
	uint8_t random[64];
	uint64_t v = 3;

	if (common_work())
		return 1;
	if (getrandom(random, sizeof(random), 0) != sizeof(random))
		return 2;
	if (write(ev, &v, 8) != 8 || ppoll(&pfd, 1, &zero, NULL) != 1 || read(ev, &v, 8) != 8)
		return 3;
	return v == 3 ? 0 : 4;
}

Test(sandbox, vmm_allowed_work)
{
	assert_exit_ok(run_sandboxed(SANDBOX_ROLE_VMM, vmm_work, NULL));
}

Test(sandbox, snapshotd_allowed_work)
{
	int fd = memfd_create("snapshot-file", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	assert_exit_ok(run_sandboxed(SANDBOX_ROLE_SNAPSHOTD, snapshotd_work, &fd));
	close(fd);
}

Test(sandbox, rng_allowed_work)
{
	int ev = eventfd(0, EFD_CLOEXEC);

	cr_assert_geq(ev, 0);
	assert_exit_ok(run_sandboxed(SANDBOX_ROLE_DEVICE_RNG, rng_work, &ev));
	close(ev);
}

/* ---- forbidden calls ---- */

static int do_socket(void *arg)
{
	return socket(AF_UNIX, SOCK_STREAM, 0) >= 0 ? 0 : 1;
}

static int do_openat(void *arg)
{
	return openat(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY) >= 0 ? 0 : 1;
}

static int do_execve(void *arg)
{
	static char *const argv[] = { "/bin/true", NULL };

	execve(argv[0], argv, NULL);
	return 1;
}

static int do_ptrace(void *arg)
{
	return ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : 1;
}

static int do_fork(void *arg)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return pid > 0 ? 0 : 1;
}

static int do_kill_other(void *arg)
{
	return kill(1, 0) == 0 ? 0 : 1;
}

static int do_exec_mapping(void *arg)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p != MAP_FAILED ? 0 : 1;
}

static int do_wx_mapping(void *arg)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	return p != MAP_FAILED ? 0 : 1;
}

static int do_mprotect_exec(void *arg)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 2;
	return mprotect(p, 4096, PROT_READ | PROT_EXEC) == 0 ? 0 : 1;
}

static int do_ioctl(void *arg)
{
	int n;

	return ioctl(STDERR_FILENO, FIONREAD, &n) == 0 ? 0 : 1;
}

static int do_fcntl_setown(void *arg)
{
	return fcntl(STDERR_FILENO, F_SETOWN, getpid()) == 0 ? 0 : 1;
}

static int do_memfd(void *arg)
{
	return memfd_create("x", 0) >= 0 ? 0 : 1;
}

static int do_thread(void *arg)
{
	pthread_t t;
	int value = 0;

	return pthread_create(&t, NULL, thread_body, &value) == 0 ? 0 : 1;
}

static const struct {
	const char *name;
	child_fn fn;
} forbidden_everywhere[] = {
	{ "socket", do_socket },
	{ "openat", do_openat },
	{ "execve", do_execve },
	{ "ptrace", do_ptrace },
	{ "fork", do_fork },
	{ "mmap PROT_EXEC", do_exec_mapping },
	{ "mmap writable and executable", do_wx_mapping },
	{ "mprotect PROT_EXEC", do_mprotect_exec },
	{ "ioctl", do_ioctl },
	{ "fcntl F_SETOWN", do_fcntl_setown },
};

static void assert_forbidden_everywhere(enum sandbox_role role)
{
	for (size_t i = 0; i < ARRAY_SIZE(forbidden_everywhere); i++)
		assert_killed_by_seccomp(run_sandboxed(role, forbidden_everywhere[i].fn, NULL),
					 forbidden_everywhere[i].name);
}

Test(sandbox, vmm_forbidden)
{
	assert_forbidden_everywhere(SANDBOX_ROLE_VMM);
	assert_killed_by_seccomp(run_sandboxed(SANDBOX_ROLE_VMM, do_kill_other, NULL), "kill(1)");
}

Test(sandbox, snapshotd_forbidden)
{
	assert_forbidden_everywhere(SANDBOX_ROLE_SNAPSHOTD);
	assert_killed_by_seccomp(run_sandboxed(SANDBOX_ROLE_SNAPSHOTD, do_memfd, NULL), "memfd");
}

Test(sandbox, rng_forbidden)
{
	assert_forbidden_everywhere(SANDBOX_ROLE_DEVICE_RNG);
	assert_killed_by_seccomp(run_sandboxed(SANDBOX_ROLE_DEVICE_RNG, do_memfd, NULL), "memfd");
	/* Threads are for vmm-core and snapshotd only. */
	assert_killed_by_seccomp(run_sandboxed(SANDBOX_ROLE_DEVICE_RNG, do_thread, NULL), "thread");
	assert_killed_by_seccomp(run_sandboxed(SANDBOX_ROLE_DEVICE_RNG, do_kill_other, NULL),
				 "kill(1)");
}

/*
 * OnDemand restore: the uffd ioctls each role needs pass the filter (on
 * stderr, which is no uffd, they fail with ENOTTY: the filter let them
 * through), and the other side's are still killed.
 */
static int do_uffd_ioctl(void *arg)
{
	unsigned long cmd = *(unsigned long *)arg;
	char buf[64] = { 0 };

	return ioctl(STDERR_FILENO, cmd, buf) < 0 && errno == ENOTTY ? 0 : 1;
}

Test(sandbox, uffd_ioctls_by_role)
{
	unsigned long client[] = { USERFAULTFD_IOC_NEW, UFFDIO_API, UFFDIO_REGISTER };
	unsigned long server[] = { UFFDIO_COPY, UFFDIO_WAKE, UFFDIO_UNREGISTER };
	enum sandbox_role clients[] = { SANDBOX_ROLE_VMM, SANDBOX_ROLE_DEVICE_RNG,
					SANDBOX_ROLE_DEVICE_BLK };

	for (size_t r = 0; r < ARRAY_SIZE(clients); r++) {
		for (size_t i = 0; i < ARRAY_SIZE(client); i++)
			assert_exit_ok(run_sandboxed(clients[r], do_uffd_ioctl, &client[i]));
		assert_killed_by_seccomp(run_sandboxed(clients[r], do_uffd_ioctl, &server[0]),
					 "UFFDIO_COPY outside snapshotd");
	}
	for (size_t i = 0; i < ARRAY_SIZE(server); i++)
		assert_exit_ok(run_sandboxed(SANDBOX_ROLE_SNAPSHOTD, do_uffd_ioctl, &server[i]));
	assert_killed_by_seccomp(run_sandboxed(SANDBOX_ROLE_SNAPSHOTD, do_uffd_ioctl, &client[2]),
				 "UFFDIO_REGISTER in snapshotd");
}

/* ---- the development trap ---- */

Test(sandbox, trap_mode_names_the_syscall)
{
	char *argv[] = { "rng", "--uid", "65534", "--seccomp-trap", "--gid", "65534", NULL };
	struct sandbox_config cfg = { .role = SANDBOX_ROLE_DEVICE_RNG };
	char out[4096] = { 0 };
	int optind_;
	size_t len = 0;
	int pipefd[2];
	int status;
	ssize_t n;
	pid_t pid;

	/* The flag, as the gateway's --seccomp-trap passes it to every child. */
	cr_assert_eq(sandbox_parse_args(6, argv, &cfg, &optind_), 0);
	cr_assert(cfg.seccomp_trap);
	cr_assert_eq(optind_, 6);
	cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		unsetenv("CLOISTER_SECCOMP_TRAP");
		if (sandbox_enter(&cfg) < 0)
			_exit(100);
		socket(AF_INET, SOCK_DGRAM, 0);
		_exit(0);
	}
	close(pipefd[1]);
	while (len < sizeof(out) - 1 && (n = read(pipefd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	close(pipefd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 159, "exit %d, output: %s", WEXITSTATUS(status), out);
	cr_assert_not_null(strstr(out, "seccomp: forbidden syscall socket ("), "output: %s", out);
}

/* ---- what a root-started child looks like from outside ---- */

struct parked_child {
	pid_t pid;
	int release; /* closing it lets the child exit */
};

static int park(void *arg)
{
	int *fds = arg;
	char c;

	close(fds[0]);
	close(fds[3]);
	if (write(fds[1], "r", 1) != 1)
		return 1;
	return read(fds[2], &c, 1) == 0 ? 0 : 2;
}

/* Starts a child that sandboxes itself and then waits until released. */
static struct parked_child park_child(enum sandbox_role role)
{
	struct sandbox_config cfg = { .role = role, .uid = NOBODY, .gid = NOBODY };
	int fds[4];
	char c;
	pid_t pid;

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(fds + 2, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (sandbox_enter(&cfg) < 0)
			_exit(100);
		_exit(park(fds));
	}
	close(fds[1]);
	close(fds[2]);
	cr_assert_eq(read(fds[0], &c, 1), 1, "child did not get through sandbox_enter");
	close(fds[0]);
	return (struct parked_child){ .pid = pid, .release = fds[3] };
}

static void release_child(struct parked_child *child)
{
	int status;

	close(child->release);
	cr_assert_eq(waitpid(child->pid, &status, 0), child->pid);
	assert_exit_ok(status);
}

static char *read_proc(pid_t pid, const char *what)
{
	char path[64], *buf = calloc(1, 16384);
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	while ((n = read(fd, buf + len, 16383 - len)) > 0)
		len += (size_t)n;
	close(fd);
	return buf;
}

static void assert_status_line(const char *status, const char *line)
{
	cr_assert_not_null(strstr(status, line), "missing '%s' in:\n%s", line, status);
}

static void assert_no_groups(const char *status)
{
	const char *line = strstr(status, "\nGroups:");

	cr_assert_not_null(line);
	line += strlen("\nGroups:");
	cr_assert_eq(strspn(line, " \t"), strcspn(line, "\n"), "supplementary groups kept: %.40s",
		     line);
}

static void skip_unless_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root");
}

static void assert_confined_as_root(enum sandbox_role role, const char *nofile)
{
	struct parked_child child;
	_cleanup_free_ char *status = NULL;
	_cleanup_free_ char *netdev = NULL;
	_cleanup_free_ char *limits = NULL;
	char root[64];
	struct dirent *de;
	DIR *d;

	skip_unless_root();
	child = park_child(role);
	status = read_proc(child.pid, "status");
	assert_status_line(status, "\nSeccomp:\t2\n");
	assert_status_line(status, "\nNoNewPrivs:\t1\n");
	assert_status_line(status, "\nCapPrm:\t0000000000000000\n");
	assert_status_line(status, "\nCapEff:\t0000000000000000\n");
	assert_status_line(status, "\nCapBnd:\t0000000000000000\n");
	assert_status_line(status, "\nCapAmb:\t0000000000000000\n");
	assert_status_line(status, "\nUid:\t65534\t65534\t65534\t65534\n");
	assert_status_line(status, "\nGid:\t65534\t65534\t65534\t65534\n");
	assert_no_groups(status);

	/* /proc/PID/net follows the child's network namespace */
	netdev = read_proc(child.pid, "net/dev");
	cr_assert_not_null(strstr(netdev, "lo:"), "%s", netdev);
	for (char *line = strchr(netdev, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
		if (strchr(line + 1, ':') && !strstr(line + 1, "|"))
			cr_assert(strncmp(line + 1 + strspn(line + 1, " "), "lo:", 3) == 0,
				  "interface besides lo: %s", netdev);
	}

	limits = read_proc(child.pid, "limits");
	cr_assert_not_null(strstr(limits, nofile), "%s", limits);
	cr_assert(strstr(limits, "Max core file size        0 ") != NULL, "%s", limits);

	snprintf(root, sizeof(root), "/proc/%d/root/", (int)child.pid);
	d = opendir(root);
	cr_assert_not_null(d, "opendir %s: %s", root, strerror(errno));
	while ((de = readdir(d)))
		cr_assert(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0,
			  "root is not empty: %s", de->d_name);
	closedir(d);
	release_child(&child);
}

Test(sandbox, root_vmm_confined)
{
	assert_confined_as_root(SANDBOX_ROLE_VMM, "Max open files            256 ");
}

Test(sandbox, root_snapshotd_confined)
{
	assert_confined_as_root(SANDBOX_ROLE_SNAPSHOTD, "Max open files            64 ");
}

Test(sandbox, root_rng_confined)
{
	assert_confined_as_root(SANDBOX_ROLE_DEVICE_RNG, "Max open files            64 ");
}

/* A child started by an unprivileged user still gets no_new_privs and seccomp. */
Test(sandbox, unprivileged_start)
{
	struct sandbox_config cfg = { .role = SANDBOX_ROLE_DEVICE_RNG, .uid = NOBODY, .gid = NOBODY };
	int status;
	pid_t pid;

	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
				       setresuid(NOBODY, NOBODY, NOBODY) < 0))
			_exit(101);
		if (sandbox_enter(&cfg) < 0)
			_exit(100);
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
			_exit(102);
		socket(AF_UNIX, SOCK_STREAM, 0);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	assert_killed_by_seccomp(status, "socket after unprivileged sandbox");
}

Test(sandbox, refuses_to_stay_root)
{
	struct sandbox_config cfg = { .role = SANDBOX_ROLE_VMM, .uid = 0, .gid = 0 };
	int status;
	pid_t pid;

	skip_unless_root();
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(sandbox_enter(&cfg) == -EINVAL ? 0 : 1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	assert_exit_ok(status);
}

Test(sandbox, bad_role)
{
	struct sandbox_config cfg = { .role = (enum sandbox_role)17 };

	cr_assert_eq(sandbox_enter(&cfg), -EINVAL);
}

/* ---- argument parsing ---- */

Test(sandbox_args, options_anywhere)
{
	char *argv[] = { "prog", "fd3", "--uid", "1000", "x", "--gid=1001", "y", NULL };
	struct sandbox_config cfg = { .role = SANDBOX_ROLE_VMM };
	int optind = -1;

	cr_assert_eq(sandbox_parse_args(7, argv, &cfg, &optind), 0);
	cr_assert_eq(cfg.uid, 1000);
	cr_assert_eq(cfg.gid, 1001);
	cr_assert_eq(cfg.role, SANDBOX_ROLE_VMM);
	cr_assert_eq(optind, 4);
	cr_assert_str_eq(argv[0], "prog");
	cr_assert_str_eq(argv[4], "fd3");
	cr_assert_str_eq(argv[5], "x");
	cr_assert_str_eq(argv[6], "y");
}

Test(sandbox_args, defaults_to_nobody)
{
	char *argv[] = { "prog", "a", NULL };
	struct sandbox_config cfg = { 0 };
	int optind = -1;

	cr_assert_eq(sandbox_parse_args(2, argv, &cfg, &optind), 0);
	cr_assert_eq(cfg.uid, NOBODY);
	cr_assert_eq(cfg.gid, NOBODY);
	cr_assert_eq(optind, 1);
}

Test(sandbox_args, double_dash_ends_options)
{
	char *argv[] = { "prog", "--uid", "5", "--", "--gid", NULL };
	struct sandbox_config cfg = { 0 };
	int optind = -1;

	cr_assert_eq(sandbox_parse_args(5, argv, &cfg, &optind), 0);
	cr_assert_eq(cfg.uid, 5);
	cr_assert_eq(cfg.gid, NOBODY);
	cr_assert_eq(optind, 4);
	cr_assert_str_eq(argv[4], "--gid");
}

Test(sandbox_args, junk_refused)
{
	static const char *const bad[][3] = {
		{ "--uid", NULL },	 { "--uid", "" },	{ "--uid", "abc" },
		{ "--uid", "12x" },	 { "--uid", "-1" },	{ "--uid", "0" },
		{ "--gid", "4294967295" }, { "--uid", "99999999999" }, { "--frobnicate", "1" },
		{ "--uidx=3", NULL },	 { "-u", "3" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *argv[4] = { "prog", (char *)bad[i][0], (char *)bad[i][1], NULL };
		int argc = bad[i][1] ? 3 : 2;
		struct sandbox_config cfg = { .uid = 7, .gid = 7 };
		int optind = -1;

		cr_assert_eq(sandbox_parse_args(argc, argv, &cfg, &optind), -EINVAL, "case %zu", i);
		cr_assert_eq(optind, -1);
		cr_assert_eq(cfg.uid, 7);
	}
}

/* ---- the parent-death signal survives the uid change ---- */

/* B of parent A: confines itself, says so, then waits on block until killed. */
static void orphan_to_be(int ready, int block)
{
	struct sandbox_config cfg = { .role = SANDBOX_ROLE_DEVICE_RNG, .uid = NOBODY, .gid = NOBODY };
	char c;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || sandbox_enter(&cfg) < 0)
		_exit(100);
	if (write(ready, "r", 1) != 1)
		_exit(101);
	(void)!read(block, &c, 1);
	_exit(0);
}

Test(sandbox, confined_child_dies_with_its_parent)
{
	int ready[2], block[2];
	struct pollfd p;
	char c;
	pid_t a;

	skip_unless_root();
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(block), 0);
	a = fork();
	cr_assert_geq(a, 0);
	if (a == 0) {
		pid_t b = fork();

		if (b == 0) {
			close(ready[0]);
			close(block[1]);
			orphan_to_be(ready[1], block[0]);
		}
		for (;;)
			pause();
	}
	close(ready[1]);
	close(block[0]);
	cr_assert_eq(read(ready[0], &c, 1), 1, "the child did not confine itself");
	kill(a, SIGKILL);
	cr_assert_eq(waitpid(a, NULL, 0), a);
	/* Once B is gone nobody holds the write end: EOF. */
	p = (struct pollfd){ .fd = ready[0], .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 5000), 1, "the confined child outlived its parent");
	cr_assert_eq(read(ready[0], &c, 1), 0);
	close(ready[0]);
	close(block[1]);
}
