/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-snapshot: looks at a snapshot directory without restoring it.
 *
 *   inspect DIR   what it holds: format, config, regions, digests, compression,
 *                 encryption, disks, bindings
 *   verify DIR    what can be checked now: the file set, vm.json and its
 *                 digest, every chunk of memory against its digest, the disk
 *                 checkpoint, the host-bindings seal (this host's key)
 *
 * --key-file PATH opens an encrypted snapshot; without it, inspect says
 * only that it is encrypted.
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

#include <sodium.h>

#include "bindings.h"
#include "chunk.h"
#include "chunk_json.h"
#include "cleanup.h"
#include "digest.h"
#include "disk_checkpoint.h"
#include "layout.h"
#include "snapshot_dir.h"
#include "snapshot_seal.h"
#include "vmjson.h"

#define MAX_DISKS 16

struct snap {
	int dirfd;
	Cloister__VmConfig *config;
	Cloister__VmState *state;
	struct chunk_set chunks;
	bool sealed_no_key;	/* encrypted, and no --key-file given */
	const uint8_t *key;
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
	r = vmjson_decode_chunks(text, len, s->key, &s->chunks, &s->config, &s->state, err,
				 sizeof(err));
	if (r == -ENOKEY) {
		s->sealed_no_key = true;
		return false;
	}
	if (r < 0) {
		problem(s, "vm.json does not decode: %s", err);
		return false;
	}
	return true;
}

static void snap_free(struct snap *s)
{
	chunk_set_release(&s->chunks);
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

static void inspect_chunks(const struct snap *s)
{
	const struct chunk_set *c = &s->chunks;
	char hex[2 * CHUNK_DIGEST_BYTES + 1];

	printf("integrity: %s of every %u KiB chunk, and of vm.json\n", CHUNK_DIGEST_NAME,
	       CHUNK_SIZE >> 10);
	printf("compression: %s\n", c->fmt.zstd ? "zstd" : "none (sparse raw region files)");
	printf("encryption: %s\n", c->fmt.sealed ? CHUNK_CIPHER " (vm.json and every chunk sealed;"
	       " opened with the key given)" : "none");
	for (size_t i = 0; i < c->n_regions; i++) {
		const struct chunk_table *t = &c->t[i];
		size_t zero = 0, first = t->n;
		uint64_t stored = 0;

		for (size_t k = 0; k < t->n; k++) {
			zero += t->e[k].zero;
			if (!t->e[k].zero && first == t->n)
				first = k;
			stored += t->e[k].zero && (c->fmt.zstd || c->fmt.sealed) ? 0 : t->e[k].length;
		}
		printf("  memory-region-%zu: %zu chunks, %zu zero, %" PRIu64 " bytes stored\n", i, t->n,
		       zero, stored);
		if (first < t->n) {
			sodium_bin2hex(hex, sizeof(hex), t->e[first].digest, CHUNK_DIGEST_BYTES);
			printf("    first data chunk %zu: %s\n", first, hex);
		}
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
	inspect_chunks(s);
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

/* Each region file there, its chunk table in bounds; with contents, every chunk checked. */
static void verify_regions(struct snap *s, bool contents)
{
	bool plain = !s->chunks.fmt.zstd && !s->chunks.fmt.sealed;
	char name[32], err[512] = "";
	struct stat st;

	for (size_t i = 0; i < s->config->n_regions; i++) {
		_cleanup_close_ int fd = -1;

		vmjson_region_file_name(i, name, sizeof(name));
		if (!file_stat(s->dirfd, name, &st)) {
			problem(s, "%s: missing", name);
			continue;
		}
		if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
			problem(s, "%s: not a single regular file", name);
			continue;
		}
		if (plain && (uint64_t)st.st_size != s->config->regions[i]->size) {
			problem(s, "%s: %" PRIu64 " bytes, vm.json says %" PRIu64, name,
				(uint64_t)st.st_size, s->config->regions[i]->size);
			continue;
		}
		if (chunk_check_table(&s->chunks, i, (uint64_t)st.st_size, err, sizeof(err)) < 0) {
			problem(s, "%s", err);
			continue;
		}
		fd = openat(s->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (contents && (fd < 0 || chunk_verify_region(&s->chunks, i, fd, err, sizeof(err)) < 0))
			problem(s, "%s", fd < 0 ? strerror(errno) : err);
		else
			printf("  ok: %s, %" PRIu64 " bytes%s\n", name, (uint64_t)st.st_size,
			       contents ? ", every chunk matches its digest" : "");
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
	printf("verify:\n  ok: vm.json decodes, matches its digest, and its config and state are"
	       " consistent\n");
	verify_disks(s);
	verify_regions(s, true);
	verify_file_set(s);
	if (bindings_verify(s->dirfd, s->config))
		printf("  ok: host bindings sealed by this host\n");
	else
		printf("  note: host bindings not sealed by this host's key: disks and NICs need "
		       "bindings to restore\n");
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
	verify_regions(s, false);
	check_machine(s);
	check_bindings(s);
	printf(s->problems ? "this build would refuse this snapshot\n" :
	       "this build would restore this snapshot (given any bindings listed above)\n");
	return s->problems ? 1 : 0;
}

static void usage(FILE *f)
{
	fputs("usage: cloister-snapshot [--host-key PATH] [--key-file PATH] inspect|verify|check DIR\n"
	      "  inspect DIR  what the snapshot holds\n"
	      "  verify DIR   its file set, vm.json, every memory chunk against its digest, disk\n"
	      "               checkpoint and host-bindings seal\n"
	      "  --key-file   the key of an encrypted snapshot (32 bytes or 64 hex digits)\n"
	      "  check DIR    whether this build would restore it, and if not, why\n", f);
}

int main(int argc, char **argv)
{
	struct snap s = { .dirfd = -1 };
	uint8_t key[SNAPSHOT_KEY_BYTES];
	char err[512] = "";
	int i = 1, r;

	while (argc - i > 2 && (!strcmp(argv[i], "--host-key") || !strcmp(argv[i], "--key-file"))) {
		if (!strcmp(argv[i], "--host-key")) {
			bindings_set_key_path(argv[i + 1]);
		} else if (snapshot_seal_key_file(argv[i + 1], key, err, sizeof(err)) < 0) {
			fprintf(stderr, "cloister-snapshot: %s\n", err);
			return 2;
		} else {
			s.key = key;
		}
		i += 2;
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
	if (digest_init() < 0) {
		fprintf(stderr, "cloister-snapshot: OpenSSL cannot provide %s\n", DIGEST_NAME);
		sodium_memzero(key, sizeof(key));
		return 1;
	}
	if (!snap_load(argv[i + 1], &s)) {
		r = 1;
		if (s.sealed_no_key && !strcmp(argv[i], "inspect")) {
			printf("format: vm.json version %d, encrypted\nencryption: %s: vm.json and"
			       " every chunk are sealed; key required (--key-file PATH) to read more\n",
			       VMJSON_VERSION, CHUNK_CIPHER);
			r = 0;
		} else if (s.sealed_no_key) {
			problem(&s, "the snapshot is encrypted: key required (--key-file PATH)");
		}
		snap_free(&s);
		sodium_memzero(key, sizeof(key));
		return r;
	}
	if (!strcmp(argv[i], "inspect"))
		r = cmd_inspect(&s);
	else if (!strcmp(argv[i], "verify"))
		r = cmd_verify(&s);
	else
		r = cmd_check(&s);
	snap_free(&s);
	sodium_memzero(key, sizeof(key));
	return r;
}
