/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration a VM is created with (Cloister__VmConfig), built from
 * the command line.
 */
#ifndef CLOISTER_VMCONFIG_H
#define CLOISTER_VMCONFIG_H

#include "cloister.pb-c.h"
#include "options.h"

/* A config of our own (free with cloister__vm_config__free_unpacked), or NULL when out of memory. */
Cloister__VmConfig *vmconfig_from_options(const struct vm_options *o);

struct json_object;

/*
 * From Cloud Hypervisor's VmConfig JSON (vm.create's body, --config): 0 with
 * a config of our own, or -EINVAL with what is wrong in err. Files the VM
 * reads are checked now (regular files); nothing is spawned. base gives what
 * the gateway's command line decides (the API socket).
 */
int vmconfig_from_json(struct json_object *o, const struct vm_options *base,
		       Cloister__VmConfig **ret, char *err, size_t errlen);

/* A deep copy, or NULL when out of memory. */
Cloister__VmConfig *vmconfig_dup(const Cloister__VmConfig *in);

#endif
