/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process around a device: parse, confine, then serve. Kept apart from
 * device.c so tests can link the framework without the sandbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "log.h"

#define DEVICE_ID_MAX 64

static bool device_id_valid(const char *id)
{
	size_t len = strlen(id);

	if (len == 0 || len >= DEVICE_ID_MAX)
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == len;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Only the fixed fds survive: anything else leaked by the parent is closed before we confine ourselves. */
static int check_fds(const struct device_ops *ops)
{
	int first_free = ops->needs_host_fd ? DEVICE_HOST_FD + 1 : DEVICE_CORE_FD + 1;

	if (!fd_open(DEVICE_CORE_FD) || (ops->needs_host_fd && !fd_open(DEVICE_HOST_FD)))
		return -EBADF;
	if (close_range((unsigned)first_free, ~0u, 0) < 0)
		return -errno;
	return 0;
}

int device_main(int argc, char **argv, const struct device_ops *ops)
{
	struct sandbox_config cfg = { .role = ops->sandbox_role };
	struct device dev;
	const char *id;
	int first_operand, r;

	log_set_tag(ops->kind);
	r = sandbox_parse_args(argc, argv, &cfg, &first_operand);
	if (r < 0 || argc - first_operand != 1 || !device_id_valid(argv[first_operand])) {
		fprintf(stderr, "usage: %s ID [--uid N --gid N]  (fd %d: core socket)\n", argv[0],
			DEVICE_CORE_FD);
		return 2;
	}
	id = argv[first_operand];
	log_set_tag(id);
	r = check_fds(ops);
	if (r >= 0)
		r = sandbox_enter(&cfg);
	if (r < 0) {
		log_error("cannot start: %s", strerror(-r));
		return 1;
	}
	device_init(&dev, ops, id, DEVICE_CORE_FD, ops->needs_host_fd ? DEVICE_HOST_FD : -1);
	r = device_handshake(&dev);
	if (r >= 0)
		r = device_serve(&dev);
	device_cleanup(&dev);
	return r < 0 ? 1 : 0;
}
