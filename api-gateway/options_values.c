/* SPDX-License-Identifier: Apache-2.0 */
/* The values inside options: key=value specs, sizes, URLs, ids, MACs, restore bindings. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "options.h"
#include "options_values.h"

/*
 * Splits spec in place over the keys in kvs. Unknown keys, repeated keys,
 * a missing '=' and empty values are refused; on error *ret_bad names the
 * offending item and *ret_problem what is wrong with it.
 */
int options_kv_split(char *spec, struct kv *kvs, size_t n, const char **ret_bad, const char **ret_problem)
{
	char *save = NULL, *item;

	*ret_bad = spec;
	*ret_problem = "empty item in";
	/* strtok_r would silently merge ",," into one separator. */
	if (!*spec || spec[strlen(spec) - 1] == ',' || spec[0] == ',' || strstr(spec, ",,"))
		return -EINVAL;
	for (item = strtok_r(spec, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		size_t i;

		*ret_bad = item;
		*ret_problem = "expected key=value, got";
		if (!eq || eq == item || !eq[1])
			return -EINVAL;
		*eq = '\0';
		for (i = 0; i < n; i++)
			if (strcmp(kvs[i].key, item) == 0)
				break;
		*ret_problem = i == n ? "unknown key" : "repeated key";
		if (i == n || kvs[i].value)
			return -EINVAL;
		kvs[i].value = eq + 1;
	}
	return 0;
}

int parse_bool(const char *s, bool *ret)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "on") == 0) {
		*ret = true;
		return 0;
	}
	if (strcmp(s, "false") == 0 || strcmp(s, "off") == 0) {
		*ret = false;
		return 0;
	}
	return -EINVAL;
}

int parse_size(const char *s, uint64_t *ret)
{
	uint64_t value = 0, shift = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (value > (UINT64_MAX - digit) / 10)
			return -ERANGE;
		value = value * 10 + digit;
	}
	switch (*p) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (*p && p[1])
		return -EINVAL;
	if (value > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = value << shift;
	return 0;
}

int parse_file_url(const char *url, char **ret_path)
{
	static const char scheme[] = "file://";
	const char *path;
	char *copy;

	if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0)
		return -EINVAL;
	path = url + sizeof(scheme) - 1;
	/* An empty host only: "file://host/x" would name another machine. */
	if (path[0] != '/' || strnlen(path, PATH_MAX) >= PATH_MAX)
		return -EINVAL;
	for (const char *p = path; *p; p++)
		if (iscntrl((unsigned char)*p))
			return -EINVAL;
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	*ret_path = copy;
	return 0;
}

/* memory_restore_mode=Copy|OnDemand and prefault=BOOL; prefault=true means Copy. */
static int parse_restore_mode(const char *mode, const char *prefault_value,
			      enum restore_mode *ret_mode)
{
	enum restore_mode m = RESTORE_MODE_DEFAULT;
	bool prefault = false;

	if (prefault_value && parse_bool(prefault_value, &prefault) < 0)
		return -EINVAL;
	if (mode && strcmp(mode, "Copy") == 0)
		m = RESTORE_MODE_COPY;
	else if (mode && strcmp(mode, "OnDemand") == 0)
		m = RESTORE_MODE_ON_DEMAND;
	else if (mode)
		return -EINVAL;
	if (prefault && m == RESTORE_MODE_ON_DEMAND)
		return -EINVAL;
	*ret_mode = prefault ? RESTORE_MODE_COPY : m;
	return 0;
}

int parse_restore_spec(const char *spec, char **ret_source_url, bool *ret_resume,
		       enum restore_mode *ret_mode)
{
	struct kv kvs[] = { { .key = "source_url" }, { .key = "resume" }, { .key = "prefault" },
			    { .key = "memory_restore_mode" } };
	_cleanup_free_ char *copy = NULL, *path = NULL;
	const char *bad, *problem;
	enum restore_mode mode;
	bool resume = false;
	char *url;
	int r;

	if (!spec || strnlen(spec, OPTIONS_VALUE_MAX) >= OPTIONS_VALUE_MAX)
		return -EINVAL;
	copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	r = options_kv_split(copy, kvs, ARRAY_SIZE(kvs), &bad, &problem);
	if (r < 0)
		return r;
	if (!kvs[0].value)
		return -EINVAL;
	r = parse_file_url(kvs[0].value, &path);
	if (r < 0)
		return r;
	if (kvs[1].value && parse_bool(kvs[1].value, &resume) < 0)
		return -EINVAL;
	if (parse_restore_mode(kvs[3].value, kvs[2].value, &mode) < 0)
		return -EINVAL;
	url = strdup(kvs[0].value);
	if (!url)
		return -ENOMEM;
	*ret_source_url = url;
	*ret_resume = resume;
	*ret_mode = mode;
	return 0;
}

/* Device ids end up in vm.json, ps and logs: keep them short and plain. */
bool options_device_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '_' && id[i] != '-')
			return false;
	return true;
}

int options_dup(char **dst, const char *src)
{
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

bool options_mac_ok(const char *mac)
{
	unsigned b[6];
	char tail;

	return strlen(mac) == 17 &&
	       sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		      &tail) == 6 &&
	       !(b[0] & 1);	/* a multicast address cannot be a NIC's */
}

/* ---- restore bindings ---- */

static int bind_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bind_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

bool options_abs_path_ok(const char *path, size_t max)
{
	if (path[0] != '/' || strnlen(path, max) >= max)
		return false;
	for (const char *p = path; *p; p++)
		if (iscntrl((unsigned char)*p))
			return false;
	return true;
}

static int bind_sink(struct restore_bind *b, Cloister__SerialMode mode, const char *path)
{
	if (b->has_sink)
		return -EEXIST;
	b->has_sink = true;
	b->sink_mode = mode;
	if (path && !(b->sink_path = strdup(path)))
		return -ENOMEM;
	return 0;
}

int options_serial_mode(const char *name, Cloister__SerialMode *ret)
{
	static const struct {
		const char *name;
		Cloister__SerialMode mode;
	} modes[] = {
		{ "off", CLOISTER__SERIAL_MODE__SERIAL_OFF },
		{ "null", CLOISTER__SERIAL_MODE__SERIAL_NULL },
		{ "tty", CLOISTER__SERIAL_MODE__SERIAL_TTY },
		{ "pty", CLOISTER__SERIAL_MODE__SERIAL_PTY },
	};

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		if (strcmp(name, modes[i].name) == 0) {
			*ret = modes[i].mode;
			return 0;
		}
	return -EINVAL;
}

static int bind_mode(struct restore_bind *b, const char *value)
{
	Cloister__SerialMode mode;

	if (options_serial_mode(value, &mode) < 0)
		return -EINVAL;
	return bind_sink(b, mode, NULL);
}

static int bind_string(char **slot, const char *value)
{
	if (*slot)
		return -EEXIST;
	*slot = strdup(value);
	return *slot ? 0 : -ENOMEM;
}

int restore_bind_set(struct restore_bind *b, const char *key, const char *value, char *err,
		     size_t errlen)
{
	int r;

	if (!key || !value)
		return bind_fail(err, errlen, "a restore binding needs KEY=VALUE");
	if (strcmp(key, "id") == 0) {
		if (!options_device_id_ok(value))
			return bind_fail(err, errlen, "restore binding id=%.40s: 1..32 letters, digits, "
					 "'-' or '_'", value);
		r = bind_string(&b->id, value);
	} else if (strcmp(key, "path") == 0) {
		if (!options_abs_path_ok(value, PATH_MAX))
			return bind_fail(err, errlen, "restore binding path=: an absolute path is needed");
		r = bind_string(&b->path, value);
	} else if (strcmp(key, "tap") == 0) {
		if (!*value || strlen(value) >= 16 || strchr(value, '/'))
			return bind_fail(err, errlen, "restore binding tap=: a name under 16 characters");
		r = bind_string(&b->tap, value);
	} else if (strcmp(key, "file") == 0 || strcmp(key, "socket") == 0) {
		bool sock = key[0] == 's';

		if (!options_abs_path_ok(value, sock ? OPTIONS_SOCKET_PATH_MAX : PATH_MAX))
			return bind_fail(err, errlen, "restore binding %s=: an absolute path%s is needed",
					 key, sock ? " under 108 bytes" : "");
		r = bind_sink(b, sock ? CLOISTER__SERIAL_MODE__SERIAL_SOCKET :
			      CLOISTER__SERIAL_MODE__SERIAL_FILE, value);
	} else if (strcmp(key, "mode") == 0) {
		r = bind_mode(b, value);
		if (r == -EINVAL)
			return bind_fail(err, errlen, "restore binding mode=%.16s: expected off, null, tty "
					 "or pty", value);
	} else {
		return bind_fail(err, errlen, "restore binding: unknown key %.32s (id, path, tap, "
				 "file, socket or mode)", key);
	}
	if (r == -EEXIST)
		return bind_fail(err, errlen, "restore binding: %s given twice", key);
	return r;
}

int restore_bind_check(const struct restore_bind *b, char *err, size_t errlen)
{
	int kinds = !!b->path + !!b->tap + !!b->has_sink;

	if (!b->id)
		return bind_fail(err, errlen, "a restore binding needs id=DEVICE (or id=serial)");
	if (kinds != 1)
		return bind_fail(err, errlen, "restore binding %s: give path= (a disk), tap= (a NIC) "
				 "or file=, socket=, mode= (serial, console), one kind only", b->id);
	return 0;
}

static void restore_bind_free(struct restore_bind *b)
{
	free(b->id);
	free(b->path);
	free(b->tap);
	free(b->sink_path);
	*b = (struct restore_bind){ 0 };
}

void restore_binds_free(struct restore_binds *binds)
{
	for (size_t i = 0; i < binds->n; i++)
		restore_bind_free(&binds->b[i]);
	binds->n = 0;
}

int parse_restore_bind(const char *spec, struct restore_binds *binds, char *err, size_t errlen)
{
	struct restore_bind b = { 0 };
	_cleanup_free_ char *copy = NULL;
	char *save = NULL, *item;
	int r = 0;

	if (!spec || !*spec || strnlen(spec, OPTIONS_VALUE_MAX) >= OPTIONS_VALUE_MAX)
		return bind_fail(err, errlen, "--restore-bind needs id=DEVICE,KEY=VALUE");
	if (binds->n >= OPTIONS_MAX_RESTORE_BINDS)
		return bind_fail(err, errlen, "--restore-bind: at most %d", OPTIONS_MAX_RESTORE_BINDS);
	copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	for (item = strtok_r(copy, ",", &save); item && r == 0; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');

		if (!eq || eq == item || !eq[1]) {
			r = bind_fail(err, errlen, "--restore-bind: expected KEY=VALUE, got '%.64s'", item);
			break;
		}
		*eq = '\0';
		r = restore_bind_set(&b, item, eq + 1, err, errlen);
	}
	if (r == 0)
		r = restore_bind_check(&b, err, errlen);
	for (size_t i = 0; r == 0 && i < binds->n; i++)
		if (strcmp(binds->b[i].id, b.id) == 0)
			r = bind_fail(err, errlen, "--restore-bind: %s is bound twice", b.id);
	if (r < 0) {
		restore_bind_free(&b);
		return r;
	}
	binds->b[binds->n++] = b;
	return 0;
}
