/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snapshotd's protocol over socketpairs: the test plays the gateway and
 * vmm-core, the service runs on a thread.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "frame.h"
#include "service.h"
#include "vmjson.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define WAIT_MS 10000

struct server {
	int (*serve)(int gw, int core, int timeout_ms);
	int timeout_ms;
	int gw, core;		/* service ends */
	int gw_peer, core_peer;	/* test ends */
	int ret;
	pthread_t thread;
};

static void *server_main(void *p)
{
	struct server *s = p;

	s->ret = s->serve(s->gw, s->core, s->timeout_ms);
	return NULL;
}

static void server_start_core(struct server *s, int (*serve)(int, int, int), int timeout_ms,
			      bool core_greets)
{
	int a[2], b[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	*s = (struct server){ .serve = serve, .timeout_ms = timeout_ms, .gw = a[0],
			      .gw_peer = a[1], .core = b[0], .core_peer = b[1] };
	/* vmm-core greets first, as the real one does; the service reads it when it needs vmm-core. */
	if (core_greets)
		cr_assert_eq(frame_hello_send(s->core_peer, CLOISTER__ROLE__ROLE_VMM), 0);
	cr_assert_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_start(struct server *s, int (*serve)(int, int, int), int timeout_ms)
{
	server_start_core(s, serve, timeout_ms, true);
}

static int server_join(struct server *s)
{
	pthread_join(s->thread, NULL);
	close(s->gw);
	close(s->core);
	close(s->gw_peer);
	close(s->core_peer);
	return s->ret;
}

static Cloister__Envelope *recv_env(int sock, Cloister__Envelope__MsgCase want)
{
	Cloister__Envelope *env = NULL;

	cr_assert_eq(frame_recv_timeout(sock, WAIT_MS, &env, NULL, 0, NULL), 0);
	cr_assert_eq(env->msg_case, want, "got %s", frame_msg_name(env));
	return env;
}

/* Receives a Reply and checks its error code and that message holds needle. */
static void expect_reply(int sock, int error, const char *needle)
{
	Cloister__Envelope *env = recv_env(sock, CLOISTER__ENVELOPE__MSG_REPLY);

	cr_expect_eq(env->reply->error, error, "error %d: %s", env->reply->error,
		     env->reply->message);
	cr_expect_not_null(strstr(env->reply->message, needle), "\"%s\" not in \"%s\"", needle,
			   env->reply->message);
	frame_free(env);
}

/* What the next save asks for and the next load gives: a key (empty: none) and zstd. */
static ProtobufCBinaryData save_key, load_key;
static bool save_zstd;

static void send_save(int sock, Cloister__VmConfig *config, const int *fds, size_t n)
{
	Cloister__SnapdSave msg = CLOISTER__SNAPD_SAVE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	msg.config = config;
	msg.encryption_key = save_key;
	msg.compress_zstd = save_zstd;
	env.msg_case = CLOISTER__ENVELOPE__MSG_SNAPD_SAVE;
	env.snapd_save = &msg;
	cr_assert_eq(frame_send(sock, &env, fds, n), 0);
}

static void send_save_state(int sock, Cloister__VmState *state, Cloister__MemoryRegion **regions,
			    size_t n_regions, const int *fds, size_t n)
{
	Cloister__SnapSaveState msg = CLOISTER__SNAP_SAVE_STATE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	msg.state = state;
	msg.n_regions = n_regions;
	msg.regions = regions;
	env.msg_case = CLOISTER__ENVELOPE__MSG_SNAP_SAVE_STATE;
	env.snap_save_state = &msg;
	cr_assert_eq(frame_send(sock, &env, fds, n), 0);
}

static void send_load(int sock, uint32_t region_files, const int *fds, size_t n)
{
	Cloister__SnapdLoad msg = CLOISTER__SNAPD_LOAD__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	msg.region_files = region_files;
	msg.encryption_key = load_key;
	env.msg_case = CLOISTER__ENVELOPE__MSG_SNAPD_LOAD;
	env.snapd_load = &msg;
	cr_assert_eq(frame_send(sock, &env, fds, n), 0);
}

static void send_fill(int sock, Cloister__MemoryRegion **regions, size_t n_regions,
		      const int *fds, size_t n)
{
	Cloister__SnapFill msg = CLOISTER__SNAP_FILL__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	msg.n_regions = n_regions;
	msg.regions = regions;
	env.msg_case = CLOISTER__ENVELOPE__MSG_SNAP_FILL;
	env.snap_fill = &msg;
	cr_assert_eq(frame_send(sock, &env, fds, n), 0);
}

/* A saved snapshot of fx: files[0] is vm.json, files[1..] the regions. */
struct saved {
	int files[3];
	int mem[2];
	size_t n_regions;
};

static void save_fixture(struct fixture *fx, struct saved *sv)
{
	struct server s;

	sv->n_regions = fx->config.n_regions;
	for (size_t i = 0; i <= sv->n_regions; i++)
		sv->files[i] = tmpfile_fd();
	for (size_t i = 0; i < sv->n_regions; i++) {
		sv->mem[i] = memfd_of_size(fx->regions[i]->size);
		cr_assert_eq(pwrite(sv->mem[i], "guest data", 10, 4096 * (off_t)(i + 1)), 10);
	}
	server_start(&s, snapd_serve_save, WAIT_MS);
	send_save(s.gw_peer, &fx->config, sv->files, 1 + sv->n_regions);
	send_save_state(s.core_peer, &fx->state, fx->regions, sv->n_regions, sv->mem,
			sv->n_regions);
	expect_reply(s.core_peer, 0, "");
	expect_reply(s.gw_peer, 0, "");
	cr_assert_eq(server_join(&s), 0);
}

static void saved_close(struct saved *sv)
{
	for (size_t i = 0; i <= sv->n_regions; i++)
		close(sv->files[i]);
	for (size_t i = 0; i < sv->n_regions; i++)
		close(sv->mem[i]);
}

Test(service, save_then_load_round_trip)
{
	struct fixture fx;
	struct saved sv;
	struct server s;
	Cloister__Envelope *env;
	int back;
	char buf[10];

	fixture_init(&fx, 16 * MIB, 2);
	save_fixture(&fx, &sv);

	server_start(&s, snapd_serve_load, WAIT_MS);
	send_load(s.gw_peer, 1, sv.files, 2);
	env = recv_env(s.gw_peer, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY);
	cr_assert_eq(env->snapd_load_reply->error, 0, "%s", env->snapd_load_reply->message);
	cr_expect(messages_equal(&fx.config.base, &env->snapd_load_reply->config->base));
	frame_free(env);

	back = memfd_of_size(16 * MIB);
	send_fill(s.core_peer, fx.regions, 1, &back, 1);
	env = recv_env(s.core_peer, CLOISTER__ENVELOPE__MSG_SNAP_FILL_REPLY);
	cr_assert_eq(env->snap_fill_reply->error, 0, "%s", env->snap_fill_reply->message);
	cr_expect(messages_equal(&fx.state.base, &env->snap_fill_reply->state->base));
	frame_free(env);
	cr_expect_eq(server_join(&s), 0);
	cr_assert_eq(pread(back, buf, 10, 4096), 10);
	cr_expect_eq(memcmp(buf, "guest data", 10), 0);
	close(back);
	saved_close(&sv);
}

/* Loads sv and expects the gateway's verdict: 0, or an error whose message holds needle. */
static void load_verdict(struct saved *sv, const char *needle)
{
	struct server s;
	Cloister__Envelope *env;

	server_start(&s, snapd_serve_load, WAIT_MS);
	send_load(s.gw_peer, 1, sv->files, 2);
	env = recv_env(s.gw_peer, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY);
	if (!needle) {
		cr_expect_eq(env->snapd_load_reply->error, 0, "%s", env->snapd_load_reply->message);
	} else {
		cr_expect_lt(env->snapd_load_reply->error, 0);
		cr_expect_not_null(strstr(env->snapd_load_reply->message, needle), "\"%s\" not in \"%s\"",
				   needle, env->snapd_load_reply->message);
	}
	frame_free(env);
	/* No vmm-core comes: the service gives up after its verdict either way. */
	close(s.core_peer);
	s.core_peer = -1;
	server_join(&s);
}

Test(service, sealed_snapshot_loads_with_its_key_only)
{
	uint8_t key[32], other[32];
	struct fixture fx;
	struct saved sv;
	char text[64] = "";

	memset(key, 7, sizeof(key));
	memset(other, 8, sizeof(other));
	fixture_init(&fx, 16 * MIB, 2);
	save_key = (ProtobufCBinaryData){ .len = sizeof(key), .data = key };
	save_zstd = true;
	save_fixture(&fx, &sv);
	save_key = (ProtobufCBinaryData){ .len = 0 };
	save_zstd = false;
	cr_assert_eq(pread(sv.files[0], text, sizeof(text) - 1, 0), sizeof(text) - 1);
	cr_expect_not_null(strstr(text, "encrypted"), "%s", text);
	load_verdict(&sv, "needs its key");
	load_key = (ProtobufCBinaryData){ .len = sizeof(other), .data = other };
	load_verdict(&sv, "does not open with this key");
	load_key = (ProtobufCBinaryData){ .len = 5, .data = key };
	load_verdict(&sv, "must be 32 bytes");
	load_key = (ProtobufCBinaryData){ .len = sizeof(key), .data = key };
	load_verdict(&sv, NULL);
	load_key = (ProtobufCBinaryData){ .len = 0 };
	saved_close(&sv);
}

Test(service, save_refuses_wrong_fd_count)
{
	struct fixture fx;
	struct server s;
	int json = tmpfile_fd();

	fixture_init(&fx, 16 * MIB, 1);
	server_start(&s, snapd_serve_save, WAIT_MS);
	send_save(s.gw_peer, &fx.config, &json, 1);
	expect_reply(s.core_peer, -EINVAL, "snapd_save carries 1 fds, expected 2");
	expect_reply(s.gw_peer, -EINVAL, "snapd_save carries 1 fds, expected 2");
	cr_expect_eq(server_join(&s), -EINVAL);
	close(json);
}

Test(service, save_refuses_regions_that_differ)
{
	struct fixture fx;
	struct server s;
	int files[2] = { tmpfile_fd(), tmpfile_fd() }, mem = memfd_of_size(16 * MIB);
	Cloister__MemoryRegion other = CLOISTER__MEMORY_REGION__INIT, *regions[1] = { &other };

	fixture_init(&fx, 16 * MIB, 1);
	other.guest_addr = fx.regions[0]->guest_addr;
	other.size = 8 * MIB;
	server_start(&s, snapd_serve_save, WAIT_MS);
	send_save(s.gw_peer, &fx.config, files, 2);
	send_save_state(s.core_peer, &fx.state, regions, 1, &mem, 1);
	expect_reply(s.core_peer, -EINVAL, "memory regions differ");
	expect_reply(s.gw_peer, -EINVAL, "memory regions differ");
	cr_expect_lt(server_join(&s), 0);
	close(files[0]);
	close(files[1]);
	close(mem);
}

Test(service, save_refuses_short_memfd)
{
	struct fixture fx;
	struct server s;
	int files[2] = { tmpfile_fd(), tmpfile_fd() }, mem = memfd_of_size(MIB);

	fixture_init(&fx, 16 * MIB, 1);
	server_start(&s, snapd_serve_save, WAIT_MS);
	send_save(s.gw_peer, &fx.config, files, 2);
	send_save_state(s.core_peer, &fx.state, fx.regions, 1, &mem, 1);
	expect_reply(s.core_peer, -EINVAL, "memfd for region 0");
	expect_reply(s.gw_peer, -EINVAL, "memfd for region 0");
	cr_expect_lt(server_join(&s), 0);
	close(files[0]);
	close(files[1]);
	close(mem);
}

Test(service, save_refuses_unexpected_message)
{
	struct server s;
	int json = tmpfile_fd();

	server_start(&s, snapd_serve_save, WAIT_MS);
	send_load(s.gw_peer, 0, &json, 1);
	expect_reply(s.gw_peer, -EPROTO, "unexpected snapd_load");
	cr_expect_eq(server_join(&s), -EPROTO);
	close(json);
}

Test(service, save_gives_up_on_a_silent_core)
{
	struct fixture fx;
	struct server s;
	int files[2] = { tmpfile_fd(), tmpfile_fd() };

	fixture_init(&fx, 16 * MIB, 1);
	server_start(&s, snapd_serve_save, 200);
	send_save(s.gw_peer, &fx.config, files, 2);
	expect_reply(s.gw_peer, -ETIMEDOUT, "vmm-core");
	cr_expect_eq(server_join(&s), -ETIMEDOUT);
	close(files[0]);
	close(files[1]);
}

/* Loads with vm.json text and region files, expects the gateway to hear needle. */
static void load_expect_error(const char *json, const int *regions, size_t n_regions,
			      uint32_t region_files, const char *needle)
{
	int fds[4] = { tmpfile_fd() };
	struct server s;
	Cloister__Envelope *env;

	cr_assert_lt(n_regions, 4);
	cr_assert_eq(write(fds[0], json, strlen(json)), (ssize_t)strlen(json));
	memcpy(fds + 1, regions, n_regions * sizeof(int));
	server_start(&s, snapd_serve_load, WAIT_MS);
	send_load(s.gw_peer, region_files, fds, 1 + n_regions);
	env = recv_env(s.gw_peer, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY);
	cr_expect_lt(env->snapd_load_reply->error, 0);
	cr_expect_null(env->snapd_load_reply->config);
	cr_expect_not_null(strstr(env->snapd_load_reply->message, needle), "\"%s\" not in \"%s\"",
			   needle, env->snapd_load_reply->message);
	frame_free(env);
	cr_expect_lt(server_join(&s), 0);
	close(fds[0]);
}

/* A disk load (no region files) of the vm.json in fd json is refused. */
static void load_expect_error_fd(int json)
{
	struct server s;
	Cloister__Envelope *env;

	server_start(&s, snapd_serve_load, WAIT_MS);
	send_load(s.gw_peer, 0, &json, 1);
	env = recv_env(s.gw_peer, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY);
	cr_expect_lt(env->snapd_load_reply->error, 0);
	cr_expect_not_null(strstr(env->snapd_load_reply->message, "memory_regions[0]"), "%s",
			   env->snapd_load_reply->message);
	frame_free(env);
	cr_expect_lt(server_join(&s), 0);
}

static char *replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *out;

	cr_assert_not_null(at, "%s not in text", from);
	out = malloc(strlen(text) + strlen(to) + 1);
	memcpy(out, text, (size_t)(at - text));
	strcpy(out + (at - text), to);
	strcat(out, at + strlen(from));
	return out;
}

static void load_tampered(const char *from, const char *to, const char *needle)
{
	struct fixture fx;
	char *text, *bad;
	int region = tmpfile_fd();

	fixture_init(&fx, 16 * MIB, 2);
	cr_assert_eq(vmjson_encode(&fx.config, &fx.state, &text), 0);
	cr_assert_eq(ftruncate(region, 16 * MIB), 0);
	bad = replace(text, from, to);
	fixture_reseal(bad);
	load_expect_error(bad, &region, 1, 1, needle);
	free(bad);
	free(text);
	close(region);
}

Test(service, load_refuses_tampered_vm_json)
{
	load_tampered("\"version\":1", "\"version\":7", "version");
	load_tampered("\"version\":1", "\"version\":1,\"x\":0", "x: unknown key");
	load_tampered("\"memory-region-0\"", "\"../x\"", "memory_regions[0].file");
	load_tampered("\"boot_vcpus\":2", "\"boot_vcpus\":3", "state.vcpus: 2 vCPUs");
}

Test(service, load_refuses_wrong_region_file_sizes)
{
	struct fixture fx;
	char *text;
	int region = tmpfile_fd();

	fixture_init(&fx, 16 * MIB, 1);
	cr_assert_eq(vmjson_encode(&fx.config, &fx.state, &text), 0);
	cr_assert_eq(ftruncate(region, 12345), 0);
	load_expect_error(text, &region, 1, 1, "memory-region-0 is 12345 bytes, expected 16777216");
	cr_assert_eq(ftruncate(region, 32 * MIB), 0);
	load_expect_error(text, &region, 1, 1, "memory-region-0 is 33554432 bytes, expected 16777216");
	free(text);
	close(region);
}

Test(service, load_names_a_missing_region_file)
{
	struct fixture fx;
	char *text;
	int region = tmpfile_fd();

	fixture_init(&fx, 3 * GIB + 16 * MIB, 1);
	cr_assert_eq(vmjson_encode(&fx.config, &fx.state, &text), 0);
	cr_assert_eq(ftruncate(region, 3 * GIB), 0);
	load_expect_error(text, &region, 1, 1, "memory-region-1 is missing");
	free(text);
	close(region);
}

Test(service, load_refuses_fd_count_mismatch)
{
	int regions[2] = { tmpfile_fd(), tmpfile_fd() };

	load_expect_error("{}", regions, 2, 1, "names 1 region files and carries 3 fds");
	close(regions[0]);
	close(regions[1]);
}

Test(service, load_refuses_fill_with_other_regions)
{
	struct fixture fx;
	struct saved sv;
	struct server s;
	Cloister__Envelope *env;
	int back = memfd_of_size(32 * MIB);
	Cloister__MemoryRegion other = CLOISTER__MEMORY_REGION__INIT, *regions[1] = { &other };

	fixture_init(&fx, 16 * MIB, 1);
	save_fixture(&fx, &sv);
	other.guest_addr = fx.regions[0]->guest_addr;
	other.size = 32 * MIB;
	server_start(&s, snapd_serve_load, WAIT_MS);
	send_load(s.gw_peer, 1, sv.files, 2);
	env = recv_env(s.gw_peer, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY);
	cr_assert_eq(env->snapd_load_reply->error, 0, "%s", env->snapd_load_reply->message);
	frame_free(env);
	send_fill(s.core_peer, regions, 1, &back, 1);
	env = recv_env(s.core_peer, CLOISTER__ENVELOPE__MSG_SNAP_FILL_REPLY);
	cr_expect_eq(env->snap_fill_reply->error, -EINVAL);
	cr_expect_not_null(strstr(env->snap_fill_reply->message, "memory regions differ"));
	cr_expect_null(env->snap_fill_reply->state);
	frame_free(env);
	cr_expect_lt(server_join(&s), 0);
	close(back);
	saved_close(&sv);
}

/*
 * On restore the gateway starts vmm-core only after snapshotd has judged the
 * snapshot, so that verdict must not wait for vmm-core's hello.
 */
/* What main() runs: the handshake, then the operation. */
static int handshake_then_load(int gw, int core, int timeout_ms)
{
	int r = snapd_handshake(gw, core, timeout_ms);

	return r < 0 ? r : snapd_serve_load(gw, core, timeout_ms);
}

Test(service, load_answers_the_gateway_before_vmm_core_exists)
{
	struct fixture fx;
	struct server s;
	Cloister__Envelope *env;
	char *text;
	int fds[2] = { tmpfile_fd(), tmpfile_fd() };

	fixture_init(&fx, 16 * MIB, 1);
	cr_assert_eq(vmjson_encode(&fx.config, &fx.state, &text), 0);
	cr_assert_eq(write(fds[0], text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(ftruncate(fds[1], 16 * MIB), 0);
	server_start_core(&s, handshake_then_load, WAIT_MS, false);
	cr_assert_eq(frame_hello_send(s.gw_peer, CLOISTER__ROLE__ROLE_GATEWAY), 0);
	cr_assert_eq(frame_hello_expect(s.gw_peer, CLOISTER__ROLE__ROLE_SNAPSHOTD, WAIT_MS), 0);
	send_load(s.gw_peer, 1, fds, 2);
	env = recv_env(s.gw_peer, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY);
	cr_expect_eq(env->snapd_load_reply->error, 0, "%s", env->snapd_load_reply->message);
	cr_expect_not_null(env->snapd_load_reply->config);
	frame_free(env);
	/* vmm-core never comes: the service gives up instead of filling anything. */
	close(s.core_peer);
	s.core_peer = -1;
	cr_expect_lt(server_join(&s), 0);
	free(text);
	close(fds[0]);
	close(fds[1]);
}

/* ---- the fd store: vm.json only, memory neither written nor filled ---- */

static void send_save_fdstore(int sock, Cloister__VmConfig *config, int json)
{
	Cloister__SnapdSave msg = CLOISTER__SNAPD_SAVE__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	msg.config = config;
	msg.fdstore = true;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAPD_SAVE, &msg.base);
	cr_assert_eq(frame_send(sock, &env, &json, 1), 0);
}

static void send_load_fdstore(int sock, int json)
{
	Cloister__SnapdLoad msg = CLOISTER__SNAPD_LOAD__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	msg.fdstore = true;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD, &msg.base);
	cr_assert_eq(frame_send(sock, &env, &json, 1), 0);
}

static void send_fill_kept(int sock, Cloister__MemoryRegion **regions, int memfd, bool kept)
{
	Cloister__SnapFill msg = CLOISTER__SNAP_FILL__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	msg.n_regions = 1;
	msg.regions = regions;
	msg.memory_kept = kept;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAP_FILL, &msg.base);
	cr_assert_eq(frame_send(sock, &env, &memfd, 1), 0);
}

/* An fd store save of fx (16 MiB, one region) into a fresh file: its fd, rewound. */
static int save_fdstore(struct fixture *fx, int mem)
{
	int json = tmpfile_fd();
	struct server s;
	char text[65536];
	ssize_t n;

	server_start(&s, snapd_serve_save, WAIT_MS);
	send_save_fdstore(s.gw_peer, &fx->config, json);
	send_save_state(s.core_peer, &fx->state, fx->regions, 1, &mem, 1);
	expect_reply(s.core_peer, 0, "");
	expect_reply(s.gw_peer, 0, "");
	cr_assert_eq(server_join(&s), 0);
	n = pread(json, text, sizeof(text) - 1, 0);
	cr_assert_gt(n, 0);
	text[n] = '\0';
	cr_expect_not_null(strstr(text, "\"fd\""), "%s", text);
	cr_expect_not_null(strstr(text, "\"region-0\""), "%s", text);
	cr_expect_null(strstr(text, "memory-region-"), "%s", text);
	return json;
}

Test(service, fdstore_save_then_load_leaves_memory_as_it_is)
{
	struct fixture fx;
	struct server s;
	Cloister__Envelope *env;
	int mem, json;
	char buf[8];

	fixture_init(&fx, 16 * MIB, 1);
	mem = memfd_of_size(16 * MIB);
	cr_assert_eq(pwrite(mem, "kept RAM", 8, 4096), 8);
	json = save_fdstore(&fx, mem);

	server_start(&s, snapd_serve_load, WAIT_MS);
	send_load_fdstore(s.gw_peer, json);
	env = recv_env(s.gw_peer, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY);
	cr_assert_eq(env->snapd_load_reply->error, 0, "%s", env->snapd_load_reply->message);
	cr_expect(messages_equal(&fx.config.base, &env->snapd_load_reply->config->base));
	frame_free(env);
	send_fill_kept(s.core_peer, fx.regions, mem, true);
	env = recv_env(s.core_peer, CLOISTER__ENVELOPE__MSG_SNAP_FILL_REPLY);
	cr_assert_eq(env->snap_fill_reply->error, 0, "%s", env->snap_fill_reply->message);
	cr_expect(messages_equal(&fx.state.base, &env->snap_fill_reply->state->base));
	frame_free(env);
	cr_expect_eq(server_join(&s), 0);
	cr_assert_eq(pread(mem, buf, 8, 4096), 8);
	cr_expect_eq(memcmp(buf, "kept RAM", 8), 0, "the memory was filled over");
	close(mem);
	close(json);
}

Test(service, fdstore_load_refuses_a_core_that_would_be_filled)
{
	struct fixture fx;
	struct server s;
	Cloister__Envelope *env;
	int mem, json;

	fixture_init(&fx, 16 * MIB, 1);
	mem = memfd_of_size(16 * MIB);
	json = save_fdstore(&fx, mem);
	server_start(&s, snapd_serve_load, WAIT_MS);
	send_load_fdstore(s.gw_peer, json);
	env = recv_env(s.gw_peer, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY);
	cr_assert_eq(env->snapd_load_reply->error, 0, "%s", env->snapd_load_reply->message);
	frame_free(env);
	/* vmm-core made fresh memory: restoring only the state into it would lose the guest. */
	send_fill_kept(s.core_peer, fx.regions, mem, false);
	expect_reply(s.core_peer, -EPROTO, "no kept memory");
	cr_expect_lt(server_join(&s), 0);
	close(mem);
	close(json);
}

Test(service, the_two_forms_of_vm_json_are_not_taken_for_each_other)
{
	struct fixture fx;
	struct saved sv;
	struct server s;
	Cloister__Envelope *env;
	int mem, json;

	fixture_init(&fx, 16 * MIB, 1);
	/* A disk snapshot's vm.json is no fd store one. */
	save_fixture(&fx, &sv);
	server_start(&s, snapd_serve_load, WAIT_MS);
	send_load_fdstore(s.gw_peer, sv.files[0]);
	env = recv_env(s.gw_peer, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY);
	cr_expect_lt(env->snapd_load_reply->error, 0);
	cr_expect_not_null(strstr(env->snapd_load_reply->message, "memory_regions[0]"), "%s",
			   env->snapd_load_reply->message);
	frame_free(env);
	cr_expect_lt(server_join(&s), 0);
	saved_close(&sv);

	/* Nor the other way round: a disk load of it finds no region to fill from. */
	mem = memfd_of_size(16 * MIB);
	json = save_fdstore(&fx, mem);
	load_expect_error_fd(json);
	close(mem);
	close(json);
}
