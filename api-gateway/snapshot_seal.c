/* SPDX-License-Identifier: Apache-2.0 */
#include "snapshot_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cleanup.h"
#include "errmsg.h"
#include "host_open.h"
#include "io.h"

#define KEY_HEX (2 * SNAPSHOT_KEY_BYTES)

/* 32 raw bytes, or 64 hex digits and at most one newline. */
static int key_from_bytes(const uint8_t *buf, size_t n, uint8_t key[SNAPSHOT_KEY_BYTES])
{
	size_t got = 0;

	if (n == SNAPSHOT_KEY_BYTES) {
		memcpy(key, buf, SNAPSHOT_KEY_BYTES);
		return 0;
	}
	if (n == KEY_HEX + 1 && buf[KEY_HEX] == '\n')
		n--;
	if (n != KEY_HEX || sodium_hex2bin(key, SNAPSHOT_KEY_BYTES, (const char *)buf, n, NULL, &got,
					   NULL) != 0 || got != SNAPSHOT_KEY_BYTES)
		return -EINVAL;
	return 0;
}

static int read_key(const char *what, const char *path, uint8_t key[SNAPSHOT_KEY_BYTES], char *err,
		    size_t errlen)
{
	uint8_t buf[KEY_HEX + 2];
	_cleanup_close_ int fd = -1;
	struct stat st;
	ssize_t n;
	int r;

	fd = path[0] == '/' ? host_open_strict(path, O_RDONLY) : -EINVAL;
	if (fd < 0) {
		err_set(err, errlen, "%s %s cannot be opened: %s", what, path,
			fd == -EINVAL ? "not an absolute path to a regular file" : strerror(-fd));
		return -EBADMSG;
	}
	if (fstat(fd, &st) < 0 || (st.st_mode & S_IROTH)) {
		err_set(err, errlen, "%s %s is readable by anyone: a key must not be", what, path);
		return -EBADMSG;
	}
	n = io_pread_full(fd, buf, sizeof(buf), 0);
	r = n < 0 ? (int)n : key_from_bytes(buf, (size_t)n, key);
	sodium_memzero(buf, sizeof(buf));
	if (r < 0) {
		err_set(err, errlen, "%s %s must hold the 32 bytes of a key, raw or as 64 hex digits",
			what, path);
		return -EBADMSG;
	}
	return 0;
}

int snapshot_seal_key_file(const char *path, uint8_t key[SNAPSHOT_KEY_BYTES], char *err,
			   size_t errlen)
{
	return read_key("encryption_key_file", path, key, err, errlen);
}

int snapshot_seal_key_credential(const char *name, uint8_t key[SNAPSHOT_KEY_BYTES], char *err,
				 size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX];

	if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
	    strlen(name) > 255) {
		err_set(err, errlen, "encryption_key_credential must be a credential's name");
		return -EBADMSG;
	}
	if (!dir || dir[0] != '/') {
		err_set(err, errlen, "encryption_key_credential needs $CREDENTIALS_DIRECTORY (systemd's"
			" LoadCredential=)");
		return -EBADMSG;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		err_set(err, errlen, "encryption_key_credential: the path is too long");
		return -EBADMSG;
	}
	return read_key("encryption_key_credential", path, key, err, errlen);
}

static int get_string(struct json_object *body, const char *key, const char **ret, char *err,
		      size_t errlen)
{
	struct json_object *v;

	*ret = NULL;
	if (!json_object_object_get_ex(body, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		err_set(err, errlen, "'%s' must be a string", key);
		return -EBADMSG;
	}
	*ret = json_object_get_string(v);
	return 0;
}

int snapshot_seal_from_json(struct json_object *body, bool saving, struct snapshot_seal *ret,
			    char *err, size_t errlen)
{
	const char *comp = NULL, *file = NULL, *cred = NULL;
	int r;

	*ret = (struct snapshot_seal){ .zstd = false };
	if (!body)
		return 0;
	if (get_string(body, "compression", &comp, err, errlen) < 0 ||
	    get_string(body, "encryption_key_file", &file, err, errlen) < 0 ||
	    get_string(body, "encryption_key_credential", &cred, err, errlen) < 0)
		return -EBADMSG;
	if (comp && (!saving || (strcmp(comp, "zstd") && strcmp(comp, "none")))) {
		err_set(err, errlen, saving ? "'compression' must be \"zstd\" or \"none\"" :
			"'compression' is chosen when the snapshot is written, not on restore");
		return -EBADMSG;
	}
	if (file && cred) {
		err_set(err, errlen, "give encryption_key_file or encryption_key_credential, not both");
		return -EBADMSG;
	}
	ret->zstd = comp && strcmp(comp, "zstd") == 0;
	if (!file && !cred)
		return 0;
	r = file ? snapshot_seal_key_file(file, ret->key, err, errlen) :
		   snapshot_seal_key_credential(cred, ret->key, err, errlen);
	ret->keyed = r == 0;
	return r;
}

void snapshot_seal_wipe(struct snapshot_seal *s)
{
	sodium_memzero(s->key, sizeof(s->key));
	s->keyed = false;
}
