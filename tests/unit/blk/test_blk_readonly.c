/* SPDX-License-Identifier: Apache-2.0 */
/* An image handed in read-only: the disk says so and refuses every change. */
#include "blk_harness.h"

static struct blk_fixture f;
static uint8_t original[4096];

static void setup(void)
{
	int fd;

	memset(&f, 0, sizeof(f));
	guest_open(&f.g);
	fd = blk_image_create(&f, IMAGE_BYTES, O_RDWR);
	fill_pattern(original, sizeof(original), 42);
	cr_assert_eq(pwrite(fd, original, sizeof(original), 0), (ssize_t)sizeof(original));
	close(fd);
	fd = open(f.path, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	blk_attach(&f, fd, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_RO) |
				   (1ull << VIRTIO_BLK_F_FLUSH));
}

static void teardown(void)
{
	blk_detach(&f);
}

TestSuite(blk_readonly, .init = setup, .fini = teardown, .timeout = 20);

static void assert_image_unchanged(void)
{
	uint8_t got[sizeof(original)];

	cr_assert_eq(pread(f.image_fd, got, sizeof(got), 0), (ssize_t)sizeof(got));
	cr_assert_arr_eq(got, original, sizeof(got));
}

Test(blk_readonly, offers_ro_and_no_deallocation)
{
	cr_assert(f.disk.readonly);
	cr_assert(f.disk.ops.features & (1ull << VIRTIO_BLK_F_RO));
	cr_assert_not(f.disk.ops.features & (1ull << VIRTIO_BLK_F_DISCARD));
	cr_assert_not(f.disk.ops.features & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	cr_assert_eq(f.disk.ops.config[BLK_CFG_WRITE_ZEROES_MAY_UNMAP], 0);
}

Test(blk_readonly, refuses_writes)
{
	uint32_t used;

	memset(guest_ptr(&f.g, DATA_GPA), 0, 4096);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, 0, 4096, false, &used), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(used, 1);
	assert_image_unchanged();
	cr_assert_eq(f.dev.bytes_served, 0);
}

Test(blk_readonly, refuses_zeroing_even_if_the_driver_asks)
{
	/* a driver that claims features never offered still gets nothing written */
	f.dev.driver_features |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0), VIRTIO_BLK_S_IOERR);
	assert_image_unchanged();
}

Test(blk_readonly, reads_and_flushes)
{
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, 0, 4096, true, NULL), VIRTIO_BLK_S_OK);
	cr_assert_arr_eq(guest_ptr(&f.g, DATA_GPA), original, sizeof(original));
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}
