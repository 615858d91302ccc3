/* SPDX-License-Identifier: Apache-2.0 */
#include "controller.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "devices.h"
#include "frame.h"
#include "layout.h"
#include "lifecycle.h"
#include "log.h"
#include "spawn.h"

#define MAX_DEVICES LAYOUT_VIRTIO_SLOTS
#define HELLO_TIMEOUT_MS 5000
#define CALL_TIMEOUT_MS 10000
/* Copying guest memory to or from disk may take a while for large guests. */
#define SNAPSHOT_TIMEOUT_MS (10 * 60 * 1000)
#define REGION_FILE_FMT "memory-region-%zu"
#define PARTIAL_SUFFIX ".partial"

struct controller {
	/*
	 * Set for a whole lifecycle operation: a second one meanwhile is
	 * refused (409). The operation also holds op_lock, which the
	 * supervision tick takes for a moment between operations: an operation
	 * waits for it rather than being refused.
	 */
	atomic_bool op_busy;
	pthread_mutex_t op_lock;
	/* Held briefly around changes of what vm.info shows. */
	pthread_mutex_t info_lock;
	enum vm_state state;
	char error[256];
	Cloister__VmConfig *config;

	const struct vm_options *opts;
	struct child core;
	struct child devs[MAX_DEVICES];
	size_t n_devs;
	int quit_efd;
	/* What the gateway holds for the VM's sinks: a pty's slave, a socket's relay. */
	struct sink serial_sink, console_sink;
};

/* ---- small helpers ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void set_state(struct controller *c, enum vm_state s)
{
	pthread_mutex_lock(&c->info_lock);
	if (c->state != s)
		log_info("VM state %s -> %s", vm_state_name(c->state), vm_state_name(s));
	c->state = s;
	if (s != VM_STATE_SHUTDOWN)
		c->error[0] = '\0';
	pthread_mutex_unlock(&c->info_lock);
}

static enum vm_state get_state(struct controller *c)
{
	enum vm_state s;

	pthread_mutex_lock(&c->info_lock);
	s = c->state;
	pthread_mutex_unlock(&c->info_lock);
	return s;
}

static void set_config(struct controller *c, Cloister__VmConfig *config)
{
	pthread_mutex_lock(&c->info_lock);
	if (c->config)
		cloister__vm_config__free_unpacked(c->config, NULL);
	c->config = config;
	pthread_mutex_unlock(&c->info_lock);
}

static Cloister__VmConfig *config_dup(const Cloister__VmConfig *in)
{
	return (Cloister__VmConfig *)proto_message_dup(&in->base);
}

static int check_lifecycle(struct controller *c, enum vm_op op, char *err, size_t errlen)
{
	const char *why = NULL;
	int r = lifecycle_check(get_state(c), op, &why);

	if (r < 0)
		set_err(err, errlen, "cannot %s: %s", vm_op_name(op), why ? why : "not allowed now");
	return r;
}

/* ---- tearing down ---- */

static void tree_reap(struct controller *c, bool kill_first)
{
	char why[96];

	for (size_t i = 0; i < c->n_devs; i++)
		child_reap(&c->devs[i], kill_first, why, sizeof(why));
	c->n_devs = 0;
	child_reap(&c->core, kill_first, why, sizeof(why));
}

/* Something broke: stop every process of the VM and say why in vm.info. */
static void vm_fail(struct controller *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vm_fail(struct controller *c, const char *fmt, ...)
{
	char msg[sizeof(c->error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("VM failed: %s", msg);
	tree_reap(c, true);
	pthread_mutex_lock(&c->info_lock);
	c->state = VM_STATE_SHUTDOWN;
	snprintf(c->error, sizeof(c->error), "%s", msg);
	pthread_mutex_unlock(&c->info_lock);
}

/* Which child died, and how, for the error message. */
static bool tree_find_dead(struct controller *c, char *what, size_t len)
{
	struct child *all[MAX_DEVICES + 1];
	size_t n = 0;

	all[n++] = &c->core;
	for (size_t i = 0; i < c->n_devs; i++)
		all[n++] = &c->devs[i];
	for (size_t i = 0; i < n; i++) {
		char why[96];

		if (!child_exited(all[i]))
			continue;
		child_reap(all[i], false, why, sizeof(why));
		snprintf(what, len, "%s %s", all[i]->name, why);
		return true;
	}
	return false;
}

/* ---- talking to children ---- */

static void handle_event(struct controller *c, const Cloister__Event *ev)
{
	const char *msg = ev->message ? ev->message : "";

	switch (ev->kind) {
	case CLOISTER__EVENT_KIND__EVENT_GUEST_SHUTDOWN:
		log_info("the guest shut down: %s", msg);
		tree_reap(c, true);
		set_state(c, VM_STATE_SHUTDOWN);
		break;
	case CLOISTER__EVENT_KIND__EVENT_CONSOLE_QUIT: {
		uint64_t one = 1;

		/* As vmm.shutdown: main() stops the tree in order. */
		log_info("%s: shutting down", msg);
		if (write(c->quit_efd, &one, sizeof(one)) != sizeof(one))
			log_error("cannot signal the main loop: %m");
		break;
	}
	case CLOISTER__EVENT_KIND__EVENT_GUEST_REBOOT:
		vm_fail(c, "the guest asked for a reboot, which Cloister does not do yet (%s)", msg);
		break;
	default:
		vm_fail(c, "the guest failed: %s", msg);
		break;
	}
}

/*
 * Waits for the reply of ch to a request, serving vmm-core's events meanwhile.
 * Returns 0 with *ret_env set, or a negative errno with err set.
 */
static int child_wait_reply(struct controller *c, struct child *ch, int timeout_ms,
			    Cloister__Envelope **ret_env, char *err, size_t errlen)
{
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd p = { .fd = ch->sock, .events = POLLIN };
		Cloister__Envelope *env = NULL;
		int fds[CL_FRAME_MAX_FDS];
		size_t n_fds = 0;
		struct timespec now;
		int64_t left;
		int r;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000 +
				     (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0) {
			set_err(err, errlen, "%s did not answer in time", ch->name);
			return -ETIMEDOUT;
		}
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		r = frame_recv(ch->sock, &env, fds, 0, &n_fds);
		if (r < 0) {
			set_err(err, errlen, "%s went away (%s)", ch->name,
				r == -EPIPE ? "connection closed" : strerror(-r));
			return r == -EPIPE ? -ECHILD : r;
		}
		if (env->msg_case == CLOISTER__ENVELOPE__MSG_EVENT && ch == &c->core) {
			handle_event(c, env->event);
			frame_free(env);
			if (get_state(c) == VM_STATE_SHUTDOWN) {
				set_err(err, errlen, "the VM stopped: %s", c->error[0] ? c->error : "guest shutdown");
				return -ECHILD;
			}
			continue;
		}
		*ret_env = env;
		return 0;
	}
}

/* One request, one Reply. */
static int child_call(struct controller *c, struct child *ch, Cloister__Envelope *env,
		      const int *fds, size_t n_fds, int timeout_ms, char *err, size_t errlen)
{
	Cloister__Envelope *reply = NULL;
	int r = frame_send(ch->sock, env, fds, n_fds);

	if (r < 0) {
		set_err(err, errlen, "cannot reach %s: %s", ch->name, strerror(-r));
		return r == -EPIPE ? -ECHILD : r;
	}
	r = child_wait_reply(c, ch, timeout_ms, &reply, err, errlen);
	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_REPLY) {
		set_err(err, errlen, "%s answered with %s", ch->name, frame_msg_name(reply));
		frame_free(reply);
		return -EPROTO;
	}
	r = reply->reply->error;
	if (r > 0)
		r = -EPROTO;
	if (r < 0)
		set_err(err, errlen, "%s", reply->reply->message && reply->reply->message[0] ?
			reply->reply->message : strerror(-r));
	frame_free(reply);
	return r;
}

static int child_handshake(struct child *ch, Cloister__Role role, char *err, size_t errlen)
{
	int r = frame_hello_send(ch->sock, CLOISTER__ROLE__ROLE_GATEWAY);

	if (r == 0)
		r = frame_hello_expect(ch->sock, role, HELLO_TIMEOUT_MS);
	if (r < 0)
		set_err(err, errlen, "%s did not start properly (handshake: %s)", ch->name, strerror(-r));
	return r;
}

/* Spawns a helper with a fresh control socket on its fd 3, extra fds after it. */
static int start_helper(struct controller *c, struct child *ch, const char *name, const char *subdir,
			const char *program, const char *const *args, const int *extra, size_t n_extra,
			bool with_socket, char *err, size_t errlen)
{
	char path[4096], uid[16], gid[16];
	char *argv[12];
	int fds[SPAWN_MAX_FDS];
	int sv[2] = { -1, -1 };
	size_t n = 0, a = 0;
	int r;

	r = helper_path(subdir, program, path, sizeof(path));
	if (r < 0) {
		set_err(err, errlen, "cannot find %s", program);
		return r;
	}
	if (with_socket) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			set_err(err, errlen, "socketpair: %m");
			return -errno;
		}
		fds[n++] = sv[1];
	}
	for (size_t i = 0; i < n_extra && n < SPAWN_MAX_FDS; i++)
		fds[n++] = extra[i];
	snprintf(uid, sizeof(uid), "%u", (unsigned)c->opts->child_uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)c->opts->child_gid);
	argv[a++] = path;
	for (size_t i = 0; args && args[i] && a < ARRAY_SIZE(argv) - 5; i++)
		argv[a++] = (char *)args[i];
	argv[a++] = "--uid";
	argv[a++] = uid;
	argv[a++] = "--gid";
	argv[a++] = gid;
	argv[a] = NULL;
	r = spawn_child(name, path, argv, fds, n, ch);
	cleanup_closep(&sv[1]);
	if (r < 0) {
		cleanup_closep(&sv[0]);
		set_err(err, errlen, "cannot start %s: %s", name, strerror(-r));
		return r;
	}
	ch->sock = sv[0];
	return 0;
}

/* ---- building the tree ---- */

static int open_payload(const char *path, const char *what, int *ret_fd, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	*ret_fd = -1;
	if (!path || !path[0])
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		set_err(err, errlen, "cannot open the %s %s: %m", what, path);
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		set_err(err, errlen, "the %s %s is not a regular file", what, path);
		return -EINVAL;
	}
	*ret_fd = fd;
	return 0;
}

/* Replaces a sink's path in the config the VM runs with, as vm.info shows it. */
static void config_set_sink_path(struct controller *c, Cloister__SerialConfig *s, const char *path)
{
	char *copy = strdup(path);

	if (!copy)
		return;
	pthread_mutex_lock(&c->info_lock);
	/* The default value belongs to protobuf-c: only a string of our own is freed. */
	if (s->path && s->path != protobuf_c_empty_string)
		free(s->path);
	s->path = copy;
	pthread_mutex_unlock(&c->info_lock);
}

/*
 * Takes over what the gateway must hold of a sink for the VM's life, leaving
 * the fds to hand over in from. A pty is new for every tree: its path goes
 * into the config and the log.
 */
static void sink_keep(struct controller *c, struct sink *keep, struct sink *from,
		      Cloister__SerialConfig *s, const char *what)
{
	sink_close(keep);
	keep->pty_slave_fd = TAKE_FD(from->pty_slave_fd);
	keep->relay = TAKE_PTR(from->relay);
	if (s->mode != CLOISTER__SERIAL_MODE__SERIAL_PTY)
		return;
	memcpy(keep->pty_path, from->pty_path, sizeof(keep->pty_path));
	config_set_sink_path(c, s, keep->pty_path);
	log_info("%s: pty %s", what, keep->pty_path);
}

static int start_device(struct controller *c, Cloister__DeviceConfig *d, bool restore, char *err,
			size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__CoreAttachDevice att = CLOISTER__CORE_ATTACH_DEVICE__INIT;
	struct child *ch = &c->devs[c->n_devs];
	struct device_host host;
	const char *args[4] = { d->id, NULL, NULL, NULL };
	int r;

	if (c->n_devs >= MAX_DEVICES) {
		set_err(err, errlen, "too many devices");
		return -E2BIG;
	}
	r = device_host_open(d, restore, &host, err, errlen);
	if (r < 0)
		return r;
	if (host.mac_arg[0]) {
		args[1] = "--mac";
		args[2] = host.mac_arg;
	}
	/* The device's control socket goes to vmm-core, not to us: we keep its pidfd. */
	r = start_helper(c, ch, d->id, "device-procs", host.program, args, host.fds, host.n_fds,
			 true, err, errlen);
	if (r == 0 && d->console)
		sink_keep(c, &c->console_sink, &host.sink, d->console, "console");
	device_host_close(&host);
	if (r < 0)
		return r;
	c->n_devs++;
	att.device = d;
	env.msg_case = CLOISTER__ENVELOPE__MSG_CORE_ATTACH_DEVICE;
	env.core_attach_device = &att;
	r = child_call(c, &c->core, &env, &ch->sock, 1, CALL_TIMEOUT_MS, err, errlen);
	cleanup_closep(&ch->sock);
	ch->sock = -1;
	return r;
}

static int start_devices(struct controller *c, Cloister__VmConfig *config, bool restore, char *err,
			 size_t errlen)
{
	for (size_t i = 0; i < config->n_devices; i++) {
		int r = start_device(c, config->devices[i], restore, err, errlen);

		if (r < 0)
			return r;
	}
	return 0;
}

/* vmm-core configured for config, its devices attached. */
static int tree_start(struct controller *c, Cloister__VmConfig *config, bool restore,
		      char *err, size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__CoreConfigure cfg = CLOISTER__CORE_CONFIGURE__INIT;
	_cleanup_close_ int kernel_fd = -1, initramfs_fd = -1;
	struct sink serial = SINK_INIT;
	int fds[4];
	size_t n = 0;
	int r;

	if (!restore) {
		r = open_payload(config->payload->kernel, "kernel", &kernel_fd, err, errlen);
		if (r == 0)
			r = open_payload(config->payload->initramfs, "initramfs", &initramfs_fd, err, errlen);
		if (r < 0)
			return r;
	}
	/* A socket path is ours again only once the relay of the last tree let go of it. */
	sink_close(&c->serial_sink);
	sink_close(&c->console_sink);
	r = sink_open(config->serial, restore, &serial, err, errlen);
	if (r < 0)
		return r;
	if (config->serial)
		sink_keep(c, &c->serial_sink, &serial, config->serial, "serial");

	r = start_helper(c, &c->core, "vmm-core", "vmm-core", "cloister-vmm", NULL, NULL, 0, true,
			 err, errlen);
	if (r == 0)
		r = child_handshake(&c->core, CLOISTER__ROLE__ROLE_VMM, err, errlen);
	if (r < 0) {
		sink_handed_over(&serial);
		return r;
	}

	cfg.config = (Cloister__VmConfig *)config;
	cfg.restore = restore;
	cfg.kernel_fd = cfg.serial_fd = cfg.initramfs_fd = cfg.serial_in_fd = -1;
	if (kernel_fd >= 0) {
		cfg.kernel_fd = (int32_t)n;
		fds[n++] = kernel_fd;
	}
	if (serial.out_fd >= 0) {
		cfg.serial_fd = (int32_t)n;
		fds[n++] = serial.out_fd;
	}
	if (initramfs_fd >= 0) {
		cfg.initramfs_fd = (int32_t)n;
		fds[n++] = initramfs_fd;
	}
	if (serial.in_fd >= 0) {
		cfg.serial_in_fd = (int32_t)n;
		fds[n++] = serial.in_fd;
	}
	env.msg_case = CLOISTER__ENVELOPE__MSG_CORE_CONFIGURE;
	env.core_configure = &cfg;
	r = child_call(c, &c->core, &env, fds, n, CALL_TIMEOUT_MS, err, errlen);
	sink_handed_over(&serial);
	if (r < 0)
		return r;
	return start_devices(c, config, restore, err, errlen);
}

static int core_simple(struct controller *c, Cloister__Envelope__MsgCase what, char *err, size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	ProtobufCMessage body;
	int r = frame_envelope_empty(&env, what, &body);

	if (r < 0) {
		set_err(err, errlen, "request %d is not one without fields", (int)what);
		return r;
	}
	return child_call(c, &c->core, &env, NULL, 0, CALL_TIMEOUT_MS, err, errlen);
}

/* ---- the configuration a boot creates ---- */

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

static Cloister__VmConfig *config_from_options(const struct vm_options *o)
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
	return config_dup(&cfg);
}

/* ---- operations (op_lock held) ---- */

/* The guest asked SBI for a shutdown (as opposed to something failing). */
static bool guest_shut_down(struct controller *c)
{
	bool clean;

	pthread_mutex_lock(&c->info_lock);
	clean = c->state == VM_STATE_SHUTDOWN && !c->error[0];
	pthread_mutex_unlock(&c->info_lock);
	return clean;
}

static int do_boot(struct controller *c, char *err, size_t errlen)
{
	Cloister__VmConfig *config = config_from_options(c->opts);
	int r;

	if (!config)
		return -ENOMEM;
	set_config(c, config);
	set_state(c, VM_STATE_CREATED);
	r = tree_start(c, config, false, err, errlen);
	if (r == 0)
		r = core_simple(c, CLOISTER__ENVELOPE__MSG_CORE_START, err, errlen);
	if (r < 0 && guest_shut_down(c)) {
		/* It booted and shut itself down before vmm-core's answer reached us. */
		return 0;
	}
	if (r < 0) {
		vm_fail(c, "boot failed: %s", err);
		return r;
	}
	set_state(c, VM_STATE_RUNNING);
	return 0;
}

/* Pause and resume: one request to vmm-core, one state change. */
static int do_core_op(struct controller *c, enum vm_op op, Cloister__Envelope__MsgCase msg,
		      char *err, size_t errlen)
{
	int r = check_lifecycle(c, op, err, errlen);

	if (r == 0)
		r = core_simple(c, msg, err, errlen);
	if (r == 0)
		set_state(c, lifecycle_next(get_state(c), op));
	else if (r == -ECHILD)
		vm_fail(c, "%s failed: %s", vm_op_name(op), err);
	return r;
}

static int do_pause(struct controller *c, char *err, size_t errlen)
{
	return do_core_op(c, VM_OP_PAUSE, CLOISTER__ENVELOPE__MSG_CORE_PAUSE, err, errlen);
}

static int do_resume(struct controller *c, char *err, size_t errlen)
{
	return do_core_op(c, VM_OP_RESUME, CLOISTER__ENVELOPE__MSG_CORE_RESUME, err, errlen);
}

static int open_snapshot_dir(const char *url, char *err, size_t errlen)
{
	_cleanup_free_ char *path = NULL;
	int fd;

	if (parse_file_url(url, &path) < 0) {
		set_err(err, errlen, "%s is not a file:/// URL of an absolute directory", url);
		return -EBADMSG;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		set_err(err, errlen, "snapshot directory %s: %s", path,
			e == ENOENT ? "does not exist" : strerror(e));
		return e == ENOENT || e == ENOTDIR ? -EBADMSG : -e;
	}
	return fd;
}

static void unlink_partials(int dirfd, size_t n_regions)
{
	char name[64];

	unlinkat(dirfd, "vm.json" PARTIAL_SUFFIX, 0);
	for (size_t i = 0; i < n_regions; i++) {
		snprintf(name, sizeof(name), REGION_FILE_FMT PARTIAL_SUFFIX, i);
		unlinkat(dirfd, name, 0);
	}
}

/* Gives the files their final names, vm.json last: until then restore finds no snapshot. */
static int publish_snapshot(int dirfd, size_t n_regions, char *err, size_t errlen)
{
	char from[64], to[64];

	for (size_t i = 0; i < n_regions; i++) {
		snprintf(from, sizeof(from), REGION_FILE_FMT PARTIAL_SUFFIX, i);
		snprintf(to, sizeof(to), REGION_FILE_FMT, i);
		if (renameat(dirfd, from, dirfd, to) < 0)
			goto fail;
	}
	if (fsync(dirfd) < 0 || renameat(dirfd, "vm.json" PARTIAL_SUFFIX, dirfd, "vm.json") < 0 ||
	    fsync(dirfd) < 0)
		goto fail;
	return 0;
fail:
	set_err(err, errlen, "cannot put the snapshot files in place: %m");
	return -errno;
}

/* Creates the empty files snapshotd fills: it may not open paths itself. */
static int create_partials(int dirfd, size_t n_regions, int *fds, char *err, size_t errlen)
{
	char name[64];

	/* An older snapshot here stops being one before any of its files change. */
	if (unlinkat(dirfd, "vm.json", 0) < 0 && errno != ENOENT) {
		set_err(err, errlen, "cannot replace the snapshot in place: %m");
		return -errno;
	}
	for (size_t i = 0; i <= n_regions; i++) {
		if (i == 0)
			snprintf(name, sizeof(name), "vm.json" PARTIAL_SUFFIX);
		else
			snprintf(name, sizeof(name), REGION_FILE_FMT PARTIAL_SUFFIX, i - 1);
		fds[i] = openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fds[i] < 0) {
			set_err(err, errlen, "cannot create %s in the snapshot directory: %m", name);
			return -errno;
		}
	}
	return 0;
}

/*
 * Starts snapshotd for one operation (mode "save" or "load") with a fresh
 * socketpair: its end is snapshotd's fd 4, *ret_core_end goes to vmm-core.
 */
static int snapd_start(struct controller *c, struct child *snapd, const char *mode,
		       int *ret_core_end, char *err, size_t errlen)
{
	const char *const args[] = { mode, NULL };
	int sv[2];
	int r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		set_err(err, errlen, "socketpair: %m");
		return -errno;
	}
	r = start_helper(c, snapd, "snapshotd", "snapshotd", "cloister-snapshotd", args, &sv[1], 1,
			 true, err, errlen);
	close(sv[1]);
	if (r == 0)
		r = child_handshake(snapd, CLOISTER__ROLE__ROLE_SNAPSHOTD, err, errlen);
	if (r < 0) {
		close(sv[0]);
		return r;
	}
	*ret_core_end = sv[0];
	return 0;
}

static void snapd_finish(struct child *snapd)
{
	char why[96];

	if (snapd->pidfd < 0)
		return;
	child_wait_exit(snapd, 2000);
	child_reap(snapd, true, why, sizeof(why));
	log_debug("snapshotd %s", why);
}

static int snapd_reply(struct controller *c, struct child *snapd, char *err, size_t errlen)
{
	Cloister__Envelope *reply = NULL;
	int r = child_wait_reply(c, snapd, SNAPSHOT_TIMEOUT_MS, &reply, err, errlen);

	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_REPLY) {
		set_err(err, errlen, "snapshotd answered with %s", frame_msg_name(reply));
		r = -EPROTO;
	} else if (reply->reply->error < 0) {
		set_err(err, errlen, "%s", reply->reply->message ? reply->reply->message : "snapshot failed");
		r = reply->reply->error;
	}
	frame_free(reply);
	return r;
}

static int do_snapshot(struct controller *c, const char *url, char *err, size_t errlen)
{
	_cleanup_close_ int dirfd = -1;
	int files[1 + LAYOUT_MAX_REGIONS];
	int core_end = -1;
	struct child snapd = { .pidfd = -1, .sock = -1 };
	size_t n_regions = c->config->n_regions;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__SnapdSave save = CLOISTER__SNAPD_SAVE__INIT;
	Cloister__CoreSnapshot snap = CLOISTER__CORE_SNAPSHOT__INIT;
	struct timespec t0, t1;
	int r;

	r = check_lifecycle(c, VM_OP_SNAPSHOT, err, errlen);
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	dirfd = open_snapshot_dir(url, err, errlen);
	if (dirfd < 0)
		return dirfd;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		files[i] = -1;
	r = create_partials(dirfd, n_regions, files, err, errlen);
	if (r < 0)
		goto out;
	r = snapd_start(c, &snapd, "save", &core_end, err, errlen);
	if (r < 0)
		goto out;
	save.config = c->config;
	env.msg_case = CLOISTER__ENVELOPE__MSG_SNAPD_SAVE;
	env.snapd_save = &save;
	r = frame_send(snapd.sock, &env, files, 1 + n_regions);
	if (r < 0) {
		set_err(err, errlen, "cannot reach snapshotd: %s", strerror(-r));
		goto out;
	}
	env.msg_case = CLOISTER__ENVELOPE__MSG_CORE_SNAPSHOT;
	env.core_snapshot = &snap;
	r = child_call(c, &c->core, &env, &core_end, 1, SNAPSHOT_TIMEOUT_MS, err, errlen);
	cleanup_closep(&core_end);
	if (r < 0) {
		if (r == -ECHILD)
			vm_fail(c, "snapshot failed: %s", err);
		goto out;
	}
	r = snapd_reply(c, &snapd, err, errlen);
	if (r < 0)
		goto out;
	r = publish_snapshot(dirfd, n_regions, err, errlen);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r == 0)
		log_info("snapshot written to %s in %.1f ms", url,
			 (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
out:
	if (r < 0 && dirfd >= 0)
		unlink_partials(dirfd, n_regions);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		cleanup_closep(&files[i]);
	cleanup_closep(&core_end);
	snapd_finish(&snapd);
	return r;
}

/* vm.json and every memory-region-N there is, opened without following links. */
static int open_snapshot_files(int dirfd, int *fds, size_t *ret_n, char *err, size_t errlen)
{
	char name[64];
	size_t n = 0;

	fds[0] = openat(dirfd, "vm.json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fds[0] < 0) {
		set_err(err, errlen, errno == ENOENT ? "no vm.json in the snapshot directory: it holds no "
			"complete snapshot" : "cannot open vm.json: %m");
		return -EBADMSG;
	}
	for (n = 0; n < LAYOUT_MAX_REGIONS; n++) {
		snprintf(name, sizeof(name), REGION_FILE_FMT, n);
		fds[1 + n] = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fds[1 + n] < 0 && errno == ENOENT)
			break;
		if (fds[1 + n] < 0) {
			set_err(err, errlen, "cannot open %s: %m", name);
			return -EBADMSG;
		}
	}
	*ret_n = n;
	return 0;
}

static int snapd_load(struct controller *c, struct child *snapd, const int *files, size_t n_regions,
		      Cloister__VmConfig **ret_config, char *err, size_t errlen)
{
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__SnapdLoad load = CLOISTER__SNAPD_LOAD__INIT;
	Cloister__Envelope *reply = NULL;
	const Cloister__SnapdLoadReply *lr;
	int r;

	load.region_files = (uint32_t)n_regions;
	env.msg_case = CLOISTER__ENVELOPE__MSG_SNAPD_LOAD;
	env.snapd_load = &load;
	r = frame_send(snapd->sock, &env, files, 1 + n_regions);
	if (r < 0) {
		set_err(err, errlen, "cannot reach snapshotd: %s", strerror(-r));
		return r;
	}
	r = child_wait_reply(c, snapd, SNAPSHOT_TIMEOUT_MS, &reply, err, errlen);
	if (r < 0)
		return r;
	if (reply->msg_case != CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY) {
		set_err(err, errlen, "snapshotd answered with %s", frame_msg_name(reply));
		frame_free(reply);
		return -EPROTO;
	}
	lr = reply->snapd_load_reply;
	if (lr->error < 0 || !lr->config) {
		set_err(err, errlen, "invalid snapshot: %s", lr->message && lr->message[0] ? lr->message :
			"no configuration");
		frame_free(reply);
		return -EBADMSG;
	}
	*ret_config = config_dup(lr->config);
	frame_free(reply);
	return *ret_config ? 0 : -ENOMEM;
}

static int do_restore(struct controller *c, const char *url, bool resume, char *err, size_t errlen)
{
	_cleanup_close_ int dirfd = -1;
	int files[1 + LAYOUT_MAX_REGIONS];
	int core_end = -1;
	struct child snapd = { .pidfd = -1, .sock = -1 };
	Cloister__VmConfig *config = NULL;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__CoreRestore rest = CLOISTER__CORE_RESTORE__INIT;
	size_t n_regions = 0;
	struct timespec t0, t1;
	int r;

	r = check_lifecycle(c, VM_OP_RESTORE, err, errlen);
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		files[i] = -1;
	dirfd = open_snapshot_dir(url, err, errlen);
	if (dirfd < 0)
		return dirfd;
	r = open_snapshot_files(dirfd, files, &n_regions, err, errlen);
	if (r < 0)
		goto out;
	r = snapd_start(c, &snapd, "load", &core_end, err, errlen);
	if (r == 0)
		r = snapd_load(c, &snapd, files, n_regions, &config, err, errlen);
	if (r == 0) {
		r = devices_check_restorable(config, err, errlen);
		if (r < 0)
			cloister__vm_config__free_unpacked(config, NULL);
	}
	if (r < 0)
		goto out;

	/* The snapshot is sound: from here on a VM exists. */
	set_config(c, config);
	set_state(c, VM_STATE_CREATED);
	r = tree_start(c, config, true, err, errlen);
	if (r < 0)
		goto fail;
	env.msg_case = CLOISTER__ENVELOPE__MSG_CORE_RESTORE;
	env.core_restore = &rest;
	r = child_call(c, &c->core, &env, &core_end, 1, SNAPSHOT_TIMEOUT_MS, err, errlen);
	cleanup_closep(&core_end);
	if (r < 0)
		goto fail;
	set_state(c, VM_STATE_PAUSED);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("restored from %s in %.1f ms, paused", url,
		 (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	if (resume)
		r = do_resume(c, err, errlen);
	goto out;
fail:
	vm_fail(c, "restore failed: %s", err);
out:
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		cleanup_closep(&files[i]);
	cleanup_closep(&core_end);
	snapd_finish(&snapd);
	return r;
}

static int do_shutdown_vm(struct controller *c, char *err, size_t errlen)
{
	int r = check_lifecycle(c, VM_OP_SHUTDOWN, err, errlen);

	if (r < 0)
		return r;
	if (c->core.pidfd >= 0) {
		char why[96];

		/* Best effort: the tree is reaped either way. */
		core_simple(c, CLOISTER__ENVELOPE__MSG_CORE_SHUTDOWN, why, sizeof(why));
		child_wait_exit(&c->core, 2000);
	}
	tree_reap(c, true);
	set_state(c, VM_STATE_SHUTDOWN);
	return 0;
}

/* ---- the API ops: one lifecycle operation at a time ---- */

#define WITH_OP_LOCK(c, err, errlen, call)                                                    \
	({                                                                                    \
		int _r;                                                                       \
		if (atomic_exchange(&(c)->op_busy, true)) {                                   \
			set_err(err, errlen, "another operation is in progress");             \
			_r = -EBUSY;                                                          \
		} else {                                                                      \
			pthread_mutex_lock(&(c)->op_lock);                                    \
			_r = (call);                                                          \
			pthread_mutex_unlock(&(c)->op_lock);                                  \
			atomic_store(&(c)->op_busy, false);                                   \
		}                                                                             \
		_r;                                                                           \
	})

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

static struct json_object *config_json(const Cloister__VmConfig *cfg)
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

static int api_info(void *opaque, struct json_object **ret_info, char *err, size_t errlen)
{
	struct controller *c = opaque;
	struct json_object *info;

	pthread_mutex_lock(&c->info_lock);
	if (c->state == VM_STATE_NOT_CREATED || !c->config) {
		pthread_mutex_unlock(&c->info_lock);
		set_err(err, errlen, "no VM has been created");
		return -ENOENT;
	}
	info = json_object_new_object();
	json_object_object_add(info, "config", config_json(c->config));
	json_object_object_add(info, "state", json_object_new_string(vm_state_name(c->state)));
	json_object_object_add(info, "memory_actual_size", json_object_new_uint64(c->config->memory_size));
	if (c->error[0])
		json_object_object_add(info, "error", json_object_new_string(c->error));
	pthread_mutex_unlock(&c->info_lock);
	*ret_info = info;
	return 0;
}

static int api_pause(void *opaque, char *err, size_t errlen)
{
	struct controller *c = opaque;

	return WITH_OP_LOCK(c, err, errlen, do_pause(c, err, errlen));
}

static int api_resume(void *opaque, char *err, size_t errlen)
{
	struct controller *c = opaque;

	return WITH_OP_LOCK(c, err, errlen, do_resume(c, err, errlen));
}

static int api_snapshot(void *opaque, const char *url, char *err, size_t errlen)
{
	struct controller *c = opaque;

	return WITH_OP_LOCK(c, err, errlen, do_snapshot(c, url, err, errlen));
}

static int api_restore(void *opaque, const char *url, bool resume, char *err, size_t errlen)
{
	struct controller *c = opaque;

	return WITH_OP_LOCK(c, err, errlen, do_restore(c, url, resume, err, errlen));
}

static int api_shutdown_vm(void *opaque, char *err, size_t errlen)
{
	struct controller *c = opaque;

	return WITH_OP_LOCK(c, err, errlen, do_shutdown_vm(c, err, errlen));
}

static int api_shutdown_vmm(void *opaque, char *err, size_t errlen)
{
	struct controller *c = opaque;
	uint64_t one = 1;

	/* main() tears the VM down once the server has answered. */
	if (write(c->quit_efd, &one, sizeof(one)) != sizeof(one)) {
		set_err(err, errlen, "cannot signal the main loop: %m");
		return -errno;
	}
	return 0;
}

const struct api_ops controller_api_ops = {
	.info = api_info,
	.pause = api_pause,
	.resume = api_resume,
	.snapshot = api_snapshot,
	.restore = api_restore,
	.shutdown_vm = api_shutdown_vm,
	.shutdown_vmm = api_shutdown_vmm,
};

/* ---- life of the controller ---- */

int controller_new(const struct vm_options *opts, struct controller **ret)
{
	struct controller *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->op_lock, NULL);
	pthread_mutex_init(&c->info_lock, NULL);
	c->state = VM_STATE_NOT_CREATED;
	c->opts = opts;
	c->core = (struct child){ .pidfd = -1, .sock = -1 };
	c->serial_sink = c->console_sink = SINK_INIT;
	c->quit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->quit_efd < 0) {
		free(c);
		return -errno;
	}
	*ret = c;
	return 0;
}

void controller_free(struct controller *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->op_lock);
	if (c->core.pidfd >= 0) {
		char why[96];

		core_simple(c, CLOISTER__ENVELOPE__MSG_CORE_SHUTDOWN, why, sizeof(why));
		child_wait_exit(&c->core, 1000);
	}
	tree_reap(c, true);
	sink_close(&c->serial_sink);
	sink_close(&c->console_sink);
	pthread_mutex_unlock(&c->op_lock);
	set_config(c, NULL);
	close(c->quit_efd);
	free(c);
}

int controller_boot(struct controller *c, char *err, size_t errlen)
{
	return WITH_OP_LOCK(c, err, errlen, do_boot(c, err, errlen));
}

int controller_restore(struct controller *c, const char *source_url, bool resume, char *err,
		       size_t errlen)
{
	return api_restore(c, source_url, resume, err, errlen);
}

int controller_quit_fd(const struct controller *c)
{
	return c->quit_efd;
}

static void tick_locked(struct controller *c)
{
	char what[160];

	if (c->core.pidfd < 0)
		return;
	if (tree_find_dead(c, what, sizeof(what))) {
		vm_fail(c, "%s", what);
		return;
	}
	for (;;) {
		struct pollfd p = { .fd = c->core.sock, .events = POLLIN };
		Cloister__Envelope *env = NULL;
		int fds[CL_FRAME_MAX_FDS];
		size_t n_fds = 0;
		int r;

		if (c->core.sock < 0 || poll(&p, 1, 0) != 1)
			return;
		r = frame_recv(c->core.sock, &env, fds, 0, &n_fds);
		if (r < 0) {
			vm_fail(c, "vmm-core %s", r == -EPIPE ? "closed its control socket" :
				"broke the protocol");
			return;
		}
		if (env->msg_case == CLOISTER__ENVELOPE__MSG_EVENT) {
			handle_event(c, env->event);
		} else {
			vm_fail(c, "vmm-core sent %s unasked", frame_msg_name(env));
			frame_free(env);
			return;
		}
		frame_free(env);
	}
}

void controller_tick(struct controller *c)
{
	/* An operation in progress watches the tree itself. */
	if (pthread_mutex_trylock(&c->op_lock) != 0)
		return;
	tick_locked(c);
	pthread_mutex_unlock(&c->op_lock);
}
