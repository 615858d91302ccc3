/* SPDX-License-Identifier: Apache-2.0 */
/*
 * F and D: each instruction group with the edge cases the spec pins down
 * (rounding per mode, NaN boxing, canonical NaN, sNaN and NV, FMIN/FMAX of
 * zeros and NaNs, saturating conversions, FCLASS, fflags accrual, sstatus.FS).
 */
#include <math.h>

#include "harness.h"

static struct tmachine tm;

static void setup(void)
{
	tm_init(&tm);
	tm_trap_to_ecall(&tm);
}

static void teardown(void)
{
	tm_fini(&tm);
}

TestSuite(rv64_fp, .init = setup, .fini = teardown);

enum { RNE, RTZ, RDN, RUP, RMM, DYN = 7 };
enum { NX = 1, UF = 2, OF = 4, DZ = 8, NV = 16 };
enum { S = 0, D = 1 };

#define FS_INITIAL (1ull << 13)
#define FS_DIRTY (3ull << 13)
#define SSTATUS_SD (1ull << 63)
#define CANON_S 0xffffffff7fc00000ull	/* canonical NaN, NaN-boxed */
#define CANON_D 0x7ff8000000000000ull
#define BOX(v) (0xffffffff00000000ull | (uint32_t)(v))

#define FP_OP(f5, fmt, rd, rs1, rs2, rm) enc_r(0x53, rd, rm, rs1, rs2, (f5) << 2 | (fmt))
#define FADD(fmt, rd, a, b, rm) FP_OP(0x00, fmt, rd, a, b, rm)
#define FSUB(fmt, rd, a, b, rm) FP_OP(0x01, fmt, rd, a, b, rm)
#define FMUL(fmt, rd, a, b, rm) FP_OP(0x02, fmt, rd, a, b, rm)
#define FDIV(fmt, rd, a, b, rm) FP_OP(0x03, fmt, rd, a, b, rm)
#define FSQRT(fmt, rd, a, rm) FP_OP(0x0b, fmt, rd, a, 0, rm)
#define FSGNJ(fmt, rd, a, b, k) FP_OP(0x04, fmt, rd, a, b, k)
#define FMINMAX(fmt, rd, a, b, is_max) FP_OP(0x05, fmt, rd, a, b, is_max)
#define FCVT_S_D(rd, a, rm) FP_OP(0x08, S, rd, a, 1, rm)
#define FCVT_D_S(rd, a) FP_OP(0x08, D, rd, a, 0, RNE)
#define FCMP(fmt, rd, a, b, k) FP_OP(0x14, fmt, rd, a, b, k)	/* k: 2 FEQ, 1 FLT, 0 FLE */
#define FCVT_TO_INT(fmt, rd, a, type, rm) FP_OP(0x18, fmt, rd, a, type, rm)
#define FCVT_FROM_INT(fmt, rd, a, type, rm) FP_OP(0x1a, fmt, rd, a, type, rm)
#define FMV_X(fmt, rd, a) FP_OP(0x1c, fmt, rd, a, 0, 0)
#define FCLASS(fmt, rd, a) FP_OP(0x1c, fmt, rd, a, 0, 1)
#define FMV_F(fmt, rd, a) FP_OP(0x1e, fmt, rd, a, 0, 0)
#define R4(op, fmt, rd, a, b, c, rm) \
	((uint32_t)(c) << 27 | (fmt) << 25 | (b) << 20 | (a) << 15 | (rm) << 12 | (rd) << 7 | (op))
#define FMADD(fmt, rd, a, b, c, rm) R4(0x43, fmt, rd, a, b, c, rm)
#define FMSUB(fmt, rd, a, b, c, rm) R4(0x47, fmt, rd, a, b, c, rm)
#define FNMSUB(fmt, rd, a, b, c, rm) R4(0x4b, fmt, rd, a, b, c, rm)
#define FNMADD(fmt, rd, a, b, c, rm) R4(0x4f, fmt, rd, a, b, c, rm)
#define FLW(rd, a, i) enc_i(0x07, rd, 2, a, i)
#define FLD(rd, a, i) enc_i(0x07, rd, 3, a, i)
#define FSW(a, s, i) ((enc_s(2, a, s, i) & ~0x7fu) | 0x27)
#define FSD(a, s, i) ((enc_s(3, a, s, i) & ~0x7fu) | 0x27)
#define CSR_FFLAGS 0x001
#define CSR_FRM 0x002
#define CSR_FCSR 0x003

enum { W, WU, L, LU };

static uint64_t f32(float f)
{
	uint32_t b;

	memcpy(&b, &f, 4);
	return BOX(b);
}

static uint64_t f64(double d)
{
	uint64_t b;

	memcpy(&b, &d, 8);
	return b;
}

struct fp_in {
	uint64_t f1, f2, f3;
	uint64_t x;	/* a1 */
	uint64_t fcsr;
};

/* Runs one instruction (operands f1, f2, f3, a1; result in f4 or a0) with FS=Initial. */
static struct vcpu_state run1(uint32_t insn, struct fp_in in)
{
	struct vcpu_state s = tm_state(&tm);

	tm.cursor = RAM_BASE;
	emit(&tm, insn);
	emit(&tm, ECALL);
	s.pc = RAM_BASE;
	s.sstatus = FS_INITIAL;
	s.f[1] = in.f1;
	s.f[2] = in.f2;
	s.f[3] = in.f3;
	s.f[4] = 0;
	s.x[A0] = 0;
	s.x[A1] = in.x;
	s.fcsr = in.fcsr;
	s.scause = 0;
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	tm_run_to_ecall(&tm);
	s = tm_state(&tm);
	cr_assert_eq(s.scause, 0, "insn %#x trapped, cause %lu", insn, (unsigned long)s.scause);
	return s;
}

static bool is_illegal(uint32_t insn, struct fp_in in)
{
	struct vcpu_state s = tm_state(&tm);

	tm.cursor = RAM_BASE;
	emit(&tm, insn);
	emit(&tm, ECALL);
	s.pc = RAM_BASE;
	s.sstatus = FS_INITIAL;
	s.fcsr = in.fcsr;
	s.scause = 0;
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	tm_run_to_ecall(&tm);
	s = tm_state(&tm);
	return s.scause == 2 && s.stval == insn && s.sepc == RAM_BASE;
}

/* An arithmetic case: the result and the flags for each of RNE, RTZ, RDN, RUP, RMM. */
struct per_mode {
	const char *what;
	uint32_t (*insn)(unsigned rm);
	struct fp_in in;
	uint64_t want[5];
	unsigned flags[5];
	bool int_result;
};

static void check_modes(const struct per_mode *c)
{
	for (unsigned rm = RNE; rm <= RMM; rm++) {
		struct vcpu_state s = run1(c->insn(rm), c->in);
		uint64_t got = c->int_result ? s.x[A0] : s.f[4];

		cr_expect_eq(got, c->want[rm], "%s rm %u: got %#lx want %#lx", c->what, rm,
			     (unsigned long)got, (unsigned long)c->want[rm]);
		cr_expect_eq(s.fcsr & 0x1f, c->flags[rm], "%s rm %u: flags %#lx want %#x", c->what,
			     rm, (unsigned long)s.fcsr & 0x1f, c->flags[rm]);
	}
}

static uint32_t fadd_s(unsigned rm) { return FADD(S, 4, 1, 2, rm); }
static uint32_t fadd_d(unsigned rm) { return FADD(D, 4, 1, 2, rm); }
static uint32_t fmul_s(unsigned rm) { return FMUL(S, 4, 1, 2, rm); }
static uint32_t fmul_d(unsigned rm) { return FMUL(D, 4, 1, 2, rm); }
static uint32_t fdiv_s(unsigned rm) { return FDIV(S, 4, 1, 2, rm); }
static uint32_t fmadd_d(unsigned rm) { return FMADD(D, 4, 1, 2, 3, rm); }
static uint32_t fcvt_w_d(unsigned rm) { return FCVT_TO_INT(D, A0, 1, W, rm); }
static uint32_t fcvt_s_w(unsigned rm) { return FCVT_FROM_INT(S, 4, A1, W, rm); }
static uint32_t fcvt_s_l(unsigned rm) { return FCVT_FROM_INT(S, 4, A1, L, rm); }
static uint32_t fcvt_d_lu(unsigned rm) { return FCVT_FROM_INT(D, 4, A1, LU, rm); }
static uint32_t fcvt_s_d(unsigned rm) { return FCVT_S_D(4, 1, rm); }

Test(rv64_fp, add_rounds_per_mode)
{
	/* 1 + 2^-24 is a tie in binary32: RNE keeps the even 1.0, RMM goes away. */
	struct per_mode tie_s = {
		.what = "fadd.s 1+2^-24",
		.insn = fadd_s,
		.in = { .f1 = f32(1.0f), .f2 = f32(0x1p-24f) },
		.want = { BOX(0x3f800000), BOX(0x3f800000), BOX(0x3f800000), BOX(0x3f800001), BOX(0x3f800001) },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	struct per_mode neg_tie_s = {
		.what = "fadd.s -1-2^-24",
		.insn = fadd_s,
		.in = { .f1 = f32(-1.0f), .f2 = f32(-0x1p-24f) },
		.want = { BOX(0xbf800000), BOX(0xbf800000), BOX(0xbf800001), BOX(0xbf800000), BOX(0xbf800001) },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	struct per_mode tie_d = {
		.what = "fadd.d 1+2^-53",
		.insn = fadd_d,
		.in = { .f1 = f64(1.0), .f2 = f64(0x1p-53) },
		.want = { 0x3ff0000000000000, 0x3ff0000000000000, 0x3ff0000000000000, 0x3ff0000000000001, 0x3ff0000000000001 },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	/* x - x is +0 in every mode but RDN, where it is -0. */
	struct per_mode zero_d = {
		.what = "fadd.d 1-1",
		.insn = fadd_d,
		.in = { .f1 = f64(1.0), .f2 = f64(-1.0) },
		.want = { 0, 0, 1ull << 63, 0, 0 },
		.flags = { 0, 0, 0, 0, 0 },
		.int_result = false,
	};

	check_modes(&tie_s);
	check_modes(&neg_tie_s);
	check_modes(&tie_d);
	check_modes(&zero_d);
}

Test(rv64_fp, mul_div_round_per_mode)
{
	/* (1 + 3*2^-23) * 1.5 = 1.5 + 4.5*2^-23: a tie whose even neighbour is below. */
	struct per_mode tie_s = {
		.what = "fmul.s tie",
		.insn = fmul_s,
		.in = { .f1 = BOX(0x3f800003), .f2 = f32(1.5f) },
		.want = { BOX(0x3fc00004), BOX(0x3fc00004), BOX(0x3fc00004), BOX(0x3fc00005), BOX(0x3fc00005) },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	/* (1 + 2^-52)^2 = 1 + 2^-51 + 2^-104: just above a representable value. */
	struct per_mode sq_d = {
		.what = "fmul.d",
		.insn = fmul_d,
		.in = { .f1 = 0x3ff0000000000001, .f2 = 0x3ff0000000000001 },
		.want = { 0x3ff0000000000002, 0x3ff0000000000002, 0x3ff0000000000002, 0x3ff0000000000003, 0x3ff0000000000002 },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	/* 1/3 = 0x3eaaaaaa + 2/3 ulp. */
	struct per_mode third = {
		.what = "fdiv.s 1/3",
		.insn = fdiv_s,
		.in = { .f1 = f32(1.0f), .f2 = f32(3.0f) },
		.want = { BOX(0x3eaaaaab), BOX(0x3eaaaaaa), BOX(0x3eaaaaaa), BOX(0x3eaaaaab), BOX(0x3eaaaaab) },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	/* max * 2 overflows: to infinity, or to the largest finite toward zero. */
	struct per_mode ovf = {
		.what = "fmul.s overflow",
		.insn = fmul_s,
		.in = { .f1 = BOX(0x7f7fffff), .f2 = f32(2.0f) },
		.want = { BOX(0x7f800000), BOX(0x7f7fffff), BOX(0x7f7fffff), BOX(0x7f800000), BOX(0x7f800000) },
		.flags = { OF | NX, OF | NX, OF | NX, OF | NX, OF | NX },
		.int_result = false,
	};
	/* 2^-149 * 0.5 is a tie between 0 and the smallest subnormal. */
	struct per_mode unf = {
		.what = "fmul.s underflow",
		.insn = fmul_s,
		.in = { .f1 = BOX(0x00000001), .f2 = f32(0.5f) },
		.want = { BOX(0), BOX(0), BOX(0), BOX(1), BOX(1) },
		.flags = { UF | NX, UF | NX, UF | NX, UF | NX, UF | NX },
		.int_result = false,
	};

	check_modes(&tie_s);
	check_modes(&sq_d);
	check_modes(&third);
	check_modes(&ovf);
	check_modes(&unf);
}

Test(rv64_fp, sqrt_rounds_per_mode)
{
	uint64_t r[5];
	float host = sqrtf(2.0f);
	struct vcpu_state s;

	for (unsigned rm = RNE; rm <= RMM; rm++) {
		s = run1(FSQRT(S, 4, 1, rm), (struct fp_in){ .f1 = f32(2.0f) });
		r[rm] = s.f[4];
		cr_expect_eq(s.fcsr & 0x1f, NX);
	}
	cr_expect_eq(r[RNE], f32(host), "the host's correctly rounded sqrtf");
	cr_expect_eq(r[RUP], r[RDN] + 1, "sqrt(2) lies strictly between two floats");
	cr_expect_eq(r[RTZ], r[RDN]);
	cr_expect_eq(r[RMM], r[RNE], "a square root is never a tie");
	s = run1(FSQRT(D, 4, 1, RNE), (struct fp_in){ .f1 = f64(-1.0) });
	cr_expect_eq(s.f[4], CANON_D);
	cr_expect_eq(s.fcsr & 0x1f, NV);
	s = run1(FSQRT(D, 4, 1, RNE), (struct fp_in){ .f1 = f64(-0.0) });
	cr_expect_eq(s.f[4], f64(-0.0));
	cr_expect_eq(s.fcsr & 0x1f, 0);
}

Test(rv64_fp, tininess_is_detected_after_rounding)
{
	/* 2^-126 * (1 - 2^-25) rounds up to the smallest normal: no UF in RNE, UF in RTZ. */
	struct per_mode c = {
		.what = "fcvt.s.d near 2^-126",
		.insn = fcvt_s_d,
		.in = { .f1 = 0x380ffffff0000000 },
		.want = { BOX(0x00800000), BOX(0x007fffff), BOX(0x007fffff), BOX(0x00800000), BOX(0x00800000) },
		.flags = { NX, UF | NX, UF | NX, NX, NX },
		.int_result = false,
	};

	check_modes(&c);
}

Test(rv64_fp, fused_multiply_add)
{
	/* (1 + 2^-52)(1 - 2^-52) - 1 = -2^-104 exactly; unfused it would be 0. */
	struct per_mode fused = {
		.what = "fmadd.d",
		.insn = fmadd_d,
		.in = { .f1 = 0x3ff0000000000001, .f2 = 0x3feffffffffffffe, .f3 = f64(-1.0) },
		.want = { 0xb970000000000000, 0xb970000000000000, 0xb970000000000000, 0xb970000000000000, 0xb970000000000000 },
		.flags = { 0, 0, 0, 0, 0 },
		.int_result = false,
	};
	struct fp_in in = { .f1 = f64(2.0), .f2 = f64(3.0), .f3 = f64(1.0) };
	struct vcpu_state s;

	check_modes(&fused);
	cr_expect_eq(run1(FMADD(D, 4, 1, 2, 3, RNE), in).f[4], f64(7.0));
	cr_expect_eq(run1(FMSUB(D, 4, 1, 2, 3, RNE), in).f[4], f64(5.0));
	cr_expect_eq(run1(FNMSUB(D, 4, 1, 2, 3, RNE), in).f[4], f64(-5.0));
	cr_expect_eq(run1(FNMADD(D, 4, 1, 2, 3, RNE), in).f[4], f64(-7.0));
	in = (struct fp_in){ .f1 = f32(2.0f), .f2 = f32(3.0f), .f3 = f32(1.0f) };
	cr_expect_eq(run1(FNMADD(S, 4, 1, 2, 3, RNE), in).f[4], f32(-7.0f));
	/* inf * 0 + qNaN is invalid even though the addend is a quiet NaN. */
	s = run1(FMADD(D, 4, 1, 2, 3, RNE),
		 (struct fp_in){ .f1 = f64(INFINITY), .f2 = 0, .f3 = CANON_D });
	cr_expect_eq(s.f[4], CANON_D);
	cr_expect_eq(s.fcsr & 0x1f, NV);
	s = run1(FMADD(S, 4, 1, 2, 3, RMM),
		 (struct fp_in){ .f1 = f32(0.0f), .f2 = f32(INFINITY), .f3 = CANON_S });
	cr_expect_eq(s.f[4], CANON_S);
	cr_expect_eq(s.fcsr & 0x1f, NV);
}

Test(rv64_fp, nan_boxing)
{
	struct vcpu_state s;

	/* Not boxed: the operand reads as the canonical NaN. */
	s = run1(FADD(S, 4, 1, 2, RNE), (struct fp_in){ .f1 = 0x3f800000, .f2 = f32(1.0f) });
	cr_expect_eq(s.f[4], CANON_S);
	cr_expect_eq(s.fcsr & 0x1f, 0, "the canonical NaN is quiet");
	s = run1(FADD(S, 4, 1, 2, RNE), (struct fp_in){ .f1 = f32(1.0f), .f2 = f32(1.0f) });
	cr_expect_eq(s.f[4], f32(2.0f));
	s = run1(FSGNJ(S, 4, 1, 2, 0), (struct fp_in){ .f1 = 0x123456783f800000ull, .f2 = f32(-1.0f) });
	cr_expect_eq(s.f[4], 0xffffffffffc00000ull, "sign injected into the canonical NaN");
	/* FMV.X.W moves the low 32 bits, boxed or not, sign-extended. */
	s = run1(FMV_X(S, A0, 1), (struct fp_in){ .f1 = 0x00000000bf800000ull });
	cr_expect_eq(s.x[A0], 0xffffffffbf800000ull);
	s = run1(FMV_F(S, 4, A1), (struct fp_in){ .x = 0x1234567840490fdbull });
	cr_expect_eq(s.f[4], BOX(0x40490fdb));
	s = run1(FMV_F(D, 4, A1), (struct fp_in){ .x = 0x400921fb54442d18ull });
	cr_expect_eq(s.f[4], 0x400921fb54442d18ull);
	s = run1(FMV_X(D, A0, 1), (struct fp_in){ .f1 = 0xfff0000000000001ull });
	cr_expect_eq(s.x[A0], 0xfff0000000000001ull, "moves do not canonicalize");
	/* Double ops read all 64 bits: a boxed single is a NaN to them. */
	s = run1(FADD(D, 4, 1, 2, RNE), (struct fp_in){ .f1 = f32(1.0f), .f2 = f64(1.0) });
	cr_expect_eq(s.f[4], CANON_D);
}

Test(rv64_fp, nan_results_are_canonical_and_snan_is_invalid)
{
	struct vcpu_state s;

	s = run1(FADD(D, 4, 1, 2, RNE), (struct fp_in){ .f1 = 0x7ff0000000000001ull, .f2 = f64(1) });
	cr_expect_eq(s.f[4], CANON_D);
	cr_expect_eq(s.fcsr & 0x1f, NV);
	s = run1(FADD(D, 4, 1, 2, RNE), (struct fp_in){ .f1 = 0xfff8000000000123ull, .f2 = f64(1) });
	cr_expect_eq(s.f[4], CANON_D, "a quiet NaN's payload is not propagated");
	cr_expect_eq(s.fcsr & 0x1f, 0);
	s = run1(FMUL(S, 4, 1, 2, RNE), (struct fp_in){ .f1 = BOX(0x7f800001), .f2 = f32(1) });
	cr_expect_eq(s.f[4], CANON_S);
	cr_expect_eq(s.fcsr & 0x1f, NV);
	s = run1(FSUB(D, 4, 1, 2, RNE), (struct fp_in){ .f1 = f64(INFINITY), .f2 = f64(INFINITY) });
	cr_expect_eq(s.f[4], CANON_D);
	cr_expect_eq(s.fcsr & 0x1f, NV);
	s = run1(FDIV(S, 4, 1, 2, RNE), (struct fp_in){ .f1 = f32(1), .f2 = f32(0) });
	cr_expect_eq(s.f[4], f32(INFINITY));
	cr_expect_eq(s.fcsr & 0x1f, DZ);
	s = run1(FDIV(D, 4, 1, 2, RMM), (struct fp_in){ .f1 = f64(-1), .f2 = 0 });
	cr_expect_eq(s.f[4], f64(-INFINITY));
	cr_expect_eq(s.fcsr & 0x1f, DZ);
	s = run1(FDIV(D, 4, 1, 2, RNE), (struct fp_in){ .f1 = 0, .f2 = 0 });
	cr_expect_eq(s.f[4], CANON_D);
	cr_expect_eq(s.fcsr & 0x1f, NV);
	s = run1(FCVT_D_S(4, 1), (struct fp_in){ .f1 = BOX(0x7f800001) });
	cr_expect_eq(s.f[4], CANON_D);
	cr_expect_eq(s.fcsr & 0x1f, NV);
	s = run1(FCVT_S_D(4, 1, RNE), (struct fp_in){ .f1 = 0x7ff8000000000001ull });
	cr_expect_eq(s.f[4], CANON_S);
	cr_expect_eq(s.fcsr & 0x1f, 0);
}

Test(rv64_fp, min_max_zeros_and_nans)
{
	static const struct {
		uint64_t a, b;
		bool is_max;
		uint64_t want;
		unsigned flags;
	} c[] = {
		{ 1ull << 63, 0, false, 1ull << 63, 0 },
		{ 0, 1ull << 63, false, 1ull << 63, 0 },
		{ 1ull << 63, 0, true, 0, 0 },
		{ 0, 1ull << 63, true, 0, 0 },
		{ CANON_D, 0x3ff0000000000000, false, 0x3ff0000000000000, 0 },
		{ 0x3ff0000000000000, 0x7ff0000000000001, true, 0x3ff0000000000000, NV },
		{ 0x7ff8000000000005, CANON_D, false, CANON_D, 0 },
		{ 0x7ff0000000000001, 0x7ff8000000000000, true, CANON_D, NV },
		{ 0xbff0000000000000, 0x4000000000000000, false, 0xbff0000000000000, 0 },
		{ 0xbff0000000000000, 0x4000000000000000, true, 0x4000000000000000, 0 },
	};
	struct vcpu_state s;

	for (size_t i = 0; i < N_ELEMS(c); i++) {
		s = run1(FMINMAX(D, 4, 1, 2, c[i].is_max), (struct fp_in){ .f1 = c[i].a, .f2 = c[i].b });
		cr_expect_eq(s.f[4], c[i].want, "case %zu: %#lx", i, (unsigned long)s.f[4]);
		cr_expect_eq(s.fcsr & 0x1f, c[i].flags, "case %zu", i);
	}
	s = run1(FMINMAX(S, 4, 1, 2, 0), (struct fp_in){ .f1 = f32(0.0f), .f2 = f32(-0.0f) });
	cr_expect_eq(s.f[4], f32(-0.0f));
	s = run1(FMINMAX(S, 4, 1, 2, 1), (struct fp_in){ .f1 = BOX(0x7fa00000), .f2 = f32(3.0f) });
	cr_expect_eq(s.f[4], f32(3.0f), "sNaN and a number: the number, with NV");
	cr_expect_eq(s.fcsr & 0x1f, NV);
}

Test(rv64_fp, compares_quiet_and_signaling)
{
	struct fp_in qnan = { .f1 = CANON_D, .f2 = f64(1) };
	struct fp_in snan = { .f1 = f64(1), .f2 = 0x7ff4000000000000ull };
	struct fp_in lt = { .f1 = f64(-2), .f2 = f64(1) };
	struct fp_in zeros = { .f1 = 1ull << 63, .f2 = 0 };
	struct vcpu_state s;

	s = run1(FCMP(D, A0, 1, 2, 2), qnan);
	cr_expect(s.x[A0] == 0 && (s.fcsr & 0x1f) == 0, "FEQ is quiet on a qNaN");
	s = run1(FCMP(D, A0, 1, 2, 2), snan);
	cr_expect(s.x[A0] == 0 && (s.fcsr & 0x1f) == NV, "FEQ signals on an sNaN");
	s = run1(FCMP(D, A0, 1, 2, 1), qnan);
	cr_expect(s.x[A0] == 0 && (s.fcsr & 0x1f) == NV, "FLT signals on a qNaN");
	s = run1(FCMP(D, A0, 1, 2, 0), qnan);
	cr_expect(s.x[A0] == 0 && (s.fcsr & 0x1f) == NV, "FLE signals on a qNaN");
	cr_expect_eq(run1(FCMP(D, A0, 1, 2, 1), lt).x[A0], 1);
	cr_expect_eq(run1(FCMP(D, A0, 2, 1, 1), lt).x[A0], 0);
	cr_expect_eq(run1(FCMP(D, A0, 1, 2, 2), zeros).x[A0], 1, "-0 == +0");
	cr_expect_eq(run1(FCMP(D, A0, 1, 2, 1), zeros).x[A0], 0, "-0 < +0 is false");
	cr_expect_eq(run1(FCMP(D, A0, 1, 2, 0), zeros).x[A0], 1);
	s = run1(FCMP(S, A0, 1, 2, 0), (struct fp_in){ .f1 = f32(1.5f), .f2 = f32(1.5f) });
	cr_expect_eq(s.x[A0], 1);
}

Test(rv64_fp, fcvt_to_int_rounds_per_mode)
{
	struct per_mode pos = {
		.what = "fcvt.w.d 2.5",
		.insn = fcvt_w_d,
		.in = { .f1 = f64(2.5) },
		.want = { 2, 2, 2, 3, 3 },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = true,
	};
	struct per_mode neg = {
		.what = "fcvt.w.d -2.5",
		.insn = fcvt_w_d,
		.in = { .f1 = f64(-2.5) },
		.want = { (uint64_t)-2, (uint64_t)-2, (uint64_t)-3, (uint64_t)-2, (uint64_t)-3 },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = true,
	};
	struct per_mode odd = {
		.what = "fcvt.w.d 3.5",
		.insn = fcvt_w_d,
		.in = { .f1 = f64(3.5) },
		.want = { 4, 3, 3, 4, 4 },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = true,
	};
	struct per_mode below_half = {
		.what = "fcvt.w.d -0.25",
		.insn = fcvt_w_d,
		.in = { .f1 = f64(-0.25) },
		.want = { 0, 0, (uint64_t)-1, 0, 0 },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = true,
	};

	check_modes(&pos);
	check_modes(&neg);
	check_modes(&odd);
	check_modes(&below_half);
}

Test(rv64_fp, fcvt_to_int_saturates)
{
	static const struct {
		uint64_t in;	/* a double */
		unsigned type;
		uint64_t want;
		unsigned flags;
	} c[] = {
		{ 0x4202a05f20000000, W, 0x7fffffff, NV },			/* 1e10 */
		{ 0xc202a05f20000000, W, 0xffffffff80000000, NV },		/* -1e10 */
		{ CANON_D, W, 0x7fffffff, NV },
		{ 0x7ff0000000000001, W, 0x7fffffff, NV },
		{ 0xfff0000000000000, W, 0xffffffff80000000, NV },		/* -inf */
		{ 0x7ff0000000000000, W, 0x7fffffff, NV },
		{ 0x41e0000000000000, W, 0x7fffffff, NV },			/* 2^31 */
		{ 0xc1e0000000000000, W, 0xffffffff80000000, 0 },		/* -2^31 */
		{ 0xbff0000000000000, WU, 0, NV },				/* -1 */
		{ 0xbfe0000000000000, WU, 0, NX },				/* -0.5 */
		{ 0x41e65a0bc0000000, WU, 0xffffffffb2d05e00, 0 },		/* 3e9, sign-extended */
		{ CANON_D, WU, 0xffffffffffffffff, NV },
		{ 0x43e0000000000000, L, 0x7fffffffffffffff, NV },		/* 2^63 */
		{ 0xc3e0000000000000, L, 0x8000000000000000, 0 },		/* -2^63 */
		{ 0xfff0000000000000, L, 0x8000000000000000, NV },
		{ CANON_D, L, 0x7fffffffffffffff, NV },
		{ 0x7ff0000000000000, LU, 0xffffffffffffffff, NV },
		{ 0x43f0000000000000, LU, 0xffffffffffffffff, NV },		/* 2^64 */
		{ 0x43efffffffffffff, LU, 0xfffffffffffff800, 0 },
		{ 0xfff0000000000000, LU, 0, NV },
		{ CANON_D, LU, 0xffffffffffffffff, NV },
	};
	struct vcpu_state s;

	for (size_t i = 0; i < N_ELEMS(c); i++) {
		s = run1(FCVT_TO_INT(D, A0, 1, c[i].type, RTZ), (struct fp_in){ .f1 = c[i].in });
		cr_expect_eq(s.x[A0], c[i].want, "case %zu: %#lx", i, (unsigned long)s.x[A0]);
		cr_expect_eq(s.fcsr & 0x1f, c[i].flags, "case %zu: flags %#lx", i,
			     (unsigned long)s.fcsr & 0x1f);
	}
	s = run1(FCVT_TO_INT(S, A0, 1, W, RTZ), (struct fp_in){ .f1 = f32(-3e9f) });
	cr_expect_eq(s.x[A0], 0xffffffff80000000);
	cr_expect_eq(s.fcsr & 0x1f, NV);
	s = run1(FCVT_TO_INT(S, A0, 1, L, RNE), (struct fp_in){ .f1 = 0x3f800000 });
	cr_expect_eq(s.x[A0], 0x7fffffffffffffff, "an unboxed single is NaN");
}

Test(rv64_fp, fcvt_from_int_rounds_per_mode)
{
	/* 2^24 + 1 is a tie between 2^24 and 2^24 + 2 in binary32. */
	struct per_mode tie = {
		.what = "fcvt.s.w 2^24+1",
		.insn = fcvt_s_w,
		.in = { .x = 16777217 },
		.want = { BOX(0x4b800000), BOX(0x4b800000), BOX(0x4b800000), BOX(0x4b800001), BOX(0x4b800001) },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	struct per_mode neg = {
		.what = "fcvt.s.l -(2^24+1)",
		.insn = fcvt_s_l,
		.in = { .x = (uint64_t)-16777217 },
		.want = { BOX(0xcb800000), BOX(0xcb800000), BOX(0xcb800001), BOX(0xcb800000), BOX(0xcb800001) },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	struct per_mode big = {
		.what = "fcvt.d.lu 2^64-1",
		.insn = fcvt_d_lu,
		.in = { .x = UINT64_MAX },
		.want = { 0x43f0000000000000, 0x43efffffffffffff, 0x43efffffffffffff, 0x43f0000000000000, 0x43f0000000000000 },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	struct per_mode narrow = {
		.what = "fcvt.s.d 1+2^-24",
		.insn = fcvt_s_d,
		.in = { .f1 = f64(1.0 + 0x1p-24) },
		.want = { BOX(0x3f800000), BOX(0x3f800000), BOX(0x3f800000), BOX(0x3f800001), BOX(0x3f800001) },
		.flags = { NX, NX, NX, NX, NX },
		.int_result = false,
	};
	struct vcpu_state s;

	check_modes(&tie);
	check_modes(&neg);
	check_modes(&big);
	check_modes(&narrow);
	s = run1(FCVT_FROM_INT(D, 4, A1, W, RNE), (struct fp_in){ .x = 0xffffffff80000000ull });
	cr_expect_eq(s.f[4], f64(-2147483648.0));
	cr_expect_eq(s.fcsr & 0x1f, 0);
	s = run1(FCVT_FROM_INT(D, 4, A1, WU, RNE), (struct fp_in){ .x = 0x12345678ffffffffull });
	cr_expect_eq(s.f[4], f64(4294967295.0), "WU reads the low 32 bits unsigned");
	s = run1(FCVT_D_S(4, 1), (struct fp_in){ .f1 = f32(0.1f) });
	cr_expect_eq(s.f[4], f64((double)0.1f));
	cr_expect_eq(s.fcsr & 0x1f, 0, "widening is exact");
}

Test(rv64_fp, fclass_every_class)
{
	static const struct { uint64_t d; uint32_t s; unsigned bit; } c[] = {
		{ 0xfff0000000000000, 0xff800000, 0 },	/* -inf */
		{ 0xbff0000000000000, 0xbf800000, 1 },	/* negative normal */
		{ 0x800fffffffffffff, 0x807fffff, 2 },	/* negative subnormal */
		{ 0x8000000000000000, 0x80000000, 3 },	/* -0 */
		{ 0x0000000000000000, 0x00000000, 4 },	/* +0 */
		{ 0x0000000000000001, 0x00000001, 5 },	/* positive subnormal */
		{ 0x7fefffffffffffff, 0x7f7fffff, 6 },	/* positive normal */
		{ 0x7ff0000000000000, 0x7f800000, 7 },	/* +inf */
		{ 0x7ff0000000000001, 0x7f800001, 8 },	/* sNaN */
		{ 0x7ff8000000000000, 0x7fc00000, 9 },	/* qNaN */
	};

	for (size_t i = 0; i < N_ELEMS(c); i++) {
		cr_expect_eq(run1(FCLASS(D, A0, 1), (struct fp_in){ .f1 = c[i].d }).x[A0],
			     1u << c[i].bit, "double case %zu", i);
		cr_expect_eq(run1(FCLASS(S, A0, 1), (struct fp_in){ .f1 = BOX(c[i].s) }).x[A0],
			     1u << c[i].bit, "single case %zu", i);
	}
	cr_expect_eq(run1(FCLASS(S, A0, 1), (struct fp_in){ .f1 = 0xff800000 }).x[A0], 1u << 9,
		     "an unboxed value classifies as the canonical qNaN");
}

Test(rv64_fp, sign_injection)
{
	struct fp_in in = { .f1 = f64(3.0), .f2 = f64(-1.0) };

	cr_expect_eq(run1(FSGNJ(D, 4, 1, 2, 0), in).f[4], f64(-3.0));
	cr_expect_eq(run1(FSGNJ(D, 4, 1, 2, 1), in).f[4], f64(3.0));
	cr_expect_eq(run1(FSGNJ(D, 4, 1, 2, 2), in).f[4], f64(-3.0));
	in.f1 = f64(-3.0);
	cr_expect_eq(run1(FSGNJ(D, 4, 1, 2, 2), in).f[4], f64(3.0));
	in = (struct fp_in){ .f1 = 0x7ff0000000000001, .f2 = f64(-1.0) };
	cr_expect_eq(run1(FSGNJ(D, 4, 1, 2, 0), in).f[4], 0xfff0000000000001, "no canonicalizing");
	cr_expect_eq(run1(FSGNJ(D, 4, 1, 2, 0), in).fcsr & 0x1f, 0);
	in = (struct fp_in){ .f1 = f32(2.0f), .f2 = f32(-0.0f) };
	cr_expect_eq(run1(FSGNJ(S, 4, 1, 2, 0), in).f[4], f32(-2.0f));
}

Test(rv64_fp, fflags_accrue_and_fp_csrs)
{
	struct vcpu_state s;

	tm.cursor = RAM_BASE;
	emit(&tm, FDIV(S, 4, 1, 2, RNE));	/* 1/3: NX */
	emit(&tm, FDIV(S, 5, 1, 3, RNE));	/* 1/0: DZ */
	emit(&tm, FADD(S, 6, 1, 1, RNE));	/* exact: clears nothing */
	emit(&tm, CSRRS(A0, CSR_FFLAGS, ZERO));
	emit(&tm, CSRRWI(A1, CSR_FRM, 3));
	emit(&tm, CSRRS(A2, CSR_FCSR, ZERO));
	emit(&tm, CSRRWI(A3, CSR_FFLAGS, 0));
	emit(&tm, CSRRS(A4, CSR_FCSR, ZERO));
	emit(&tm, ECALL);
	s = tm_state(&tm);
	s.pc = RAM_BASE;
	s.sstatus = FS_INITIAL;
	s.f[1] = f32(1.0f);
	s.f[2] = f32(3.0f);
	s.f[3] = f32(0.0f);
	s.fcsr = 1 << 5;	/* frm = RTZ */
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), NX | DZ);
	cr_expect_eq(reg(&tm, A1), RTZ, "old frm");
	cr_expect_eq(reg(&tm, A2), (RUP << 5) | NX | DZ);
	cr_expect_eq(reg(&tm, A3), NX | DZ);
	cr_expect_eq(reg(&tm, A4), RUP << 5);
}

Test(rv64_fp, dynamic_and_reserved_rounding_modes)
{
	struct fp_in in = { .f1 = f32(1.0f), .f2 = f32(3.0f), .fcsr = RUP << 5 };

	cr_expect_eq(run1(FDIV(S, 4, 1, 2, DYN), in).f[4], BOX(0x3eaaaaab));
	in.fcsr = RTZ << 5;
	cr_expect_eq(run1(FDIV(S, 4, 1, 2, DYN), in).f[4], BOX(0x3eaaaaaa));
	cr_expect(is_illegal(FDIV(S, 4, 1, 2, 5), in), "rm 5 is reserved");
	cr_expect(is_illegal(FDIV(S, 4, 1, 2, 6), in), "rm 6 is reserved");
	in.fcsr = 5 << 5;
	cr_expect(is_illegal(FDIV(S, 4, 1, 2, DYN), in), "frm 5 with a dynamic rm");
	in.fcsr = 7 << 5;
	cr_expect(is_illegal(FCVT_TO_INT(D, A0, 1, W, DYN), in), "frm 7 with a dynamic rm");
	cr_expect(is_illegal(FP_OP(0x00, 2, 4, 1, 2, RNE), in), "fmt H is not implemented");
	cr_expect(is_illegal(FSQRT(S, 4, 1, RNE) | 1u << 20, in), "fsqrt with rs2 != 0");
}

Test(rv64_fp, fs_off_is_illegal_and_writes_dirty_fs)
{
	struct vcpu_state s;

	/* FS=Off: FP CSRs are illegal too. */
	tm.cursor = RAM_BASE;
	emit(&tm, CSRRS(A0, CSR_FCSR, ZERO));
	emit(&tm, ECALL);
	s = tm_state(&tm);
	s.pc = RAM_BASE;
	s.sstatus = 0;
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	tm_run_to_ecall(&tm);
	cr_expect_eq(tm_state(&tm).scause, 2);
	cr_expect_eq(tm_state(&tm).sepc, RAM_BASE);

	s = run1(FMV_F(D, 4, A1), (struct fp_in){ .x = 1 });
	cr_expect_eq(s.sstatus & FS_DIRTY, FS_DIRTY);
	cr_expect(s.sstatus & SSTATUS_SD, "SD summarises a dirty FS");
	s = run1(FCMP(D, A0, 1, 2, 2), (struct fp_in){ .f1 = f64(1), .f2 = f64(1) });
	cr_expect_eq(s.sstatus & FS_DIRTY, FS_INITIAL, "a compare that raises nothing stays clean");
	s = run1(FSD(A1, 1, 0), (struct fp_in){ .x = RAM_BASE + 0x800, .f1 = 5 });
	cr_expect_eq(s.sstatus & FS_DIRTY, FS_INITIAL, "a store does not change FP state");
	cr_expect_eq(tm_peek64(&tm, RAM_BASE + 0x800), 5);
	s = run1(CSRRWI(ZERO, CSR_FFLAGS, 1), (struct fp_in){ 0 });
	cr_expect_eq(s.sstatus & FS_DIRTY, FS_DIRTY, "a CSR write dirties FS");
}

Test(rv64_fp, loads_stores_and_compressed_forms)
{
	uint64_t buf = RAM_BASE + 0x1000;
	struct vcpu_state s;

	tm_poke64(&tm, buf, 0x400921fb54442d18ull);
	tm_poke64(&tm, buf + 8, 0xaaaaaaaa3f800000ull);
	tm.cursor = RAM_BASE;
	emit(&tm, FLD(1, A1, 0));
	emit(&tm, FLW(2, A1, 8));
	emit(&tm, FSW(A1, 2, 16));
	emit(&tm, FSD(A1, 1, 24));
	emit16(&tm, 0x2484);	/* c.fld f9, 8(s1) */
	emit16(&tm, 0x2102);	/* c.fldsp f2, 0(sp) */
	emit16(&tm, 0xa406);	/* c.fsdsp f1, 8(sp) */
	emit16(&tm, 0xa480);	/* c.fsd f8, 8(s1) */
	emit(&tm, ECALL);
	s = tm_state(&tm);
	s.pc = RAM_BASE;
	s.sstatus = FS_INITIAL;
	s.x[A1] = buf;
	s.x[S1] = buf + 0x100;
	s.x[SP] = buf + 0x200;
	tm_poke64(&tm, buf + 0x108, 0x1111222233334444ull);
	tm_poke64(&tm, buf + 0x200, 0x5555666677778888ull);
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	tm_run_to_ecall(&tm);
	s = tm_state(&tm);
	cr_expect_eq(s.f[1], 0x400921fb54442d18ull);
	cr_expect_eq(tm_peek64(&tm, buf + 16) & 0xffffffff, 0x3f800000, "fsw stores the low word");
	cr_expect_eq(tm_peek64(&tm, buf + 24), 0x400921fb54442d18ull);
	cr_expect_eq(s.f[9], 0x1111222233334444ull, "c.fld f9, 8(s1)");
	cr_expect_eq(s.f[2], 0x5555666677778888ull, "c.fldsp");
	cr_expect_eq(tm_peek64(&tm, buf + 0x208), 0x400921fb54442d18ull, "c.fsdsp");
	cr_expect_eq(tm_peek64(&tm, buf + 0x108), s.f[8], "c.fsd");
}

Test(rv64_fp, state_round_trips)
{
	struct vcpu_state s = tm_state(&tm), t;

	for (unsigned i = 0; i < 32; i++)
		s.f[i] = 0x0123456789abcdefull * (i + 1);
	s.fcsr = 0xff;
	s.sstatus = FS_DIRTY;
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	t = tm_state(&tm);
	cr_expect_arr_eq(t.f, s.f, sizeof(s.f));
	cr_expect_eq(t.fcsr, 0xff);
	cr_expect_eq(t.sstatus & FS_DIRTY, FS_DIRTY);
}

Test(rv64_fp, pause_is_a_no_op)
{
	tm.cursor = RAM_BASE;
	emit(&tm, 0x0100000f);	/* pause: fence w, 0 */
	emit(&tm, ADDI(A0, ZERO, 9));
	emit(&tm, ECALL);
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 9);
	cr_expect_eq(tm_state(&tm).scause, 0);
}

/*
 * NX is sticky, so once the guest has it the engine may compute without
 * watching the host's flags (fpu.c's quick way): every operation must still
 * give the same result, and the same flags plus NX, as from clear flags.
 */
struct sticky_case {
	const char *what;
	uint32_t insn;
	uint64_t f[3];
};

static struct vcpu_state run_in_block_with(uint32_t fp_insn, uint64_t sstatus, struct fp_in in);

/* The same inside a block run until cached, where the translator does the quick way itself. */
static void check_sticky_nx_in_block(const struct sticky_case *c)
{
	struct fp_in in = { .f1 = c->f[0], .f2 = c->f[1], .f3 = c->f[2] };
	struct vcpu_state clear = run_in_block_with(c->insn, FS_INITIAL, in), sticky;

	in.fcsr = NX;
	sticky = run_in_block_with(c->insn, FS_INITIAL, in);
	cr_expect_eq(sticky.f[4], clear.f[4], "%s in a block: %#lx with NX set, %#lx without",
		     c->what, (unsigned long)sticky.f[4], (unsigned long)clear.f[4]);
	cr_expect_eq(sticky.fcsr & 0x1f, (clear.fcsr & 0x1f) | NX, "%s in a block: flags %#lx, then %#lx",
		     c->what, (unsigned long)clear.fcsr & 0x1f, (unsigned long)sticky.fcsr & 0x1f);
	cr_expect_eq(sticky.sstatus & FS_DIRTY, FS_DIRTY, "%s in a block: FS dirty", c->what);
}

static void check_sticky_nx(const struct sticky_case *c)
{
	struct fp_in in = { .f1 = c->f[0], .f2 = c->f[1], .f3 = c->f[2] };
	struct vcpu_state clear = run1(c->insn, in), sticky;

	in.fcsr = NX;
	sticky = run1(c->insn, in);

	cr_expect_eq(sticky.f[4], clear.f[4], "%s: %#lx with NX set, %#lx without", c->what,
		     (unsigned long)sticky.f[4], (unsigned long)clear.f[4]);
	cr_expect_eq(sticky.fcsr & 0x1f, (clear.fcsr & 0x1f) | NX, "%s: flags %#lx, then %#lx",
		     c->what, (unsigned long)clear.fcsr & 0x1f, (unsigned long)sticky.fcsr & 0x1f);
}

Test(rv64_fp, sticky_inexact_changes_no_result_nor_other_flag)
{
	const uint64_t one = f64(1.0), dmin = 0x0010000000000000ull, sub = 1;
	const uint64_t snan = 0x7ff4000000000000ull, neg_zero = 1ull << 63;
	const struct sticky_case cases[] = {
		{ "inexact sum", FADD(D, 4, 1, 2, RNE), { one, f64(0x1p-60) } },
		{ "exact sum", FADD(D, 4, 1, 2, DYN), { one, one } },
		{ "exact zero difference", FSUB(D, 4, 1, 2, RNE), { f64(3.5), f64(3.5) } },
		{ "subnormal product, exact", FMUL(D, 4, 1, 2, RNE), { dmin, f64(0.5) } },
		{ "product rounding up to the smallest normal", FMUL(D, 4, 1, 2, RNE),
		  { dmin, 0x3fefffffffffffffull } },
		{ "underflow to zero", FMUL(D, 4, 1, 2, RNE), { f64(1e-300), f64(1e-300) } },
		{ "overflow", FMUL(D, 4, 1, 2, RNE), { f64(1e300), f64(1e300) } },
		{ "largest finite", FADD(D, 4, 1, 2, RNE), { 0x7fefffffffffffffull, one } },
		{ "division by zero", FDIV(D, 4, 1, 2, RNE), { one, 0 } },
		{ "zero divided", FDIV(D, 4, 1, 2, RNE), { neg_zero, f64(5.0) } },
		{ "a third", FDIV(D, 4, 1, 2, RNE), { one, f64(3.0) } },
		{ "square root of a negative", FSQRT(D, 4, 1, RNE), { f64(-1.0) } },
		{ "square root of minus zero", FSQRT(D, 4, 1, RNE), { neg_zero } },
		{ "square root of two", FSQRT(D, 4, 1, RNE), { f64(2.0) } },
		{ "subnormal operand", FADD(D, 4, 1, 2, RNE), { sub, one } },
		{ "quiet NaN operand", FADD(D, 4, 1, 2, RNE), { CANON_D, one } },
		{ "signalling NaN operand", FMUL(D, 4, 1, 2, RNE), { snan, one } },
		{ "infinity minus infinity", FSUB(D, 4, 1, 2, RNE),
		  { f64(INFINITY), f64(INFINITY) } },
		{ "fused, tiny", FMADD(D, 4, 1, 2, 3, RNE), { f64(1e-200), f64(1e-200), 0 } },
		{ "fused, exact zero", FMADD(D, 4, 1, 2, 3, RNE),
		  { f64(2.0), f64(3.0), f64(-6.0) } },
		{ "fused, inexact", FMADD(D, 4, 1, 2, 3, RNE), { f64(0.1), f64(0.1), f64(1.0) } },
		{ "fused, zero times infinity", FMADD(D, 4, 1, 2, 3, RNE),
		  { 0, f64(INFINITY), one } },
		{ "round toward zero", FDIV(D, 4, 1, 2, RTZ), { one, f64(3.0) } },
		{ "single, inexact", FADD(S, 4, 1, 2, RNE), { f32(1.0f), f32(0x1p-30f) } },
		{ "single, underflow", FMUL(S, 4, 1, 2, RNE), { f32(1e-30f), f32(1e-30f) } },
		{ "single, overflow", FMUL(S, 4, 1, 2, RNE), { f32(3e38f), f32(10.0f) } },
		{ "single, smallest normal", FMUL(S, 4, 1, 2, RNE), { BOX(0x00800000), f32(1.0f) } },
		{ "single, division by zero", FDIV(S, 4, 1, 2, RNE), { f32(1.0f), f32(0.0f) } },
		{ "single, square root", FSQRT(S, 4, 1, RNE), { f32(2.0f) } },
		{ "single, unboxed operand", FADD(S, 4, 1, 2, RNE), { one, f32(1.0f) } },
		{ "single, fused", FMADD(S, 4, 1, 2, 3, RNE), { f32(0.1f), f32(0.1f), f32(1.0f) } },
	};

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		check_sticky_nx(&cases[i]);
		check_sticky_nx_in_block(&cases[i]);
	}
	/* And the quick way computes what it should. */
	cr_expect_eq(run1(FADD(D, 4, 1, 2, RNE), (struct fp_in){ .f1 = one, .f2 = f64(0x1p-60),
						.fcsr = NX }).f[4], one);
	cr_expect_eq(run1(FDIV(D, 4, 1, 2, RNE), (struct fp_in){ .f1 = one, .f2 = f64(4.0),
						.fcsr = NX }).f[4], f64(0.25));
	cr_expect_eq(run1(FMADD(D, 4, 1, 2, 3, RNE), (struct fp_in){ .f1 = f64(2.0), .f2 = f64(3.0),
						.f3 = one, .fcsr = NX }).f[4], f64(7.0));
}

/*
 * An FP load or store between integer instructions, run three times so
 * the translator (where it runs) has the block cached: the value, NaN
 * boxing, FS made dirty by a load, and FS off trapping at that instruction.
 */
#define FP_DATA (RAM_BASE + 0x3000)

static struct vcpu_state run_in_block_with(uint32_t fp_insn, uint64_t sstatus, struct fp_in in)
{
	struct vcpu_state s;

	tm.cursor = RAM_BASE;
	emit(&tm, ADDI(A2, A2, 1));
	emit(&tm, ADDI(A2, A2, 1));
	emit(&tm, fp_insn);
	emit(&tm, ADDI(A2, A2, 1));
	emit(&tm, ECALL);
	for (int round = 0; round < 3; round++) {
		s = tm_state(&tm);
		s.pc = RAM_BASE;
		s.sstatus = sstatus;
		s.x[A1] = FP_DATA;
		s.x[A2] = 0;
		s.f[1] = in.f1;
		s.f[2] = in.f2;
		s.f[3] = in.f3;
		s.f[4] = 0;
		s.fcsr = in.fcsr;
		s.scause = 0;
		s.instret = 0;
		cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
		tm_poke64(&tm, FP_DATA, 0x1122334455667788ull);
		tm_poke64(&tm, FP_DATA + 8, 0);
		tm_run_to_ecall(&tm);
	}
	return tm_state(&tm);
}

static struct vcpu_state run_in_block(uint32_t fp_insn, uint64_t sstatus)
{
	return run_in_block_with(fp_insn, sstatus, (struct fp_in){ .f1 = 0xcafef00d12345678ull });
}

Test(rv64_fp, loads_and_stores_inside_a_block)
{
	struct vcpu_state s = run_in_block(FLD(4, A1, 0), FS_INITIAL);

	cr_expect_eq(s.f[4], 0x1122334455667788ull);
	cr_expect_eq(s.sstatus & FS_DIRTY, FS_DIRTY, "a load makes FS dirty");
	cr_expect_eq(s.x[A2], 3);
	cr_expect_eq(s.instret, 5, "four instructions and the ecall");

	s = run_in_block(FLW(4, A1, 4), FS_INITIAL);
	cr_expect_eq(s.f[4], 0xffffffff11223344ull, "FLW NaN-boxes");

	s = run_in_block(FSD(A1, 1, 8), FS_INITIAL);
	cr_expect_eq(tm_peek64(&tm, FP_DATA + 8), 0xcafef00d12345678ull);
	cr_expect_eq(s.sstatus & FS_DIRTY, FS_INITIAL, "a store leaves FS as it was");

	s = run_in_block(FSW(A1, 1, 8), FS_INITIAL);
	cr_expect_eq(tm_peek64(&tm, FP_DATA + 8), 0x12345678ull, "FSW stores the low word");

	s = run_in_block(FLD(4, A1, 0), 0);
	cr_expect_eq(s.scause, 2, "FS off: illegal");
	cr_expect_eq(s.sepc, RAM_BASE + 8);
	cr_expect_eq(s.x[A2], 2, "the instructions before it ran, not those after");
	cr_expect_eq(s.f[4], 0);
}
