/* SPDX-License-Identifier: Apache-2.0 */
/* What a VmConfig and VmState must satisfy beyond their types: shared by save and load. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "errmsg.h"
#include "layout.h"
#include "vmjson.h"

/* ---- semantic checks ---- */

static bool id_is_sane(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > VMJSON_MAX_ID)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
			    s[i]))
			return false;
	return true;
}

static int check_regions(const Cloister__VmConfig *c, char *err, size_t errlen)
{
	struct layout_region expect[LAYOUT_MAX_REGIONS];
	size_t n;

	if (c->memory_size == 0 || c->memory_size % VMJSON_PAGE_SIZE ||
	    c->memory_size > VMJSON_MAX_MEMORY) {
		err_set(err, errlen, "config.memory_size: %" PRIu64
			" is not a page-aligned size between 4 KiB and 1 TiB", c->memory_size);
		return -EINVAL;
	}
	n = layout_memory(c->memory_size, expect);
	if (c->n_regions != n) {
		err_set(err, errlen, "config.regions: %zu regions, the layout of %" PRIu64
			" bytes has %zu", c->n_regions, c->memory_size, n);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const Cloister__MemoryRegion *r = c->regions[i];

		if (!r || r->guest_addr != expect[i].gpa || r->size != expect[i].size) {
			err_set(err, errlen, "config.regions[%zu]: does not match the memory layout"
				" (expected guest_addr %" PRIu64 ", size %" PRIu64 ")",
				i, expect[i].gpa, expect[i].size);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_config_devices(const Cloister__VmConfig *c, char *err, size_t errlen)
{
	if (c->n_devices > VMJSON_MAX_DEVICES) {
		err_set(err, errlen, "config.devices: %zu devices, at most %u", c->n_devices,
			VMJSON_MAX_DEVICES);
		return -EINVAL;
	}
	for (size_t i = 0; i < c->n_devices; i++) {
		const Cloister__DeviceConfig *d = c->devices[i];

		if (!d || !id_is_sane(d->kind) || !id_is_sane(d->id)) {
			err_set(err, errlen, "config.devices[%zu]: kind and id must be 1..%u"
				" characters of [A-Za-z0-9_.-]", i, VMJSON_MAX_ID);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(c->devices[j]->id, d->id) == 0) {
				err_set(err, errlen, "config.devices[%zu].id: \"%s\" used twice",
					i, d->id);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int vmjson_check_config(const Cloister__VmConfig *c, char *err, size_t errlen)
{
	int r;

	if (!c) {
		err_set(err, errlen, "config: missing");
		return -EINVAL;
	}
	if (c->boot_vcpus < 1 || c->boot_vcpus > VMJSON_MAX_VCPUS) {
		err_set(err, errlen, "config.boot_vcpus: %" PRIu32 " is outside 1..%u",
			c->boot_vcpus, VMJSON_MAX_VCPUS);
		return -EINVAL;
	}
	r = check_regions(c, err, errlen);
	if (r < 0)
		return r;
	return check_config_devices(c, err, errlen);
}

static int check_vcpu(const Cloister__VcpuState *v, size_t i, size_t n, char *err, size_t errlen)
{
	if (!v) {
		err_set(err, errlen, "state.vcpus[%zu]: missing", i);
		return -EINVAL;
	}
	if (v->hartid >= n) {
		err_set(err, errlen, "state.vcpus[%zu].hartid: %" PRIu32 " is not below %zu",
			i, v->hartid, n);
		return -EINVAL;
	}
	if (v->n_x != 32 || v->x[0] != 0) {
		err_set(err, errlen, "state.vcpus[%zu].x: needs exactly 32 entries with x[0] == 0", i);
		return -EINVAL;
	}
	if (v->n_f != 0 && v->n_f != 32) {
		err_set(err, errlen, "state.vcpus[%zu].f: needs 0 or 32 entries", i);
		return -EINVAL;
	}
	/* SBI HSM knows states 0..6; only U and S are run by the engine. */
	if (v->hsm_state > 6 || v->priv > 1) {
		err_set(err, errlen, "state.vcpus[%zu]: invalid hsm_state or priv", i);
		return -EINVAL;
	}
	return 0;
}

static int check_vcpus(const Cloister__VmConfig *c, const Cloister__VmState *s,
		       char *err, size_t errlen)
{
	bool seen[VMJSON_MAX_VCPUS] = { false };

	if (s->n_vcpus != c->boot_vcpus) {
		err_set(err, errlen, "state.vcpus: %zu vCPUs, config.boot_vcpus is %" PRIu32,
			s->n_vcpus, c->boot_vcpus);
		return -EINVAL;
	}
	for (size_t i = 0; i < s->n_vcpus; i++) {
		int r = check_vcpu(s->vcpus[i], i, s->n_vcpus, err, errlen);

		if (r < 0)
			return r;
		if (seen[s->vcpus[i]->hartid]) {
			err_set(err, errlen, "state.vcpus[%zu].hartid: %" PRIu32 " appears twice",
				i, s->vcpus[i]->hartid);
			return -EINVAL;
		}
		seen[s->vcpus[i]->hartid] = true;
	}
	return 0;
}

static int check_device_state(const Cloister__VmConfig *c, const Cloister__DeviceState *d,
			      size_t i, char *err, size_t errlen)
{
	const Cloister__DeviceConfig *match = NULL;

	if (!d || !id_is_sane(d->id)) {
		err_set(err, errlen, "state.devices[%zu].id: missing or invalid", i);
		return -EINVAL;
	}
	for (size_t k = 0; k < c->n_devices; k++)
		if (strcmp(c->devices[k]->id, d->id) == 0)
			match = c->devices[k];
	if (!match || strcmp(match->kind, d->kind ? d->kind : "") != 0) {
		err_set(err, errlen, "state.devices[%zu]: \"%s\" is not a device of that kind"
			" in config.devices", i, d->id);
		return -EINVAL;
	}
	if (d->n_queues > VMJSON_MAX_QUEUES) {
		err_set(err, errlen, "state.devices[%zu].queues: more than %u", i,
			VMJSON_MAX_QUEUES);
		return -EINVAL;
	}
	for (size_t q = 0; q < d->n_queues; q++) {
		/* virtio caps a split queue at 32768 entries. */
		if (!d->queues[q] || d->queues[q]->size > 32768) {
			err_set(err, errlen, "state.devices[%zu].queues[%zu].size: above 32768", i, q);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_devices(const Cloister__VmConfig *c, const Cloister__VmState *s,
			 char *err, size_t errlen)
{
	if (s->n_devices != c->n_devices) {
		err_set(err, errlen, "state.devices: %zu devices, config.devices has %zu",
			s->n_devices, c->n_devices);
		return -EINVAL;
	}
	for (size_t i = 0; i < s->n_devices; i++) {
		int r = check_device_state(c, s->devices[i], i, err, errlen);

		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(s->devices[j]->id, s->devices[i]->id) == 0) {
				err_set(err, errlen, "state.devices[%zu].id: \"%s\" appears twice",
					i, s->devices[i]->id);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int vmjson_check_state(const Cloister__VmConfig *c, const Cloister__VmState *s,
		       char *err, size_t errlen)
{
	int r;

	if (!s || !s->machine) {
		err_set(err, errlen, "state.machine: missing");
		return -EINVAL;
	}
	r = check_vcpus(c, s, err, errlen);
	if (r < 0)
		return r;
	return check_devices(c, s, err, errlen);
}
