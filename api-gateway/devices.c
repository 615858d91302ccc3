/* SPDX-License-Identifier: Apache-2.0 */
#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "options.h"

/* The virtio-net header with VIRTIO_F_VERSION_1 (virtio_net_hdr_v1). */
#define VNET_HDR_LEN 12


static int disk_open(Cloister__DeviceConfig *d, bool restore, struct device_host *h, char *err,
		     size_t errlen)
{
	struct stat st;
	int fd;

	if (!d->path || d->path[0] != '/') {
		snprintf(err, errlen, "disk %s: the image path must be absolute", d->id);
		return -EINVAL;
	}
	fd = open(d->path, (d->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "disk %s: cannot open %s: %s", d->id, d->path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size % 512) {
		close(fd);
		snprintf(err, errlen, "disk %s: %s is not a regular file of whole 512-byte sectors",
			 d->id, d->path);
		return -EINVAL;
	}
	if (restore && (uint64_t)st.st_size != d->disk_size) {
		close(fd);
		snprintf(err, errlen, "disk %s: %s is %" PRIu64 " bytes, the snapshot was taken with %"
			 PRIu64, d->id, d->path, (uint64_t)st.st_size, d->disk_size);
		return -EINVAL;
	}
	d->disk_size = (uint64_t)st.st_size;
	h->program = "cloister-blk";
	h->fds[h->n_fds++] = fd;
	return 0;
}

/* A locally administered unicast address in QEMU's customary range. */
static int mac_generate(Cloister__DeviceConfig *d)
{
	uint8_t b[3];
	char *mac;

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		return -EIO;
	if (asprintf(&mac, "52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]) < 0)
		return -ENOMEM;
	/* Unset, the field holds protobuf-c's own empty string, which is not ours to free. */
	if (d->mac != protobuf_c_empty_string)
		free(d->mac);
	d->mac = mac;
	return 0;
}

static int tap_open(Cloister__DeviceConfig *d, bool restore, struct device_host *h, char *err,
		    size_t errlen)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int hdr = VNET_HDR_LEN;
	_cleanup_close_ int fd = -1;
	int r;

	if (!d->tap || !d->tap[0] || strlen(d->tap) >= IFNAMSIZ) {
		snprintf(err, errlen, "net %s: no usable tap name", d->id);
		return -EINVAL;
	}
	if ((!d->mac || !d->mac[0]) && (r = mac_generate(d)) < 0)
		return r;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "net %s: cannot open /dev/net/tun: %m", d->id);
		return -errno;
	}
	memcpy(ifr.ifr_name, d->tap, strlen(d->tap));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		snprintf(err, errlen, "net %s: cannot attach to tap %s: %m", d->id, d->tap);
		return -errno;
	}
	snprintf(h->mac_arg, sizeof(h->mac_arg), "%s", d->mac);
	h->program = "cloister-net";
	h->fds[h->n_fds++] = TAKE_FD(fd);
	return 0;
}

static int console_open(Cloister__DeviceConfig *d, bool restore, struct device_host *h, char *err,
			size_t errlen)
{
	struct sink k;
	int r;

	/* Only the serial port has a socket mode. */
	if (d->console && d->console->mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET) {
		snprintf(err, errlen, "console %s: no socket mode for the console", d->id);
		return -EINVAL;
	}
	r = sink_open(d->console, restore, &k, err, errlen);
	if (r == 0 && k.out_fd < 0)
		r = sink_open_null(&k, err, errlen);
	if (r < 0) {
		sink_close(&k);
		return r;
	}
	h->program = "cloister-console";
	h->fds[h->n_fds++] = TAKE_FD(k.out_fd);
	if (k.in_fd >= 0)
		h->fds[h->n_fds++] = TAKE_FD(k.in_fd);
	h->sink = k;
	return 0;
}

int device_host_open(Cloister__DeviceConfig *d, bool restore, struct device_host *ret, char *err,
		     size_t errlen)
{
	struct device_host h = { .fds = { -1, -1 }, .sink = SINK_INIT };
	int r = 0;

	if (strcmp(d->kind, "rng") == 0)
		h.program = "cloister-rng";
	else if (strcmp(d->kind, "blk") == 0)
		r = disk_open(d, restore, &h, err, errlen);
	else if (strcmp(d->kind, "net") == 0)
		r = tap_open(d, restore, &h, err, errlen);
	else if (strcmp(d->kind, "console") == 0)
		r = console_open(d, restore, &h, err, errlen);
	else {
		snprintf(err, errlen, "device %s: unknown kind %s", d->id, d->kind);
		r = -EINVAL;
	}
	if (r < 0) {
		device_host_close(&h);
		return r;
	}
	*ret = h;
	return 0;
}

void device_host_close(struct device_host *h)
{
	for (size_t i = 0; i < h->n_fds; i++)
		cleanup_closep(&h->fds[i]);
	h->n_fds = 0;
	sink_close(&h->sink);
}

int devices_check_restorable(const Cloister__VmConfig *config, char *err, size_t errlen)
{
	for (size_t i = 0; i < config->n_devices; i++) {
		const Cloister__DeviceConfig *d = config->devices[i];
		struct stat st;

		if (strcmp(d->kind, "blk") != 0)
			continue;
		if (!d->path || stat(d->path, &st) < 0) {
			snprintf(err, errlen, "disk %s: cannot find its image %s", d->id, d->path ? d->path : "");
			return -EBADMSG;
		}
		if ((uint64_t)st.st_size != d->disk_size) {
			snprintf(err, errlen, "disk %s: %s is %" PRIu64 " bytes, the snapshot was taken with %"
				 PRIu64, d->id, d->path, (uint64_t)st.st_size, d->disk_size);
			return -EBADMSG;
		}
	}
	return 0;
}
