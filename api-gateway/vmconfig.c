/* SPDX-License-Identifier: Apache-2.0 */
#include "vmconfig.h"

#include <stddef.h>

#include "frame.h"
#include "layout.h"

#define MAX_CONFIG_DEVICES (1 + OPTIONS_MAX_DISKS + OPTIONS_MAX_NETS + 1)

/*
 * The devices, in the order of their virtio-mmio slots: the rng first (the
 * test guests look for it in slot 0), then disks, NICs and the console.
 */
static size_t devices_from_options(const struct vm_options *o, Cloister__DeviceConfig *devs,
				   Cloister__SerialConfig *console)
{
	size_t n = 0;

	for (size_t i = 0; i < MAX_CONFIG_DEVICES; i++)
		cloister__device_config__init(&devs[i]);
	if (o->rng) {
		devs[n].kind = "rng";
		devs[n++].id = "rng0";
	}
	for (size_t i = 0; i < o->n_disks; i++) {
		devs[n].kind = "blk";
		devs[n].id = o->disks[i].id;
		devs[n].path = o->disks[i].path;
		devs[n++].readonly = o->disks[i].readonly;
	}
	for (size_t i = 0; i < o->n_nets; i++) {
		devs[n].kind = "net";
		devs[n].id = o->nets[i].id;
		devs[n].tap = o->nets[i].tap;
		devs[n++].mac = o->nets[i].mac ? o->nets[i].mac : "";
	}
	if (o->console_mode != CLOISTER__SERIAL_MODE__SERIAL_OFF) {
		console->mode = o->console_mode;
		console->path = o->console_path ? o->console_path : "";
		devs[n].kind = "console";
		devs[n].id = "console0";
		devs[n++].console = console;
	}
	return n;
}

Cloister__VmConfig *vmconfig_from_options(const struct vm_options *o)
{
	struct layout_region lr[LAYOUT_MAX_REGIONS];
	Cloister__MemoryRegion regions[LAYOUT_MAX_REGIONS], *region_ptrs[LAYOUT_MAX_REGIONS];
	Cloister__PayloadConfig payload = CLOISTER__PAYLOAD_CONFIG__INIT;
	Cloister__SerialConfig serial = CLOISTER__SERIAL_CONFIG__INIT;
	Cloister__SerialConfig console = CLOISTER__SERIAL_CONFIG__INIT;
	Cloister__DeviceConfig devs[MAX_CONFIG_DEVICES], *dev_ptrs[MAX_CONFIG_DEVICES];
	Cloister__VmConfig cfg = CLOISTER__VM_CONFIG__INIT;
	size_t n = layout_memory(o->memory_size, lr);

	for (size_t i = 0; i < n; i++) {
		cloister__memory_region__init(&regions[i]);
		regions[i].guest_addr = lr[i].gpa;
		regions[i].size = lr[i].size;
		region_ptrs[i] = &regions[i];
	}
	for (size_t i = 0; i < MAX_CONFIG_DEVICES; i++)
		dev_ptrs[i] = &devs[i];
	payload.kernel = o->kernel ? o->kernel : "";
	payload.initramfs = o->initramfs ? o->initramfs : "";
	payload.cmdline = o->cmdline ? o->cmdline : "";
	serial.mode = o->serial_mode;
	serial.path = o->serial_path ? o->serial_path : "";
	cfg.boot_vcpus = o->cpus;
	cfg.memory_size = o->memory_size;
	cfg.regions = region_ptrs;
	cfg.n_regions = n;
	cfg.payload = &payload;
	cfg.serial = &serial;
	cfg.devices = dev_ptrs;
	cfg.n_devices = devices_from_options(o, devs, &console);
	return vmconfig_dup(&cfg);
}

Cloister__VmConfig *vmconfig_dup(const Cloister__VmConfig *in)
{
	return (Cloister__VmConfig *)proto_message_dup(&in->base);
}
