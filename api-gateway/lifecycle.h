/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which VM operations are allowed in which state: the gateway's permission
 * table, kept free of I/O so every (state, op) pair can be tested.
 */
#ifndef CLOISTER_LIFECYCLE_H
#define CLOISTER_LIFECYCLE_H

enum vm_state {
	VM_STATE_NOT_CREATED,
	VM_STATE_CREATED,
	VM_STATE_RUNNING,
	VM_STATE_PAUSED,
	VM_STATE_SHUTDOWN,
	VM_STATE_COUNT,
};

enum vm_op {
	VM_OP_CREATE,
	VM_OP_BOOT,
	VM_OP_PAUSE,
	VM_OP_RESUME,
	VM_OP_SNAPSHOT,
	VM_OP_RESTORE,
	VM_OP_SHUTDOWN,
	VM_OP_DELETE,
	VM_OP_REBOOT,
	VM_OP_POWER_BUTTON,
	VM_OP_COUNT,
};

/*
 * 0 when op may run in state s. Otherwise a negative errno and, if ret_why
 * is not NULL, a static human-readable reason:
 *   -ENOENT  the op needs a VM and none exists (NOT_CREATED)
 *   -EEXIST  create or restore while a VM exists (running or paused, for restore)
 *   -EINVAL  the op is not valid in this state (or s/op out of range)
 */
int lifecycle_check(enum vm_state s, enum vm_op op, const char **ret_why);

/* The state after op succeeded in s; s itself when op is not allowed there. */
enum vm_state lifecycle_next(enum vm_state s, enum vm_op op);

/* Cloud Hypervisor's name for the state; "NotCreated" has no CH equivalent. */
const char *vm_state_name(enum vm_state s);

const char *vm_op_name(enum vm_op op);

#endif
