/* SPDX-License-Identifier: Apache-2.0 */
/* save and restore: the blob remembers the disk, and a different disk is refused. */
#include "blk_harness.h"

static struct blk_fixture f;

static void setup(void)
{
	memset(&f, 0, sizeof(f));
	guest_open(&f.g);
	blk_attach(&f, blk_image_create(&f, IMAGE_BYTES, O_RDWR), ALL_BLK_FEATURES);
}

static void teardown(void)
{
	blk_detach(&f);
}

TestSuite(blk_snapshot, .init = setup, .fini = teardown, .timeout = 20);

static void save(Cloister__DeviceState *state)
{
	cloister__device_state__init(state);
	cr_assert_eq(f.disk.ops.save(&f.dev, state), 0);
	cr_assert_gt(state->blob.len, 0, "the blob must carry the disk's shape");
}

/* A second device on another image of size bytes, opened with flags. */
static int restore_onto(size_t size, int flags, const Cloister__DeviceState *state)
{
	struct blk_fixture other = { 0 };
	int fd = blk_image_create(&other, size, flags), r;

	cr_assert_eq(blk_disk_init(&other.disk, fd), 0);
	device_init(&other.dev, &other.disk.ops, "blk0", -1, fd);
	r = other.disk.ops.restore(&other.dev, state);
	close(fd);
	unlink(other.path);
	return r;
}

Test(blk_snapshot, restore_accepts_the_same_disk)
{
	Cloister__DeviceState s;

	save(&s);
	cr_assert_eq(f.disk.ops.restore(&f.dev, &s), 0);
	cr_assert_eq(restore_onto(IMAGE_BYTES, O_RDWR, &s), 0, "a copy of the same size");
	free(s.blob.data);
}

Test(blk_snapshot, restore_refuses_a_disk_of_another_size)
{
	Cloister__DeviceState s;

	save(&s);
	cr_assert_eq(restore_onto(IMAGE_BYTES + 512, O_RDWR, &s), -EINVAL);
	cr_assert_eq(restore_onto(IMAGE_BYTES - 512, O_RDWR, &s), -EINVAL);
	free(s.blob.data);
}

Test(blk_snapshot, restore_refuses_a_read_only_disk_for_a_writable_one)
{
	Cloister__DeviceState s;

	save(&s);
	cr_assert_eq(restore_onto(IMAGE_BYTES, O_RDONLY, &s), -EINVAL);
	free(s.blob.data);
}

Test(blk_snapshot, restore_refuses_a_malformed_blob)
{
	Cloister__DeviceState s;
	uint8_t bad[16];

	save(&s);
	memcpy(bad, s.blob.data, sizeof(bad));
	free(s.blob.data);
	s.blob.data = bad;
	s.blob.len = 15;
	cr_assert_eq(f.disk.ops.restore(&f.dev, &s), -EINVAL, "short");
	s.blob.len = 0;
	cr_assert_eq(f.disk.ops.restore(&f.dev, &s), -EINVAL, "empty");
	s.blob.len = 16;
	bad[0] ^= 0x80;
	cr_assert_eq(f.disk.ops.restore(&f.dev, &s), -EINVAL, "unknown version");
}

Test(blk_snapshot, served_requests_survive_in_the_image)
{
	Cloister__DeviceState s;
	uint8_t pattern[512];

	fill_pattern(pattern, sizeof(pattern), 8);
	memcpy(guest_ptr(&f.g, DATA_GPA), pattern, sizeof(pattern));
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, 5, 512, false, NULL), VIRTIO_BLK_S_OK);
	/* what the framework would snapshot after a pause: nothing is left in flight */
	cr_assert_eq(f.dev.queues[0].last_avail_idx, f.dev.queues[0].used_idx);
	save(&s);
	memset(guest_ptr(&f.g, DATA_GPA), 0, sizeof(pattern));
	cr_assert_eq(f.disk.ops.restore(&f.dev, &s), 0);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, 5, 512, true, NULL), VIRTIO_BLK_S_OK);
	cr_assert_arr_eq(guest_ptr(&f.g, DATA_GPA), pattern, sizeof(pattern));
	free(s.blob.data);
}
