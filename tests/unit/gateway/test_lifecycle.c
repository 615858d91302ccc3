/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "lifecycle.h"

/*
 * The rules written out as a table, independently of lifecycle.c's encoding:
 * expected errno (0 = allowed) for every (state, op).
 */
static const int expected[VM_STATE_COUNT][VM_OP_COUNT] = {
	/*                       CREATE   BOOT     PAUSE    RESUME   SNAPSHOT RESTORE  SHUTDOWN DELETE REBOOT   POWER */
	[VM_STATE_NOT_CREATED] = { 0,       -ENOENT, -ENOENT, -ENOENT, -ENOENT, 0,       -ENOENT, 0,     -ENOENT, -ENOENT },
	[VM_STATE_CREATED]     = { -EEXIST, 0,       -EINVAL, -EINVAL, -EINVAL, 0,       0,       0,     -EINVAL, -EINVAL },
	[VM_STATE_RUNNING]     = { -EEXIST, -EINVAL, 0,       -EINVAL, -EINVAL, -EEXIST, 0,       0,     0,       0 },
	[VM_STATE_PAUSED]      = { -EEXIST, -EINVAL, -EINVAL, 0,       0,       -EEXIST, 0,       0,     0,       -EINVAL },
	[VM_STATE_SHUTDOWN]    = { -EEXIST, 0,       -EINVAL, -EINVAL, -EINVAL, 0,       -EINVAL, 0,     -EINVAL, -EINVAL },
};

static enum vm_state expected_next(enum vm_state s, enum vm_op op)
{
	switch (op) {
	case VM_OP_CREATE:
	case VM_OP_SHUTDOWN:
		return VM_STATE_CREATED;
	case VM_OP_BOOT:
	case VM_OP_RESUME:
	case VM_OP_REBOOT:
		return VM_STATE_RUNNING;
	case VM_OP_PAUSE:
	case VM_OP_RESTORE:
		return VM_STATE_PAUSED;
	case VM_OP_DELETE:
		return VM_STATE_NOT_CREATED;
	default:
		return s;
	}
}

Test(lifecycle, every_state_op_pair)
{
	for (int s = 0; s < VM_STATE_COUNT; s++)
		for (int op = 0; op < VM_OP_COUNT; op++) {
			const char *why = NULL;
			int r = lifecycle_check(s, op, &why);

			cr_expect_eq(r, expected[s][op], "%s in %s: got %d, want %d",
				     vm_op_name(op), vm_state_name(s), r, expected[s][op]);
			if (r < 0)
				cr_expect(why && *why, "%s in %s: no reason given",
					  vm_op_name(op), vm_state_name(s));
		}
}

Test(lifecycle, next_state_for_every_pair)
{
	for (int s = 0; s < VM_STATE_COUNT; s++)
		for (int op = 0; op < VM_OP_COUNT; op++) {
			enum vm_state want = expected[s][op] ? (enum vm_state)s : expected_next(s, op);

			cr_expect_eq(lifecycle_next(s, op), want, "%s in %s", vm_op_name(op),
				     vm_state_name(s));
		}
}

Test(lifecycle, snapshot_keeps_paused)
{
	cr_assert_eq(lifecycle_next(VM_STATE_PAUSED, VM_OP_SNAPSHOT), VM_STATE_PAUSED);
}

Test(lifecycle, out_of_range_is_refused)
{
	const char *why = NULL;

	cr_expect_eq(lifecycle_check(VM_STATE_COUNT, VM_OP_BOOT, &why), -EINVAL);
	cr_expect_not_null(why);
	cr_expect_eq(lifecycle_check(VM_STATE_RUNNING, (enum vm_op)-1, NULL), -EINVAL);
	cr_expect_eq(lifecycle_next((enum vm_state)42, VM_OP_PAUSE), (enum vm_state)42);
	cr_expect_str_eq(vm_state_name((enum vm_state)42), "Unknown");
}

Test(lifecycle, why_untouched_on_success)
{
	const char *why = "sentinel";

	cr_assert_eq(lifecycle_check(VM_STATE_RUNNING, VM_OP_PAUSE, &why), 0);
	cr_expect_str_eq(why, "sentinel");
}

Test(lifecycle, cloud_hypervisor_state_names)
{
	cr_expect_str_eq(vm_state_name(VM_STATE_CREATED), "Created");
	cr_expect_str_eq(vm_state_name(VM_STATE_RUNNING), "Running");
	cr_expect_str_eq(vm_state_name(VM_STATE_PAUSED), "Paused");
	cr_expect_str_eq(vm_state_name(VM_STATE_SHUTDOWN), "Shutdown");
	cr_expect_str_eq(vm_state_name(VM_STATE_NOT_CREATED), "NotCreated");
}
