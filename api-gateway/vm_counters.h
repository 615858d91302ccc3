/* SPDX-License-Identifier: Apache-2.0 */
/* vm.counters: every device process's counters, asked of vmm-core, as CH's VmCounters JSON. */
#ifndef CLOISTER_VM_COUNTERS_H
#define CLOISTER_VM_COUNTERS_H

#include <stddef.h>

#include "tree.h"

struct json_object;

/*
 * {"device id": {"counter": N, ...}, ...} for the VM t runs. -EINVAL when
 * no tree runs (not booted) or vmm-core has no devices running; other
 * -errno from talking to it.
 */
int vm_counters_query(struct vm_tree *t, struct json_object **ret, char *err, size_t errlen);

#endif
