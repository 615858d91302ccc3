/* SPDX-License-Identifier: Apache-2.0 */
#include "tap_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "errmsg.h"

_Static_assert(TAP_FD_IFNAME_MAX == IFNAMSIZ, "tap names are IFNAMSIZ long");

/* /dev/net/tun is the misc device 10:200 (Documentation/admin-guide/devices.txt). */
#define TUN_MAJOR 10
#define TUN_MINOR 200
/* The virtio-net header with VIRTIO_F_VERSION_1 (virtio_net_hdr_v1). */
#define VNET_HDR_LEN 12
#define TAP_FLAGS_NEEDED (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)

static const char *fd_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFDIR: return "a directory";
	case S_IFSOCK: return "a socket";
	case S_IFIFO: return "a pipe";
	case S_IFBLK: return "a block device";
	case S_IFCHR: return "a character device other than /dev/net/tun";
	default: return "not a tap";
	}
}

int tap_fd_check(int fd, char ifname[TAP_FD_IFNAME_MAX], char *err, size_t errlen)
{
	struct ifreq ifr = { 0 };
	struct stat st;

	if (fstat(fd, &st) < 0) {
		err_set(err, errlen, "cannot look at the descriptor: %s", strerror(errno));
		return -EINVAL;
	}
	/* No ioctl reaches anything but the tun device: its numbers mean other things elsewhere. */
	if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != TUN_MAJOR || minor(st.st_rdev) != TUN_MINOR) {
		err_set(err, errlen, "the descriptor is %s, not a tap", fd_kind(st.st_mode));
		return -EINVAL;
	}
	if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
		err_set(err, errlen, "the descriptor is /dev/net/tun but not attached to a tap (%s)",
			strerror(errno));
		return -EINVAL;
	}
	if ((ifr.ifr_flags & TAP_FLAGS_NEEDED) != TAP_FLAGS_NEEDED) {
		err_set(err, errlen, "%.16s is not a tap opened with IFF_TAP | IFF_NO_PI | "
			"IFF_VNET_HDR (flags 0x%x)", ifr.ifr_name, (unsigned)(unsigned short)ifr.ifr_flags);
		return -EINVAL;
	}
	ifr.ifr_name[IFNAMSIZ - 1] = '\0';
	if (!ifr.ifr_name[0]) {
		err_set(err, errlen, "the tap has no name");
		return -EINVAL;
	}
	memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
	return 0;
}

int tap_fd_for_device(int fd, const char *what, char *err, size_t errlen)
{
	char ifname[IFNAMSIZ];
	int hdr = VNET_HDR_LEN, copy, flags, r;

	r = tap_fd_check(fd, ifname, err, errlen);
	if (r < 0)
		return r;
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0) {
		r = -errno;
		err_set(err, errlen, "%s: cannot duplicate the tap descriptor: %s", what, strerror(-r));
		return r;
	}
	flags = fcntl(copy, F_GETFL);
	if (flags < 0 || fcntl(copy, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    ioctl(copy, TUNSETVNETHDRSZ, &hdr) < 0) {
		r = -errno;
		err_set(err, errlen, "%s: cannot prepare the tap %s: %s", what, ifname, strerror(-r));
		close(copy);
		return r;
	}
	return copy;
}
