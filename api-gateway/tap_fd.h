/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tap the API client passes as an open file descriptor (SCM_RIGHTS on the
 * API socket, vm.restore's "net_fds", as Cloud Hypervisor takes them)
 * instead of a tap name the gateway opens. The descriptor is looked at
 * before anything uses it: it must be a queue of a tap (/dev/net/tun,
 * attached, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), nothing else.
 */
#ifndef CLOISTER_TAP_FD_H
#define CLOISTER_TAP_FD_H

#include <stddef.h>

/* The longest device id the API takes, plus its NUL. */
#define TAP_FD_ID_MAX 33
/* IFNAMSIZ, without pulling in either of the headers that define it */
#define TAP_FD_IFNAME_MAX 16

/* One net device of a request and the tap descriptor it gets. */
struct tap_fd {
	char id[TAP_FD_ID_MAX];
	int fd;				/* owned; -1 until the descriptors are matched */
	char ifname[TAP_FD_IFNAME_MAX];		/* the tap's name, as the kernel reports it */
};

/*
 * Whether fd is a usable tap: a character device 10:200 (/dev/net/tun)
 * attached to a tap with IFF_TAP, IFF_NO_PI and IFF_VNET_HDR. Writes the
 * interface's name into ifname. -EINVAL with err set otherwise (the fd is
 * left open: it is the caller's).
 */
int tap_fd_check(int fd, char ifname[TAP_FD_IFNAME_MAX], char *err, size_t errlen);

/*
 * A new descriptor (close-on-exec) on the same tap, ready for the net
 * device: non-blocking, with the 12-byte virtio-net header. -errno with
 * err set. Note that O_NONBLOCK is a property of the open file, which the
 * client that passed it shares.
 */
int tap_fd_for_device(int fd, const char *what, char *err, size_t errlen);

#endif
