/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A strict, incremental HTTP/1.x request parser for the API socket. It keeps
 * only what the API needs (method, target, body) and refuses whatever a
 * lenient parser would have to guess at: several or malformed Content-Length
 * headers, Content-Length beside Transfer-Encoding, obs-fold, bare LF, control
 * bytes, unknown versions. A refusal carries the HTTP status to answer with.
 */
#ifndef CLOISTER_HTTP_PARSE_H
#define CLOISTER_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_METHOD_MAX 15u
#define HTTP_TARGET_MAX 1024u
#define HTTP_LINE_MAX 8192u		/* one header line */
#define HTTP_HEAD_MAX (16u * 1024u)	/* request line + every header line */
#define HTTP_HEADERS_MAX 64u
#define HTTP_CHUNK_LINE_MAX 64u

enum http_parse_state {
	HTTP_PARSE_REQUEST_LINE,
	HTTP_PARSE_HEADERS,
	HTTP_PARSE_BODY,		/* Content-Length bytes */
	HTTP_PARSE_CHUNK_SIZE,
	HTTP_PARSE_CHUNK_DATA,
	HTTP_PARSE_CHUNK_END,		/* the CRLF after a chunk's data */
	HTTP_PARSE_TRAILERS,
	HTTP_PARSE_DONE,
	HTTP_PARSE_ERROR,
};

struct http_request {
	enum http_parse_state state;
	char method[HTTP_METHOD_MAX + 1];
	char target[HTTP_TARGET_MAX + 1];
	unsigned minor;			/* HTTP/1.minor */
	bool has_length, chunked, has_host, expect_continue;
	uint64_t content_length;
	size_t body_max;		/* larger bodies are refused with 413 (API_BODY_MAX) */
	char *body;			/* NUL-terminated, body_len bytes */
	size_t body_len, body_cap;

	/* refusal: status and a message for the client */
	int error_status;
	const char *error;

	/* parser's own */
	char line[HTTP_LINE_MAX];
	size_t line_len, head_len;
	unsigned headers;
	uint64_t chunk_left;
};

/* Prepares r for a new request whose body may be at most body_max bytes. */
void http_request_init(struct http_request *r, size_t body_max);
void http_request_release(struct http_request *r);

/*
 * Feeds len bytes and returns how many were consumed: fewer than len only
 * once the request is complete (the rest belongs to no request of ours) or
 * refused. r->state tells which: DONE, ERROR (with error_status and error),
 * or still reading. -ENOMEM leaves r in ERROR with status 500.
 */
size_t http_request_feed(struct http_request *r, const char *data, size_t len);

/* True once the head is parsed and a body is still to come (for 100-continue). */
bool http_request_in_body(const struct http_request *r);

#endif
