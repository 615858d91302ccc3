/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <json-c/json_pointer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "vmjson.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)

struct decoded {
	int ret;
	char err[512];
	Cloister__VmConfig *config;
	Cloister__VmState *state;
};

static void decoded_free(struct decoded *d)
{
	if (d->ret == 0) {
		protobuf_c_message_free_unpacked(&d->config->base, NULL);
		protobuf_c_message_free_unpacked(&d->state->base, NULL);
	}
}

static struct decoded decode_text(const char *text, size_t len)
{
	struct decoded d = { .err = "" };

	d.ret = vmjson_decode(text, len, &d.config, &d.state, d.err, sizeof(d.err));
	return d;
}

static char *encode_fixture(struct fixture *fx)
{
	char *text = NULL;

	cr_assert_eq(vmjson_encode(&fx->config, &fx->state, &text), 0);
	return text;
}

/* Encodes a valid 2-vCPU VM, lets fn tamper with the document, decodes the result. */
static struct decoded decode_tampered(void (*fn)(struct json_object *doc))
{
	struct fixture fx;
	struct json_object *doc;
	struct decoded d;
	char *text;
	const char *out;

	fixture_init(&fx, 16 * MIB, 2);
	text = encode_fixture(&fx);
	doc = json_tokener_parse(text);
	cr_assert_not_null(doc);
	fn(doc);
	out = json_object_to_json_string(doc);
	free(text);
	text = strdup(out);
	if (strstr(text, "\"document\""))
		fixture_reseal(text);
	d = decode_text(text, strlen(text));
	json_object_put(doc);
	free(text);
	return d;
}

static void set(struct json_object *doc, const char *ptr, struct json_object *val)
{
	cr_assert_eq(json_pointer_set(&doc, ptr, val), 0, "no %s", ptr);
}

static void expect_refused(struct decoded d, const char *needle)
{
	cr_expect_eq(d.ret, -EINVAL, "ret %d err \"%s\"", d.ret, d.err);
	cr_expect_not_null(strstr(d.err, needle), "\"%s\" not in \"%s\"", needle, d.err);
	decoded_free(&d);
}

Test(vmjson, round_trip_keeps_every_field)
{
	struct fixture fx;
	char *text;
	struct decoded d;

	fixture_init(&fx, 4 * GIB, 4);
	text = encode_fixture(&fx);
	d = decode_text(text, strlen(text));
	cr_assert_eq(d.ret, 0, "%s", d.err);
	cr_expect(messages_equal(&fx.config.base, &d.config->base));
	cr_expect(messages_equal(&fx.state.base, &d.state->base));
	cr_expect_eq(d.state->vcpus[0]->timer_deadline, UINT64_MAX);
	cr_expect_eq(d.state->devices[0]->blob.len, 5);
	cr_expect_eq(memcmp(d.state->devices[0]->blob.data, fx.blob, 5), 0);
	cr_expect_eq(d.config->n_regions, 2);
	decoded_free(&d);
	free(text);
}

Test(vmjson, document_has_version_and_region_files)
{
	struct fixture fx;
	struct json_object *doc, *v;
	char *text;

	fixture_init(&fx, 4 * GIB, 1);
	text = encode_fixture(&fx);
	doc = json_tokener_parse(text);
	cr_assert_eq(json_pointer_get(doc, "/version", &v), 0);
	cr_expect_eq(json_object_get_int(v), 1);
	cr_assert_eq(json_pointer_get(doc, "/memory_regions/1/file", &v), 0);
	cr_expect_str_eq(json_object_get_string(v), "memory-region-1");
	cr_assert_eq(json_pointer_get(doc, "/memory_regions/1/size", &v), 0);
	cr_expect_eq(json_object_get_uint64(v), 1 * GIB);
	cr_assert_eq(json_pointer_get(doc, "/config/serial/mode", &v), 0);
	cr_expect_str_eq(json_object_get_string(v), "SERIAL_TTY");
	json_object_put(doc);
	free(text);
}

Test(vmjson, bytes_round_trip_at_every_padding)
{
	for (size_t len = 0; len <= 5; len++) {
		struct fixture fx;
		struct decoded d;
		char *text;

		fixture_init(&fx, 16 * MIB, 1);
		fx.dev_state.blob.len = len;
		text = encode_fixture(&fx);
		d = decode_text(text, strlen(text));
		cr_assert_eq(d.ret, 0, "len %zu: %s", len, d.err);
		cr_expect_eq(d.state->devices[0]->blob.len, len);
		cr_expect(messages_equal(&fx.state.base, &d.state->base), "len %zu", len);
		decoded_free(&d);
		free(text);
	}
}

static void bad_version(struct json_object *doc) { set(doc, "/version", json_object_new_int(2)); }
static void unknown_top(struct json_object *doc) { set(doc, "/extra", json_object_new_int(1)); }
static void unknown_vcpu_key(struct json_object *doc) { set(doc, "/state/vcpus/1/bogus", json_object_new_int(1)); }
static void pc_string(struct json_object *doc) { set(doc, "/state/vcpus/1/pc", json_object_new_string("12")); }
static void pc_negative(struct json_object *doc) { set(doc, "/state/vcpus/1/pc", json_object_new_int(-1)); }
static void pc_double(struct json_object *doc) { set(doc, "/state/vcpus/1/pc", json_object_new_double(1.5)); }
static void hartid_wide(struct json_object *doc) { set(doc, "/state/vcpus/0/hartid", json_object_new_uint64(1ull << 32)); }
static void region_escape(struct json_object *doc) { set(doc, "/memory_regions/0/file", json_object_new_string("../x")); }
static void region_size(struct json_object *doc) { set(doc, "/memory_regions/0/size", json_object_new_uint64(8 * MIB)); }
static void region_extra_key(struct json_object *doc) { set(doc, "/memory_regions/0/path", json_object_new_string("/etc")); }
static void enum_unknown(struct json_object *doc) { set(doc, "/config/serial/mode", json_object_new_string("SERIAL_BOGUS")); }
static void enum_number(struct json_object *doc) { set(doc, "/config/serial/mode", json_object_new_int(1)); }
static void blob_bad(struct json_object *doc) { set(doc, "/state/devices/0/blob", json_object_new_string("AB*=")); }
static void vcpus_too_few(struct json_object *doc) { set(doc, "/config/boot_vcpus", json_object_new_int(3)); }
static void vcpus_zero(struct json_object *doc) { set(doc, "/config/boot_vcpus", json_object_new_int(0)); }
static void vcpus_many(struct json_object *doc) { set(doc, "/config/boot_vcpus", json_object_new_int(65)); }
static void hartid_twice(struct json_object *doc) { set(doc, "/state/vcpus/1/hartid", json_object_new_int(1)); }
static void memory_odd(struct json_object *doc) { set(doc, "/config/memory_size", json_object_new_uint64(16 * MIB + 1)); }
static void region_moved(struct json_object *doc) { set(doc, "/config/regions/0/guest_addr", json_object_new_uint64(0)); }
static void device_renamed(struct json_object *doc) { set(doc, "/state/devices/0/id", json_object_new_string("rng9")); }
static void x_nonzero(struct json_object *doc) { set(doc, "/state/vcpus/0/x/0", json_object_new_int(5)); }

static void x_short(struct json_object *doc)
{
	struct json_object *x;

	cr_assert_eq(json_pointer_get(doc, "/state/vcpus/0/x", &x), 0);
	json_object_array_del_idx(x, 31, 1);
}

static void x_huge(struct json_object *doc)
{
	struct json_object *x = json_object_new_array();

	for (int i = 0; i < 1025; i++)
		json_object_array_add(x, json_object_new_int(0));
	set(doc, "/state/vcpus/0/x", x);
}

static void cmdline_long(struct json_object *doc)
{
	char *s = malloc(5000);

	memset(s, 'a', 4999);
	s[4999] = '\0';
	set(doc, "/config/payload/cmdline", json_object_new_string(s));
	free(s);
}

static void string_nul(struct json_object *doc)
{
	set(doc, "/config/payload/kernel", json_object_new_string_len("a\0b", 3));
}

static void no_state(struct json_object *doc) { json_object_object_del(doc, "state"); }

Test(vmjson, refuses_tampered_documents)
{
	expect_refused(decode_tampered(bad_version), "version");
	expect_refused(decode_tampered(unknown_top), "extra: unknown key");
	expect_refused(decode_tampered(unknown_vcpu_key), "state.vcpus[1].bogus: unknown key");
	expect_refused(decode_tampered(pc_string), "state.vcpus[1].pc: expected an unsigned integer");
	expect_refused(decode_tampered(pc_negative), "state.vcpus[1].pc: expected an unsigned integer");
	expect_refused(decode_tampered(pc_double), "state.vcpus[1].pc: expected an unsigned integer");
	expect_refused(decode_tampered(hartid_wide), "state.vcpus[0].hartid: number out of range");
	expect_refused(decode_tampered(region_escape), "memory_regions[0].file: must be \"memory-region-0\"");
	expect_refused(decode_tampered(region_size), "memory_regions[0]");
	expect_refused(decode_tampered(region_extra_key), "memory_regions[0].path: unknown key");
	expect_refused(decode_tampered(enum_unknown), "config.serial.mode: unknown enum name");
	expect_refused(decode_tampered(enum_number), "config.serial.mode: expected an enum name");
	expect_refused(decode_tampered(blob_bad), "state.devices[0].blob: invalid base64");
	expect_refused(decode_tampered(vcpus_too_few), "state.vcpus: 2 vCPUs");
	expect_refused(decode_tampered(vcpus_zero), "config.boot_vcpus");
	expect_refused(decode_tampered(vcpus_many), "config.boot_vcpus");
	expect_refused(decode_tampered(hartid_twice), "appears twice");
	expect_refused(decode_tampered(memory_odd), "config.memory_size");
	expect_refused(decode_tampered(region_moved), "config.regions[0]");
	expect_refused(decode_tampered(device_renamed), "state.devices[0]");
	expect_refused(decode_tampered(x_nonzero), "state.vcpus[0].x");
	expect_refused(decode_tampered(x_short), "state.vcpus[0].x");
	expect_refused(decode_tampered(x_huge), "state.vcpus[0].x: too many elements");
	expect_refused(decode_tampered(cmdline_long), "config.payload.cmdline: string too long");
	expect_refused(decode_tampered(string_nul), "config.payload.kernel");
	expect_refused(decode_tampered(no_state), "state: missing");
}

/* Replaces the first occurrence of from in text (which must hold it). */
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

Test(vmjson, refuses_bad_text)
{
	struct fixture fx;
	char *text, *bad;

	fixture_init(&fx, 16 * MIB, 1);
	text = encode_fixture(&fx);
	/* json-c would saturate this to UINT64_MAX if the text were not checked. */
	bad = replace(text, "\"pc\":2149580800", "\"pc\":18446744073709551616");
	expect_refused(decode_text(bad, strlen(bad)), "does not fit in 64 bits");
	free(bad);
	bad = replace(text, "\"pc\":2149580800", "\"pc\":-9223372036854775809");
	expect_refused(decode_text(bad, strlen(bad)), "does not fit in 64 bits");
	free(bad);
	expect_refused(decode_text(text, strlen(text) / 2), "not valid JSON");
	bad = replace(text, "\"version\":1", "\"version\":1,");
	expect_refused(decode_text(bad, strlen(bad)), "");
	free(bad);
	/* A repeated key, at the top and deep in the state, where json-c keeps the last. */
	bad = replace(text, "\"version\":1", "\"version\":1,\"version\":1");
	expect_refused(decode_text(bad, strlen(bad)), "repeats a key");
	free(bad);
	bad = replace(text, "\"pc\":2149580800", "\"pc\":2149580800,\"pc\":4096");
	expect_refused(decode_text(bad, strlen(bad)), "repeats a key");
	free(bad);
	bad = malloc(strlen(text) + 8);
	strcpy(bad, text);
	strcat(bad, " {}");
	expect_refused(decode_text(bad, strlen(bad)), "vm.json");
	bad[strlen(text)] = '\0';
	expect_refused(decode_text(bad, strlen(text) + 1), "NUL");
	free(bad);
	free(text);
}

Test(vmjson, refuses_deep_nesting_and_huge_text)
{
	char deep[512];
	struct decoded d;
	size_t n = 0;

	n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"config\":");
	for (int i = 0; i < 100; i++)
		deep[n++] = '[';
	for (int i = 0; i < 100; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	expect_refused(decode_text(deep, n), "not valid JSON");

	d = decode_text(deep, VMJSON_MAX_TEXT + 1ull);
	cr_expect_eq(d.ret, -EFBIG);
	cr_expect_not_null(strstr(d.err, "vm.json is"));
}

Test(vmjson, generic_converter_names_nested_path)
{
	struct json_object *o = json_tokener_parse(
		"{\"regions\":[{\"guest_addr\":1},{\"guest_addr\":true}]}");
	ProtobufCMessage *msg = NULL;
	char err[256] = "";

	cr_expect_eq(vmjson_to_message(o, &cloister__vm_config__descriptor, "cfg", &msg,
				       err, sizeof(err)), -EINVAL);
	cr_expect_str_eq(err, "cfg.regions[1].guest_addr: expected an unsigned integer");
	cr_expect_null(msg);
	json_object_put(o);
}

Test(vmjson, generic_converter_checks_int32_ranges)
{
	struct json_object *ok = json_tokener_parse("{\"error\":-2147483648,\"message\":\"x\"}");
	struct json_object *bad = json_tokener_parse("{\"error\":2147483648}");
	ProtobufCMessage *msg = NULL;
	char err[256] = "";

	cr_assert_eq(vmjson_to_message(ok, &cloister__reply__descriptor, "", &msg, err,
				       sizeof(err)), 0, "%s", err);
	cr_expect_eq(((Cloister__Reply *)msg)->error, INT32_MIN);
	cr_expect_str_eq(((Cloister__Reply *)msg)->message, "x");
	protobuf_c_message_free_unpacked(msg, NULL);
	cr_expect_eq(vmjson_to_message(bad, &cloister__reply__descriptor, "", &msg, err,
				       sizeof(err)), -EINVAL);
	cr_expect_str_eq(err, "error: number out of range");
	json_object_put(ok);
	json_object_put(bad);
}

/* The fd store form: memory_regions name fds, and each form is read only as itself. */
Test(vmjson, fdstore_form_names_fds_and_is_not_a_file_snapshot)
{
	struct fixture fx;
	struct json_object *doc, *v;
	struct decoded d = { .err = "" };
	char *text = NULL;

	fixture_init(&fx, 4 * GIB, 1);
	cr_assert_eq(vmjson_encode_memory(&fx.config, &fx.state, VMJSON_MEMORY_FDSTORE, &text), 0);
	doc = json_tokener_parse(text);
	cr_assert_eq(json_pointer_get(doc, "/memory_regions/1/fd", &v), 0);
	cr_expect_str_eq(json_object_get_string(v), "region-1");
	cr_expect_neq(json_pointer_get(doc, "/memory_regions/1/file", &v), 0);
	json_object_put(doc);

	d.ret = vmjson_decode_memory(text, strlen(text), VMJSON_MEMORY_FDSTORE, &d.config, &d.state,
				     d.err, sizeof(d.err));
	cr_assert_eq(d.ret, 0, "%s", d.err);
	cr_expect(messages_equal(&fx.config.base, &d.config->base));
	cr_expect(messages_equal(&fx.state.base, &d.state->base));
	decoded_free(&d);

	/* A disk restore must not take it: there are no region files to fill memory from. */
	d = decode_text(text, strlen(text));
	cr_expect_eq(d.ret, -EINVAL);
	cr_expect(strstr(d.err, "memory_regions[0]") != NULL, "%s", d.err);
	free(text);

	/* Nor the other way round. */
	text = encode_fixture(&fx);
	d.ret = vmjson_decode_memory(text, strlen(text), VMJSON_MEMORY_FDSTORE, &d.config, &d.state,
				     d.err, sizeof(d.err));
	cr_expect_eq(d.ret, -EINVAL);
	free(text);
}

Test(vmjson, fdstore_form_refuses_a_wrong_fd_name)
{
	struct fixture fx;
	struct decoded d = { .err = "" };
	char *text = NULL, *at;

	fixture_init(&fx, 64 * MIB, 1);
	cr_assert_eq(vmjson_encode_memory(&fx.config, &fx.state, VMJSON_MEMORY_FDSTORE, &text), 0);
	at = strstr(text, "\"region-0\"");
	cr_assert_not_null(at);
	at[8] = '1';	/* region-1: no such region */
	fixture_reseal(text);
	d.ret = vmjson_decode_memory(text, strlen(text), VMJSON_MEMORY_FDSTORE, &d.config, &d.state,
				     d.err, sizeof(d.err));
	cr_expect_eq(d.ret, -EINVAL);
	cr_expect(strstr(d.err, "must be \"region-0\"") != NULL, "%s", d.err);
	free(text);
}
