/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process around a device: parse, confine, then serve. Kept apart from
 * device.c so tests can link the framework without the sandbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

static bool has_input_fd(const struct device_ops *ops)
{
	return ops->input == DEVICE_INPUT_SECOND_FD && fd_open(DEVICE_INPUT_FD);
}

/* Only the fixed fds survive: anything else leaked by the parent is closed before we confine ourselves. */
static int check_fds(const struct device_ops *ops)
{
	int first_free = ops->needs_host_fd ? DEVICE_HOST_FD + 1 : DEVICE_CORE_FD + 1;

	if (!fd_open(DEVICE_CORE_FD) || (ops->needs_host_fd && !fd_open(DEVICE_HOST_FD)))
		return -EBADF;
	/* fd 5 is optional (a console may have no input): keep it only when asked for and there. */
	if (has_input_fd(ops))
		first_free = DEVICE_INPUT_FD + 1;
	if (close_range((unsigned)first_free, ~0u, 0) < 0)
		return -errno;
	return 0;
}

static int option_index(const struct device_ops *ops, const char *name, size_t name_len)
{
	for (size_t i = 0; ops->options && ops->options[i] && i < DEVICE_MAX_OPTIONS; i++)
		if (strlen(ops->options[i]) == name_len && strncmp(ops->options[i], name, name_len) == 0)
			return (int)i;
	return -1;
}

/* Matches argv[i] as "--name VALUE" or "--name=VALUE"; returns how many args it used (0: not ours). */
static int match_option(const struct device_ops *ops, int argc, char **argv, int i,
			const char **values)
{
	const char *arg = argv[i], *eq;
	size_t name_len;
	int k;

	if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
		return 0;
	eq = strchr(arg + 2, '=');
	name_len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
	k = option_index(ops, arg + 2, name_len);
	if (k < 0)
		return 0;
	if (values[k])
		return -EINVAL;
	if (eq) {
		values[k] = eq + 1;
		return 1;
	}
	if (i + 1 >= argc)
		return -EINVAL;
	values[k] = argv[i + 1];
	return 2;
}

/*
 * Takes the device's own options out of argv (the sandbox's parser refuses
 * options it does not know) and returns the new argc, or -EINVAL.
 */
static int take_device_options(const struct device_ops *ops, int argc, char **argv,
			       const char **values)
{
	int out = 1;

	for (int i = 1; i < argc; i++) {
		int used = strcmp(argv[i], "--") == 0 ? 0 : match_option(ops, argc, argv, i, values);

		if (used < 0)
			return used;
		if (used == 0) {
			argv[out++] = argv[i];
			continue;
		}
		i += used - 1;
	}
	argv[out] = NULL;
	return out;
}

static void usage(const char *prog, const struct device_ops *ops)
{
	fprintf(stderr, "usage: %s ID [--uid N --gid N]", prog);
	for (size_t i = 0; ops->options && ops->options[i] && i < DEVICE_MAX_OPTIONS; i++)
		fprintf(stderr, " --%s VALUE", ops->options[i]);
	fprintf(stderr, "  (fd %d: core socket)\n", DEVICE_CORE_FD);
}

/* Every option is parsed and the device built before the sandbox shuts the door. */
static int prepare(struct device *dev, const struct device_ops *ops, const char *id,
		   const char *const *values)
{
	int r;

	device_init(dev, ops, id, DEVICE_CORE_FD, ops->needs_host_fd ? DEVICE_HOST_FD : -1);
	r = check_fds(ops);
	if (r < 0)
		return r;
	if (has_input_fd(ops))
		device_set_input_fd(dev, DEVICE_INPUT_FD);
	return device_configure(dev, values);
}

int device_main(int argc, char **argv, const struct device_ops *ops)
{
	struct sandbox_config cfg = { .role = ops->sandbox_role };
	const char *values[DEVICE_MAX_OPTIONS] = { NULL };
	struct device dev;
	const char *id;
	int first_operand, r;

	log_set_tag(ops->kind);
	argc = take_device_options(ops, argc, argv, values);
	r = argc < 0 ? argc : sandbox_parse_args(argc, argv, &cfg, &first_operand);
	if (r < 0 || argc - first_operand != 1 || !device_id_valid(argv[first_operand])) {
		usage(argv[0], ops);
		return 2;
	}
	id = argv[first_operand];
	log_set_tag(id);
	/* A host end that went away (a pipe, a pty) must be an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	r = prepare(&dev, ops, id, values);
	if (r >= 0)
		r = sandbox_enter(&cfg);
	if (r < 0) {
		log_error("cannot start: %s", strerror(-r));
		device_cleanup(&dev);
		return 1;
	}
	r = device_handshake(&dev);
	if (r >= 0)
		r = device_serve(&dev);
	device_cleanup(&dev);
	return r < 0 ? 1 : 0;
}
