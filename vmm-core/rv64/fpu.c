/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The F and D extensions. Arithmetic runs on the host FPU under the guest's
 * rounding mode (<fenv.h>), which is exact for IEEE 754 binary32/binary64;
 * what x86 does differently from RISC-V is done here by hand: NaN results
 * (RISC-V returns the canonical NaN), FMIN/FMAX, the NV rule of fused
 * multiply-add with a quiet NaN addend, saturating conversions to integers,
 * and RMM (round to nearest, ties away), which x86 has no mode for.
 *
 * Built with -frounding-math; every operation's operands and result pass
 * through volatile objects so the compiler cannot move the arithmetic out
 * from between fesetround() and fetestexcept().
 */
#include <fenv.h>
#include <float.h>
#include <math.h>

#include "hart.h"

#define RD(i) (((i) >> 7) & 31)
#define RS1(i) (((i) >> 15) & 31)
#define RS2(i) (((i) >> 20) & 31)
#define RS3(i) ((i) >> 27)
#define FUNCT3(i) (((i) >> 12) & 7)
#define FMT(i) (((i) >> 25) & 3)

enum { FMT_S = 0, FMT_D = 1 };
enum { RM_RNE, RM_RTZ, RM_RDN, RM_RUP, RM_RMM, RM_DYN = 7 };
enum { FFLAG_NX = 1, FFLAG_UF = 2, FFLAG_OF = 4, FFLAG_DZ = 8, FFLAG_NV = 16 };

#define F32_CANON 0x7fc00000u
#define F64_CANON 0x7ff8000000000000ull
#define F32_BOX 0xffffffff00000000ull
#define F32_SIGN 0x80000000u
#define F64_SIGN (1ull << 63)

enum fop { FOP_ADD, FOP_SUB, FOP_MUL, FOP_DIV, FOP_SQRT, FOP_FMA };

/* Format parameters for the hand-rounding of RMM. */
struct fp_format {
	int mant_bits;	/* significand bits including the hidden one */
	int emin;	/* exponent of the smallest normal */
	int emax;
};

static const struct fp_format fmt_s = { .mant_bits = 24, .emin = -126, .emax = 127 };
static const struct fp_format fmt_d = { .mant_bits = 53, .emin = -1022, .emax = 1023 };

static inline float f32_from_bits(uint32_t b)
{
	float f;

	memcpy(&f, &b, 4);
	return f;
}

static inline uint32_t f32_bits(float f)
{
	uint32_t b;

	memcpy(&b, &f, 4);
	return b;
}

static inline double f64_from_bits(uint64_t b)
{
	double d;

	memcpy(&d, &b, 8);
	return d;
}

static inline uint64_t f64_bits(double d)
{
	uint64_t b;

	memcpy(&b, &d, 8);
	return b;
}

static inline bool f32_is_nan(uint32_t b)
{
	return (b & 0x7fffffffu) > 0x7f800000u;
}

static inline bool f32_is_snan(uint32_t b)
{
	return f32_is_nan(b) && !(b & 0x00400000u);
}

static inline bool f64_is_nan(uint64_t b)
{
	return (b & ~F64_SIGN) > 0x7ff0000000000000ull;
}

static inline bool f64_is_snan(uint64_t b)
{
	return f64_is_nan(b) && !(b & 0x0008000000000000ull);
}

/* A single-precision operand: an improperly NaN-boxed register reads as the canonical NaN. */
static inline uint32_t f32_reg(const struct accel_vcpu *h, unsigned r)
{
	uint64_t v = h->f[r];

	return (v & F32_BOX) == F32_BOX ? (uint32_t)v : F32_CANON;
}

static inline void fs_dirty(struct accel_vcpu *h)
{
	h->sstatus |= SSTATUS_FS;
}

static inline void f32_set(struct accel_vcpu *h, unsigned r, uint32_t v)
{
	h->f[r] = F32_BOX | v;
	fs_dirty(h);
}

static inline void f64_set(struct accel_vcpu *h, unsigned r, uint64_t v)
{
	h->f[r] = v;
	fs_dirty(h);
}

static inline void raise_flags(struct accel_vcpu *h, unsigned flags)
{
	if (flags) {
		h->fcsr |= flags;
		fs_dirty(h);
	}
}

/* The effective rounding mode of an instruction, or -1 when it is reserved (illegal). */
static int insn_rm(const struct accel_vcpu *h, uint32_t insn)
{
	unsigned rm = FUNCT3(insn);

	if (rm == RM_DYN)
		rm = (h->fcsr >> 5) & 7;
	return rm <= RM_RMM ? (int)rm : -1;
}

/* --- host FPU sessions ------------------------------------------------- */

static const int host_rounding[] = {
	[RM_RNE] = FE_TONEAREST, [RM_RTZ] = FE_TOWARDZERO,
	[RM_RDN] = FE_DOWNWARD, [RM_RUP] = FE_UPWARD,
	/* RMM computes toward zero and rounds to odd, then rounds by hand. */
	[RM_RMM] = FE_TOWARDZERO,
};

#if defined(__x86_64__)
/*
 * Binary32/64 arithmetic runs on SSE, whose rounding mode and flags sit in
 * MXCSR: one ldmxcsr/stmxcsr pair costs a fraction of feclearexcept() and
 * fetestexcept(), which also save and load the whole x87 environment.
 */
#define MXCSR_FLAGS 0x3fu
#define MXCSR_RC_SHIFT 13
#define MXCSR_RC (3u << MXCSR_RC_SHIFT)

static const unsigned mxcsr_rounding[] = {
	[RM_RNE] = 0, [RM_RTZ] = 3, [RM_RDN] = 1, [RM_RUP] = 2,
};

static void sse_begin(int rm)
{
	unsigned csr = __builtin_ia32_stmxcsr();

	csr = (csr & ~(MXCSR_FLAGS | MXCSR_RC)) | mxcsr_rounding[rm] << MXCSR_RC_SHIFT;
	__builtin_ia32_ldmxcsr(csr);
}

static unsigned sse_end(void)
{
	unsigned csr = __builtin_ia32_stmxcsr(), flags = 0;

	/* Back to round-to-nearest with clear flags, what the rest of the process expects. */
	__builtin_ia32_ldmxcsr(csr & ~(MXCSR_FLAGS | MXCSR_RC));
	if (csr & 0x20)
		flags |= FFLAG_NX;
	if (csr & 0x10)
		flags |= FFLAG_UF;
	if (csr & 0x08)
		flags |= FFLAG_OF;
	if (csr & 0x04)
		flags |= FFLAG_DZ;
	if (csr & 0x01)
		flags |= FFLAG_NV;
	return flags;
}
#endif

static void host_begin(int rm)
{
	feclearexcept(FE_ALL_EXCEPT);
	if (rm != RM_RNE)
		fesetround(host_rounding[rm]);
}

/* The RISC-V flags the host raised since host_begin(); restores round-to-nearest. */
static unsigned host_end(int rm)
{
	int ex = fetestexcept(FE_ALL_EXCEPT);
	unsigned flags = 0;

	if (rm != RM_RNE)
		fesetround(FE_TONEAREST);
	if (ex & FE_INEXACT)
		flags |= FFLAG_NX;
	if (ex & FE_UNDERFLOW)
		flags |= FFLAG_UF;
	if (ex & FE_OVERFLOW)
		flags |= FFLAG_OF;
	if (ex & FE_DIVBYZERO)
		flags |= FFLAG_DZ;
	if (ex & FE_INVALID)
		flags |= FFLAG_NV;
	return flags;
}

/* Brackets a binary32/64 operation in rm (never RMM, which goes through ext_rmm()). */
static void fp_begin(int rm)
{
#if defined(__x86_64__)
	sse_begin(rm);
#else
	host_begin(rm);
#endif
}

static unsigned fp_end(int rm)
{
#if defined(__x86_64__)
	return sse_end();
#else
	return host_end(rm);
#endif
}

static float f32_compute(enum fop op, float a, float b, float c)
{
	volatile float va = a, vb = b, vc = c, r;

	switch (op) {
	case FOP_ADD: r = va + vb; break;
	case FOP_SUB: r = va - vb; break;
	case FOP_MUL: r = va * vb; break;
	case FOP_DIV: r = va / vb; break;
	case FOP_SQRT: r = sqrtf(va); break;
	default: r = fmaf(va, vb, vc); break;
	}
	return r;
}

static double f64_compute(enum fop op, double a, double b, double c)
{
	volatile double va = a, vb = b, vc = c, r;

	switch (op) {
	case FOP_ADD: r = va + vb; break;
	case FOP_SUB: r = va - vb; break;
	case FOP_MUL: r = va * vb; break;
	case FOP_DIV: r = va / vb; break;
	case FOP_SQRT: r = sqrt(va); break;
	default: r = fma(va, vb, vc); break;
	}
	return r;
}

static long double ext_compute(enum fop op, long double a, long double b, long double c)
{
	volatile long double va = a, vb = b, vc = c, r;

	switch (op) {
	case FOP_ADD: r = va + vb; break;
	case FOP_SUB: r = va - vb; break;
	case FOP_MUL: r = va * vb; break;
	case FOP_DIV: r = va / vb; break;
	case FOP_SQRT: r = sqrtl(va); break;
	default: r = fmal(va, vb, vc); break;
	}
	return r;
}

/* --- RMM by hand ------------------------------------------------------- */

/* Rounds |n| (an exact long double) to an integer, ties away from zero. */
static long double round_ties_away(long double n, bool *ret_inexact)
{
	long double f = floorl(n);

	*ret_inexact = n != f;
	return n - f >= 0.5L ? f + 1 : f;
}

/*
 * Rounds v to fmt with ties away from zero. v carries the exact result
 * rounded to odd in 64 bits, more than the 2 extra bits that makes a second
 * rounding exact. Tininess is detected after rounding, as RISC-V does.
 */
static long double round_rmm(long double v, const struct fp_format *fmt, unsigned *flags)
{
	long double a = fabsl(v), r, unbounded;
	int e, q_exp;
	bool inexact;

	if (a == 0 || isinf(a) || isnan(a))
		return v;
	e = ilogbl(a);
	q_exp = e - fmt->mant_bits + 1;
	unbounded = ldexpl(round_ties_away(ldexpl(a, -q_exp), &inexact), q_exp);
	if (e < fmt->emin) {
		q_exp = fmt->emin - fmt->mant_bits + 1;
		r = ldexpl(round_ties_away(ldexpl(a, -q_exp), &inexact), q_exp);
	} else {
		r = unbounded;
	}
	if (inexact)
		*flags |= FFLAG_NX;
	if (inexact && unbounded < ldexpl(1, fmt->emin))
		*flags |= FFLAG_UF;
	if (r >= ldexpl(1, fmt->emax + 1)) {
		*flags |= FFLAG_OF | FFLAG_NX;
		r = INFINITY;
	}
	return copysignl(r, v);
}

/* Makes a toward-zero result carry the sticky bit: round to odd. */
static long double to_odd(long double r, unsigned host_flags)
{
	if ((host_flags & FFLAG_NX) && isfinite(r) && r != 0) {
		long double up = nextafterl(r, copysignl(INFINITY, r));
		long double ulp = up - r;

		/* An even last bit is made odd by one more unit. */
		if (fmodl(r / ulp, 2) == 0)
			r = up;
	}
	return r;
}

static long double ext_rmm(enum fop op, long double a, long double b, long double c,
			   const struct fp_format *fmt, unsigned *flags)
{
	unsigned hf;
	long double r;

	host_begin(RM_RMM);
	r = ext_compute(op, a, b, c);
	hf = host_end(RM_RMM);
	/* Only NV and DZ are about the operation; the rest come from the final rounding. */
	*flags |= hf & (FFLAG_NV | FFLAG_DZ);
	return round_rmm(to_odd(r, hf), fmt, flags);
}

/* --- arithmetic -------------------------------------------------------- */

/* fma(inf, 0, c) is invalid even when c is a quiet NaN; x86 may not say so. */
static bool fma_inf_times_zero(double a, double b)
{
	return (isinf(a) && b == 0) || (a == 0 && isinf(b));
}

/*
 * The quick way, without touching the host's flags or rounding mode, for
 * when the operation cannot raise a flag the guest has not raised already:
 * round to nearest (the host's mode outside fp_begin()), NX already in
 * fcsr (flags are sticky), operands zero or normal, no division by zero nor
 * square root of a negative (so no NV or DZ), and a normal result (so no
 * OF or UF) or an exactly zero one. Anything else, or false here, takes the
 * full path.
 */
static bool f64_plain(uint64_t v)
{
	uint64_t exp = (v >> 52) & 0x7ff;

	return exp != 0x7ff && (exp != 0 || (v & ~F64_SIGN) == 0);
}

static bool f32_plain(uint32_t v)
{
	uint32_t exp = (v >> 23) & 0xff;

	return exp != 0xff && (exp != 0 || (v & ~F32_SIGN) == 0);
}

/* A zero result the operation gives exactly: a sum, or from a zero operand. */
static bool zero_is_exact(enum fop op, bool a_zero, bool b_zero)
{
	switch (op) {
	case FOP_ADD: case FOP_SUB: return true;
	case FOP_MUL: return a_zero || b_zero;
	case FOP_DIV: case FOP_SQRT: return a_zero;
	default: return false;
	}
}

static bool f64_quick(enum fop op, uint64_t a, uint64_t b, uint64_t c, double *ret)
{
	double fa = f64_from_bits(a), fb = f64_from_bits(b), r;

	if (!f64_plain(a) || !f64_plain(b) || (op == FOP_FMA && !f64_plain(c)) ||
	    (op == FOP_DIV && fb == 0) || (op == FOP_SQRT && fa < 0))
		return false;
	switch (op) {
	case FOP_ADD: r = fa + fb; break;
	case FOP_SUB: r = fa - fb; break;
	case FOP_MUL: r = fa * fb; break;
	case FOP_DIV: r = fa / fb; break;
	case FOP_SQRT: r = sqrt(fa); break;
	default: r = fma(fa, fb, f64_from_bits(c)); break;
	}
	if (r == 0 ? !zero_is_exact(op, fa == 0, fb == 0) : !(fabs(r) > DBL_MIN && fabs(r) <= DBL_MAX))
		return false;
	*ret = r;
	return true;
}

static bool f32_quick(enum fop op, uint32_t a, uint32_t b, uint32_t c, float *ret)
{
	float fa = f32_from_bits(a), fb = f32_from_bits(b), r;

	if (!f32_plain(a) || !f32_plain(b) || (op == FOP_FMA && !f32_plain(c)) ||
	    (op == FOP_DIV && fb == 0) || (op == FOP_SQRT && fa < 0))
		return false;
	switch (op) {
	case FOP_ADD: r = fa + fb; break;
	case FOP_SUB: r = fa - fb; break;
	case FOP_MUL: r = fa * fb; break;
	case FOP_DIV: r = fa / fb; break;
	case FOP_SQRT: r = sqrtf(fa); break;
	default: r = fmaf(fa, fb, f32_from_bits(c)); break;
	}
	if (r == 0 ? !zero_is_exact(op, fa == 0, fb == 0) : !(fabsf(r) > FLT_MIN && fabsf(r) <= FLT_MAX))
		return false;
	*ret = r;
	return true;
}

/* *flags: the guest's fcsr flags on entry (for the quick way), the raised ones on return. */
static uint32_t f32_arith(enum fop op, uint32_t a, uint32_t b, uint32_t c, int rm, unsigned *flags)
{
	float fa = f32_from_bits(a), fb = f32_from_bits(b), fc = f32_from_bits(c), r;
	bool sticky_nx = *flags & FFLAG_NX;

	*flags = 0;
	if (rm == RM_RNE && sticky_nx && f32_quick(op, a, b, c, &r))
		return f32_bits(r);
	if (rm == RM_RMM) {
		/* Widening quiets a signalling NaN before the flags are watched: say NV here. */
		if (f32_is_snan(a) || f32_is_snan(b) || (op == FOP_FMA && f32_is_snan(c)))
			*flags |= FFLAG_NV;
		r = (float)ext_rmm(op, fa, fb, fc, &fmt_s, flags);
	} else {
		fp_begin(rm);
		r = f32_compute(op, fa, fb, fc);
		*flags |= fp_end(rm);
	}
	if (op == FOP_FMA && fma_inf_times_zero(fa, fb))
		*flags |= FFLAG_NV;
	return isnan(r) ? F32_CANON : f32_bits(r);
}

static uint64_t f64_arith(enum fop op, uint64_t a, uint64_t b, uint64_t c, int rm, unsigned *flags)
{
	double fa = f64_from_bits(a), fb = f64_from_bits(b), fc = f64_from_bits(c), r;
	bool sticky_nx = *flags & FFLAG_NX;

	*flags = 0;
	if (rm == RM_RNE && sticky_nx && f64_quick(op, a, b, c, &r))
		return f64_bits(r);
	if (rm == RM_RMM) {
		/* Widening quiets a signalling NaN before the flags are watched: say NV here. */
		if (f64_is_snan(a) || f64_is_snan(b) || (op == FOP_FMA && f64_is_snan(c)))
			*flags |= FFLAG_NV;
		r = (double)ext_rmm(op, fa, fb, fc, &fmt_d, flags);
	} else {
		fp_begin(rm);
		r = f64_compute(op, fa, fb, fc);
		*flags |= fp_end(rm);
	}
	if (op == FOP_FMA && fma_inf_times_zero(fa, fb))
		*flags |= FFLAG_NV;
	return isnan(r) ? F64_CANON : f64_bits(r);
}

/* --- min/max, compare, classify, sign injection ------------------------ */

/* FMIN/FMAX on raw bits (sign = sign bit, NaN tests per format). */
static uint64_t fminmax(bool is_max, uint64_t a, uint64_t b, bool a_nan, bool b_nan,
			uint64_t sign, uint64_t canon, double da, double db)
{
	if (a_nan && b_nan)
		return canon;
	if (a_nan)
		return b;
	if (b_nan)
		return a;
	if (da == db) {
		/* -0 < +0 for these two; equal non-zero values have equal bits. */
		if (is_max)
			return (a & sign) ? b : a;
		return (a & sign) ? a : b;
	}
	return (is_max ? da > db : da < db) ? a : b;
}

/* FEQ (quiet), FLT and FLE (signaling). funct3: 2 FEQ, 1 FLT, 0 FLE. */
static uint64_t fcompare(unsigned f3, double a, double b, bool any_nan, bool any_snan,
			 unsigned *flags)
{
	if (any_nan) {
		if (any_snan || f3 != 2)
			*flags |= FFLAG_NV;
		return 0;
	}
	switch (f3) {
	case 2: return a == b;
	case 1: return a < b;
	default: return a <= b;
	}
}

/* FCLASS from the sign, the exponent field (all-ones = max_exp) and the fraction. */
static uint64_t fclass(bool neg, uint64_t exp, uint64_t frac, uint64_t max_exp, uint64_t quiet)
{
	unsigned bit;

	if (exp == max_exp) {
		if (frac == 0)
			bit = neg ? 0 : 7;
		else
			bit = (frac & quiet) ? 9 : 8;
	} else if (exp == 0) {
		if (frac == 0)
			bit = neg ? 3 : 4;
		else
			bit = neg ? 2 : 5;
	} else {
		bit = neg ? 1 : 6;
	}
	return 1ull << bit;
}

static uint64_t sign_inject(unsigned f3, uint64_t a, uint64_t b, uint64_t sign)
{
	switch (f3) {
	case 0: return (a & ~sign) | (b & sign);
	case 1: return (a & ~sign) | (~b & sign);
	default: return a ^ (b & sign);
	}
}

/* --- conversions ------------------------------------------------------- */

/* Rounds an exact value to an integer in rm; *ret_inexact when it moved. */
static long double round_to_integer(long double v, int rm, bool *ret_inexact)
{
	long double t = truncl(v), frac = v - t, half = fabsl(frac);
	long double away = t + (v < 0 ? -1 : 1);

	*ret_inexact = frac != 0;
	switch (rm) {
	case RM_RNE:
		if (half > 0.5L || (half == 0.5L && fmodl(t, 2) != 0))
			return away;
		return t;
	case RM_RTZ: return t;
	case RM_RDN: return frac < 0 ? t - 1 : t;
	case RM_RUP: return frac > 0 ? t + 1 : t;
	default: return half >= 0.5L ? away : t;
	}
}

/*
 * FCVT.{W,WU,L,LU}.{S,D}: type 0 W, 1 WU, 2 L, 3 LU. Out of range and NaN
 * saturate with NV (NaN and +inf to the maximum); the result in x[rd] is
 * the 32-bit value sign-extended for W and WU.
 */
static uint64_t fcvt_to_int(long double v, bool nan, unsigned type, int rm, unsigned *flags)
{
	static const long double lo[4] = { -0x1p31L, 0, -0x1p63L, 0 };
	static const long double hi[4] = { 0x1p31L - 1, 0x1p32L - 1, 0x1p63L - 1, 0x1p64L - 1 };
	static const uint64_t min_out[4] = { (uint64_t)INT32_MIN, 0, (uint64_t)INT64_MIN, 0 };
	static const uint64_t max_out[4] = { INT32_MAX, UINT64_MAX, INT64_MAX, UINT64_MAX };
	long double r;
	bool inexact;

	if (nan) {
		*flags |= FFLAG_NV;
		return max_out[type];
	}
	r = round_to_integer(v, rm, &inexact);
	if (r < lo[type]) {
		*flags |= FFLAG_NV;
		return min_out[type];
	}
	if (r > hi[type]) {
		*flags |= FFLAG_NV;
		return max_out[type];
	}
	if (inexact)
		*flags |= FFLAG_NX;
	switch (type) {
	case 0: return (uint64_t)(int64_t)(int32_t)(int64_t)r;
	case 1: return (uint64_t)(int64_t)(int32_t)(uint32_t)(uint64_t)r;
	case 2: return (uint64_t)(int64_t)r;
	default: return (uint64_t)r;
	}
}

/* The integer source of FCVT.{S,D}.{W,WU,L,LU}, exactly, as a long double. */
static long double int_source(uint64_t x, unsigned type)
{
	switch (type) {
	case 0: return (int32_t)x;
	case 1: return (uint32_t)x;
	case 2: return (int64_t)x;
	default: return x;
	}
}

static uint32_t fcvt_s_from_int(uint64_t x, unsigned type, int rm, unsigned *flags)
{
	volatile float r;

	if (rm == RM_RMM)
		return f32_bits((float)round_rmm(int_source(x, type), &fmt_s, flags));
	fp_begin(rm);
	switch (type) {
	case 0: r = (float)(volatile int32_t){ (int32_t)x }; break;
	case 1: r = (float)(volatile uint32_t){ (uint32_t)x }; break;
	case 2: r = (float)(volatile int64_t){ (int64_t)x }; break;
	default: r = (float)(volatile uint64_t){ x }; break;
	}
	*flags |= fp_end(rm);
	return f32_bits(r);
}

static uint64_t fcvt_d_from_int(uint64_t x, unsigned type, int rm, unsigned *flags)
{
	volatile double r;

	if (rm == RM_RMM)
		return f64_bits((double)round_rmm(int_source(x, type), &fmt_d, flags));
	fp_begin(rm);
	switch (type) {
	case 0: r = (double)(volatile int32_t){ (int32_t)x }; break;
	case 1: r = (double)(volatile uint32_t){ (uint32_t)x }; break;
	case 2: r = (double)(volatile int64_t){ (int64_t)x }; break;
	default: r = (double)(volatile uint64_t){ x }; break;
	}
	*flags |= fp_end(rm);
	return f64_bits(r);
}

/* FCVT.S.D rounds; FCVT.D.S is exact but an sNaN input is still invalid. */
static uint32_t fcvt_s_d(uint64_t a, int rm, unsigned *flags)
{
	volatile double in = f64_from_bits(a);
	volatile float r;

	if (f64_is_nan(a)) {
		if (f64_is_snan(a))
			*flags |= FFLAG_NV;
		return F32_CANON;
	}
	if (rm == RM_RMM)
		return f32_bits((float)round_rmm(in, &fmt_s, flags));
	fp_begin(rm);
	r = (float)in;
	*flags |= fp_end(rm);
	return f32_bits(r);
}

static uint64_t fcvt_d_s(uint32_t a, unsigned *flags)
{
	if (f32_is_nan(a)) {
		if (f32_is_snan(a))
			*flags |= FFLAG_NV;
		return F64_CANON;
	}
	return f64_bits((double)f32_from_bits(a));
}

/* --- decode ------------------------------------------------------------ */

/* FLW/FLD, FSW/FSD. */
static int exec_fp_load(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	uint64_t va = h->x[RS1(insn)] + (int64_t)((int32_t)insn >> 20), v;
	unsigned f3 = FUNCT3(insn);

	if (f3 != 2 && f3 != 3)
		return rv64_illegal(h, insn);
	if (rv64_load(h, va, f3 == 2 ? 4 : 8, &v))
		return EXEC_TRAP;
	if (f3 == 2)
		f32_set(h, RD(insn), (uint32_t)v);
	else
		f64_set(h, RD(insn), v);
	h->pc += len;
	return EXEC_OK;
}

static int exec_fp_store(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	int64_t imm = (int64_t)((int32_t)insn >> 25) * 32 + ((insn >> 7) & 31);
	uint64_t va = h->x[RS1(insn)] + imm;
	unsigned f3 = FUNCT3(insn);

	if (f3 != 2 && f3 != 3)
		return rv64_illegal(h, insn);
	if (rv64_store(h, va, f3 == 2 ? 4 : 8, h->f[RS2(insn)]))
		return EXEC_TRAP;
	h->pc += len;
	return EXEC_OK;
}

/* FMADD, FMSUB, FNMSUB, FNMADD: signs folded into the operands (op 0x43..0x4f). */
static int exec_fp_fused(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	unsigned which = ((insn & 0x7f) - 0x43) >> 2, flags = h->fcsr & 0x1f;
	bool neg_product = which >= 2, neg_addend = which == 1 || which == 3;
	int rm = insn_rm(h, insn);

	if (rm < 0 || FMT(insn) > FMT_D)
		return rv64_illegal(h, insn);
	if (FMT(insn) == FMT_S) {
		uint32_t a = f32_reg(h, RS1(insn)), b = f32_reg(h, RS2(insn)), c = f32_reg(h, RS3(insn));

		a ^= neg_product ? F32_SIGN : 0;
		c ^= neg_addend ? F32_SIGN : 0;
		f32_set(h, RD(insn), f32_arith(FOP_FMA, a, b, c, rm, &flags));
	} else {
		uint64_t a = h->f[RS1(insn)], b = h->f[RS2(insn)], c = h->f[RS3(insn)];

		a ^= neg_product ? F64_SIGN : 0;
		c ^= neg_addend ? F64_SIGN : 0;
		f64_set(h, RD(insn), f64_arith(FOP_FMA, a, b, c, rm, &flags));
	}
	raise_flags(h, flags);
	h->pc += len;
	return EXEC_OK;
}

/* FADD, FSUB, FMUL, FDIV, FSQRT. */
static int fp_arith_insn(struct accel_vcpu *h, uint32_t insn, enum fop op, bool dbl)
{
	unsigned flags = h->fcsr & 0x1f;
	int rm = insn_rm(h, insn);

	if (rm < 0 || (op == FOP_SQRT && RS2(insn)))
		return rv64_illegal(h, insn);
	if (dbl)
		f64_set(h, RD(insn), f64_arith(op, h->f[RS1(insn)], h->f[RS2(insn)], 0, rm, &flags));
	else
		f32_set(h, RD(insn), f32_arith(op, f32_reg(h, RS1(insn)), f32_reg(h, RS2(insn)), 0,
					       rm, &flags));
	raise_flags(h, flags);
	return EXEC_OK;
}

static int fp_sgnj_insn(struct accel_vcpu *h, uint32_t insn, bool dbl)
{
	unsigned f3 = FUNCT3(insn);

	if (f3 > 2)
		return rv64_illegal(h, insn);
	if (dbl)
		f64_set(h, RD(insn), sign_inject(f3, h->f[RS1(insn)], h->f[RS2(insn)], F64_SIGN));
	else
		f32_set(h, RD(insn), sign_inject(f3, f32_reg(h, RS1(insn)), f32_reg(h, RS2(insn)),
						 F32_SIGN));
	return EXEC_OK;
}

static int fp_minmax_insn(struct accel_vcpu *h, uint32_t insn, bool dbl)
{
	unsigned f3 = FUNCT3(insn), flags = 0;

	if (f3 > 1)
		return rv64_illegal(h, insn);
	if (dbl) {
		uint64_t a = h->f[RS1(insn)], b = h->f[RS2(insn)];

		if (f64_is_snan(a) || f64_is_snan(b))
			flags |= FFLAG_NV;
		f64_set(h, RD(insn), fminmax(f3, a, b, f64_is_nan(a), f64_is_nan(b), F64_SIGN,
					     F64_CANON, f64_from_bits(a), f64_from_bits(b)));
	} else {
		uint32_t a = f32_reg(h, RS1(insn)), b = f32_reg(h, RS2(insn));

		if (f32_is_snan(a) || f32_is_snan(b))
			flags |= FFLAG_NV;
		f32_set(h, RD(insn), fminmax(f3, a, b, f32_is_nan(a), f32_is_nan(b), F32_SIGN,
					     F32_CANON, f32_from_bits(a), f32_from_bits(b)));
	}
	raise_flags(h, flags);
	return EXEC_OK;
}

/* FCVT.S.D (fmt S, rs2 1) and FCVT.D.S (fmt D, rs2 0). */
static int fp_cvt_fmt_insn(struct accel_vcpu *h, uint32_t insn, bool dbl)
{
	unsigned flags = 0;
	int rm = insn_rm(h, insn);

	if (rm < 0 || RS2(insn) != (dbl ? FMT_S : FMT_D))
		return rv64_illegal(h, insn);
	if (dbl)
		f64_set(h, RD(insn), fcvt_d_s(f32_reg(h, RS1(insn)), &flags));
	else
		f32_set(h, RD(insn), fcvt_s_d(h->f[RS1(insn)], rm, &flags));
	raise_flags(h, flags);
	return EXEC_OK;
}

static int fp_cmp_insn(struct accel_vcpu *h, uint32_t insn, bool dbl)
{
	unsigned f3 = FUNCT3(insn), flags = 0;
	uint64_t v;

	if (f3 > 2)
		return rv64_illegal(h, insn);
	if (dbl) {
		uint64_t a = h->f[RS1(insn)], b = h->f[RS2(insn)];

		v = fcompare(f3, f64_from_bits(a), f64_from_bits(b), f64_is_nan(a) || f64_is_nan(b),
			     f64_is_snan(a) || f64_is_snan(b), &flags);
	} else {
		uint32_t a = f32_reg(h, RS1(insn)), b = f32_reg(h, RS2(insn));

		v = fcompare(f3, f32_from_bits(a), f32_from_bits(b), f32_is_nan(a) || f32_is_nan(b),
			     f32_is_snan(a) || f32_is_snan(b), &flags);
	}
	h->x[RD(insn)] = v;
	raise_flags(h, flags);
	return EXEC_OK;
}

static int fp_cvt_to_int_insn(struct accel_vcpu *h, uint32_t insn, bool dbl)
{
	unsigned type = RS2(insn), flags = 0;
	int rm = insn_rm(h, insn);

	if (rm < 0 || type > 3)
		return rv64_illegal(h, insn);
	if (dbl) {
		uint64_t a = h->f[RS1(insn)];

		h->x[RD(insn)] = fcvt_to_int(f64_from_bits(a), f64_is_nan(a), type, rm, &flags);
	} else {
		uint32_t a = f32_reg(h, RS1(insn));

		h->x[RD(insn)] = fcvt_to_int(f32_from_bits(a), f32_is_nan(a), type, rm, &flags);
	}
	raise_flags(h, flags);
	return EXEC_OK;
}

static int fp_cvt_from_int_insn(struct accel_vcpu *h, uint32_t insn, bool dbl)
{
	unsigned type = RS2(insn), flags = 0;
	uint64_t x = h->x[RS1(insn)];
	int rm = insn_rm(h, insn);

	if (rm < 0 || type > 3)
		return rv64_illegal(h, insn);
	if (dbl)
		f64_set(h, RD(insn), fcvt_d_from_int(x, type, rm, &flags));
	else
		f32_set(h, RD(insn), fcvt_s_from_int(x, type, rm, &flags));
	raise_flags(h, flags);
	return EXEC_OK;
}

/* FMV.X.W / FMV.X.D (funct3 0) and FCLASS (funct3 1). */
static int fp_mv_x_class_insn(struct accel_vcpu *h, uint32_t insn, bool dbl)
{
	unsigned f3 = FUNCT3(insn);
	uint64_t a = h->f[RS1(insn)];

	if (RS2(insn) || f3 > 1)
		return rv64_illegal(h, insn);
	if (f3 == 0) {
		/* A narrower move takes the low bits, boxed or not. */
		h->x[RD(insn)] = dbl ? a : (uint64_t)(int64_t)(int32_t)a;
	} else if (dbl) {
		h->x[RD(insn)] = fclass(a >> 63, (a >> 52) & 0x7ff, a & ((1ull << 52) - 1), 0x7ff,
					1ull << 51);
	} else {
		uint32_t s = f32_reg(h, RS1(insn));

		h->x[RD(insn)] = fclass(s >> 31, (s >> 23) & 0xff, s & 0x7fffff, 0xff, 1u << 22);
	}
	return EXEC_OK;
}

static int fp_mv_f_x_insn(struct accel_vcpu *h, uint32_t insn, bool dbl)
{
	if (RS2(insn) || FUNCT3(insn))
		return rv64_illegal(h, insn);
	if (dbl)
		f64_set(h, RD(insn), h->x[RS1(insn)]);
	else
		f32_set(h, RD(insn), (uint32_t)h->x[RS1(insn)]);
	return EXEC_OK;
}

static int fp_op_dispatch(struct accel_vcpu *h, uint32_t insn, bool dbl)
{
	switch (insn >> 27) {
	case 0x00: return fp_arith_insn(h, insn, FOP_ADD, dbl);
	case 0x01: return fp_arith_insn(h, insn, FOP_SUB, dbl);
	case 0x02: return fp_arith_insn(h, insn, FOP_MUL, dbl);
	case 0x03: return fp_arith_insn(h, insn, FOP_DIV, dbl);
	case 0x0b: return fp_arith_insn(h, insn, FOP_SQRT, dbl);
	case 0x04: return fp_sgnj_insn(h, insn, dbl);
	case 0x05: return fp_minmax_insn(h, insn, dbl);
	case 0x08: return fp_cvt_fmt_insn(h, insn, dbl);
	case 0x14: return fp_cmp_insn(h, insn, dbl);
	case 0x18: return fp_cvt_to_int_insn(h, insn, dbl);
	case 0x1a: return fp_cvt_from_int_insn(h, insn, dbl);
	case 0x1c: return fp_mv_x_class_insn(h, insn, dbl);
	case 0x1e: return fp_mv_f_x_insn(h, insn, dbl);
	default: return rv64_illegal(h, insn);
	}
}

static int exec_fp_op(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	int r;

	if (FMT(insn) > FMT_D)
		return rv64_illegal(h, insn);
	r = fp_op_dispatch(h, insn, FMT(insn) == FMT_D);
	if (r == EXEC_OK)
		h->pc += len;
	return r;
}

/* Every F/D instruction: LOAD-FP, STORE-FP, the fused group and OP-FP. */
int rv64_fp_insn(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	/* FS=Off: the FPU is switched off and every FP instruction is illegal. */
	if (!(h->sstatus & SSTATUS_FS))
		return rv64_illegal(h, insn);
	switch (insn & 0x7f) {
	case 0x07: return exec_fp_load(h, insn, len);
	case 0x27: return exec_fp_store(h, insn, len);
	case 0x43: case 0x47: case 0x4b: case 0x4f: return exec_fp_fused(h, insn, len);
	case 0x53: return exec_fp_op(h, insn, len);
	default: return rv64_illegal(h, insn);
	}
}
