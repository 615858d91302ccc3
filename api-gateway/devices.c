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

#include "bindings.h"
#include "cleanup.h"
#include "host_open.h"
#include "log.h"
#include "options.h"
#include "snapshot_dir.h"
#include "tap_fd.h"

/* The virtio-net header with VIRTIO_F_VERSION_1 (virtio_net_hdr_v1). */
#define VNET_HDR_LEN 12


/* A snapshot's image: opened as a setuid program would, and it must not have changed size. */
static int disk_open_restore(Cloister__DeviceConfig *d, char *err, size_t errlen)
{
	int fd = host_open_strict(d->path, d->readonly ? O_RDONLY : O_RDWR);
	struct stat st;

	if (fd < 0) {
		snprintf(err, errlen, "disk %s: cannot open its image %s: %s", d->id, d->path,
			 fd == -ELOOP ? "a symbolic link is on the way" :
			 fd == -EINVAL ? "not a regular file" : strerror(-fd));
		return fd == -ELOOP || fd == -EINVAL ? -EBADMSG : fd;
	}
	/* Sizes stay out of the message: the image may be a file the restorer cannot read. */
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != d->disk_size) {
		close(fd);
		snprintf(err, errlen, "disk %s: the image's size in bytes is not the one the snapshot "
			 "was taken with", d->id);
		return -EBADMSG;
	}
	return fd;
}

static int disk_open(Cloister__DeviceConfig *d, bool restore, struct device_host *h, char *err,
		     size_t errlen)
{
	struct stat st;
	int fd;

	if (!d->path || d->path[0] != '/') {
		snprintf(err, errlen, "disk %s: the image path must be absolute", d->id);
		return -EINVAL;
	}
	if (restore) {
		fd = disk_open_restore(d, err, errlen);
		if (fd < 0)
			return fd;
		h->program = "cloister-blk";
		h->fds[h->n_fds++] = fd;
		return 0;
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

int device_host_open_tap_fd(Cloister__DeviceConfig *d, int tap_fd, struct device_host *ret,
			    char *err, size_t errlen)
{
	struct device_host h = { .fds = { -1, -1 }, .sink = SINK_INIT };
	char what[64];
	int fd;

	if (strcmp(d->kind, "net") != 0 || !d->mac || !d->mac[0]) {
		snprintf(err, errlen, "device %s: a tap descriptor binds a restored net device only", d->id);
		return -EBADMSG;
	}
	snprintf(what, sizeof(what), "net %s", d->id);
	fd = tap_fd_for_device(tap_fd, what, err, errlen);
	if (fd < 0)
		return fd == -EINVAL ? -EBADMSG : fd;
	log_info("net %s: on the tap %s, from the descriptor the restorer sent", d->id, d->tap);
	snprintf(h.mac_arg, sizeof(h.mac_arg), "%s", d->mac);
	h.program = "cloister-net";
	h.fds[h.n_fds++] = fd;
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

/* A restored sink's file or socket must be reachable without links, before anything starts. */
static int sink_check_restorable(const Cloister__SerialConfig *s, const char *what, char *err,
				 size_t errlen)
{
	int fd;

	if (!s || (s->mode != CLOISTER__SERIAL_MODE__SERIAL_FILE &&
		   s->mode != CLOISTER__SERIAL_MODE__SERIAL_SOCKET))
		return 0;
	if (s->mode == CLOISTER__SERIAL_MODE__SERIAL_SOCKET)
		fd = host_parent_strict(s->path);
	else
		fd = host_open_strict(s->path, O_WRONLY | O_APPEND);
	if (fd >= 0) {
		if (s->mode == CLOISTER__SERIAL_MODE__SERIAL_FILE)
			close(fd);
		return 0;
	}
	snprintf(err, errlen, "%s: its output %s cannot be used: %s (give --restore-bind id=%s,"
		 "file=PATH or mode=null)", what, s->path, fd == -ELOOP ? "a symbolic link is on the "
		 "way" : fd == -EINVAL ? "not a regular file" : fd == -ENOENT ? "it does not exist, "
		 "and a restore makes no file the snapshot names" : strerror(-fd), what);
	return -EBADMSG;
}

int devices_check_restorable(const Cloister__VmConfig *config, char *err, size_t errlen)
{
	int r = sink_check_restorable(config->serial, "serial", err, errlen);

	for (size_t i = 0; i < config->n_devices && r == 0; i++) {
		Cloister__DeviceConfig *d = config->devices[i];
		int fd;

		if (strcmp(d->kind, "console") == 0) {
			r = sink_check_restorable(d->console, d->id, err, errlen);
			continue;
		}
		/* The device's saved state carries the MAC: a restore cannot make up another. */
		if (strcmp(d->kind, "net") == 0 && (!d->mac || strlen(d->mac) != 17)) {
			snprintf(err, errlen, "net %s: the snapshot names no MAC address for it", d->id);
			return -EBADMSG;
		}
		if (strcmp(d->kind, "blk") != 0)
			continue;
		if (!d->path || d->path[0] != '/') {
			snprintf(err, errlen, "disk %s: the snapshot names no absolute image path", d->id);
			return -EBADMSG;
		}
		fd = disk_open_restore(d, err, errlen);
		if (fd < 0)
			return fd == -EBADMSG ? fd : -EBADMSG;
		close(fd);
	}
	return r;
}

int devices_prepare_restore(Cloister__VmConfig *config, const char *url,
			    const struct restore_binds *binds, char *err, size_t errlen)
{
	_cleanup_close_ int dirfd = snapdir_open(url, err, errlen);
	bool verified;
	int r;

	if (dirfd < 0)
		return dirfd;
	verified = bindings_verify(dirfd, config);
	if (!verified)
		log_info("the snapshot's host bindings are not sealed by this host: only bound devices "
			 "reach host resources");
	r = bindings_apply(config, binds, verified, err, errlen);
	if (r == 0)
		r = devices_check_restorable(config, err, errlen);
	return r;
}
