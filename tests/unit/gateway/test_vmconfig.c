/* SPDX-License-Identifier: Apache-2.0 */
/* Cloud Hypervisor's VmConfig JSON as vm.create and --config take it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmconfig.h"

static char dir[] = "/tmp/cloister-vmconfig-XXXXXX";
static char kernel[256], disk[256];
static const struct vm_options base = { .api_socket = "/run/api.sock" };

static void touch(const char *path, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(kernel, sizeof(kernel), "%s/Image", dir);
	snprintf(disk, sizeof(disk), "%s/disk.img", dir);
	touch(kernel, 4096);
	touch(disk, 1 << 20);
}

static void teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* Parses text (with %s replaced by the kernel path, then the disk path). */
static int parse(const char *fmt, Cloister__VmConfig **ret, char *err, size_t errlen)
{
	char text[2048];
	struct json_object *o;
	int r;

	snprintf(text, sizeof(text), fmt, kernel, disk);
	o = json_tokener_parse(text);
	cr_assert_not_null(o, "bad test JSON: %s", text);
	*ret = NULL;
	r = vmconfig_from_json(o, &base, ret, err, errlen);
	json_object_put(o);
	return r;
}

static void expect_refused(const char *fmt, const char *needle)
{
	Cloister__VmConfig *cfg = NULL;
	char err[256] = "";

	cr_expect_eq(parse(fmt, &cfg, err, sizeof(err)), -EINVAL, "accepted: %s", fmt);
	cr_expect_null(cfg);
	cr_expect(strstr(err, needle), "error '%s' does not mention '%s'", err, needle);
}

TestSuite(vmconfig, .init = setup, .fini = teardown);

Test(vmconfig, full_config_maps_every_section)
{
	Cloister__VmConfig *cfg = NULL;
	char err[256] = "";
	int r = parse("{\"cpus\": {\"boot_vcpus\": 2, \"max_vcpus\": 2}, \"memory\": {\"size\": 1073741824},"
		      " \"payload\": {\"kernel\": \"%s\", \"cmdline\": \"console=ttyS0\"},"
		      " \"disks\": [{\"path\": \"%s\", \"readonly\": true, \"id\": \"root\"}],"
		      " \"net\": [{\"tap\": \"tap0\", \"mac\": \"52:54:00:12:34:56\"}],"
		      " \"rng\": {\"src\": \"/dev/urandom\"}, \"serial\": {\"mode\": \"Pty\"},"
		      " \"console\": {\"mode\": \"Off\"}, \"iommu\": false, \"watchdog\": false}",
		      &cfg, err, sizeof(err));

	cr_assert_eq(r, 0, "%s", err);
	cr_expect_eq(cfg->boot_vcpus, 2);
	cr_expect_eq(cfg->memory_size, 1ull << 30);
	cr_expect_str_eq(cfg->payload->kernel, kernel);
	cr_expect_str_eq(cfg->payload->cmdline, "console=ttyS0");
	cr_expect_eq(cfg->serial->mode, CLOISTER__SERIAL_MODE__SERIAL_PTY);
	cr_assert_eq(cfg->n_devices, 3);
	cr_expect_str_eq(cfg->devices[0]->kind, "rng");
	cr_expect_str_eq(cfg->devices[1]->kind, "blk");
	cr_expect_str_eq(cfg->devices[1]->id, "root");
	cr_expect(cfg->devices[1]->readonly);
	cr_expect_str_eq(cfg->devices[2]->kind, "net");
	cr_expect_str_eq(cfg->devices[2]->id, "net0");
	cr_expect_str_eq(cfg->devices[2]->mac, "52:54:00:12:34:56");
	cloister__vm_config__free_unpacked(cfg, NULL);
}

Test(vmconfig, minimal_config_has_defaults)
{
	Cloister__VmConfig *cfg = NULL;
	char err[256] = "";

	cr_assert_eq(parse("{\"payload\": {\"kernel\": \"%s\"}}", &cfg, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cfg->boot_vcpus, 1);
	cr_expect_eq(cfg->memory_size, OPTIONS_MEMORY_DEFAULT);
	cr_expect_eq(cfg->serial->mode, CLOISTER__SERIAL_MODE__SERIAL_NULL);
	cr_expect_eq(cfg->n_devices, 0);
	cloister__vm_config__free_unpacked(cfg, NULL);
}

Test(vmconfig, absurd_values_are_refused)
{
	expect_refused("{\"cpus\": {\"boot_vcpus\": 1000000}, \"payload\": {\"kernel\": \"%s\"}}", "cpus.boot_vcpus");
	expect_refused("{\"cpus\": {\"boot_vcpus\": 2, \"max_vcpus\": 4}, \"payload\": {\"kernel\": \"%s\"}}", "hotplug");
	expect_refused("{\"memory\": {\"size\": 1099511627776}, \"payload\": {\"kernel\": \"%s\"}}", "memory.size");
	expect_refused("{\"memory\": {\"size\": 16777217}, \"payload\": {\"kernel\": \"%s\"}}", "memory.size");
	expect_refused("{\"memory\": {\"size\": -1}, \"payload\": {\"kernel\": \"%s\"}}", "memory.size");
	expect_refused("{\"memory\": {\"size\": \"4G\"}, \"payload\": {\"kernel\": \"%s\"}}", "memory.size");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"disks\": [{\"path\": \"%s\"}, {\"path\": \"%2$s\"},"
		       " {\"path\": \"%2$s\"}, {\"path\": \"%2$s\"}, {\"path\": \"%2$s\"}]}", "disks");
}

Test(vmconfig, ten_thousand_disks_are_refused)
{
	struct json_object *o = json_object_new_object(), *p = json_object_new_object(),
			   *disks = json_object_new_array();
	Cloister__VmConfig *cfg = NULL;
	char err[256] = "";

	json_object_object_add(p, "kernel", json_object_new_string(kernel));
	json_object_object_add(o, "payload", p);
	for (int i = 0; i < 10000; i++) {
		struct json_object *d = json_object_new_object();

		json_object_object_add(d, "path", json_object_new_string(disk));
		json_object_array_add(disks, d);
	}
	json_object_object_add(o, "disks", disks);
	cr_expect_eq(vmconfig_from_json(o, &base, &cfg, err, sizeof(err)), -EINVAL);
	cr_expect_null(cfg);
	json_object_put(o);
}

Test(vmconfig, bad_paths_are_refused)
{
	char fifo[300], memfile[300], vmjson[300];
	Cloister__VmConfig *cfg = NULL;
	char err[256] = "", text[1024];
	struct json_object *o;

	expect_refused("{\"payload\": {\"kernel\": \"%.0srelative/Image\"}}", "absolute");
	expect_refused("{\"payload\": {\"kernel\": \"/tmp/../%.0setc/Image\"}}", "'..'");
	expect_refused("{\"payload\": {\"kernel\": \"/%.0s\"}}", "not a regular file");
	expect_refused("{\"payload\": {}}", "payload.kernel is required");
	expect_refused("{}", "payload is required");
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	snprintf(text, sizeof(text), "{\"payload\": {\"kernel\": \"%s\"}}", fifo);
	o = json_tokener_parse(text);
	cr_expect_eq(vmconfig_from_json(o, &base, &cfg, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "not a regular file"), "%s", err);
	json_object_put(o);
	/* Another VM's guest memory, from a snapshot directory, is no disk. */
	snprintf(memfile, sizeof(memfile), "%s/memory-region-0", dir);
	snprintf(vmjson, sizeof(vmjson), "%s/vm.json", dir);
	touch(memfile, 1 << 20);
	touch(vmjson, 10);
	snprintf(text, sizeof(text), "{\"payload\": {\"kernel\": \"%s\"}, \"disks\": [{\"path\": \"%s\"}]}",
		 kernel, memfile);
	o = json_tokener_parse(text);
	cr_expect_eq(vmconfig_from_json(o, &base, &cfg, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "guest memory"), "%s", err);
	json_object_put(o);
}

Test(vmconfig, unsupported_features_are_named)
{
	expect_refused("{\"payload\": {\"kernel\": \"%s\", \"firmware\": \"/x\"}}", "payload.firmware");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"balloon\": {\"size\": 1}}", "balloon");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"iommu\": true}", "iommu");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"serial\": {\"mode\": \"Bogus\"}}", "serial.mode");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"console\": {\"mode\": \"Socket\", \"socket\": \"/s\"}}",
		       "console.mode");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"serial\": {\"mode\": \"Socket\", \"socket\": "
		       "\"/run/api.sock\"}}", "API socket");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"net\": [{\"tap\": \"a/b\"}]}", "net[0].tap");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"net\": [{\"tap\": \"t\", \"mac\": \"01:00:00:00:00:00\"}]}",
		       "net[0].mac");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"disks\": [{\"path\": \"%s\", \"id\": \"x\"}],"
		       " \"net\": [{\"tap\": \"t\", \"id\": \"x\"}]}", "twice");
	expect_refused("{\"payload\": {\"kernel\": \"%s\"}, \"rng\": {\"src\": \"/dev/hwrng\"}}", "rng.src");
}
