/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Traps differential program, satp 0: illegal instructions, breakpoints,
 * ecall from U-mode, privileged instructions from U-mode, and misaligned
 * loads and stores (which either machine may complete in hardware or in
 * firmware: only the data, which the ISA fixes, is printed).
 */
#include "probe.h"

/* Each sequence starts at its label; ".option norvc" pins down instruction sizes. */
__asm__(".text\n"
	".option push\n"
	".option norvc\n"
	".balign 4\n"
	"seq_illegal_zero: .word 0\n"
	"seq_illegal_ones: .word 0xffffffff\n"
	"seq_mstatus: nop\n csrr a0, mstatus\n ret\n"
	"seq_cycle_write: csrw cycle, a0\n ret\n"
	"seq_ebreak: nop\n ebreak\n ret\n"
	"seq_u_ecall: addi a0, a0, 5\n ecall\n"
	"seq_u_sret: sret\n"
	"seq_u_sstatus: csrr a0, sstatus\n ecall\n"
	"seq_u_satp: csrw satp, zero\n ecall\n"
	"seq_u_sfence: sfence.vma\n ecall\n"
	"seq_ld: ld a0, 0(a0)\n ret\n"
	"seq_lw: lw a0, 0(a0)\n ret\n"
	"seq_lhu: lhu a0, 0(a0)\n ret\n"
	"seq_sd: sd a1, 0(a0)\n li a0, 0\n ret\n"
	"seq_sw: sw a1, 0(a0)\n li a0, 0\n ret\n"
	"seq_sh: sh a1, 0(a0)\n li a0, 0\n ret\n"
	"seq_u_ld: ld a0, 0(a0)\n ecall\n"
	".option pop\n"
	".option push\n"
	".option rvc\n"
	".balign 4\n"
	"seq_c_ebreak: c.ebreak\n ret\n"
	"seq_c_illegal: .half 0\n ret\n"
	".option pop\n");

extern char seq_illegal_zero[], seq_illegal_ones[], seq_mstatus[], seq_cycle_write[],
	seq_ebreak[], seq_u_ecall[], seq_u_sret[], seq_u_sstatus[], seq_u_satp[],
	seq_u_sfence[], seq_ld[], seq_lw[], seq_lhu[], seq_sd[], seq_sw[], seq_sh[],
	seq_u_ld[], seq_c_ebreak[], seq_c_illegal[];

static uint32_t insn_at(const char *p)
{
	return (uint32_t)((const uint16_t *)p)[0] | (uint32_t)((const uint16_t *)p)[1] << 16;
}

static void probe_insn(const char *name, const char *seq, unsigned long off, unsigned insn_len,
		       unsigned long a0, int user)
{
	struct probe_result r;
	unsigned long entry = (unsigned long)seq;
	uint32_t insn = insn_at(seq + off);

	if (insn_len == 2)
		insn &= 0xffff;
	probe_run(entry, a0, 0, user, &r);
	probe_print(name, entry, &r, PROBE_TVAL_ZERO_OR, insn);
}

/* Breakpoints may report the pc or 0 in stval. */
static void probe_break(const char *name, const char *seq, unsigned long off)
{
	struct probe_result r;
	unsigned long entry = (unsigned long)seq;

	probe_run(entry, 0, 0, 0, &r);
	probe_print(name, entry, &r, PROBE_TVAL_ZERO_OR, entry + off);
}

static uint8_t buf[64] __attribute__((aligned(16)));

static void fill_buf(void)
{
	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 37 + 11);
}

static void misaligned_loads(void)
{
	static const struct {
		const char *name;
		char *seq;
		unsigned align;
	} loads[] = {
		{ "ld", seq_ld, 8 }, { "lw", seq_lw, 4 }, { "lhu", seq_lhu, 2 },
	};

	fill_buf();
	for (unsigned i = 0; i < 3; i++)
		for (unsigned off = 1; off < loads[i].align; off++) {
			struct probe_result r;
			char name[32];

			probe_run((unsigned long)loads[i].seq, (unsigned long)(buf + 8 + off), 0, 0, &r);
			gsnprintf(name, sizeof(name), "%s +%u", loads[i].name, off);
			/* A trap is allowed; its stval must then be the address. */
			if (r.trapped)
				r.tval -= (unsigned long)buf;
			probe_print(name, (unsigned long)loads[i].seq, &r, PROBE_TVAL_RAW, 0);
		}
}

static void print_buf(const char *what)
{
	char line[200];
	int len = gsnprintf(line, sizeof(line), "%s:", what);

	for (unsigned i = 0; i < 32; i++)
		len += gsnprintf(line + len, sizeof(line) - len, " %02x", buf[i]);
	gprintf("%s\n", line);
}

static void misaligned_stores(void)
{
	static const struct {
		const char *name;
		char *seq;
		unsigned align;
	} stores[] = {
		{ "sd", seq_sd, 8 }, { "sw", seq_sw, 4 }, { "sh", seq_sh, 2 },
	};

	for (unsigned i = 0; i < 3; i++)
		for (unsigned off = 1; off < stores[i].align; off += 2) {
			struct probe_result r;
			char name[32];

			fill_buf();
			probe_run((unsigned long)stores[i].seq, (unsigned long)(buf + 8 + off),
				  0x0123456789abcdefull, 0, &r);
			gsnprintf(name, sizeof(name), "%s +%u", stores[i].name, off);
			if (r.trapped)
				r.tval -= (unsigned long)buf;
			probe_print(name, (unsigned long)stores[i].seq, &r, PROBE_TVAL_RAW, 0);
			print_buf(name);
		}
}

static void user_probes(void)
{
	struct probe_result r;

	fill_buf();
	probe_run((unsigned long)seq_u_ecall, 37, 0, 1, &r);
	probe_print("u ecall", (unsigned long)seq_u_ecall, &r, PROBE_TVAL_RAW, 0);
	gprintf("u ecall: tval=0x%lx\n", r.tval);
	probe_run((unsigned long)seq_u_ld, (unsigned long)(buf + 16), 0, 1, &r);
	probe_print("u ld", (unsigned long)seq_u_ld, &r, PROBE_TVAL_RAW, 0);
	probe_insn("u sret", seq_u_sret, 0, 4, 0, 1);
	probe_insn("u csrr sstatus", seq_u_sstatus, 0, 4, 0, 1);
	probe_insn("u csrw satp", seq_u_satp, 0, 4, 0, 1);
	probe_insn("u sfence.vma", seq_u_sfence, 0, 4, 0, 1);
}

void boot_main(unsigned long hartid, const void *fdt)
{
	diff_begin("traps");
	probe_insn("illegal zero", seq_illegal_zero, 0, 4, 0, 0);
	probe_insn("illegal ones", seq_illegal_ones, 0, 4, 0, 0);
	probe_insn("csrr mstatus", seq_mstatus, 4, 4, 0, 0);
	probe_insn("csrw cycle", seq_cycle_write, 0, 4, 0, 0);
	probe_insn("c.illegal", seq_c_illegal, 0, 2, 0, 0);
	probe_break("ebreak", seq_ebreak, 4);
	probe_break("c.ebreak", seq_c_ebreak, 0);
	user_probes();
	misaligned_loads();
	misaligned_stores();
	diff_end("traps");
}

void secondary_main(unsigned long hartid, unsigned long opaque)
{
}
