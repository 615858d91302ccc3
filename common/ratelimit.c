/* SPDX-License-Identifier: Apache-2.0 */
#include "ratelimit.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ns, uint64_t *ret_suppressed)
{
	/* A clock that went backwards (another clock, a test) opens a new window too. */
	if (!rl->started || now_ns < rl->window_start ||
	    now_ns - rl->window_start >= rl->interval_ns) {
		rl->started = true;
		rl->window_start = now_ns;
		rl->in_window = 0;
	}
	if (rl->in_window >= rl->burst) {
		rl->suppressed++;
		return false;
	}
	rl->in_window++;
	*ret_suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void log_limited(struct ratelimit *rl, enum log_level level, const char *fmt, ...)
{
	char line[768];
	uint64_t suppressed;
	va_list ap;

	if (!ratelimit_allow(rl, monotonic_ns(), &suppressed))
		return;
	if (suppressed)
		log_msg(level, "... %llu similar messages suppressed", (unsigned long long)suppressed);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_msg(level, "%s", line);
}
