/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's defences against a snapshot directory: sealed host
 * bindings, restore-time bindings, setuid-style opens, all-or-nothing
 * snapshot writes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bindings.h"
#include "host_open.h"
#include "snapshot_dir.h"
#include "vmconfig.h"

static char dir[64];
static char err[512];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/cloister-trust-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

static char *path_in(const char *name)
{
	static char p[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static void write_file(const char *name, const char *text)
{
	FILE *f = fopen(path_in(name), "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_file(const char *name)
{
	static char buf[256];
	FILE *f = fopen(path_in(name), "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* A config as the options make it: a disk, a NIC, serial to a file, a console. */
static Cloister__VmConfig *config_with_devices(void)
{
	const char *argv[] = { "cloister", "--kernel", "/k", "--disk", "path=/img/a",
			       "--net", "tap=tap0", "--serial", "file=/var/log/s",
			       "--console", "file=/var/log/c" };
	struct vm_options o;
	Cloister__VmConfig *c;

	cr_assert_eq(options_parse(11, (char **)argv, &o, err, sizeof(err)), 0, "%s", err);
	c = vmconfig_from_options(&o);
	options_free(&o);
	cr_assert_not_null(c);
	return c;
}

static Cloister__DeviceConfig *device(Cloister__VmConfig *c, const char *kind)
{
	for (size_t i = 0; i < c->n_devices; i++)
		if (strcmp(c->devices[i]->kind, kind) == 0)
			return c->devices[i];
	cr_assert_fail("no %s device", kind);
	return NULL;
}

TestSuite(bindings, .init = make_dir, .fini = remove_dir);

Test(bindings, seal_covers_every_host_path)
{
	uint8_t key[BINDINGS_KEY_BYTES], mac[BINDINGS_MAC_BYTES], again[BINDINGS_MAC_BYTES];
	Cloister__VmConfig *c = config_with_devices();
	char *old;

	cr_assert_eq(bindings_host_key(path_in("host.key"), key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(bindings_mac(c, key, mac), 0);
	cr_assert_eq(bindings_mac(c, key, again), 0);
	cr_expect_eq(memcmp(mac, again, sizeof(mac)), 0, "the seal is not stable");
	/* Each binding, changed, changes the seal. */
	old = device(c, "blk")->path;
	device(c, "blk")->path = "/etc/shadow";
	cr_assert_eq(bindings_mac(c, key, again), 0);
	cr_expect_neq(memcmp(mac, again, sizeof(mac)), 0, "disk path not sealed");
	device(c, "blk")->path = old;
	old = c->serial->path;
	c->serial->path = "/root/.ssh/authorized_keys";
	cr_assert_eq(bindings_mac(c, key, again), 0);
	cr_expect_neq(memcmp(mac, again, sizeof(mac)), 0, "serial path not sealed");
	c->serial->path = old;
	device(c, "blk")->readonly = true;
	cr_assert_eq(bindings_mac(c, key, again), 0);
	cr_expect_neq(memcmp(mac, again, sizeof(mac)), 0, "readonly not sealed");
	device(c, "blk")->readonly = false;
	/* Another key, another seal. */
	key[0] ^= 1;
	cr_assert_eq(bindings_mac(c, key, again), 0);
	cr_expect_neq(memcmp(mac, again, sizeof(mac)), 0);
	cloister__vm_config__free_unpacked(c, NULL);
}

Test(bindings, host_key_is_made_once_and_kept_private)
{
	uint8_t a[BINDINGS_KEY_BYTES], b[BINDINGS_KEY_BYTES];
	struct stat st;

	cr_assert_eq(bindings_host_key(path_in("sub/dir/host.key"), a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stat(path_in("sub/dir/host.key"), &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(bindings_host_key(path_in("sub/dir/host.key"), b, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(memcmp(a, b, sizeof(a)), 0, "the key changed");
	/* Readable by others, or a link: refused. */
	chmod(path_in("sub/dir/host.key"), 0644);
	cr_expect_eq(bindings_host_key(path_in("sub/dir/host.key"), b, err, sizeof(err)), -EPERM);
	chmod(path_in("sub/dir/host.key"), 0600);
	cr_assert_eq(symlink(path_in("sub/dir/host.key"), path_in("link.key")), 0);
	cr_expect_lt(bindings_host_key(path_in("link.key"), b, err, sizeof(err)), 0);
}

Test(bindings, seal_written_and_verified_in_a_snapshot_dir)
{
	Cloister__VmConfig *c = config_with_devices();
	char url[128];
	char *tap;
	int dirfd;

	bindings_set_key_path(path_in("host.key"));
	snprintf(url, sizeof(url), "file://%s", dir);
	dirfd = snapdir_open(url, err, sizeof(err));
	cr_assert_geq(dirfd, 0, "%s", err);
	cr_assert_eq(bindings_seal(dirfd, c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(renameat(dirfd, "host-bindings.partial", dirfd, "host-bindings"), 0);
	cr_expect(bindings_verify(dirfd, c));
	tap = device(c, "net")->tap;
	device(c, "net")->tap = "someone-elses";
	cr_expect(!bindings_verify(dirfd, c), "a changed tap verified");
	device(c, "net")->tap = tap;
	write_file("host-bindings", "cloister-host-bindings 1 00\n");
	cr_expect(!bindings_verify(dirfd, c), "a junk seal verified");
	close(dirfd);
	bindings_set_key_path(NULL);
	cloister__vm_config__free_unpacked(c, NULL);
}

Test(bindings, unsealed_snapshot_needs_bindings)
{
	Cloister__VmConfig *c = config_with_devices();
	struct restore_binds b = { .n = 0 };

	/* Nothing bound: the disk is named as the first device that needs a binding. */
	cr_expect_eq(bindings_apply(c, NULL, false, err, sizeof(err)), -EBADMSG);
	cr_expect(strstr(err, "disk0") && strstr(err, "binding"), "%s", err);
	cr_assert_eq(parse_restore_bind("id=disk0,path=/mine.img", &b, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(bindings_apply(c, &b, false, err, sizeof(err)), -EBADMSG);
	cr_expect(strstr(err, "net0"), "%s", err);
	cr_assert_eq(parse_restore_bind("id=net0,tap=tap9", &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(bindings_apply(c, &b, false, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(device(c, "blk")->path, "/mine.img");
	cr_expect_str_eq(device(c, "net")->tap, "tap9");
	/* The snapshot's own output files are not touched: output goes nowhere. */
	cr_expect_eq(c->serial->mode, CLOISTER__SERIAL_MODE__SERIAL_NULL);
	cr_expect_eq(device(c, "console")->console->mode, CLOISTER__SERIAL_MODE__SERIAL_NULL);
	cr_expect_str_eq(c->serial->path, "");
	restore_binds_free(&b);
	cloister__vm_config__free_unpacked(c, NULL);
}

Test(bindings, sealed_snapshot_keeps_its_own_and_takes_named_ones)
{
	Cloister__VmConfig *c = config_with_devices();
	struct restore_binds b = { .n = 0 };
	char spec[160];

	snprintf(spec, sizeof(spec), "id=serial,file=%s", path_in("named.out"));
	cr_assert_eq(parse_restore_bind(spec, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(bindings_apply(c, &b, true, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(device(c, "blk")->path, "/img/a");
	cr_expect_str_eq(c->serial->path, path_in("named.out"));
	/* A file the restorer named is made (never truncated). */
	cr_expect_not_null(read_file("named.out"));
	restore_binds_free(&b);
	cr_assert_eq(parse_restore_bind("id=disk9,path=/x", &b, err, sizeof(err)), 0);
	cr_expect_eq(bindings_apply(c, &b, true, err, sizeof(err)), -EBADMSG);
	cr_expect(strstr(err, "no such device"), "%s", err);
	restore_binds_free(&b);
	cr_assert_eq(parse_restore_bind("id=console0,socket=/tmp/x.sock", &b, err, sizeof(err)), 0);
	cr_expect_eq(bindings_apply(c, &b, true, err, sizeof(err)), -EBADMSG);
	cr_expect(strstr(err, "no socket"), "%s", err);
	restore_binds_free(&b);
	cloister__vm_config__free_unpacked(c, NULL);
}

Test(bindings, json_devices)
{
	struct json_object *ok = json_tokener_parse(
		"[{\"id\": \"disk0\", \"path\": \"/a\"}, {\"id\": \"serial\", \"mode\": \"null\"}]");
	struct json_object *bad[] = {
		json_tokener_parse("{\"id\": \"disk0\"}"),
		json_tokener_parse("[{\"id\": \"disk0\", \"path\": 7}]"),
		json_tokener_parse("[{\"id\": \"disk0\", \"path\": \"/a\"}, {\"id\": \"disk0\", \"path\": \"/b\"}]"),
		json_tokener_parse("[{\"id\": \"disk0\", \"path\": \"/a\", \"evil\": \"x\"}]"),
		json_tokener_parse("[\"disk0\"]"),
	};
	struct restore_binds b;

	cr_assert_eq(bindings_from_json(ok, &b, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(b.n, 2);
	cr_expect_str_eq(b.b[0].path, "/a");
	cr_expect_eq(b.b[1].sink_mode, CLOISTER__SERIAL_MODE__SERIAL_NULL);
	restore_binds_free(&b);
	json_object_put(ok);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(bindings_from_json(bad[i], &b, err, sizeof(err)), -EINVAL, "case %zu", i);
		json_object_put(bad[i]);
	}
}

/* ---- opening what a snapshot names ---- */

TestSuite(host_open, .init = make_dir, .fini = remove_dir);

Test(host_open, only_regular_files_without_links)
{
	int fd;

	write_file("f", "x");
	fd = host_open_strict(path_in("f"), O_RDONLY);
	cr_expect_geq(fd, 0);
	close(fd);
	cr_assert_eq(symlink(path_in("f"), path_in("l")), 0);
	cr_expect_eq(host_open_strict(path_in("l"), O_RDONLY), -ELOOP);
	/* A link to a directory on the way counts too. */
	cr_assert_eq(symlink(dir, path_in("d")), 0);
	cr_expect_eq(host_open_strict(path_in("d/f"), O_RDONLY), -ELOOP);
	cr_expect_eq(host_parent_strict(path_in("d/sock")), -ELOOP);
	cr_expect_eq(host_parent_strict(path_in("sock")), 0);
	cr_assert_eq(mkfifo(path_in("p"), 0600), 0);
	cr_expect_eq(host_open_strict(path_in("p"), O_WRONLY), -EINVAL);
	cr_expect_eq(host_open_strict("/dev/null", O_WRONLY), -EINVAL);
	cr_expect_eq(host_open_strict(path_in("missing"), O_WRONLY), -ENOENT);
	cr_expect_eq(access(path_in("missing"), F_OK), -1, "a missing file was made");
}

/* ---- all-or-nothing snapshot writes ---- */

TestSuite(snapdir, .init = make_dir, .fini = remove_dir);

static int open_dir(void)
{
	char url[128];
	int fd;

	snprintf(url, sizeof(url), "file://%s", dir);
	fd = snapdir_open(url, err, sizeof(err));
	cr_assert_geq(fd, 0, "%s", err);
	return fd;
}

Test(snapdir, uncommitted_partials_go_and_the_old_snapshot_stays)
{
	int fd;

	write_file("vm.json", "old");
	write_file("memory-region-0", "old0");
	write_file("vm.json.partial", "new");
	write_file("memory-region-0.partial", "new0");
	fd = open_dir();
	cr_expect_str_eq(read_file("vm.json"), "old");
	cr_expect_str_eq(read_file("memory-region-0"), "old0");
	cr_expect_null(read_file("vm.json.partial"));
	cr_expect_null(read_file("memory-region-0.partial"));
	close(fd);
}

Test(snapdir, committed_publish_is_rolled_forward)
{
	int fd;

	write_file("vm.json", "old");
	write_file("memory-region-0", "old0");
	write_file("memory-region-1", "old1");
	write_file("memory-region-0", "old0");
	/* Killed after the commit point, region 0 already moved. */
	write_file("vm.json.partial", "new");
	write_file("host-bindings.partial", "seal");
	write_file("commit", "regions 1\n");
	unlink(path_in("memory-region-0"));
	write_file("memory-region-0", "new0");
	fd = open_dir();
	cr_expect_str_eq(read_file("vm.json"), "new");
	cr_expect_str_eq(read_file("memory-region-0"), "new0");
	cr_expect_str_eq(read_file("host-bindings"), "seal");
	cr_expect_null(read_file("memory-region-1"), "a region of the older snapshot stayed");
	cr_expect_null(read_file("commit"));
	close(fd);
}

Test(snapdir, publish_and_a_second_user_is_turned_away)
{
	int fds[2], fd = open_dir();
	char url[128];

	cr_assert_eq(snapdir_create_partials(fd, 1, fds, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(write(fds[0], "{}", 2), 2);
	cr_assert_eq(write(fds[1], "mem", 3), 3);
	snprintf(url, sizeof(url), "file://%s", dir);
	cr_expect_eq(snapdir_open(url, err, sizeof(err)), -EBUSY);
	cr_assert_eq(snapdir_publish(fd, 1, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(read_file("vm.json"), "{}");
	cr_expect_str_eq(read_file("memory-region-0"), "mem");
	cr_expect_null(read_file("commit"));
	cr_expect_null(read_file("vm.json.partial"));
	close(fds[0]);
	close(fds[1]);
	close(fd);
}

Test(snapdir, hostile_commit_marker)
{
	int fd;
	char url[128];

	write_file("vm.json", "old");
	write_file("commit", "regions 99999\n");
	snprintf(url, sizeof(url), "file://%s", dir);
	cr_expect_eq(snapdir_open(url, err, sizeof(err)), -EBADMSG);
	write_file("commit", "regions 1\n");
	fd = open_dir();
	close(fd);
}

Test(snapdir, region_with_two_links_is_refused)
{
	int fds[1 + 2] = { -1, -1, -1 }, fd;
	size_t n;

	write_file("vm.json", "{}");
	write_file("other", "mem");
	cr_assert_eq(link(path_in("other"), path_in("memory-region-0")), 0);
	fd = open_dir();
	cr_expect_eq(snapdir_open_files(fd, fds, &n, err, sizeof(err)), -EBADMSG);
	cr_expect(strstr(err, "memory-region-0") && strstr(err, "hard link"), "%s", err);
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	close(fd);
}

Test(snapdir, readers_share_the_directory_and_a_writer_waits_for_them)
{
	int fds[2], reader, writer;
	char url[128];

	snprintf(url, sizeof(url), "file://%s", dir);
	reader = snapdir_open(url, err, sizeof(err));
	cr_assert_geq(reader, 0, "%s", err);
	/* Two restores of one snapshot side by side. */
	writer = snapdir_open(url, err, sizeof(err));
	cr_assert_geq(writer, 0, "%s", err);
	/* But nobody writes while someone reads. */
	cr_expect_eq(snapdir_create_partials(writer, 1, fds, err, sizeof(err)), -EBUSY);
	close(reader);
	cr_assert_eq(snapdir_create_partials(writer, 1, fds, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(snapdir_open(url, err, sizeof(err)), -EBUSY, "a reader while writing");
	snapdir_unlink_partials(writer, 1);
	close(fds[0]);
	close(fds[1]);
	close(writer);
}
