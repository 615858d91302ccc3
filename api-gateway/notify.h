/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the gateway tells the service manager that started it, through
 * sd-daemon: readiness, a status line, stopping, more time for a long
 * operation, the watchdog; and the API socket it may have been handed
 * (socket activation). Without NOTIFY_SOCKET every message is a no-op.
 */
#ifndef CLOISTER_NOTIFY_H
#define CLOISTER_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when a service manager listens (NOTIFY_SOCKET is set). */
bool notify_enabled(void);

/* READY=1 with STATUS=VM <vm_state>: the VM is booted or restored and the API answers. */
int notify_ready(const char *vm_state);

/* STATUS=<line>: what `systemctl status` shows. */
int notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * STATUS= for the VM: "VM Running", "VM Running, snapshot under way",
 * "VM Shutdown: why". op and error may be NULL or empty.
 */
int notify_vm_status(const char *state, const char *op, const char *error);

/* STOPPING=1 with a STATUS= line, or alone (status NULL: the last status, a failure's reason, stays). */
int notify_stopping(const char *status);

/* EXTEND_TIMEOUT_USEC: the start or stop under way may take usec more from now. */
int notify_extend_timeout(uint64_t usec);

/*
 * WATCHDOG=1 when WatchdogSec= is set and half the interval has passed
 * since the last one. Call from the main loop; cheap when not due.
 */
void notify_watchdog_tick(void);

/*
 * The fd store (FileDescriptorStoreMax=): systemd keeps a duplicate of fd,
 * under name (1..NOTIFY_FDNAME_MAX letters, digits, '-', '_', '.'), and
 * passes it to the next start of the service with LISTEN_FDNAMES.
 * -EINVAL for a bad name or fd; 0 (nothing sent) without a service manager.
 */
#define NOTIFY_FDNAME_MAX 64
int notify_fdstore_put(const char *name, int fd);
/* FDSTOREREMOVE=1: systemd closes what it keeps under name. */
int notify_fdstore_remove(const char *name);

/*
 * What the service manager handed over at start (LISTEN_FDS, LISTEN_PID
 * checked, named by LISTEN_FDNAMES): the API socket, and the fds the store
 * kept, whose names start with NOTIFY_STORED_PREFIX ("region-0", ...).
 * Every other fd must be the one API socket, checked as notify_listen_fd()
 * says. The LISTEN_* variables are removed either way.
 */
#define NOTIFY_STORED_PREFIX "region-"
#define NOTIFY_STORED_MAX 16
struct notify_passed {
	int api_fd;		/* -1 when none */
	size_t n_stored;
	int stored_fd[NOTIFY_STORED_MAX];
	char stored_name[NOTIFY_STORED_MAX][NOTIFY_FDNAME_MAX + 1];
};
int notify_listen_fds(const char *expected_path, struct notify_passed *ret, char *err,
		      size_t errlen);
void notify_passed_close(struct notify_passed *p);

/*
 * Socket activation, for a gateway that does not restore from the store
 * (stored fds handed back are released with FDSTOREREMOVE=1). 0 with
 * *ret_fd = -1 when no socket was passed (no LISTEN_FDS, or LISTEN_PID
 * names another process). 0 with *ret_fd the passed socket (close-on-exec)
 * when one was passed and it is a listening AF_UNIX stream socket bound to
 * expected_path (when not NULL). -EINVAL with err set for anything else
 * (two sockets, another kind, another path). The LISTEN_* variables are
 * removed either way, so children never see them.
 */
int notify_listen_fd(const char *expected_path, int *ret_fd, char *err, size_t errlen);

#endif
