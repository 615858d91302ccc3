/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *log_tag = "cloister";
static enum log_level log_level = LOG_LVL_INFO;
static int log_level_read;

void log_set_tag(const char *tag)
{
	log_tag = tag;
}

void log_set_level(enum log_level level)
{
	log_level = level;
	log_level_read = 1;
}

static void log_read_env(void)
{
	const char *env = getenv("CLOISTER_LOG");

	log_level_read = 1;
	if (env && strcmp(env, "debug") == 0)
		log_level = LOG_LVL_DEBUG;
	else if (env && strcmp(env, "warn") == 0)
		log_level = LOG_LVL_WARN;
	else if (env && strcmp(env, "error") == 0)
		log_level = LOG_LVL_ERROR;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char line[1024];
	va_list ap;
	int n;

	if (!log_level_read)
		log_read_env();
	if (level > log_level)
		return;
	n = snprintf(line, sizeof(line), "%s[%d]: %s: ", log_tag, (int)getpid(), names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write() per line so lines from several processes do not interleave. */
	n = (int)strlen(line);
	if (n < (int)sizeof(line) - 1)
		line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}
