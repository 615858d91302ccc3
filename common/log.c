/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *log_tag = "cloister";
static enum log_level log_level = LOG_LVL_INFO;
static int log_level_read;
/* stderr is systemd's journal stream: each line starts with its priority, "<3>" .. "<7>". */
static bool log_to_journal;

bool log_journal_stream_matches(const char *env, int fd)
{
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (!env || sscanf(env, "%llu:%llu%c", &dev, &ino, &tail) != 2 || fstat(fd, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* "tag[pid]: level: text": the level word's priority; info when the line names none. */
static const char *line_priority(const char *line, size_t len)
{
	static const struct {
		const char *word, *prio;
	} levels[] = { { "error: ", "<3>" }, { "warn: ", "<4>" }, { "info: ", "<6>" }, { "debug: ", "<7>" } };
	const char *end = memmem(line, len, "]: ", 3);
	size_t rest;

	if (!end)
		return "<6>";
	end += 3;
	rest = len - (size_t)(end - line);
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (rest >= strlen(levels[i].word) && memcmp(end, levels[i].word, strlen(levels[i].word)) == 0)
			return levels[i].prio;
	return "<6>";
}

const char *log_journal_prefix(const char *line, size_t len)
{
	return log_to_journal ? line_priority(line, len) : "";
}

void log_set_tag(const char *tag)
{
	static bool journal_checked;

	log_tag = tag;
	/* Once, early, before a sandbox may forbid fstat: JOURNAL_STREAM names stderr's stream. */
	if (!journal_checked)
		log_to_journal = log_journal_stream_matches(getenv("JOURNAL_STREAM"), STDERR_FILENO);
	journal_checked = true;
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
	/* sd-daemon.h's SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG. */
	static const char *const priorities[] = { "<3>", "<4>", "<6>", "<7>" };
	char line[1024];
	va_list ap;
	int n;

	if (!log_level_read)
		log_read_env();
	if (level > log_level)
		return;
	n = snprintf(line, sizeof(line), "%s%s[%d]: %s: ", log_to_journal ? priorities[level] : "",
		     log_tag, (int)getpid(), names[level]);
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
