/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Floating-point differential program: F and D arithmetic in every rounding
 * mode, conversions with saturation, fmin/fmax with NaNs and signed zeros,
 * fclass, sign injection and NaN boxing. Results are bit patterns, each
 * followed by the fflags the operation raised.
 */
#include "probe.h"

typedef uint64_t (*fp_fn)(uint64_t a, uint64_t b, uint64_t c);

#define FP3_D(fn, body)                                                            \
	static uint64_t fn(uint64_t a, uint64_t b, uint64_t c)                     \
	{                                                                          \
		uint64_t r;                                                        \
		__asm__ volatile("fmv.d.x ft0, %1\n\tfmv.d.x ft1, %2\n\tfmv.d.x ft2, %3\n\t" \
				 body "\n\tfmv.x.d %0, ft3"                        \
				 : "=r"(r) : "r"(a), "r"(b), "r"(c) : "ft0", "ft1", "ft2", "ft3"); \
		return r;                                                          \
	}

/* Single operands go in with fmv.w.x (NaN-boxed) and come out as 32 bits. */
#define FP3_S(fn, body)                                                            \
	static uint64_t fn(uint64_t a, uint64_t b, uint64_t c)                     \
	{                                                                          \
		uint64_t r;                                                        \
		__asm__ volatile("fmv.w.x ft0, %1\n\tfmv.w.x ft1, %2\n\tfmv.w.x ft2, %3\n\t" \
				 body "\n\tfmv.x.w %0, ft3"                        \
				 : "=r"(r) : "r"(a), "r"(b), "r"(c) : "ft0", "ft1", "ft2", "ft3"); \
		return r & 0xffffffffu;                                            \
	}

/* Float to integer: the result is an integer register. */
#define FP_TOINT(fn, mv, body)                                                     \
	static uint64_t fn(uint64_t a, uint64_t b, uint64_t c)                     \
	{                                                                          \
		uint64_t r;                                                        \
		__asm__ volatile(mv " ft0, %1\n\t" body                            \
				 : "=r"(r) : "r"(a) : "ft0");                       \
		return r;                                                          \
	}

FP3_D(fadd_d, "fadd.d ft3, ft0, ft1")
FP3_D(fsub_d, "fsub.d ft3, ft0, ft1")
FP3_D(fmul_d, "fmul.d ft3, ft0, ft1")
FP3_D(fdiv_d, "fdiv.d ft3, ft0, ft1")
FP3_D(fsqrt_d, "fsqrt.d ft3, ft0")
FP3_D(fmadd_d, "fmadd.d ft3, ft0, ft1, ft2")
FP3_D(fnmsub_d, "fnmsub.d ft3, ft0, ft1, ft2")
FP3_D(fmin_d, "fmin.d ft3, ft0, ft1")
FP3_D(fmax_d, "fmax.d ft3, ft0, ft1")
FP3_D(fsgnjn_d, "fsgnjn.d ft3, ft0, ft1")
FP3_D(fsgnjx_d, "fsgnjx.d ft3, ft0, ft1")
FP3_D(fcvt_s_d, "fcvt.s.d ft3, ft0\n\tfcvt.d.s ft3, ft3")
FP3_S(fadd_s, "fadd.s ft3, ft0, ft1")
FP3_S(fmul_s, "fmul.s ft3, ft0, ft1")
FP3_S(fdiv_s, "fdiv.s ft3, ft0, ft1")
FP3_S(fsqrt_s, "fsqrt.s ft3, ft0")
FP3_S(fmsub_s, "fmsub.s ft3, ft0, ft1, ft2")
FP3_S(fmin_s, "fmin.s ft3, ft0, ft1")
FP3_S(fmax_s, "fmax.s ft3, ft0, ft1")
FP_TOINT(fcvt_w_d, "fmv.d.x", "fcvt.w.d %0, ft0")
FP_TOINT(fcvt_wu_d, "fmv.d.x", "fcvt.wu.d %0, ft0")
FP_TOINT(fcvt_l_d, "fmv.d.x", "fcvt.l.d %0, ft0")
FP_TOINT(fcvt_lu_d, "fmv.d.x", "fcvt.lu.d %0, ft0")
FP_TOINT(fcvt_w_s, "fmv.w.x", "fcvt.w.s %0, ft0")
FP_TOINT(fcvt_lu_s, "fmv.w.x", "fcvt.lu.s %0, ft0")
FP_TOINT(fclass_d, "fmv.d.x", "fclass.d %0, ft0")
FP_TOINT(fclass_s, "fmv.w.x", "fclass.s %0, ft0")
FP_TOINT(feq_d_self, "fmv.d.x", "feq.d %0, ft0, ft0")
FP_TOINT(flt_d_self, "fmv.d.x", "flt.d %0, ft0, ft0")

static uint64_t fcvt_d_l(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t r;

	__asm__ volatile("fcvt.d.l ft0, %1\n\tfmv.x.d %0, ft0" : "=r"(r) : "r"(a) : "ft0");
	return r;
}

static uint64_t fcvt_s_wu(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t r;

	__asm__ volatile("fcvt.s.wu ft0, %1\n\tfmv.x.w %0, ft0" : "=r"(r) : "r"(a) : "ft0");
	return r & 0xffffffffu;
}

/* A D register holding a non-boxed single must read as the canonical NaN. */
static uint64_t unboxed_add_s(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t r;

	__asm__ volatile("fmv.d.x ft0, %1\n\tfmv.w.x ft1, %2\n\tfadd.s ft3, ft0, ft1\n\t"
			 "fmv.x.d %0, ft3"
			 : "=r"(r) : "r"(a), "r"(b) : "ft0", "ft1", "ft3");
	return r;
}

/* A static rounding mode in the instruction overrides frm. */
static uint64_t fadd_d_rtz(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t r;

	__asm__ volatile("fmv.d.x ft0, %1\n\tfmv.d.x ft1, %2\n\tfadd.d ft3, ft0, ft1, rtz\n\t"
			 "fmv.x.d %0, ft3"
			 : "=r"(r) : "r"(a), "r"(b) : "ft0", "ft1", "ft3");
	return r;
}

#define D_ONE 0x3ff0000000000000ull
#define D_THIRD 0x3fd5555555555555ull
#define D_NEG_TWO 0xc000000000000000ull
#define D_MAX 0x7fefffffffffffffull
#define D_MIN_SUB 0x0000000000000001ull
#define D_NEG_ZERO 0x8000000000000000ull
#define D_INF 0x7ff0000000000000ull
#define D_NEG_INF 0xfff0000000000000ull
#define D_QNAN 0x7ff8000000000000ull
#define D_SNAN 0x7ff0000000000001ull
#define D_EPS_HALF 0x3ca0000000000000ull
#define D_2P63 0x43e0000000000000ull
#define D_NEG_2P31_MINUS 0xc1e0000000200000ull
#define D_2P32 0x41f0000000000000ull
#define D_NEG_1P5 0xbff8000000000000ull
#define D_2P5 0x4004000000000000ull

#define S_ONE 0x3f800000ull
#define S_THIRD 0x3eaaaaabull
#define S_MAX 0x7f7fffffull
#define S_MIN_SUB 0x00000001ull
#define S_NEG_ZERO 0x80000000ull
#define S_INF 0x7f800000ull
#define S_QNAN 0x7fc00000ull
#define S_SNAN 0x7f800001ull
#define S_EPS_HALF 0x33800000ull
#define S_NEG_2P5 0xc0200000ull

struct fp_case {
	const char *name;
	fp_fn fn;
	uint64_t a, b, c;
};

/* Unused operands are left out of the table and read as 0. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct fp_case cases[] = {
	{ "fadd.d", fadd_d, D_ONE, D_EPS_HALF },
	{ "fadd.d", fadd_d, D_NEG_ZERO, 0 },
	{ "fadd.d", fadd_d, D_MAX, D_MAX },
	{ "fadd.d", fadd_d, D_INF, D_NEG_INF },
	{ "fadd.d", fadd_d, D_SNAN, D_ONE },
	{ "fadd.d", fadd_d, D_THIRD, D_NEG_TWO },
	{ "fsub.d", fsub_d, D_ONE, D_ONE },
	{ "fsub.d", fsub_d, D_MIN_SUB, D_EPS_HALF },
	{ "fmul.d", fmul_d, D_THIRD, D_THIRD },
	{ "fmul.d", fmul_d, D_MIN_SUB, D_THIRD },
	{ "fmul.d", fmul_d, D_INF, 0 },
	{ "fdiv.d", fdiv_d, D_ONE, 0x4008000000000000ull },
	{ "fdiv.d", fdiv_d, D_NEG_TWO, 0 },
	{ "fdiv.d", fdiv_d, 0, 0 },
	{ "fsqrt.d", fsqrt_d, 0x4000000000000000ull },
	{ "fsqrt.d", fsqrt_d, D_NEG_TWO },
	{ "fsqrt.d", fsqrt_d, D_NEG_ZERO },
	{ "fmadd.d", fmadd_d, D_THIRD, 0x4008000000000000ull, 0xbff0000000000000ull },
	{ "fmadd.d", fmadd_d, D_INF, 0, D_QNAN },
	{ "fnmsub.d", fnmsub_d, D_ONE, D_EPS_HALF, D_ONE },
	{ "fmin.d", fmin_d, D_NEG_ZERO, 0 },
	{ "fmin.d", fmin_d, 0, D_NEG_ZERO },
	{ "fmax.d", fmax_d, D_NEG_ZERO, 0 },
	{ "fmin.d", fmin_d, D_QNAN, D_ONE },
	{ "fmax.d", fmax_d, D_SNAN, D_ONE },
	{ "fmin.d", fmin_d, D_SNAN, D_QNAN },
	{ "fsgnjn.d", fsgnjn_d, D_QNAN, D_ONE },
	{ "fsgnjx.d", fsgnjx_d, D_NEG_1P5, D_NEG_TWO },
	{ "fcvt.s.d", fcvt_s_d, D_THIRD },
	{ "fcvt.s.d", fcvt_s_d, D_MAX },
	{ "fcvt.s.d", fcvt_s_d, D_SNAN },
	{ "fadd.s", fadd_s, S_ONE, S_EPS_HALF },
	{ "fadd.s", fadd_s, S_MAX, S_MAX },
	{ "fadd.s", fadd_s, S_SNAN, S_ONE },
	{ "fmul.s", fmul_s, S_THIRD, S_THIRD },
	{ "fmul.s", fmul_s, S_MIN_SUB, S_THIRD },
	{ "fdiv.s", fdiv_s, S_ONE, 0x40400000ull },
	{ "fsqrt.s", fsqrt_s, 0x40000000ull },
	{ "fmsub.s", fmsub_s, S_THIRD, 0x40400000ull, S_ONE },
	{ "fmin.s", fmin_s, S_NEG_ZERO, 0 },
	{ "fmax.s", fmax_s, S_QNAN, S_SNAN },
	{ "fcvt.w.d", fcvt_w_d, D_NEG_1P5 },
	{ "fcvt.w.d", fcvt_w_d, D_2P5 },
	{ "fcvt.w.d", fcvt_w_d, D_NEG_2P31_MINUS },
	{ "fcvt.w.d", fcvt_w_d, D_2P32 },
	{ "fcvt.w.d", fcvt_w_d, D_QNAN },
	{ "fcvt.w.d", fcvt_w_d, D_NEG_INF },
	{ "fcvt.wu.d", fcvt_wu_d, D_NEG_1P5 },
	{ "fcvt.wu.d", fcvt_wu_d, 0xbfe0000000000000ull },
	{ "fcvt.wu.d", fcvt_wu_d, D_2P32 },
	{ "fcvt.l.d", fcvt_l_d, D_2P63 },
	{ "fcvt.l.d", fcvt_l_d, D_NEG_INF },
	{ "fcvt.l.d", fcvt_l_d, D_SNAN },
	{ "fcvt.lu.d", fcvt_lu_d, D_NEG_ZERO },
	{ "fcvt.lu.d", fcvt_lu_d, D_2P63 },
	{ "fcvt.lu.d", fcvt_lu_d, D_NEG_INF },
	{ "fcvt.w.s", fcvt_w_s, S_NEG_2P5 },
	{ "fcvt.w.s", fcvt_w_s, S_INF },
	{ "fcvt.lu.s", fcvt_lu_s, S_QNAN },
	{ "fcvt.d.l", fcvt_d_l, 0x7fffffffffffffffull },
	{ "fcvt.d.l", fcvt_d_l, 0x8000000000000001ull },
	{ "fcvt.s.wu", fcvt_s_wu, 0xffffffffull },
	{ "fcvt.s.wu", fcvt_s_wu, 0x01000001ull },
	{ "unboxed fadd.s", unboxed_add_s, 0x000000003f800000ull, S_ONE },
	{ "fadd.d rtz", fadd_d_rtz, D_ONE, D_EPS_HALF + 1 },
	{ "feq.d self", feq_d_self, D_QNAN },
	{ "feq.d self", feq_d_self, D_SNAN },
	{ "flt.d self", flt_d_self, D_QNAN },
	{ "flt.d self", flt_d_self, D_NEG_ZERO },
};
#pragma GCC diagnostic pop

static const uint64_t class_d[] = {
	D_NEG_INF, D_NEG_1P5, 0x800fffffffffffffull, D_NEG_ZERO, 0, D_MIN_SUB, D_ONE, D_INF,
	D_SNAN, D_QNAN,
};
static const uint64_t class_s[] = {
	0xff800000ull, S_NEG_2P5, 0x80000001ull, S_NEG_ZERO, 0, S_MIN_SUB, S_ONE, S_INF,
	S_SNAN, S_QNAN,
};

static const char *const rm_names[] = { "rne", "rtz", "rdn", "rup", "rmm" };

/* Runs one case under frm and returns the fflags it raised. */
static uint64_t run_case(const struct fp_case *c, unsigned rm, unsigned *ret_flags)
{
	uint64_t r;
	unsigned long flags;

	__asm__ volatile("fsrm %0\n\tfsflags zero" : : "r"((unsigned long)rm));
	r = c->fn(c->a, c->b, c->c);
	__asm__ volatile("frflags %0" : "=r"(flags));
	*ret_flags = (unsigned)flags;
	return r;
}

static void print_case(const struct fp_case *c)
{
	char line[240];
	int len = gsnprintf(line, sizeof(line), "%s %lx %lx %lx:", c->name, (unsigned long)c->a,
			    (unsigned long)c->b, (unsigned long)c->c);

	for (unsigned rm = 0; rm < 5; rm++) {
		unsigned flags;
		uint64_t r = run_case(c, rm, &flags);

		len += gsnprintf(line + len, sizeof(line) - len, " %s=%lx/%02x", rm_names[rm],
				 (unsigned long)r, flags);
		if (len >= (int)sizeof(line))
			break;
	}
	gprintf("%s\n", line);
}

static void print_classes(void)
{
	for (unsigned i = 0; i < sizeof(class_d) / sizeof(class_d[0]); i++)
		gprintf("fclass.d %lx: %lx\n", (unsigned long)class_d[i],
			(unsigned long)fclass_d(class_d[i], 0, 0));
	for (unsigned i = 0; i < sizeof(class_s) / sizeof(class_s[0]); i++)
		gprintf("fclass.s %lx: %lx\n", (unsigned long)class_s[i],
			(unsigned long)fclass_s(class_s[i], 0, 0));
}

/* fcsr keeps only its defined bits; an invalid frm makes dynamic-rounding ops illegal. */
static void print_fcsr(void)
{
	unsigned long v;

	__asm__ volatile("csrw fcsr, %1\n\tcsrr %0, fcsr" : "=r"(v) : "r"(0xffffffffful));
	gprintf("fcsr after writing ones: %lx\n", v);
	__asm__ volatile("csrw fcsr, zero\n\tcsrr %0, fcsr" : "=r"(v));
	gprintf("fcsr after writing zero: %lx\n", v);
}

void boot_main(unsigned long hartid, const void *fdt)
{
	csr_clear_sstatus(SSTATUS_FS_MASK);
	csr_set_sstatus(SSTATUS_FS_INITIAL);
	diff_begin("fp");
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		print_case(&cases[i]);
	print_classes();
	print_fcsr();
	gprintf("sstatus.fs dirty: %d\n", (csr_read_sstatus() & SSTATUS_FS_MASK) == SSTATUS_FS_MASK);
	diff_end("fp");
}

void secondary_main(unsigned long hartid, unsigned long opaque)
{
}
