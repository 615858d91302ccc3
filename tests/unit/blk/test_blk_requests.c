/* SPDX-License-Identifier: Apache-2.0 */
/* Requests one at a time against a temporary image: what the guest gets, what the host sees. */
#include "blk_harness.h"
#include "counters.h"

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

TestSuite(blk, .init = setup, .fini = teardown, .timeout = 20);

static void image_read(uint64_t offset, uint8_t *buf, size_t len)
{
	cr_assert_eq(pread(f.image_fd, buf, len, (off_t)offset), (ssize_t)len);
}

static void image_write(uint64_t offset, const uint8_t *buf, size_t len)
{
	cr_assert_eq(pwrite(f.image_fd, buf, len, (off_t)offset), (ssize_t)len);
}

Test(blk, config_describes_the_image)
{
	const uint8_t *c = f.disk.ops.config;
	uint64_t capacity;
	uint32_t seg_max, blk_size, max_discard, discard_seg;

	memcpy(&capacity, c + BLK_CFG_CAPACITY, 8);
	memcpy(&seg_max, c + BLK_CFG_SEG_MAX, 4);
	memcpy(&blk_size, c + BLK_CFG_BLK_SIZE, 4);
	memcpy(&max_discard, c + BLK_CFG_MAX_DISCARD_SECTORS, 4);
	memcpy(&discard_seg, c + BLK_CFG_MAX_DISCARD_SEG, 4);
	cr_assert_eq(le64toh(capacity), IMAGE_BYTES / 512);
	cr_assert_eq(le32toh(blk_size), 512);
	cr_assert_eq(le32toh(seg_max), QSIZE - 2);
	cr_assert_eq(le32toh(max_discard), BLK_MAX_DWZ_SECTORS);
	cr_assert_eq(le32toh(discard_seg), 1);
	cr_assert_eq(c[BLK_CFG_WRITE_ZEROES_MAY_UNMAP], 1);
	cr_assert_eq(f.disk.ops.config_len, BLK_CONFIG_BYTES);
	cr_assert_eq(f.disk.ops.virtio_id, 2);
	cr_assert_eq(f.disk.ops.features & ~ALL_BLK_FEATURES, 0, "only the listed features");
	cr_assert_eq(f.disk.ops.features, ALL_BLK_FEATURES & ~(1ull << VIRTIO_F_VERSION_1));
}

Test(blk, capacity_ignores_a_trailing_partial_sector)
{
	struct blk_disk d;

	cr_assert_eq(ftruncate(f.image_fd, IMAGE_BYTES + 100), 0);
	cr_assert_eq(blk_disk_init(&d, f.image_fd), 0);
	cr_assert_eq(d.capacity, IMAGE_BYTES / 512);
}

Test(blk, refuses_what_cannot_be_a_disk)
{
	struct blk_disk d;
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(blk_disk_init(&d, p[0]), -EINVAL);
	cr_assert_eq(blk_disk_init(&d, p[1]), -EBADF, "write-only fd cannot serve reads");
	close(p[0]);
	close(p[1]);
	cr_assert_lt(blk_disk_init(&d, 1000), 0);
}

Test(blk, write_then_read_round_trip)
{
	uint8_t expect[4096], got[4096];
	uint32_t used;

	fill_pattern(expect, sizeof(expect), 3);
	memcpy(guest_ptr(&f.g, DATA_GPA), expect, sizeof(expect));
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, 3, sizeof(expect), false, &used),
		     VIRTIO_BLK_S_OK);
	cr_assert_eq(used, 1, "a write writes only the status byte");
	image_read(3 * 512, got, sizeof(got));
	cr_assert_arr_eq(got, expect, sizeof(got), "the host must see the guest's bytes");

	/* and the other way: bytes the host put there reach the guest */
	fill_pattern(expect, sizeof(expect), 99);
	image_write(7 * 512, expect, sizeof(expect));
	memset(guest_ptr(&f.g, DATA_GPA), 0, sizeof(expect));
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, 7, sizeof(expect), true, &used),
		     VIRTIO_BLK_S_OK);
	cr_assert_eq(used, sizeof(expect) + 1);
	cr_assert_arr_eq(guest_ptr(&f.g, DATA_GPA), expect, sizeof(expect));
	cr_assert_eq(f.dev.requests_served, 2);
	cr_assert_eq(f.dev.bytes_served, 2 * sizeof(expect));
	cr_assert_eq(device_counter(&f.dev, "read_ops"), 1);
	cr_assert_eq(device_counter(&f.dev, "read_bytes"), sizeof(expect));
	cr_assert_eq(device_counter(&f.dev, "write_ops"), 1);
	cr_assert_eq(device_counter(&f.dev, "write_bytes"), sizeof(expect));
}

Test(blk, failed_and_other_requests_are_not_counted_as_reads_or_writes)
{
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, 1ull << 40, 512, true, NULL),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	cr_assert_eq(device_counter(&f.dev, "read_ops"), 0);
	cr_assert_eq(device_counter(&f.dev, "read_bytes"), 0);
	cr_assert_eq(device_counter(&f.dev, "write_ops"), 0);
	cr_assert_eq(device_counter(&f.dev, "write_bytes"), 0);
}

Test(blk, any_framing_is_accepted)
{
	uint8_t expect[1024];
	uint8_t *hdr = guest_ptr(&f.g, HDR_GPA);
	uint16_t head;

	/* header and data in one readable buffer, split oddly over three */
	blk_header(&f, VIRTIO_BLK_T_OUT, 10);
	fill_pattern(expect, sizeof(expect), 5);
	memcpy(hdr + 16, expect, sizeof(expect));
	chain_add(&f, HDR_GPA, 7, false);
	chain_add(&f, HDR_GPA + 7, 500, false);
	chain_add(&f, HDR_GPA + 507, 16 + 1024 - 507, false);
	chain_add(&f, STATUS_GPA, 1, true);
	head = chain_post(&f);
	cr_assert_eq(blk_complete(&f, head), 1);
	cr_assert_eq(*guest_ptr(&f.g, STATUS_GPA), VIRTIO_BLK_S_OK);

	/* data and status in one writable buffer */
	blk_header(&f, VIRTIO_BLK_T_IN, 10);
	memset(guest_ptr(&f.g, DATA_GPA), 0xee, 1025);
	chain_add(&f, HDR_GPA, 16, false);
	chain_add(&f, DATA_GPA, 1025, true);
	head = chain_post(&f);
	cr_assert_eq(blk_complete(&f, head), 1025);
	cr_assert_arr_eq(guest_ptr(&f.g, DATA_GPA), expect, sizeof(expect));
	cr_assert_eq(*guest_ptr(&f.g, DATA_GPA + 1024), VIRTIO_BLK_S_OK);
}

Test(blk, get_id_is_the_device_id_zero_padded)
{
	uint8_t expect[BLK_ID_BYTES] = "blk0";
	uint32_t used;

	memset(guest_ptr(&f.g, DATA_GPA), 0xaa, 64);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_GET_ID, 0, BLK_ID_BYTES, true, &used),
		     VIRTIO_BLK_S_OK);
	cr_assert_eq(used, BLK_ID_BYTES + 1);
	cr_assert_arr_eq(guest_ptr(&f.g, DATA_GPA), expect, BLK_ID_BYTES);
	cr_assert_eq(*guest_ptr(&f.g, DATA_GPA + BLK_ID_BYTES), 0xaa, "nothing past 20 bytes");
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_GET_ID, 0, 8, true, NULL), VIRTIO_BLK_S_IOERR,
		     "a buffer too small for the id");
}

Test(blk, flush_completes)
{
	uint32_t used;

	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_FLUSH, 0, 0, false, &used), VIRTIO_BLK_S_OK);
	cr_assert_eq(used, 1);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_FLUSH, 0, 512, false, NULL), VIRTIO_BLK_S_IOERR,
		     "a flush carries no data");
}

Test(blk, unknown_types_are_unsupported)
{
	cr_assert_eq(blk_request(&f, 2, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(blk_request(&f, 10, 0, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(blk_request(&f, 0xffffffffu, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
}

Test(blk, sectors_outside_the_disk_are_refused)
{
	uint64_t cap = IMAGE_BYTES / 512;
	uint8_t before[1024], after[1024];

	image_read(IMAGE_BYTES - 1024, before, sizeof(before));
	memset(guest_ptr(&f.g, DATA_GPA), 0x5a, 1024);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, cap, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, cap - 1, 1024, true, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, cap - 1, 1024, false, NULL), VIRTIO_BLK_S_IOERR);
	/* sector * 512 wraps to a small offset if computed naively */
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, 1ull << 55, 512, false, NULL),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, UINT64_MAX, 512, false, NULL),
		     VIRTIO_BLK_S_IOERR);
	image_read(IMAGE_BYTES - 1024, after, sizeof(after));
	cr_assert_arr_eq(after, before, sizeof(after));
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, cap - 2, 1024, false, NULL), VIRTIO_BLK_S_OK,
		     "the last sectors are the disk's");
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, cap - 1, 512, true, NULL), VIRTIO_BLK_S_OK);
	cr_assert_eq(lseek(f.image_fd, 0, SEEK_END), IMAGE_BYTES, "the image never grows");
}

Test(blk, lengths_must_be_whole_sectors)
{
	uint8_t before[1024], after[1024];

	image_read(0, before, sizeof(before));
	memset(guest_ptr(&f.g, DATA_GPA), 0x77, 1024);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, 0, 513, false, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, 0, 100, false, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, 0, 511, true, NULL), VIRTIO_BLK_S_IOERR);
	image_read(0, after, sizeof(after));
	cr_assert_arr_eq(after, before, sizeof(after));
}

Test(blk, data_in_the_wrong_direction_is_refused)
{
	uint8_t pattern[512], got[512];

	fill_pattern(pattern, sizeof(pattern), 1);
	image_write(0, pattern, sizeof(pattern));
	/* a write whose data the device could only write into */
	memset(guest_ptr(&f.g, DATA_GPA), 0, 512);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_OUT, 0, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	image_read(0, got, sizeof(got));
	cr_assert_arr_eq(got, pattern, sizeof(got), "image must not change");
	/* a read whose data buffer the device may not write */
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_IN, 0, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert(bytes_all(guest_ptr(&f.g, DATA_GPA), 512, 0), "guest buffer must not change");
}

Test(blk, short_header_is_an_error)
{
	uint16_t head;

	blk_header(&f, VIRTIO_BLK_T_IN, 0);
	*guest_ptr(&f.g, STATUS_GPA) = 0xff;
	chain_add(&f, HDR_GPA, 8, false);
	chain_add(&f, STATUS_GPA, 1, true);
	head = chain_post(&f);
	cr_assert_eq(blk_complete(&f, head), 1);
	cr_assert_eq(*guest_ptr(&f.g, STATUS_GPA), VIRTIO_BLK_S_IOERR);
}

Test(blk, chain_without_a_status_byte_needs_reset)
{
	blk_header(&f, VIRTIO_BLK_T_OUT, 0);
	chain_add(&f, HDR_GPA, 16, false);
	chain_add(&f, DATA_GPA, 512, false);
	chain_add(&f, STATUS_GPA, 1, false);
	chain_post(&f);
	cr_assert_lt(blk_run(&f), 0);
	cr_assert_eq(guest_used_idx(&f.g), 0, "nothing is completed");
}

Test(blk, empty_writable_buffers_do_not_hold_the_status)
{
	blk_header(&f, VIRTIO_BLK_T_FLUSH, 0);
	chain_add(&f, HDR_GPA, 16, false);
	chain_add(&f, STATUS_GPA, 0, true);
	chain_post(&f);
	cr_assert_lt(blk_run(&f), 0);
}

Test(blk, write_zeroes_reads_back_zero)
{
	uint8_t pattern[8192], got[8192];

	fill_pattern(pattern, sizeof(pattern), 9);
	image_write(16 * 512, pattern, sizeof(pattern));
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_WRITE_ZEROES, 17, 8, 0), VIRTIO_BLK_S_OK);
	image_read(16 * 512, got, sizeof(got));
	cr_assert(bytes_all(got + 512, 4096, 0));
	cr_assert_arr_eq(got, pattern, 512, "the sector before is untouched");
	cr_assert_arr_eq(got + 512 + 4096, pattern + 512 + 4096, sizeof(got) - 4608,
			 "the sectors after are untouched");
}

static blkcnt_t image_blocks(void)
{
	struct stat st;

	cr_assert_eq(fsync(f.image_fd), 0);
	cr_assert_eq(fstat(f.image_fd, &st), 0);
	return st.st_blocks;
}

Test(blk, write_zeroes_with_unmap_makes_a_hole)
{
	static uint8_t pattern[65536], got[65536];
	blkcnt_t before;

	fill_pattern(pattern, sizeof(pattern), 17);
	image_write(0, pattern, sizeof(pattern));
	before = image_blocks();
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 128, VIRTIO_BLK_WZ_F_UNMAP),
		     VIRTIO_BLK_S_OK);
	image_read(0, got, sizeof(got));
	cr_assert(bytes_all(got, sizeof(got), 0));
	cr_assert_lt(image_blocks(), before, "unmap must deallocate");
	cr_assert_eq(lseek(f.image_fd, 0, SEEK_END), IMAGE_BYTES);
}

Test(blk, discard_frees_the_range)
{
	static uint8_t pattern[65536];
	blkcnt_t before;

	fill_pattern(pattern, sizeof(pattern), 21);
	image_write(65536, pattern, sizeof(pattern));
	before = image_blocks();
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_DISCARD, 128, 128, 0), VIRTIO_BLK_S_OK);
	cr_assert_lt(image_blocks(), before);
	cr_assert_eq(lseek(f.image_fd, 0, SEEK_END), IMAGE_BYTES);
}

Test(blk, discard_and_write_zeroes_are_checked)
{
	uint64_t cap = IMAGE_BYTES / 512;
	uint8_t *seg = guest_ptr(&f.g, DATA_GPA);

	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WZ_F_UNMAP),
		     VIRTIO_BLK_S_UNSUPP, "unmap on a discard");
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 2), VIRTIO_BLK_S_UNSUPP,
		     "unknown flag");
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_WRITE_ZEROES, cap - 4, 8, 0),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_DISCARD, UINT64_MAX - 2, 8, 0),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_WRITE_ZEROES, 0, BLK_MAX_DWZ_SECTORS + 1, 0),
		     VIRTIO_BLK_S_IOERR);
	/* two segments, more than max_write_zeroes_seg */
	memcpy(seg + 16, seg, 16);
	blk_header(&f, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, false, NULL),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_request(&f, VIRTIO_BLK_T_DISCARD, 0, 8, false, NULL), VIRTIO_BLK_S_IOERR,
		     "a partial segment");
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_WRITE_ZEROES, cap - 8, 8, 0), VIRTIO_BLK_S_OK);
	cr_assert_eq(lseek(f.image_fd, 0, SEEK_END), IMAGE_BYTES);
}

Test(blk, unnegotiated_discard_is_unsupported)
{
	virtqueue_teardown(&f.dev.queues[0]);
	blk_queue_start(&f, 1ull << VIRTIO_F_VERSION_1);
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(blk_dwz_request(&f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0), VIRTIO_BLK_S_UNSUPP);
}

Test(blk, indirect_chains_are_served)
{
	uint64_t table = GM_BUFS + 0x40000;
	uint8_t expect[512];

	fill_pattern(expect, sizeof(expect), 77);
	image_write(512, expect, sizeof(expect));
	blk_header(&f, VIRTIO_BLK_T_IN, 1);
	guest_desc(&f.g, table, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	guest_desc(&f.g, table, 1, DATA_GPA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	guest_desc(&f.g, table, 2, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	guest_desc(&f.g, GM_DESC, 9, table, 48, VIRTQ_DESC_F_INDIRECT, 0);
	guest_avail(&f.g, QSIZE, 9);
	cr_assert_eq(blk_complete(&f, 9), 513);
	cr_assert_eq(*guest_ptr(&f.g, STATUS_GPA), VIRTIO_BLK_S_OK);
	cr_assert_arr_eq(guest_ptr(&f.g, DATA_GPA), expect, sizeof(expect));
}

Test(blk, many_requests_in_one_kick_complete_in_order)
{
	for (uint32_t i = 0; i < 8; i++) {
		uint64_t status = STATUS_GPA + i;

		blk_header(&f, VIRTIO_BLK_T_FLUSH, 0);
		chain_add(&f, HDR_GPA, 16, false);
		chain_add(&f, status, 1, true);
		*guest_ptr(&f.g, status) = 0xff;
		chain_post(&f);
	}
	cr_assert_eq(blk_run(&f), 0);
	cr_assert_eq(guest_used_idx(&f.g), 8);
	for (uint32_t i = 0; i < 8; i++) {
		uint32_t id, len;

		guest_used_elem(&f.g, i, &id, &len);
		cr_assert_eq(id, 2 * i);
		cr_assert_eq(*guest_ptr(&f.g, STATUS_GPA + i), VIRTIO_BLK_S_OK);
	}
}
