/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one way an error travels up: functions return -errno and, where a
 * person will read why, write a message into a caller's buffer. Only the
 * place that decides what happens next logs it.
 */
#ifndef CLOISTER_ERRMSG_H
#define CLOISTER_ERRMSG_H

#include <stddef.h>

/* Formats into err (errlen bytes, always terminated); a NULL or empty buffer is fine. */
void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
