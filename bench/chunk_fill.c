/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Copy restore's and a snapshot's chunk work without a VM: a 4 GiB memfd
 * holding MIB MiB of data (1 MiB of random bytes repeated, as
 * bench/ondemand_restore.py's guest writes, and one chunk in eight with
 * only some of its pages written) is saved by chunk_write_region() to a
 * file in dir, then filled back by chunk_fill_region() into a fresh memfd
 * (page cache warm) with 1, 2, ... workers; the result is compared with
 * the source. Beside them, in the same run: the page cache read into one
 * buffer (what `dd of=/dev/null` measures), the page cache read into fresh
 * memory (pread into a buffer, pwrite into a new memfd: the least a Copy
 * restore must do), and writing as many bytes with pwrite and fdatasync.
 * Wall time and CPU time (all threads) for each.
 *
 *   chunk_fill [dir [MIB [plain|zstd|sealed [max-workers]]]]
 *
 * Build, from the tree, after scripts/build.sh build:
 *   cc -O2 -D_GNU_SOURCE -Isnapshotd -Icommon -Ibuild -Ibuild/proto -Iproto \
 *      bench/chunk_fill.c build/snapshotd/libsnapshotd.a build/proto/libclproto.a \
 *      build/common/libclcommon.a -lsodium -lcrypto -lzstd -ljson-c -lprotobuf-c \
 *      -lpthread -o /tmp/chunk_fill
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "chunk.h"
#include "digest.h"

#define MIB (1ull << 20)
#define REGION (4ull << 30)
#define DATA_START (64 * MIB)

struct clock {
	double wall, cpu;
};

static struct clock now(void)
{
	struct timespec t;
	struct rusage ru;

	clock_gettime(CLOCK_MONOTONIC, &t);
	getrusage(RUSAGE_SELF, &ru);
	return (struct clock){ (double)t.tv_sec + (double)t.tv_nsec / 1e9,
			       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6 };
}

static void report(const char *what, struct clock t0, uint64_t bytes)
{
	struct clock t1 = now();
	double wall = t1.wall - t0.wall;

	printf("%-44s %7.3f s wall %7.3f s CPU %6.2f GB/s\n", what, wall, t1.cpu - t0.cpu,
	       (double)bytes / wall / 1e9);
}

static int memfd_of(uint64_t size)
{
	int fd = memfd_create("bench-region", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		perror("memfd");
		exit(1);
	}
	return fd;
}

static int tmpfile_in(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0) {
		perror(dir);
		exit(1);
	}
	return fd;
}

static void fill_guest_like(int fd, uint64_t mib)
{
	uint8_t *block = malloc(MIB);

	randombytes_buf(block, MIB);
	for (uint64_t i = 0; i < mib; i++) {
		size_t len = i % 8 == 7 ? MIB / 4 : MIB;

		if (pwrite(fd, block, len, (off_t)(DATA_START + i * MIB)) != (ssize_t)len) {
			perror("fill");
			exit(1);
		}
	}
	free(block);
}

/* Read, not mapped: reading a memfd's hole through a mapping would allocate it. */
static bool same(int a, int b)
{
	uint8_t *x = malloc(MIB), *y = malloc(MIB);
	bool eq = x && y;

	for (uint64_t off = 0; eq && off < REGION; off += MIB)
		eq = pread(a, x, MIB, (off_t)off) == (ssize_t)MIB &&
		     pread(b, y, MIB, (off_t)off) == (ssize_t)MIB && memcmp(x, y, MIB) == 0;
	free(x);
	free(y);
	return eq;
}

static void disk_write(const char *dir, uint64_t bytes)
{
	uint8_t *buf = malloc(MIB);
	int fd = tmpfile_in(dir);
	struct clock t0;

	memset(buf, 0x5a, MIB);
	t0 = now();
	for (uint64_t off = 0; off < bytes; off += MIB)
		if (pwrite(fd, buf, MIB, (off_t)off) != (ssize_t)MIB)
			exit(1);
	if (fdatasync(fd) < 0)
		exit(1);
	report("pwrite + fdatasync as many bytes (dd)", t0, bytes);
	close(fd);
	free(buf);
}

/*
 * References: the page cache into one buffer, and into fresh memory. A
 * plain file's data range, a stored form's whole file; rates over the bytes
 * of memory the restore fills, as the fill's.
 */
static void page_cache_reads(int file, bool plain, uint64_t end, uint64_t bytes)
{
	uint8_t *buf = malloc(MIB);
	uint64_t start = plain ? DATA_START : 0;
	struct clock t0;
	struct stat st;
	int mem;

	if (!plain && fstat(file, &st) == 0)
		end = (uint64_t)st.st_size;
	t0 = now();
	for (uint64_t off = start; off < end; off += MIB)
		if (pread(file, buf, MIB, (off_t)off) < 0)
			exit(1);
	report("page cache -> one buffer (dd of=/dev/null)", t0, bytes);
	mem = memfd_of(REGION);
	t0 = now();
	for (uint64_t off = start; off < end; off += MIB)
		if (pread(file, buf, MIB, (off_t)off) < 0 ||
		    pwrite(mem, buf, MIB, (off_t)off) != (ssize_t)MIB)
			exit(1);
	report("page cache -> fresh memfd (pread, pwrite)", t0, bytes);
	close(mem);
	free(buf);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 1200;
	const char *form = argc > 3 ? argv[3] : "plain";
	size_t max_workers = argc > 4 ? strtoul(argv[4], NULL, 0) : chunk_workers();
	struct chunk_format fmt = { .zstd = strstr(form, "zstd") != NULL,
				    .sealed = strstr(form, "sealed") != NULL };
	uint64_t size = REGION, bytes = 0, end = DATA_START + mib * MIB;
	char err[512] = "", what[64];
	int mem, file;
	struct chunk_set set;
	struct clock t0;

	if (sodium_init() < 0 || digest_init() < 0 || mib == 0 || end > REGION)
		return 1;
	randombytes_buf(fmt.key, sizeof(fmt.key));
	mem = memfd_of(REGION);
	fill_guest_like(mem, mib);
	for (uint64_t i = 0; i < mib; i++)
		bytes += i % 8 == 7 ? MIB / 4 : MIB;
	printf("region 4 GiB, %.2f GB of data, %s, %zu CPUs for workers, files in %s\n",
	       (double)bytes / 1e9, form, chunk_workers(), dir);
	for (size_t w = 1; w <= max_workers; w++) {
		if (chunk_set_init(&set, &fmt, &size, 1) < 0)
			return 1;
		set.workers = w;
		/* The disk's rate moves from one second to the next: a reference right before. */
		disk_write(dir, bytes);
		file = tmpfile_in(dir);
		t0 = now();
		if (chunk_write_region(&set, 0, mem, file, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		snprintf(what, sizeof(what), "snapshot write, %zu worker%s", w, w > 1 ? "s" : "");
		report(what, t0, bytes);
		for (size_t v = 1; v <= max_workers; v++) {
			int out = memfd_of(REGION);

			set.workers = v;
			t0 = now();
			if (chunk_fill_region(&set, 0, file, out, err, sizeof(err)) < 0) {
				fprintf(stderr, "%s\n", err);
				return 1;
			}
			snprintf(what, sizeof(what), "Copy restore fill, %zu worker%s", v,
				 v > 1 ? "s" : "");
			report(what, t0, bytes);
			if (!same(mem, out)) {
				fprintf(stderr, "restored memory differs\n");
				return 1;
			}
			close(out);
		}
		if (w == max_workers)
			page_cache_reads(file, !fmt.zstd && !fmt.sealed, end, bytes);
		close(file);
		chunk_set_release(&set);
	}
	return 0;
}
