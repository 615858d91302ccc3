/* SPDX-License-Identifier: Apache-2.0 */
/* The bound on guest-triggered log lines, on a clock the test moves by hand. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ratelimit.h"

#define SEC 1000000000ull

Test(ratelimit, lets_a_burst_through_then_counts)
{
	struct ratelimit rl = RATELIMIT_INIT(5 * SEC, 3);
	uint64_t suppressed = 99;

	for (int i = 0; i < 3; i++) {
		cr_assert(ratelimit_allow(&rl, 100 + (uint64_t)i, &suppressed));
		cr_assert_eq(suppressed, 0);
	}
	for (int i = 0; i < 1000; i++)
		cr_assert_not(ratelimit_allow(&rl, 200 + (uint64_t)i, &suppressed));
	cr_assert_eq(rl.suppressed, 1000);
}

Test(ratelimit, next_interval_reports_what_was_left_out)
{
	struct ratelimit rl = RATELIMIT_INIT(5 * SEC, 2);
	uint64_t suppressed;

	cr_assert(ratelimit_allow(&rl, 0, &suppressed));
	cr_assert(ratelimit_allow(&rl, 1, &suppressed));
	for (int i = 0; i < 7; i++)
		cr_assert_not(ratelimit_allow(&rl, 2, &suppressed));
	cr_assert_not(ratelimit_allow(&rl, 5 * SEC - 1, &suppressed), "still the same interval");
	cr_assert(ratelimit_allow(&rl, 5 * SEC, &suppressed));
	cr_assert_eq(suppressed, 8);
	cr_assert(ratelimit_allow(&rl, 5 * SEC + 1, &suppressed));
	cr_assert_eq(suppressed, 0, "the count is reported once");
}

Test(ratelimit, clock_going_back_opens_a_new_interval)
{
	struct ratelimit rl = RATELIMIT_INIT(SEC, 1);
	uint64_t suppressed;

	cr_assert(ratelimit_allow(&rl, 10 * SEC, &suppressed));
	cr_assert_not(ratelimit_allow(&rl, 10 * SEC, &suppressed));
	cr_assert(ratelimit_allow(&rl, 3 * SEC, &suppressed));
	cr_assert_eq(suppressed, 1);
}

/* Runs log_ratelimited n times with stderr going to a file; returns the file's text. */
static void capture_logs(int n, char *out, size_t out_len)
{
	char path[] = "/tmp/cl-ratelimit-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	ssize_t got;

	cr_assert(fd >= 0 && saved >= 0);
	unlink(path);
	cr_assert(dup2(fd, STDERR_FILENO) >= 0);
	for (int i = 0; i < n; i++)
		log_ratelimited(LOG_LVL_ERROR, "disk request %d failed", i);
	cr_assert(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	got = pread(fd, out, out_len - 1, 0);
	cr_assert(got >= 0);
	out[got] = '\0';
	close(fd);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(ratelimit, a_guest_loop_logs_a_bounded_number_of_lines)
{
	static char text[1 << 16];

	capture_logs(40000, text, sizeof(text));
	cr_assert_eq(count_lines(text), RATELIMIT_BURST, "%s", text);
	cr_assert(strstr(text, "disk request 0 failed"));
	cr_assert_null(strstr(text, "disk request 10 failed"));
}
