/* SPDX-License-Identifier: Apache-2.0 */
#include "vminfo.h"

#include <json-c/json.h>
#include <string.h>

static const char *serial_mode_name(Cloister__SerialMode m)
{
	switch (m) {
	case CLOISTER__SERIAL_MODE__SERIAL_NULL:
		return "Null";
	case CLOISTER__SERIAL_MODE__SERIAL_TTY:
		return "Tty";
	case CLOISTER__SERIAL_MODE__SERIAL_FILE:
		return "File";
	case CLOISTER__SERIAL_MODE__SERIAL_PTY:
		return "Pty";
	case CLOISTER__SERIAL_MODE__SERIAL_SOCKET:
		return "Socket";
	default:
		return "Off";
	}
}

/* Cloud Hypervisor's keys: a pty's path is its "file", a socket's path its "socket". */
static void sink_json(struct json_object *j, const Cloister__SerialConfig *s)
{
	Cloister__SerialMode mode = s ? s->mode : CLOISTER__SERIAL_MODE__SERIAL_OFF;
	const char *key = mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET ? "socket" : "file";

	json_object_object_add(j, "mode", json_object_new_string(serial_mode_name(mode)));
	if ((mode == CLOISTER__SERIAL_MODE__SERIAL_FILE || mode == CLOISTER__SERIAL_MODE__SERIAL_PTY ||
	     mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET) && s->path && s->path[0])
		json_object_object_add(j, key, json_object_new_string(s->path));
}

/* Appends to the array named key in o, creating it. */
static void json_append(struct json_object *o, const char *key, struct json_object *item)
{
	struct json_object *arr;

	if (!json_object_object_get_ex(o, key, &arr)) {
		arr = json_object_new_array();
		json_object_object_add(o, key, arr);
	}
	json_object_array_add(arr, item);
}

/* One device, under Cloud Hypervisor's keys: rng, disks[], net[], console. */
static void device_json(struct json_object *o, const Cloister__DeviceConfig *d)
{
	struct json_object *j = json_object_new_object();

	json_object_object_add(j, "id", json_object_new_string(d->id));
	if (strcmp(d->kind, "rng") == 0) {
		json_object_object_add(j, "src", json_object_new_string("getrandom"));
		json_object_object_add(o, "rng", j);
	} else if (strcmp(d->kind, "blk") == 0) {
		json_object_object_add(j, "path", json_object_new_string(d->path));
		json_object_object_add(j, "readonly", json_object_new_boolean(d->readonly));
		json_append(o, "disks", j);
	} else if (strcmp(d->kind, "net") == 0) {
		json_object_object_add(j, "tap", json_object_new_string(d->tap));
		json_object_object_add(j, "mac", json_object_new_string(d->mac));
		json_append(o, "net", j);
	} else if (strcmp(d->kind, "console") == 0) {
		sink_json(j, d->console);
		json_object_object_add(o, "console", j);
	} else {
		json_object_put(j);
	}
}

struct json_object *vminfo_config_json(const Cloister__VmConfig *cfg)
{
	struct json_object *o = json_object_new_object(), *cpus = json_object_new_object(),
			   *mem = json_object_new_object(), *payload = json_object_new_object(),
			   *serial = json_object_new_object();

	json_object_object_add(cpus, "boot_vcpus", json_object_new_int64(cfg->boot_vcpus));
	json_object_object_add(cpus, "max_vcpus", json_object_new_int64(cfg->boot_vcpus));
	json_object_object_add(o, "cpus", cpus);
	json_object_object_add(mem, "size", json_object_new_uint64(cfg->memory_size));
	json_object_object_add(o, "memory", mem);
	if (cfg->payload) {
		json_object_object_add(payload, "kernel", json_object_new_string(cfg->payload->kernel));
		if (cfg->payload->initramfs[0])
			json_object_object_add(payload, "initramfs",
					       json_object_new_string(cfg->payload->initramfs));
		if (cfg->payload->cmdline[0])
			json_object_object_add(payload, "cmdline", json_object_new_string(cfg->payload->cmdline));
	}
	json_object_object_add(o, "payload", payload);
	sink_json(serial, cfg->serial);
	json_object_object_add(o, "serial", serial);
	for (size_t i = 0; i < cfg->n_devices; i++)
		device_json(o, cfg->devices[i]);
	return o;
}
