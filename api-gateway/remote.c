/* SPDX-License-Identifier: Apache-2.0 */
#include "remote.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "options.h"
#include "errmsg.h"

#define REMOTE_TIMEOUT_S 600L
#define REMOTE_CONNECT_TIMEOUT_S 5L

struct verb {
	const char *name;
	const char *method;
	const char *path;
	int nargs;
	int optional_args;	/* after nargs */
	bool print_body;
	/* args[0..n_args): the command's arguments. */
	int (*make_body)(char **args, int n_args, struct remote_request *req, char **ret, char *err,
			 size_t errlen);
};

struct response {
	char *data;
	size_t len;
	bool overflow;
};

static int json_to_string(struct json_object *o, char **ret)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	char *copy;

	if (!s)
		return -ENOMEM;
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	*ret = copy;
	return 0;
}

/*
 * KEY=VALUE arguments after the first, each one of keys[] (at most once),
 * into o as strings. -EINVAL naming the first that is not.
 */
static int add_key_args(struct json_object *o, char **args, int n_args, const char *const *keys,
			const char *verb, char *err, size_t errlen)
{
	for (int i = 1; i < n_args; i++) {
		const char *eq = strchr(args[i], '=');
		size_t k = 0;

		while (eq && keys[k] && (strncmp(args[i], keys[k], (size_t)(eq - args[i])) != 0 ||
					 keys[k][eq - args[i]] != '\0'))
			k++;
		if (!eq || !keys[k] || !eq[1] || json_object_object_get_ex(o, keys[k], NULL)) {
			err_set(err, errlen, "%s: '%s' is not one of the KEY=VALUE arguments it takes",
				verb, args[i]);
			return -EINVAL;
		}
		json_object_object_add(o, keys[k], json_object_new_string(eq + 1));
	}
	return 0;
}

/* snapshot URL [disks=checkpoint] [compression=zstd] [encryption_key_file=PATH|_credential=NAME] */
static int snapshot_body(char **args, int n_args, struct remote_request *req, char **ret, char *err,
			 size_t errlen)
{
	static const char *const keys[] = { "disks", "compression", "encryption_key_file",
					    "encryption_key_credential", NULL };
	struct json_object *o, *v;
	int r;

	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "destination_url", json_object_new_string(args[0]));
	r = add_key_args(o, args, n_args, keys, "snapshot", err, errlen);
	if (r == 0 && json_object_object_get_ex(o, "disks", &v) &&
	    strcmp(json_object_get_string(v), "checkpoint") != 0) {
		err_set(err, errlen, "snapshot: disks=checkpoint is the only disks argument");
		r = -EINVAL;
	}
	if (r == 0)
		r = json_to_string(o, ret);
	json_object_put(o);
	return r;
}

/* [{"id": ..., "num_fds": N, "fds": null}]: the numbers travel as SCM_RIGHTS, as CH's do. */
static struct json_object *net_fds_json(const struct remote_net_fds *n)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; arr && i < n->n_dev; i++) {
		struct json_object *o = json_object_new_object();

		if (!o)
			break;
		json_object_object_add(o, "id", json_object_new_string(n->dev[i].id));
		json_object_object_add(o, "num_fds", json_object_new_int64((int64_t)n->dev[i].num_fds));
		json_object_object_add(o, "fds", NULL);
		json_object_array_add(arr, o);
	}
	return arr;
}

static int restore_body(char **args, int n_args, struct remote_request *req, char **ret, char *err,
			size_t errlen)
{
	static const char *const restore_keys[] = { "encryption_key_file",
						    "encryption_key_credential", NULL };
	_cleanup_free_ char *url = NULL, *spec = NULL;
	struct json_object *o;
	enum restore_mode mode;
	bool resume;
	int r;

	r = remote_take_net_fds(args[0], &spec, &req->net_fds, err, errlen);
	if (r < 0)
		return r;
	r = parse_restore_spec(spec, &url, &resume, &mode);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		err_set(err, errlen, "restore: expected source_url=file:///DIR[,resume=true|false]"
			"[,memory_restore_mode=Copy|OnDemand][,prefault=true|false]"
			"[,net_fds=[ID@FD,...]], got '%s'", args[0]);
		return -EINVAL;
	}
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "source_url", json_object_new_string(url));
	json_object_object_add(o, "resume", json_object_new_boolean(resume));
	/* Not named: the gateway's default, as with CH's client. */
	if (mode != RESTORE_MODE_DEFAULT)
		json_object_object_add(o, "memory_restore_mode", json_object_new_string(
			mode == RESTORE_MODE_ON_DEMAND ? "OnDemand" : "Copy"));
	if (req->net_fds.n_dev)
		json_object_object_add(o, "net_fds", net_fds_json(&req->net_fds));
	r = add_key_args(o, args, n_args, restore_keys, "restore", err, errlen);
	if (r == 0)
		r = json_to_string(o, ret);
	json_object_put(o);
	return r;
}

/* create FILE: the file's VmConfig JSON, checked to be an object before it is sent. */
static int create_body(char **args, int n_args, struct remote_request *req, char **ret, char *err,
		       size_t errlen)
{
	const char *path = args[0];
	struct json_object *o = json_object_from_file(path);
	int r;

	if (!o || !json_object_is_type(o, json_type_object)) {
		err_set(err, errlen, "create: %s is not a readable JSON object (%s)", path,
			o ? "not an object" : json_util_get_last_err());
		json_object_put(o);
		return -EINVAL;
	}
	r = json_to_string(o, ret);
	json_object_put(o);
	return r;
}

static const struct verb verbs[] = {
	{ "ping", "GET", "/api/v1/vmm.ping", 0, 0, true, NULL },
	{ "info", "GET", "/api/v1/vm.info", 0, 0, true, NULL },
	{ "pause", "PUT", "/api/v1/vm.pause", 0, 0, false, NULL },
	{ "resume", "PUT", "/api/v1/vm.resume", 0, 0, false, NULL },
	{ "snapshot", "PUT", "/api/v1/vm.snapshot", 1, 3, false, snapshot_body },
	{ "restore", "PUT", "/api/v1/vm.restore", 1, 1, false, restore_body },
	{ "shutdown", "PUT", "/api/v1/vm.shutdown", 0, 0, false, NULL },
	{ "shutdown-vmm", "PUT", "/api/v1/vmm.shutdown", 0, 0, false, NULL },
	{ "create", "PUT", "/api/v1/vm.create", 1, 0, false, create_body },
	{ "boot", "PUT", "/api/v1/vm.boot", 0, 0, false, NULL },
	{ "delete", "PUT", "/api/v1/vm.delete", 0, 0, false, NULL },
	{ "reboot", "PUT", "/api/v1/vm.reboot", 0, 0, false, NULL },
	{ "power-button", "PUT", "/api/v1/vm.power-button", 0, 0, false, NULL },
	{ "counters", "GET", "/api/v1/vm.counters", 0, 0, true, NULL },
};

int remote_build_request(int argc, char **argv, struct remote_request *ret, char *err, size_t errlen)
{
	const struct verb *v = NULL;
	struct remote_request req = { .net_fds.n_dev = 0 };
	char *body = NULL;
	int r;

	if (argc < 1 || !argv[0]) {
		err_set(err, errlen, "no command given");
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (strcmp(verbs[i].name, argv[0]) == 0)
			v = &verbs[i];
	if (!v) {
		err_set(err, errlen, "unknown command '%s'", argv[0]);
		return -EINVAL;
	}
	if (argc - 1 < v->nargs || argc - 1 > v->nargs + v->optional_args) {
		err_set(err, errlen, "'%s' takes %d argument%s%s", v->name, v->nargs,
			v->nargs == 1 ? "" : "s", v->optional_args ? " and an optional one" : "");
		return -EINVAL;
	}
	if (v->make_body) {
		r = v->make_body(argv + 1, argc - 1, &req, &body, err, errlen);
		if (r < 0)
			return r;
	}
	req.method = v->method;
	req.path = v->path;
	req.body = body;
	req.print_body = v->print_body;
	*ret = req;
	return 0;
}

void remote_request_free(struct remote_request *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
}

int remote_parse_command_line(int argc, char **argv, const char **ret_socket,
			      struct remote_request *ret, char *err, size_t errlen)
{
	const char *socket_path = NULL;
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--api-socket") == 0 && i + 1 < argc) {
			socket_path = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--api-socket=", 13) == 0) {
			socket_path = argv[i] + 13;
			i++;
		} else {
			err_set(err, errlen, "unknown or incomplete option '%s'", argv[i]);
			return -EINVAL;
		}
	}
	if (!socket_path || !*socket_path) {
		err_set(err, errlen, "--api-socket PATH is required");
		return -EINVAL;
	}
	if (remote_build_request(argc - i, argv + i, ret, err, errlen) < 0)
		return -EINVAL;
	*ret_socket = socket_path;
	return 0;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct response *resp = opaque;
	size_t n = size * nmemb;
	char *grown;

	if (n > REMOTE_RESPONSE_MAX - resp->len) {
		resp->overflow = true;
		return 0;
	}
	grown = realloc(resp->data, resp->len + n + 1);
	if (!grown)
		return 0;
	memcpy(grown + resp->len, data, n);
	resp->len += n;
	grown[resp->len] = '\0';
	resp->data = grown;
	return n;
}

int remote_error_message(const char *body, size_t len, char **ret)
{
	struct json_object *o = NULL;
	size_t cap = len + 1, used = 0;
	char *msg;

	msg = malloc(cap);
	if (!msg)
		return -ENOMEM;
	msg[0] = '\0';
	if (body && len && !memchr(body, '\0', len))
		o = json_tokener_parse(body);
	if (o && json_object_is_type(o, json_type_array)) {
		/* Each piece is at most its share of the body, so cap always suffices. */
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			const char *s = json_object_get_string(json_object_array_get_idx(o, i));

			if (!s)
				continue;
			used += (size_t)snprintf(msg + used, cap - used, "%s%s", used ? ": " : "", s);
			if (used >= cap)
				break;
		}
	} else if (body && len) {
		memcpy(msg, body, len);
		msg[len] = '\0';
	}
	json_object_put(o);
	*ret = msg;
	return 0;
}

static CURL *remote_curl(const char *socket_path, const struct remote_request *req,
			 struct curl_slist *headers, struct response *resp, char *url, size_t urllen)
{
	CURL *curl = curl_easy_init();

	if (!curl)
		return NULL;
	snprintf(url, urllen, "http://localhost%s", req->path);
	curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, REMOTE_CONNECT_TIMEOUT_S);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, REMOTE_TIMEOUT_S);
	if (strcmp(req->method, "PUT") == 0) {
		const char *body = req->body ? req->body : "";

		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	return curl;
}

static int remote_report(const struct remote_request *req, long status, const struct response *resp,
			 FILE *out, FILE *errout)
{
	_cleanup_free_ char *msg = NULL;

	if (status >= 200 && status < 300) {
		if (req->print_body && resp->len)
			fprintf(out, "%s\n", resp->data);
		return REMOTE_EXIT_OK;
	}
	if (remote_error_message(resp->data, resp->len, &msg) < 0 || !*msg)
		fprintf(errout, "cloister-remote: %s %s failed with HTTP %ld\n", req->method, req->path, status);
	else
		fprintf(errout, "cloister-remote: HTTP %ld: %s\n", status, msg);
	return REMOTE_EXIT_FAILED;
}

/* curl cannot send descriptors: a request that carries some goes over a plain socket. */
static int remote_perform_fds(const char *socket_path, const struct remote_request *req, FILE *out,
			      FILE *errout)
{
	struct response resp = { 0 };
	char err[256] = "";
	long status = 0;
	int r, ret;

	r = remote_send_with_fds(socket_path, req->method, req->path, req->body, req->net_fds.fds,
				 req->net_fds.n_fds, REMOTE_RESPONSE_MAX, &status, &resp.data,
				 &resp.len, err, sizeof(err));
	if (r < 0) {
		fprintf(errout, "cloister-remote: %s\n", err);
		return REMOTE_EXIT_FAILED;
	}
	ret = remote_report(req, status, &resp, out, errout);
	free(resp.data);
	return ret;
}

int remote_perform(const char *socket_path, const struct remote_request *req, FILE *out, FILE *errout)
{
	struct response resp = { 0 };
	struct curl_slist *headers = NULL;
	char url[128];
	CURL *curl;
	CURLcode rc;
	long status = 0;
	int ret;

	if (req->net_fds.n_fds)
		return remote_perform_fds(socket_path, req, out, errout);
	/* "Expect:" suppresses curl's 100-continue round trip. */
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
	curl = remote_curl(socket_path, req, headers, &resp, url, sizeof(url));
	if (!curl || !headers) {
		fprintf(errout, "cloister-remote: out of memory\n");
		ret = REMOTE_EXIT_FAILED;
		goto out;
	}
	rc = curl_easy_perform(curl);
	if (rc == CURLE_COULDNT_CONNECT) {
		fprintf(errout, "cloister-remote: cannot connect to the API socket %s: is cloister running?\n",
			socket_path);
		ret = REMOTE_EXIT_FAILED;
	} else if (resp.overflow) {
		fprintf(errout, "cloister-remote: the response is larger than %u bytes\n", REMOTE_RESPONSE_MAX);
		ret = REMOTE_EXIT_FAILED;
	} else if (rc != CURLE_OK) {
		fprintf(errout, "cloister-remote: request to %s failed: %s\n", socket_path, curl_easy_strerror(rc));
		ret = REMOTE_EXIT_FAILED;
	} else {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		ret = remote_report(req, status, &resp, out, errout);
	}
out:
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	free(resp.data);
	return ret;
}

void remote_usage(FILE *f)
{
	fputs("Usage: cloister-remote --api-socket PATH COMMAND [ARG]\n"
	      "Commands:\n"
	      "  ping                                 VMM version and pid\n"
	      "  create FILE                          create a VM from a VmConfig JSON file\n"
	      "  boot                                 boot the created VM\n"
	      "  info                                 VM configuration and state\n"
	      "  counters                             per-device I/O counters\n"
	      "  pause | resume                       stop or continue the vCPUs\n"
	      "  snapshot file:///DIR [disks=checkpoint] [compression=zstd]\n"
	      "           [encryption_key_file=PATH|encryption_key_credential=NAME]\n"
	      "                                       save a paused VM into DIR (with a copy\n"
	      "                                       of every writable disk; its memory\n"
	      "                                       compressed; sealed with the key)\n"
	      "  restore source_url=file:///DIR[,resume=true|false][,memory_restore_mode=Copy|OnDemand]\n"
	      "          [,net_fds=[ID@FD,ID@[FD,...]]]\n"
	      "                                       restore a snapshot; OnDemand pages memory in as\n"
	      "                                       the guest touches it (prefault=true: Copy);\n"
	      "                                       net_fds: NICs on tap descriptors this program\n"
	      "                                       inherited, sent along with SCM_RIGHTS\n"
	      "          [encryption_key_file=PATH|encryption_key_credential=NAME]\n"
	      "                                       the key of an encrypted snapshot\n"
	      "  reboot                               reset the VM and boot it again\n"
	      "  power-button                         press the VM's power button\n"
	      "  shutdown                             shut the VM down (it can boot again)\n"
	      "  delete                               shut down and forget the VM\n"
	      "  shutdown-vmm                         stop cloister itself\n", f);
}

int remote_main(int argc, char **argv, FILE *out, FILE *errout)
{
	struct remote_request req;
	const char *socket_path;
	char err[256] = "";
	int ret;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		remote_usage(out);
		return REMOTE_EXIT_OK;
	}
	if (remote_parse_command_line(argc, argv, &socket_path, &req, err, sizeof(err)) < 0) {
		fprintf(errout, "cloister-remote: %s\n", err);
		remote_usage(errout);
		return REMOTE_EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(errout, "cloister-remote: cannot initialise libcurl\n");
		remote_request_free(&req);
		return REMOTE_EXIT_FAILED;
	}
	ret = remote_perform(socket_path, &req, out, errout);
	remote_request_free(&req);
	curl_global_cleanup();
	return ret;
}
