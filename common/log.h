/* SPDX-License-Identifier: Apache-2.0 */
/* One log line per decision, to stderr, tagged with the process's role and pid. */
#ifndef CLOISTER_LOG_H
#define CLOISTER_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/*
 * Sets the tag printed before every line ("vmm", "snapshotd", "rng0"...).
 * Also looks whether stderr is the journal stream JOURNAL_STREAM names: then
 * every line starts with its sd-daemon priority ("<3>" for errors).
 */
void log_set_tag(const char *tag);

/* JOURNAL_STREAM's "DEV:INODE" (env may be NULL) is fd's: exposed for tests. */
bool log_journal_stream_matches(const char *env, int fd);

/*
 * For a line relayed from a child ("tag[pid]: level: text", control
 * characters already replaced): the priority prefix its level word asks for
 * ("<3>" for error; "<6>" when it names none), or "" when stderr is not the
 * journal. Always written, so a child's own "<0>" is text, not a priority.
 */
const char *log_journal_prefix(const char *line, size_t len);

/* Lines above this level are dropped; default INFO, CLOISTER_LOG=debug raises it. */
void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
