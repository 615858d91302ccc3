/* SPDX-License-Identifier: Apache-2.0 */
/* Guest memory: the layout, sealing, the read-only twins, and bounds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layout.h"
#include "memory.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)

Test(layout, splits_above_three_gib)
{
	struct layout_region r[LAYOUT_MAX_REGIONS];

	cr_assert_eq(layout_memory(512 * MIB, r), 1);
	cr_expect_eq(r[0].gpa, 0x80000000ull);
	cr_expect_eq(r[0].size, 512 * MIB);
	cr_assert_eq(layout_memory(3 * GIB, r), 1);
	cr_assert_eq(layout_memory(4 * GIB, r), 2);
	cr_expect_eq(r[0].size, 3 * GIB);
	cr_expect_eq(r[1].gpa, 0x180000000ull);
	cr_expect_eq(r[1].size, 1 * GIB);
	/* The MMIO window sits between the regions and overlaps neither. */
	cr_expect_eq(r[0].gpa + r[0].size, LAYOUT_MMIO_WINDOW_BASE);
	cr_expect_eq(LAYOUT_MMIO_WINDOW_BASE + LAYOUT_MMIO_WINDOW_SIZE, r[1].gpa);
}

static void setup_two_regions(struct guest_memory *mem)
{
	struct layout_region r[LAYOUT_MAX_REGIONS];
	size_t n = layout_memory(3 * GIB + 64 * MIB, r);

	cr_assert_eq(memory_prepare(mem), 0);
	cr_assert_eq(memory_setup(mem, r, n), 0);
	cr_assert_eq(mem->n_regions, 2);
}

Test(memory, regions_are_sealed_against_resizing)
{
	struct guest_memory mem;

	setup_two_regions(&mem);
	for (size_t i = 0; i < mem.n_regions; i++) {
		int seals = fcntl(mem.fd[i], F_GET_SEALS);

		cr_expect(seals & F_SEAL_SHRINK);
		cr_expect(seals & F_SEAL_GROW);
		cr_expect(seals & F_SEAL_SEAL);
		cr_expect_eq(ftruncate(mem.fd[i], 4096), -1);
		cr_expect_eq(errno, EPERM);
		cr_expect_eq(ftruncate(mem.fd[i], (off_t)(mem.ram[i].size * 2)), -1);
	}
	memory_release(&mem);
}

Test(memory, read_only_twin_sees_writes_and_cannot_write)
{
	struct guest_memory mem;
	uint64_t word = 0x1122334455667788ull, back = 0;
	void *map;

	setup_two_regions(&mem);
	cr_assert_eq(memory_write(&mem, 0x180000000ull + 8192, &word, sizeof(word)), 0);
	cr_assert_eq(pread(mem.fd_ro[1], &back, sizeof(back), 8192), (ssize_t)sizeof(back));
	cr_expect_eq(back, word);
	cr_expect_eq(pwrite(mem.fd_ro[1], &word, sizeof(word), 0), -1);
	cr_expect_eq(errno, EBADF);
	map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mem.fd_ro[0], 0);
	cr_expect_eq(map, MAP_FAILED, "a writable mapping of the read-only twin");
	memory_release(&mem);
}

Test(memory, unused_region_fds_are_closed)
{
	struct guest_memory mem;
	struct layout_region r[LAYOUT_MAX_REGIONS];
	size_t n = layout_memory(64 * MIB, r);

	cr_assert_eq(memory_prepare(&mem), 0);
	cr_assert_eq(memory_setup(&mem, r, n), 0);
	cr_expect_eq(mem.fd[1], -1);
	cr_expect_eq(mem.fd_ro[1], -1);
	memory_release(&mem);
}

Test(memory, host_pointers_stay_inside_one_region)
{
	struct guest_memory mem;
	uint8_t buf[16] = { 0 };

	setup_two_regions(&mem);
	cr_expect_not_null(memory_host_ptr(&mem, 0x80000000ull, 16));
	cr_expect_not_null(memory_host_ptr(&mem, 0x80000000ull + 3 * GIB - 16, 16));
	/* Straddling the end of region 0, in the MMIO window, below RAM, past region 1. */
	cr_expect_null(memory_host_ptr(&mem, 0x80000000ull + 3 * GIB - 8, 16));
	cr_expect_null(memory_host_ptr(&mem, LAYOUT_MMIO_WINDOW_BASE, 1));
	cr_expect_null(memory_host_ptr(&mem, 0x7ffffff0ull, 32));
	cr_expect_null(memory_host_ptr(&mem, 0x180000000ull + 64 * MIB, 1));
	/* Lengths that wrap around must not pass the bounds check. */
	cr_expect_null(memory_host_ptr(&mem, 0x80000000ull + 16, UINT64_MAX - 8));
	cr_expect_null(memory_host_ptr(&mem, UINT64_MAX - 4, 16));
	cr_expect_eq(memory_read(&mem, LAYOUT_MMIO_WINDOW_BASE, buf, sizeof(buf)), -EFAULT);
	cr_expect_eq(memory_write(&mem, 0x80000000ull + 3 * GIB - 1, buf, 2), -EFAULT);
	memory_release(&mem);
}

/* ---- memory given by the fd store ---- */

static int sealed_memfd(uint64_t size, int seals)
{
	int fd = memfd_create("given", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	if (seals)
		cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static int reopen(int fd, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, flags | O_CLOEXEC);
}

/* adopt with region 0 of 64 MiB given as rw/ro; returns memory_adopt's result. */
static int adopt_one(int rw, int ro, struct guest_memory *mem, char *err, size_t errlen)
{
	struct layout_region r[LAYOUT_MAX_REGIONS];
	size_t n = layout_memory(64 * MIB, r);
	int rws[LAYOUT_MAX_REGIONS] = { rw, -1 }, ros[LAYOUT_MAX_REGIONS] = { ro, -1 };

	cr_assert_eq(memory_prepare(mem), 0);
	return memory_adopt(mem, r, n, rws, ros, err, errlen);
}

Test(memory_adopt, maps_the_given_memfd_and_keeps_what_it_holds)
{
	struct guest_memory mem;
	uint64_t word = 0xfeedfacecafebeefull, back = 0;
	int rw = sealed_memfd(64 * MIB, F_SEAL_SHRINK | F_SEAL_GROW);
	char err[256] = "";

	cr_assert_eq(pwrite(rw, &word, sizeof(word), 4096), (ssize_t)sizeof(word));
	cr_assert_eq(adopt_one(rw, reopen(rw, O_RDONLY), &mem, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mem.n_regions, 1);
	cr_expect_eq(memory_read(&mem, 0x80000000ull + 4096, &back, sizeof(back)), 0);
	cr_expect_eq(back, word, "the guest's memory was not kept");
	cr_expect(fcntl(mem.fd[0], F_GET_SEALS) & F_SEAL_SEAL, "sealed for good once adopted");
	cr_expect_eq(fcntl(mem.fd_ro[0], F_GETFL) & O_ACCMODE, O_RDONLY);
	memory_release(&mem);
}

Test(memory_adopt, refuses_memory_that_is_not_a_sealed_memfd_of_the_region_size)
{
	struct guest_memory mem;
	char err[256] = "", tmpl[] = "/tmp/cloister-adopt-XXXXXX";
	int fd, other;

	/* Not sealed: it could shrink under the guest's feet. */
	fd = sealed_memfd(64 * MIB, 0);
	cr_expect_eq(adopt_one(fd, reopen(fd, O_RDONLY), &mem, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "seals") != NULL, "%s", err);
	memory_release(&mem);

	/* The wrong size. */
	fd = sealed_memfd(32 * MIB, F_SEAL_SHRINK | F_SEAL_GROW);
	cr_expect_eq(adopt_one(fd, reopen(fd, O_RDONLY), &mem, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "bytes") != NULL, "%s", err);
	memory_release(&mem);

	/* Sealed against writing: the guest could not run in it. */
	fd = sealed_memfd(64 * MIB, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
	cr_expect_eq(adopt_one(fd, reopen(fd, O_RDONLY), &mem, err, sizeof(err)), -EINVAL);
	memory_release(&mem);

	/* A plain file is no memfd. */
	fd = mkstemp(tmpl);
	cr_assert_geq(fd, 0);
	unlink(tmpl);
	cr_assert_eq(ftruncate(fd, 64 * MIB), 0);
	cr_expect_eq(adopt_one(fd, reopen(fd, O_RDONLY), &mem, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "not a memfd") != NULL, "%s", err);
	memory_release(&mem);

	/* Read-only where read-write is needed. */
	fd = sealed_memfd(64 * MIB, F_SEAL_SHRINK | F_SEAL_GROW);
	other = reopen(fd, O_RDONLY);
	cr_expect_eq(adopt_one(other, reopen(fd, O_RDONLY), &mem, err, sizeof(err)), -EINVAL);
	memory_release(&mem);
	close(fd);

	/* A read-only twin of another memfd. */
	fd = sealed_memfd(64 * MIB, F_SEAL_SHRINK | F_SEAL_GROW);
	other = sealed_memfd(64 * MIB, F_SEAL_SHRINK | F_SEAL_GROW);
	cr_expect_eq(adopt_one(fd, reopen(other, O_RDONLY), &mem, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "different files") != NULL, "%s", err);
	cr_expect_eq(mem.n_regions, 0);
	memory_release(&mem);
	close(other);
}
