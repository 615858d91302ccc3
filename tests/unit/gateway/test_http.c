/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

/* ---- a fake VM behind the ops table ---- */

struct fake {
	int result;		/* what every op returns */
	const char *message;	/* written into err on failure */
	int calls;
	char last_op[32];
	char url[256];
	bool resume, prefault, body_is_object;
	enum restore_mode mode;
	int cpus;
	int blocked;
};

static struct fake fake;
static struct api_server *server;
static char dir[64], sock_path[96];

static int fake_result(const char *op, char *err, size_t errlen)
{
	snprintf(fake.last_op, sizeof(fake.last_op), "%s", op);
	/* Published after last_op: the test may read it from another thread. */
	__atomic_add_fetch(&fake.calls, 1, __ATOMIC_RELEASE);
	if (fake.result < 0 && fake.message)
		snprintf(err, errlen, "%s", fake.message);
	return fake.result;
}

static int fake_info(void *opaque, struct json_object **ret_info, char *err, size_t errlen)
{
	struct json_object *o;
	int r = fake_result("info", err, errlen);

	if (r < 0)
		return r;
	o = json_object_new_object();
	json_object_object_add(o, "state", json_object_new_string("Running"));
	json_object_object_add(o, "memory_actual_size", json_object_new_int64(1 << 29));
	json_object_object_add(o, "config", json_object_new_object());
	*ret_info = o;
	return 0;
}

static int fake_resume(void *opaque, char *err, size_t errlen)
{
	return fake_result("resume", err, errlen);
}

static int fake_snapshot(void *opaque, const char *url, char *err, size_t errlen)
{
	snprintf(fake.url, sizeof(fake.url), "%s", url);
	return fake_result("snapshot", err, errlen);
}

static int fake_restore(void *opaque, const struct api_restore_request *req, char *err, size_t errlen)
{
	snprintf(fake.url, sizeof(fake.url), "%s", req->source_url);
	fake.resume = req->resume;
	fake.prefault = req->prefault;
	fake.mode = req->memory_restore_mode;
	fake.body_is_object = json_object_is_type(req->body, json_type_object);
	return fake_result("restore", err, errlen);
}

static int fake_create(void *opaque, struct json_object *cfg, char *err, size_t errlen)
{
	struct json_object *v;

	fake.cpus = json_object_object_get_ex(cfg, "cpus", &v) &&
		    json_object_object_get_ex(v, "boot_vcpus", &v) ? json_object_get_int(v) : -1;
	return fake_result("create", err, errlen);
}

static int fake_counters(void *opaque, struct json_object **ret, char *err, size_t errlen)
{
	struct json_object *o, *d;
	int r = fake_result("counters", err, errlen);

	if (r < 0)
		return r;
	o = json_object_new_object();
	d = json_object_new_object();
	json_object_object_add(d, "read_bytes", json_object_new_int64(4096));
	json_object_object_add(o, "disk0", d);
	*ret = o;
	return 0;
}

/* pause can be made to block until the test lets it go, to see what runs meanwhile */
static int gate[2] = { -1, -1 };

static int fake_pause(void *opaque, char *err, size_t errlen)
{
	char c;

	if (gate[0] >= 0) {
		__atomic_store_n(&fake.blocked, 1, __ATOMIC_RELEASE);
		(void)!read(gate[0], &c, 1);
	}
	return fake_result("pause", err, errlen);
}

#define FAKE_SIMPLE(fn, name)						\
	static int fn(void *opaque, char *err, size_t errlen)		\
	{								\
		return fake_result(name, err, errlen);			\
	}

FAKE_SIMPLE(fake_boot, "boot")
FAKE_SIMPLE(fake_delete, "delete_vm")
FAKE_SIMPLE(fake_reboot, "reboot")
FAKE_SIMPLE(fake_power_button, "power_button")

static int fake_shutdown_vm(void *opaque, char *err, size_t errlen)
{
	return fake_result("shutdown_vm", err, errlen);
}

static int fake_shutdown_vmm(void *opaque, char *err, size_t errlen)
{
	return fake_result("shutdown_vmm", err, errlen);
}

static const struct api_ops fake_ops = {
	.info = fake_info,
	.counters = fake_counters,
	.create = fake_create,
	.boot = fake_boot,
	.delete_vm = fake_delete,
	.reboot = fake_reboot,
	.power_button = fake_power_button,
	.pause = fake_pause,
	.resume = fake_resume,
	.snapshot = fake_snapshot,
	.restore_request = fake_restore,
	.shutdown_vm = fake_shutdown_vm,
	.shutdown_vmm = fake_shutdown_vmm,
};

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/cloister-http-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/api.sock", dir);
	memset(&fake, 0, sizeof(fake));
	cr_assert_eq(api_server_start(sock_path, &fake_ops, NULL, &server), 0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void)
{
	api_server_stop(server);
	server = NULL;
	rmdir(dir);
	curl_global_cleanup();
}

/* ---- clients ---- */

struct reply {
	long status;
	char body[8192];
	size_t len;
	char allow[64];
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct reply *r = opaque;
	size_t n = size * nmemb;

	if (n > sizeof(r->body) - 1 - r->len)
		n = sizeof(r->body) - 1 - r->len;
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return size * nmemb;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct reply *r = opaque;
	size_t n = size * nmemb;

	if (n > 7 && strncasecmp(data, "Allow: ", 7) == 0)
		snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(n - 7 - 2), data + 7);
	return n;
}

/* body_len < 0: strlen(body); chunked: no Content-Length. */
static struct reply request(const char *method, const char *path, const char *body, long body_len,
			    bool chunked)
{
	struct reply r = { 0 };
	struct curl_slist *h = NULL;
	char url[256];
	CURL *c = curl_easy_init();

	cr_assert_not_null(c);
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock_path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	h = curl_slist_append(h, "Expect:");
	if (chunked)
		h = curl_slist_append(h, "Transfer-Encoding: chunked");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		if (!chunked)
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body_len < 0 ? (long)strlen(body) : body_len);
	}
	curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return r;
}

static struct reply get(const char *path)
{
	return request("GET", path, NULL, 0, false);
}

static struct reply put(const char *path, const char *body)
{
	return request("PUT", path, body, -1, false);
}

/* The error body is a JSON array of strings; returns them joined. */
static void expect_error_body(const struct reply *r, const char *needle)
{
	struct json_object *o = json_tokener_parse(r->body);
	char joined[4096] = "";

	cr_assert_not_null(o, "error body is not JSON: '%s'", r->body);
	cr_assert(json_object_is_type(o, json_type_array), "error body: '%s'", r->body);
	cr_assert_gt(json_object_array_length(o), 0);
	for (size_t i = 0; i < json_object_array_length(o); i++) {
		struct json_object *s = json_object_array_get_idx(o, i);

		cr_assert(json_object_is_type(s, json_type_string));
		strncat(joined, json_object_get_string(s), sizeof(joined) - strlen(joined) - 1);
	}
	cr_expect(strstr(joined, needle), "'%s' lacks '%s'", joined, needle);
	json_object_put(o);
}

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Reads until EOF or timeout; returns bytes read. */
static size_t raw_read_all(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;

	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return len;
}

static void expect_alive(void)
{
	struct reply r = get("/api/v1/vmm.ping");

	cr_assert_eq(r.status, 200, "server no longer answers ping");
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 60);

Test(http, socket_is_private)
{
	struct stat st;

	cr_assert_eq(lstat(sock_path, &st), 0);
	cr_expect(S_ISSOCK(st.st_mode));
	cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
}

Test(http, ping)
{
	struct reply r = get("/api/v1/vmm.ping");
	struct json_object *o = json_tokener_parse(r.body), *v;

	cr_assert_eq(r.status, 200);
	cr_assert_not_null(o);
	cr_expect(json_object_object_get_ex(o, "version", &v) && json_object_is_type(v, json_type_string));
	cr_expect(json_object_object_get_ex(o, "build_version", &v));
	cr_expect(json_object_object_get_ex(o, "pid", &v) && json_object_get_int64(v) == getpid());
	cr_expect(json_object_object_get_ex(o, "features", &v) && json_object_is_type(v, json_type_array));
	json_object_put(o);
	cr_expect_eq(fake.calls, 0);
}

Test(http, info_and_no_vm)
{
	struct reply r = get("/api/v1/vm.info");
	struct json_object *o = json_tokener_parse(r.body), *v;

	cr_assert_eq(r.status, 200);
	cr_assert_not_null(o);
	cr_expect(json_object_object_get_ex(o, "state", &v));
	cr_expect_str_eq(json_object_get_string(v), "Running");
	json_object_put(o);

	fake.result = -ENOENT;
	fake.message = "no VM has been created";
	r = get("/api/v1/vm.info");
	cr_expect_eq(r.status, 404);
	expect_error_body(&r, "no VM has been created");
}

Test(http, simple_puts_succeed)
{
	static const struct { const char *path, *op; } cases[] = {
		{ "/api/v1/vm.pause", "pause" },
		{ "/api/v1/vm.resume", "resume" },
		{ "/api/v1/vm.shutdown", "shutdown_vm" },
		{ "/api/v1/vmm.shutdown", "shutdown_vmm" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reply r = put(cases[i].path, NULL);

		cr_expect_eq(r.status, 204, "%s: %ld", cases[i].path, r.status);
		cr_expect_eq(r.len, 0);
		/* vmm.shutdown's op runs once its 204 has gone out, so may come just after it. */
		for (int t = 0; t < 200 && __atomic_load_n(&fake.calls, __ATOMIC_ACQUIRE) <= (int)i; t++)
			usleep(10000);
		cr_expect_str_eq(fake.last_op, cases[i].op);
	}
	cr_expect_eq(fake.calls, 4);
}

Test(http, op_errors_map_to_statuses)
{
	static const struct { int err; long status; } cases[] = {
		{ -EINVAL, 405 }, { -ENOENT, 404 }, { -EBUSY, 409 }, { -EIO, 500 }, { -EBADMSG, 400 },
	};

	fake.message = "pause needs a running VM";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reply r;

		fake.result = cases[i].err;
		r = put("/api/v1/vm.pause", NULL);
		cr_expect_eq(r.status, cases[i].status, "errno %d: %ld", -cases[i].err, r.status);
		expect_error_body(&r, "pause needs a running VM");
	}
	/* No message from the op: the errno text stands in. */
	fake.message = NULL;
	fake.result = -EIO;
	{
		struct reply r = put("/api/v1/vm.resume", NULL);

		cr_expect_eq(r.status, 500);
		expect_error_body(&r, strerror(EIO));
	}
}

Test(http, snapshot_body)
{
	struct reply r = put("/api/v1/vm.snapshot", "{\"destination_url\": \"file:///tmp/snap\"}");

	cr_expect_eq(r.status, 204);
	cr_expect_str_eq(fake.url, "file:///tmp/snap");

	static const char *const bad[] = {
		"", "{", "{}", "[]", "null", "{\"destination_url\": 5}",
		"{\"destination_url\": \"/tmp/snap\"}", "{\"destination_url\": \"file://host/x\"}",
		"{\"destination_url\": \"file:///a\"} trailing", "{\"destination_url\": \"file:///a\\u0000b\"}",
		"{\"destination_url\": \"http:///x\"}",
	};
	fake.calls = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = put("/api/v1/vm.snapshot", bad[i]);
		cr_expect_eq(r.status, 400, "body '%s': %ld", bad[i], r.status);
		expect_error_body(&r, "bad request");
	}
	cr_expect_eq(fake.calls, 0, "op called with a bad body");
}

Test(http, restore_body)
{
	struct reply r = put("/api/v1/vm.restore", "{\"source_url\": \"file:///s\", \"resume\": true, \"prefault\": false}");

	cr_expect_eq(r.status, 204);
	cr_expect_str_eq(fake.url, "file:///s");
	cr_expect(fake.resume);
	r = put("/api/v1/vm.restore", "{\"source_url\": \"file:///t\"}");
	cr_expect_eq(r.status, 204);
	cr_expect(!fake.resume);
	r = put("/api/v1/vm.restore", "{\"source_url\": \"file:///t\", \"resume\": \"yes\"}");
	cr_expect_eq(r.status, 400);
	expect_error_body(&r, "resume");
	r = put("/api/v1/vm.restore", "{\"resume\": true}");
	cr_expect_eq(r.status, 400);
	expect_error_body(&r, "source_url");

	/* As CH documents: restoring over an existing VM is 404. */
	fake.result = -EEXIST;
	fake.message = "a VM exists";
	r = put("/api/v1/vm.restore", "{\"source_url\": \"file:///t\"}");
	cr_expect_eq(r.status, 404);
	expect_error_body(&r, "a VM exists");
}

Test(http, deep_json_is_refused)
{
	char body[256];
	size_t n = 0;

	n += (size_t)snprintf(body + n, sizeof(body) - n, "{\"destination_url\":");
	for (int i = 0; i < 40; i++)
		body[n++] = '[';
	body[n] = '\0';
	for (int i = 0; i < 40; i++)
		body[n++] = ']';
	body[n++] = '}';
	body[n] = '\0';
	cr_expect_eq(put("/api/v1/vm.snapshot", body).status, 400);
}

Test(http, routing)
{
	struct reply r = get("/api/v1/vm.pause");

	cr_expect_eq(r.status, 405);
	cr_expect_str_eq(r.allow, "PUT");
	expect_error_body(&r, "method not allowed");
	r = put("/api/v1/vm.info", NULL);
	cr_expect_eq(r.status, 405);
	cr_expect_str_eq(r.allow, "GET");
	r = request("POST", "/api/v1/vm.pause", "", 0, false);
	cr_expect_eq(r.status, 405);
	r = get("/api/v1/vm.nope");
	cr_expect_eq(r.status, 404);
	expect_error_body(&r, "not found");
	cr_expect_eq(get("/").status, 404);
	cr_expect_eq(get("/api/v1/vmm.ping/").status, 404);
	cr_expect_eq(fake.calls, 0);
}

Test(http, oversize_bodies)
{
	size_t big = API_BODY_MAX + 1;
	char *body = malloc(big + 1);
	struct reply r;

	cr_assert_not_null(body);
	memset(body, ' ', big);
	body[big] = '\0';
	r = request("PUT", "/api/v1/vm.snapshot", body, (long)big, false);
	cr_expect_eq(r.status, 413, "with Content-Length: %ld", r.status);
	r = request("PUT", "/api/v1/vm.snapshot", body, -1, true);
	cr_expect_eq(r.status, 413, "chunked: %ld", r.status);
	free(body);
	cr_expect_eq(fake.calls, 0);
	expect_alive();
}

Test(http, huge_declared_length)
{
	int fd = raw_connect();
	static const char req[] = "PUT /api/v1/vm.snapshot HTTP/1.1\r\nHost: x\r\n"
				  "Content-Length: 99999999999999999999999\r\n\r\n";
	char buf[2048];

	cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	raw_read_all(fd, buf, sizeof(buf));
	cr_expect(strncmp(buf, "HTTP/1.1 4", 10) == 0, "got '%.40s'", buf);
	close(fd);
	expect_alive();
}

Test(http, garbage_is_survived)
{
	static const char *const junk[] = {
		"\x00\x01\x02\xff\xfe garbage\r\n\r\n",
		"GET\r\n\r\n",
		"GET /api/v1/vmm.ping HTTP/9.9\r\n\r\n",
		"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
		"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
	};
	char buf[2048];

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		int fd = raw_connect();

		(void)!write(fd, junk[i], strlen(junk[i]) + (i == 0 ? 6 : 0));
		raw_read_all(fd, buf, sizeof(buf));
		cr_expect(buf[0] == '\0' || strncmp(buf, "HTTP/1.", 7) == 0, "junk %zu: '%.40s'", i, buf);
		cr_expect(strncmp(buf, "HTTP/1.1 2", 10) != 0, "junk %zu accepted: '%.40s'", i, buf);
		close(fd);
	}
	cr_expect_eq(fake.calls, 0);
	expect_alive();
}

Test(http, oversized_headers)
{
	int fd = raw_connect();
	size_t n = 64 * 1024;
	char *req = malloc(n + 128), buf[2048];
	int len = sprintf(req, "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\nX-Big: ");

	cr_assert_not_null(req);
	memset(req + len, 'a', n);
	memcpy(req + len + n, "\r\n\r\n", 4);
	(void)!send(fd, req, (size_t)len + n + 4, MSG_NOSIGNAL);
	raw_read_all(fd, buf, sizeof(buf));
	cr_expect(buf[0] == '\0' || strncmp(buf, "HTTP/1.1 4", 10) == 0, "got '%.40s'", buf);
	free(req);
	close(fd);
	expect_alive();
}

Test(http, slow_client_does_not_block_others)
{
	int fd = raw_connect();
	static const char partial[] = "PUT /api/v1/vm.snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"dest";

	cr_assert_eq(write(fd, partial, sizeof(partial) - 1), (ssize_t)sizeof(partial) - 1);
	expect_alive();
	close(fd);
}

Test(http, idle_client_is_dropped, .timeout = 60)
{
	int fd = raw_connect();
	char buf[256];
	time_t start = time(NULL);

	(void)!write(fd, "GET /api/v1/vmm.ping HTTP/1.1\r\n", 31);
	raw_read_all(fd, buf, sizeof(buf));
	cr_expect_leq(time(NULL) - start, (time_t)API_HEAD_DEADLINE_S + 5);
	cr_expect(strncmp(buf, "HTTP/1.1 2", 10) != 0);
	close(fd);
}

/* What CH's client does: the status is everything between "HTTP/1.1 " and "\r". */
static long wire_status(const char *resp)
{
	const char *p = strstr(resp, "HTTP/1.1 "), *cr;
	char num[16];
	char *end;
	long v;

	cr_assert_not_null(p, "no status line in '%.60s'", resp);
	p += 9;
	cr = strchr(p, '\r');
	cr_assert_not_null(cr);
	cr_assert_lt((size_t)(cr - p), sizeof(num));
	memcpy(num, p, (size_t)(cr - p));
	num[cr - p] = '\0';
	/* Rust's str::trim then parse: surrounding blanks only */
	v = strtol(num, &end, 10);
	while (*end == ' ')
		end++;
	cr_assert(end != num && *end == '\0', "status '%s' is not a number", num);
	return v;
}

/* Writes each part with its own write(), as CH's client does, and reads the answer. */
static long raw_exchange(const char *const *parts, size_t n, char *buf, size_t cap)
{
	int fd = raw_connect();

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(parts[i]);

		cr_assert_eq(send(fd, parts[i], len, MSG_NOSIGNAL), (ssize_t)len, "part %zu: %s", i, strerror(errno));
		usleep(2000);
	}
	raw_read_all(fd, buf, cap);
	close(fd);
	return buf[0] ? wire_status(buf) : -1;
}

static long raw_request(const char *req, char *buf, size_t cap)
{
	return raw_exchange(&req, 1, buf, cap);
}

static const char *raw_body(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\n");

	return p ? p + 4 : "";
}

static void expect_raw_error(const char *resp, const char *needle)
{
	struct reply r = { 0 };

	snprintf(r.body, sizeof(r.body), "%s", raw_body(resp));
	expect_error_body(&r, needle);
}

Test(http, many_connections_keep_a_slot)
{
	int fds[API_CONNECTION_LIMIT + 16];
	size_t n = sizeof(fds) / sizeof(fds[0]);
	char buf[2048];

	/* More slow clients than slots, each holding a partial request. */
	for (size_t i = 0; i < n; i++) {
		fds[i] = raw_connect();
		(void)!send(fds[i], "GET /api/v1/vmm.ping HTTP/1.1\r\n", 31, MSG_NOSIGNAL);
	}
	/* A newcomer still gets in and is answered. */
	cr_expect_eq(raw_request("GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200,
		     "got '%.40s'", buf);
	expect_alive();
	/* The newest slow client still holds its slot: finishing its request works. */
	(void)!send(fds[n - 1], "Host: x\r\n\r\n", 11, MSG_NOSIGNAL);
	raw_read_all(fds[n - 1], buf, sizeof(buf));
	cr_expect_eq(wire_status(buf), 200);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	expect_alive();
}

Test(http, trickling_cannot_stretch_the_deadline, .timeout = 60)
{
	static const char req[] = "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
	int fd = raw_connect();
	time_t start = time(NULL);
	char buf[1024] = "";
	size_t i;

	/* One byte every 300 ms: the whole head would take 22 s, the deadline is 5 s. */
	for (i = 0; i < sizeof(req) - 1; i++) {
		if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(300 * 1000);
		if (recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT) > 0)
			break;
	}
	cr_expect_lt(i, sizeof(req) - 1, "the whole trickled request was accepted");
	if (!buf[0])
		raw_read_all(fd, buf, sizeof(buf));
	cr_expect_eq(wire_status(buf), 408);
	expect_raw_error(buf, "did not arrive in time");
	cr_expect_lt(time(NULL) - start, (time_t)API_HEAD_DEADLINE_S + 10);
	close(fd);
	expect_alive();
}

Test(http, wire_as_ch_remote_writes_it)
{
	static const char *const put204[] = {
		"PUT /api/v1/vm.snapshot HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n",
		"Content-Length: 37\r\n", "\r\n", "{\"destination_url\":\"file:///tmp/s1\"}\n",
	};
	static const char *const get200[] = {
		"GET /api/v1/vm.info HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n", "\r\n",
	};
	char buf[4096];

	cr_expect_eq(raw_exchange(put204, 4, buf, sizeof(buf)), 204);
	cr_expect(strncmp(buf, "HTTP/1.1 204 \r\n", 15) == 0, "got '%.40s'", buf);
	cr_expect_null(strstr(buf, "Content-Length"), "204 with a Content-Length");
	cr_expect_str_eq(fake.url, "file:///tmp/s1");
	cr_expect_eq(raw_exchange(get200, 2, buf, sizeof(buf)), 200);
	cr_expect(strncmp(buf, "HTTP/1.1 200 \r\n", 15) == 0, "got '%.40s'", buf);
	cr_expect_not_null(strstr(buf, "\r\nContent-Length: "), "CH's client needs Content-Length");
	cr_expect_not_null(strstr(raw_body(buf), "\"state\":\"Running\""), "%s", buf);
}

Test(http, body_to_unserved_path_is_read_first)
{
	size_t big = 200 * 1024;
	char *req = malloc(big + 256), buf[4096];
	int fd = raw_connect(), len;
	ssize_t sent = 0;

	cr_assert_not_null(req);
	len = sprintf(req, "PUT /api/v1/vm.add-disk HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", big);
	memset(req + len, 'a', big);
	memcpy(req + len, "{\"path\":\"", 9);
	memcpy(req + len + big - 2, "\"}", 2);
	/* The whole body goes through: no answer and close before it is read. */
	while (sent < len + (ssize_t)big) {
		ssize_t n = send(fd, req + sent, (size_t)(len + (ssize_t)big - sent), MSG_NOSIGNAL);

		cr_assert_gt(n, 0, "send: %s", strerror(errno));
		sent += n;
	}
	raw_read_all(fd, buf, sizeof(buf));
	close(fd);
	free(req);
	cr_expect_eq(wire_status(buf), 500);
	expect_raw_error(buf, "not implemented");
}

Test(http, strict_framing)
{
	static const struct { const char *req, *needle; long status; } cases[] = {
		{ "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
		  "more than one Content-Length", 400 },
		{ "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Content-Length and Transfer-Encoding", 400 },
		{ "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nX-A: b\r\n  folded\r\n\r\n", "obs-fold", 400 },
		{ "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
		  "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\n\r\n", "data after the end", 400 },
		{ "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "Content-Length", 400 },
		{ "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 1,1\r\n\r\nx", "Content-Length", 400 },
		{ "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "chunked", 400 },
		{ "GET /api/v1/vmm.ping HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.0 and HTTP/1.1", 505 },
		{ "GET /api/v1/vmm.ping HTTX/1.1\r\nHost: x\r\n\r\n", "HTTP version", 400 },
		{ "GET /api/v1/vmm.ping HTTP/1.1\nHost: x\n\n", "LF without CR", 400 },
		{ "GET /api/v1/vmm.ping HTTP/1.1\r\n\r\n", "Host", 400 },
		{ "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "Host", 400 },
		{ "GET /api/v1/vmm.ping HTTP/1.1\r\nHost : x\r\n\r\n", "header name", 400 },
		{ "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", "Expect", 417 },
		{ "GET http://x/api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\n\r\n", "absolute path", 400 },
		{ "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		  "too large", 413 },
	};
	char buf[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long st = raw_request(cases[i].req, buf, sizeof(buf));

		cr_expect_eq(st, cases[i].status, "case %zu: %ld", i, st);
		expect_raw_error(buf, cases[i].needle);
	}
	cr_expect_eq(fake.calls, 0);
	expect_alive();
}

Test(http, nul_in_request_line_answers_json)
{
	static const char req[] = "GET /api/v1/vm\0.info HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[2048];
	int fd = raw_connect();

	cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	raw_read_all(fd, buf, sizeof(buf));
	close(fd);
	cr_expect_eq(wire_status(buf), 400);
	expect_raw_error(buf, "NUL byte");
}

Test(http, chunked_body)
{
	static const char req[] = "PUT /api/v1/vm.snapshot HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "10\r\n{\"destination_ur\r\n14;ext=1\r\nl\":\"file:///tmp/ch\"}\r\n0\r\n\r\n";
	char buf[2048];

	cr_expect_eq(raw_request(req, buf, sizeof(buf)), 204, "%s", buf);
	cr_expect_str_eq(fake.url, "file:///tmp/ch");
}

Test(http, expect_100_continue)
{
	static const char head[] = "PUT /api/v1/vm.snapshot HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
				   "Content-Length: 35\r\n\r\n";
	static const char body[] = "{\"destination_url\":\"file:///tmp/e\"}";
	char buf[2048];
	int fd = raw_connect();
	ssize_t n;

	cr_assert_eq(write(fd, head, sizeof(head) - 1), (ssize_t)sizeof(head) - 1);
	n = read(fd, buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_expect_str_eq(buf, "HTTP/1.1 100 \r\n\r\n");
	cr_assert_eq(write(fd, body, sizeof(body) - 1), (ssize_t)sizeof(body) - 1);
	raw_read_all(fd, buf, sizeof(buf));
	close(fd);
	cr_expect_eq(wire_status(buf), 204, "%s", buf);
	cr_expect_str_eq(fake.url, "file:///tmp/e");
}

Test(http, long_op_does_not_block_the_server)
{
	char buf[2048];
	int fd;

	cr_assert_eq(pipe(gate), 0);
	fd = raw_connect();
	cr_assert_eq(write(fd, "PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\n\r\n", 42), 42);
	while (!__atomic_load_n(&fake.blocked, __ATOMIC_ACQUIRE))
		usleep(1000);
	/* The pause is stuck in its op: the server still answers. */
	expect_alive();
	cr_expect_eq(get("/api/v1/vm.info").status, 200);
	/* Counters wait on the device processes: they queue behind the op like the rest. */
	cr_expect_eq(get("/api/v1/vm.counters").status, 409);
	{
		struct reply r = put("/api/v1/vm.resume", NULL);

		cr_expect_eq(r.status, 409);
		expect_error_body(&r, "vm.pause is in progress");
	}
	cr_expect_eq(put("/api/v1/vm.snapshot", "{\"destination_url\": 1}").status, 400,
		     "a bad body is refused at once, even during an op");
	cr_assert_eq(write(gate[1], "x", 1), 1);
	raw_read_all(fd, buf, sizeof(buf));
	close(fd);
	cr_expect_eq(wire_status(buf), 204);
	close(gate[0]);
	close(gate[1]);
	gate[0] = gate[1] = -1;
	cr_expect_eq(put("/api/v1/vm.resume", NULL).status, 204);
}

Test(http, new_lifecycle_paths)
{
	static const struct { const char *path, *op; } cases[] = {
		{ "/api/v1/vm.boot", "boot" },
		{ "/api/v1/vm.delete", "delete_vm" },
		{ "/api/v1/vm.reboot", "reboot" },
		{ "/api/v1/vm.power-button", "power_button" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reply r = put(cases[i].path, NULL);

		cr_expect_eq(r.status, 204, "%s: %ld", cases[i].path, r.status);
		cr_expect_str_eq(fake.last_op, cases[i].op);
	}
	/* As CH: these take no body. */
	cr_expect_eq(put("/api/v1/vm.boot", "{}").status, 400);
	fake.result = -EOPNOTSUPP;
	fake.message = "this machine has no power button";
	{
		struct reply r = put("/api/v1/vm.power-button", NULL);

		cr_expect_eq(r.status, 400);
		expect_error_body(&r, "no power button");
	}
}

Test(http, create)
{
	struct reply r = put("/api/v1/vm.create", "{\"cpus\": {\"boot_vcpus\": 3, \"max_vcpus\": 3},"
				 " \"payload\": {\"kernel\": \"/k\"}}");

	cr_expect_eq(r.status, 204);
	cr_expect_str_eq(fake.last_op, "create");
	cr_expect_eq(fake.cpus, 3);
	cr_expect_eq(put("/api/v1/vm.create", NULL).status, 400);
	cr_expect_eq(put("/api/v1/vm.create", "[]").status, 400);
	fake.result = -EINVAL;
	fake.message = "a million vCPUs is too many";
	r = put("/api/v1/vm.create", "{\"cpus\": {\"boot_vcpus\": 1000000}}");
	cr_expect_eq(r.status, 400);
	expect_error_body(&r, "a million vCPUs");
	fake.result = -EEXIST;
	cr_expect_eq(put("/api/v1/vm.create", "{}").status, 409);
}

Test(http, counters)
{
	struct reply r = get("/api/v1/vm.counters");
	struct json_object *o = json_tokener_parse(r.body), *d, *v;

	cr_assert_eq(r.status, 200);
	cr_assert_not_null(o);
	cr_expect(json_object_object_get_ex(o, "disk0", &d) && json_object_object_get_ex(d, "read_bytes", &v) &&
		  json_object_get_int64(v) == 4096, "%s", r.body);
	json_object_put(o);
	fake.result = -ENOENT;
	cr_expect_eq(get("/api/v1/vm.counters").status, 404);
	cr_expect_eq(put("/api/v1/vm.counters", NULL).status, 405);
}

/* Every path of CH's openapi: none answers 404 while a VM exists. */
static const char *const ch_paths[] = {
	"vmm.ping", "vmm.shutdown", "vm.info", "vm.counters", "vm.create", "vm.delete", "vm.boot",
	"vm.pause", "vm.resume", "vm.shutdown", "vm.reboot", "vm.power-button", "vm.resize",
	"vm.resize-disk", "vm.resize-zone", "vm.add-device", "vm.remove-device", "vm.add-disk",
	"vm.add-fs", "vm.add-generic-vhost-user", "vm.add-pmem", "vm.add-net", "vm.add-vsock",
	"vm.add-vdpa", "vm.add-user-device", "vm.snapshot", "vm.coredump", "vm.nmi", "vm.restore",
	"vm.receive-migration", "vm.send-migration",
};

Test(http, unserved_paths_answer_500_with_json)
{
	static const char *const unserved[] = {
		"vm.resize", "vm.resize-disk", "vm.resize-zone", "vm.add-device", "vm.remove-device",
		"vm.add-disk", "vm.add-fs", "vm.add-generic-vhost-user", "vm.add-pmem", "vm.add-net",
		"vm.add-vsock", "vm.add-vdpa", "vm.add-user-device", "vm.coredump",
		"vm.receive-migration", "vm.send-migration",
	};
	char path[96];

	for (size_t i = 0; i < sizeof(unserved) / sizeof(unserved[0]); i++) {
		struct reply r;

		snprintf(path, sizeof(path), "/api/v1/%s", unserved[i]);
		r = put(path, "{\"id\": \"x\"}");
		cr_expect_eq(r.status, 500, "%s: %ld", path, r.status);
		expect_error_body(&r, "not implemented");
		cr_expect_eq(put(path, NULL).status, 400, "%s without a body", path);
		cr_expect_eq(put(path, "{").status, 400, "%s with bad JSON", path);
	}
	{
		struct reply r = put("/api/v1/vm.nmi", NULL);

		cr_expect_eq(r.status, 500);
		expect_error_body(&r, "not implemented");
	}
	cr_expect_eq(fake.calls, 0);
}

Test(http, no_ch_path_is_404_with_a_vm)
{
	char path[96];

	for (size_t i = 0; i < sizeof(ch_paths) / sizeof(ch_paths[0]); i++) {
		struct reply g, p;

		snprintf(path, sizeof(path), "/api/v1/%s", ch_paths[i]);
		g = get(path);
		p = put(path, "{}");
		cr_expect_neq(g.status, 404, "GET %s", path);
		cr_expect_neq(p.status, 404, "PUT %s", path);
		cr_expect_gt(g.status, 0);
	}
}

Test(http, restore_modes)
{
	struct reply r = put("/api/v1/vm.restore", "{\"source_url\": \"file:///s\", \"memory_restore_mode\": \"OnDemand\"}");

	cr_expect_eq(r.status, 204);
	cr_expect_eq(fake.mode, RESTORE_MODE_ON_DEMAND);
	cr_expect(fake.body_is_object);
	r = put("/api/v1/vm.restore", "{\"source_url\": \"file:///s\", \"memory_restore_mode\": \"Copy\", \"prefault\": true}");
	cr_expect_eq(r.status, 204);
	cr_expect_eq(fake.mode, RESTORE_MODE_COPY);
	cr_expect(fake.prefault);
	/* Not named: the default (OnDemand where it can be); prefault alone means Copy. */
	r = put("/api/v1/vm.restore", "{\"source_url\": \"file:///s\"}");
	cr_expect_eq(r.status, 204);
	cr_expect_eq(fake.mode, RESTORE_MODE_DEFAULT);
	r = put("/api/v1/vm.restore", "{\"source_url\": \"file:///s\", \"prefault\": true}");
	cr_expect_eq(r.status, 204);
	cr_expect_eq(fake.mode, RESTORE_MODE_COPY);

	fake.calls = 0;
	static const struct { const char *body, *needle; } bad[] = {
		{ "{\"source_url\": \"file:///s\", \"memory_restore_mode\": \"copy\"}", "memory_restore_mode" },
		{ "{\"source_url\": \"file:///s\", \"memory_restore_mode\": \"Lazy\"}", "memory_restore_mode" },
		{ "{\"source_url\": \"file:///s\", \"memory_restore_mode\": 1}", "memory_restore_mode" },
		{ "{\"source_url\": \"file:///s\", \"memory_restore_mode\": \"OnDemand\", \"prefault\": true}",
		  "prefault" },
		{ "{\"source_url\": \"file:///s\", \"surprise\": 1}", "unknown key 'surprise'" },
		{ "{\"source_url\": \"file:///s\", \"vfio_fds\": [{\"id\": \"v\"}]}", "no VFIO devices" },
		{ "{\"source_url\": \"file:///s\", \"iommufd_fd\": 3}", "no VFIO devices" },
		{ "{\"source_url\": \"file:///s\", \"zone_updates\": [{}]}", "no memory zones" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = put("/api/v1/vm.restore", bad[i].body);
		cr_expect_eq(r.status, 400, "%s: %ld", bad[i].body, r.status);
		expect_error_body(&r, bad[i].needle);
	}
	cr_expect_eq(fake.calls, 0);
	r = put("/api/v1/vm.snapshot", "{\"destination_url\": \"file:///s\", \"disks\": \"all\"}");
	cr_expect_eq(r.status, 400);
	expect_error_body(&r, "'disks' must be \"checkpoint\"");
	/* A server whose ops cannot checkpoint disks says so. */
	r = put("/api/v1/vm.snapshot", "{\"destination_url\": \"file:///s\", \"disks\": \"checkpoint\"}");
	cr_expect_eq(r.status, 400);
	expect_error_body(&r, "disk checkpoints are not available here");
	cr_expect_eq(fake.calls, 0);
}

Test(http, error_bodies_are_ascii)
{
	fake.result = -EIO;
	fake.message = "caf\xc3\xa9 \xf0\x9f\x98\x80 \xff broken";
	struct reply r = put("/api/v1/vm.pause", NULL);

	cr_expect_eq(r.status, 500);
	for (size_t i = 0; i < r.len; i++)
		cr_assert_lt((unsigned char)r.body[i], 0x80, "byte %zu of '%s'", i, r.body);
	cr_expect_not_null(strstr(r.body, "caf\\u00e9 \\ud83d\\ude00 \\ufffd broken"), "%s", r.body);
	expect_error_body(&r, "caf\xc3\xa9");
}

Test(http, out_of_fds_then_recovers)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit old, tight;
	char buf[2048];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), lowest;

	cr_assert_geq(fd, 0);
	lowest = dup(0);
	cr_assert_geq(lowest, 0);
	close(lowest);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* No new descriptor can be made in this process: the server cannot accept. */
	tight = (struct rlimit){ .rlim_cur = (rlim_t)lowest, .rlim_max = old.rlim_max };
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &tight), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
	usleep(300 * 1000);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	/* Once descriptors are there again, the waiting client is served. */
	{
		struct timeval tv = { .tv_sec = 20 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	cr_assert_eq(write(fd, "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\n\r\n", 42), 42);
	raw_read_all(fd, buf, sizeof(buf));
	close(fd);
	cr_expect_eq(wire_status(buf), 200, "%s", buf);
}

/* ---- other ops tables ---- */

static const struct api_ops no_ops = { 0 };

static void with_server(const struct api_ops *ops, void (*body)(void))
{
	struct api_server *s = NULL;

	api_server_stop(server);
	server = NULL;
	cr_assert_eq(api_server_start(sock_path, ops, NULL, &s), 0);
	body();
	api_server_stop(s);
}

static void no_ops_checks(void)
{
	char path[96];

	for (size_t i = 0; i < sizeof(ch_paths) / sizeof(ch_paths[0]); i++) {
		struct reply r;

		snprintf(path, sizeof(path), "/api/v1/%s", ch_paths[i]);
		r = strcmp(ch_paths[i], "vmm.ping") == 0 || strcmp(ch_paths[i], "vm.info") == 0 ||
		    strcmp(ch_paths[i], "vm.counters") == 0 ? get(path) : put(path, "{\"source_url\": \"file:///x\", \"destination_url\": \"file:///x\"}");
		if (strcmp(ch_paths[i], "vmm.ping") == 0) {
			cr_expect_eq(r.status, 200);
			continue;
		}
		cr_expect(r.status == 500 || r.status == 400, "%s: %ld", path, r.status);
		expect_error_body(&r, "");
	}
}

Test(http, null_ops_are_500_not_404)
{
	with_server(&no_ops, no_ops_checks);
}

/* ---- start/stop without the fixture ---- */

static char lone_dir[64];

static void lone_path(char *path, size_t len, const char *name)
{
	snprintf(lone_dir, sizeof(lone_dir), "/tmp/cloister-http-XXXXXX");
	cr_assert_not_null(mkdtemp(lone_dir));
	snprintf(path, len, "%s/%s", lone_dir, name);
}

Test(http_start, replaces_stale_socket_and_unlinks_on_stop)
{
	char path[96];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct api_server *s = NULL;
	int fd;

	lone_path(path, sizeof(path), "stale.sock");
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);	/* bound, never listening: stale */
	cr_assert_eq(api_server_start(path, &fake_ops, NULL, &s), 0);
	api_server_stop(s);
	cr_expect_neq(access(path, F_OK), 0, "socket left behind");
	rmdir(lone_dir);
}

Test(http_start, refuses_live_socket_and_files)
{
	char path[128];
	struct api_server *a = NULL, *b = (struct api_server *)0x1;
	int fd;

	lone_path(path, sizeof(path), "live.sock");
	cr_assert_eq(api_server_start(path, &fake_ops, NULL, &a), 0);
	cr_expect_eq(api_server_start(path, &fake_ops, NULL, &b), -EADDRINUSE);
	cr_expect_eq(b, (struct api_server *)0x1, "ret written on failure");
	api_server_stop(a);

	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_expect_eq(api_server_start(path, &fake_ops, NULL, &b), -EEXIST);
	cr_expect_eq(access(path, F_OK), 0, "a regular file was removed");
	unlink(path);
	rmdir(lone_dir);
}

Test(http_start, refuses_overlong_path)
{
	char path[200];
	struct api_server *s = NULL;

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	cr_expect_eq(api_server_start(path, &fake_ops, NULL, &s), -ENAMETOOLONG);
	cr_expect_null(s);
}

Test(http_status, mapping)
{
	cr_expect_eq(http_status_for_error(0), 204);
	cr_expect_eq(http_status_for_error(-ENOENT), 404);
	cr_expect_eq(http_status_for_error(-EINVAL), 405);
	cr_expect_eq(http_status_for_error(-EEXIST), 409);
	cr_expect_eq(http_status_for_error(-EBUSY), 409);
	cr_expect_eq(http_status_for_error(-EBADMSG), 400);
	cr_expect_eq(http_status_for_error(-ENOMEM), 500);
	cr_expect_eq(http_status_for_error(-12345), 500);
}

Test(http_body, parsers_leave_outputs_alone_on_error)
{
	char *url = (char *)"untouched", err[128];
	bool resume = true;

	cr_expect_eq(api_parse_snapshot_body("{\"destination_url\":1}", 21, &url, err, sizeof(err)), -EINVAL);
	cr_expect_str_eq(url, "untouched");
	cr_expect_eq(api_parse_restore_body("{\"source_url\":\"file:///x\",\"resume\":1}", 37, &url, &resume,
					    err, sizeof(err)), -EINVAL);
	cr_expect_str_eq(url, "untouched");
	cr_expect(resume);
	/* Length is what counts, not a terminator. */
	cr_expect_eq(api_parse_snapshot_body("{\"destination_url\":\"file:///x\"}", 10, &url, err, sizeof(err)),
		     -EINVAL);
	cr_expect(strstr(err, "truncated"), "%s", err);
	cr_assert_eq(api_parse_snapshot_body("{\"destination_url\":\"file:///x\"}  \n", 34, &url, err,
					     sizeof(err)), 0);
	cr_expect_str_eq(url, "file:///x");
	free(url);
}
