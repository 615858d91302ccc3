/* SPDX-License-Identifier: Apache-2.0 */
#include "blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "ratelimit.h"
#include "io.h"

/* A chain never has more buffers than its queue has entries. */
#define BLK_MAX_SEGS BLK_QUEUE_SIZE
/* The used length is 32 bits and counts the status byte too. */
#define BLK_MAX_DATA_BYTES (UINT32_MAX - 1ull)

#define BLK_BLOB_VERSION 1u
#define BLK_BLOB_BYTES 16u
#define BLK_BLOB_F_READONLY 1u

/* vm.counters: requests completed with VIRTIO_BLK_S_OK and the data they moved. */
enum blk_counter { BLK_READ_BYTES, BLK_WRITE_BYTES, BLK_READ_OPS, BLK_WRITE_OPS };
static const char *const blk_counter_names[] = {
	[BLK_READ_BYTES] = "read_bytes",
	[BLK_WRITE_BYTES] = "write_bytes",
	[BLK_READ_OPS] = "read_ops",
	[BLK_WRITE_OPS] = "write_ops",
	NULL,
};

/* Guest bytes in order, as iovecs into guest memory. */
struct blk_iov {
	struct iovec v[BLK_MAX_SEGS];
	unsigned int n;
	uint64_t len;
};

/* A request as the spec frames it, whatever the descriptor layout. */
struct blk_req {
	bool has_header;
	uint32_t type;
	uint64_t sector;
	struct blk_iov out;	/* driver's data after the header */
	struct blk_iov in;	/* room for the device's data before the status byte */
	uint8_t *status;
};

/* The ops table sits inside its disk, so the callbacks find the disk from dev->ops. */
static const struct blk_disk *blk_disk_of(const struct device *dev)
{
	return (const struct blk_disk *)((const char *)dev->ops - offsetof(struct blk_disk, ops));
}

static void blk_iov_add(struct blk_iov *iov, uint8_t *base, uint64_t len)
{
	if (len == 0)
		return;
	iov->v[iov->n++] = (struct iovec){ .iov_base = base, .iov_len = len };
	iov->len += len;
}

/* Copies the first len bytes of iov out; the caller checked iov->len >= len. */
static void blk_iov_gather(const struct blk_iov *iov, uint8_t *dst, size_t len)
{
	for (unsigned int i = 0; i < iov->n && len; i++) {
		size_t take = iov->v[i].iov_len < len ? iov->v[i].iov_len : len;

		memcpy(dst, iov->v[i].iov_base, take);
		dst += take;
		len -= take;
	}
}

static void blk_iov_scatter(const struct blk_iov *iov, const uint8_t *src, size_t len)
{
	for (unsigned int i = 0; i < iov->n && len; i++) {
		size_t take = iov->v[i].iov_len < len ? iov->v[i].iov_len : len;

		memcpy(iov->v[i].iov_base, src, take);
		src += take;
		len -= take;
	}
}

/* Moves the window [*v, *v + *n) past done bytes. */
static void blk_iov_advance(struct iovec **v, unsigned int *n, size_t done)
{
	while (done && *n) {
		if (done < (*v)->iov_len) {
			(*v)->iov_base = (uint8_t *)(*v)->iov_base + done;
			(*v)->iov_len -= done;
			return;
		}
		done -= (*v)->iov_len;
		(*v)++;
		(*n)--;
	}
}

/* The header is copied out once, so the guest cannot change it while we use it. */
static void blk_req_take_header(struct blk_req *req, const struct vq_buf *bufs, uint32_t n_read)
{
	uint8_t hdr[BLK_REQ_HEADER_BYTES];
	uint32_t have = 0;

	for (uint32_t i = 0; i < n_read; i++) {
		uint32_t take = BLK_REQ_HEADER_BYTES - have;

		if (bufs[i].len == 0)
			continue;
		if (take > bufs[i].len)
			take = bufs[i].len;
		memcpy(hdr + have, bufs[i].host, take);
		have += take;
		blk_iov_add(&req->out, bufs[i].host + take, bufs[i].len - take);
	}
	req->has_header = have == BLK_REQ_HEADER_BYTES;
	if (req->has_header) {
		uint32_t type;
		uint64_t sector;

		memcpy(&type, hdr, sizeof(type));
		memcpy(&sector, hdr + 8, sizeof(sector));
		req->type = le32toh(type);
		req->sector = le64toh(sector);
	}
}

/*
 * Splits chain into header, data out, data in and the status byte (the last
 * device-writable byte). -EINVAL when there is no byte to answer in: such a
 * chain cannot be completed, so the device needs a reset.
 */
static int blk_req_parse(const struct vq_chain *chain, struct blk_req *req)
{
	uint32_t n_read = 0, end;

	if (chain->n_bufs > BLK_MAX_SEGS)
		return -EINVAL;
	/* The queue already refused readable buffers after writable ones. */
	while (n_read < chain->n_bufs && !chain->bufs[n_read].writable)
		n_read++;
	end = chain->n_bufs;
	while (end > n_read && chain->bufs[end - 1].len == 0)
		end--;
	if (end == n_read)
		return -EINVAL;
	blk_req_take_header(req, chain->bufs, n_read);
	for (uint32_t i = n_read; i < end; i++) {
		const struct vq_buf *b = &chain->bufs[i];

		blk_iov_add(&req->in, b->host, i == end - 1 ? b->len - 1u : b->len);
	}
	req->status = chain->bufs[end - 1].host + chain->bufs[end - 1].len - 1;
	return 0;
}

static bool blk_range_valid(const struct blk_disk *disk, uint64_t sector, uint64_t n_sectors)
{
	return sector <= disk->capacity && n_sectors <= disk->capacity - sector;
}

/* Moves all of iov from or to the image at offset, however short each call comes back. */
static int blk_transfer(int fd, struct blk_iov *iov, uint64_t offset, bool to_image)
{
	struct iovec *v = iov->v;
	unsigned int n = iov->n;

	while (n) {
		ssize_t r = to_image ? pwritev(fd, v, (int)n, (off_t)offset) :
				       preadv(fd, v, (int)n, (off_t)offset);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Only an image that shrank under us ends early. */
		if (r == 0)
			return -EIO;
		offset += (uint64_t)r;
		blk_iov_advance(&v, &n, (size_t)r);
	}
	return 0;
}

/* Host-side failures are the host's problem to see; the guest just gets IOERR. */
static uint8_t blk_host_failed(const char *what, int err)
{
	/* A guest can fail requests in a loop (a bad sector of the host disk): bounded. */
	log_ratelimited(LOG_LVL_ERROR, "%s failed: %s", what, strerror(-err));
	return VIRTIO_BLK_S_IOERR;
}

static uint8_t blk_do_in(struct device *dev, struct blk_req *req, uint32_t *ret_written)
{
	const struct blk_disk *disk = blk_disk_of(dev);
	int r;

	if (req->out.len || req->in.len % BLK_SECTOR_SIZE)
		return VIRTIO_BLK_S_IOERR;
	if (!blk_range_valid(disk, req->sector, req->in.len >> BLK_SECTOR_SHIFT))
		return VIRTIO_BLK_S_IOERR;
	r = blk_transfer(dev->host_fd, &req->in, req->sector << BLK_SECTOR_SHIFT, false);
	if (r < 0)
		return blk_host_failed("read", r);
	*ret_written = (uint32_t)req->in.len;
	return VIRTIO_BLK_S_OK;
}

/* A read-only disk must not write any data (5.2.6.2). */
static uint8_t blk_do_out(struct device *dev, struct blk_req *req)
{
	const struct blk_disk *disk = blk_disk_of(dev);
	int r;

	if (disk->readonly || req->in.len || req->out.len % BLK_SECTOR_SIZE)
		return VIRTIO_BLK_S_IOERR;
	if (!blk_range_valid(disk, req->sector, req->out.len >> BLK_SECTOR_SHIFT))
		return VIRTIO_BLK_S_IOERR;
	r = blk_transfer(dev->host_fd, &req->out, req->sector << BLK_SECTOR_SHIFT, true);
	if (r < 0)
		return blk_host_failed("write", r);
	return VIRTIO_BLK_S_OK;
}

/* Completes only once the data is on stable storage, as the guest's barrier expects. */
static uint8_t blk_do_flush(struct device *dev, const struct blk_req *req)
{
	if (req->in.len || req->out.len)
		return VIRTIO_BLK_S_IOERR;
	if (fdatasync(dev->host_fd) < 0)
		return blk_host_failed("flush", -errno);
	return VIRTIO_BLK_S_OK;
}

static uint8_t blk_do_get_id(struct device *dev, const struct blk_req *req, uint32_t *ret_written)
{
	uint8_t id[BLK_ID_BYTES] = { 0 };
	size_t len = strlen(dev->id);

	if (req->out.len || req->in.len < BLK_ID_BYTES)
		return VIRTIO_BLK_S_IOERR;
	/* Zero-padded; a 20-byte id has no terminator, as the spec allows. */
	memcpy(id, dev->id, len < BLK_ID_BYTES ? len : BLK_ID_BYTES);
	blk_iov_scatter(&req->in, id, BLK_ID_BYTES);
	*ret_written = BLK_ID_BYTES;
	return VIRTIO_BLK_S_OK;
}

/* Falls back to writing zeroes where the filesystem cannot zero a range itself. */
static int blk_write_zero_bytes(int fd, uint64_t offset, uint64_t len)
{
	static const uint8_t zeroes[65536];

	while (len) {
		size_t chunk = len < sizeof(zeroes) ? (size_t)len : sizeof(zeroes);
		int r = io_pwrite_all(fd, zeroes, chunk, (off_t)offset);

		if (r < 0)
			return r;
		offset += chunk;
		len -= chunk;
	}
	return 0;
}

static int blk_fallocate(int fd, int mode, uint64_t offset, uint64_t len)
{
	if (fallocate(fd, mode | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) < 0)
		return -errno;
	return 0;
}

static bool blk_fallocate_unsupported(int r)
{
	return r == -EOPNOTSUPP || r == -ENOSYS || r == -EINVAL;
}

/* Reads of the range return zeroes afterwards; unmap lets us free the space too. */
static int blk_zero_range(const struct blk_disk *disk, int fd, uint64_t offset, uint64_t len,
			  bool unmap)
{
	int r = -EOPNOTSUPP;

	if (disk->can_deallocate && unmap)
		r = blk_fallocate(fd, FALLOC_FL_PUNCH_HOLE, offset, len);
	if (disk->can_deallocate && blk_fallocate_unsupported(r))
		r = blk_fallocate(fd, FALLOC_FL_ZERO_RANGE, offset, len);
	if (blk_fallocate_unsupported(r))
		r = blk_write_zero_bytes(fd, offset, len);
	return r;
}

/* Discard is a hint: a filesystem that cannot punch holes just keeps the data. */
static int blk_discard(const struct blk_disk *disk, int fd, uint64_t offset, uint64_t len)
{
	int r;

	if (!disk->can_deallocate)
		return 0;
	r = blk_fallocate(fd, FALLOC_FL_PUNCH_HOLE, offset, len);
	return r == -EOPNOTSUPP || r == -ENOSYS ? 0 : r;
}

/* One segment only: max_discard_seg and max_write_zeroes_seg are 1. */
static uint8_t blk_do_discard_or_zero(struct device *dev, const struct blk_req *req, bool discard)
{
	const struct blk_disk *disk = blk_disk_of(dev);
	int feature = discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES;
	uint8_t seg[BLK_DWZ_SEGMENT_BYTES];
	uint64_t sector;
	uint32_t n_sectors, flags;
	int r;

	if (!(dev->driver_features & (1ull << feature)))
		return VIRTIO_BLK_S_UNSUPP;
	if (disk->readonly || req->in.len || req->out.len != BLK_DWZ_SEGMENT_BYTES)
		return VIRTIO_BLK_S_IOERR;
	blk_iov_gather(&req->out, seg, sizeof(seg));
	memcpy(&sector, seg, 8);
	memcpy(&n_sectors, seg + 8, 4);
	memcpy(&flags, seg + 12, 4);
	sector = le64toh(sector);
	n_sectors = le32toh(n_sectors);
	flags = le32toh(flags);
	/* Unknown flags, and unmap on a discard, are UNSUPP (5.2.6.2). */
	if ((flags & ~VIRTIO_BLK_WZ_F_UNMAP) || (discard && flags))
		return VIRTIO_BLK_S_UNSUPP;
	if (n_sectors > BLK_MAX_DWZ_SECTORS || !blk_range_valid(disk, sector, n_sectors))
		return VIRTIO_BLK_S_IOERR;
	if (n_sectors == 0)
		return VIRTIO_BLK_S_OK;
	if (discard)
		r = blk_discard(disk, dev->host_fd, sector << BLK_SECTOR_SHIFT,
				(uint64_t)n_sectors << BLK_SECTOR_SHIFT);
	else
		r = blk_zero_range(disk, dev->host_fd, sector << BLK_SECTOR_SHIFT,
				   (uint64_t)n_sectors << BLK_SECTOR_SHIFT,
				   flags & VIRTIO_BLK_WZ_F_UNMAP);
	if (r < 0)
		return blk_host_failed(discard ? "discard" : "write zeroes", r);
	return VIRTIO_BLK_S_OK;
}

static uint8_t blk_execute(struct device *dev, struct blk_req *req, uint32_t *ret_written)
{
	if (!req->has_header || req->in.len > BLK_MAX_DATA_BYTES)
		return VIRTIO_BLK_S_IOERR;
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		return blk_do_in(dev, req, ret_written);
	case VIRTIO_BLK_T_OUT:
		return blk_do_out(dev, req);
	case VIRTIO_BLK_T_FLUSH:
		return blk_do_flush(dev, req);
	case VIRTIO_BLK_T_GET_ID:
		return blk_do_get_id(dev, req, ret_written);
	case VIRTIO_BLK_T_DISCARD:
		return blk_do_discard_or_zero(dev, req, true);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return blk_do_discard_or_zero(dev, req, false);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static void blk_count(struct device *dev, const struct blk_req *req, uint8_t status,
		      uint32_t written)
{
	if (status != VIRTIO_BLK_S_OK)
		return;
	if (req->type == VIRTIO_BLK_T_IN) {
		device_count(dev, BLK_READ_OPS, 1);
		device_count(dev, BLK_READ_BYTES, written);
	} else if (req->type == VIRTIO_BLK_T_OUT) {
		device_count(dev, BLK_WRITE_OPS, 1);
		device_count(dev, BLK_WRITE_BYTES, req->out.len);
	}
}

/* Serves one chain; returns the used length (data in plus the status byte). */
static int blk_serve_chain(struct device *dev, const struct vq_chain *chain, uint32_t *ret_used)
{
	struct blk_req req = { 0 };
	uint32_t written = 0;
	uint8_t status;
	int r;

	r = blk_req_parse(chain, &req);
	if (r < 0)
		return r;
	status = blk_execute(dev, &req, &written);
	*req.status = status;
	blk_count(dev, &req, status, written);
	/* Every completed request counts; only data actually moved counts as bytes. */
	device_account(dev, status != VIRTIO_BLK_S_OK ? 0 :
			    req.type == VIRTIO_BLK_T_OUT ? req.out.len : written);
	*ret_used = written + 1;
	return 0;
}

static int blk_process_queue(struct device *dev, struct virtqueue *vq)
{
	return device_drain_queue(dev, vq, blk_serve_chain);
}

/* The blob: le32 version, le32 flags, le64 capacity; the disk the snapshot was taken with. */
static int blk_save(struct device *dev, Cloister__DeviceState *state)
{
	const struct blk_disk *disk = blk_disk_of(dev);
	uint32_t version = htole32(BLK_BLOB_VERSION);
	uint32_t flags = htole32(disk->readonly ? BLK_BLOB_F_READONLY : 0);
	uint64_t capacity = htole64(disk->capacity);
	uint8_t *blob = malloc(BLK_BLOB_BYTES);

	if (!blob)
		return -ENOMEM;
	memcpy(blob, &version, 4);
	memcpy(blob + 4, &flags, 4);
	memcpy(blob + 8, &capacity, 8);
	state->blob = (ProtobufCBinaryData){ .len = BLK_BLOB_BYTES, .data = blob };
	return 0;
}

/* The guest's file systems were cached against the old disk: a different one would corrupt them. */
static int blk_restore(struct device *dev, const Cloister__DeviceState *state)
{
	const struct blk_disk *disk = blk_disk_of(dev);
	uint32_t version, flags;
	uint64_t capacity;

	if (state->blob.len != BLK_BLOB_BYTES) {
		log_error("restore: blk state is %zu bytes, expected %u", state->blob.len,
			  BLK_BLOB_BYTES);
		return -EINVAL;
	}
	memcpy(&version, state->blob.data, 4);
	memcpy(&flags, state->blob.data + 4, 4);
	memcpy(&capacity, state->blob.data + 8, 8);
	if (le32toh(version) != BLK_BLOB_VERSION) {
		log_error("restore: unknown blk state version %u", le32toh(version));
		return -EINVAL;
	}
	if (le64toh(capacity) != disk->capacity) {
		log_error("restore: the disk image has %llu sectors but had %llu at snapshot time",
			  (unsigned long long)disk->capacity, (unsigned long long)le64toh(capacity));
		return -EINVAL;
	}
	if (!!(le32toh(flags) & BLK_BLOB_F_READONLY) != disk->readonly) {
		log_error("restore: the disk image is %s but was %s at snapshot time",
			  disk->readonly ? "read-only" : "writable",
			  disk->readonly ? "writable" : "read-only");
		return -EINVAL;
	}
	return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void blk_config_fill(struct blk_disk *disk, uint32_t discard_alignment)
{
	uint64_t capacity = htole64(disk->capacity);
	uint16_t num_queues = htole16(1);

	memset(disk->config, 0, sizeof(disk->config));
	memcpy(disk->config + BLK_CFG_CAPACITY, &capacity, sizeof(capacity));
	/* Header and status take two descriptors of a full chain. */
	put_le32(disk->config + BLK_CFG_SEG_MAX, BLK_QUEUE_SIZE - 2);
	put_le32(disk->config + BLK_CFG_BLK_SIZE, BLK_SECTOR_SIZE);
	memcpy(disk->config + BLK_CFG_NUM_QUEUES, &num_queues, sizeof(num_queues));
	if (!disk->can_deallocate)
		return;
	put_le32(disk->config + BLK_CFG_MAX_DISCARD_SECTORS, BLK_MAX_DWZ_SECTORS);
	put_le32(disk->config + BLK_CFG_MAX_DISCARD_SEG, 1);
	put_le32(disk->config + BLK_CFG_DISCARD_SECTOR_ALIGNMENT, discard_alignment);
	put_le32(disk->config + BLK_CFG_MAX_WRITE_ZEROES_SECTORS, BLK_MAX_DWZ_SECTORS);
	put_le32(disk->config + BLK_CFG_MAX_WRITE_ZEROES_SEG, 1);
	disk->config[BLK_CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
}

static uint64_t blk_features(const struct blk_disk *disk)
{
	uint64_t f = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
		     (1ull << VIRTIO_BLK_F_FLUSH);

	if (disk->readonly)
		f |= 1ull << VIRTIO_BLK_F_RO;
	if (disk->can_deallocate)
		f |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

/* Hole punching frees whole filesystem blocks only, so discards are best aligned to them. */
static uint32_t blk_discard_alignment(const struct stat *st)
{
	if (st->st_blksize <= (blksize_t)BLK_SECTOR_SIZE || st->st_blksize > (1 << 24))
		return 1;
	return (uint32_t)st->st_blksize / BLK_SECTOR_SIZE;
}

int blk_disk_init(struct blk_disk *disk, int image_fd)
{
	struct stat st;
	int flags = fcntl(image_fd, F_GETFL);
	off_t size;

	if (flags < 0)
		return -errno;
	if ((flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (fstat(image_fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return -EINVAL;
	/* lseek sizes block devices too, where st_size is 0. */
	size = lseek(image_fd, 0, SEEK_END);
	if (size < 0)
		return -errno;
	*disk = (struct blk_disk){
		.capacity = (uint64_t)size >> BLK_SECTOR_SHIFT,
		.readonly = (flags & O_ACCMODE) == O_RDONLY,
		.can_deallocate = S_ISREG(st.st_mode) && (flags & O_ACCMODE) == O_RDWR,
	};
	blk_config_fill(disk, blk_discard_alignment(&st));
	disk->ops = (struct device_ops){
		.kind = "blk",
		.sandbox_role = SANDBOX_ROLE_DEVICE_BLK,
		.virtio_id = VIRTIO_ID_BLOCK,
		.features = blk_features(disk),
		.num_queues = 1,
		.max_queue_size = BLK_QUEUE_SIZE,
		.needs_host_fd = true,
		.config = disk->config,
		.config_len = sizeof(disk->config),
		.process_queue = blk_process_queue,
		.save = blk_save,
		.restore = blk_restore,
		.counter_names = blk_counter_names,
	};
	return 0;
}
