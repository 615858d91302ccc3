/* SPDX-License-Identifier: Apache-2.0 */
#include "component.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

int component_add(struct component_list *l, const char *id, const struct component_ops *ops,
		  void *obj, bool paused)
{
	if (!id || !id[0] || strlen(id) >= COMPONENT_ID_MAX || !ops || !ops->pause != !ops->resume)
		return -EINVAL;
	if (!ops->stateless && (!ops->save || !ops->restore))
		return -EINVAL;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->c[i].id, id) == 0)
			return -EEXIST;
	if (l->n == COMPONENT_LIST_MAX)
		return -ENOSPC;
	l->c[l->n] = (struct component){ .ops = ops, .obj = obj, .paused = paused };
	snprintf(l->c[l->n].id, sizeof(l->c[l->n].id), "%s", id);
	l->n++;
	return 0;
}

/* Puts "id: why" in err; why defaults to the errno text. */
static void name_error(const struct component *c, const char *why, int r, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s", c->id, why[0] ? why : strerror(-r));
}

static int component_pause(struct component *c, char *err, size_t errlen)
{
	char why[COMPONENT_ERR_MAX] = "";
	int r;

	if (c->paused)
		return 0;
	r = c->ops->pause ? c->ops->pause(c->obj, why, sizeof(why)) : 0;
	if (r < 0) {
		name_error(c, why, r, err, errlen);
		return r;
	}
	c->paused = true;
	return 0;
}

static int component_resume(struct component *c, char *err, size_t errlen)
{
	char why[COMPONENT_ERR_MAX] = "";
	int r;

	if (!c->paused)
		return 0;
	r = c->ops->resume ? c->ops->resume(c->obj, why, sizeof(why)) : 0;
	if (r < 0) {
		name_error(c, why, r, err, errlen);
		return r;
	}
	c->paused = false;
	return 0;
}

/* Undoing a pause: a failure here is logged, the first error stays the one reported. */
static void resume_back(struct component_list *l, size_t from, size_t to, const bool *touched)
{
	char err[COMPONENT_ERR_MAX];

	for (size_t i = to; i-- > from;) {
		if (touched[i] && component_resume(&l->c[i], err, sizeof(err)) < 0)
			log_error("cannot undo a failed pause: %s", err);
	}
}

int component_pause_all(struct component_list *l, char *err, size_t errlen)
{
	bool touched[COMPONENT_LIST_MAX] = { false };
	int r;

	for (size_t i = 0; i < l->n; i++) {
		touched[i] = !l->c[i].paused;
		r = component_pause(&l->c[i], err, errlen);
		if (r < 0) {
			resume_back(l, 0, i, touched);
			return r;
		}
	}
	return 0;
}

int component_resume_all(struct component_list *l, char *err, size_t errlen)
{
	bool touched[COMPONENT_LIST_MAX] = { false };
	char again[COMPONENT_ERR_MAX];
	int r;

	for (size_t i = l->n; i-- > 0;) {
		touched[i] = l->c[i].paused;
		r = component_resume(&l->c[i], err, errlen);
		if (r < 0) {
			for (size_t j = i + 1; j < l->n; j++)
				if (touched[j] && component_pause(&l->c[j], again, sizeof(again)) < 0)
					log_error("cannot undo a failed resume: %s", again);
			return r;
		}
	}
	return 0;
}

int component_save_all(struct component_list *l, Cloister__VmState *state, char *err,
		       size_t errlen)
{
	for (size_t i = 0; i < l->n; i++) {
		struct component *c = &l->c[i];
		char why[COMPONENT_ERR_MAX] = "";
		int r;

		if (c->ops->stateless)
			continue;
		if (!c->paused) {
			snprintf(err, errlen, "%s: not paused, cannot be saved", c->id);
			return -EBUSY;
		}
		r = c->ops->save(c->obj, state, why, sizeof(why));
		if (r < 0) {
			name_error(c, why, r, err, errlen);
			return r;
		}
	}
	return 0;
}

int component_restore_all(struct component_list *l, const Cloister__VmState *state, char *err,
			  size_t errlen)
{
	for (size_t i = 0; i < l->n; i++) {
		struct component *c = &l->c[i];
		char why[COMPONENT_ERR_MAX] = "";
		int r;

		if (c->ops->stateless)
			continue;
		r = c->ops->restore(c->obj, state, why, sizeof(why));
		if (r < 0) {
			name_error(c, why, r, err, errlen);
			return r;
		}
		c->paused = true;
	}
	return 0;
}
