/* SPDX-License-Identifier: Apache-2.0 */
#include "lifecycle.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

struct op_rule {
	/* bit (1u << state) set when the op is allowed in that state */
	unsigned allowed;
	/* state reached on success; VM_STATE_COUNT means "unchanged" */
	enum vm_state next;
	const char *why;
};

#define IN(s) (1u << (s))

static const struct op_rule op_rules[VM_OP_COUNT] = {
	[VM_OP_CREATE] = {
		.allowed = IN(VM_STATE_NOT_CREATED),
		.next = VM_STATE_CREATED,
		.why = "a VM has been created already: delete it first",
	},
	[VM_OP_BOOT] = {
		/* As in Cloud Hypervisor, a VM that was shut down boots again. */
		.allowed = IN(VM_STATE_CREATED) | IN(VM_STATE_SHUTDOWN),
		.next = VM_STATE_RUNNING,
		.why = "boot needs a created VM that is not running",
	},
	[VM_OP_PAUSE] = {
		.allowed = IN(VM_STATE_RUNNING),
		.next = VM_STATE_PAUSED,
		.why = "pause needs a running VM",
	},
	[VM_OP_RESUME] = {
		.allowed = IN(VM_STATE_PAUSED),
		.next = VM_STATE_RUNNING,
		.why = "resume needs a paused VM",
	},
	[VM_OP_SNAPSHOT] = {
		/* A running guest would change memory under the writer. */
		.allowed = IN(VM_STATE_PAUSED),
		.next = VM_STATE_COUNT,
		.why = "snapshot needs a paused VM: pause it first",
	},
	[VM_OP_RESTORE] = {
		/* A created or stopped VM's config is replaced by the snapshot's. */
		.allowed = IN(VM_STATE_NOT_CREATED) | IN(VM_STATE_CREATED) | IN(VM_STATE_SHUTDOWN),
		/* Restored VMs come back paused; resuming is a separate op. */
		.next = VM_STATE_PAUSED,
		.why = "restore needs a VM that is not running: shut the current one down first",
	},
	[VM_OP_SHUTDOWN] = {
		/* The config stays: the VM can boot again, as in Cloud Hypervisor. */
		.allowed = IN(VM_STATE_CREATED) | IN(VM_STATE_RUNNING) | IN(VM_STATE_PAUSED),
		.next = VM_STATE_CREATED,
		.why = "shutdown needs a created, running or paused VM",
	},
	[VM_OP_DELETE] = {
		.allowed = IN(VM_STATE_NOT_CREATED) | IN(VM_STATE_CREATED) | IN(VM_STATE_RUNNING) |
			   IN(VM_STATE_PAUSED) | IN(VM_STATE_SHUTDOWN),
		.next = VM_STATE_NOT_CREATED,
		.why = "",
	},
	[VM_OP_REBOOT] = {
		.allowed = IN(VM_STATE_RUNNING) | IN(VM_STATE_PAUSED),
		.next = VM_STATE_RUNNING,
		.why = "reboot needs a booted VM",
	},
	[VM_OP_POWER_BUTTON] = {
		.allowed = IN(VM_STATE_RUNNING),
		.next = VM_STATE_COUNT,
		.why = "the power button needs a running VM",
	},
};

static bool lifecycle_valid(enum vm_state s, enum vm_op op)
{
	return (unsigned)s < VM_STATE_COUNT && (unsigned)op < VM_OP_COUNT;
}

int lifecycle_check(enum vm_state s, enum vm_op op, const char **ret_why)
{
	const struct op_rule *rule;
	const char *why;
	int r;

	if (!lifecycle_valid(s, op)) {
		why = "unknown VM state or operation";
		r = -EINVAL;
	} else if (op_rules[op].allowed & IN(s)) {
		return 0;
	} else {
		rule = &op_rules[op];
		why = rule->why;
		if (op == VM_OP_CREATE || op == VM_OP_RESTORE)
			r = -EEXIST;
		else if (s == VM_STATE_NOT_CREATED) {
			why = "no VM has been created";
			r = -ENOENT;
		} else
			r = -EINVAL;
	}
	if (ret_why)
		*ret_why = why;
	return r;
}

enum vm_state lifecycle_next(enum vm_state s, enum vm_op op)
{
	if (lifecycle_check(s, op, NULL) < 0)
		return s;
	if (op_rules[op].next == VM_STATE_COUNT)
		return s;
	return op_rules[op].next;
}

const char *vm_state_name(enum vm_state s)
{
	static const char *const names[VM_STATE_COUNT] = {
		[VM_STATE_NOT_CREATED] = "NotCreated",
		[VM_STATE_CREATED] = "Created",
		[VM_STATE_RUNNING] = "Running",
		[VM_STATE_PAUSED] = "Paused",
		[VM_STATE_SHUTDOWN] = "Shutdown",
	};

	if ((unsigned)s >= VM_STATE_COUNT)
		return "Unknown";
	return names[s];
}

const char *vm_op_name(enum vm_op op)
{
	static const char *const names[VM_OP_COUNT] = {
		[VM_OP_CREATE] = "create",
		[VM_OP_BOOT] = "boot",
		[VM_OP_PAUSE] = "pause",
		[VM_OP_RESUME] = "resume",
		[VM_OP_SNAPSHOT] = "snapshot",
		[VM_OP_RESTORE] = "restore",
		[VM_OP_SHUTDOWN] = "shutdown",
		[VM_OP_DELETE] = "delete",
		[VM_OP_REBOOT] = "reboot",
		[VM_OP_POWER_BUTTON] = "power-button",
	};

	if ((unsigned)op >= VM_OP_COUNT)
		return "unknown";
	return names[op];
}
