/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-vmm: guest memory and vCPUs. Started by the gateway with its
 * control socket on fd 3. It makes its memfds, confines itself, and only
 * then reads a byte from anyone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "accel.h"
#include "control.h"
#include "frame.h"
#include "log.h"
#include "machine.h"
#include "memory.h"
#include "sandbox.h"

#define GATEWAY_FD 3

int main(int argc, char **argv)
{
	struct sandbox_config sc = { .role = SANDBOX_ROLE_VMM, .uid = 65534, .gid = 65534 };
	struct guest_memory mem;
	int optind_ = 0, type = 0, r;
	socklen_t len = sizeof(type);

	log_set_tag("vmm");
	if (sandbox_parse_args(argc, argv, &sc, &optind_) < 0 || optind_ != argc) {
		fprintf(stderr, "usage: cloister-vmm [--uid N --gid N] (started by cloister)\n");
		return 2;
	}
	if (getsockopt(GATEWAY_FD, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
		log_error("fd %d is not the gateway's socket; cloister-vmm is started by cloister",
			  GATEWAY_FD);
		return 2;
	}
	r = memory_prepare(&mem);
	if (r < 0)
		return 1;
	/* The translator's code buffers: no executable mapping can be made once confined. */
	r = accel_rv64_ops()->prepare(MACHINE_MAX_HARTS);
	if (r < 0)
		log_warn("no code buffers for the translator (%s): guest code is interpreted",
			 strerror(-r));
	r = sandbox_enter(&sc);
	if (r < 0) {
		log_error("cannot enter the sandbox: %s", strerror(-r));
		return 1;
	}
	r = frame_hello_send(GATEWAY_FD, CLOISTER__ROLE__ROLE_VMM);
	if (r == 0)
		r = frame_hello_expect(GATEWAY_FD, CLOISTER__ROLE__ROLE_GATEWAY, 5000);
	if (r < 0) {
		log_error("no handshake with the gateway: %s", strerror(-r));
		return 1;
	}
	r = control_serve(GATEWAY_FD, &mem);
	memory_release(&mem);
	return r < 0 ? 1 : 0;
}
