/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "remote.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char err[256];

static int build(int argc, const char **argv, struct remote_request *r)
{
	err[0] = '\0';
	return remote_build_request(argc, (char **)argv, r, err, sizeof(err));
}

Test(remote_build, verbs)
{
	static const struct { const char *verb, *method, *path; bool print; } cases[] = {
		{ "ping", "GET", "/api/v1/vmm.ping", true },
		{ "info", "GET", "/api/v1/vm.info", true },
		{ "pause", "PUT", "/api/v1/vm.pause", false },
		{ "resume", "PUT", "/api/v1/vm.resume", false },
		{ "shutdown", "PUT", "/api/v1/vm.shutdown", false },
		{ "shutdown-vmm", "PUT", "/api/v1/vmm.shutdown", false },
		{ "boot", "PUT", "/api/v1/vm.boot", false },
		{ "delete", "PUT", "/api/v1/vm.delete", false },
		{ "reboot", "PUT", "/api/v1/vm.reboot", false },
		{ "power-button", "PUT", "/api/v1/vm.power-button", false },
		{ "counters", "GET", "/api/v1/vm.counters", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[] = { cases[i].verb };
		struct remote_request r;

		cr_assert_eq(build(1, argv, &r), 0, "%s: %s", cases[i].verb, err);
		cr_expect_str_eq(r.method, cases[i].method);
		cr_expect_str_eq(r.path, cases[i].path);
		cr_expect_eq(r.print_body, cases[i].print);
		cr_expect_null(r.body);
		remote_request_free(&r);
	}
}

Test(remote_build, create_sends_the_file_as_json)
{
	char path[] = "/tmp/cloister-remote-XXXXXX";
	const char *argv[] = { "create", path };
	const char *missing[] = { "create", "/nonexistent/vm.json" };
	struct remote_request r;
	int fd = mkstemp(path);

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "{\"payload\": {\"kernel\": \"/k\"}}", 30), 30);
	close(fd);
	cr_assert_eq(build(2, argv, &r), 0, "%s", err);
	cr_expect_str_eq(r.path, "/api/v1/vm.create");
	cr_expect_str_eq(r.method, "PUT");
	cr_expect(strstr(r.body, "\"kernel\""), "%s", r.body);
	remote_request_free(&r);
	cr_assert_eq(write(fd = open(path, O_WRONLY | O_TRUNC), "[1]", 3), 3);
	close(fd);
	cr_expect_eq(build(2, argv, &r), -EINVAL);
	cr_expect(strstr(err, "not"), "%s", err);
	cr_expect_eq(build(2, missing, &r), -EINVAL);
	unlink(path);
}

Test(remote_build, snapshot_and_restore_bodies)
{
	const char *snap[] = { "snapshot", "file:///tmp/snap" };
	const char *rest[] = { "restore", "source_url=file:///tmp/snap,resume=true" };
	struct remote_request r;
	char *url = NULL;
	bool resume = false;
	char perr[128];

	cr_assert_eq(build(2, snap, &r), 0, "%s", err);
	cr_expect_str_eq(r.path, "/api/v1/vm.snapshot");
	/* What the client sends is exactly what the server accepts. */
	cr_assert_eq(api_parse_snapshot_body(r.body, strlen(r.body), &url, perr, sizeof(perr)), 0, "%s", perr);
	cr_expect_str_eq(url, "file:///tmp/snap");
	free(url);
	remote_request_free(&r);

	cr_assert_eq(build(2, rest, &r), 0, "%s", err);
	cr_expect_str_eq(r.path, "/api/v1/vm.restore");
	cr_assert_eq(api_parse_restore_body(r.body, strlen(r.body), &url, &resume, perr, sizeof(perr)), 0);
	cr_expect_str_eq(url, "file:///tmp/snap");
	cr_expect(resume);
	free(url);
	remote_request_free(&r);
}

Test(remote_build, bad_usage)
{
	const char *unknown[] = { "resize" };
	const char *extra[] = { "pause", "now" };
	const char *missing[] = { "snapshot" };
	const char *bad_restore[] = { "restore", "file:///x" };
	struct remote_request r = { .path = "untouched" };

	cr_expect_eq(build(1, unknown, &r), -EINVAL);
	cr_expect(strstr(err, "unknown command"), "%s", err);
	cr_expect_eq(build(2, extra, &r), -EINVAL);
	cr_expect(strstr(err, "takes 0 arguments"), "%s", err);
	cr_expect_eq(build(1, missing, &r), -EINVAL);
	cr_expect_eq(build(2, bad_restore, &r), -EINVAL);
	cr_expect(strstr(err, "source_url="), "%s", err);
	cr_expect_eq(build(0, unknown, &r), -EINVAL);
	cr_expect_str_eq(r.path, "untouched");
}

Test(remote_build, command_line)
{
	const char *a[] = { "cloister-remote", "--api-socket", "/run/a.sock", "ping" };
	const char *b[] = { "cloister-remote", "--api-socket=/run/b.sock", "snapshot", "file:///s" };
	const char *no_sock[] = { "cloister-remote", "ping" };
	const char *dangling[] = { "cloister-remote", "--api-socket" };
	const char *bad_opt[] = { "cloister-remote", "--api-sock", "/x", "ping" };
	struct remote_request r;
	const char *sock = NULL;

	cr_assert_eq(remote_parse_command_line(ARGC(a), (char **)a, &sock, &r, err, sizeof(err)), 0);
	cr_expect_str_eq(sock, "/run/a.sock");
	remote_request_free(&r);
	cr_assert_eq(remote_parse_command_line(ARGC(b), (char **)b, &sock, &r, err, sizeof(err)), 0);
	cr_expect_str_eq(sock, "/run/b.sock");
	remote_request_free(&r);
	cr_expect_eq(remote_parse_command_line(ARGC(no_sock), (char **)no_sock, &sock, &r, err, sizeof(err)), -EINVAL);
	cr_expect_eq(remote_parse_command_line(ARGC(dangling), (char **)dangling, &sock, &r, err, sizeof(err)), -EINVAL);
	cr_expect_eq(remote_parse_command_line(ARGC(bad_opt), (char **)bad_opt, &sock, &r, err, sizeof(err)), -EINVAL);
}

Test(remote_build, error_message)
{
	char *m = NULL;
	const char *arr = "[\"vm.pause\",\"pause needs a running VM\"]";

	cr_assert_eq(remote_error_message(arr, strlen(arr), &m), 0);
	cr_expect_str_eq(m, "vm.pause: pause needs a running VM");
	free(m);
	cr_assert_eq(remote_error_message("plain text", 10, &m), 0);
	cr_expect_str_eq(m, "plain text");
	free(m);
	cr_assert_eq(remote_error_message("[1,2,3,4,5,6,7,8]", 17, &m), 0);
	cr_expect_leq(strlen(m), 17);
	free(m);
	cr_assert_eq(remote_error_message(NULL, 0, &m), 0);
	cr_expect_str_eq(m, "");
	free(m);
}

/* ---- against a live server ---- */

static int pause_result;

static int ok_pause(void *opaque, char *e, size_t len)
{
	if (pause_result)
		snprintf(e, len, "pause needs a running VM");
	return pause_result;
}

static const struct api_ops ops = { .pause = ok_pause };

struct run {
	int code;
	char *out, *err;
	size_t out_len, err_len;
};

static struct run run_remote(int argc, const char **argv)
{
	struct run r = { 0 };
	FILE *out = open_memstream(&r.out, &r.out_len), *errf = open_memstream(&r.err, &r.err_len);

	cr_assert(out && errf);
	r.code = remote_main(argc, (char **)argv, out, errf);
	fclose(out);
	fclose(errf);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

Test(remote_live, against_server)
{
	char dir[] = "/tmp/cloister-remote-XXXXXX", sock[64];
	struct api_server *s;
	struct run r;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	cr_assert_eq(api_server_start(sock, &ops, NULL, &s), 0);

	{
		const char *argv[] = { "cloister-remote", "--api-socket", sock, "ping" };
		struct json_object *o;

		r = run_remote(ARGC(argv), argv);
		cr_expect_eq(r.code, REMOTE_EXIT_OK, "%s", r.err);
		o = json_tokener_parse(r.out);
		cr_expect_not_null(o, "ping printed '%s'", r.out);
		json_object_put(o);
		run_free(&r);
	}
	{
		const char *argv[] = { "cloister-remote", "--api-socket", sock, "pause" };

		r = run_remote(ARGC(argv), argv);
		cr_expect_eq(r.code, REMOTE_EXIT_OK, "%s", r.err);
		cr_expect_eq(r.out_len, 0);
		run_free(&r);
		pause_result = -EINVAL;
		r = run_remote(ARGC(argv), argv);
		cr_expect_eq(r.code, REMOTE_EXIT_FAILED);
		cr_expect(strstr(r.err, "405") && strstr(r.err, "pause needs a running VM"), "%s", r.err);
		run_free(&r);
	}
	{
		/* No resume op in the table: the server's 500 reaches stderr. */
		const char *argv[] = { "cloister-remote", "--api-socket", sock, "resume" };

		r = run_remote(ARGC(argv), argv);
		cr_expect_eq(r.code, REMOTE_EXIT_FAILED);
		cr_expect(strstr(r.err, "not implemented"), "%s", r.err);
		run_free(&r);
	}
	api_server_stop(s);
	rmdir(dir);
}

Test(remote_live, unreachable_and_usage)
{
	const char *gone[] = { "cloister-remote", "--api-socket", "/nonexistent/api.sock", "ping" };
	const char *usage[] = { "cloister-remote", "frobnicate" };
	struct run r;

	r = run_remote(ARGC(gone), gone);
	cr_expect_eq(r.code, REMOTE_EXIT_FAILED);
	cr_expect(strstr(r.err, "cannot connect") && strstr(r.err, "/nonexistent/api.sock"), "%s", r.err);
	run_free(&r);
	r = run_remote(ARGC(usage), usage);
	cr_expect_eq(r.code, REMOTE_EXIT_USAGE);
	cr_expect(strstr(r.err, "Usage:"), "%s", r.err);
	run_free(&r);
}

Test(remote_build, snapshot_with_a_disk_checkpoint)
{
	const char *snap[] = { "snapshot", "file:///tmp/snap", "disks=checkpoint" };
	const char *bad[] = { "snapshot", "file:///tmp/snap", "disks=all" };
	const char *extra[] = { "snapshot", "file:///tmp/snap", "disks=checkpoint", "x" };
	struct remote_request r;
	char *url = NULL;
	bool checkpoint = false;
	char perr[128];

	cr_assert_eq(build(3, snap, &r), 0, "%s", err);
	cr_assert_eq(api_parse_snapshot_request(r.body, strlen(r.body), &url, &checkpoint, perr,
						sizeof(perr)), 0, "%s", perr);
	cr_expect_str_eq(url, "file:///tmp/snap");
	cr_expect(checkpoint);
	free(url);
	remote_request_free(&r);
	cr_expect_eq(build(3, bad, &r), -EINVAL);
	cr_expect(strstr(err, "disks=checkpoint"), "%s", err);
	cr_expect_eq(build(4, extra, &r), -EINVAL);
}

Test(remote_build, sealed_snapshot_and_restore_name_their_key)
{
	const char *snap[] = { "snapshot", "file:///tmp/snap", "compression=zstd",
			       "encryption_key_file=/etc/k" };
	const char *twice[] = { "snapshot", "file:///tmp/snap", "compression=zstd", "compression=x" };
	const char *rest[] = { "restore", "source_url=file:///tmp/snap", "encryption_key_credential=k" };
	const char *odd[] = { "restore", "source_url=file:///tmp/snap", "key=k" };
	struct remote_request r;

	cr_assert_eq(build(4, snap, &r), 0, "%s", err);
	cr_expect(strstr(r.body, "\"compression\":\"zstd\"") &&
		  strstr(r.body, "\"encryption_key_file\":\"\\/etc\\/k\""), "%s", r.body);
	remote_request_free(&r);
	cr_expect_eq(build(4, twice, &r), -EINVAL);
	cr_assert_eq(build(3, rest, &r), 0, "%s", err);
	cr_expect(strstr(r.body, "\"encryption_key_credential\":\"k\""), "%s", r.body);
	remote_request_free(&r);
	cr_expect_eq(build(3, odd, &r), -EINVAL);
	cr_expect(strstr(err, "key=k"), "%s", err);
}
