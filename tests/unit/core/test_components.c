/* SPDX-License-Identifier: Apache-2.0 */
/* The component list: walking order, undo on a failure midway, errors that name the component. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "component.h"

struct fake_part {
	const char *name;
	bool running;
	int fail_pause, fail_resume, fail_save, fail_restore;
	unsigned pauses, resumes;
};

static char calls[256];

static void note(struct fake_part *f, char op)
{
	size_t n = strlen(calls);

	if (n + 3 < sizeof(calls)) {
		calls[n] = op;
		calls[n + 1] = f->name[0];
		calls[n + 2] = '\0';
	}
}

static int fake_pause(void *obj, char *err, size_t errlen)
{
	struct fake_part *f = obj;

	note(f, 'p');
	if (f->fail_pause) {
		snprintf(err, errlen, "stuck");
		return f->fail_pause;
	}
	f->running = false;
	f->pauses++;
	return 0;
}

static int fake_resume(void *obj, char *err, size_t errlen)
{
	struct fake_part *f = obj;

	note(f, 'r');
	if (f->fail_resume)
		return f->fail_resume;
	f->running = true;
	f->resumes++;
	return 0;
}

static int fake_save(void *obj, Cloister__VmState *state, char *err, size_t errlen)
{
	struct fake_part *f = obj;

	note(f, 's');
	return f->fail_save;
}

static int fake_restore(void *obj, const Cloister__VmState *state, char *err, size_t errlen)
{
	struct fake_part *f = obj;

	note(f, 'l');
	if (f->fail_restore)
		snprintf(err, errlen, "refused");
	return f->fail_restore;
}

static const struct component_ops fake_ops = {
	.pause = fake_pause,
	.resume = fake_resume,
	.save = fake_save,
	.restore = fake_restore,
};

static struct component_list list;
static struct fake_part a, b, c;

static void setup(void)
{
	memset(&list, 0, sizeof(list));
	calls[0] = '\0';
	a = (struct fake_part){ .name = "a", .running = true };
	b = (struct fake_part){ .name = "b", .running = true };
	c = (struct fake_part){ .name = "c", .running = true };
	cr_assert_eq(component_add(&list, "alpha", &fake_ops, &a, false), 0);
	cr_assert_eq(component_add(&list, "beta", &fake_ops, &b, false), 0);
	cr_assert_eq(component_add(&list, "gamma", &fake_ops, &c, false), 0);
}

TestSuite(components, .init = setup);

Test(components, pause_forward_resume_backward)
{
	char err[COMPONENT_ERR_MAX] = "";

	cr_assert_eq(component_pause_all(&list, err, sizeof(err)), 0);
	cr_assert_str_eq(calls, "papbpc");
	cr_assert(!a.running && !b.running && !c.running);
	calls[0] = '\0';
	cr_assert_eq(component_resume_all(&list, err, sizeof(err)), 0);
	cr_assert_str_eq(calls, "rcrbra");
	cr_assert(a.running && b.running && c.running);
}

Test(components, failed_pause_resumes_what_it_paused)
{
	char err[COMPONENT_ERR_MAX] = "";

	c.fail_pause = -ETIMEDOUT;
	cr_assert_eq(component_pause_all(&list, err, sizeof(err)), -ETIMEDOUT);
	cr_assert_str_eq(err, "gamma: stuck");
	cr_assert_str_eq(calls, "papbpcrbra");
	cr_assert(a.running && b.running && c.running, "everything runs as before");
	cr_assert(!list.c[0].paused && !list.c[1].paused && !list.c[2].paused);
	/* The next pause starts from scratch. */
	c.fail_pause = 0;
	cr_assert_eq(component_pause_all(&list, err, sizeof(err)), 0);
	cr_assert_eq(a.pauses, 2);
}

Test(components, failed_resume_pauses_again)
{
	char err[COMPONENT_ERR_MAX] = "";

	cr_assert_eq(component_pause_all(&list, err, sizeof(err)), 0);
	calls[0] = '\0';
	a.fail_resume = -EIO;
	cr_assert_eq(component_resume_all(&list, err, sizeof(err)), -EIO);
	cr_assert(strstr(err, "alpha: ") == err, "error names the component: %s", err);
	cr_assert_str_eq(calls, "rcrbrapbpc");
	cr_assert(!a.running && !b.running && !c.running, "everything stays paused");
}

Test(components, save_needs_everything_paused)
{
	Cloister__VmState st = CLOISTER__VM_STATE__INIT;
	char err[COMPONENT_ERR_MAX] = "";

	cr_assert_eq(component_save_all(&list, &st, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "alpha") != NULL);
	cr_assert_eq(component_pause_all(&list, err, sizeof(err)), 0);
	calls[0] = '\0';
	cr_assert_eq(component_save_all(&list, &st, err, sizeof(err)), 0);
	cr_assert_str_eq(calls, "sasbsc");
}

Test(components, restore_stops_at_the_first_refusal)
{
	Cloister__VmState st = CLOISTER__VM_STATE__INIT;
	char err[COMPONENT_ERR_MAX] = "";

	b.fail_restore = -EINVAL;
	cr_assert_eq(component_restore_all(&list, &st, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "beta: refused");
	cr_assert_str_eq(calls, "lalb");
	b.fail_restore = 0;
	cr_assert_eq(component_restore_all(&list, &st, err, sizeof(err)), 0);
	cr_assert(list.c[2].paused, "a restored component waits for resume");
}

static const struct component_ops no_save_ops = { .pause = fake_pause, .resume = fake_resume };
static const struct component_ops stateless_ops = {
	.pause = fake_pause, .resume = fake_resume, .stateless = true,
};
static const struct component_ops half_ops = { .pause = fake_pause, .save = fake_save,
					       .restore = fake_restore };

Test(components, add_refuses_what_would_save_nothing)
{
	cr_assert_eq(component_add(&list, "quiet", &no_save_ops, &a, false), -EINVAL);
	cr_assert_eq(component_add(&list, "half", &half_ops, &a, false), -EINVAL);
	cr_assert_eq(component_add(&list, "alpha", &fake_ops, &a, false), -EEXIST);
	cr_assert_eq(component_add(&list, "", &fake_ops, &a, false), -EINVAL);
	cr_assert_eq(component_add(&list, "host side", &stateless_ops, &a, false), 0);
	cr_assert_eq(list.n, 4);
}
