/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (device ID 2, virtio 1.2 section 5.2): one request queue served
 * synchronously from a disk image the gateway opened and handed in. The image
 * is a regular file or a block device; an fd opened read-only makes a
 * read-only disk. Requests are read as the spec frames them, whatever the
 * descriptor layout: the driver's bytes are the header then any data out, the
 * device's bytes are any data in then the status byte.
 */
#ifndef CLOISTER_BLK_H
#define CLOISTER_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "virtio_spec.h"


#define BLK_SECTOR_SIZE 512u
#define BLK_SECTOR_SHIFT 9
#define BLK_ID_BYTES 20u
#define BLK_QUEUE_SIZE 256u

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN 0u
#define VIRTIO_BLK_T_OUT 1u
#define VIRTIO_BLK_T_FLUSH 4u
#define VIRTIO_BLK_T_GET_ID 8u
#define VIRTIO_BLK_T_DISCARD 11u
#define VIRTIO_BLK_T_WRITE_ZEROES 13u

#define VIRTIO_BLK_S_OK 0u
#define VIRTIO_BLK_S_IOERR 1u
#define VIRTIO_BLK_S_UNSUPP 2u

/* struct virtio_blk_discard_write_zeroes.flags */
#define VIRTIO_BLK_WZ_F_UNMAP 1u

/* Request header: le32 type, le32 reserved, le64 sector. */
#define BLK_REQ_HEADER_BYTES 16u
/* One discard/write-zeroes segment: le64 sector, le32 num_sectors, le32 flags. */
#define BLK_DWZ_SEGMENT_BYTES 16u

/* Byte offsets in struct virtio_blk_config (5.2.4); fields past them are not offered. */
#define BLK_CFG_CAPACITY 0
#define BLK_CFG_SIZE_MAX 8
#define BLK_CFG_SEG_MAX 12
#define BLK_CFG_BLK_SIZE 20
#define BLK_CFG_NUM_QUEUES 34
#define BLK_CFG_MAX_DISCARD_SECTORS 36
#define BLK_CFG_MAX_DISCARD_SEG 40
#define BLK_CFG_DISCARD_SECTOR_ALIGNMENT 44
#define BLK_CFG_MAX_WRITE_ZEROES_SECTORS 48
#define BLK_CFG_MAX_WRITE_ZEROES_SEG 52
#define BLK_CFG_WRITE_ZEROES_MAY_UNMAP 56
#define BLK_CONFIG_BYTES 60u

/*
 * At most this many sectors per discard or write-zeroes request: zeroing
 * may fall back to writing, and a request must not stall the loop for long.
 */
#define BLK_MAX_DWZ_SECTORS 65536u

/* One disk: the generic ops table, and the disk its callbacks serve. */
struct blk_disk {
	struct device_ops ops;
	uint8_t config[BLK_CONFIG_BYTES];
	uint64_t capacity; /* in 512-byte sectors */
	bool readonly;
	/* Regular file: discard and write zeroes become fallocate() calls. */
	bool can_deallocate;
};

/*
 * Probes image_fd (access mode, kind, size) and fills disk with ops that
 * serve it; image_fd itself reaches the callbacks as the device's host fd.
 * Returns 0, or -EBADF/-EINVAL for an fd that cannot be a disk.
 */
int blk_disk_init(struct blk_disk *disk, int image_fd);

#endif
