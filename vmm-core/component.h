/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One interface for every part of the machine that runs on its own or holds
 * guest state: each hart, guest time, the PLIC, the UART, the serial input
 * and each virtio-mmio transport with its device process. The machine keeps
 * them in one ordered list; pause walks it forward, resume backward, and a
 * snapshot's VmState is built and consumed by walking it.
 *
 * Every op returns 0 or -errno and, on failure, writes why into err
 * (without the component's id: the walker puts that in front).
 */
#ifndef CLOISTER_COMPONENT_H
#define CLOISTER_COMPONENT_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister.pb-c.h"

#define COMPONENT_ID_MAX 48
#define COMPONENT_ERR_MAX 256

struct component_ops {
	/*
	 * Stops whatever the component does on its own; when it returns, the
	 * component changes no guest-visible state until resume. NULL for a
	 * passive component (only others' actions change it).
	 */
	int (*pause)(void *obj, char *err, size_t errlen);
	int (*resume)(void *obj, char *err, size_t errlen);
	/* Only while everything is paused: adds the component's part to state. */
	int (*save)(void *obj, Cloister__VmState *state, char *err, size_t errlen);
	/*
	 * Only while everything is paused: finds the component's part of state,
	 * checks all of it and refuses (-EINVAL) what it cannot hold, or a
	 * missing part, before it takes any of it.
	 */
	int (*restore)(void *obj, const Cloister__VmState *state, char *err, size_t errlen);
	/*
	 * True for a component that holds no guest state (the host side of the
	 * console): it has no save or restore, and says so here rather than
	 * with an op that silently saves nothing.
	 */
	bool stateless;
};

struct component {
	char id[COMPONENT_ID_MAX];
	const struct component_ops *ops;
	void *obj;
	bool paused;
};

/* At most: 64 harts, time, PLIC, UART, serial input and the virtio slots. */
#define COMPONENT_LIST_MAX 96

struct component_list {
	struct component c[COMPONENT_LIST_MAX];
	size_t n;
};

/*
 * Appends a component, paused or running as it is now (harts are held until
 * the first resume, a device process runs from its start). -EINVAL for ops
 * without save/restore that do not say stateless, -EEXIST for an id already
 * present, -ENOSPC when full.
 */
int component_add(struct component_list *l, const char *id, const struct component_ops *ops,
		  void *obj, bool paused);

/*
 * Pauses every component in order. When one fails, the ones it had paused
 * are resumed again (last first) and the error, naming the component, is in
 * err: the list is running as before.
 */
int component_pause_all(struct component_list *l, char *err, size_t errlen);
/* Resumes every component, last first; on a failure re-pauses the ones it resumed. */
int component_resume_all(struct component_list *l, char *err, size_t errlen);
/* Builds state by walking the list; on failure what was added stays for the caller to free. */
int component_save_all(struct component_list *l, Cloister__VmState *state, char *err,
		       size_t errlen);
/*
 * Restores every component from state; stops at the first refusal, naming
 * it. A restored component is paused: it waits for resume.
 */
int component_restore_all(struct component_list *l, const Cloister__VmState *state, char *err,
			  size_t errlen);

#endif
