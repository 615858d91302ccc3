/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "chunk.h"
#include "cleanup.h"
#include "frame.h"
#include "layout.h"
#include "log.h"
#include "pager.h"
#include "save_progress.h"
#include "service.h"
#include "snapshot.h"
#include "vmjson.h"
#include "working_set.h"

#define ERR_LEN 512

/* The working set vm.json carries, for the pager (working_set.h). */
struct ws_list {
	uint64_t *blocks;
	size_t n;
};

/* One received frame and the fds that came with it, released together. */
struct inbox {
	Cloister__Envelope *env;
	int fds[CL_FRAME_MAX_FDS];
	size_t n_fds;
};

static void inbox_release(struct inbox *in)
{
	frame_free(in->env);
	in->env = NULL;
	for (size_t i = 0; i < in->n_fds; i++)
		close(in->fds[i]);
	in->n_fds = 0;
}

#define _cleanup_inbox_ __attribute__((cleanup(inbox_release)))

static int inbox_recv(int sock, int timeout_ms, Cloister__Envelope__MsgCase want,
		      const char *peer, struct inbox *in, char *err)
{
	Cloister__Envelope *env;
	int r;

	r = frame_recv_timeout(sock, timeout_ms, &env, in->fds, CL_FRAME_MAX_FDS, &in->n_fds);
	if (r < 0) {
		snprintf(err, ERR_LEN, "no valid message from %s: %s", peer, strerror(-r));
		return r;
	}
	in->env = env;
	if (env->msg_case != want) {
		snprintf(err, ERR_LEN, "unexpected %s from %s", frame_msg_name(env), peer);
		return -EPROTO;
	}
	return 0;
}

static int expect_fds(const struct inbox *in, size_t want, const char *what, char *err)
{
	if (in->n_fds == want)
		return 0;
	snprintf(err, ERR_LEN, "%s carries %zu fds, expected %zu", what, in->n_fds, want);
	return -EINVAL;
}

static int check_regions_equal(Cloister__MemoryRegion **got, size_t n_got,
			       const Cloister__VmConfig *config, const char *what, char *err)
{
	bool same = n_got == config->n_regions;

	for (size_t i = 0; same && i < n_got; i++)
		same = got[i] && got[i]->guest_addr == config->regions[i]->guest_addr &&
		       got[i]->size == config->regions[i]->size;
	if (same)
		return 0;
	snprintf(err, ERR_LEN, "%s: memory regions differ from the VM configuration", what);
	return -EINVAL;
}

/* A memfd shorter than its region would fault (or read short) half-way. */
static int check_memfds(const struct inbox *in, const Cloister__VmConfig *config, char *err)
{
	for (size_t i = 0; i < config->n_regions; i++) {
		struct stat st;

		if (fstat(in->fds[i], &st) < 0 || !S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size < config->regions[i]->size) {
			snprintf(err, ERR_LEN, "memfd for region %zu is not a file of %" PRIu64
				 " bytes or more", i, config->regions[i]->size);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- save ---- */

/*
 * vmm-core's hello is read only when vmm-core is needed: on restore the
 * gateway starts vmm-core after it has our verdict on the snapshot.
 */
static int expect_core_hello(int core, int timeout_ms, char *err)
{
	int r = frame_hello_expect(core, CLOISTER__ROLE__ROLE_VMM, timeout_ms);

	if (r < 0)
		snprintf(err, ERR_LEN, "no handshake with vmm-core: %s", strerror(-r));
	return r;
}

/* The gateway's working set goes into vm.json: it is checked like the file would be. */
static int save_check_working_set(const Cloister__SnapdSave *save, char *err)
{
	uint64_t sizes[LAYOUT_MAX_REGIONS];

	for (size_t i = 0; i < save->config->n_regions && i < LAYOUT_MAX_REGIONS; i++)
		sizes[i] = save->config->regions[i]->size;
	return working_set_check(save->working_set, save->n_working_set, sizes,
				 save->config->n_regions, err, ERR_LEN);
}

static int save_receive(int gw, int core, int timeout_ms, struct inbox *g, struct inbox *c,
			char *err)
{
	const Cloister__VmConfig *config;
	const Cloister__SnapSaveState *ss;
	int r;

	r = inbox_recv(gw, timeout_ms, CLOISTER__ENVELOPE__MSG_SNAPD_SAVE, "the gateway", g, err);
	if (r < 0)
		return r;
	config = g->env->snapd_save->config;
	r = vmjson_check_config(config, err, ERR_LEN);
	/* With the fd store, memory stays where it is: vm.json is the one file. */
	if (r == 0)
		r = save_check_working_set(g->env->snapd_save, err);
	if (r == 0)
		r = expect_fds(g, (g->env->snapd_save->fdstore ? 1 : 1 + config->n_regions) +
				  g->env->snapd_save->progress_fd, "snapd_save", err);
	if (r == 0)
		r = expect_core_hello(core, timeout_ms, err);
	if (r == 0)
		r = inbox_recv(core, timeout_ms, CLOISTER__ENVELOPE__MSG_SNAP_SAVE_STATE, "vmm-core",
			       c, err);
	if (r < 0)
		return r;
	ss = c->env->snap_save_state;
	r = expect_fds(c, config->n_regions, "snap_save_state", err);
	if (r == 0)
		r = check_regions_equal(ss->regions, ss->n_regions, config, "snap_save_state", err);
	if (r == 0)
		r = vmjson_check_state(config, ss->state, err, ERR_LEN);
	if (r == 0)
		r = check_memfds(c, config, err);
	return r;
}

/* The chunk format the gateway asked for: zstd, sealed under its key, or plain. */
static int save_format(const Cloister__SnapdSave *save, struct chunk_format *fmt, char *err)
{
	*fmt = (struct chunk_format){ .zstd = save->compress_zstd,
				      .sealed = save->encryption_key.len > 0 };
	if (fmt->sealed && save->encryption_key.len != CHUNK_KEY_BYTES) {
		snprintf(err, ERR_LEN, "the encryption key must be %d bytes", CHUNK_KEY_BYTES);
		return -EINVAL;
	}
	if (fmt->sealed)
		memcpy(fmt->key, save->encryption_key.data, CHUNK_KEY_BYTES);
	randombytes_buf(fmt->id, sizeof(fmt->id));
	return 0;
}

/* The fd store keeps the memory: vm.json alone, in its form. */
static int save_write_fdstore(const struct inbox *g, const struct inbox *c, char *err)
{
	_cleanup_free_ char *text = NULL;
	int r = vmjson_encode_memory(g->env->snapd_save->config, c->env->snap_save_state->state,
				     VMJSON_MEMORY_FDSTORE, &text);

	if (r == 0)
		r = snapshot_write_json(g->fds[0], text);
	if (r < 0)
		snprintf(err, ERR_LEN, "writing vm.json failed: %s", strerror(-r));
	return r;
}

static int save_write(const struct inbox *g, const struct inbox *c, char *err)
{
	const Cloister__VmConfig *config = g->env->snapd_save->config;
	bool fdstore = g->env->snapd_save->fdstore;
	_cleanup_free_ char *text = NULL;
	uint64_t sizes[LAYOUT_MAX_REGIONS];
	struct chunk_format fmt;
	struct chunk_set set;
	int r;

	if (fdstore)
		return save_write_fdstore(g, c, err);
	for (size_t i = 0; i < config->n_regions; i++)
		sizes[i] = config->regions[i]->size;
	r = save_format(g->env->snapd_save, &fmt, err);
	if (r < 0)
		return r;
	r = chunk_set_init(&set, &fmt, sizes, config->n_regions);
	sodium_memzero(fmt.key, sizeof(fmt.key));
	/* Progress is only shown: a page that will not map leaves it at 0. */
	if (r == 0 && g->env->snapd_save->progress_fd &&
	    save_progress_map(g->fds[1 + config->n_regions], &set.progress) < 0)
		log_warn("save: the progress fd is not a sealed page; no progress shown");
	for (size_t i = 0; r == 0 && i < config->n_regions; i++)
		r = chunk_write_region(&set, i, c->fds[i], g->fds[1 + i], err, ERR_LEN);
	if (r == 0) {
		r = vmjson_encode_chunks_ws(config, c->env->snap_save_state->state, &set,
					    g->env->snapd_save->working_set,
					    g->env->snapd_save->n_working_set, &text);
		if (r == 0)
			r = snapshot_write_json(g->fds[0], text);
		if (r == -EFBIG)
			snprintf(err, ERR_LEN, "vm.json with this guest's chunk tables would be larger"
				 " than the %u MiB a restore reads", VMJSON_MAX_TEXT >> 20);
		else if (r < 0)
			snprintf(err, ERR_LEN, "writing vm.json failed: %s", strerror(-r));
	}
	save_progress_unmap(set.progress);
	chunk_set_release(&set);
	return r;
}

/* The key leaves our memory with the message. */
static void wipe_key(ProtobufCBinaryData *key)
{
	if (key->data)
		sodium_memzero(key->data, key->len);
}

int snapd_serve_save(int gw, int core, int timeout_ms)
{
	_cleanup_inbox_ struct inbox g = { .n_fds = 0 }, c = { .n_fds = 0 };
	char err[ERR_LEN] = "";
	int r;

	r = save_receive(gw, core, timeout_ms, &g, &c, err);
	if (r == 0)
		r = save_write(&g, &c, err);
	if (g.env && g.env->msg_case == CLOISTER__ENVELOPE__MSG_SNAPD_SAVE)
		wipe_key(&g.env->snapd_save->encryption_key);
	if (r < 0) {
		log_error("save: %s", err);
		frame_reply_send(core, r, err);
		frame_reply_send(gw, r, err);
		return r;
	}
	if (g.env->snapd_save->fdstore)
		log_info("save: vm.json written; memory stays in the fd store");
	else
		log_info("save: %zu regions and vm.json written", g.env->snapd_save->config->n_regions);
	r = frame_reply_send(core, 0, NULL);
	if (r == 0)
		r = frame_reply_send(gw, 0, NULL);
	return r;
}

/* ---- load ---- */

static int load_read_json(int fd, const ProtobufCBinaryData *key, struct chunk_set *chunks,
			  enum vmjson_memory form, Cloister__VmConfig **ret_config,
			  Cloister__VmState **ret_state, struct ws_list *ws, char *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	r = snapshot_read_json(fd, &text, &len);
	if (r == -EFBIG)
		snprintf(err, ERR_LEN, "vm.json is larger than %u MiB", SNAPSHOT_MAX_JSON >> 20);
	else if (r < 0)
		snprintf(err, ERR_LEN, "reading vm.json failed: %s", strerror(-r));
	if (r < 0)
		return r;
	if (key->len != 0 && key->len != CHUNK_KEY_BYTES) {
		snprintf(err, ERR_LEN, "the encryption key must be %d bytes", CHUNK_KEY_BYTES);
		return -EINVAL;
	}
	if (form == VMJSON_MEMORY_FDSTORE) {
		*chunks = (struct chunk_set){ .n_regions = 0 };
		return vmjson_decode_memory(text, len, form, ret_config, ret_state, err, ERR_LEN);
	}
	return vmjson_decode_chunks_ws(text, len, key->len ? key->data : NULL, chunks, ret_config,
				       ret_state, &ws->blocks, &ws->n, err, ERR_LEN);
}

static int load_check_region_files(const struct inbox *g, uint32_t found,
				   const Cloister__VmConfig *config, const struct chunk_set *chunks,
				   char *err)
{
	char name[32];

	if (found != config->n_regions) {
		vmjson_region_file_name(found < config->n_regions ? found : config->n_regions,
					name, sizeof(name));
		snprintf(err, ERR_LEN, "the snapshot has %zu memory regions but %" PRIu32
			 " region files were found (%s %s)", config->n_regions, found, name,
			 found < config->n_regions ? "is missing" : "is not expected");
		return -ENOENT;
	}
	for (size_t i = 0; i < config->n_regions; i++) {
		struct stat st;

		vmjson_region_file_name(i, name, sizeof(name));
		if (fstat(g->fds[1 + i], &st) < 0 || !S_ISREG(st.st_mode)) {
			snprintf(err, ERR_LEN, "%s is not a regular file", name);
			return -EINVAL;
		}
		if (chunk_check_table(chunks, i, (uint64_t)st.st_size, err, ERR_LEN) < 0)
			return -EINVAL;
	}
	return 0;
}

static int load_gateway_phase(int gw, int timeout_ms, struct inbox *g, struct chunk_set *chunks,
			      Cloister__VmConfig **ret_config, Cloister__VmState **ret_state,
			      struct ws_list *ws, char *err)
{
	Cloister__VmConfig *config;
	Cloister__VmState *state;
	uint32_t found;
	bool fdstore;
	int r;

	r = inbox_recv(gw, timeout_ms, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD, "the gateway", g, err);
	if (r < 0)
		return r;
	found = g->env->snapd_load->region_files;
	fdstore = g->env->snapd_load->fdstore;
	if (found > LAYOUT_MAX_REGIONS || g->n_fds != 1 + (size_t)found || (fdstore && found) ||
	    (fdstore && g->env->snapd_load->on_demand)) {
		snprintf(err, ERR_LEN, "snapd_load names %" PRIu32 " region files%s and carries"
			 " %zu fds", found, fdstore ? " with the fd store" : "", g->n_fds);
		return -EINVAL;
	}
	r = load_read_json(g->fds[0], &g->env->snapd_load->encryption_key, chunks,
			   fdstore ? VMJSON_MEMORY_FDSTORE : VMJSON_MEMORY_FILES, &config, &state, ws,
			   err);
	wipe_key(&g->env->snapd_load->encryption_key);
	if (r < 0)
		return r;
	r = fdstore ? 0 : load_check_region_files(g, found, config, chunks, err);
	if (r < 0) {
		free(ws->blocks);
		*ws = (struct ws_list){ 0 };
		protobuf_c_message_free_unpacked(&config->base, NULL);
		protobuf_c_message_free_unpacked(&state->base, NULL);
		return r;
	}
	*ret_config = config;
	*ret_state = state;
	return 0;
}

static int send_load_reply(int gw, int error, const char *message, Cloister__VmConfig *config)
{
	Cloister__SnapdLoadReply reply = CLOISTER__SNAPD_LOAD_REPLY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	reply.error = error;
	reply.message = (char *)message;
	reply.config = config;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAPD_LOAD_REPLY, &reply.base);
	return frame_send(gw, &env, NULL, 0);
}

static int send_fill_reply(int core, int error, const char *message, Cloister__VmState *state)
{
	Cloister__SnapFillReply reply = CLOISTER__SNAP_FILL_REPLY__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	reply.error = error;
	reply.message = (char *)message;
	reply.state = state;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAP_FILL_REPLY, &reply.base);
	return frame_send(core, &env, NULL, 0);
}

static int load_fill(const struct inbox *g, const struct inbox *c,
		     const Cloister__VmConfig *config, struct chunk_set *chunks, char *err)
{
	const Cloister__SnapFill *fill = c->env->snap_fill;
	int r;

	r = expect_fds(c, config->n_regions, "snap_fill", err);
	if (r == 0)
		r = check_regions_equal(fill->regions, fill->n_regions, config, "snap_fill", err);
	if (r == 0)
		r = check_memfds(c, config, err);
	/* The fd store: the memory already holds the guest. */
	if (r == 0 && !fill->memory_kept)
		r = chunk_fill_regions(chunks, &g->fds[1], c->fds, err, ERR_LEN);
	return r;
}

/* OnDemand: the memfds plus vmm-core's uffd, and where it mapped each region. */
static int check_on_demand(const struct inbox *c, const Cloister__VmConfig *config, char *err)
{
	const Cloister__SnapFill *fill = c->env->snap_fill;
	size_t clients = c->n_fds > config->n_regions ? c->n_fds - config->n_regions : 0;
	int r = 0;

	if (clients == 0 || clients > PAGER_MAX_CLIENTS) {
		snprintf(err, ERR_LEN, "snap_fill carries %zu fds for %zu regions", c->n_fds,
			 config->n_regions);
		r = -EINVAL;
	}
	if (r == 0)
		r = check_regions_equal(fill->regions, fill->n_regions, config, "snap_fill", err);
	if (r == 0)
		r = check_memfds(c, config, err);
	if (r == 0 && fill->n_host_addrs != clients * config->n_regions) {
		snprintf(err, ERR_LEN, "snap_fill names %zu host addresses for %zu clients of %zu"
			 " regions", fill->n_host_addrs, clients, config->n_regions);
		r = -EINVAL;
	}
	return r;
}

/* Hands the region files and vmm-core's uffd to the pager, which serves until the gateway goes. */
static int load_page(int gw, struct inbox *g, struct inbox *c, const Cloister__VmConfig *config,
		     struct chunk_set *chunks, const struct ws_list *ws, bool prefetch)
{
	struct pager p;
	uint64_t sizes[LAYOUT_MAX_REGIONS];
	int r;

	for (size_t i = 0; i < config->n_regions; i++)
		sizes[i] = config->regions[i]->size;
	r = pager_init(&p, &g->fds[1], sizes, config->n_regions);
	p.chunks = chunks;
	if (r == 0 && (chunks->fmt.zstd || chunks->fmt.sealed))
		p.total = chunk_data_bytes(chunks);
	for (size_t k = 0; r == 0 && config->n_regions + k < c->n_fds; k++)
		r = pager_add_client(&p, TAKE_FD(c->fds[config->n_regions + k]),
				     &c->env->snap_fill->host_addrs[k * config->n_regions]);
	if (r == 0)
		r = pager_set_working_set(&p, ws->blocks, ws->n);
	if (r == 0) {
		log_info("load: paging %" PRIu64 " bytes of data on demand for %zu processes, a working"
			 " set of %zu blocks first", p.total, p.n_clients, p.n_ws);
		r = pager_run(&p, gw, prefetch);
	}
	pager_release(&p);
	return r;
}

static int load_core_phase(int gw, int core, int timeout_ms, struct inbox *g,
			   const Cloister__VmConfig *config, Cloister__VmState *state,
			   struct chunk_set *chunks, const struct ws_list *ws, bool on_demand,
			   bool prefetch)
{
	_cleanup_inbox_ struct inbox c = { .n_fds = 0 };
	char err[ERR_LEN] = "";
	int r;

	r = expect_core_hello(core, timeout_ms, err);
	if (r == 0)
		r = inbox_recv(core, timeout_ms, CLOISTER__ENVELOPE__MSG_SNAP_FILL, "vmm-core", &c, err);
	if (r == 0 && c.env->snap_fill->on_demand != on_demand) {
		snprintf(err, ERR_LEN, "vmm-core asks for a %s restore, the gateway for %s",
			 c.env->snap_fill->on_demand ? "OnDemand" : "Copy",
			 on_demand ? "OnDemand" : "Copy");
		r = -EPROTO;
	}
	if (r == 0 && c.env->snap_fill->memory_kept != g->env->snapd_load->fdstore) {
		snprintf(err, ERR_LEN, "vmm-core %s kept memory, the gateway's snapshot %s",
			 c.env->snap_fill->memory_kept ? "has" : "has no",
			 g->env->snapd_load->fdstore ? "is the fd store's" : "has region files");
		r = -EPROTO;
	}
	if (r < 0) {
		log_error("load: %s", err);
		frame_reply_send(core, r, err);
		return r;
	}
	r = on_demand ? check_on_demand(&c, config, err) : load_fill(g, &c, config, chunks, err);
	if (r < 0) {
		log_error("load: %s", err);
		send_fill_reply(core, r, err, NULL);
		return r;
	}
	r = send_fill_reply(core, 0, "", state);
	if (r < 0 || !on_demand) {
		if (r == 0)
			log_info("load: %zu regions %s", config->n_regions,
				 c.env->snap_fill->memory_kept ? "kept as they were" : "filled");
		return r;
	}
	return load_page(gw, g, &c, config, chunks, ws, prefetch);
}

static int serve_load(int gw, int core, int timeout_ms, bool prefetch)
{
	_cleanup_inbox_ struct inbox g = { .n_fds = 0 };
	Cloister__VmConfig *config = NULL;
	Cloister__VmState *state = NULL;
	struct chunk_set chunks = { .n_regions = 0 };
	struct ws_list ws = { 0 };
	char err[ERR_LEN] = "";
	int r;

	r = load_gateway_phase(gw, timeout_ms, &g, &chunks, &config, &state, &ws, err);
	if (r < 0) {
		log_error("load: %s", err);
		send_load_reply(gw, r, err, NULL);
		chunk_set_release(&chunks);
		return r;
	}
	r = send_load_reply(gw, 0, "", config);
	if (r == 0)
		r = load_core_phase(gw, core, timeout_ms, &g, config, state, &chunks, &ws,
				    g.env->snapd_load->on_demand, prefetch);
	chunk_set_release(&chunks);
	free(ws.blocks);
	protobuf_c_message_free_unpacked(&config->base, NULL);
	protobuf_c_message_free_unpacked(&state->base, NULL);
	return r;
}

int snapd_serve_load(int gw, int core, int timeout_ms)
{
	return serve_load(gw, core, timeout_ms, true);
}

int snapd_serve_load_faults_only(int gw, int core, int timeout_ms)
{
	return serve_load(gw, core, timeout_ms, false);
}

int snapd_handshake(int gw, int core, int timeout_ms)
{
	int r;

	r = frame_hello_send(gw, CLOISTER__ROLE__ROLE_SNAPSHOTD);
	if (r == 0)
		r = frame_hello_send(core, CLOISTER__ROLE__ROLE_SNAPSHOTD);
	if (r == 0)
		r = frame_hello_expect(gw, CLOISTER__ROLE__ROLE_GATEWAY, timeout_ms);
	return r;
}
