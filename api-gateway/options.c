/* SPDX-License-Identifier: Apache-2.0 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "config.h"
#include "options_values.h"

#define DEFAULT_SANDBOX_USER "nobody"

enum opt_arg { ARG_NONE, ARG_REQUIRED, ARG_OPTIONAL };

struct parse_ctx {
	struct vm_options o;
	const char *sandbox_user;
	unsigned seen;		/* bit per option, to refuse repeats */
	int exit_now;		/* 1 after --help/--version */
	char *err;
	size_t errlen;
};

struct opt_def {
	const char *name;
	char short_name;
	enum opt_arg arg;
	int (*apply)(struct parse_ctx *c, const char *value);
};

static int fail(struct parse_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parse_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int set_string(struct parse_ctx *c, char **slot, const char *value, const char *what, bool allow_empty)
{
	if (!allow_empty && !*value)
		return fail(c, "%s needs a non-empty value", what);
	if (strnlen(value, OPTIONS_VALUE_MAX) >= OPTIONS_VALUE_MAX)
		return fail(c, "%s is longer than %u bytes", what, OPTIONS_VALUE_MAX - 1);
	*slot = strdup(value);
	if (!*slot)
		return -ENOMEM;
	return 0;
}

static int apply_api_socket(struct parse_ctx *c, const char *value)
{
	if (strncmp(value, "fd=", 3) == 0)
		return fail(c, "--api-socket fd=N is not supported: give path=PATH");
	if (strncmp(value, "path=", 5) == 0)
		value += 5;
	return set_string(c, &c->o.api_socket, value, "--api-socket", false);
}

static int apply_cpus(struct parse_ctx *c, const char *value)
{
	struct kv kvs[] = { { .key = "boot" } };
	_cleanup_free_ char *copy = strdup(value);
	const char *bad, *problem;
	uint64_t n;

	if (!copy)
		return -ENOMEM;
	if (options_kv_split(copy, kvs, ARRAY_SIZE(kvs), &bad, &problem) < 0)
		return fail(c, "--cpus: %s '%s' (expected boot=N)", problem, bad);
	if (!kvs[0].value)
		return fail(c, "--cpus needs boot=N");
	if (parse_size(kvs[0].value, &n) < 0 || strpbrk(kvs[0].value, "KMG") ||
	    n < 1 || n > OPTIONS_CPUS_MAX)
		return fail(c, "--cpus boot=%s: expected a number from 1 to %u", kvs[0].value,
			    OPTIONS_CPUS_MAX);
	c->o.cpus = (unsigned)n;
	return 0;
}

static int apply_memory(struct parse_ctx *c, const char *value)
{
	struct kv kvs[] = { { .key = "size" } };
	_cleanup_free_ char *copy = strdup(value);
	const char *bad, *problem;
	uint64_t size;

	if (!copy)
		return -ENOMEM;
	if (options_kv_split(copy, kvs, ARRAY_SIZE(kvs), &bad, &problem) < 0)
		return fail(c, "--memory: %s '%s' (expected size=N[K|M|G])", problem, bad);
	if (!kvs[0].value)
		return fail(c, "--memory needs size=N[K|M|G]");
	if (parse_size(kvs[0].value, &size) < 0)
		return fail(c, "--memory size=%s: not a size", kvs[0].value);
	if (size < OPTIONS_MEMORY_MIN || size > OPTIONS_MEMORY_MAX)
		return fail(c, "--memory size=%s: must be between 16M and 64G", kvs[0].value);
	if (size % OPTIONS_PAGE_SIZE)
		return fail(c, "--memory size=%s: must be a multiple of 4K", kvs[0].value);
	c->o.memory_size = size;
	return 0;
}

static int apply_kernel(struct parse_ctx *c, const char *value)
{
	return set_string(c, &c->o.kernel, value, "--kernel", false);
}

static int apply_config(struct parse_ctx *c, const char *value)
{
	return set_string(c, &c->o.config_path, value, "--config", false);
}

static int apply_event_monitor(struct parse_ctx *c, const char *value)
{
	return set_string(c, &c->o.event_monitor, value, "--event-monitor", false);
}

static int apply_initramfs(struct parse_ctx *c, const char *value)
{
	return set_string(c, &c->o.initramfs, value, "--initramfs", false);
}

static int apply_cmdline(struct parse_ctx *c, const char *value)
{
	return set_string(c, &c->o.cmdline, value, "--cmdline", true);
}

/*
 * A path the gateway creates or opens for a sink: absolute, so it does not
 * depend on where cloister was started.
 */
static int set_sink_path(struct parse_ctx *c, char **slot, const char *opt, const char *key,
			 const char *path, size_t max)
{
	char what[32];

	snprintf(what, sizeof(what), "%s %s=", opt, key);
	if (!*path)
		return fail(c, "%s needs a path", what);
	if (path[0] != '/')
		return fail(c, "%s%s: the path must be absolute", what, path);
	if (strnlen(path, max) >= max)
		return fail(c, "%s: the path is longer than %zu bytes", what, max - 1);
	return set_string(c, slot, path, what, false);
}

/* off|null|tty|pty|file=PATH; socket=PATH for --serial only, as in Cloud Hypervisor. */
static int apply_sink(struct parse_ctx *c, const char *opt, const char *value, bool socket_ok,
		      Cloister__SerialMode *ret_mode, char **ret_path)
{
	if (options_serial_mode(value, ret_mode) == 0)
		return 0;
	if (strncmp(value, "file=", 5) == 0) {
		*ret_mode = CLOISTER__SERIAL_MODE__SERIAL_FILE;
		return set_sink_path(c, ret_path, opt, "file", value + 5, PATH_MAX);
	}
	if (socket_ok && strncmp(value, "socket=", 7) == 0) {
		*ret_mode = CLOISTER__SERIAL_MODE__SERIAL_SOCKET;
		return set_sink_path(c, ret_path, opt, "socket", value + 7, OPTIONS_SOCKET_PATH_MAX);
	}
	return fail(c, "%s %s: expected off, null, tty, pty%s or file=PATH", opt, value,
		    socket_ok ? ", socket=PATH" : "");
}

static int apply_serial(struct parse_ctx *c, const char *value)
{
	return apply_sink(c, "--serial", value, true, &c->o.serial_mode, &c->o.serial_path);
}

static int apply_console(struct parse_ctx *c, const char *value)
{
	return apply_sink(c, "--console", value, false, &c->o.console_mode, &c->o.console_path);
}

static int apply_rng(struct parse_ctx *c, const char *value)
{
	struct kv kvs[] = { { .key = "src" } };
	_cleanup_free_ char *copy = NULL;
	const char *bad, *problem;

	c->o.rng = true;
	if (!value)
		return 0;
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	if (options_kv_split(copy, kvs, ARRAY_SIZE(kvs), &bad, &problem) < 0)
		return fail(c, "--rng: %s '%s' (expected src=/dev/urandom)", problem, bad);
	/* Entropy comes from getrandom(); naming another source would be ignored silently. */
	if (kvs[0].value && strcmp(kvs[0].value, "/dev/urandom") != 0 &&
	    strcmp(kvs[0].value, "/dev/random") != 0)
		return fail(c, "--rng src=%s: only /dev/urandom is supported", kvs[0].value);
	return 0;
}

/* --disk path=FILE[,readonly=on|off][,id=NAME], repeatable. */
static int apply_disk(struct parse_ctx *c, const char *value)
{
	struct kv kvs[] = { { .key = "path" }, { .key = "readonly" }, { .key = "id" } };
	_cleanup_free_ char *copy = NULL;
	struct disk_option *d;
	const char *bad, *problem;
	char id[16];

	if (!value)
		return fail(c, "--disk needs path=FILE");
	if (c->o.n_disks >= OPTIONS_MAX_DISKS)
		return fail(c, "--disk: at most %d disks", OPTIONS_MAX_DISKS);
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	if (options_kv_split(copy, kvs, ARRAY_SIZE(kvs), &bad, &problem) < 0)
		return fail(c, "--disk: %s '%s' (expected path=FILE[,readonly=on][,id=NAME])", problem, bad);
	if (!kvs[0].value)
		return fail(c, "--disk %s: path= is required", value);
	d = &c->o.disks[c->o.n_disks];
	if (kvs[1].value && parse_bool(kvs[1].value, &d->readonly) < 0)
		return fail(c, "--disk readonly=%s: expected on or off", kvs[1].value);
	if (kvs[2].value && !options_device_id_ok(kvs[2].value))
		return fail(c, "--disk id=%s: 1..32 letters, digits, '-' or '_'", kvs[2].value);
	snprintf(id, sizeof(id), "disk%zu", c->o.n_disks);
	if (options_dup(&d->path, kvs[0].value) < 0 ||
	    options_dup(&d->id, kvs[2].value ? kvs[2].value : id) < 0)
		return -ENOMEM;
	c->o.n_disks++;
	return 0;
}

/* --net tap=NAME[,mac=MAC][,id=NAME], repeatable. */
static int apply_net(struct parse_ctx *c, const char *value)
{
	struct kv kvs[] = { { .key = "tap" }, { .key = "mac" }, { .key = "id" } };
	_cleanup_free_ char *copy = NULL;
	struct net_option *n;
	const char *bad, *problem;
	char id[16];

	if (!value)
		return fail(c, "--net needs tap=NAME");
	if (c->o.n_nets >= OPTIONS_MAX_NETS)
		return fail(c, "--net: at most %d network devices", OPTIONS_MAX_NETS);
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	if (options_kv_split(copy, kvs, ARRAY_SIZE(kvs), &bad, &problem) < 0)
		return fail(c, "--net: %s '%s' (expected tap=NAME[,mac=MAC][,id=NAME])", problem, bad);
	if (!kvs[0].value || strlen(kvs[0].value) >= 16 || strchr(kvs[0].value, '/'))
		return fail(c, "--net %s: tap=NAME (under 16 characters) is required", value);
	if (kvs[1].value && !options_mac_ok(kvs[1].value))
		return fail(c, "--net mac=%s: expected a unicast XX:XX:XX:XX:XX:XX", kvs[1].value);
	if (kvs[2].value && !options_device_id_ok(kvs[2].value))
		return fail(c, "--net id=%s: 1..32 letters, digits, '-' or '_'", kvs[2].value);
	n = &c->o.nets[c->o.n_nets];
	snprintf(id, sizeof(id), "net%zu", c->o.n_nets);
	if (options_dup(&n->tap, kvs[0].value) < 0 ||
	    (kvs[1].value && options_dup(&n->mac, kvs[1].value) < 0) ||
	    options_dup(&n->id, kvs[2].value ? kvs[2].value : id) < 0)
		return -ENOMEM;
	c->o.n_nets++;
	return 0;
}

static int apply_restore_bind(struct parse_ctx *c, const char *value)
{
	int r = parse_restore_bind(value, &c->o.restore_binds, c->err, c->errlen);

	return r == -ENOMEM ? r : (r < 0 ? -EINVAL : 0);
}

static int apply_restore_key_file(struct parse_ctx *c, const char *value)
{
	if (!options_abs_path_ok(value, PATH_MAX))
		return fail(c, "--restore-key-file needs an absolute path");
	free(c->o.restore_key_file);
	c->o.restore_key_file = strdup(value);
	return c->o.restore_key_file ? 0 : -ENOMEM;
}

static int apply_restore_key_credential(struct parse_ctx *c, const char *value)
{
	if (!value[0] || strchr(value, '/') || strlen(value) > 255)
		return fail(c, "--restore-key-credential needs a credential's name");
	free(c->o.restore_key_credential);
	c->o.restore_key_credential = strdup(value);
	return c->o.restore_key_credential ? 0 : -ENOMEM;
}

static int apply_host_key(struct parse_ctx *c, const char *value)
{
	if (!options_abs_path_ok(value, PATH_MAX))
		return fail(c, "--host-key needs an absolute path");
	return set_string(c, &c->o.host_key, value, "--host-key", false);
}

/* FIRST-LAST, inclusive; neither end may be root's or the overflow id. */
static int apply_uid_range(struct parse_ctx *c, const char *value)
{
	unsigned long first, last;
	char *end;

	errno = 0;
	first = strtoul(value, &end, 10);
	if (errno || end == value || *end != '-' || !isdigit((unsigned char)end[1]))
		return fail(c, "--sandbox-uid-range %s: expected FIRST-LAST", value);
	last = strtoul(end + 1, &end, 10);
	if (errno || *end || first == 0 || last < first || last >= 0xfffffffeul)
		return fail(c, "--sandbox-uid-range %s: expected FIRST-LAST, 0 < FIRST <= LAST", value);
	c->o.uid_range_first = (uid_t)first;
	c->o.uid_range_count = (uint32_t)(last - first + 1);
	return 0;
}

static int apply_seccomp_trap(struct parse_ctx *c, const char *value)
{
	c->o.seccomp_trap = true;
	return 0;
}

static int apply_restore(struct parse_ctx *c, const char *value)
{
	int r = parse_restore_spec(value, &c->o.restore_source_url, &c->o.restore_resume,
				   &c->o.restore_mode);

	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return fail(c, "--restore %s: expected source_url=file:///ABS/DIR[,resume=true|false]"
			    "[,memory_restore_mode=Copy|OnDemand][,prefault=true|false]", value);
	return 0;
}

static int apply_sandbox_user(struct parse_ctx *c, const char *value)
{
	if (!*value)
		return fail(c, "--sandbox-user needs USER[:GROUP]");
	c->sandbox_user = value;
	c->o.sandbox_user_given = true;
	return 0;
}

static int apply_verbose(struct parse_ctx *c, const char *value)
{
	c->o.verbose = true;
	return 0;
}

static void print_usage(FILE *f)
{
	fputs("Usage: cloister [OPTIONS]\n"
	      "  --api-socket [path=]PATH     REST API socket (Cloud Hypervisor compatible)\n"
	      "  --cpus boot=N                vCPUs, 1..64 (default 1)\n"
	      "  --memory size=N[K|M|G]       guest RAM, 16M..64G (default 512M)\n"
	      "  --kernel PATH                riscv64 kernel Image to boot\n"
	      "  --config FILE                create and boot the VM a VmConfig JSON file describes\n"
	      "                               (Cloud Hypervisor's schema, as vm.create takes it)\n"
	      "  --event-monitor path=FILE|fd=N\n"
	      "                               one JSON line per lifecycle event\n"
	      "  --initramfs PATH             initramfs to load\n"
	      "  --cmdline STRING             kernel command line\n"
	      "  --serial off|null|tty|pty|file=PATH|socket=PATH\n"
	      "                               the serial console (default tty)\n"
	      "  --console off|null|tty|pty|file=PATH\n"
	      "                               virtio-console, hvc0 in the guest (default off)\n"
	      "  --rng [src=/dev/urandom]     add a virtio-rng device\n"
	      "  --disk path=FILE[,readonly=on][,id=NAME]  add a virtio-blk disk (repeatable)\n"
	      "  --net tap=NAME[,mac=MAC][,id=NAME]        add a virtio-net NIC on a tap (repeatable)\n"
	      "  --restore source_url=file:///DIR[,resume=true|false]\n"
	      "  --restore-bind id=DEVICE,path=IMAGE|tap=NAME|file=PATH|socket=PATH|mode=M\n"
	      "                               the host resource of one device of the restored VM\n"
	      "                               (id=serial for the serial port; repeatable)\n"
	      "  --restore-key-file PATH      the key of an encrypted snapshot (32 bytes or 64 hex)\n"
	      "  --restore-key-credential NAME  the same, from $CREDENTIALS_DIRECTORY\n"
	      "  --host-key PATH              key that seals snapshots' host bindings\n"
	      "  --sandbox-user USER[:GROUP]  one identity for every VM's children\n"
	      "  --sandbox-uid-range FIRST-LAST  uids (and gids) to give each VM its own\n"
	      "                               (default 4000000-4099999)\n"
	      "  --seccomp-trap               report a child's forbidden syscall instead of\n"
	      "                               killing it silently (development)\n"
	      "  -v, --verbose                more logging\n"
	      "  -h, --help                   this text\n"
	      "  -V, --version                print the version\n", f);
}

static int apply_help(struct parse_ctx *c, const char *value)
{
	print_usage(stdout);
	c->exit_now = 1;
	return 0;
}

static int apply_version(struct parse_ctx *c, const char *value)
{
	printf("cloister %s\n", CLOISTER_VERSION);
	c->exit_now = 1;
	return 0;
}

static const struct opt_def opt_defs[] = {
	{ "api-socket", 0, ARG_REQUIRED, apply_api_socket },
	{ "cpus", 0, ARG_REQUIRED, apply_cpus },
	{ "memory", 0, ARG_REQUIRED, apply_memory },
	{ "kernel", 0, ARG_REQUIRED, apply_kernel },
	{ "config", 0, ARG_REQUIRED, apply_config },
	{ "event-monitor", 0, ARG_REQUIRED, apply_event_monitor },
	{ "initramfs", 0, ARG_REQUIRED, apply_initramfs },
	{ "cmdline", 0, ARG_REQUIRED, apply_cmdline },
	{ "serial", 0, ARG_REQUIRED, apply_serial },
	{ "console", 0, ARG_REQUIRED, apply_console },
	{ "rng", 0, ARG_OPTIONAL, apply_rng },
	{ "disk", 0, ARG_OPTIONAL, apply_disk },
	{ "net", 0, ARG_OPTIONAL, apply_net },
	{ "restore", 0, ARG_REQUIRED, apply_restore },
	{ "sandbox-user", 0, ARG_REQUIRED, apply_sandbox_user },
	{ "restore-bind", 0, ARG_REQUIRED, apply_restore_bind },
	{ "host-key", 0, ARG_REQUIRED, apply_host_key },
	{ "restore-key-file", 0, ARG_REQUIRED, apply_restore_key_file },
	{ "restore-key-credential", 0, ARG_REQUIRED, apply_restore_key_credential },
	{ "sandbox-uid-range", 0, ARG_REQUIRED, apply_uid_range },
	{ "seccomp-trap", 0, ARG_NONE, apply_seccomp_trap },
	{ "verbose", 'v', ARG_NONE, apply_verbose },
	{ "help", 'h', ARG_NONE, apply_help },
	{ "version", 'V', ARG_NONE, apply_version },
};

static const struct opt_def *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(opt_defs); i++)
		if (strlen(opt_defs[i].name) == len && strncmp(opt_defs[i].name, name, len) == 0)
			return &opt_defs[i];
	return NULL;
}

static const struct opt_def *find_short(char name)
{
	for (size_t i = 0; i < ARRAY_SIZE(opt_defs); i++)
		if (opt_defs[i].short_name && opt_defs[i].short_name == name)
			return &opt_defs[i];
	return NULL;
}

/* Finds the option at argv[*i] and its value; advances *i past what it used. */
static int next_option(struct parse_ctx *c, int argc, char **argv, int *i,
		       const struct opt_def **ret_def, const char **ret_value)
{
	const char *arg = argv[*i], *eq, *value = NULL;
	const struct opt_def *def;

	if (arg[0] == '-' && arg[1] && arg[1] != '-' && !arg[2]) {
		def = find_short(arg[1]);
		if (!def)
			return fail(c, "unknown option '%s' (see --help)", arg);
	} else if (strncmp(arg, "--", 2) == 0 && arg[2]) {
		eq = strchr(arg + 2, '=');
		def = find_long(arg + 2, eq ? (size_t)(eq - arg - 2) : strlen(arg + 2));
		if (!def)
			return fail(c, "unknown option '%s' (see --help)", arg);
		if (eq && def->arg == ARG_NONE)
			return fail(c, "--%s takes no value", def->name);
		if (eq)
			value = eq + 1;
	} else
		return fail(c, "unexpected argument '%s' (see --help)", arg);

	(*i)++;
	if (!value && def->arg == ARG_REQUIRED) {
		if (*i >= argc)
			return fail(c, "--%s needs a value", def->name);
		value = argv[(*i)++];
	} else if (!value && def->arg == ARG_OPTIONAL && *i < argc && argv[*i][0] != '-')
		value = argv[(*i)++];
	*ret_def = def;
	*ret_value = value;
	return 0;
}

static int parse_id(const char *s, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= UINT32_MAX)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int resolve_group(struct parse_ctx *c, const char *name, gid_t *ret)
{
	struct group *gr = getgrnam(name);
	unsigned long id;

	if (gr) {
		*ret = gr->gr_gid;
		return 0;
	}
	if (parse_id(name, &id) == 0) {
		*ret = (gid_t)id;
		return 0;
	}
	return fail(c, "--sandbox-user: unknown group '%s'", name);
}

/* USER[:GROUP] by name or number; the group defaults to the user's primary one. */
static int resolve_sandbox_user(struct parse_ctx *c)
{
	_cleanup_free_ char *spec = strdup(c->sandbox_user);
	char *group;
	struct passwd *pw;
	unsigned long id;
	uid_t uid;
	gid_t gid = 0;
	bool have_gid = false;
	int r;

	if (!spec)
		return -ENOMEM;
	group = strchr(spec, ':');
	if (group) {
		*group++ = '\0';
		if (!*spec || !*group)
			return fail(c, "--sandbox-user %s: expected USER[:GROUP]", c->sandbox_user);
		r = resolve_group(c, group, &gid);
		if (r < 0)
			return r;
		have_gid = true;
	}
	pw = getpwnam(spec);
	if (pw) {
		uid = pw->pw_uid;
		if (!have_gid)
			gid = pw->pw_gid;
	} else if (parse_id(spec, &id) == 0 && have_gid)
		uid = (uid_t)id;
	else
		return fail(c, "--sandbox-user: unknown user '%s'%s", spec,
			    parse_id(spec, &id) == 0 ? " (give a group with UID:GID)" : "");
	/* Children running as root would undo the privilege separation. */
	if (uid == 0 || gid == 0)
		return fail(c, "--sandbox-user %s: children must not run as root", c->sandbox_user);
	c->o.child_uid = uid;
	c->o.child_gid = gid;
	return 0;
}

static int validate(struct parse_ctx *c)
{
	if (c->o.kernel && c->o.restore_source_url)
		return fail(c, "--kernel and --restore are mutually exclusive");
	if (c->o.config_path && (c->o.kernel || c->o.restore_source_url))
		return fail(c, "--config gives the whole VM: no --kernel or --restore with it");
	if (!c->o.kernel && c->o.initramfs)
		return fail(c, "--initramfs needs --kernel");
	if (!c->o.kernel && c->o.cmdline)
		return fail(c, "--cmdline needs --kernel");
	if (c->o.restore_binds.n && !c->o.restore_source_url)
		return fail(c, "--restore-bind needs --restore");
	if ((c->o.restore_key_file || c->o.restore_key_credential) && !c->o.restore_source_url)
		return fail(c, "--restore-key-file and --restore-key-credential need --restore");
	if (c->o.restore_key_file && c->o.restore_key_credential)
		return fail(c, "--restore-key-file and --restore-key-credential are mutually exclusive");
	if (c->o.sandbox_user_given && c->o.uid_range_count)
		return fail(c, "--sandbox-user and --sandbox-uid-range are mutually exclusive");
	if (!c->o.kernel && (c->o.n_disks || c->o.n_nets || c->o.rng ||
			     c->o.console_mode != CLOISTER__SERIAL_MODE__SERIAL_OFF))
		return fail(c, "devices need --kernel (a restored VM brings its own)");
	if (c->o.serial_mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET && c->o.api_socket &&
	    strcmp(c->o.serial_path, c->o.api_socket) == 0)
		return fail(c, "--serial socket=%s is the API socket", c->o.serial_path);
	for (size_t i = 0; i < c->o.n_disks + c->o.n_nets; i++) {
		const char *a = i < c->o.n_disks ? c->o.disks[i].id : c->o.nets[i - c->o.n_disks].id;

		for (size_t j = i + 1; j < c->o.n_disks + c->o.n_nets; j++) {
			const char *b = j < c->o.n_disks ? c->o.disks[j].id :
				c->o.nets[j - c->o.n_disks].id;

			if (strcmp(a, b) == 0)
				return fail(c, "device id %s is used twice", a);
		}
	}
	return resolve_sandbox_user(c);
}

static int parse_all(struct parse_ctx *c, int argc, char **argv)
{
	int i = 1, r;

	while (i < argc) {
		const struct opt_def *def = NULL;
		const char *value = NULL;
		unsigned bit;

		r = next_option(c, argc, argv, &i, &def, &value);
		if (r < 0)
			return r;
		bit = 1u << (def - opt_defs);
		if ((c->seen & bit) && def->apply != apply_verbose && def->apply != apply_disk &&
		    def->apply != apply_net && def->apply != apply_restore_bind)
			return fail(c, "--%s given more than once", def->name);
		c->seen |= bit;
		r = def->apply(c, value);
		if (r < 0)
			return r;
		if (c->exit_now)
			return 1;
	}
	return validate(c);
}

int options_parse(int argc, char **argv, struct vm_options *ret, char *err, size_t errlen)
{
	struct parse_ctx c = {
		.o = {
			.cpus = 1,
			.memory_size = OPTIONS_MEMORY_DEFAULT,
			.serial_mode = CLOISTER__SERIAL_MODE__SERIAL_TTY,
		},
		.sandbox_user = DEFAULT_SANDBOX_USER,
		.err = err,
		.errlen = errlen,
	};
	int r;

	if (err && errlen)
		err[0] = '\0';
	r = parse_all(&c, argc, argv);
	if (r == 0 && !c.o.sandbox_user_given && !c.o.uid_range_count) {
		c.o.uid_range_first = OPTIONS_UID_RANGE_FIRST;
		c.o.uid_range_count = OPTIONS_UID_RANGE_COUNT;
	}
	if (r == -ENOMEM)
		fail(&c, "out of memory");
	if (r != 0) {
		options_free(&c.o);
		return r == 1 ? 1 : -EINVAL;
	}
	*ret = c.o;
	return 0;
}

void options_free(struct vm_options *o)
{
	if (!o)
		return;
	free(o->api_socket);
	free(o->kernel);
	free(o->config_path);
	free(o->event_monitor);
	free(o->initramfs);
	free(o->cmdline);
	free(o->serial_path);
	free(o->restore_source_url);
	free(o->console_path);
	free(o->host_key);
	free(o->restore_key_file);
	free(o->restore_key_credential);
	restore_binds_free(&o->restore_binds);
	for (size_t i = 0; i < o->n_disks; i++) {
		free(o->disks[i].path);
		free(o->disks[i].id);
	}
	for (size_t i = 0; i < o->n_nets; i++) {
		free(o->nets[i].tap);
		free(o->nets[i].mac);
		free(o->nets[i].id);
	}
	*o = (struct vm_options){ 0 };
}
