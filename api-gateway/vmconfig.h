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

/* A deep copy, or NULL when out of memory. */
Cloister__VmConfig *vmconfig_dup(const Cloister__VmConfig *in);

#endif
