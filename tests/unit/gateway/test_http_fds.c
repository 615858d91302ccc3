/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File descriptors sent with API requests (SCM_RIGHTS): vm.restore's
 * "net_fds" takes taps, everything else is refused with a 400, and no
 * descriptor stays open in the server after the request.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "http.h"
#include "http_routes.h"

/* ---- a restore op that records what it got ---- */

static struct {
	int calls;
	size_t n_net_fds;
	char id[TAP_FD_ID_MAX], ifname[TAP_FD_IFNAME_MAX], seen_ifname[IFNAMSIZ];
	bool fd_open;
} seen;

static int fake_restore(void *opaque, const struct api_restore_request *req, char *err,
			size_t errlen)
{
	struct ifreq ifr = { 0 };

	seen.calls++;
	seen.n_net_fds = req->n_net_fds;
	if (req->n_net_fds) {
		snprintf(seen.id, sizeof(seen.id), "%s", req->net_fds[0].id);
		snprintf(seen.ifname, sizeof(seen.ifname), "%s", req->net_fds[0].ifname);
		seen.fd_open = ioctl(req->net_fds[0].fd, TUNGETIFF, &ifr) == 0;
		snprintf(seen.seen_ifname, sizeof(seen.seen_ifname), "%s", ifr.ifr_name);
	}
	return 0;
}

static int fake_info(void *opaque, struct json_object **ret, char *err, size_t errlen)
{
	*ret = json_object_new_object();
	return 0;
}

static const struct api_ops ops = { .info = fake_info, .restore_request = fake_restore };
static struct api_server *server;
static char dir[64], sock_path[96];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/cloister-httpfds-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/api.sock", dir);
	memset(&seen, 0, sizeof(seen));
	cr_assert_eq(api_server_start(sock_path, &ops, NULL, &server), 0);
}

static void teardown(void)
{
	api_server_stop(server);
	rmdir(dir);
}

TestSuite(http_fds, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ---- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/*
 * How many descriptors the process holds, once the server has let go of the
 * connections it answered (it reads each until the client's EOF): waits for
 * the count to come down to want, for at most 5 s, and returns it.
 */
static int open_fds_settled(int want)
{
	int n = count_fds();

	for (int i = 0; i < 500 && n > want; i++) {
		usleep(10000);
		n = count_fds();
	}
	return n;
}

static int open_fds(void)
{
	return count_fds();
}

static const char *tap_name(const char *prefix)
{
	static char name[IFNAMSIZ];

	snprintf(name, sizeof(name), "%s%d", prefix, (int)getpid() % 1000000);
	return name;
}

/* A tap of our own (IFF_TAP | IFF_NO_PI plus extra), or -1 when this host cannot make one. */
static int make_tap(const char *name, short extra)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | extra };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	/* The process id keeps two runs of this test (two worktrees) apart. */
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s%d", name, (int)getpid() % 1000000);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_api(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_with_fds(int sock, const char *data, size_t len, const int *fds, size_t n)
{
	char control[CMSG_SPACE(64 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n) {
		struct cmsghdr *cm;

		msg.msg_control = control;
		msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	}
	cr_assert_eq(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len, "sendmsg: %s", strerror(errno));
}

struct reply {
	int status;
	char text[4096];
};

static struct reply read_reply(int sock)
{
	struct reply r = { 0 };
	size_t len = 0;
	ssize_t n;

	while (len < sizeof(r.text) - 1 && (n = read(sock, r.text + len, sizeof(r.text) - 1 - len)) > 0)
		len += (size_t)n;
	r.text[len] = '\0';
	sscanf(r.text, "HTTP/1.1 %d", &r.status);
	close(sock);
	return r;
}

/*
 * One request; fds go with the head (as ch-remote sends them) unless
 * fds_with_body, when the head goes alone and the body carries them.
 */
static struct reply request(const char *method, const char *path, const char *body,
			    const int *fds, size_t n, bool fds_with_body)
{
	char head[512];
	int sock = connect_api();

	snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n",
		 method, path, body ? strlen(body) : 0);
	send_with_fds(sock, head, strlen(head), fds_with_body ? NULL : fds, fds_with_body ? 0 : n);
	if (body && *body)
		send_with_fds(sock, body, strlen(body), fds_with_body ? fds : NULL, fds_with_body ? n : 0);
	return read_reply(sock);
}

static const char restore_one[] =
	"{\"source_url\":\"file:///snap\",\"net_fds\":[{\"id\":\"net0\",\"num_fds\":1,\"fds\":null}]}";

static void expect_refused(const struct reply *r, int status, const char *needle)
{
	cr_expect_eq(r->status, status, "status %d: %s", r->status, r->text);
	cr_expect(strstr(r->text, needle), "'%s' lacks '%s'", r->text, needle);
}

/* ---- tests ---- */

Test(http_fds, a_tap_reaches_the_restore)
{
	int tap = make_tap("cf0", IFF_VNET_HDR), before;
	struct reply r;

	if (tap < 0)
		cr_skip_test("cannot make a tap here (needs CAP_NET_ADMIN and /dev/net/tun)");
	before = open_fds();
	r = request("PUT", "/api/v1/vm.restore", restore_one, &tap, 1, false);
	cr_assert_eq(r.status, 204, "%s", r.text);
	cr_expect_eq(seen.calls, 1);
	cr_expect_eq(seen.n_net_fds, 1);
	cr_expect_str_eq(seen.id, "net0");
	cr_expect_str_eq(seen.ifname, tap_name("cf0"));
	cr_expect(seen.fd_open, "the op got no usable descriptor");
	cr_expect_str_eq(seen.seen_ifname, tap_name("cf0"));
	cr_expect_eq(open_fds_settled(before), before, "the server kept a descriptor");
	close(tap);
}

Test(http_fds, a_tap_sent_with_the_body_counts_too)
{
	int tap = make_tap("cf1", IFF_VNET_HDR), before;
	struct reply r;

	if (tap < 0)
		cr_skip_test("cannot make a tap here (needs CAP_NET_ADMIN and /dev/net/tun)");
	before = open_fds();
	r = request("PUT", "/api/v1/vm.restore", restore_one, &tap, 1, true);
	cr_assert_eq(r.status, 204, "%s", r.text);
	cr_expect_str_eq(seen.ifname, tap_name("cf1"));
	cr_expect_eq(open_fds_settled(before), before);
	close(tap);
}

Test(http_fds, a_tap_without_a_vnet_header_is_refused)
{
	int tap = make_tap("cf2", 0), before;
	struct reply r;

	if (tap < 0)
		cr_skip_test("cannot make a tap here (needs CAP_NET_ADMIN and /dev/net/tun)");
	before = open_fds();
	r = request("PUT", "/api/v1/vm.restore", restore_one, &tap, 1, false);
	expect_refused(&r, 400, "IFF_VNET_HDR");
	cr_expect_eq(seen.calls, 0);
	cr_expect_eq(open_fds_settled(before), before);
	close(tap);
}

Test(http_fds, descriptors_that_are_not_taps_are_refused)
{
	int sv[2], pipefd[2], fds[6], before;
	const char *needles[] = { "regular file", "directory", "socket", "pipe", "character device",
				  "not attached" };

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
	fds[0] = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	fds[1] = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fds[2] = sv[0];
	fds[3] = pipefd[0];
	fds[4] = open("/dev/null", O_RDWR | O_CLOEXEC);
	fds[5] = open("/dev/net/tun", O_RDWR | O_CLOEXEC);	/* never attached */
	before = open_fds();
	for (size_t i = 0; i < 6; i++) {
		struct reply r;

		if (fds[i] < 0)
			continue;
		r = request("PUT", "/api/v1/vm.restore", restore_one, &fds[i], 1, false);
		expect_refused(&r, 400, needles[i]);
		cr_expect_eq(open_fds_settled(before), before, "descriptor %zu stayed open in the server", i);
	}
	cr_expect_eq(seen.calls, 0);
	for (size_t i = 0; i < 6; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	close(sv[1]);
	close(pipefd[1]);
}

Test(http_fds, counts_must_match)
{
	int fds[2] = { open("/dev/null", O_RDONLY | O_CLOEXEC), open("/dev/null", O_RDONLY | O_CLOEXEC) };
	int before = open_fds();
	struct reply r;

	r = request("PUT", "/api/v1/vm.restore", restore_one, fds, 2, false);
	expect_refused(&r, 400, "2 file descriptors came with the request; 'net_fds' asks for 1");
	r = request("PUT", "/api/v1/vm.restore", "{\"source_url\":\"file:///snap\"}", fds, 1, false);
	expect_refused(&r, 400, "1 file descriptor came with the request; 'net_fds' asks for 0");
	r = request("PUT", "/api/v1/vm.restore", restore_one, NULL, 0, false);
	expect_refused(&r, 400, "0 file descriptors came with the request; 'net_fds' asks for 1");
	cr_expect_eq(open_fds_settled(before), before);
	cr_expect_eq(seen.calls, 0);
	close(fds[0]);
	close(fds[1]);
}

Test(http_fds, other_requests_take_none)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), before = open_fds();
	struct reply r;

	r = request("GET", "/api/v1/vmm.ping", NULL, &fd, 1, false);
	expect_refused(&r, 400, "takes no file descriptors");
	r = request("GET", "/api/v1/vm.info", NULL, &fd, 1, false);
	expect_refused(&r, 400, "takes no file descriptors");
	r = request("PUT", "/api/v1/vm.pause", NULL, &fd, 1, false);
	expect_refused(&r, 400, "takes no file descriptors");
	r = request("PUT", "/api/v1/vm.nosuch", NULL, &fd, 1, false);
	cr_expect_eq(r.status, 404);
	/* A request the parser refuses holds no descriptor either. */
	{
		int sock = connect_api();

		send_with_fds(sock, "BOGUS\r\n\r\n", 9, &fd, 1);
		r = read_reply(sock);
		cr_expect_eq(r.status, 400, "%s", r.text);
	}
	cr_expect_eq(open_fds_settled(before), before);
	/* The server is still there. */
	r = request("GET", "/api/v1/vmm.ping", NULL, NULL, 0, false);
	cr_expect_eq(r.status, 200);
	close(fd);
}

Test(http_fds, too_many_descriptors)
{
	int fds[API_REQUEST_FDS_MAX * 3], before;
	struct reply r;

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		cr_assert_geq(fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
	before = open_fds();
	/* In one message: more than the server's control buffer holds. */
	r = request("PUT", "/api/v1/vm.restore", restore_one, fds, API_REQUEST_FDS_MAX * 3, false);
	expect_refused(&r, 400, "more than 8 file descriptors");
	cr_expect_eq(open_fds_settled(before), before);
	/* Spread over the head and the body: each fits, together they do not. */
	{
		char head[256];
		int sock = connect_api();

		snprintf(head, sizeof(head), "PUT /api/v1/vm.restore HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
			 strlen(restore_one));
		send_with_fds(sock, head, strlen(head), fds, API_REQUEST_FDS_MAX);
		send_with_fds(sock, restore_one, strlen(restore_one), fds + API_REQUEST_FDS_MAX, 2);
		r = read_reply(sock);
		expect_refused(&r, 400, "more than 8 file descriptors");
	}
	cr_expect_eq(open_fds_settled(before), before);
	cr_expect_eq(seen.calls, 0);
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		close(fds[i]);
}

Test(http_fds, multiqueue_is_refused)
{
	int fds[2] = { open("/dev/null", O_RDONLY | O_CLOEXEC), open("/dev/null", O_RDONLY | O_CLOEXEC) };
	int before = open_fds();
	struct reply r;

	r = request("PUT", "/api/v1/vm.restore",
		    "{\"source_url\":\"file:///snap\",\"net_fds\":[{\"id\":\"net0\",\"num_fds\":2}]}",
		    fds, 2, false);
	expect_refused(&r, 400, "one queue pair");
	cr_expect_eq(open_fds_settled(before), before);
	close(fds[0]);
	close(fds[1]);
}

/* ---- the body's "net_fds" on its own ---- */

static int parse(const char *body, struct api_restore_request *req, char *err, size_t errlen)
{
	return api_parse_restore_request(body, strlen(body), req, err, errlen);
}

Test(restore_net_fds, forms_ch_sends_are_taken)
{
	const char *ok[] = {
		"{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"net0\",\"num_fds\":1,\"fds\":null}]}",
		"{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"net0\",\"num_fds\":1}]}",
		"{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"net0\",\"fds\":[3]}]}",
		"{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"a\",\"num_fds\":1},"
		"{\"id\":\"b\",\"num_fds\":1,\"fds\":[-1]}]}",
		"{\"source_url\":\"file:///s\",\"net_fds\":null}",
		/* All of RestoreConfig, as ch-remote serializes it. */
		"{\"source_url\":\"file:///s\",\"prefault\":false,\"memory_restore_mode\":\"Copy\","
		"\"net_fds\":[{\"id\":\"net0\",\"num_fds\":1,\"fds\":null}],\"vfio_fds\":null,"
		"\"iommufd_fd\":null,\"resume\":false,\"zone_updates\":[]}",
	};
	const size_t want[] = { 1, 1, 1, 2, 0, 1 };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct api_restore_request req;
		char err[256] = "";

		cr_assert_eq(parse(ok[i], &req, err, sizeof(err)), 0, "%s: %s", ok[i], err);
		cr_expect_eq(req.n_net_fds, want[i], "%s", ok[i]);
		for (size_t j = 0; j < req.n_net_fds; j++)
			cr_expect_eq(req.net_fds[j].fd, -1);
		api_restore_request_release(&req);
	}
}

Test(restore_net_fds, bad_forms_are_refused)
{
	const char *bad[][2] = {
		{ "{\"source_url\":\"file:///s\",\"net_fds\":{}}", "must be an array" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[3]}", "must be an object" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"num_fds\":1}]}", "device id" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"../x\",\"num_fds\":1}]}", "device id" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"n\",\"num_fds\":0}]}", "must be 1" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"n\"}]}", "must be 1" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"n\",\"num_fds\":-1}]}", "must be 1" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"n\",\"num_fds\":\"1\"}]}", "integer" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"n\",\"num_fds\":1,\"fds\":[1,2]}]}",
		  "differ" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"n\",\"num_fds\":1,\"x\":1}]}",
		  "unknown key" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"n\",\"num_fds\":1},"
		  "{\"id\":\"n\",\"num_fds\":1}]}", "named twice" },
		{ "{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"a\",\"num_fds\":1},{\"id\":\"b\","
		  "\"num_fds\":1},{\"id\":\"c\",\"num_fds\":1},{\"id\":\"d\",\"num_fds\":1},{\"id\":\"e\","
		  "\"num_fds\":1}]}", "at most 4" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct api_restore_request req;
		char err[256] = "";

		cr_expect_eq(parse(bad[i][0], &req, err, sizeof(err)), -EINVAL, "%s", bad[i][0]);
		cr_expect(strstr(err, bad[i][1]), "%s: '%s' lacks '%s'", bad[i][0], err, bad[i][1]);
	}
}

Test(restore_net_fds, attach_takes_every_descriptor)
{
	struct api_restore_request req;
	char err[256] = "";
	int fds[2];
	struct stat st;

	cr_assert_eq(parse("{\"source_url\":\"file:///s\",\"net_fds\":[{\"id\":\"n\",\"num_fds\":1}]}",
			   &req, err, sizeof(err)), 0);
	fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fds[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	{
		int keep[2] = { fds[0], fds[1] };

		cr_expect_eq(api_restore_attach_fds(&req, fds, 2, err, sizeof(err)), -EINVAL);
		cr_expect_eq(fds[0], -1);
		cr_expect_eq(fcntl(keep[0], F_GETFD) < 0 && errno == EBADF, true, "not closed");
		cr_expect_eq(fcntl(keep[1], F_GETFD) < 0 && errno == EBADF, true, "not closed");
	}
	cr_expect_eq(req.net_fds[0].fd, -1);
	api_restore_request_release(&req);
	(void)st;
}

/* ---- cloister-remote: net_fds in a restore spec, and sending them ---- */

#include "remote.h"

Test(remote_net_fds, the_spec_as_ch_remote_writes_it)
{
	int a = open("/dev/null", O_RDONLY | O_CLOEXEC), b = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct remote_net_fds n;
	char spec[256], err[256] = "", *rest = NULL;

	snprintf(spec, sizeof(spec), "source_url=file:///s,net_fds=[net0@[%d],net1@%d],resume=true", a, b);
	cr_assert_eq(remote_take_net_fds(spec, &rest, &n, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(rest, "source_url=file:///s,resume=true");
	cr_expect_eq(n.n_dev, 2);
	cr_expect_str_eq(n.dev[0].id, "net0");
	cr_expect_str_eq(n.dev[1].id, "net1");
	cr_expect_eq(n.n_fds, 2);
	cr_expect_eq(n.fds[0], a);
	cr_expect_eq(n.fds[1], b);
	free(rest);

	/* A range, at the end of the spec. */
	snprintf(spec, sizeof(spec), "source_url=file:///s,net_fds=[net0@[%d-%d]]", a < b ? a : b,
		 a < b ? b : a);
	if (abs(a - b) == 1) {
		cr_assert_eq(remote_take_net_fds(spec, &rest, &n, err, sizeof(err)), 0, "%s", err);
		cr_expect_str_eq(rest, "source_url=file:///s");
		cr_expect_eq(n.dev[0].num_fds, 2);
		free(rest);
	}
	/* None named: the spec goes through as it is. */
	cr_assert_eq(remote_take_net_fds("source_url=file:///s", &rest, &n, err, sizeof(err)), 0);
	cr_expect_str_eq(rest, "source_url=file:///s");
	cr_expect_eq(n.n_fds, 0);
	free(rest);
	close(a);
	close(b);
}

Test(remote_net_fds, bad_specs)
{
	const char *bad[] = {
		"source_url=file:///s,net_fds=net0@3", "source_url=file:///s,net_fds=[net0]",
		"source_url=file:///s,net_fds=[@3]", "source_url=file:///s,net_fds=[net0@x]",
		"source_url=file:///s,net_fds=[net0@[1,x]]", "source_url=file:///s,net_fds=[net0@9999]",
		"source_url=file:///s,net_fds=[net0@[0-0]]", "source_url=file:///s,net_fds=[a/b@0]",
		"source_url=file:///s,net_fds=[net0@[0-30]]",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct remote_net_fds n;
		char err[256] = "", *rest = NULL;

		cr_expect_eq(remote_take_net_fds(bad[i], &rest, &n, err, sizeof(err)), -EINVAL, "%s", bad[i]);
		cr_expect(strstr(err, "net_fds"), "%s: '%s'", bad[i], err);
	}
}

Test(http_fds, cloister_remote_sends_the_descriptors)
{
	int tap = make_tap("cf3", IFF_VNET_HDR), before;
	char spec[256], *argv[5], sock_arg[128];
	FILE *out = tmpfile(), *errout = tmpfile();
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	char text[512] = "";

	before = open_fds();
	/* A descriptor that is no tap comes back as the server's 400. */
	snprintf(sock_arg, sizeof(sock_arg), "--api-socket=%s", sock_path);
	snprintf(spec, sizeof(spec), "source_url=file:///snap,net_fds=[net0@%d]", fd);
	argv[0] = "cloister-remote";
	argv[1] = sock_arg;
	argv[2] = "restore";
	argv[3] = spec;
	argv[4] = NULL;
	cr_expect_eq(remote_main(4, argv, out, errout), REMOTE_EXIT_FAILED);
	rewind(errout);
	(void)!fread(text, 1, sizeof(text) - 1, errout);
	cr_expect(strstr(text, "HTTP 400") && strstr(text, "character device"), "%s", text);
	cr_expect_eq(seen.calls, 0);
	if (tap >= 0) {
		snprintf(spec, sizeof(spec), "source_url=file:///snap,net_fds=[net0@[%d]]", tap);
		cr_expect_eq(remote_main(4, argv, out, errout), REMOTE_EXIT_OK);
		cr_expect_eq(seen.calls, 1);
		cr_expect_str_eq(seen.ifname, tap_name("cf3"));
		close(tap);
	}
	cr_expect_eq(open_fds_settled(before - (tap >= 0)), before - (tap >= 0));
	close(fd);
	fclose(out);
	fclose(errout);
}

/* ---- from the request to the NIC ---- */

#include "bindings.h"

Test(tap_binding, net_fds_become_bindings)
{
	struct tap_fd nf[2] = { { .id = "net0", .fd = 7, .ifname = "tapx" },
				{ .id = "net1", .fd = 9, .ifname = "tapy" } };
	struct restore_binds binds = { .n = 0 };
	char err[256] = "";

	cr_assert_eq(bindings_add_net_fds(&binds, nf, 2, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(binds.n, 2);
	cr_expect_str_eq(binds.b[1].id, "net1");
	cr_expect_str_eq(binds.b[1].tap, "tapy");
	cr_expect(binds.b[1].has_tap_fd);
	cr_expect_eq(binds.b[1].tap_fd, 9);
	/* Named in "devices" too, or once more: refused. */
	cr_expect_eq(bindings_add_net_fds(&binds, nf, 1, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "net0 is bound twice"), "%s", err);
	restore_binds_free(&binds);
	/* The borrowed descriptors are not the bindings' to close. */
	cr_expect_eq(binds.n, 0);
}

Test(tap_binding, too_many_bindings)
{
	struct restore_binds binds = { .n = 0 };
	struct tap_fd nf = { .id = "netz", .fd = 5, .ifname = "t" };
	char err[256] = "";

	for (size_t i = 0; i < OPTIONS_MAX_RESTORE_BINDS; i++) {
		binds.b[i].id = strdup("x");
		binds.b[i].id[0] = (char)('a' + i);
		binds.n++;
	}
	cr_expect_eq(bindings_add_net_fds(&binds, &nf, 1, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "at most"), "%s", err);
	restore_binds_free(&binds);
}

Test(tap_binding, the_device_gets_a_prepared_copy)
{
	int tap = make_tap("cf4", IFF_VNET_HDR), null = open("/dev/null", O_RDWR | O_CLOEXEC), copy;
	char err[256] = "";
	int hdr = 0;

	cr_expect_eq(tap_fd_for_device(null, "net net0", err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "not a tap"), "%s", err);
	close(null);
	if (tap < 0)
		cr_skip_test("cannot make a tap here (needs CAP_NET_ADMIN and /dev/net/tun)");
	copy = tap_fd_for_device(tap, "net net0", err, sizeof(err));
	cr_assert_geq(copy, 0, "%s", err);
	cr_expect_neq(copy, tap);
	cr_expect(fcntl(copy, F_GETFL) & O_NONBLOCK);
	cr_expect(fcntl(copy, F_GETFD) & FD_CLOEXEC);
	cr_expect_eq(ioctl(copy, TUNGETVNETHDRSZ, &hdr), 0);
	cr_expect_eq(hdr, 12);
	close(copy);
	close(tap);
}
