/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bound on log lines that someone else can trigger at will (a guest's
 * failing disk requests, a broken chain after every reset): at most burst
 * lines per interval from one call site, and the first line of the next
 * interval says how many were left out.
 */
#ifndef CLOISTER_RATELIMIT_H
#define CLOISTER_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"

#define RATELIMIT_INTERVAL_NS (5ull * 1000000000ull)
#define RATELIMIT_BURST 10u

struct ratelimit {
	uint64_t interval_ns;
	uint32_t burst;
	bool started;
	uint64_t window_start;
	uint32_t in_window;	/* lines let through since window_start */
	uint64_t suppressed;	/* lines held back since the last one let through */
};

#define RATELIMIT_INIT(interval, lines) { .interval_ns = (interval), .burst = (lines) }
#define RATELIMIT_DEFAULT RATELIMIT_INIT(RATELIMIT_INTERVAL_NS, RATELIMIT_BURST)

/*
 * Decides whether one more line may go out at now_ns (any monotonic clock).
 * When it may, *ret_suppressed is how many lines were held back before it
 * (and that count starts again from zero); otherwise the line is counted.
 */
bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ns, uint64_t *ret_suppressed);

/* log_msg() through rl, on CLOCK_MONOTONIC; says first how many lines it held back. */
void log_limited(struct ratelimit *rl, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One limit per call site: "similar" means "from the same line of code". */
#define log_ratelimited(level, ...)                                                  \
	do {                                                                         \
		static struct ratelimit rl_site_ = RATELIMIT_DEFAULT;                \
		log_limited(&rl_site_, (level), __VA_ARGS__);                        \
	} while (0)

#endif
