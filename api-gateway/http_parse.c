/* SPDX-License-Identifier: Apache-2.0 */
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void http_request_init(struct http_request *r, size_t body_max)
{
	memset(r, 0, offsetof(struct http_request, line));
	r->line_len = r->head_len = 0;
	r->headers = 0;
	r->chunk_left = 0;
	r->state = HTTP_PARSE_REQUEST_LINE;
	r->body_max = body_max;
}

void http_request_release(struct http_request *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
}

bool http_request_in_body(const struct http_request *r)
{
	return r->state == HTTP_PARSE_BODY || r->state == HTTP_PARSE_CHUNK_SIZE ||
	       r->state == HTTP_PARSE_CHUNK_DATA || r->state == HTTP_PARSE_CHUNK_END ||
	       r->state == HTTP_PARSE_TRAILERS;
}

static int fail(struct http_request *r, int status, const char *why)
{
	r->state = HTTP_PARSE_ERROR;
	r->error_status = status;
	r->error = why;
	return -1;
}

/* RFC 9110 tchar */
static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_field_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int body_reserve(struct http_request *r, size_t need)
{
	size_t cap;
	char *grown;

	if (need + 1 <= r->body_cap)
		return 0;
	cap = r->body_cap ? r->body_cap : 256;
	while (cap < need + 1)
		cap *= 2;
	if (cap > r->body_max + 1)
		cap = r->body_max + 1;
	grown = realloc(r->body, cap);
	if (!grown)
		return fail(r, 500, "out of memory");
	r->body = grown;
	r->body_cap = cap;
	return 0;
}

/* ---- request line ---- */

static int parse_version(struct http_request *r, const char *v, size_t len)
{
	if (len != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
	    v[7] < '0' || v[7] > '9')
		return fail(r, 400, "malformed HTTP version in the request line");
	if (v[5] != '1' || v[7] > '1')
		return fail(r, 505, "only HTTP/1.0 and HTTP/1.1 are spoken here");
	r->minor = (unsigned)(v[7] - '0');
	return 0;
}

static int parse_request_line(struct http_request *r, const char *line, size_t len)
{
	const char *sp1, *sp2;
	size_t mlen, tlen;

	if (memchr(line, '\0', len))
		return fail(r, 400, "NUL byte in the request line");
	sp1 = memchr(line, ' ', len);
	if (!sp1)
		return fail(r, 400, "malformed request line");
	mlen = (size_t)(sp1 - line);
	if (mlen == 0 || mlen > HTTP_METHOD_MAX)
		return fail(r, 400, "malformed method in the request line");
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)line[i]))
			return fail(r, 400, "malformed method in the request line");
	sp2 = memchr(sp1 + 1, ' ', len - mlen - 1);
	if (!sp2)
		return fail(r, 400, "malformed request line");
	tlen = (size_t)(sp2 - sp1 - 1);
	if (tlen == 0 || sp1[1] != '/')
		return fail(r, 400, "the request target must be an absolute path");
	if (tlen > HTTP_TARGET_MAX)
		return fail(r, 414, "request target too long");
	for (size_t i = 1; i <= tlen; i++)
		if ((unsigned char)sp1[i] <= 0x20 || (unsigned char)sp1[i] >= 0x7f)
			return fail(r, 400, "malformed request target");
	if (parse_version(r, sp2 + 1, len - (size_t)(sp2 + 1 - line)) < 0)
		return -1;
	memcpy(r->method, line, mlen);
	r->method[mlen] = '\0';
	memcpy(r->target, sp1 + 1, tlen);
	r->target[tlen] = '\0';
	r->state = HTTP_PARSE_HEADERS;
	return 0;
}

/* ---- header fields ---- */

/* Splits "name: value" with the value's OWS trimmed; refuses bad syntax. */
static int split_field(struct http_request *r, char *line, size_t len, char **ret_value, size_t *ret_vlen)
{
	char *colon, *v, *end;

	if (line[0] == ' ' || line[0] == '\t')
		return fail(r, 400, "obs-fold (a header line continued on the next) is not accepted");
	colon = memchr(line, ':', len);
	if (!colon || colon == line)
		return fail(r, 400, "malformed header line");
	for (char *p = line; p < colon; p++)
		if (!is_tchar((unsigned char)*p))
			return fail(r, 400, "malformed header name");
	for (char *p = colon + 1; p < line + len; p++)
		if (!is_field_char((unsigned char)*p))
			return fail(r, 400, "control byte in a header value");
	*colon = '\0';
	v = colon + 1;
	end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	*ret_value = v;
	*ret_vlen = (size_t)(end - v);
	return 0;
}

static int parse_content_length(struct http_request *r, const char *v, size_t len)
{
	uint64_t n = 0;

	if (r->has_length)
		return fail(r, 400, "more than one Content-Length header");
	if (len == 0)
		return fail(r, 400, "malformed Content-Length");
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(unsigned char)v[i] - '0';

		if (d > 9)
			return fail(r, 400, "malformed Content-Length");
		n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
	}
	r->has_length = true;
	r->content_length = n;
	return 0;
}

static int header_field(struct http_request *r, char *line, size_t len)
{
	char *v;
	size_t vlen;

	if (++r->headers > HTTP_HEADERS_MAX)
		return fail(r, 431, "too many header fields");
	if (split_field(r, line, len, &v, &vlen) < 0)
		return -1;
	if (strcasecmp(line, "Content-Length") == 0)
		return parse_content_length(r, v, vlen);
	if (strcasecmp(line, "Transfer-Encoding") == 0) {
		if (r->chunked)
			return fail(r, 400, "more than one Transfer-Encoding header");
		if (strcasecmp(v, "chunked") != 0)
			return fail(r, 400, "only Transfer-Encoding: chunked is accepted");
		r->chunked = true;
	} else if (strcasecmp(line, "Host") == 0) {
		if (r->has_host)
			return fail(r, 400, "more than one Host header");
		r->has_host = true;
	} else if (strcasecmp(line, "Expect") == 0) {
		if (strcasecmp(v, "100-continue") != 0)
			return fail(r, 417, "only Expect: 100-continue is understood");
		r->expect_continue = true;
	}
	return 0;
}

/* The empty line: decide how the body is framed. */
static int end_of_head(struct http_request *r)
{
	if (r->chunked && r->has_length)
		return fail(r, 400, "Content-Length and Transfer-Encoding together");
	if (r->chunked && r->minor == 0)
		return fail(r, 400, "Transfer-Encoding in an HTTP/1.0 request");
	if (r->minor == 1 && !r->has_host)
		return fail(r, 400, "an HTTP/1.1 request needs a Host header");
	if (r->chunked) {
		r->state = HTTP_PARSE_CHUNK_SIZE;
		return 0;
	}
	if (r->has_length && r->content_length > r->body_max)
		return fail(r, 413, "the body is larger than the API accepts (1 MiB)");
	if (r->has_length && r->content_length > 0) {
		if (body_reserve(r, (size_t)r->content_length) < 0)
			return -1;
		r->state = HTTP_PARSE_BODY;
		return 0;
	}
	r->state = HTTP_PARSE_DONE;
	return 0;
}

/* ---- chunked body ---- */

static int chunk_size_line(struct http_request *r, const char *line, size_t len)
{
	uint64_t n = 0;
	size_t i = 0;

	for (; i < len && i < 16; i++) {
		char c = line[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') :
			     c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) :
			     c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;

		if (d == 16)
			break;
		n = n * 16 + d;
	}
	if (i == 0 || (i < len && line[i] != ';'))
		return fail(r, 400, "malformed chunk size");
	for (; i < len; i++)
		if (!is_field_char((unsigned char)line[i]))
			return fail(r, 400, "malformed chunk extension");
	if (n > r->body_max - r->body_len)
		return fail(r, 413, "the body is larger than the API accepts (1 MiB)");
	if (n == 0) {
		r->state = HTTP_PARSE_TRAILERS;
		return 0;
	}
	if (body_reserve(r, r->body_len + (size_t)n) < 0)
		return -1;
	r->chunk_left = n;
	r->state = HTTP_PARSE_CHUNK_DATA;
	return 0;
}

static int trailer_line(struct http_request *r, char *line, size_t len)
{
	char *v;
	size_t vlen;

	if (len == 0) {
		r->state = HTTP_PARSE_DONE;
		return 0;
	}
	if (++r->headers > HTTP_HEADERS_MAX)
		return fail(r, 431, "too many header fields");
	/* Trailer fields are checked for syntax and otherwise ignored. */
	return split_field(r, line, len, &v, &vlen);
}

/* ---- lines ---- */

static int complete_line(struct http_request *r)
{
	char *line = r->line;
	size_t len = r->line_len;

	r->line_len = 0;
	if (len == 0 || line[len - 1] != '\r')
		return fail(r, 400, "a line ends in LF without CR");
	line[--len] = '\0';
	if (memchr(line, '\r', len))
		return fail(r, 400, "stray CR in the request head");
	switch (r->state) {
	case HTTP_PARSE_REQUEST_LINE:
		if (len == 0)
			return fail(r, 400, "empty request line");
		return parse_request_line(r, line, len);
	case HTTP_PARSE_HEADERS:
		return len == 0 ? end_of_head(r) : header_field(r, line, len);
	case HTTP_PARSE_CHUNK_SIZE:
		return chunk_size_line(r, line, len);
	case HTTP_PARSE_CHUNK_END:
		if (len != 0)
			return fail(r, 400, "chunk data longer than its size");
		r->state = HTTP_PARSE_CHUNK_SIZE;
		return 0;
	case HTTP_PARSE_TRAILERS:
		return trailer_line(r, line, len);
	default:
		return fail(r, 500, "parser state");
	}
}

static size_t line_limit(const struct http_request *r)
{
	if (r->state == HTTP_PARSE_CHUNK_SIZE || r->state == HTTP_PARSE_CHUNK_END)
		return HTTP_CHUNK_LINE_MAX;
	return HTTP_LINE_MAX - 1;
}

static int line_too_long(struct http_request *r)
{
	switch (r->state) {
	case HTTP_PARSE_REQUEST_LINE:
		return fail(r, 414, "request line too long");
	case HTTP_PARSE_HEADERS:
	case HTTP_PARSE_TRAILERS:
		return fail(r, 431, "header line too long");
	default:
		return fail(r, 400, "malformed chunk size line");
	}
}

static size_t feed_line(struct http_request *r, const char *data, size_t len)
{
	const char *lf = memchr(data, '\n', len);
	size_t n = lf ? (size_t)(lf - data) : len;
	bool in_head = r->state == HTTP_PARSE_REQUEST_LINE || r->state == HTTP_PARSE_HEADERS ||
		       r->state == HTTP_PARSE_TRAILERS;

	if (n > line_limit(r) - r->line_len) {
		line_too_long(r);
		return 0;
	}
	if (in_head && n + (lf ? 1 : 0) > HTTP_HEAD_MAX - r->head_len) {
		fail(r, 431, "request head too large");
		return 0;
	}
	memcpy(r->line + r->line_len, data, n);
	r->line_len += n;
	if (in_head)
		r->head_len += n + (lf ? 1 : 0);
	if (!lf)
		return n;
	complete_line(r);
	return n + 1;
}

static size_t feed_bytes(struct http_request *r, const char *data, size_t len, uint64_t *left)
{
	size_t n = len < *left ? len : (size_t)*left;

	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	*left -= n;
	return n;
}

size_t http_request_feed(struct http_request *r, const char *data, size_t len)
{
	size_t used = 0;

	while (used < len && r->state != HTTP_PARSE_DONE && r->state != HTTP_PARSE_ERROR) {
		if (r->state == HTTP_PARSE_BODY) {
			uint64_t left = r->content_length - r->body_len;

			used += feed_bytes(r, data + used, len - used, &left);
			if (left == 0)
				r->state = HTTP_PARSE_DONE;
		} else if (r->state == HTTP_PARSE_CHUNK_DATA) {
			used += feed_bytes(r, data + used, len - used, &r->chunk_left);
			if (r->chunk_left == 0)
				r->state = HTTP_PARSE_CHUNK_END;
		} else {
			used += feed_line(r, data + used, len - used);
		}
	}
	return used;
}
