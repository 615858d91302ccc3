/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Boot payload loader. The file is as hostile as anything a client sends:
 * every offset and size is checked against the size fstat reports and
 * against guest RAM, with overflow checks, and the whole layout is
 * validated before the first byte is copied into the guest.
 */
#include "loader.h"
#include "io.h"

#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* More program headers than any kernel has; bounds what we read and check. */
#define LOADER_MAX_PHDRS 64

/* Linux RISC-V Image header (Documentation/riscv/boot-image-header.rst). */
#define IMAGE_HEADER_SIZE 64
#define IMAGE_OFF_TEXT_OFFSET 0x08
#define IMAGE_OFF_IMAGE_SIZE 0x10
#define IMAGE_OFF_MAGIC 0x30
#define IMAGE_OFF_MAGIC2 0x38
#define IMAGE_MAGIC "RISCV\0\0\0"
#define IMAGE_MAGIC2 "RSC\x05"
#define IMAGE_ALIGN (2ull << 20)
#define IMAGE_DEFAULT_TEXT_OFFSET (2ull << 20)

/* Reads exactly len bytes at off; a short file is malformed, not a partial read. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = io_pread_full(fd, buf, len, (off_t)off);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EINVAL;
}

static int file_size(int fd, uint64_t *ret_size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < 0)
		return -EINVAL;
	*ret_size = (uint64_t)st.st_size;
	return 0;
}

/* The host address of [gpa, gpa + len) when it lies inside one RAM range. */
static uint8_t *ram_span(const struct guest_ram *ram, size_t n_ram, uint64_t gpa, uint64_t len)
{
	if (gpa + len < gpa)
		return NULL;
	for (size_t i = 0; i < n_ram; i++) {
		if (gpa >= ram[i].gpa && gpa - ram[i].gpa <= ram[i].size &&
		    len <= ram[i].size - (gpa - ram[i].gpa))
			return ram[i].host + (gpa - ram[i].gpa);
	}
	return NULL;
}

/* Is [off, off + len) inside a file of size fsize? */
static bool file_span_ok(uint64_t fsize, uint64_t off, uint64_t len)
{
	return off <= fsize && len <= fsize - off;
}

static int elf_check_ehdr(const Elf64_Ehdr *eh, uint64_t fsize)
{
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return -ENOEXEC;
	if (le16toh(eh->e_machine) != EM_RISCV || le16toh(eh->e_type) != ET_EXEC)
		return -ENOEXEC;
	if (eh->e_ident[EI_VERSION] != EV_CURRENT)
		return -EINVAL;
	if (le16toh(eh->e_phentsize) != sizeof(Elf64_Phdr))
		return -EINVAL;
	if (le16toh(eh->e_phnum) == 0 || le16toh(eh->e_phnum) > LOADER_MAX_PHDRS)
		return -EINVAL;
	if (!file_span_ok(fsize, le64toh(eh->e_phoff),
			  (uint64_t)le16toh(eh->e_phnum) * sizeof(Elf64_Phdr)))
		return -EINVAL;
	return 0;
}

static void elf_phdr_to_host(Elf64_Phdr *ph)
{
	ph->p_type = le32toh(ph->p_type);
	ph->p_offset = le64toh(ph->p_offset);
	ph->p_vaddr = le64toh(ph->p_vaddr);
	ph->p_paddr = le64toh(ph->p_paddr);
	ph->p_filesz = le64toh(ph->p_filesz);
	ph->p_memsz = le64toh(ph->p_memsz);
}

static int elf_check_load(const Elf64_Phdr *ph, uint64_t fsize,
			  const struct guest_ram *ram, size_t n_ram)
{
	if (ph->p_filesz > ph->p_memsz)
		return -EINVAL;
	if (!file_span_ok(fsize, ph->p_offset, ph->p_filesz))
		return -EINVAL;
	if (ph->p_memsz && !ram_span(ram, n_ram, ph->p_paddr, ph->p_memsz))
		return -EINVAL;
	return 0;
}

/*
 * Kernels link e_entry at a virtual address; the hart starts with paging
 * off, so the entry is moved to the physical address of the segment that
 * holds it.
 */
static bool elf_entry_phys(const Elf64_Phdr *ph, size_t n, uint64_t entry, uint64_t *ret_pa)
{
	for (size_t i = 0; i < n; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (entry >= ph[i].p_vaddr && entry - ph[i].p_vaddr < ph[i].p_memsz) {
			*ret_pa = ph[i].p_paddr + (entry - ph[i].p_vaddr);
			return true;
		}
	}
	return false;
}

/* Validates every PT_LOAD and computes the payload's extent and entry. */
static int elf_plan(const Elf64_Ehdr *eh, const Elf64_Phdr *ph, size_t n, uint64_t fsize,
		    const struct guest_ram *ram, size_t n_ram, struct loaded_payload *ret)
{
	struct loaded_payload pl = { .load_start = UINT64_MAX };

	for (size_t i = 0; i < n; i++) {
		int err;

		if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
			continue;
		err = elf_check_load(&ph[i], fsize, ram, n_ram);
		if (err < 0)
			return err;
		if (ph[i].p_paddr < pl.load_start)
			pl.load_start = ph[i].p_paddr;
		if (ph[i].p_paddr + ph[i].p_memsz > pl.load_end)
			pl.load_end = ph[i].p_paddr + ph[i].p_memsz;
	}
	if (pl.load_start == UINT64_MAX)
		return -EINVAL;
	if (!elf_entry_phys(ph, n, le64toh(eh->e_entry), &pl.entry))
		return -EINVAL;
	if (!ram_span(ram, n_ram, pl.entry, 4))
		return -EINVAL;
	*ret = pl;
	return 0;
}

static int elf_copy_segments(int fd, const Elf64_Phdr *ph, size_t n,
			     const struct guest_ram *ram, size_t n_ram)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t *host;
		int err;

		if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
			continue;
		host = ram_span(ram, n_ram, ph[i].p_paddr, ph[i].p_memsz);
		err = pread_full(fd, host, ph[i].p_filesz, ph[i].p_offset);
		if (err < 0)
			return err;
		/* RAM may hold an earlier boot's bytes (reboot): bss must be zeroed. */
		memset(host + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
	}
	return 0;
}

static int load_elf(int fd, uint64_t fsize, const struct guest_ram *ram, size_t n_ram,
		    struct loaded_payload *ret)
{
	Elf64_Phdr ph[LOADER_MAX_PHDRS];
	struct loaded_payload pl;
	Elf64_Ehdr eh;
	size_t n;
	int err;

	if (fsize < sizeof(eh))
		return -EINVAL;
	err = pread_full(fd, &eh, sizeof(eh), 0);
	if (err < 0)
		return err;
	err = elf_check_ehdr(&eh, fsize);
	if (err < 0)
		return err;
	n = le16toh(eh.e_phnum);
	err = pread_full(fd, ph, n * sizeof(ph[0]), le64toh(eh.e_phoff));
	if (err < 0)
		return err;
	for (size_t i = 0; i < n; i++)
		elf_phdr_to_host(&ph[i]);
	err = elf_plan(&eh, ph, n, fsize, ram, n_ram, &pl);
	if (err < 0)
		return err;
	err = elf_copy_segments(fd, ph, n, ram, n_ram);
	if (err < 0)
		return err;
	*ret = pl;
	return 0;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static bool image_has_magic(const uint8_t *hdr)
{
	/* The 0x30 magic is deprecated but still the only one in older kernels. */
	return memcmp(hdr + IMAGE_OFF_MAGIC2, IMAGE_MAGIC2, 4) == 0 ||
	       memcmp(hdr + IMAGE_OFF_MAGIC, IMAGE_MAGIC, 8) == 0;
}

static int load_image(int fd, uint64_t fsize, const uint8_t *hdr,
		      const struct guest_ram *ram, size_t n_ram, struct loaded_payload *ret)
{
	uint64_t text_offset = get_le64(hdr + IMAGE_OFF_TEXT_OFFSET);
	uint64_t image_size = get_le64(hdr + IMAGE_OFF_IMAGE_SIZE);
	uint64_t gpa, span;
	uint8_t *host;
	int err;

	if (text_offset == 0)
		text_offset = IMAGE_DEFAULT_TEXT_OFFSET;
	gpa = ram[0].gpa + text_offset;
	if (gpa < text_offset || gpa % IMAGE_ALIGN)
		return -EINVAL;
	/* image_size covers bss too; old kernels leave it 0. */
	span = image_size > fsize ? image_size : fsize;
	host = ram_span(ram, n_ram, gpa, span);
	if (!host)
		return -EINVAL;
	err = pread_full(fd, host, fsize, 0);
	if (err < 0)
		return err;
	memset(host + fsize, 0, span - fsize);
	*ret = (struct loaded_payload){
		.entry = gpa,
		.load_start = gpa,
		.load_end = gpa + span,
	};
	return 0;
}

int loader_load_kernel(int fd, const struct guest_ram *ram, size_t n_ram,
		       struct loaded_payload *ret)
{
	uint8_t hdr[IMAGE_HEADER_SIZE] = { 0 };
	uint64_t fsize = 0;
	int err;

	if (n_ram == 0)
		return -EINVAL;
	err = file_size(fd, &fsize);
	if (err < 0)
		return err;
	err = pread_full(fd, hdr, fsize < sizeof(hdr) ? fsize : sizeof(hdr), 0);
	if (err < 0)
		return err;
	if (fsize >= SELFMAG && memcmp(hdr, ELFMAG, SELFMAG) == 0)
		return load_elf(fd, fsize, ram, n_ram, ret);
	if (fsize >= sizeof(hdr) && image_has_magic(hdr))
		return load_image(fd, fsize, hdr, ram, n_ram, ret);
	return -ENOEXEC;
}

int64_t loader_load_blob(int fd, const struct guest_ram *ram, size_t n_ram, uint64_t gpa)
{
	uint64_t fsize = 0;
	uint8_t *host;
	int err;

	err = file_size(fd, &fsize);
	if (err < 0)
		return err;
	if (fsize > INT64_MAX)
		return -EFBIG;
	host = ram_span(ram, n_ram, gpa, fsize);
	if (!host)
		return -EINVAL;
	err = pread_full(fd, host, fsize, 0);
	if (err < 0)
		return err;
	return (int64_t)fsize;
}
