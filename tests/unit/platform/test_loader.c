/* SPDX-License-Identifier: Apache-2.0 */
/* Loads crafted ELFs and Images from memfds into a heap-backed fake guest RAM. */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "platform/loader.h"

#define RAM0_GPA 0x80000000ull
#define RAM0_SIZE (8ull << 20)
#define RAM1_GPA 0x180000000ull
#define RAM1_SIZE (1ull << 20)

static struct guest_ram ram[2];

static void ram_setup(void)
{
	ram[0] = (struct guest_ram){ .gpa = RAM0_GPA, .size = RAM0_SIZE, .host = malloc(RAM0_SIZE) };
	ram[1] = (struct guest_ram){ .gpa = RAM1_GPA, .size = RAM1_SIZE, .host = malloc(RAM1_SIZE) };
	cr_assert_not_null(ram[0].host);
	cr_assert_not_null(ram[1].host);
	/* Stale bytes, as after a reboot: bss must come out zeroed anyway. */
	memset(ram[0].host, 0xee, RAM0_SIZE);
	memset(ram[1].host, 0xee, RAM1_SIZE);
}

static void ram_teardown(void)
{
	free(ram[0].host);
	free(ram[1].host);
}

TestSuite(loader, .init = ram_setup, .fini = ram_teardown);

static int file_from(const void *buf, size_t len)
{
	int fd = memfd_create("payload", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	return fd;
}

static uint8_t *host_of(uint64_t gpa)
{
	if (gpa >= RAM1_GPA)
		return ram[1].host + (gpa - RAM1_GPA);
	return ram[0].host + (gpa - RAM0_GPA);
}

/* A two-segment RISC-V ELF: text (filesz 32) and data+bss (filesz 16, memsz 4096). */
struct test_elf {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	uint8_t text[32];
	uint8_t data[16];
};

static struct test_elf make_elf(void)
{
	struct test_elf e = {
		.eh = {
			.e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB,
				     EV_CURRENT },
			.e_type = ET_EXEC,
			.e_machine = EM_RISCV,
			.e_version = EV_CURRENT,
			.e_entry = RAM0_GPA + 0x200000 + 8,
			.e_phoff = offsetof(struct test_elf, ph),
			.e_ehsize = sizeof(Elf64_Ehdr),
			.e_phentsize = sizeof(Elf64_Phdr),
			.e_phnum = 2,
		},
		.ph = {
			{ .p_type = PT_LOAD, .p_offset = offsetof(struct test_elf, text),
			  .p_vaddr = RAM0_GPA + 0x200000, .p_paddr = RAM0_GPA + 0x200000,
			  .p_filesz = 32, .p_memsz = 32 },
			{ .p_type = PT_LOAD, .p_offset = offsetof(struct test_elf, data),
			  .p_vaddr = RAM1_GPA + 0x1000, .p_paddr = RAM1_GPA + 0x1000,
			  .p_filesz = 16, .p_memsz = 4096 },
		},
	};

	for (size_t i = 0; i < sizeof(e.text); i++)
		e.text[i] = (uint8_t)(0x10 + i);
	for (size_t i = 0; i < sizeof(e.data); i++)
		e.data[i] = (uint8_t)(0xa0 + i);
	return e;
}

static int load_elf_struct(const struct test_elf *e, size_t len, struct loaded_payload *pl)
{
	int fd = file_from(e, len);
	int r = loader_load_kernel(fd, ram, 2, pl);

	close(fd);
	return r;
}

Test(loader, elf_loads_segments_and_zeroes_bss)
{
	struct test_elf e = make_elf();
	struct loaded_payload pl;
	uint8_t zeros[4096 - 16] = { 0 };

	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), 0);
	cr_assert_eq(pl.entry, e.eh.e_entry);
	cr_assert_eq(pl.load_start, RAM0_GPA + 0x200000);
	cr_assert_eq(pl.load_end, RAM1_GPA + 0x1000 + 4096);
	cr_assert_arr_eq(host_of(RAM0_GPA + 0x200000), e.text, sizeof(e.text));
	cr_assert_arr_eq(host_of(RAM1_GPA + 0x1000), e.data, sizeof(e.data));
	cr_assert_arr_eq(host_of(RAM1_GPA + 0x1000 + 16), zeros, sizeof(zeros));
	/* Nothing beyond the segments is touched. */
	cr_assert_eq(*host_of(RAM0_GPA + 0x200000 + 32), 0xee);
	cr_assert_eq(*host_of(RAM1_GPA + 0x1000 + 4096), 0xee);
}

Test(loader, elf_virtual_entry_becomes_physical)
{
	struct test_elf e = make_elf();
	struct loaded_payload pl;

	e.ph[0].p_vaddr = 0xffffffff80000000ull;
	e.eh.e_entry = 0xffffffff80000004ull;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), 0);
	cr_assert_eq(pl.entry, RAM0_GPA + 0x200000 + 4);
}

Test(loader, elf_hostile_headers)
{
	struct loaded_payload pl = { .entry = 42 };
	struct test_elf e;

	e = make_elf();
	cr_assert_eq(load_elf_struct(&e, 40, &pl), -EINVAL, "truncated ehdr");
	e = make_elf();
	cr_assert_eq(load_elf_struct(&e, sizeof(e.eh) + 8, &pl), -EINVAL, "truncated phdrs");
	e = make_elf();
	e.eh.e_phoff = UINT64_MAX - 8;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "phoff wraps");
	e = make_elf();
	e.eh.e_phnum = 1000;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "too many phdrs");
	e = make_elf();
	e.eh.e_phentsize = 40;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "phentsize");
	e = make_elf();
	e.eh.e_machine = EM_X86_64;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -ENOEXEC, "wrong machine");
	e = make_elf();
	e.eh.e_ident[EI_CLASS] = ELFCLASS32;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -ENOEXEC, "32-bit");
	e = make_elf();
	e.eh.e_ident[EI_DATA] = ELFDATA2MSB;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -ENOEXEC, "big endian");
	cr_assert_eq(pl.entry, 42, "ret written on failure");
}

Test(loader, elf_hostile_segments)
{
	struct loaded_payload pl;
	struct test_elf e;

	e = make_elf();
	e.ph[1].p_offset = sizeof(e) - 8;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "segment past EOF");
	e = make_elf();
	e.ph[1].p_offset = UINT64_MAX - 4;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "offset wraps");
	e = make_elf();
	e.ph[1].p_filesz = 8192;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "filesz > memsz");
	e = make_elf();
	e.ph[0].p_paddr = 0x1000;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "below RAM");
	e = make_elf();
	e.ph[1].p_paddr = RAM1_GPA + RAM1_SIZE - 100;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "runs off RAM end");
	e = make_elf();
	e.ph[0].p_paddr = RAM0_GPA + RAM0_SIZE - 16;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "straddles the hole");
	e = make_elf();
	e.ph[1].p_paddr = UINT64_MAX - 100;
	e.ph[1].p_memsz = 4096;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "paddr + memsz wraps");
	e = make_elf();
	e.ph[1].p_memsz = UINT64_MAX;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "huge memsz");
	e = make_elf();
	e.eh.e_entry = 0x1000;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "entry outside");
	e = make_elf();
	e.ph[0].p_type = PT_NOTE;
	e.ph[1].p_type = PT_NOTE;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL, "no PT_LOAD");

	/* A refused file leaves guest RAM alone, even its valid first segment. */
	e = make_elf();
	e.ph[1].p_paddr = 0x1000;
	cr_assert_eq(load_elf_struct(&e, sizeof(e), &pl), -EINVAL);
	cr_assert_eq(*host_of(RAM0_GPA + 0x200000), 0xee);
}

static uint8_t *make_image(size_t len, uint64_t text_offset, uint64_t image_size)
{
	uint8_t *img = calloc(1, len);

	cr_assert_not_null(img);
	for (size_t i = 64; i < len; i++)
		img[i] = (uint8_t)(i * 7);
	memcpy(img + 0x08, &text_offset, 8);
	memcpy(img + 0x10, &image_size, 8);
	memcpy(img + 0x38, "RSC\x05", 4);
	return img;
}

static int load_buf(const void *buf, size_t len, struct loaded_payload *pl)
{
	int fd = file_from(buf, len);
	int r = loader_load_kernel(fd, ram, 2, pl);

	close(fd);
	return r;
}

Test(loader, image_default_text_offset)
{
	uint8_t *img = make_image(8192, 0, 16384);
	struct loaded_payload pl;
	uint8_t zeros[8192] = { 0 };

	cr_assert_eq(load_buf(img, 8192, &pl), 0);
	cr_assert_eq(pl.entry, RAM0_GPA + (2 << 20));
	cr_assert_eq(pl.load_start, pl.entry);
	cr_assert_eq(pl.load_end, pl.entry + 16384);
	cr_assert_arr_eq(host_of(pl.entry), img, 8192);
	cr_assert_arr_eq(host_of(pl.entry + 8192), zeros, sizeof(zeros));
	free(img);
}

Test(loader, image_text_offset)
{
	uint8_t *img = make_image(4096, 4 << 20, 0);
	struct loaded_payload pl;

	cr_assert_eq(load_buf(img, 4096, &pl), 0);
	cr_assert_eq(pl.entry, RAM0_GPA + (4 << 20));
	cr_assert_eq(pl.load_end, pl.entry + 4096);
	cr_assert_arr_eq(host_of(pl.entry), img, 4096);
	free(img);
}

Test(loader, image_hostile)
{
	struct loaded_payload pl;
	uint8_t *img;

	img = make_image(4096, 0x1000, 0);
	cr_assert_eq(load_buf(img, 4096, &pl), -EINVAL, "unaligned");
	free(img);
	img = make_image(4096, 6 << 20, 4 << 20);
	cr_assert_eq(load_buf(img, 4096, &pl), -EINVAL, "image_size past RAM");
	free(img);
	img = make_image(4096, UINT64_MAX - (2 << 20) + 1, 0);
	cr_assert_eq(load_buf(img, 4096, &pl), -EINVAL, "text_offset wraps");
	free(img);
	img = make_image(4096, 0, 0);
	cr_assert_eq(load_buf(img, 60, &pl), -ENOEXEC, "header cut before magic");
	free(img);
}

Test(loader, not_a_kernel)
{
	const char junk[] = "#!/bin/sh\necho this is not a kernel, nor an image header\n";
	struct loaded_payload pl;

	cr_assert_eq(load_buf(junk, sizeof(junk), &pl), -ENOEXEC);
	cr_assert_eq(load_buf(junk, 0, &pl), -ENOEXEC);
}

Test(loader, blob)
{
	uint8_t data[3000];
	int fd;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ 0x5a);
	fd = file_from(data, sizeof(data));
	cr_assert_eq(loader_load_blob(fd, ram, 2, RAM1_GPA + 100), (int64_t)sizeof(data));
	cr_assert_arr_eq(host_of(RAM1_GPA + 100), data, sizeof(data));
	cr_assert_eq(loader_load_blob(fd, ram, 2, RAM1_GPA + RAM1_SIZE - 100), -EINVAL);
	cr_assert_eq(loader_load_blob(fd, ram, 2, RAM0_GPA + RAM0_SIZE - 1000), -EINVAL);
	cr_assert_eq(loader_load_blob(fd, ram, 2, UINT64_MAX - 10), -EINVAL);
	cr_assert_eq(loader_load_blob(-1, ram, 2, RAM1_GPA), -EBADF);
	close(fd);
}

/* The real demo guest from the cross build, when there is one. */
Test(loader, demo_guest_elf)
{
	const char *path = getenv("DEMO_GUEST_ELF");
	struct loaded_payload pl;
	uint32_t first_insn;
	int fd;

	if (!path)
		cr_skip_test("no riscv64 cross compiler: demo.elf not built");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(loader_load_kernel(fd, ram, 2, &pl), 0);
	cr_assert_eq(pl.entry, 0x80200000ull);
	cr_assert_eq(pl.load_start, 0x80200000ull);
	cr_assert_gt(pl.load_end, pl.load_start);
	/* The ELF's first segment starts at file offset 0x1000 with the entry code. */
	cr_assert_eq(pread(fd, &first_insn, 4, 0x1000), 4);
	cr_assert_eq(memcmp(host_of(pl.entry), &first_insn, 4), 0);
	close(fd);
}
