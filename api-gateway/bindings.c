/* SPDX-License-Identifier: Apache-2.0 */
#include "bindings.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "errmsg.h"
#include "log.h"
#include "snapshot_dir.h"

#define BINDINGS_MAGIC "cloister-host-bindings 1 "
#define BINDINGS_DOMAIN "cloister host bindings v1"
#define ROOT_KEY_DIR "/var/lib/cloister"

/* ---- the host key ---- */

static const char *key_path_option;

void bindings_set_key_path(const char *path)
{
	key_path_option = path;
}

/* Makes each missing directory of dir (absolute), 0700. */
static int mkdir_parents(char *dir)
{
	for (char *p = dir + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			*p = c;
			return -errno;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

static int default_key_path(char *buf, size_t len)
{
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	int n;

	if (geteuid() == 0)
		n = snprintf(buf, len, ROOT_KEY_DIR "/host.key");
	else if (state && state[0] == '/')
		n = snprintf(buf, len, "%s/cloister/host.key", state);
	else if (home && home[0] == '/')
		n = snprintf(buf, len, "%s/.local/state/cloister/host.key", home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int key_create(const char *path, uint8_t key[BINDINGS_KEY_BYTES])
{
	char dir[PATH_MAX];
	char *slash;
	_cleanup_close_ int fd = -1;
	int r;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = mkdir_parents(dir);
		if (r < 0)
			return r;
	}
	/* O_EXCL: a key someone else made meanwhile is theirs to keep; we read it then. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	randombytes_buf(key, BINDINGS_KEY_BYTES);
	if (write(fd, key, BINDINGS_KEY_BYTES) != BINDINGS_KEY_BYTES || fsync(fd) < 0) {
		r = errno ? -errno : -ENOSPC;
		unlink(path);
		return r;
	}
	log_info("made the host key %s", path);
	return 0;
}

static int key_read(const char *path, uint8_t key[BINDINGS_KEY_BYTES], char *err, size_t errlen)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) || st.st_nlink != 1 || st.st_size != BINDINGS_KEY_BYTES) {
		err_set(err, errlen, "the host key %s must be a %d-byte file of ours, mode 0600, "
			"with one link", path, BINDINGS_KEY_BYTES);
		return -EPERM;
	}
	if (read(fd, key, BINDINGS_KEY_BYTES) != BINDINGS_KEY_BYTES) {
		err_set(err, errlen, "cannot read the host key %s", path);
		return -EIO;
	}
	return 0;
}

int bindings_host_key(const char *path, uint8_t key[BINDINGS_KEY_BYTES], char *err, size_t errlen)
{
	char def[PATH_MAX];
	int r;

	if (sodium_init() < 0) {
		err_set(err, errlen, "libsodium did not start");
		return -EIO;
	}
	if (!path) {
		r = default_key_path(def, sizeof(def));
		if (r < 0) {
			err_set(err, errlen, "no place for the host key: set HOME or give --host-key");
			return r;
		}
		path = def;
	}
	r = key_read(path, key, err, errlen);
	if (r == -ENOENT) {
		r = key_create(path, key);
		if (r == -EEXIST)
			r = key_read(path, key, err, errlen);
		else if (r < 0)
			err_set(err, errlen, "cannot make the host key %s: %s", path, strerror(-r));
	} else if (r < 0 && r != -EPERM && r != -EIO) {
		err_set(err, errlen, "cannot open the host key %s: %s", path, strerror(-r));
	}
	return r;
}

/* ---- the seal ---- */

static void mac_bytes(crypto_generichash_state *st, const void *data, size_t len)
{
	uint8_t n[4] = { len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, (len >> 24) & 0xff };

	crypto_generichash_update(st, n, sizeof(n));
	crypto_generichash_update(st, data, len);
}

static void mac_string(crypto_generichash_state *st, const char *s)
{
	mac_bytes(st, s ? s : "", s ? strlen(s) : 0);
}

static void mac_u32(crypto_generichash_state *st, uint32_t v)
{
	uint8_t b[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff };

	mac_bytes(st, b, sizeof(b));
}

static void mac_sink(crypto_generichash_state *st, const Cloister__SerialConfig *s)
{
	mac_u32(st, s ? 1 + (uint32_t)s->mode : 0);
	mac_string(st, s ? s->path : NULL);
}

/*
 * Every field that names a host resource, each with its length, in the
 * config's order, so that no two configs share a canonical form.
 */
int bindings_mac(const Cloister__VmConfig *config, const uint8_t key[BINDINGS_KEY_BYTES],
		 uint8_t mac[BINDINGS_MAC_BYTES])
{
	crypto_generichash_state st;

	if (crypto_generichash_init(&st, key, BINDINGS_KEY_BYTES, BINDINGS_MAC_BYTES) < 0)
		return -EIO;
	mac_string(&st, BINDINGS_DOMAIN);
	mac_sink(&st, config->serial);
	mac_u32(&st, (uint32_t)config->n_devices);
	for (size_t i = 0; i < config->n_devices; i++) {
		const Cloister__DeviceConfig *d = config->devices[i];

		mac_string(&st, d->kind);
		mac_string(&st, d->id);
		mac_string(&st, d->path);
		mac_u32(&st, d->readonly);
		mac_string(&st, d->tap);
		mac_sink(&st, d->console);
	}
	return crypto_generichash_final(&st, mac, BINDINGS_MAC_BYTES) < 0 ? -EIO : 0;
}

int bindings_seal(int dirfd, const Cloister__VmConfig *config, char *err, size_t errlen)
{
	uint8_t key[BINDINGS_KEY_BYTES], mac[BINDINGS_MAC_BYTES];
	char text[sizeof(BINDINGS_MAGIC) + 2 * BINDINGS_MAC_BYTES + 2];
	int r = bindings_host_key(key_path_option, key, err, errlen);

	if (r == 0)
		r = bindings_mac(config, key, mac);
	sodium_memzero(key, sizeof(key));
	if (r < 0)
		return r;
	memcpy(text, BINDINGS_MAGIC, sizeof(BINDINGS_MAGIC) - 1);
	sodium_bin2hex(text + sizeof(BINDINGS_MAGIC) - 1, 2 * BINDINGS_MAC_BYTES + 1, mac, sizeof(mac));
	strcat(text, "\n");
	return snapdir_write_partial(dirfd, SNAPDIR_BINDINGS_NAME, text, strlen(text), err, errlen);
}

bool bindings_verify(int dirfd, const Cloister__VmConfig *config)
{
	uint8_t key[BINDINGS_KEY_BYTES], mac[BINDINGS_MAC_BYTES], want[BINDINGS_MAC_BYTES];
	char text[256], err[256];
	const char *hex;
	size_t len, n = 0;
	bool ok;

	if (snapdir_read_small(dirfd, SNAPDIR_BINDINGS_NAME, text, sizeof(text), &len) < 0 ||
	    strncmp(text, BINDINGS_MAGIC, sizeof(BINDINGS_MAGIC) - 1) != 0)
		return false;
	hex = text + sizeof(BINDINGS_MAGIC) - 1;
	if (strcmp(hex + 2 * BINDINGS_MAC_BYTES, "\n") != 0 ||
	    sodium_hex2bin(want, sizeof(want), hex, 2 * BINDINGS_MAC_BYTES, NULL, &n, NULL) < 0 ||
	    n != sizeof(want))
		return false;
	if (bindings_host_key(key_path_option, key, err, sizeof(err)) < 0) {
		log_warn("cannot check the snapshot's host bindings: %s", err);
		return false;
	}
	ok = bindings_mac(config, key, mac) == 0 && sodium_memcmp(mac, want, sizeof(mac)) == 0;
	sodium_memzero(key, sizeof(key));
	return ok;
}

/* ---- bindings the restorer gives ---- */

int bindings_from_json(struct json_object *devices, struct restore_binds *ret, char *err,
		       size_t errlen)
{
	struct restore_binds binds = { .n = 0 };
	size_t n;
	int r = 0;

	if (!json_object_is_type(devices, json_type_array)) {
		err_set(err, errlen, "\"devices\" must be an array of {\"id\": ..., KEY: VALUE}");
		return -EINVAL;
	}
	n = json_object_array_length(devices);
	if (n > OPTIONS_MAX_RESTORE_BINDS) {
		err_set(err, errlen, "\"devices\": at most %d bindings", OPTIONS_MAX_RESTORE_BINDS);
		return -EINVAL;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		struct json_object *o = json_object_array_get_idx(devices, i);
		struct restore_bind *b = &binds.b[binds.n++];

		if (!json_object_is_type(o, json_type_object)) {
			err_set(err, errlen, "\"devices\"[%zu] must be an object", i);
			r = -EINVAL;
			break;
		}
		json_object_object_foreach(o, key, val) {
			if (!json_object_is_type(val, json_type_string)) {
				err_set(err, errlen, "\"devices\"[%zu].%.32s must be a string", i, key);
				r = -EINVAL;
				break;
			}
			r = restore_bind_set(b, key, json_object_get_string(val), err, errlen);
			if (r < 0)
				break;
		}
		if (r == 0)
			r = restore_bind_check(b, err, errlen);
		for (size_t j = 0; r == 0 && j + 1 < binds.n; j++)
			if (strcmp(binds.b[j].id, b->id) == 0) {
				err_set(err, errlen, "\"devices\": %s is bound twice", b->id);
				r = -EINVAL;
			}
	}
	if (r < 0) {
		restore_binds_free(&binds);
		return r == -ENOMEM ? r : -EINVAL;
	}
	*ret = binds;
	return 0;
}

int bindings_add_net_fds(struct restore_binds *binds, const struct tap_fd *net_fds, size_t n,
			 char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		struct restore_bind *b;

		for (size_t j = 0; j < binds->n; j++)
			if (strcmp(binds->b[j].id, net_fds[i].id) == 0) {
				err_set(err, errlen, "%s is bound twice (\"devices\" and \"net_fds\")",
					net_fds[i].id);
				return -EINVAL;
			}
		if (binds->n >= OPTIONS_MAX_RESTORE_BINDS) {
			err_set(err, errlen, "at most %d bindings in all", OPTIONS_MAX_RESTORE_BINDS);
			return -EINVAL;
		}
		b = &binds->b[binds->n];
		*b = (struct restore_bind){ .has_tap_fd = true, .tap_fd = net_fds[i].fd,
					    .id = strdup(net_fds[i].id), .tap = strdup(net_fds[i].ifname) };
		binds->n++;
		if (!b->id || !b->tap)
			return -ENOMEM;
	}
	return 0;
}

/* A string field of an unpacked message gets value; protobuf-c's empty default is not ours to free. */
static int set_field(char **slot, const char *value)
{
	char *copy = strdup(value ? value : "");

	if (!copy)
		return -ENOMEM;
	if (*slot && *slot != protobuf_c_empty_string)
		free(*slot);
	*slot = copy;
	return 0;
}

/* The person restoring named this output file: it may be made, never truncated. */
static int sink_file_prepare(const char *id, const char *path, char *err, size_t errlen)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NOCTTY |
				      O_NONBLOCK | O_CLOEXEC, 0600);
	struct stat st;

	if (fd < 0) {
		err_set(err, errlen, "%s: cannot open the output %s: %m", id, path);
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(err, errlen, "%s: the output %s is not a regular file", id, path);
		return -EINVAL;
	}
	return 0;
}

static int bind_sink(Cloister__SerialConfig **slot, const struct restore_bind *b, bool console,
		     char *err, size_t errlen)
{
	Cloister__SerialConfig *s = *slot;
	int r;

	if (!b->has_sink) {
		err_set(err, errlen, "restore binding %s: this device takes file=, socket= or mode=", b->id);
		return -EBADMSG;
	}
	if (console && b->sink_mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET) {
		err_set(err, errlen, "restore binding %s: the console has no socket mode", b->id);
		return -EBADMSG;
	}
	if (b->sink_mode == CLOISTER__SERIAL_MODE__SERIAL_FILE) {
		r = sink_file_prepare(b->id, b->sink_path, err, errlen);
		if (r < 0)
			return r;
	}
	if (!s) {
		s = malloc(sizeof(*s));
		if (!s)
			return -ENOMEM;
		cloister__serial_config__init(s);
		*slot = s;
	}
	s->mode = b->sink_mode;
	return set_field(&s->path, b->sink_path);
}

static int bind_device(Cloister__DeviceConfig *d, const struct restore_bind *b, char *err,
		       size_t errlen)
{
	if (strcmp(d->kind, "console") == 0)
		return bind_sink(&d->console, b, true, err, errlen);
	if (strcmp(d->kind, "blk") == 0 && b->path)
		return set_field(&d->path, b->path);
	if (strcmp(d->kind, "net") == 0 && b->tap)
		return set_field(&d->tap, b->tap);
	err_set(err, errlen, "restore binding %s: a %s device takes %s", b->id, d->kind,
		strcmp(d->kind, "blk") == 0 ? "path=" : strcmp(d->kind, "net") == 0 ? "tap=" :
		"no binding");
	return -EBADMSG;
}

static Cloister__DeviceConfig *find_device(Cloister__VmConfig *config, const char *id)
{
	for (size_t i = 0; i < config->n_devices; i++)
		if (config->devices[i]->id && strcmp(config->devices[i]->id, id) == 0)
			return config->devices[i];
	return NULL;
}

static const struct restore_bind *find_bind(const struct restore_binds *binds, const char *id)
{
	for (size_t i = 0; binds && i < binds->n; i++)
		if (strcmp(binds->b[i].id, id) == 0)
			return &binds->b[i];
	return NULL;
}

/* Output an unverified snapshot names on the host goes nowhere instead. */
static int sink_unbound(Cloister__SerialConfig *s, const char *what)
{
	if (!s || (s->mode != CLOISTER__SERIAL_MODE__SERIAL_FILE &&
		   s->mode != CLOISTER__SERIAL_MODE__SERIAL_SOCKET))
		return 0;
	log_info("%s: the snapshot's output path is not this host's: output goes to /dev/null", what);
	s->mode = CLOISTER__SERIAL_MODE__SERIAL_NULL;
	return set_field(&s->path, "");
}

static int unbound_device(Cloister__DeviceConfig *d, char *err, size_t errlen)
{
	bool disk = strcmp(d->kind, "blk") == 0;

	if (strcmp(d->kind, "console") == 0)
		return sink_unbound(d->console, d->id);
	if (!disk && strcmp(d->kind, "net") != 0)
		return 0;
	err_set(err, errlen, "%s %s needs a binding: this snapshot's host paths were not sealed by "
		"this host (give --restore-bind id=%s,%s or \"devices\": [{\"id\": \"%s\", \"%s\": "
		"...}])", disk ? "disk" : "net", d->id, d->id, disk ? "path=IMAGE" : "tap=NAME", d->id,
		disk ? "path" : "tap");
	return -EBADMSG;
}

int bindings_apply(Cloister__VmConfig *config, const struct restore_binds *binds, bool verified,
		   char *err, size_t errlen)
{
	int r = 0;

	for (size_t i = 0; binds && i < binds->n && r == 0; i++) {
		const struct restore_bind *b = &binds->b[i];
		Cloister__DeviceConfig *d;

		if (strcmp(b->id, "serial") == 0) {
			r = bind_sink(&config->serial, b, false, err, errlen);
			continue;
		}
		d = find_device(config, b->id);
		if (!d) {
			err_set(err, errlen, "restore binding %s: the snapshot has no such device", b->id);
			return -EBADMSG;
		}
		r = bind_device(d, b, err, errlen);
	}
	if (r < 0 || verified)
		return r;
	if (!find_bind(binds, "serial"))
		r = sink_unbound(config->serial, "serial");
	for (size_t i = 0; i < config->n_devices && r == 0; i++)
		if (!find_bind(binds, config->devices[i]->id))
			r = unbound_device(config->devices[i], err, errlen);
	return r;
}
