/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How long saving and loading a region takes: a 4 GiB memfd with ~300 MiB
 * written in 1 MiB blocks spread over it, saved to a sparse file in dir
 * (default /tmp) and loaded back into a fresh memfd.
 *   snapshot_io [dir]
 * Build: cc -O2 -D_GNU_SOURCE -Isnapshotd -Icommon bench/snapshot_io.c BUILD/snapshotd/libsnapshotd.a
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"

#define MIB (1ull << 20)
#define REGION (4ull << 30)
#define BLOCKS 300

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int region_memfd(void)
{
	int fd = memfd_create("bench-region", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)REGION) < 0)
		return -1;
	return fd;
}

static int fill_guest_like(int fd)
{
	uint8_t *block = malloc(MIB);

	if (!block)
		return -1;
	for (size_t i = 0; i < MIB; i++)
		block[i] = (uint8_t)(i * 13 + 1);
	for (uint64_t i = 0; i < BLOCKS; i++) {
		off_t off = (off_t)((i * (REGION / BLOCKS)) & ~(MIB - 1));

		if (pwrite(fd, block, MIB, off) != (ssize_t)MIB) {
			free(block);
			return -1;
		}
	}
	free(block);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	int mem = region_memfd(), back = region_memfd();
	int file = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	struct stat st;
	double t0, t_save, t_load;

	if (mem < 0 || back < 0 || file < 0 || fill_guest_like(mem) < 0) {
		perror("setup");
		return 1;
	}
	t0 = now();
	if (snapshot_write_region(mem, REGION, file) < 0)
		return 1;
	t_save = now() - t0;
	t0 = now();
	if (snapshot_fill_region(file, REGION, back) < 0)
		return 1;
	t_load = now() - t0;
	fstat(file, &st);
	printf("region 4 GiB, %d MiB written; file in %s uses %llu MiB\n"
	       "snapshot_write_region: %.3f s (includes fdatasync)\n"
	       "snapshot_fill_region:  %.3f s\n", BLOCKS, dir,
	       (unsigned long long)st.st_blocks * 512 / MIB, t_save, t_load);
	return 0;
}
