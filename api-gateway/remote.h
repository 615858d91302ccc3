/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-remote: ch-remote's verbs over the REST API's Unix socket. */
#ifndef CLOISTER_REMOTE_H
#define CLOISTER_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "remote_fds.h"

#define REMOTE_EXIT_OK 0
#define REMOTE_EXIT_FAILED 1
#define REMOTE_EXIT_USAGE 2

/* Bodies larger than this from the server are refused. */
#define REMOTE_RESPONSE_MAX (1u << 20)

struct remote_request {
	const char *method;	/* "GET" or "PUT" */
	const char *path;	/* "/api/v1/..." */
	char *body;		/* JSON or NULL */
	bool print_body;	/* ping, info: print what the server sends */
	/* restore's net_fds: descriptors sent along (SCM_RIGHTS) */
	struct remote_net_fds net_fds;
};

/*
 * Maps VERB [ARGS] (argv[0] is the verb) to a request. -EINVAL with a message
 * in err for unknown verbs or wrong arguments. Release with remote_request_free().
 */
int remote_build_request(int argc, char **argv, struct remote_request *ret, char *err, size_t errlen);
void remote_request_free(struct remote_request *r);

/*
 * Parses the whole command line: --api-socket PATH (or =PATH) then VERB.
 * ret_socket is a pointer into argv.
 */
int remote_parse_command_line(int argc, char **argv, const char **ret_socket,
			      struct remote_request *ret, char *err, size_t errlen);

/*
 * Sends req over the socket. Prints the body of ping/info on out; on an error
 * status prints the server's messages on errout. Returns a REMOTE_EXIT_* code.
 */
int remote_perform(const char *socket_path, const struct remote_request *req, FILE *out, FILE *errout);

/* Joins a CH-style error body (a JSON array of strings, or anything else) into one line. */
int remote_error_message(const char *body, size_t len, char **ret);

void remote_usage(FILE *f);

/* The whole program, for main() and tests. */
int remote_main(int argc, char **argv, FILE *out, FILE *errout);

#endif
