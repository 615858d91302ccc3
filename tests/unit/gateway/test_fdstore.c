/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the fd store hands back is checked before vmm-core maps it: names,
 * count, memfd, seals, size; and the restart question's decision.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fdstore.h"
#include "restart_query.h"

#define MIB (1ull << 20)

static Cloister__MemoryRegion region0 = CLOISTER__MEMORY_REGION__INIT;
static Cloister__MemoryRegion *regions[1] = { &region0 };
static Cloister__VmConfig config = CLOISTER__VM_CONFIG__INIT;

static void setup(void)
{
	region0.guest_addr = 0x80000000ull;
	region0.size = 64 * MIB;
	config.memory_size = 64 * MIB;
	config.regions = regions;
	config.n_regions = 1;
}

static int memfd(uint64_t size, int seals)
{
	int fd = memfd_create("stored", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	if (seals)
		cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static void add(struct notify_passed *p, const char *name, int fd)
{
	p->stored_fd[p->n_stored] = fd;
	snprintf(p->stored_name[p->n_stored], sizeof(p->stored_name[0]), "%s", name);
	p->n_stored++;
}

static int take(struct notify_passed *p, char *err, size_t errlen)
{
	int rw[LAYOUT_MAX_REGIONS], ro[LAYOUT_MAX_REGIONS];
	int r = fdstore_take_regions(p, &config, rw, ro, err, errlen);

	if (r == 0) {
		cr_expect_eq(rw[0], p->stored_fd[0]);
		cr_expect_eq(fcntl(ro[0], F_GETFL) & O_ACCMODE, O_RDONLY);
		close(ro[0]);
	}
	notify_passed_close(p);
	return r;
}

TestSuite(fdstore, .init = setup);

Test(fdstore, takes_a_sealed_memfd_of_the_region_size)
{
	struct notify_passed p = { .api_fd = -1 };
	char err[256] = "";

	add(&p, "region-0", memfd(64 * MIB, F_SEAL_SHRINK | F_SEAL_GROW));
	cr_expect_eq(take(&p, err, sizeof(err)), 0, "%s", err);
}

Test(fdstore, refuses_what_does_not_match_the_snapshot)
{
	struct notify_passed p = { .api_fd = -1 };
	const int seals = F_SEAL_SHRINK | F_SEAL_GROW;
	char err[256] = "";

	/* Another size than vm.json's region. */
	add(&p, "region-0", memfd(32 * MIB, seals));
	cr_expect_eq(take(&p, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "bytes") != NULL, "%s", err);

	/* Not sealed against resizing. */
	add(&p, "region-0", memfd(64 * MIB, 0));
	cr_expect_eq(take(&p, err, sizeof(err)), -EINVAL);

	/* More fds than regions, and a region the snapshot does not have. */
	add(&p, "region-0", memfd(64 * MIB, seals));
	add(&p, "region-1", memfd(64 * MIB, seals));
	cr_expect_eq(take(&p, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "2 fds") != NULL, "%s", err);

	/* Names that only look like region 0. */
	add(&p, "region-00", memfd(64 * MIB, seals));
	cr_expect_eq(take(&p, err, sizeof(err)), -EINVAL);
	add(&p, "region-+0", memfd(64 * MIB, seals));
	cr_expect_eq(take(&p, err, sizeof(err)), -EINVAL);
	add(&p, "region-1", memfd(64 * MIB, seals));
	cr_expect_eq(take(&p, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "no region") != NULL, "%s", err);

	/* No memory at all. */
	cr_expect_eq(take(&p, err, sizeof(err)), -EINVAL);
}

Test(fdstore, refuses_a_file_that_is_not_a_memfd)
{
	struct notify_passed p = { .api_fd = -1 };
	char err[256] = "", tmpl[] = "/tmp/cloister-fdstore-XXXXXX";
	int fd = mkstemp(tmpl);

	cr_assert_geq(fd, 0);
	unlink(tmpl);
	cr_assert_eq(ftruncate(fd, 64 * MIB), 0);
	add(&p, "region-0", fd);
	cr_expect_eq(take(&p, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "not a memfd") != NULL, "%s", err);
}

Test(restart_query, only_a_queued_restart_with_room_in_the_store_keeps_memory)
{
	char why[256];

	cr_expect_eq(restart_query_decide("restart", 8, 1, why, sizeof(why)), 1, "%s", why);
	cr_expect_eq(restart_query_decide("stop", 8, 1, why, sizeof(why)), 0);
	cr_expect(strstr(why, "stop") != NULL, "%s", why);
	cr_expect_eq(restart_query_decide(NULL, 8, 1, why, sizeof(why)), 0);
	cr_expect_eq(restart_query_decide("restart", 0, 1, why, sizeof(why)), 0);
	cr_expect(strstr(why, "FileDescriptorStoreMax=0") != NULL, "%s", why);
	cr_expect_eq(restart_query_decide("restart", 1, 2, why, sizeof(why)), 0);
}
