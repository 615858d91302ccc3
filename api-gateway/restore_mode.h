/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * How a restore brings guest memory in, as the restorer asked: by name
 * (memory_restore_mode, or prefault=true for Copy) or not at all.
 */
enum restore_mode {
	/* Not named: OnDemand where /dev/userfaultfd can be opened, Copy (with a warning) elsewhere. */
	RESTORE_MODE_DEFAULT,
	/* "Copy": every byte read in and checked before the VM is ready. */
	RESTORE_MODE_COPY,
	/* "OnDemand" by name: paged in as touched; a host without /dev/userfaultfd refuses it. */
	RESTORE_MODE_ON_DEMAND,
};
