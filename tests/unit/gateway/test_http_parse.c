/* SPDX-License-Identifier: Apache-2.0 */
/* The request parser alone: framing, limits, and feeding in any pieces. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "http_parse.h"

static struct http_request req;

static void release(void)
{
	http_request_release(&req);
}

TestSuite(http_parse, .fini = release);

/* Feeds s in pieces of step bytes; returns the bytes consumed in all. */
static size_t feed_steps(const char *s, size_t len, size_t step)
{
	size_t off = 0;

	http_request_init(&req, API_BODY_MAX);
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		size_t used = http_request_feed(&req, s + off, n);

		cr_assert_leq(used, n);
		off += used;
		if (used < n)
			break;
	}
	return off;
}

static size_t feed(const char *s)
{
	return feed_steps(s, strlen(s), strlen(s) ? strlen(s) : 1);
}

static void expect_refused(const char *s, int status, const char *needle)
{
	feed(s);
	cr_expect_eq(req.state, HTTP_PARSE_ERROR, "accepted: %s", s);
	cr_expect_eq(req.error_status, status, "%d for %s", req.error_status, s);
	cr_expect(req.error && strstr(req.error, needle), "'%s' lacks '%s'", req.error, needle);
	http_request_release(&req);
}

Test(http_parse, any_piece_size_gives_the_same_request)
{
	static const char s[] = "PUT /api/v1/vm.snapshot?x=1 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n"
				"X-Empty:\r\n\r\n5\r\nhello\r\na;name=value\r\n, chunked!\r\n0\r\nTrailer: t\r\n\r\n";

	for (size_t step = 1; step <= sizeof(s); step++) {
		cr_assert_eq(feed_steps(s, sizeof(s) - 1, step), sizeof(s) - 1, "step %zu", step);
		cr_assert_eq(req.state, HTTP_PARSE_DONE, "step %zu: %s", step, req.error);
		cr_expect_str_eq(req.method, "PUT");
		cr_expect_str_eq(req.target, "/api/v1/vm.snapshot?x=1");
		cr_expect_eq(req.minor, 1);
		cr_expect_eq(req.body_len, 15);
		cr_expect_str_eq(req.body, "hello, chunked!");
		http_request_release(&req);
	}
}

Test(http_parse, content_length_body_and_what_follows)
{
	static const char s[] = "PUT /a HTTP/1.1\r\nHost: x\r\ncontent-length:  3 \r\n\r\nabcEXTRA";

	cr_expect_eq(feed(s), sizeof(s) - 1 - 5, "the bytes after the body are left alone");
	cr_expect_eq(req.state, HTTP_PARSE_DONE);
	cr_expect_str_eq(req.body, "abc");
	/* Once done, nothing more is taken. */
	cr_expect_eq(http_request_feed(&req, "x", 1), 0);
}

Test(http_parse, http10_without_host_and_no_body)
{
	feed("GET /api/v1/vmm.ping HTTP/1.0\r\n\r\n");
	cr_expect_eq(req.state, HTTP_PARSE_DONE);
	cr_expect_eq(req.minor, 0);
	cr_expect_eq(req.body_len, 0);
}

Test(http_parse, limits)
{
	char *big = malloc(64 * 1024);
	int n;

	cr_assert_not_null(big);
	/* 64 header fields are fine, 65 are not. */
	n = sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 63; i++)
		n += sprintf(big + n, "X-%d: v\r\n", i);
	strcpy(big + n, "\r\n");
	feed(big);
	cr_expect_eq(req.state, HTTP_PARSE_DONE);
	http_request_release(&req);
	strcpy(big + n, "X-Last: v\r\n\r\n");
	expect_refused(big, 431, "too many");

	/* A target past HTTP_TARGET_MAX, a head past HTTP_HEAD_MAX, a line past HTTP_LINE_MAX. */
	n = sprintf(big, "GET /");
	memset(big + n, 'a', HTTP_TARGET_MAX);
	strcpy(big + n + HTTP_TARGET_MAX, " HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_refused(big, 414, "target too long");
	n = sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; n < (int)HTTP_HEAD_MAX + 100; i++)
		n += sprintf(big + n, "X-%d: %0100d\r\n", i % 60, 0);
	strcpy(big + n, "\r\n");
	expect_refused(big, 431, "");
	n = sprintf(big, "GET / HTTP/1.1\r\nX-Long: ");
	memset(big + n, 'b', HTTP_LINE_MAX);
	strcpy(big + n + HTTP_LINE_MAX, "\r\n\r\n");
	expect_refused(big, 431, "header line too long");
	expect_refused("GETTINGVERYLONGMETHOD / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "method");
	free(big);
}

Test(http_parse, body_size_limits)
{
	char head[160];

	snprintf(head, sizeof(head), "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", API_BODY_MAX);
	feed(head);
	cr_expect_eq(req.state, HTTP_PARSE_BODY, "a body of exactly the limit is read");
	http_request_release(&req);
	snprintf(head, sizeof(head), "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", API_BODY_MAX + 1);
	expect_refused(head, 413, "larger");
	snprintf(head, sizeof(head), "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n",
		 API_BODY_MAX + 1);
	expect_refused(head, 413, "larger");
	expect_refused("PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
		       400, "chunk size");
	expect_refused("PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", 400,
		       "longer than its size");
	expect_refused("PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk size");
	expect_refused("PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n folded\r\n\r\n", 400,
		       "obs-fold");
}

Test(http_parse, framing_refusals)
{
	static const struct { const char *s, *needle; int status; } cases[] = {
		{ "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "more than one", 400 },
		{ "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx", "Content-Length", 400 },
		{ "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 1\r\n\r\nx", "Content-Length", 400 },
		{ "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", "Content-Length", 400 },
		{ "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
		  "together", 400 },
		{ "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		  "more than one", 400 },
		{ "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "chunked", 400 },
		{ "PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", "CR", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n\r\n", "control byte", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\n\tfold\r\n\r\n", "obs-fold", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", "malformed header", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", "malformed header", 400 },
		{ "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", "empty request line", 400 },
		{ "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "absolute path", 400 },
		{ "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", "HTTP version", 400 },
		{ "GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", "target", 400 },
		{ "GET / HTTP/1.2\r\nHost: x\r\n\r\n", "HTTP/1.0 and HTTP/1.1", 505 },
		{ "GET / HTTP/0.9\r\n\r\n", "HTTP/1.0 and HTTP/1.1", 505 },
		{ "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "method", 400 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_refused(cases[i].s, cases[i].status, cases[i].needle);
	/* NUL bytes: strlen cannot carry them. */
	{
		static const char s[] = "GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n";

		feed_steps(s, sizeof(s) - 1, 7);
		cr_expect_eq(req.state, HTTP_PARSE_ERROR);
		cr_expect_eq(req.error_status, 400);
		cr_expect(strstr(req.error, "NUL"), "%s", req.error);
	}
}

Test(http_parse, expect_continue)
{
	feed("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n");
	cr_expect(req.expect_continue);
	cr_expect(http_request_in_body(&req));
	http_request_release(&req);
	expect_refused("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417, "Expect");
}
