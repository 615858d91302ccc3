/* SPDX-License-Identifier: Apache-2.0 */
/* The VM's configuration as vm.info shows it, under Cloud Hypervisor's keys. */
#ifndef CLOISTER_VMINFO_H
#define CLOISTER_VMINFO_H

#include "cloister.pb-c.h"

struct json_object;

/* A new JSON object (the caller owns it) for cfg, in CH's VmConfig shape. */
struct json_object *vminfo_config_json(const Cloister__VmConfig *cfg);

#endif
