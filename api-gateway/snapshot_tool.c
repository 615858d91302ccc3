/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-snapshot: looks at a snapshot directory without restoring it.
 *
 *   inspect DIR   what it holds: format, config, regions, disks, bindings
 *   verify DIR    what can be checked now: the file set, sizes, vm.json,
 *                 the disk checkpoint, the host-bindings seal (this host's key)
 *   check DIR     whether this build would restore it, and if not, why
 *
 * It reads only: it never completes or removes an interrupted snapshot
 * (the next restore does), and the directory may be anyone's, so every file
 * is opened without following links and bounded before it is read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bindings.h"
#include "cleanup.h"
#include "disk_checkpoint.h"
#include "layout.h"
#include "snapshot_dir.h"
#include "vmjson.h"

#define MAX_DISKS 16

struct snap {
	int dirfd;
	Cloister__VmConfig *config;
	Cloister__VmState *state;
	char disks[MAX_DISKS][DISK_CHECKPOINT_ID_MAX + 1];
	size_t n_disks;
	unsigned problems;
};

static void problem(struct snap *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct snap *s, const char *fmt, ...)
{
	va_list ap;

	s->problems++;
	fputs("  PROBLEM: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int read_vm_json(int dirfd, char **ret_text, size_t *ret_len)
{
	_cleanup_close_ int fd = openat(dirfd, "vm.json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char *text;
	size_t got = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > VMJSON_MAX_TEXT)
		return -EBADMSG;
	text = malloc((size_t)st.st_size + 1);
	if (!text)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);

		if (n <= 0) {
			free(text);
			return n < 0 ? -errno : -EBADMSG;
		}
		got += (size_t)n;
	}
	text[got] = '\0';
	*ret_text = text;
	*ret_len = got;
	return 0;
}

/* Opens the directory and decodes vm.json; false (with the reason printed) when it cannot. */
static bool snap_load(const char *dir, struct snap *s)
{
	_cleanup_free_ char *text = NULL;
	char err[512] = "";
	size_t len = 0;
	int r;

	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		problem(s, "cannot open %s: %s", dir, strerror(errno));
		return false;
	}
	r = read_vm_json(s->dirfd, &text, &len);
	if (r < 0) {
		problem(s, "vm.json: %s", r == -ENOENT ? "missing (no complete snapshot here)" :
			r == -EBADMSG ? "not a regular file of a size vm.json can have" : strerror(-r));
		return false;
	}
	r = vmjson_decode(text, len, &s->config, &s->state, err, sizeof(err));
	if (r < 0) {
		problem(s, "vm.json does not decode: %s", err);
		return false;
	}
	return true;
}

static void snap_free(struct snap *s)
{
	if (s->config)
		protobuf_c_message_free_unpacked(&s->config->base, NULL);
	if (s->state)
		protobuf_c_message_free_unpacked(&s->state->base, NULL);
	if (s->dirfd >= 0)
		close(s->dirfd);
}

static bool file_stat(int dirfd, const char *name, struct stat *st)
{
	return fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- inspect ---- */

static const char *serial_mode_name(const Cloister__SerialConfig *c)
{
	const ProtobufCEnumValue *v;

	if (!c)
		return "none";
	v = protobuf_c_enum_descriptor_get_value(&cloister__serial_mode__descriptor, c->mode);
	return v ? v->name : "?";
}

static void inspect_config(const Cloister__VmConfig *c)
{
	printf("config:\n  vcpus: %" PRIu32 "\n  memory: %" PRIu64 " MiB\n", c->boot_vcpus,
	       c->memory_size >> 20);
	if (c->payload)
		printf("  kernel: %s\n  initramfs: %s\n  cmdline: %s\n", c->payload->kernel,
		       c->payload->initramfs, c->payload->cmdline);
	printf("  serial: %s %s\n", serial_mode_name(c->serial), c->serial ? c->serial->path : "");
	for (size_t i = 0; i < c->n_devices; i++) {
		const Cloister__DeviceConfig *d = c->devices[i];

		printf("  device %s (%s)", d->id, d->kind);
		if (strcmp(d->kind, "blk") == 0)
			printf(": %s, %" PRIu64 " bytes%s", d->path, d->disk_size,
			       d->readonly ? ", read-only" : "");
		else if (strcmp(d->kind, "net") == 0)
			printf(": tap %s, mac %s", d->tap, d->mac[0] ? d->mac : "(generated)");
		putchar('\n');
	}
}

static void inspect_regions(struct snap *s)
{
	char name[32];
	struct stat st;

	printf("memory regions:\n");
	for (size_t i = 0; i < s->config->n_regions; i++) {
		vmjson_region_file_name(i, name, sizeof(name));
		printf("  %s: guest 0x%" PRIx64 ", %" PRIu64 " bytes", name,
		       s->config->regions[i]->guest_addr, s->config->regions[i]->size);
		if (file_stat(s->dirfd, name, &st))
			printf(" (file %" PRIu64 " bytes, %" PRIu64 " allocated)\n", (uint64_t)st.st_size,
			       (uint64_t)st.st_blocks * 512);
		else
			printf(" (file missing)\n");
	}
}

static void inspect_disks(struct snap *s)
{
	char err[256] = "", name[64];
	struct stat st;

	if (disk_checkpoint_check(s->dirfd, s->config, s->disks, MAX_DISKS, &s->n_disks, err,
				  sizeof(err)) < 0) {
		printf("disks: a checkpoint list that a restore refuses: %s\n", err);
		return;
	}
	if (s->n_disks == 0) {
		printf("disks: no checkpoint (a restore uses the disks the config names or binds)\n");
		return;
	}
	printf("disks: checkpoint\n");
	for (size_t i = 0; i < s->n_disks; i++) {
		snprintf(name, sizeof(name), DISK_CHECKPOINT_FMT, s->disks[i]);
		if (file_stat(s->dirfd, name, &st))
			printf("  %s: %s, %" PRIu64 " bytes, %" PRIu64 " allocated\n", s->disks[i], name,
			       (uint64_t)st.st_size, (uint64_t)st.st_blocks * 512);
	}
}

static int cmd_inspect(struct snap *s)
{
	const Cloister__MachineState *m = s->state->machine;

	printf("format: vm.json version %d\n", VMJSON_VERSION);
	inspect_config(s->config);
	printf("state: %zu vcpus saved", s->state->n_vcpus);
	if (m && m->timebase_hz)
		printf(", guest time %.3f s", (double)m->guest_time / (double)m->timebase_hz);
	printf(", %zu device states\n", s->state->n_devices);
	inspect_regions(s);
	inspect_disks(s);
	printf("host bindings: %s\n", bindings_verify(s->dirfd, s->config) ?
	       "sealed by this host" : "not sealed by this host (every disk and NIC needs a binding)");
	printf("parent: none (every snapshot is whole)\n");
	printf("encryption: none\ndigests: none recorded\n");
	return 0;
}

/* ---- verify ---- */

static bool listed_disk(const struct snap *s, const char *name)
{
	char want[64];

	for (size_t i = 0; i < s->n_disks; i++) {
		snprintf(want, sizeof(want), DISK_CHECKPOINT_FMT, s->disks[i]);
		if (strcmp(want, name) == 0)
			return true;
	}
	return false;
}

/* Whether name is one of the files this snapshot should hold. */
static bool expected_file(const struct snap *s, const char *name)
{
	char region[32];

	if (!strcmp(name, "vm.json") || !strcmp(name, SNAPDIR_BINDINGS_NAME))
		return true;
	for (size_t i = 0; i < s->config->n_regions; i++) {
		vmjson_region_file_name(i, region, sizeof(region));
		if (!strcmp(name, region))
			return true;
	}
	if (s->n_disks && !strcmp(name, DISK_CHECKPOINT_LIST))
		return true;
	if (listed_disk(s, name))
		return true;
	/* A restore's own copy of a checkpoint lives beside it. */
	return !strncmp(name, "clone-", 6) && strlen(name) > 10 &&
	       !strcmp(name + strlen(name) - 4, ".img");
}

static void verify_file_set(struct snap *s)
{
	_cleanup_close_ int fd = dup(s->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		problem(s, "cannot list the directory: %s", strerror(errno));
		return;
	}
	fd = -1;
	rewinddir(d);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!strcmp(e->d_name, "commit") || strstr(e->d_name, ".partial"))
			problem(s, "%s: an interrupted snapshot (the next restore completes or removes it)",
				e->d_name);
		else if (!expected_file(s, e->d_name))
			problem(s, "%s: not a file of this snapshot", e->d_name);
	}
	closedir(d);
}

static void verify_regions(struct snap *s)
{
	char name[32];
	struct stat st;

	for (size_t i = 0; i < s->config->n_regions; i++) {
		vmjson_region_file_name(i, name, sizeof(name));
		if (!file_stat(s->dirfd, name, &st))
			problem(s, "%s: missing", name);
		else if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
			problem(s, "%s: not a single regular file", name);
		else if ((uint64_t)st.st_size != s->config->regions[i]->size)
			problem(s, "%s: %" PRIu64 " bytes, vm.json says %" PRIu64, name,
				(uint64_t)st.st_size, s->config->regions[i]->size);
		else
			printf("  ok: %s, %" PRIu64 " bytes\n", name, (uint64_t)st.st_size);
	}
}

static void verify_disks(struct snap *s)
{
	char err[256] = "";

	if (disk_checkpoint_check(s->dirfd, s->config, s->disks, MAX_DISKS, &s->n_disks, err,
				  sizeof(err)) < 0)
		problem(s, "%s", err);
	else if (s->n_disks)
		printf("  ok: disk checkpoint of %zu disk%s\n", s->n_disks, s->n_disks == 1 ? "" : "s");
}

static int cmd_verify(struct snap *s)
{
	printf("verify:\n  ok: vm.json decodes and its config and state are consistent\n");
	verify_disks(s);
	verify_regions(s);
	verify_file_set(s);
	if (bindings_verify(s->dirfd, s->config))
		printf("  ok: host bindings sealed by this host\n");
	else
		printf("  note: host bindings not sealed by this host's key: disks and NICs need "
		       "bindings to restore\n");
	printf("  not checked: region contents (this format records no digests)\n");
	return s->problems ? 1 : 0;
}

/* ---- check ---- */

static void check_machine(struct snap *s)
{
	const Cloister__MachineState *m = s->state->machine;

	if (!m)
		problem(s, "no machine state: this build restores only snapshots that have one");
	else if (m->timebase_hz != LAYOUT_TIMEBASE_HZ)
		problem(s, "timebase %" PRIu64 " Hz, this build's is %llu Hz", m->timebase_hz,
			(unsigned long long)LAYOUT_TIMEBASE_HZ);
	else if (!m->plic || !m->uart)
		problem(s, "no PLIC or UART state: taken by an older build this one cannot restore");
	for (size_t i = 0; i < s->config->n_regions; i++) {
		struct layout_region want[LAYOUT_MAX_REGIONS];
		size_t n = layout_memory(s->config->memory_size, want);

		if (n != s->config->n_regions || want[i].gpa != s->config->regions[i]->guest_addr ||
		    want[i].size != s->config->regions[i]->size) {
			problem(s, "memory region %zu is not where this build puts guest RAM", i);
			break;
		}
	}
}

static bool checkpointed(const struct snap *s, const char *id)
{
	for (size_t i = 0; i < s->n_disks; i++)
		if (!strcmp(s->disks[i], id))
			return true;
	return false;
}

/* Without a seal, each disk and NIC must be bound at restore; with one, its disks must be there. */
static void check_bindings(struct snap *s)
{
	bool sealed = bindings_verify(s->dirfd, s->config);

	for (size_t i = 0; i < s->config->n_devices; i++) {
		const Cloister__DeviceConfig *d = s->config->devices[i];
		bool disk = !strcmp(d->kind, "blk");
		struct stat st;

		if (disk && checkpointed(s, d->id)) {
			printf("  ok: %s restores from its checkpoint\n", d->id);
			continue;
		}
		if (!disk && strcmp(d->kind, "net"))
			continue;
		if (!sealed) {
			printf("  needs a binding: %s (%s), as id=%s,%s=...\n", d->id, d->kind, d->id,
			       disk ? "path" : "tap");
			continue;
		}
		if (disk && (stat(d->path, &st) < 0 || (uint64_t)st.st_size != d->disk_size))
			problem(s, "%s: %s is missing or not %" PRIu64 " bytes (bind another image)",
				d->id, d->path, d->disk_size);
	}
}

static int cmd_check(struct snap *s)
{
	char err[256] = "";

	printf("check:\n");
	if (disk_checkpoint_check(s->dirfd, s->config, s->disks, MAX_DISKS, &s->n_disks, err,
				  sizeof(err)) < 0)
		problem(s, "%s", err);
	verify_regions(s);
	check_machine(s);
	check_bindings(s);
	printf(s->problems ? "this build would refuse this snapshot\n" :
	       "this build would restore this snapshot (given any bindings listed above)\n");
	return s->problems ? 1 : 0;
}

static void usage(FILE *f)
{
	fputs("usage: cloister-snapshot [--host-key PATH] inspect|verify|check DIR\n"
	      "  inspect DIR  what the snapshot holds\n"
	      "  verify DIR   its file set, sizes, vm.json, disk checkpoint and host-bindings seal\n"
	      "  check DIR    whether this build would restore it, and if not, why\n", f);
}

int main(int argc, char **argv)
{
	struct snap s = { .dirfd = -1 };
	int i = 1, r;

	if (argc > 2 && !strcmp(argv[1], "--host-key")) {
		bindings_set_key_path(argv[2]);
		i = 3;
	}
	if (argc - i == 1 && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc - i != 2 || (strcmp(argv[i], "inspect") && strcmp(argv[i], "verify") &&
			      strcmp(argv[i], "check"))) {
		usage(stderr);
		return 2;
	}
	if (!snap_load(argv[i + 1], &s)) {
		snap_free(&s);
		return 1;
	}
	if (!strcmp(argv[i], "inspect"))
		r = cmd_inspect(&s);
	else if (!strcmp(argv[i], "verify"))
		r = cmd_verify(&s);
	else
		r = cmd_check(&s);
	snap_free(&s);
	return r;
}
