/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "layout.h"
#include "vmjson.h"

/* Where a decode is in the document, for error messages. */
struct conv {
	char path[256];
	size_t path_len;
	char *err;
	size_t errlen;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int conv_fail(struct conv *cv, const char *what)
{
	set_err(cv->err, cv->errlen, "%s: %s", cv->path_len ? cv->path : "(top)", what);
	return -EINVAL;
}

/* Appends to the path; returns the old length to restore with path_pop(). */
static size_t path_push(struct conv *cv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t path_push(struct conv *cv, const char *fmt, ...)
{
	size_t mark = cv->path_len;
	size_t room = sizeof(cv->path) - cv->path_len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cv->path + cv->path_len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	cv->path_len += (size_t)n < room ? (size_t)n : room - 1;
	/* Keys come from the file: keep logs free of control bytes. */
	for (size_t i = mark; i < cv->path_len; i++)
		if ((unsigned char)cv->path[i] < 0x20 || (unsigned char)cv->path[i] >= 0x7f)
			cv->path[i] = '?';
	return mark;
}

static size_t path_push_key(struct conv *cv, const char *key)
{
	return path_push(cv, cv->path_len ? ".%s" : "%s", key);
}

static void path_pop(struct conv *cv, size_t mark)
{
	cv->path_len = mark;
	cv->path[mark] = '\0';
}

/* ---- base64 (RFC 4648, padded) ---- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const uint8_t *data, size_t len)
{
	char *out = malloc((len + 2) / 3 * 4 + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)data[i + 1] << 8;
		if (i + 2 < len)
			v |= data[i + 2];
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static int base64_value(char c)
{
	const char *p = c ? strchr(b64_alphabet, c) : NULL;

	return p ? (int)(p - b64_alphabet) : -1;
}

/* Strict decode: only the alphabet, length a multiple of 4, padding only at the end. */
static int base64_decode(const char *s, size_t len, uint8_t **ret_data, size_t *ret_len)
{
	_cleanup_free_ uint8_t *out = NULL;
	size_t pad = 0, o = 0;

	if (len % 4 != 0)
		return -EINVAL;
	if (len > 0 && s[len - 1] == '=')
		pad = (len > 1 && s[len - 2] == '=') ? 2 : 1;
	out = malloc(len / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = 0;

		for (size_t k = 0; k < 4; k++) {
			int d = (i + k >= len - pad) ? 0 : base64_value(s[i + k]);

			if (d < 0)
				return -EINVAL;
			v = v << 6 | (uint32_t)d;
		}
		out[o++] = v >> 16;
		out[o++] = v >> 8;
		out[o++] = v;
	}
	*ret_len = o - pad;
	*ret_data = TAKE_PTR(out);
	return 0;
}

/* ---- message -> JSON ---- */

static int value_to_json(const ProtobufCFieldDescriptor *f, const void *slot, int depth,
			 struct json_object **ret_obj);

static int message_to_json(const ProtobufCMessage *msg, int depth, struct json_object **ret_obj);

static int enum_to_json(const ProtobufCFieldDescriptor *f, int value, struct json_object **ret_obj)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, value);

	if (!ev)
		return -EINVAL;
	*ret_obj = json_object_new_string(ev->name);
	return *ret_obj ? 0 : -ENOMEM;
}

static int bytes_to_json(const ProtobufCBinaryData *bd, struct json_object **ret_obj)
{
	_cleanup_free_ char *text = base64_encode(bd->data, bd->len);

	if (!text)
		return -ENOMEM;
	*ret_obj = json_object_new_string(text);
	return *ret_obj ? 0 : -ENOMEM;
}

static int value_to_json(const ProtobufCFieldDescriptor *f, const void *slot, int depth,
			 struct json_object **ret_obj)
{
	struct json_object *o = NULL;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		o = json_object_new_int64(*(const int32_t *)slot);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		o = json_object_new_int64(*(const int64_t *)slot);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		o = json_object_new_uint64(*(const uint32_t *)slot);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		o = json_object_new_uint64(*(const uint64_t *)slot);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		o = json_object_new_boolean(*(const protobuf_c_boolean *)slot);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		return enum_to_json(f, *(const int *)slot, ret_obj);
	case PROTOBUF_C_TYPE_STRING:
		o = json_object_new_string(*(char *const *)slot ? *(char *const *)slot : "");
		break;
	case PROTOBUF_C_TYPE_BYTES:
		return bytes_to_json(slot, ret_obj);
	case PROTOBUF_C_TYPE_MESSAGE:
		if (!*(ProtobufCMessage *const *)slot)
			return -EINVAL;
		return message_to_json(*(ProtobufCMessage *const *)slot, depth + 1, ret_obj);
	default:
		return -EINVAL;
	}
	if (!o)
		return -ENOMEM;
	*ret_obj = o;
	return 0;
}

static size_t type_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return sizeof(uint32_t);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 0;
	}
}

static int repeated_to_json(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
			    int depth, struct json_object **ret_obj)
{
	size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
	const char *arr = *(char *const *)((const char *)msg + f->offset);
	size_t size = type_size(f->type);
	struct json_object *list;

	if (size == 0)
		return -EINVAL;
	list = json_object_new_array_ext((int)n);
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct json_object *item;
		int r = value_to_json(f, arr + i * size, depth, &item);

		if (r < 0) {
			json_object_put(list);
			return r;
		}
		json_object_array_add(list, item);
	}
	*ret_obj = list;
	return 0;
}

/* Whether a non-repeated field has a value to write. */
static bool field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)msg;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)
		return *(void *const *)(base + f->offset) != NULL;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
		return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
	return true;
}

static int message_to_json(const ProtobufCMessage *msg, int depth, struct json_object **ret_obj)
{
	const ProtobufCMessageDescriptor *desc = msg->descriptor;
	struct json_object *obj;

	if (depth > VMJSON_MAX_DEPTH)
		return -ELOOP;
	obj = json_object_new_object();
	if (!obj)
		return -ENOMEM;
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		struct json_object *val;
		int r;

		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			r = repeated_to_json(msg, f, depth, &val);
		else if (!field_present(msg, f))
			continue;
		else
			r = value_to_json(f, (const char *)msg + f->offset, depth, &val);
		if (r < 0) {
			json_object_put(obj);
			return r;
		}
		json_object_object_add(obj, f->name, val);
	}
	*ret_obj = obj;
	return 0;
}

int vmjson_from_message(const ProtobufCMessage *msg, struct json_object **ret_obj)
{
	return message_to_json(msg, 0, ret_obj);
}

/* ---- JSON -> message ---- */

static int json_to_message(struct conv *cv, struct json_object *obj,
			   const ProtobufCMessageDescriptor *desc, int depth,
			   ProtobufCMessage **ret_msg);

static int json_unsigned(struct conv *cv, struct json_object *o, uint64_t max, uint64_t *ret)
{
	uint64_t v;

	if (!json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 0)
		return conv_fail(cv, "expected an unsigned integer");
	v = json_object_get_uint64(o);
	if (v > max)
		return conv_fail(cv, "number out of range");
	*ret = v;
	return 0;
}

static int json_signed(struct conv *cv, struct json_object *o, int64_t min, int64_t max,
		       int64_t *ret)
{
	int64_t v;

	if (!json_object_is_type(o, json_type_int))
		return conv_fail(cv, "expected an integer");
	v = json_object_get_int64(o);
	/* json-c clamps values above INT64_MAX; the unsigned view tells them apart. */
	if (v == INT64_MAX && json_object_get_uint64(o) != (uint64_t)INT64_MAX)
		return conv_fail(cv, "number out of range");
	if (v < min || v > max)
		return conv_fail(cv, "number out of range");
	*ret = v;
	return 0;
}

static int json_to_enum(struct conv *cv, const ProtobufCFieldDescriptor *f, struct json_object *o,
			int *slot)
{
	const ProtobufCEnumValue *ev;

	if (!json_object_is_type(o, json_type_string))
		return conv_fail(cv, "expected an enum name (string)");
	ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_object_get_string(o));
	if (!ev)
		return conv_fail(cv, "unknown enum name");
	*slot = ev->value;
	return 0;
}

static int json_to_string(struct conv *cv, struct json_object *o, char **slot)
{
	const char *s;
	size_t len;
	char *copy;

	if (!json_object_is_type(o, json_type_string))
		return conv_fail(cv, "expected a string");
	s = json_object_get_string(o);
	len = (size_t)json_object_get_string_len(o);
	if (len > VMJSON_MAX_STRING)
		return conv_fail(cv, "string too long");
	/* An embedded NUL (\u0000) would make the C string say something else. */
	if (strlen(s) != len)
		return conv_fail(cv, "string contains a NUL character");
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	*slot = copy;
	return 0;
}

static int json_to_bytes(struct conv *cv, struct json_object *o, ProtobufCBinaryData *slot)
{
	uint8_t *data;
	size_t len, slen;

	if (!json_object_is_type(o, json_type_string))
		return conv_fail(cv, "expected a base64 string");
	slen = (size_t)json_object_get_string_len(o);
	if (slen > (VMJSON_MAX_BYTES + 2) / 3 * 4)
		return conv_fail(cv, "bytes too long");
	if (base64_decode(json_object_get_string(o), slen, &data, &len) < 0)
		return conv_fail(cv, "invalid base64");
	if (len == 0) {
		free(data);
		data = NULL;
	}
	slot->data = data;
	slot->len = len;
	return 0;
}

static int json_to_value(struct conv *cv, const ProtobufCFieldDescriptor *f,
			 struct json_object *o, int depth, void *slot)
{
	uint64_t u;
	int64_t s;
	int r;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		r = json_signed(cv, o, INT32_MIN, INT32_MAX, &s);
		if (r == 0)
			*(int32_t *)slot = (int32_t)s;
		return r;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		r = json_signed(cv, o, INT64_MIN, INT64_MAX, &s);
		if (r == 0)
			*(int64_t *)slot = s;
		return r;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		r = json_unsigned(cv, o, UINT32_MAX, &u);
		if (r == 0)
			*(uint32_t *)slot = (uint32_t)u;
		return r;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		r = json_unsigned(cv, o, UINT64_MAX, &u);
		if (r == 0)
			*(uint64_t *)slot = u;
		return r;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_object_is_type(o, json_type_boolean))
			return conv_fail(cv, "expected true or false");
		*(protobuf_c_boolean *)slot = json_object_get_boolean(o);
		return 0;
	case PROTOBUF_C_TYPE_ENUM:
		return json_to_enum(cv, f, o, slot);
	case PROTOBUF_C_TYPE_STRING:
		return json_to_string(cv, o, slot);
	case PROTOBUF_C_TYPE_BYTES:
		return json_to_bytes(cv, o, slot);
	case PROTOBUF_C_TYPE_MESSAGE:
		return json_to_message(cv, o, f->descriptor, depth + 1, slot);
	default:
		return conv_fail(cv, "field type not supported in vm.json");
	}
}

static int json_to_repeated(struct conv *cv, const ProtobufCFieldDescriptor *f,
			    struct json_object *o, int depth, ProtobufCMessage *msg)
{
	size_t size = type_size(f->type);
	size_t n;
	char *arr;

	if (!json_object_is_type(o, json_type_array))
		return conv_fail(cv, "expected an array");
	n = json_object_array_length(o);
	if (n > VMJSON_MAX_REPEATED)
		return conv_fail(cv, "too many elements");
	if (size == 0)
		return conv_fail(cv, "field type not supported in vm.json");
	if (n == 0)
		return 0;
	arr = calloc(n, size);
	if (!arr)
		return -ENOMEM;
	/* Count and array go in first, so a failure half-way frees what was built. */
	*(size_t *)((char *)msg + f->quantifier_offset) = n;
	*(char **)((char *)msg + f->offset) = arr;
	for (size_t i = 0; i < n; i++) {
		size_t mark = path_push(cv, "[%zu]", i);
		int r = json_to_value(cv, f, json_object_array_get_idx(o, i), depth, arr + i * size);

		if (r < 0)
			return r;
		path_pop(cv, mark);
	}
	return 0;
}

static int json_to_field(struct conv *cv, const ProtobufCFieldDescriptor *f,
			 struct json_object *o, int depth, ProtobufCMessage *msg)
{
	char *base = (char *)msg;
	int r;

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return json_to_repeated(cv, f, o, depth, msg);
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = (uint32_t *)(base + f->quantifier_offset);

		if (*which != 0)
			return conv_fail(cv, "more than one member of a oneof");
		r = json_to_value(cv, f, o, depth, base + f->offset);
		if (r == 0)
			*which = f->id;
		return r;
	}
	r = json_to_value(cv, f, o, depth, base + f->offset);
	if (r == 0 && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
	    f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
		*(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
	return r;
}

static int json_fill_message(struct conv *cv, struct json_object *obj,
			     const ProtobufCMessageDescriptor *desc, int depth,
			     ProtobufCMessage *msg)
{
	json_object_object_foreach(obj, key, val) {
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field_by_name(desc, key);
		size_t mark = path_push_key(cv, key);
		int r;

		if (!f)
			return conv_fail(cv, "unknown key");
		r = json_to_field(cv, f, val, depth, msg);
		if (r < 0)
			return r;
		path_pop(cv, mark);
	}
	return 0;
}

static int json_to_message(struct conv *cv, struct json_object *obj,
			   const ProtobufCMessageDescriptor *desc, int depth,
			   ProtobufCMessage **ret_msg)
{
	ProtobufCMessage *msg;
	int r;

	if (depth > VMJSON_MAX_DEPTH)
		return conv_fail(cv, "nested too deeply");
	if (!json_object_is_type(obj, json_type_object))
		return conv_fail(cv, "expected an object");
	msg = malloc(desc->sizeof_message);
	if (!msg)
		return -ENOMEM;
	desc->message_init(msg);
	r = json_fill_message(cv, obj, desc, depth, msg);
	if (r < 0) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return r;
	}
	*ret_msg = msg;
	return 0;
}

int vmjson_to_message(struct json_object *obj, const ProtobufCMessageDescriptor *desc,
		      const char *path, ProtobufCMessage **ret_msg, char *err, size_t errlen)
{
	struct conv cv = { .err = err, .errlen = errlen };
	int r;

	path_push(&cv, "%s", path ? path : "");
	r = json_to_message(&cv, obj, desc, 0, ret_msg);
	if (r == -ENOMEM)
		set_err(err, errlen, "out of memory");
	return r;
}

/* ---- semantic checks ---- */

static bool id_is_sane(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > VMJSON_MAX_ID)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
			    s[i]))
			return false;
	return true;
}

static int check_regions(const Cloister__VmConfig *c, char *err, size_t errlen)
{
	struct layout_region expect[LAYOUT_MAX_REGIONS];
	size_t n;

	if (c->memory_size == 0 || c->memory_size % VMJSON_PAGE_SIZE ||
	    c->memory_size > VMJSON_MAX_MEMORY) {
		set_err(err, errlen, "config.memory_size: %" PRIu64
			" is not a page-aligned size between 4 KiB and 1 TiB", c->memory_size);
		return -EINVAL;
	}
	n = layout_memory(c->memory_size, expect);
	if (c->n_regions != n) {
		set_err(err, errlen, "config.regions: %zu regions, the layout of %" PRIu64
			" bytes has %zu", c->n_regions, c->memory_size, n);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const Cloister__MemoryRegion *r = c->regions[i];

		if (!r || r->guest_addr != expect[i].gpa || r->size != expect[i].size) {
			set_err(err, errlen, "config.regions[%zu]: does not match the memory layout"
				" (expected guest_addr %" PRIu64 ", size %" PRIu64 ")",
				i, expect[i].gpa, expect[i].size);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_config_devices(const Cloister__VmConfig *c, char *err, size_t errlen)
{
	if (c->n_devices > VMJSON_MAX_DEVICES) {
		set_err(err, errlen, "config.devices: %zu devices, at most %u", c->n_devices,
			VMJSON_MAX_DEVICES);
		return -EINVAL;
	}
	for (size_t i = 0; i < c->n_devices; i++) {
		const Cloister__DeviceConfig *d = c->devices[i];

		if (!d || !id_is_sane(d->kind) || !id_is_sane(d->id)) {
			set_err(err, errlen, "config.devices[%zu]: kind and id must be 1..%u"
				" characters of [A-Za-z0-9_.-]", i, VMJSON_MAX_ID);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(c->devices[j]->id, d->id) == 0) {
				set_err(err, errlen, "config.devices[%zu].id: \"%s\" used twice",
					i, d->id);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int vmjson_check_config(const Cloister__VmConfig *c, char *err, size_t errlen)
{
	int r;

	if (!c) {
		set_err(err, errlen, "config: missing");
		return -EINVAL;
	}
	if (c->boot_vcpus < 1 || c->boot_vcpus > VMJSON_MAX_VCPUS) {
		set_err(err, errlen, "config.boot_vcpus: %" PRIu32 " is outside 1..%u",
			c->boot_vcpus, VMJSON_MAX_VCPUS);
		return -EINVAL;
	}
	r = check_regions(c, err, errlen);
	if (r < 0)
		return r;
	return check_config_devices(c, err, errlen);
}

static int check_vcpu(const Cloister__VcpuState *v, size_t i, size_t n, char *err, size_t errlen)
{
	if (!v) {
		set_err(err, errlen, "state.vcpus[%zu]: missing", i);
		return -EINVAL;
	}
	if (v->hartid >= n) {
		set_err(err, errlen, "state.vcpus[%zu].hartid: %" PRIu32 " is not below %zu",
			i, v->hartid, n);
		return -EINVAL;
	}
	if (v->n_x != 32 || v->x[0] != 0) {
		set_err(err, errlen, "state.vcpus[%zu].x: needs exactly 32 entries with x[0] == 0", i);
		return -EINVAL;
	}
	if (v->n_f != 0 && v->n_f != 32) {
		set_err(err, errlen, "state.vcpus[%zu].f: needs 0 or 32 entries", i);
		return -EINVAL;
	}
	/* SBI HSM knows states 0..6; only U and S are run by the engine. */
	if (v->hsm_state > 6 || v->priv > 1) {
		set_err(err, errlen, "state.vcpus[%zu]: invalid hsm_state or priv", i);
		return -EINVAL;
	}
	return 0;
}

static int check_vcpus(const Cloister__VmConfig *c, const Cloister__VmState *s,
		       char *err, size_t errlen)
{
	bool seen[VMJSON_MAX_VCPUS] = { false };

	if (s->n_vcpus != c->boot_vcpus) {
		set_err(err, errlen, "state.vcpus: %zu vCPUs, config.boot_vcpus is %" PRIu32,
			s->n_vcpus, c->boot_vcpus);
		return -EINVAL;
	}
	for (size_t i = 0; i < s->n_vcpus; i++) {
		int r = check_vcpu(s->vcpus[i], i, s->n_vcpus, err, errlen);

		if (r < 0)
			return r;
		if (seen[s->vcpus[i]->hartid]) {
			set_err(err, errlen, "state.vcpus[%zu].hartid: %" PRIu32 " appears twice",
				i, s->vcpus[i]->hartid);
			return -EINVAL;
		}
		seen[s->vcpus[i]->hartid] = true;
	}
	return 0;
}

static int check_device_state(const Cloister__VmConfig *c, const Cloister__DeviceState *d,
			      size_t i, char *err, size_t errlen)
{
	const Cloister__DeviceConfig *match = NULL;

	if (!d || !id_is_sane(d->id)) {
		set_err(err, errlen, "state.devices[%zu].id: missing or invalid", i);
		return -EINVAL;
	}
	for (size_t k = 0; k < c->n_devices; k++)
		if (strcmp(c->devices[k]->id, d->id) == 0)
			match = c->devices[k];
	if (!match || strcmp(match->kind, d->kind ? d->kind : "") != 0) {
		set_err(err, errlen, "state.devices[%zu]: \"%s\" is not a device of that kind"
			" in config.devices", i, d->id);
		return -EINVAL;
	}
	if (d->n_queues > VMJSON_MAX_QUEUES) {
		set_err(err, errlen, "state.devices[%zu].queues: more than %u", i,
			VMJSON_MAX_QUEUES);
		return -EINVAL;
	}
	for (size_t q = 0; q < d->n_queues; q++) {
		/* virtio caps a split queue at 32768 entries. */
		if (!d->queues[q] || d->queues[q]->size > 32768) {
			set_err(err, errlen, "state.devices[%zu].queues[%zu].size: above 32768", i, q);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_devices(const Cloister__VmConfig *c, const Cloister__VmState *s,
			 char *err, size_t errlen)
{
	if (s->n_devices != c->n_devices) {
		set_err(err, errlen, "state.devices: %zu devices, config.devices has %zu",
			s->n_devices, c->n_devices);
		return -EINVAL;
	}
	for (size_t i = 0; i < s->n_devices; i++) {
		int r = check_device_state(c, s->devices[i], i, err, errlen);

		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(s->devices[j]->id, s->devices[i]->id) == 0) {
				set_err(err, errlen, "state.devices[%zu].id: \"%s\" appears twice",
					i, s->devices[i]->id);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int vmjson_check_state(const Cloister__VmConfig *c, const Cloister__VmState *s,
		       char *err, size_t errlen)
{
	int r;

	if (!s || !s->machine) {
		set_err(err, errlen, "state.machine: missing");
		return -EINVAL;
	}
	r = check_vcpus(c, s, err, errlen);
	if (r < 0)
		return r;
	return check_devices(c, s, err, errlen);
}

/* ---- the document ---- */

void vmjson_region_file_name(size_t index, char *buf, size_t len)
{
	snprintf(buf, len, "memory-region-%zu", index);
}

static struct json_object *region_entry(size_t i, const Cloister__MemoryRegion *r)
{
	struct json_object *o = json_object_new_object();
	char name[32];

	if (!o)
		return NULL;
	vmjson_region_file_name(i, name, sizeof(name));
	json_object_object_add(o, "file", json_object_new_string(name));
	json_object_object_add(o, "guest_addr", json_object_new_uint64(r->guest_addr));
	json_object_object_add(o, "size", json_object_new_uint64(r->size));
	return o;
}

static int build_document(const Cloister__VmConfig *config, const Cloister__VmState *state,
			  struct json_object *doc)
{
	struct json_object *c, *s, *regions;
	int r;

	r = vmjson_from_message(&config->base, &c);
	if (r < 0)
		return r;
	json_object_object_add(doc, "version", json_object_new_int(VMJSON_VERSION));
	json_object_object_add(doc, "config", c);
	r = vmjson_from_message(&state->base, &s);
	if (r < 0)
		return r;
	json_object_object_add(doc, "state", s);
	regions = json_object_new_array();
	if (!regions)
		return -ENOMEM;
	json_object_object_add(doc, "memory_regions", regions);
	for (size_t i = 0; i < config->n_regions; i++) {
		struct json_object *e = region_entry(i, config->regions[i]);

		if (!e)
			return -ENOMEM;
		json_object_array_add(regions, e);
	}
	return 0;
}

int vmjson_encode(const Cloister__VmConfig *config, const Cloister__VmState *state,
		  char **ret_text)
{
	struct json_object *doc = json_object_new_object();
	const char *text;
	char *copy = NULL;
	int r;

	if (!doc)
		return -ENOMEM;
	r = build_document(config, state, doc);
	if (r == 0) {
		text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
		copy = text ? strdup(text) : NULL;
		r = copy ? 0 : -ENOMEM;
	}
	json_object_put(doc);
	if (r < 0)
		return r;
	*ret_text = copy;
	return 0;
}

/*
 * json-c saturates integers that do not fit 64 bits instead of failing, so
 * every integer literal is range-checked on the text before parsing.
 */
static int check_number_literals(const char *text, size_t len, char *err, size_t errlen)
{
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char ch = text[i];

		if (in_string) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
			continue;
		}
		if (ch == '"') {
			in_string = true;
			continue;
		}
		if (ch != '-' && (ch < '0' || ch > '9'))
			continue;
		size_t start = i + (ch == '-');
		size_t end = start;
		uint64_t v = 0;
		bool overflow = false;

		while (end < len && text[end] >= '0' && text[end] <= '9') {
			unsigned d = (unsigned)(text[end] - '0');

			overflow |= v > (UINT64_MAX - d) / 10;
			v = v * 10 + d;
			end++;
		}
		if (overflow || (ch == '-' && v > (uint64_t)INT64_MAX + 1)) {
			set_err(err, errlen, "number at byte %zu does not fit in 64 bits", i);
			return -EINVAL;
		}
		i = end > i ? end - 1 : i;
	}
	return 0;
}

/* Key counts of every object in the text, in the order their '{' appear. */
struct key_counts {
	uint32_t *n;
	size_t len, cap;
};

static int key_counts_push(struct key_counts *kc)
{
	if (kc->len == kc->cap) {
		size_t cap = kc->cap ? 2 * kc->cap : 64;
		uint32_t *n = realloc(kc->n, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		kc->n = n;
		kc->cap = cap;
	}
	kc->n[kc->len] = 0;
	return (int)(kc->len++ & INT32_MAX);
}

/*
 * Counts the keys of each object as written. Runs on text json-c has
 * accepted, so strings are closed and nesting is within its depth limit.
 */
static int count_keys(const char *text, size_t len, struct key_counts *kc)
{
	size_t stack[2 * VMJSON_MAX_DEPTH + 8];
	bool is_object[ARRAY_SIZE(stack)];
	size_t depth = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char ch = text[i];

		if (in_string) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
			continue;
		}
		if (ch == '"') {
			in_string = true;
		} else if (ch == '{' || ch == '[') {
			if (depth == ARRAY_SIZE(stack))
				return -E2BIG;
			is_object[depth] = ch == '{';
			if (ch == '{') {
				int k = key_counts_push(kc);

				if (k < 0)
					return k;
				stack[depth] = (size_t)k;
			}
			depth++;
		} else if ((ch == '}' || ch == ']') && depth) {
			depth--;
		} else if (ch == ':' && depth && is_object[depth - 1]) {
			kc->n[stack[depth - 1]]++;
		}
	}
	return 0;
}

/* Walks doc in the text's order; false when an object lost keys to a repeated one. */
static bool keys_all_kept(struct json_object *o, const struct key_counts *kc, size_t *next)
{
	if (json_object_is_type(o, json_type_array)) {
		size_t n = json_object_array_length(o);

		for (size_t i = 0; i < n; i++)
			if (!keys_all_kept(json_object_array_get_idx(o, i), kc, next))
				return false;
		return true;
	}
	if (!json_object_is_type(o, json_type_object))
		return true;
	if (*next >= kc->len || kc->n[*next] != (uint32_t)json_object_object_length(o))
		return false;
	(*next)++;
	json_object_object_foreach(o, key, val) {
		(void)key;
		if (!keys_all_kept(val, kc, next))
			return false;
	}
	return true;
}

/* json-c keeps the last of repeated keys; a document that repeats one is refused instead. */
static int check_duplicate_keys(const char *text, size_t len, struct json_object *doc, char *err,
				size_t errlen)
{
	struct key_counts kc = { 0 };
	size_t next = 0;
	int r = count_keys(text, len, &kc);

	if (r == 0 && (!keys_all_kept(doc, &kc, &next) || next != kc.len)) {
		set_err(err, errlen, "vm.json repeats a key in an object");
		r = -EINVAL;
	}
	free(kc.n);
	return r;
}

static int parse_text(const char *text, size_t len, struct json_object **ret_doc,
		      char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *doc;
	enum json_tokener_error jerr;
	size_t end;

	if (len > VMJSON_MAX_TEXT) {
		set_err(err, errlen, "vm.json is %zu bytes, more than the %u allowed", len,
			VMJSON_MAX_TEXT);
		return -EFBIG;
	}
	if (memchr(text, '\0', len)) {
		set_err(err, errlen, "vm.json contains a NUL byte");
		return -EINVAL;
	}
	if (check_number_literals(text, len, err, errlen) < 0)
		return -EINVAL;
	tok = json_tokener_new_ex(2 * VMJSON_MAX_DEPTH + 4);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	doc = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!doc || jerr != json_tokener_success) {
		json_object_put(doc);
		set_err(err, errlen, "vm.json is not valid JSON: %s",
			jerr == json_tokener_continue ? "unexpected end" :
			json_tokener_error_desc(jerr));
		return -EINVAL;
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r\n", text[end])) {
			json_object_put(doc);
			set_err(err, errlen, "vm.json has trailing data at byte %zu", end);
			return -EINVAL;
		}
	}
	if (check_duplicate_keys(text, len, doc, err, errlen) < 0) {
		json_object_put(doc);
		return -EINVAL;
	}
	*ret_doc = doc;
	return 0;
}

static int decode_region_entry(struct json_object *e, size_t i, const Cloister__VmConfig *c,
			       char *err, size_t errlen)
{
	struct conv cv = { .err = err, .errlen = errlen };
	struct json_object *file = NULL, *gpa = NULL, *size = NULL;
	char expect[32];
	uint64_t g, s;
	size_t mark;

	path_push(&cv, "memory_regions[%zu]", i);
	if (!json_object_is_type(e, json_type_object))
		return conv_fail(&cv, "expected an object");
	json_object_object_foreach(e, key, val) {
		if (strcmp(key, "file") && strcmp(key, "guest_addr") && strcmp(key, "size")) {
			path_push_key(&cv, key);
			return conv_fail(&cv, "unknown key");
		}
	}
	if (!json_object_object_get_ex(e, "file", &file) ||
	    !json_object_object_get_ex(e, "guest_addr", &gpa) ||
	    !json_object_object_get_ex(e, "size", &size))
		return conv_fail(&cv, "needs file, guest_addr and size");
	vmjson_region_file_name(i, expect, sizeof(expect));
	if (!json_object_is_type(file, json_type_string) ||
	    strcmp(json_object_get_string(file), expect) != 0) {
		char what[64];

		path_push_key(&cv, "file");
		snprintf(what, sizeof(what), "must be \"%s\"", expect);
		return conv_fail(&cv, what);
	}
	mark = path_push_key(&cv, "guest_addr");
	if (json_unsigned(&cv, gpa, UINT64_MAX, &g) < 0)
		return -EINVAL;
	path_pop(&cv, mark);
	path_push_key(&cv, "size");
	if (json_unsigned(&cv, size, UINT64_MAX, &s) < 0)
		return -EINVAL;
	path_pop(&cv, mark);
	if (g != c->regions[i]->guest_addr || s != c->regions[i]->size)
		return conv_fail(&cv, "does not match config.regions");
	return 0;
}

static int decode_regions(struct json_object *list, const Cloister__VmConfig *c,
			  char *err, size_t errlen)
{
	size_t n;

	if (!json_object_is_type(list, json_type_array)) {
		set_err(err, errlen, "memory_regions: expected an array");
		return -EINVAL;
	}
	n = json_object_array_length(list);
	if (n != c->n_regions) {
		set_err(err, errlen, "memory_regions: %zu entries, config.regions has %zu",
			n, c->n_regions);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		int r = decode_region_entry(json_object_array_get_idx(list, i), i, c, err, errlen);

		if (r < 0)
			return r;
	}
	return 0;
}

static int decode_top_keys(struct json_object *doc, struct json_object *parts[4],
			   char *err, size_t errlen)
{
	static const char *const keys[4] = { "version", "config", "state", "memory_regions" };

	if (!json_object_is_type(doc, json_type_object)) {
		set_err(err, errlen, "vm.json: expected an object");
		return -EINVAL;
	}
	json_object_object_foreach(doc, key, val) {
		size_t k = 0;

		while (k < 4 && strcmp(key, keys[k]) != 0)
			k++;
		if (k == 4) {
			struct conv cv = { .err = err, .errlen = errlen };

			path_push(&cv, "%s", key);
			return conv_fail(&cv, "unknown key");
		}
		parts[k] = val;
	}
	for (size_t k = 0; k < 4; k++) {
		if (!parts[k]) {
			set_err(err, errlen, "%s: missing", keys[k]);
			return -EINVAL;
		}
	}
	if (!json_object_is_type(parts[0], json_type_int) ||
	    json_object_get_int64(parts[0]) != VMJSON_VERSION) {
		set_err(err, errlen, "version: unsupported (this build reads version %d)",
			VMJSON_VERSION);
		return -EINVAL;
	}
	return 0;
}

static int decode_document(struct json_object *doc, Cloister__VmConfig **ret_config,
			   Cloister__VmState **ret_state, char *err, size_t errlen)
{
	struct json_object *parts[4] = { NULL };
	ProtobufCMessage *c = NULL, *s = NULL;
	int r;

	r = decode_top_keys(doc, parts, err, errlen);
	if (r < 0)
		return r;
	r = vmjson_to_message(parts[1], &cloister__vm_config__descriptor, "config", &c,
			      err, errlen);
	if (r < 0)
		return r;
	r = vmjson_check_config((Cloister__VmConfig *)c, err, errlen);
	if (r == 0)
		r = decode_regions(parts[3], (Cloister__VmConfig *)c, err, errlen);
	if (r == 0)
		r = vmjson_to_message(parts[2], &cloister__vm_state__descriptor, "state", &s,
				      err, errlen);
	if (r == 0)
		r = vmjson_check_state((Cloister__VmConfig *)c, (Cloister__VmState *)s,
				       err, errlen);
	if (r < 0) {
		protobuf_c_message_free_unpacked(c, NULL);
		if (s)
			protobuf_c_message_free_unpacked(s, NULL);
		return r;
	}
	*ret_config = (Cloister__VmConfig *)c;
	*ret_state = (Cloister__VmState *)s;
	return 0;
}

int vmjson_decode(const char *text, size_t len, Cloister__VmConfig **ret_config,
		  Cloister__VmState **ret_state, char *err, size_t errlen)
{
	struct json_object *doc;
	int r;

	r = parse_text(text, len, &doc, err, errlen);
	if (r < 0)
		return r;
	r = decode_document(doc, ret_config, ret_state, err, errlen);
	json_object_put(doc);
	return r;
}
