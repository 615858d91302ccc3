/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small printf: %d %i %u %x %c %s %p %%, with 0 flag, width and the l, ll
 * and z length modifiers. Output is always NUL-terminated and truncated to fit.
 */
#include "rt.h"

struct fmt_out {
	char *buf;
	size_t size, len;
};

static void fmt_putc(struct fmt_out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void fmt_number(struct fmt_out *o, uint64_t v, bool neg, unsigned base,
		       unsigned width, char pad)
{
	char digits[24];
	unsigned n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		digits[n++] = '-';
	while (width > n) {
		fmt_putc(o, pad);
		width--;
	}
	while (n)
		fmt_putc(o, digits[--n]);
}

static uint64_t fmt_unsigned_arg(va_list *ap, int lmod)
{
	if (lmod >= 1)
		return va_arg(*ap, unsigned long);
	return va_arg(*ap, unsigned int);
}

static int64_t fmt_signed_arg(va_list *ap, int lmod)
{
	if (lmod >= 1)
		return va_arg(*ap, long);
	return va_arg(*ap, int);
}

static void fmt_conversion(struct fmt_out *o, char conv, int lmod, unsigned width, char pad,
			   va_list *ap)
{
	const char *s;
	int64_t sv;

	switch (conv) {
	case 'd':
	case 'i':
		sv = fmt_signed_arg(ap, lmod);
		fmt_number(o, sv < 0 ? -(uint64_t)sv : (uint64_t)sv, sv < 0, 10, width, pad);
		break;
	case 'u':
		fmt_number(o, fmt_unsigned_arg(ap, lmod), false, 10, width, pad);
		break;
	case 'x':
		fmt_number(o, fmt_unsigned_arg(ap, lmod), false, 16, width, pad);
		break;
	case 'p':
		fmt_putc(o, '0');
		fmt_putc(o, 'x');
		fmt_number(o, (uintptr_t)va_arg(*ap, void *), false, 16, width, pad);
		break;
	case 'c':
		fmt_putc(o, (char)va_arg(*ap, int));
		break;
	case 's':
		s = va_arg(*ap, const char *);
		for (s = s ? s : "(null)"; *s; s++)
			fmt_putc(o, *s);
		break;
	default:
		fmt_putc(o, '%');
		fmt_putc(o, conv);
		break;
	}
}

int gvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct fmt_out o = { .buf = buf, .size = size };
	va_list aq;

	va_copy(aq, ap);
	while (*fmt) {
		unsigned width = 0;
		char pad = ' ';
		int lmod = 0;

		if (*fmt != '%') {
			fmt_putc(&o, *fmt++);
			continue;
		}
		if (*++fmt == '%') {
			fmt_putc(&o, *fmt++);
			continue;
		}
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned)(*fmt++ - '0');
		for (; *fmt == 'l' || *fmt == 'z'; fmt++)
			lmod++;
		if (!*fmt)
			break;
		fmt_conversion(&o, *fmt++, lmod, width, pad, &aq);
	}
	va_end(aq);
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int gsnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = gvsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

/* Formats the whole line first so it reaches the console in one write. */
int gprintf(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = gvsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	console_write(line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
	return n;
}
