/* SPDX-License-Identifier: Apache-2.0 */
/* The save's progress page: only a sealed page is taken, and a save counts every chunk into it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chunk.h"
#include "fixture.h"
#include "save_progress.h"

/* Two whole chunks and a short third. */
#define SIZE (2ull * CHUNK_SIZE + 4096)

static int page(unsigned int seals, off_t size)
{
	int fd = memfd_create("progress", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, size), 0);
	if (seals)
		cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

Test(save_progress, refuses_what_could_shrink_or_is_too_small)
{
	uint64_t *count = NULL;
	int unsealed = page(0, 4096), small = page(F_SEAL_SHRINK, 8);
	int file = tmpfile_fd();

	cr_expect_eq(save_progress_map(unsealed, &count), -EINVAL);
	cr_expect_eq(save_progress_map(small, &count), -EINVAL);
	cr_expect_eq(save_progress_map(file, &count), -EINVAL);
	cr_expect_eq(save_progress_map(-1, &count), -EINVAL);
	cr_expect_null(count);
	close(unsealed);
	close(small);
	close(file);
}

Test(save_progress, a_save_counts_each_chunk_for_the_gateway)
{
	int fd = page(F_SEAL_SHRINK | F_SEAL_GROW, 4096);
	uint64_t *gateway = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	struct chunk_format fmt = { .zstd = false };
	uint64_t size = SIZE;
	struct chunk_set set;
	int memfd = memfd_of_size(SIZE), out = tmpfile_fd();
	char err[256] = "";
	uint8_t *m;

	cr_assert_neq(gateway, MAP_FAILED);
	*gateway = 12345;
	m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	cr_assert_neq(m, MAP_FAILED);
	memset(m + CHUNK_SIZE, 0x33, 4096);
	munmap(m, SIZE);

	cr_assert_eq(chunk_set_init(&set, &fmt, &size, 1), 0);
	cr_assert_eq(save_progress_map(fd, &set.progress), 0);
	cr_expect_eq(*gateway, 0, "a save starts its count at 0");
	cr_assert_eq(chunk_write_region(&set, 0, memfd, out, err, sizeof(err)), 0, "%s", err);
	/* Zero chunks count too: the figure is guest memory gone through, of the whole. */
	cr_expect_eq(*gateway, SIZE, "count %llu", (unsigned long long)*gateway);
	save_progress_unmap(set.progress);
	chunk_set_release(&set);
	munmap(gateway, 4096);
	close(fd);
	close(memfd);
	close(out);
}
