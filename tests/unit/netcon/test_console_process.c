/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real cloister-console, sandboxed as in production, driven over the
 * device protocol by hand: a host end that is a full pipe holds the
 * guest's transmit queue, and nothing is lost across pause, save and
 * resume. A forbidden syscall on any of these paths would kill the
 * process and fail the test.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "harness.h"

#define V1 (1ull << VIRTIO_F_VERSION_1)
#define TXQ 1u
#define CHAIN 32768u
#define N_CHAINS 8u

static pid_t child;
static int out_rd;

/* Execs $CLOISTER_CONSOLE with sock on fd 3 and host on fd 4. */
static pid_t spawn_console(int sock, int host)
{
	char *args[] = { "cloister-console", "con0", "--uid", "65534", "--gid", "65534", NULL };
	const char *prog = getenv("CLOISTER_CONSOLE");
	pid_t pid;

	cr_assert_not_null(prog, "CLOISTER_CONSOLE must name the program");
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int s = fcntl(sock, F_DUPFD, 10), o = fcntl(host, F_DUPFD, 10);

		if (s < 0 || o < 0 || dup2(s, 3) < 0 || dup2(o, 4) < 0)
			_exit(127);
		execv(prog, args);
		_exit(127);
	}
	return pid;
}

/* A 4 KiB pipe, already full: returns the filler bytes in it, the write end in *ret_wr. */
static size_t full_pipe(int *ret_wr)
{
	static const uint8_t filler[4096] = { [0 ... 4095] = 'F' };
	size_t n = 0;
	ssize_t w;
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_geq(fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
	cr_assert_eq(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
	while ((w = write(p[1], filler, sizeof(filler))) > 0)
		n += (size_t)w;
	out_rd = p[0];
	*ret_wr = p[1];
	return n;
}

static void start(int host)
{
	int sv[2];

	signal(SIGPIPE, SIG_IGN);
	memset(&h, 0, sizeof(h));
	h.memfd = memfd_create("guest", MFD_CLOEXEC);
	cr_assert(h.memfd >= 0);
	cr_assert_eq(ftruncate(h.memfd, GM_SIZE), 0);
	h.host = mmap(NULL, GM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd, 0);
	cr_assert(h.host != MAP_FAILED);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	child = spawn_console(sv[1], host);
	close(sv[1]);
	close(host);
	h.core = sv[0];
	cr_assert_eq(frame_hello_send(h.core, CLOISTER__ROLE__ROLE_VMM), 0);
	cr_assert_eq(frame_hello_expect(h.core, CLOISTER__ROLE__ROLE_DEVICE, 5000), 0);
	cr_assert_eq(frame_recv_timeout(h.core, 5000, &h.info_env, NULL, 0, NULL), 0);
	cr_assert_eq(h.info_env->msg_case, CLOISTER__ENVELOPE__MSG_DEV_INFO);
	h_send_memory();
}

static void finish(void)
{
	int status;

	close(h.core);
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the console must exit cleanly, not be killed (status %#x)", status);
	frame_free(h.info_env);
	munmap(h.host, GM_SIZE);
	close(h.memfd);
	close(out_rd);
}

static void print_chains(void)
{
	uint8_t *p = gp(GM_BUFS);

	for (size_t i = 0; i < (size_t)N_CHAINS * CHAIN; i++)
		p[i] = (uint8_t)(i % 251);
	for (uint16_t c = 0; c < N_CHAINS; c++) {
		g_desc(TXQ, c, GM_BUFS + (uint64_t)c * CHAIN, CHAIN, 0, 0);
		g_avail(TXQ, c);
	}
	h_kick(TXQ);
}

static void expect_output(size_t filler, size_t total)
{
	uint8_t *got = malloc(filler + total + 1);
	struct pollfd p = { .fd = out_rd, .events = POLLIN };
	size_t n = 0;

	while (n < filler + total + 1 && poll(&p, 1, 1000) == 1) {
		ssize_t r = read(out_rd, got + n, filler + total + 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	cr_assert_eq(n, filler + total, "every byte arrives once: got %zu of %zu", n,
		     filler + total);
	for (size_t i = 0; i < total; i++)
		cr_assert_eq(got[filler + i], (uint8_t)(i % 251), "byte %zu out of order", i);
	free(got);
}

Test(console_process, full_host_end_loses_nothing_across_a_pause, .timeout = 30)
{
	Cloister__Envelope *reply;
	int host;
	size_t filler = full_pipe(&host);

	start(host);
	cr_assert_eq(h_activate(V1), 0);
	print_chains();
	/* 64 KiB held in the device: two chains back, the third held, five still queued. */
	cr_assert(h_wait_for(g_used_idx(TXQ) == 2));
	usleep(50 * 1000);
	cr_assert_eq(g_used_idx(TXQ), 2, "the device takes nothing it has no room for");
	cr_assert_eq(h_counter("tx_bytes"), 2 * CHAIN);
	cr_assert_eq(h_pause(), 0);
	cr_assert_eq(h_pause(), 0, "a second pause is a no-op");
	reply = h_save();
	cr_assert_eq(reply->dev_save_reply->error, 0);
	cr_assert_eq(reply->dev_save_reply->state->queues[1]->last_avail_idx, 2,
		     "the held chain is the guest's again in the saved queue");
	cr_assert_eq(reply->dev_save_reply->state->blob.len, 17 + 2 * CHAIN);
	frame_free(reply);
	cr_assert_eq(h_resume(), 0);
	cr_assert_eq(h_resume(), 0, "resume while active is a no-op");
	expect_output(filler, (size_t)N_CHAINS * CHAIN);
	cr_assert(h_wait_for(g_used_idx(TXQ) == N_CHAINS));
	cr_assert_eq(h_counter("tx_bytes"), (uint64_t)N_CHAINS * CHAIN);
	finish();
}

Test(console_process, refusals_leave_it_serving, .timeout = 30)
{
	int host;
	uint8_t blob[17] = { 2 };

	(void)full_pipe(&host);
	start(host);
	cr_assert_eq(h_activate(V1), 0);
	cr_assert_eq(h_activate(V1), -EBUSY, "already active");
	cr_assert_eq(h_restore("console", "con0", blob, sizeof(blob)), -EBUSY,
		     "no restore while running");
	cr_assert_eq(h_simple(CLOISTER__ENVELOPE__MSG_CORE_START), -EPERM);
	cr_assert_eq(h_counter("rx_bytes"), 0);
	cr_assert_eq(h_pause(), 0);
	cr_assert_eq(h_restore("console", "con0", blob, sizeof(blob)), 0);
	cr_assert_eq(h_resume(), 0);
	finish();
}
