/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-snapshotd save|load|load-faults-only [--uid N --gid N]
 * load-faults-only: an OnDemand restore pages in only what is touched (for tests).
 * fd 3: socket to the gateway, fd 4: socket to vmm-core (set up by the gateway).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "chunk.h"
#include "digest.h"
#include "log.h"
#include "sandbox.h"
#include "service.h"

#define GATEWAY_FD 3
#define CORE_FD 4

static int check_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? 0 : -EBADF;
}

/* Everything before the first byte of peer input: fds, args, sandbox. */
static int confine(int argc, char **argv, const char **ret_op)
{
	struct sandbox_config cfg = { .role = SANDBOX_ROLE_SNAPSHOTD };
	int first_operand = 0;
	int r;

	r = sandbox_parse_args(argc, argv, &cfg, &first_operand);
	if (r < 0 || first_operand != argc - 1) {
		log_error("usage: cloister-snapshotd save|load|load-faults-only [--uid N --gid N]");
		return -EINVAL;
	}
	if (check_socket(GATEWAY_FD) < 0 || check_socket(CORE_FD) < 0) {
		log_error("fds 3 and 4 must be the sockets to the gateway and vmm-core");
		return -EBADF;
	}
	/* libsodium picks its random source (getrandom) while files may still be opened. */
	if (sodium_init() < 0) {
		log_error("libsodium cannot start");
		return -EIO;
	}
	/* OpenSSL without its configuration file, SHA-256 fetched: nothing is loaded later. */
	if (digest_init() < 0) {
		log_error("OpenSSL cannot provide %s", DIGEST_NAME);
		return -EIO;
	}
	/* How many threads a fill or a save may use: the CPU mask, asked while allowed. */
	chunk_workers();
	r = sandbox_enter(&cfg);
	if (r < 0) {
		log_error("sandbox: %s", strerror(-r));
		return r;
	}
	*ret_op = argv[first_operand];
	return 0;
}

int main(int argc, char **argv)
{
	const char *op;
	int r;

	log_set_tag("snapshotd");
	if (confine(argc, argv, &op) < 0)
		return 1;
	if (strcmp(op, "save") != 0 && strcmp(op, "load") != 0 && strcmp(op, "load-faults-only") != 0) {
		log_error("unknown operation \"%s\" (save, load or load-faults-only)", op);
		return 1;
	}
	r = snapd_handshake(GATEWAY_FD, CORE_FD, SNAPD_TIMEOUT_MS);
	if (r < 0)
		return 1;
	if (strcmp(op, "save") == 0)
		r = snapd_serve_save(GATEWAY_FD, CORE_FD, SNAPD_TIMEOUT_MS);
	else if (strcmp(op, "load") == 0)
		r = snapd_serve_load(GATEWAY_FD, CORE_FD, SNAPD_TIMEOUT_MS);
	else
		r = snapd_serve_load_faults_only(GATEWAY_FD, CORE_FD, SNAPD_TIMEOUT_MS);
	return r < 0 ? 1 : 0;
}
