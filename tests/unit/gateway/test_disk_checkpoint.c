/* SPDX-License-Identifier: Apache-2.0 */
/* Disk checkpoints: sparse copies, and a restore that refuses lists not matching the snapshot. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk_checkpoint.h"

static char dir[] = "/tmp/cloister-ckpt-XXXXXX";

static void setup(void)
{
	strcpy(dir, "/tmp/cloister-ckpt-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static int make_file(const char *name, off_t size)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, size), 0);
	return fd;
}

static void write_at(int fd, off_t off, const char *text)
{
	cr_assert_eq(pwrite(fd, text, strlen(text), off), (ssize_t)strlen(text));
}

Test(disk_copy, sparse_copy_keeps_data_and_holes, .init = setup, .fini = teardown)
{
	int src = make_file("src", 64 << 20), dst = make_file("dst", 0);
	enum disk_copy_method used = DISK_COPY_AUTO;
	struct stat a, b;
	char buf[16];

	write_at(src, 0, "first");
	write_at(src, 40 << 20, "middle");
	write_at(src, (64 << 20) - 4, "end");
	cr_assert_eq(disk_copy(src, dst, DISK_COPY_SPARSE, &used), 0);
	cr_assert_eq(used, DISK_COPY_SPARSE);
	cr_assert_eq(fstat(src, &a), 0);
	cr_assert_eq(fstat(dst, &b), 0);
	cr_assert_eq(b.st_size, a.st_size);
	cr_assert_lt(b.st_blocks, 1024, "holes were filled: %ld blocks", (long)b.st_blocks);
	cr_assert_eq(pread(dst, buf, 6, 40 << 20), 6);
	cr_assert_eq(memcmp(buf, "middle", 6), 0);
	cr_assert_eq(pread(dst, buf, 3, (64 << 20) - 4), 3);
	cr_assert_eq(memcmp(buf, "end", 3), 0);
	cr_assert_eq(pread(dst, buf, 5, 0), 5);
	cr_assert_eq(memcmp(buf, "first", 5), 0);
	cr_assert_eq(pread(dst, buf, 4, 20 << 20), 4);
	cr_assert_eq(memcmp(buf, "\0\0\0\0", 4), 0);
	close(src);
	close(dst);
}

Test(disk_copy, auto_falls_back_when_reflink_is_refused, .init = setup, .fini = teardown)
{
	int src = make_file("src", 1 << 20), dst = make_file("dst", 0);
	enum disk_copy_method used = DISK_COPY_AUTO;
	int r;

	write_at(src, 4096, "data");
	r = disk_copy(src, dst, DISK_COPY_REFLINK, &used);
	if (r == 0) {
		cr_assert_eq(used, DISK_COPY_REFLINK);
	} else {
		cr_assert(r == -EOPNOTSUPP || r == -EXDEV || r == -EINVAL || r == -ENOTTY, "%d", r);
		cr_assert_eq(disk_copy(src, dst, DISK_COPY_AUTO, &used), 0);
		cr_assert_eq(used, DISK_COPY_SPARSE);
	}
	close(src);
	close(dst);
}

Test(disk_copy, only_regular_files)
{
	int src = open("/dev/null", O_RDONLY), dst = open("/dev/null", O_WRONLY);
	enum disk_copy_method used;

	cr_assert_eq(disk_copy(src, dst, DISK_COPY_AUTO, &used), -EINVAL);
	close(src);
	close(dst);
}

Test(disk_checkpoint, ids_that_may_name_a_file)
{
	cr_assert(disk_checkpoint_id_ok("disk0"));
	cr_assert(disk_checkpoint_id_ok("a_b-C9"));
	cr_assert_not(disk_checkpoint_id_ok(""));
	cr_assert_not(disk_checkpoint_id_ok("../x"));
	cr_assert_not(disk_checkpoint_id_ok("a/b"));
	cr_assert_not(disk_checkpoint_id_ok("a.img"));
	cr_assert_not(disk_checkpoint_id_ok("0123456789012345678901234567890123"));
}

/* A snapshot config with one writable 1 MiB disk, disk0. */
static Cloister__DeviceConfig disk0;
static Cloister__DeviceConfig *devices[1] = { &disk0 };
static Cloister__VmConfig config;

static void config_setup(void)
{
	setup();
	cloister__device_config__init(&disk0);
	disk0.kind = "blk";
	disk0.id = "disk0";
	disk0.path = "/nonexistent";
	disk0.disk_size = 1 << 20;
	cloister__vm_config__init(&config);
	config.n_devices = 1;
	config.devices = devices;
}

static void write_list(const char *text)
{
	int fd = make_file("disks.json", 0);

	write_at(fd, 0, text);
	close(fd);
}

static int restore(struct restore_binds *ret, char *err, size_t errlen)
{
	char url[128];

	snprintf(url, sizeof(url), "file://%s", dir);
	return disk_checkpoint_restore(&config, url, NULL, ret, err, errlen);
}

static const char good_list[] =
	"{\"version\": 1, \"disks\": [{\"id\": \"disk0\", \"file\": \"disk-disk0.img\", \"size\": 1048576}]}";

Test(disk_checkpoint, no_list_means_no_binding, .init = config_setup, .fini = teardown)
{
	struct restore_binds ret = { 0 };
	char err[256] = "";

	cr_assert_eq(restore(&ret, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ret.n, 0);
}

Test(disk_checkpoint, a_listed_disk_is_bound_to_a_fresh_copy, .init = config_setup,
     .fini = teardown)
{
	struct restore_binds a = { 0 }, b = { 0 };
	char err[256] = "", buf[8];
	int fd = make_file("disk-disk0.img", 1 << 20);

	write_at(fd, 512, "ckpt");
	close(fd);
	write_list(good_list);
	cr_assert_eq(restore(&a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(restore(&b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(a.n, 1);
	cr_assert_str_eq(a.b[0].id, "disk0");
	cr_assert_str_neq(a.b[0].path, b.b[0].path, "each restore has its own copy");
	cr_assert_eq(strncmp(a.b[0].path, dir, strlen(dir)), 0);
	fd = open(a.b[0].path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, buf, 4, 512), 4);
	cr_assert_eq(memcmp(buf, "ckpt", 4), 0);
	close(fd);
	restore_binds_free(&a);
	restore_binds_free(&b);
}

static void assert_refused(const char *list, const char *why)
{
	struct restore_binds ret = { 0 };
	char err[256] = "";

	write_list(list);
	cr_assert_eq(restore(&ret, err, sizeof(err)), -EBADMSG, "%s", list);
	cr_assert_not_null(strstr(err, why), "%s: %s", list, err);
	restore_binds_free(&ret);
}

Test(disk_checkpoint, lists_that_do_not_match_are_refused, .init = config_setup, .fini = teardown)
{
	int fd = make_file("disk-disk0.img", 1 << 20);

	close(fd);
	assert_refused("[]", "not a version 1");
	assert_refused("{\"version\": 2, \"disks\": []}", "not a version 1");
	assert_refused("{\"version\": 1, \"disks\": [{\"id\": \"disk0\", \"file\": \"../x\", "
		       "\"size\": 1048576}]}", "must be in disk-disk0.img");
	assert_refused("{\"version\": 1, \"disks\": [{\"id\": \"../x\", \"file\": \"x\", "
		       "\"size\": 1}]}", "an entry is not");
	assert_refused("{\"version\": 1, \"disks\": [{\"id\": \"disk1\", \"file\": "
		       "\"disk-disk1.img\", \"size\": 1048576}]}", "not a writable disk");
	assert_refused("{\"version\": 1, \"disks\": [{\"id\": \"disk0\", \"file\": "
		       "\"disk-disk0.img\", \"size\": 4096}]}", "not a writable disk of that size");
	disk0.readonly = true;
	assert_refused(good_list, "not a writable disk");
	disk0.readonly = false;
	/* The checkpoint file itself: its size, a link, a symlink. */
	fd = make_file("disk-disk0.img", 4096);
	close(fd);
	assert_refused(good_list, "missing, or not a single regular file");
}

Test(disk_checkpoint, links_to_the_checkpoint_are_refused, .init = config_setup, .fini = teardown)
{
	char from[256], to[256];
	int fd = make_file("elsewhere.img", 1 << 20);

	close(fd);
	snprintf(from, sizeof(from), "%s/elsewhere.img", dir);
	snprintf(to, sizeof(to), "%s/disk-disk0.img", dir);
	cr_assert_eq(symlink(from, to), 0);
	assert_refused(good_list, "missing, or not a single regular file");
	cr_assert_eq(unlink(to), 0);
	cr_assert_eq(link(from, to), 0);
	assert_refused(good_list, "missing, or not a single regular file");
}
