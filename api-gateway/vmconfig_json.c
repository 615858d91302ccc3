/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cloud Hypervisor's VmConfig JSON (the body of vm.create, and --config) to
 * the options a command line would give, then to a Cloister__VmConfig. What
 * Cloister cannot do is refused by name; keys it has nothing to do for are
 * accepted only at their default (null, false, 0 or empty).
 */
#include "vmconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "errmsg.h"

#define CMDLINE_MAX 4096u

/* Where a check failed, for the message: "disks[1].path". */
struct where {
	char at[64];
};

static bool value_is_default(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return true;
	case json_type_boolean:
		return !json_object_get_boolean(v);
	case json_type_int:
		return json_object_get_int64(v) == 0;
	case json_type_array:
		return json_object_array_length(v) == 0;
	default:
		return false;
	}
}

static bool key_in(const char *key, const char *const *keys)
{
	for (size_t i = 0; keys[i]; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

/*
 * Every key of o is one Cloister reads (known), one it ignores whatever its
 * value (ignored: tuning Cloister does its own way), or at its default.
 */
static int check_keys(struct json_object *o, const char *what, const char *const *known,
		      const char *const *ignored, char *err, size_t errlen)
{
	if (!json_object_is_type(o, json_type_object)) {
		err_set(err, errlen, "%s must be an object", what);
		return -EINVAL;
	}
	json_object_object_foreach(o, key, val) {
		if (key_in(key, known) || (ignored && key_in(key, ignored)) || value_is_default(val))
			continue;
		err_set(err, errlen, "%s.%s is not supported by Cloister", what, key);
		return -EINVAL;
	}
	return 0;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return v;
}

static int get_string(struct json_object *o, const char *what, const char *key, size_t max,
		      const char **ret, char *err, size_t errlen)
{
	struct json_object *v = get(o, key);

	*ret = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string) || (size_t)json_object_get_string_len(v) >= max ||
	    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
		err_set(err, errlen, "%s.%s must be a string of under %zu bytes", what, key, max);
		return -EINVAL;
	}
	*ret = json_object_get_string(v);
	return 0;
}

static int get_bool(struct json_object *o, const char *what, const char *key, bool *ret,
		    char *err, size_t errlen)
{
	struct json_object *v = get(o, key);

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		err_set(err, errlen, "%s.%s must be true or false", what, key);
		return -EINVAL;
	}
	*ret = json_object_get_boolean(v);
	return 0;
}

static int get_u64(struct json_object *o, const char *what, const char *key, uint64_t min,
		   uint64_t max, uint64_t *ret, char *err, size_t errlen)
{
	struct json_object *v = get(o, key);
	int64_t n;

	if (!v)
		return 0;
	errno = 0;
	n = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || errno || n < 0 || (uint64_t)n < min ||
	    (uint64_t)n > max) {
		err_set(err, errlen, "%s.%s must be a whole number from %llu to %llu", what, key,
			(unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*ret = (uint64_t)n;
	return 0;
}

static int dup_to(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

/* ---- host paths ---- */

static bool path_has_dotdot(const char *p)
{
	for (const char *s = p; (s = strstr(s, "..")); s += 2)
		if ((s == p || s[-1] == '/') && (s[2] == '/' || s[2] == '\0'))
			return true;
	return false;
}

static int check_path_syntax(const char *path, const char *what, char *err, size_t errlen)
{
	if (path[0] != '/' || path_has_dotdot(path) || strlen(path) >= PATH_MAX) {
		err_set(err, errlen, "%s must be an absolute path without '..'", what);
		return -EINVAL;
	}
	return 0;
}

/* A file the VM will read: it must be a regular file now (not a directory, FIFO or device). */
static int check_regular_file(const char *path, const char *what, char *err, size_t errlen)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r = check_path_syntax(path, what, err, errlen);

	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		err_set(err, errlen, "%s %s cannot be opened: %m", what, path);
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, errlen, "%s %s is not a regular file", what, path);
		return -EINVAL;
	}
	return 0;
}

/* A snapshot's memory file given as a disk would hand one VM's memory to another. */
static int check_not_snapshot_memory(const char *path, const char *what, char *err, size_t errlen)
{
	const char *base = strrchr(path, '/') + 1;
	char vmjson[PATH_MAX];
	int n = (int)(base - path);

	if (strncmp(base, "memory-region-", 14) != 0)
		return 0;
	snprintf(vmjson, sizeof(vmjson), "%.*svm.json", n, path);
	if (access(vmjson, F_OK) == 0) {
		err_set(err, errlen, "%s %s is a snapshot's guest memory, not a disk image", what, path);
		return -EINVAL;
	}
	return 0;
}

/* ---- the sections ---- */

static int parse_cpus(struct json_object *o, struct vm_options *vo, char *err, size_t errlen)
{
	static const char *const known[] = { "boot_vcpus", "max_vcpus", NULL };
	static const char *const ignored[] = { "nested", "max_phys_bits", NULL };
	uint64_t boot = 1, max = 0;
	int r = check_keys(o, "cpus", known, ignored, err, errlen);

	if (r == 0)
		r = get_u64(o, "cpus", "boot_vcpus", 1, OPTIONS_CPUS_MAX, &boot, err, errlen);
	if (r == 0)
		r = get_u64(o, "cpus", "max_vcpus", 1, OPTIONS_CPUS_MAX, &max, err, errlen);
	if (r < 0)
		return r;
	if (max && max != boot) {
		err_set(err, errlen, "cpus.max_vcpus must equal boot_vcpus: Cloister has no vCPU hotplug");
		return -EINVAL;
	}
	vo->cpus = (unsigned)boot;
	return 0;
}

static int parse_memory(struct json_object *o, struct vm_options *vo, char *err, size_t errlen)
{
	static const char *const known[] = { "size", NULL };
	static const char *const ignored[] = { "thp", "hotplug_method", NULL };
	uint64_t size = 0;
	int r = check_keys(o, "memory", known, ignored, err, errlen);

	if (r == 0)
		r = get_u64(o, "memory", "size", OPTIONS_MEMORY_MIN, OPTIONS_MEMORY_MAX, &size, err, errlen);
	if (r < 0)
		return r;
	if (!size || size % OPTIONS_PAGE_SIZE) {
		err_set(err, errlen, "memory.size is required, a multiple of 4096 from 16 MiB to 64 GiB");
		return -EINVAL;
	}
	vo->memory_size = size;
	return 0;
}

static int parse_payload(struct json_object *o, struct vm_options *vo, char *err, size_t errlen)
{
	static const char *const known[] = { "kernel", "initramfs", "cmdline", NULL };
	const char *kernel, *initramfs, *cmdline;
	int r = check_keys(o, "payload", known, NULL, err, errlen);

	if (r == 0)
		r = get_string(o, "payload", "kernel", PATH_MAX, &kernel, err, errlen);
	if (r == 0)
		r = get_string(o, "payload", "initramfs", PATH_MAX, &initramfs, err, errlen);
	if (r == 0)
		r = get_string(o, "payload", "cmdline", CMDLINE_MAX, &cmdline, err, errlen);
	if (r < 0)
		return r;
	if (!kernel) {
		err_set(err, errlen, "payload.kernel is required");
		return -EINVAL;
	}
	r = check_regular_file(kernel, "payload.kernel", err, errlen);
	if (r == 0 && initramfs)
		r = check_regular_file(initramfs, "payload.initramfs", err, errlen);
	if (r < 0)
		return r;
	if (dup_to(&vo->kernel, kernel) < 0 || dup_to(&vo->initramfs, initramfs) < 0 ||
	    dup_to(&vo->cmdline, cmdline) < 0)
		return -ENOMEM;
	return 0;
}

static int parse_id(struct json_object *o, const char *what, const char *prefix, size_t index,
		    char **ret, char *err, size_t errlen)
{
	char fallback[24];
	const char *id;
	int r = get_string(o, what, "id", 64, &id, err, errlen);

	if (r < 0)
		return r;
	if (id && !options_device_id_ok(id)) {
		err_set(err, errlen, "%s.id must be 1..32 letters, digits, '-' or '_'", what);
		return -EINVAL;
	}
	snprintf(fallback, sizeof(fallback), "%s%zu", prefix, index);
	return dup_to(ret, id ? id : fallback);
}

static int parse_disk(struct json_object *o, const char *what, size_t i, struct disk_option *d,
		      char *err, size_t errlen)
{
	static const char *const known[] = { "path", "readonly", "id", NULL };
	static const char *const ignored[] = { "num_queues", "queue_size", "sparse", "direct", NULL };
	const char *path;
	int r = check_keys(o, what, known, ignored, err, errlen);

	if (r == 0)
		r = get_string(o, what, "path", PATH_MAX, &path, err, errlen);
	if (r == 0 && !path) {
		err_set(err, errlen, "%s.path is required", what);
		r = -EINVAL;
	}
	if (r == 0)
		r = check_regular_file(path, what, err, errlen);
	if (r == 0)
		r = check_not_snapshot_memory(path, what, err, errlen);
	if (r == 0)
		r = get_bool(o, what, "readonly", &d->readonly, err, errlen);
	if (r == 0)
		r = dup_to(&d->path, path);
	if (r == 0)
		r = parse_id(o, what, "disk", i, &d->id, err, errlen);
	return r;
}

static int parse_net(struct json_object *o, const char *what, size_t i, struct net_option *n,
		     char *err, size_t errlen)
{
	static const char *const known[] = { "tap", "mac", "id", NULL };
	static const char *const ignored[] = { "ip", "mask", "num_queues", "queue_size", "offload_tso",
					       "offload_ufo", "offload_csum", NULL };
	const char *tap, *mac;
	int r = check_keys(o, what, known, ignored, err, errlen);

	if (r == 0)
		r = get_string(o, what, "tap", IFNAMSIZ, &tap, err, errlen);
	if (r == 0)
		r = get_string(o, what, "mac", 18, &mac, err, errlen);
	if (r < 0)
		return r;
	if (!tap || !tap[0] || strchr(tap, '/')) {
		err_set(err, errlen, "%s.tap: the name of an existing tap (under 16 characters) is required",
			what);
		return -EINVAL;
	}
	if (mac && !options_mac_ok(mac)) {
		err_set(err, errlen, "%s.mac must be a unicast XX:XX:XX:XX:XX:XX", what);
		return -EINVAL;
	}
	if (dup_to(&n->tap, tap) < 0 || dup_to(&n->mac, mac) < 0)
		return -ENOMEM;
	return parse_id(o, what, "net", i, &n->id, err, errlen);
}

/* Ids name devices in vm.json, vm.counters and restore bindings: each once. */
static int check_unique_ids(const struct vm_options *vo, char *err, size_t errlen)
{
	const char *ids[OPTIONS_MAX_DISKS + OPTIONS_MAX_NETS];
	size_t n = 0;

	for (size_t i = 0; i < vo->n_disks; i++)
		ids[n++] = vo->disks[i].id;
	for (size_t i = 0; i < vo->n_nets; i++)
		ids[n++] = vo->nets[i].id;
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(ids[i], ids[j]) == 0) {
				err_set(err, errlen, "device id %s is given twice", ids[i]);
				return -EINVAL;
			}
	return 0;
}

/* disks[] and net[]: arrays of at most max objects. */
static int array_items(struct json_object *o, const char *key, size_t max, size_t *ret_n,
		       char *err, size_t errlen)
{
	struct json_object *a = get(o, key);

	*ret_n = 0;
	if (!a)
		return 0;
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > max) {
		err_set(err, errlen, "%s must be an array of at most %zu entries", key, max);
		return -EINVAL;
	}
	*ret_n = json_object_array_length(a);
	return 0;
}

static int parse_devices(struct json_object *o, struct vm_options *vo, char *err, size_t errlen)
{
	struct where w;
	size_t n;
	int r = array_items(o, "disks", OPTIONS_MAX_DISKS, &n, err, errlen);

	for (size_t i = 0; r == 0 && i < n; i++, vo->n_disks++) {
		snprintf(w.at, sizeof(w.at), "disks[%zu]", i);
		r = parse_disk(json_object_array_get_idx(get(o, "disks"), i), w.at, i, &vo->disks[i], err,
			       errlen);
	}
	if (r == 0)
		r = array_items(o, "net", OPTIONS_MAX_NETS, &n, err, errlen);
	for (size_t i = 0; r == 0 && i < n; i++, vo->n_nets++) {
		snprintf(w.at, sizeof(w.at), "net[%zu]", i);
		r = parse_net(json_object_array_get_idx(get(o, "net"), i), w.at, i, &vo->nets[i], err,
			      errlen);
	}
	return r < 0 ? r : check_unique_ids(vo, err, errlen);
}

static int parse_rng(struct json_object *o, struct vm_options *vo, char *err, size_t errlen)
{
	static const char *const known[] = { "src", "id", NULL };
	const char *src;
	int r = check_keys(o, "rng", known, NULL, err, errlen);

	if (r == 0)
		r = get_string(o, "rng", "src", PATH_MAX, &src, err, errlen);
	if (r < 0)
		return r;
	/* The device process draws from getrandom(); /dev/urandom is the same source. */
	if (src && strcmp(src, "/dev/urandom") != 0 && strcmp(src, "getrandom") != 0) {
		err_set(err, errlen, "rng.src: only /dev/urandom is supported");
		return -EINVAL;
	}
	vo->rng = true;
	return 0;
}

static const struct {
	const char *name;
	Cloister__SerialMode mode;
} sink_modes[] = {
	{ "Off", CLOISTER__SERIAL_MODE__SERIAL_OFF },
	{ "Null", CLOISTER__SERIAL_MODE__SERIAL_NULL },
	{ "Tty", CLOISTER__SERIAL_MODE__SERIAL_TTY },
	{ "File", CLOISTER__SERIAL_MODE__SERIAL_FILE },
	{ "Pty", CLOISTER__SERIAL_MODE__SERIAL_PTY },
	{ "Socket", CLOISTER__SERIAL_MODE__SERIAL_SOCKET },
};

/* serial and console: {mode, file, socket}. */
static int parse_sink(struct json_object *o, const char *what, bool socket_ok,
		      Cloister__SerialMode *ret_mode, char **ret_path, char *err, size_t errlen)
{
	static const char *const known[] = { "mode", "file", "socket", "id", NULL };
	const char *mode, *file, *sock, *path;
	size_t i;
	int r = check_keys(o, what, known, NULL, err, errlen);

	if (r == 0)
		r = get_string(o, what, "mode", 16, &mode, err, errlen);
	if (r == 0)
		r = get_string(o, what, "file", PATH_MAX, &file, err, errlen);
	if (r == 0)
		r = get_string(o, what, "socket", OPTIONS_SOCKET_PATH_MAX, &sock, err, errlen);
	if (r < 0)
		return r;
	for (i = 0; mode && i < ARRAY_SIZE(sink_modes); i++)
		if (strcmp(mode, sink_modes[i].name) == 0)
			break;
	if (!mode || i == ARRAY_SIZE(sink_modes) ||
	    (!socket_ok && sink_modes[i].mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET)) {
		err_set(err, errlen, "%s.mode must be one of Off, Null, Tty, File, Pty%s", what,
			socket_ok ? ", Socket" : "");
		return -EINVAL;
	}
	*ret_mode = sink_modes[i].mode;
	path = *ret_mode == CLOISTER__SERIAL_MODE__SERIAL_FILE ? file :
	       *ret_mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET ? sock : NULL;
	if ((*ret_mode == CLOISTER__SERIAL_MODE__SERIAL_FILE ||
	     *ret_mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET) && !path) {
		err_set(err, errlen, "%s: mode %s needs %s", what, mode,
			*ret_mode == CLOISTER__SERIAL_MODE__SERIAL_FILE ? "file" : "socket");
		return -EINVAL;
	}
	if (path && (r = check_path_syntax(path, what, err, errlen)) < 0)
		return r;
	return dup_to(ret_path, path);
}

static int parse_sections(struct json_object *o, struct vm_options *vo, char *err, size_t errlen)
{
	static const char *const known[] = { "cpus", "memory", "payload", "disks", "net", "rng",
					     "serial", "console", NULL };
	/* snapshot_on_stop, Cloister's own key, is read by service.c when cloister runs as a service. */
	static const char *const ignored[] = { "platform", "snapshot_on_stop", NULL };
	struct json_object *v;
	int r = check_keys(o, "the VM config", known, ignored, err, errlen);

	if (r == 0 && (v = get(o, "cpus")))
		r = parse_cpus(v, vo, err, errlen);
	if (r == 0 && (v = get(o, "memory")))
		r = parse_memory(v, vo, err, errlen);
	if (r == 0 && !(v = get(o, "payload"))) {
		err_set(err, errlen, "payload is required");
		r = -EINVAL;
	}
	if (r == 0)
		r = parse_payload(v, vo, err, errlen);
	if (r == 0)
		r = parse_devices(o, vo, err, errlen);
	if (r == 0 && (v = get(o, "rng")))
		r = parse_rng(v, vo, err, errlen);
	if (r == 0 && (v = get(o, "serial")))
		r = parse_sink(v, "serial", true, &vo->serial_mode, &vo->serial_path, err, errlen);
	if (r == 0 && (v = get(o, "console")))
		r = parse_sink(v, "console", false, &vo->console_mode, &vo->console_path, err, errlen);
	return r;
}

static int check_api_socket(const struct vm_options *vo, const struct vm_options *base, char *err,
			    size_t errlen)
{
	if (vo->serial_mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET && base->api_socket &&
	    strcmp(vo->serial_path, base->api_socket) == 0) {
		err_set(err, errlen, "serial.socket is the API socket");
		return -EINVAL;
	}
	return 0;
}

int vmconfig_from_json(struct json_object *o, const struct vm_options *base,
		       Cloister__VmConfig **ret, char *err, size_t errlen)
{
	struct vm_options vo = {
		.cpus = 1,
		.memory_size = OPTIONS_MEMORY_DEFAULT,
		/* A VMM driven over its API has no terminal to give the guest. */
		.serial_mode = CLOISTER__SERIAL_MODE__SERIAL_NULL,
		.console_mode = CLOISTER__SERIAL_MODE__SERIAL_OFF,
		.child_uid = base->child_uid,
		.child_gid = base->child_gid,
	};
	int r = parse_sections(o, &vo, err, errlen);

	if (r == 0)
		r = check_api_socket(&vo, base, err, errlen);
	if (r == 0) {
		*ret = vmconfig_from_options(&vo);
		if (!*ret)
			r = -ENOMEM;
	}
	options_free(&vo);
	return r;
}
