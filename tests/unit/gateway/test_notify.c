/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sd-daemon protocol as notify.c speaks it, heard by a NOTIFY_SOCKET
 * listener of our own; socket activation from LISTEN_FDS; and the journal
 * stream check of common/log.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

static char dir[64];
static int listener = -1;

/* A datagram socket where NOTIFY_SOCKET points, as systemd has one. */
static void listen_setup(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 2 };

	snprintf(dir, sizeof(dir), "/tmp/cloister-notify-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
	listener = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(listener, 0);
	cr_assert_eq(bind(listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
}

static void listen_teardown(void)
{
	char path[96];

	close(listener);
	snprintf(path, sizeof(path), "%s/notify", dir);
	unlink(path);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

/* The next message, or "" when none comes. */
static const char *heard(bool wait)
{
	static char buf[1024];
	ssize_t n = recv(listener, buf, sizeof(buf) - 1, wait ? 0 : MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

TestSuite(notify, .init = listen_setup, .fini = listen_teardown);

Test(notify, ready_carries_the_vm_state)
{
	cr_assert(notify_enabled());
	cr_assert_eq(notify_ready("Running"), 0);
	cr_assert_str_eq(heard(true), "READY=1\nSTATUS=VM Running");
}

Test(notify, status_follows_the_lifecycle)
{
	cr_assert_eq(notify_vm_status("Running", NULL, ""), 0);
	cr_assert_str_eq(heard(true), "STATUS=VM Running");
	cr_assert_eq(notify_vm_status("Paused", "snapshot", NULL), 0);
	cr_assert_str_eq(heard(true), "STATUS=VM Paused, snapshot under way");
	cr_assert_eq(notify_vm_status("Shutdown", "boot", "vmm-core exited with status 1"), 0);
	cr_assert_str_eq(heard(true), "STATUS=VM Shutdown: vmm-core exited with status 1");
}

/* A guest or client may put anything in an error; the status stays one bounded line. */
Test(notify, status_is_one_bounded_line)
{
	char long_error[2000];

	cr_assert_eq(notify_vm_status("Shutdown", NULL, "line\nREADY=1\x1b[31m"), 0);
	cr_assert_str_eq(heard(true), "STATUS=VM Shutdown: line READY=1 [31m");
	memset(long_error, 'x', sizeof(long_error) - 1);
	long_error[sizeof(long_error) - 1] = '\0';
	cr_assert_eq(notify_vm_status("Shutdown", NULL, long_error), 0);
	cr_assert_lt(strlen(heard(true)), 300);
}

Test(notify, stopping_and_more_time)
{
	cr_assert_eq(notify_stopping("VM saving"), 0);
	cr_assert_str_eq(heard(true), "STOPPING=1\nSTATUS=VM saving");
	cr_assert_eq(notify_extend_timeout(90000000), 0);
	cr_assert_str_eq(heard(true), "EXTEND_TIMEOUT_USEC=90000000");
}

Test(notify, silent_without_a_service_manager)
{
	unsetenv("NOTIFY_SOCKET");
	cr_assert_not(notify_enabled());
	cr_assert_eq(notify_ready("Running"), 0);
	cr_assert_eq(notify_status("VM %s", "Running"), 0);
	cr_assert_eq(notify_stopping("bye"), 0);
	cr_assert_str_eq(heard(false), "");
}

Test(notify, watchdog_every_half_interval)
{
	char pid[16];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	setenv("WATCHDOG_USEC", "60000000", 1);
	notify_watchdog_tick();
	cr_assert_str_eq(heard(true), "WATCHDOG=1");
	/* Not due again for 30 s. */
	notify_watchdog_tick();
	cr_assert_str_eq(heard(false), "");
}

Test(notify, watchdog_for_another_process_is_not_ours)
{
	setenv("WATCHDOG_PID", "1", 1);
	setenv("WATCHDOG_USEC", "60000000", 1);
	notify_watchdog_tick();
	cr_assert_str_eq(heard(false), "");
}

/* ---- socket activation, in a child: fd 3 is the passed socket there ---- */

enum passed { PASSED_LISTENING, PASSED_DGRAM, PASSED_NOT_LISTENING };

static int make_socket(enum passed kind, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, kind == PASSED_DGRAM ? SOCK_DGRAM : SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	if (kind == PASSED_LISTENING && listen(fd, 4) < 0)
		return -1;
	return fd;
}

/*
 * In a child: fd 3 a socket of kind bound to path, LISTEN_* as given
 * (pid 0: our own); returns notify_listen_fd()'s result, 100 + the fd, or
 * 99 when the variables outlived the call.
 */
static int activation(enum passed kind, const char *path, const char *expected, int pid,
		      const char *n_fds)
{
	pid_t child = fork();
	int status;

	cr_assert_geq(child, 0);
	if (child == 0) {
		char err[256] = "", pidstr[16];
		int fd = make_socket(kind, path), got = -1, r;

		if (fd < 0 || dup2(fd, 3) < 0)
			_exit(98);
		snprintf(pidstr, sizeof(pidstr), "%d", pid ? pid : (int)getpid());
		setenv("LISTEN_PID", pidstr, 1);
		setenv("LISTEN_FDS", n_fds, 1);
		setenv("LISTEN_FDNAMES", "api", 1);
		r = notify_listen_fd(expected, &got, err, sizeof(err));
		if (getenv("LISTEN_FDS") || getenv("LISTEN_PID") || getenv("LISTEN_FDNAMES"))
			_exit(99);
		if (r < 0)
			_exit(r == -EINVAL && err[0] ? 1 : 97);
		_exit(got < 0 ? 0 : 100 + got);
	}
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

Test(notify, a_passed_listening_socket_is_the_api_socket)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/api.sock", dir);
	cr_assert_eq(activation(PASSED_LISTENING, path, path, 0, "1"), 103);
	cr_assert_eq(activation(PASSED_LISTENING, path, NULL, 0, "1"), 103);
}

Test(notify, sockets_for_another_process_are_not_taken)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/api.sock", dir);
	cr_assert_eq(activation(PASSED_LISTENING, path, path, 1, "1"), 0);
}

Test(notify, wrong_sockets_are_refused)
{
	char path[96], other[96];

	snprintf(path, sizeof(path), "%s/api.sock", dir);
	snprintf(other, sizeof(other), "%s/other.sock", dir);
	cr_assert_eq(activation(PASSED_LISTENING, path, other, 0, "1"), 1, "bound elsewhere");
	cr_assert_eq(activation(PASSED_DGRAM, path, path, 0, "1"), 1, "a datagram socket");
	cr_assert_eq(activation(PASSED_NOT_LISTENING, path, path, 0, "1"), 1, "not listening");
	cr_assert_eq(activation(PASSED_LISTENING, path, path, 0, "2"), 1, "two sockets");
	cr_assert_eq(activation(PASSED_LISTENING, path, path, 0, "x"), 1, "a bad count");
	unlink(path);
}

Test(notify, no_activation_without_listen_fds)
{
	int fd = 1234;
	char err[64];

	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	cr_assert_eq(notify_listen_fd("/run/x.sock", &fd, err, sizeof(err)), 0);
	cr_assert_eq(fd, -1);
}

/* ---- common/log.c: lines get priorities only on the journal's own stream ---- */

Test(journal, stream_named_by_dev_and_inode)
{
	char path[] = "/tmp/cloister-journal-XXXXXX", env[64];
	struct stat st;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(fstat(fd, &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	cr_assert(log_journal_stream_matches(env, fd));
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	cr_assert_not(log_journal_stream_matches(env, fd));
	cr_assert_not(log_journal_stream_matches(NULL, fd));
	cr_assert_not(log_journal_stream_matches("", fd));
	cr_assert_not(log_journal_stream_matches("12:34:56", fd));
	cr_assert_not(log_journal_stream_matches("12:34x", fd));
	close(fd);
}

Test(journal, priority_prefix_on_the_journal_stream)
{
	int p[2];
	char env[128], buf[256] = "";
	struct stat st;
	ssize_t n;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(fstat(p[1], &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	cr_assert_geq(dup2(p[1], STDERR_FILENO), 0);
	log_set_tag("rng0");
	log_error("bad %s", "thing");
	log_info("fine");
	n = read(p[0], buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	snprintf(env, sizeof(env), "<3>rng0[%d]: error: bad thing\n<6>rng0[%d]: info: fine\n",
		 (int)getpid(), (int)getpid());
	cr_assert_str_eq(buf, env);
}

Test(notify, stopping_alone_keeps_the_last_status)
{
	cr_assert_eq(notify_stopping(NULL), 0);
	cr_assert_str_eq(heard(true), "STOPPING=1");
}

/* ---- the fd store: the message and the fd that travels with it ---- */

Test(notify, fdstore_put_sends_the_fd_with_its_name)
{
	char buf[256] = "", cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	struct stat a, b;
	int memfd = memfd_create("region-0", MFD_CLOEXEC), got;
	ssize_t n;

	cr_assert_geq(memfd, 0);
	cr_assert_eq(notify_fdstore_put("region-0", memfd), 0);
	n = recvmsg(listener, &mh, MSG_CMSG_CLOEXEC);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_assert_str_eq(buf, "FDSTORE=1\nFDNAME=region-0");
	cm = CMSG_FIRSTHDR(&mh);
	cr_assert_not_null(cm);
	cr_assert_eq(cm->cmsg_type, SCM_RIGHTS);
	memcpy(&got, CMSG_DATA(cm), sizeof(got));
	cr_assert_eq(fstat(memfd, &a), 0);
	cr_assert_eq(fstat(got, &b), 0);
	cr_assert(a.st_dev == b.st_dev && a.st_ino == b.st_ino, "another file came with the message");
	close(got);
	close(memfd);
}

Test(notify, fdstore_remove_names_the_fd)
{
	cr_assert_eq(notify_fdstore_remove("region-1"), 0);
	cr_assert_str_eq(heard(true), "FDSTOREREMOVE=1\nFDNAME=region-1");
}

/* A name is one plain word: no newline may smuggle another assignment in. */
Test(notify, fdstore_refuses_bad_names_and_fds)
{
	char long_name[NOTIFY_FDNAME_MAX + 2];

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	cr_assert_eq(notify_fdstore_put("region-0\nREADY=1", 0), -EINVAL);
	cr_assert_eq(notify_fdstore_put("", 0), -EINVAL);
	cr_assert_eq(notify_fdstore_put(NULL, 0), -EINVAL);
	cr_assert_eq(notify_fdstore_put(long_name, 0), -EINVAL);
	cr_assert_eq(notify_fdstore_put("region:0", 0), -EINVAL);
	cr_assert_eq(notify_fdstore_put("region-0", -1), -EINVAL);
	cr_assert_eq(notify_fdstore_put("region-0", 999), -EINVAL);
	cr_assert_eq(notify_fdstore_remove("a b"), -EINVAL);
	cr_assert_str_eq(heard(false), "");
}

/* ---- the fd store on the way back: LISTEN_FDNAMES sorts the API socket from stored fds ---- */

/*
 * In a child: fd 3 a listening socket at path, fd 4 a memfd, LISTEN_FDNAMES
 * names; with_store: notify_listen_fds(), 0 when it found the API socket at
 * fd 3 and region-0 at fd 4; without: notify_listen_fd(), 0 when it kept
 * fd 3 and closed fd 4. 1 when refused, other codes for other outcomes.
 */
static int activation_named(const char *path, const char *names, bool with_store)
{
	pid_t child = fork();
	int status;

	cr_assert_geq(child, 0);
	if (child == 0) {
		struct notify_passed p;
		char err[256] = "", pidstr[16];
		int sock = make_socket(PASSED_LISTENING, path), mem = memfd_create("m", 0), fd = -1, r;

		if (sock < 0 || mem < 0 || dup2(sock, 3) < 0 || dup2(mem, 4) < 0)
			_exit(98);
		close(sock);
		close(mem);
		snprintf(pidstr, sizeof(pidstr), "%d", (int)getpid());
		setenv("LISTEN_PID", pidstr, 1);
		setenv("LISTEN_FDS", "2", 1);
		setenv("LISTEN_FDNAMES", names, 1);
		if (!with_store) {
			r = notify_listen_fd(path, &fd, err, sizeof(err));
			if (r < 0)
				_exit(1);
			_exit(fd == 3 && fcntl(4, F_GETFD) < 0 ? 0 : 2);
		}
		r = notify_listen_fds(path, &p, err, sizeof(err));
		if (r < 0)
			_exit(1);
		if (p.api_fd != 3 || p.n_stored != 1 || p.stored_fd[0] != 4 ||
		    strcmp(p.stored_name[0], "region-0") != 0)
			_exit(3);
		notify_passed_close(&p);
		_exit(fcntl(3, F_GETFD) < 0 && fcntl(4, F_GETFD) < 0 ? 0 : 4);
	}
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

Test(notify, stored_fds_come_back_by_name)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/api.sock", dir);
	cr_assert_eq(activation_named(path, "api:region-0", true), 0);
	/* Names go by position: a memfd named api is not made the API socket. */
	cr_assert_eq(activation_named(path, "region-0:api", true), 1);
	/* fd 4 is a memfd: as a second API socket it is refused. */
	cr_assert_eq(activation_named(path, "api:api", true), 1);
	cr_assert_eq(activation_named(path, "api", true), 1, "names and fds disagree");
}

Test(notify, stored_fds_nobody_restores_from_are_released)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/api.sock", dir);
	cr_assert_eq(activation_named(path, "api:region-0", false), 0);
	cr_assert_str_eq(heard(true), "FDSTOREREMOVE=1\nFDNAME=region-0");
}

/* stderr made the journal stream JOURNAL_STREAM names, as systemd sets it up. */
static void journal_stderr(void)
{
	char env[64];
	struct stat st;
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(fstat(p[1], &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	cr_assert_geq(dup2(p[1], STDERR_FILENO), 0);
	log_set_tag("cloister");
}

#define PREFIX(s) log_journal_prefix(s, strlen(s))

Test(journal, relayed_lines_keep_their_level)
{
	journal_stderr();
	cr_assert_str_eq(PREFIX("vmm[3]: error: the guest failed"), "<3>");
	cr_assert_str_eq(PREFIX("rng0[4]: warn: slow"), "<4>");
	cr_assert_str_eq(PREFIX("snapshotd[5]: info: saved"), "<6>");
	cr_assert_str_eq(PREFIX("vmm[3]: debug: tick"), "<7>");
	/* A child cannot pick a priority of its own. */
	cr_assert_str_eq(PREFIX("<0>vmm[3]: info: emergency?"), "<6>");
	cr_assert_str_eq(PREFIX("vmm[3]: errors: not a level"), "<6>");
	cr_assert_str_eq(PREFIX("no tag at all"), "<6>");
	cr_assert_str_eq(log_journal_prefix("vmm[3]: error: x", 8), "<6>", "the level past len");
}

Test(journal, no_prefix_off_the_journal)
{
	unsetenv("JOURNAL_STREAM");
	log_set_tag("cloister");
	cr_assert_str_eq(PREFIX("vmm[3]: error: the guest failed"), "");
}
