/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How long a disk checkpoint's copy takes: a sparse image of SIZE MiB with
 * DATA MiB written in 1 MiB blocks spread over it, copied by reflink (where
 * dir's filesystem has it) and by sparse copy, three times each.
 *   disk_copy [dir] [size_mib] [data_mib]
 * Build: cc -O2 -D_GNU_SOURCE -Iapi-gateway -Icommon -Ibuild/proto -Iproto \
 *   -I/usr/include/json-c bench/disk_copy.c build/api-gateway/libgateway.a \
 *   build/api-gateway/libgwoptions.a build/common/libclcommon.a \
 *   build/proto/libclproto.a -ljson-c -lprotobuf-c -lsodium -lpthread
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk_checkpoint.h"

#define MIB (1ull << 20)

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int make_image(const char *path, unsigned long long size, unsigned long long data)
{
	char *block = malloc(MIB);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || !block || ftruncate(fd, (off_t)(size * MIB)) < 0)
		return -1;
	memset(block, 0x5a, MIB);
	for (unsigned long long i = 0; i < data; i++)
		if (pwrite(fd, block, MIB, (off_t)((i * size / data) * MIB)) != (ssize_t)MIB)
			return -1;
	fsync(fd);
	free(block);
	return fd;
}

static void run(int src, const char *dst_path, enum disk_copy_method how, const char *name)
{
	for (int i = 0; i < 3; i++) {
		int dst = open(dst_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		enum disk_copy_method used;
		double t0 = now(), t1;
		int r = disk_copy(src, dst, how, &used);

		if (r == 0)
			fsync(dst);
		t1 = now();
		close(dst);
		unlink(dst_path);
		if (r < 0) {
			printf("%-8s not available here (%s)\n", name, strerror(-r));
			return;
		}
		printf("%-8s %8.1f ms\n", name, (t1 - t0) * 1e3);
	}
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	unsigned long long size = argc > 2 ? strtoull(argv[2], NULL, 10) : 4096;
	unsigned long long data = argc > 3 ? strtoull(argv[3], NULL, 10) : 512;
	char src_path[512], dst_path[512];
	int src;

	snprintf(src_path, sizeof(src_path), "%s/disk-copy-src.img", dir);
	snprintf(dst_path, sizeof(dst_path), "%s/disk-copy-dst.img", dir);
	src = make_image(src_path, size, data);
	if (src < 0 || data == 0 || data > size) {
		perror("image");
		return 1;
	}
	printf("%llu MiB image, %llu MiB of data, in %s\n", size, data, dir);
	run(src, dst_path, DISK_COPY_REFLINK, "reflink");
	run(src, dst_path, DISK_COPY_SPARSE, "sparse");
	close(src);
	unlink(src_path);
	return 0;
}
