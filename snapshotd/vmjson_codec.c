/* SPDX-License-Identifier: Apache-2.0 */
/* The generic converter between protobuf-c messages and json-c objects. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "errmsg.h"
#include "layout.h"
#include "vmjson.h"
#include "vmjson_codec.h"

int conv_fail(struct conv *cv, const char *what)
{
	err_set(cv->err, cv->errlen, "%s: %s", cv->path_len ? cv->path : "(top)", what);
	return -EINVAL;
}

/* Appends to the path; returns the old length to restore with path_pop(). */
size_t path_push(struct conv *cv, const char *fmt, ...)
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

size_t path_push_key(struct conv *cv, const char *key)
{
	return path_push(cv, cv->path_len ? ".%s" : "%s", key);
}

void path_pop(struct conv *cv, size_t mark)
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

int json_unsigned(struct conv *cv, struct json_object *o, uint64_t max, uint64_t *ret)
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
		err_set(err, errlen, "out of memory");
	return r;
}
