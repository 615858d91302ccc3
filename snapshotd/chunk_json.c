/* SPDX-License-Identifier: Apache-2.0 */
#include "chunk_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cleanup.h"
#include "digest.h"
#include "errmsg.h"

#define HEX_DIGEST (2 * CHUNK_DIGEST_BYTES)
#define ENVELOPE_AD "cloister vm.json"
/* An envelope's sealed text is at most the largest vm.json, base64 and all. */
#define ENVELOPE_MAX_TEXT (16u << 20)

static struct json_object *hex_string(const uint8_t *bin, size_t len)
{
	char hex[2 * 64 + 1];

	sodium_bin2hex(hex, sizeof(hex), bin, len);
	return json_object_new_string(hex);
}

/* Exactly len bytes of hex in o. */
static int parse_hex(struct json_object *o, uint8_t *bin, size_t len)
{
	const char *s;
	size_t got = 0;

	if (!json_object_is_type(o, json_type_string))
		return -EINVAL;
	s = json_object_get_string(o);
	if (strlen(s) != 2 * len || sodium_hex2bin(bin, len, s, 2 * len, NULL, &got, NULL) != 0 ||
	    got != len)
		return -EINVAL;
	return 0;
}

struct json_object *chunk_integrity_json(const struct chunk_set *s)
{
	struct json_object *o = json_object_new_object();
	char zeros[HEX_DIGEST + 1];

	if (!o)
		return NULL;
	memset(zeros, '0', HEX_DIGEST);
	zeros[HEX_DIGEST] = '\0';
	json_object_object_add(o, "digest", json_object_new_string(CHUNK_DIGEST_NAME));
	json_object_object_add(o, "chunk_size", json_object_new_uint64(CHUNK_SIZE));
	json_object_object_add(o, "compression", json_object_new_string(s->fmt.zstd ? "zstd" : "none"));
	json_object_object_add(o, "encryption", json_object_new_string(s->fmt.sealed ? CHUNK_CIPHER :
								       "none"));
	json_object_object_add(o, "id", hex_string(s->fmt.id, CHUNK_ID_BYTES));
	json_object_object_add(o, "document", json_object_new_string(zeros));
	return o;
}

static struct json_object *entry_json(const struct chunk_set *s, const struct chunk_entry *e)
{
	struct json_object *a;

	if (e->zero)
		return json_object_new_string("zero");
	if (!s->fmt.zstd && !s->fmt.sealed)
		return hex_string(e->digest, CHUNK_DIGEST_BYTES);
	a = json_object_new_array();
	if (!a)
		return NULL;
	json_object_array_add(a, json_object_new_uint64(e->offset));
	json_object_array_add(a, json_object_new_uint64(e->length));
	json_object_array_add(a, hex_string(e->digest, CHUNK_DIGEST_BYTES));
	return a;
}

struct json_object *chunk_table_json(const struct chunk_set *s, size_t i)
{
	struct json_object *arr = json_object_new_array_ext((int)s->t[i].n);

	for (size_t k = 0; arr && k < s->t[i].n; k++) {
		struct json_object *e = entry_json(s, &s->t[i].e[k]);

		if (!e) {
			json_object_put(arr);
			return NULL;
		}
		json_object_array_add(arr, e);
	}
	return arr;
}

static int get_string(struct json_object *o, const char *key, const char **ret)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return -EINVAL;
	*ret = json_object_get_string(v);
	return 0;
}

static int one_of(const char *v, const char *a, const char *b, bool *ret_b)
{
	if (strcmp(v, a) == 0 || strcmp(v, b) == 0) {
		*ret_b = strcmp(v, b) == 0;
		return 0;
	}
	return -EINVAL;
}

int chunk_integrity_from_json(struct json_object *o, struct chunk_format *fmt,
			      char doc_hex[HEX_DIGEST + 1], char *err, size_t errlen)
{
	static const char *const keys[] = { "digest", "chunk_size", "compression", "encryption",
					    "id", "document" };
	const char *dg = "", *comp = "", *enc = "", *doc = "";
	struct json_object *cs = NULL, *id = NULL;
	uint8_t bin[CHUNK_DIGEST_BYTES];

	if (!json_object_is_type(o, json_type_object)) {
		err_set(err, errlen, "integrity: expected an object");
		return -EINVAL;
	}
	json_object_object_foreach(o, key, val) {
		size_t k = 0;

		(void)val;
		while (k < ARRAY_SIZE(keys) && strcmp(key, keys[k]) != 0)
			k++;
		if (k == ARRAY_SIZE(keys)) {
			err_set(err, errlen, "integrity.%.64s: unknown key", key);
			return -EINVAL;
		}
	}
	if (get_string(o, "digest", &dg) < 0 || strcmp(dg, CHUNK_DIGEST_NAME) != 0 ||
	    !json_object_object_get_ex(o, "chunk_size", &cs) ||
	    !json_object_is_type(cs, json_type_int) || json_object_get_int64(cs) != CHUNK_SIZE) {
		err_set(err, errlen, "integrity: this build reads digest \"%s\" and chunk_size %u only",
			CHUNK_DIGEST_NAME, CHUNK_SIZE);
		return -EINVAL;
	}
	if (get_string(o, "compression", &comp) < 0 || one_of(comp, "none", "zstd", &fmt->zstd) < 0 ||
	    get_string(o, "encryption", &enc) < 0 ||
	    one_of(enc, "none", CHUNK_CIPHER, &fmt->sealed) < 0) {
		err_set(err, errlen, "integrity: compression must be \"none\" or \"zstd\", encryption"
			" \"none\" or \"%s\"", CHUNK_CIPHER);
		return -EINVAL;
	}
	if (!json_object_object_get_ex(o, "id", &id) || parse_hex(id, fmt->id, CHUNK_ID_BYTES) < 0 ||
	    get_string(o, "document", &doc) < 0 ||
	    parse_hex(json_object_object_get(o, "document"), bin, sizeof(bin)) < 0) {
		err_set(err, errlen, "integrity: id must be %d hex digits and document %d",
			2 * CHUNK_ID_BYTES, HEX_DIGEST);
		return -EINVAL;
	}
	memcpy(doc_hex, doc, HEX_DIGEST + 1);
	return 0;
}

static int entry_from_json(const struct chunk_set *s, struct json_object *v,
			   struct chunk_entry *e)
{
	bool stored = s->fmt.zstd || s->fmt.sealed;
	struct json_object *off, *len;

	if (json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), "zero") == 0) {
		e->zero = true;
		return 0;
	}
	if (!stored)
		return parse_hex(v, e->digest, CHUNK_DIGEST_BYTES);
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 3)
		return -EINVAL;
	off = json_object_array_get_idx(v, 0);
	len = json_object_array_get_idx(v, 1);
	/* json-c keeps integers above INT64_MAX as unsigned; the text check refused worse. */
	if (!json_object_is_type(off, json_type_int) || !json_object_is_type(len, json_type_int) ||
	    json_object_get_int64(off) < 0 || json_object_get_int64(len) < 0 ||
	    json_object_get_int64(len) > UINT32_MAX)
		return -EINVAL;
	e->offset = (uint64_t)json_object_get_int64(off);
	e->length = (uint32_t)json_object_get_int64(len);
	return parse_hex(json_object_array_get_idx(v, 2), e->digest, CHUNK_DIGEST_BYTES);
}

int chunk_table_from_json(struct chunk_set *s, size_t i, struct json_object *arr, char *err,
			  size_t errlen)
{
	struct chunk_table *t = &s->t[i];

	if (!json_object_is_type(arr, json_type_array) || json_object_array_length(arr) != t->n) {
		err_set(err, errlen, "memory_regions[%zu].chunks: expected an array of %zu chunks", i,
			t->n);
		return -EINVAL;
	}
	for (size_t k = 0; k < t->n; k++) {
		struct chunk_entry *e = &t->e[k];

		*e = (struct chunk_entry){ .zero = false };
		if (entry_from_json(s, json_object_array_get_idx(arr, k), e) < 0) {
			err_set(err, errlen, "memory_regions[%zu].chunks[%zu]: expected \"zero\" or %s", i,
				k, s->fmt.zstd || s->fmt.sealed ? "[offset, length, digest]" :
				"a digest of 64 hex digits");
			return -EINVAL;
		}
		if (!s->fmt.zstd && !s->fmt.sealed) {
			e->offset = (uint64_t)k * CHUNK_SIZE;
			e->length = (uint32_t)chunk_len(t->size, k);
		}
	}
	return 0;
}

/* The placeholder or digest after "document" in text: its 64 digits. */
static char *document_digits(char *text)
{
	char *p = strstr(text, "\"document\"");

	if (!p)
		return NULL;
	p = strchr(p + 10, '"');
	if (!p || strspn(p + 1, "0123456789abcdef") != HEX_DIGEST || p[1 + HEX_DIGEST] != '"')
		return NULL;
	return p + 1;
}

int chunk_document_seal_digest(char *text)
{
	char *digits = document_digits(text);
	uint8_t d[CHUNK_DIGEST_BYTES];
	char hex[HEX_DIGEST + 1];

	if (!digits)
		return -EINVAL;
	if (digest_bytes(text, strlen(text), d) < 0)
		return -EIO;
	sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
	memcpy(digits, hex, HEX_DIGEST);
	return 0;
}

int chunk_document_check(const char *text, size_t len, const char *doc_hex, char *err,
			 size_t errlen)
{
	_cleanup_free_ char *copy = malloc(len + 1);
	uint8_t d[CHUNK_DIGEST_BYTES];
	char hex[HEX_DIGEST + 1], *digits;

	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	copy[len] = '\0';
	digits = document_digits(copy);
	if (!digits || memcmp(digits, doc_hex, HEX_DIGEST) != 0 || strlen(copy) != len) {
		err_set(err, errlen, "vm.json: integrity.document is not where it should be");
		return -EBADMSG;
	}
	memset(digits, '0', HEX_DIGEST);
	if (digest_bytes(copy, len, d) < 0) {
		err_set(err, errlen, "vm.json: its digest cannot be computed");
		return -EIO;
	}
	sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
	if (sodium_memcmp(hex, doc_hex, HEX_DIGEST) != 0) {
		err_set(err, errlen, "vm.json does not match its digest (integrity.document): the"
			" snapshot is damaged or was altered");
		return -EBADMSG;
	}
	return 0;
}

int chunk_envelope_seal(const char *text, const uint8_t key[CHUNK_KEY_BYTES], char **ret_text)
{
	size_t len = strlen(text), b64len = sodium_base64_ENCODED_LEN(len + CHUNK_TAG_BYTES,
					sodium_base64_VARIANT_ORIGINAL);
	_cleanup_free_ uint8_t *ct = malloc(len + CHUNK_TAG_BYTES);
	_cleanup_free_ char *b64 = malloc(b64len);
	struct json_object *doc = json_object_new_object(), *enc = json_object_new_object();
	uint8_t nonce[CHUNK_NONCE_BYTES];
	unsigned long long clen;
	const char *out;
	int r = -ENOMEM;

	if (!ct || !b64 || !doc || !enc)
		goto done;
	randombytes_buf(nonce, sizeof(nonce));
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, (const uint8_t *)text, len,
						   (const uint8_t *)ENVELOPE_AD,
						   strlen(ENVELOPE_AD), NULL, nonce, key);
	sodium_bin2base64(b64, b64len, ct, (size_t)clen, sodium_base64_VARIANT_ORIGINAL);
	json_object_object_add(enc, "cipher", json_object_new_string(CHUNK_CIPHER));
	json_object_object_add(enc, "key", json_object_new_string("required"));
	json_object_object_add(enc, "nonce", hex_string(nonce, sizeof(nonce)));
	json_object_object_add(enc, "sealed", json_object_new_string(b64));
	json_object_object_add(doc, "version", json_object_new_int(1));
	json_object_object_add(doc, "encrypted", enc);
	enc = NULL;
	out = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
					     JSON_C_TO_STRING_NOSLASHESCAPE);
	*ret_text = out ? strdup(out) : NULL;
	r = *ret_text ? 0 : -ENOMEM;
done:
	json_object_put(enc);
	json_object_put(doc);
	return r;
}

bool chunk_envelope_is(struct json_object *doc)
{
	return json_object_is_type(doc, json_type_object) &&
	       json_object_object_get_ex(doc, "encrypted", NULL);
}

static int envelope_fields(struct json_object *doc, uint8_t nonce[CHUNK_NONCE_BYTES],
			   const char **ret_b64)
{
	struct json_object *enc, *v;
	const char *cipher = "";
	size_t n = 0;

	json_object_object_foreach(doc, key, val) {
		(void)val;
		if (strcmp(key, "version") && strcmp(key, "encrypted"))
			return -EINVAL;
	}
	if (!json_object_object_get_ex(doc, "version", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) != 1 || !json_object_object_get_ex(doc, "encrypted", &enc) ||
	    !json_object_is_type(enc, json_type_object))
		return -EINVAL;
	json_object_object_foreach(enc, k, val2) {
		(void)val2;
		n++;
		if (strcmp(k, "cipher") && strcmp(k, "key") && strcmp(k, "nonce") && strcmp(k, "sealed"))
			return -EINVAL;
	}
	if (get_string(enc, "cipher", &cipher) < 0 || strcmp(cipher, CHUNK_CIPHER) != 0 ||
	    !json_object_object_get_ex(enc, "nonce", &v) || parse_hex(v, nonce, CHUNK_NONCE_BYTES) < 0 ||
	    get_string(enc, "sealed", ret_b64) < 0)
		return -EINVAL;
	return 0;
}

int chunk_envelope_open(struct json_object *doc, const uint8_t *key, char **ret_text,
			size_t *ret_len, char *err, size_t errlen)
{
	uint8_t nonce[CHUNK_NONCE_BYTES];
	_cleanup_free_ uint8_t *ct = NULL;
	_cleanup_free_ char *text = NULL;
	unsigned long long plen;
	const char *b64 = NULL;
	size_t blen, clen = 0;

	if (envelope_fields(doc, nonce, &b64) < 0) {
		err_set(err, errlen, "vm.json: the encryption envelope is not one this build reads"
			" (cipher %s, a nonce of %d hex digits, base64 sealed text)", CHUNK_CIPHER,
			2 * CHUNK_NONCE_BYTES);
		return -EINVAL;
	}
	if (!key) {
		err_set(err, errlen, "the snapshot is encrypted: restoring it needs its key"
			" (encryption_key_file or encryption_key_credential)");
		return -ENOKEY;
	}
	blen = strlen(b64);
	if (blen > ENVELOPE_MAX_TEXT || !(ct = malloc(blen / 4 * 3 + 3)) ||
	    sodium_base642bin(ct, blen / 4 * 3 + 3, b64, blen, NULL, &clen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || clen < CHUNK_TAG_BYTES) {
		err_set(err, errlen, "vm.json: the sealed text is not base64 of a sealed document");
		return -EINVAL;
	}
	text = malloc(clen - CHUNK_TAG_BYTES + 1);
	if (!text)
		return -ENOMEM;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)text, &plen, NULL, ct, clen,
						       (const uint8_t *)ENVELOPE_AD,
						       strlen(ENVELOPE_AD), nonce, key) != 0) {
		err_set(err, errlen, "the snapshot does not open with this key: a wrong key, or"
			" vm.json was altered");
		return -EKEYREJECTED;
	}
	text[plen] = '\0';
	*ret_len = (size_t)plen;
	*ret_text = TAKE_PTR(text);
	return 0;
}
