/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshot keys: the key file's two forms, and everything else about it refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "snapshot_seal.h"

static char dir[] = "/tmp/cloister-seal-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(seal, .init = setup, .fini = teardown);

/* Writes data into dir/name with mode; returns the path (static). */
static const char *key_file(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void expect_key(const uint8_t *key)
{
	for (int i = 0; i < SNAPSHOT_KEY_BYTES; i++)
		cr_expect_eq(key[i], i, "byte %d", i);
}

Test(seal, raw_and_hex_key_files)
{
	uint8_t raw[SNAPSHOT_KEY_BYTES], key[SNAPSHOT_KEY_BYTES];
	char err[256] = "", line[80];

	for (int i = 0; i < SNAPSHOT_KEY_BYTES; i++)
		raw[i] = (uint8_t)i;
	cr_assert_eq(snapshot_seal_key_file(key_file("raw", raw, sizeof(raw), 0600), key, err,
					    sizeof(err)), 0, "%s", err);
	expect_key(key);
	memset(key, 0, sizeof(key));
	cr_assert_eq(snapshot_seal_key_file(key_file("hex", hex, 64, 0400), key, err, sizeof(err)),
		     0, "%s", err);
	expect_key(key);
	snprintf(line, sizeof(line), "%s\n", hex);
	cr_assert_eq(snapshot_seal_key_file(key_file("nl", line, 65, 0600), key, err, sizeof(err)),
		     0, "%s", err);
	expect_key(key);
}

static void expect_refused(const char *path, const char *needle)
{
	uint8_t key[SNAPSHOT_KEY_BYTES];
	char err[256] = "";

	cr_expect_eq(snapshot_seal_key_file(path, key, err, sizeof(err)), -EBADMSG, "%s", path);
	cr_expect_not_null(strstr(err, needle), "\"%s\" not in \"%s\"", needle, err);
}

Test(seal, bad_key_files_are_refused)
{
	char path[128], line[80];

	expect_refused(key_file("short", hex, 31, 0600), "32 bytes of a key");
	expect_refused(key_file("long", hex, 33, 0600), "32 bytes of a key");
	expect_refused(key_file("x", "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
				64, 0600), "64 hex digits");
	snprintf(line, sizeof(line), "%s\n\n", hex);
	expect_refused(key_file("nl2", line, 66, 0600), "32 bytes of a key");
	expect_refused(key_file("open", hex, 64, 0644), "readable by anyone");
	expect_refused("relative/key", "absolute path");
	snprintf(path, sizeof(path), "%s/missing", dir);
	expect_refused(path, "cannot be opened");
	snprintf(path, sizeof(path), "%s/link", dir);
	cr_assert_eq(symlink(key_file("target", hex, 64, 0600), path), 0);
	expect_refused(path, "cannot be opened");
	expect_refused(dir, "cannot be opened");
}

Test(seal, credentials_come_from_the_credentials_directory)
{
	uint8_t key[SNAPSHOT_KEY_BYTES];
	char err[256] = "";

	key_file("snapkey", hex, 64, 0400);
	unsetenv("CREDENTIALS_DIRECTORY");
	cr_expect_eq(snapshot_seal_key_credential("snapkey", key, err, sizeof(err)), -EBADMSG);
	cr_expect_not_null(strstr(err, "LoadCredential"), "%s", err);
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	cr_assert_eq(snapshot_seal_key_credential("snapkey", key, err, sizeof(err)), 0, "%s", err);
	expect_key(key);
	cr_expect_eq(snapshot_seal_key_credential("../snapkey", key, err, sizeof(err)), -EBADMSG);
	cr_expect_eq(snapshot_seal_key_credential("..", key, err, sizeof(err)), -EBADMSG);
	cr_expect_eq(snapshot_seal_key_credential("", key, err, sizeof(err)), -EBADMSG);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static int from_json(const char *text, bool saving, struct snapshot_seal *s, char *err,
		     size_t errlen)
{
	struct json_object *o = json_tokener_parse(text);
	int r;

	cr_assert_not_null(o, "%s", text);
	r = snapshot_seal_from_json(o, saving, s, err, errlen);
	json_object_put(o);
	return r;
}

Test(seal, request_bodies)
{
	struct snapshot_seal s;
	char err[256] = "", body[256];

	cr_expect_eq(from_json("{}", true, &s, err, sizeof(err)), 0);
	cr_expect(!s.zstd && !s.keyed);
	cr_expect_eq(from_json("{\"compression\": \"zstd\"}", true, &s, err, sizeof(err)), 0);
	cr_expect(s.zstd);
	cr_expect_eq(from_json("{\"compression\": \"lz4\"}", true, &s, err, sizeof(err)), -EBADMSG);
	cr_expect_eq(from_json("{\"compression\": \"zstd\"}", false, &s, err, sizeof(err)), -EBADMSG);
	cr_expect_eq(from_json("{\"encryption_key_file\": 5}", true, &s, err, sizeof(err)), -EBADMSG);
	snprintf(body, sizeof(body), "{\"encryption_key_file\": \"%s\"}",
		 key_file("k", hex, 64, 0600));
	cr_assert_eq(from_json(body, false, &s, err, sizeof(err)), 0, "%s", err);
	cr_expect(s.keyed);
	expect_key(s.key);
	snapshot_seal_wipe(&s);
	cr_expect(!s.keyed && s.key[1] == 0);
	snprintf(body, sizeof(body), "{\"encryption_key_file\": \"%s/k\", "
		 "\"encryption_key_credential\": \"k\"}", dir);
	cr_expect_eq(from_json(body, true, &s, err, sizeof(err)), -EBADMSG);
	cr_expect_not_null(strstr(err, "not both"), "%s", err);
}
