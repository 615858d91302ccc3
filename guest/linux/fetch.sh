#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the Linux guest from Debian's own riscv64 packages: the kernel Image
# and a busybox initramfs with the virtio and ext4 modules.
#
#   guest/linux/fetch.sh [--force] [OUTDIR]
#
# OUTDIR defaults to ${CLOISTER_CACHE:-$HOME/.cache/cloister}/linux; it gets
# vmlinux and initramfs.cpio.gz, plus work/ (apt lists, .debs, staging) so a
# second run downloads nothing. Nothing is written into the source tree and the
# machine's own apt state (lists, caches, preferences) is neither read for
# packages nor changed: apt runs with private directories and a one-off sources
# file that reuses the URI of the machine's configured Debian archive.
#
# Environment: CLOISTER_DEBIAN_SUITE (default trixie), CLOISTER_DEBIAN_URI
# (default: taken from /etc/apt), CLOISTER_KERNEL_PKG (default: what
# linux-image-riscv64 depends on).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=guest/apt-riscv64.sh
. "$here/../apt-riscv64.sh"
suite=${CLOISTER_DEBIAN_SUITE:-trixie}

# Module names as modinfo spells them ('-' and '_' are equivalent);
# modorder.py adds what they depend on. Built-in ones are skipped.
wanted_modules=(virtio_mmio virtio_blk virtio_net failover net_failover
	virtio_rng virtio_console ext4 jbd2 mbcache crc16 crc32c_generic)

die()
{
	echo "fetch.sh: $*" >&2
	exit 1
}

note()
{
	echo "fetch.sh: $*"
}

usage()
{
	sed -n '4,18s/^# \{0,1\}//p' "$0"
}

force=0
outdir=
while [ $# -gt 0 ]; do
	case $1 in
	--force) force=1 ;;
	-h|--help) usage; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) [ -z "$outdir" ] || die "one OUTDIR only"; outdir=$1 ;;
	esac
	shift
done
outdir=${outdir:-${CLOISTER_CACHE:-$HOME/.cache/cloister}/linux}
work=$outdir/work

# cpio and xz-utils are the only tools not in every Debian install.
ensure_host_tools()
{
	local missing=()

	command -v cpio >/dev/null || missing+=(cpio)
	command -v xz >/dev/null || missing+=(xz-utils)
	command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this script needs a Debian host"
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "please install: ${missing[*]}"
	note "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}

kernel_package()
{
	local pkg

	if [ -n "${CLOISTER_KERNEL_PKG:-}" ]; then
		echo "$CLOISTER_KERNEL_PKG"
		return
	fi
	pkg=$(apt_riscv apt-cache depends linux-image-riscv64:riscv64 |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/:riscv64$/, "", $2); print $2; exit }')
	[ -n "$pkg" ] || die "cannot resolve the kernel package behind linux-image-riscv64"
	echo "$pkg"
}

download_debs()
{
	local kpkg

	note "updating private package lists for $suite/riscv64"
	apt_riscv apt-get update >/dev/null
	kpkg=$(kernel_package)
	note "downloading $kpkg busybox-static"
	rm -f "$work"/debs/*.deb
	(cd "$work/debs" && apt_riscv apt-get download "$kpkg:riscv64" busybox-static:riscv64 >/dev/null)
}

unpack_debs()
{
	local deb

	rm -rf "$work/root"
	mkdir -p "$work/root"
	for deb in "$work"/debs/*.deb; do
		dpkg-deb -x "$deb" "$work/root"
	done
}

# Copies the modules decompressed, with a modules.dep limited to them (so
# busybox modprobe works too) and load-order, the list /init insmods.
stage_modules()
{
	local stage=$1 srcdir=$2 kver=$3 p dst
	local dstdir=$stage/lib/modules/$kver

	mkdir -p "$dstdir"
	python3 "$here/modorder.py" "$srcdir" "${wanted_modules[@]}" >"$work/modules.dep.src"
	[ -s "$work/modules.dep.src" ] || die "no modules selected"
	: >"$dstdir/load-order"
	while IFS=: read -r p _; do
		dst=${p%.xz}
		mkdir -p "$dstdir/$(dirname "$dst")"
		case $p in
		*.xz) xz -dc "$srcdir/$p" >"$dstdir/$dst" ;;
		*) cp "$srcdir/$p" "$dstdir/$dst" ;;
		esac
		echo "$dst" >>"$dstdir/load-order"
	done <"$work/modules.dep.src"
	sed 's/\.ko\.xz/.ko/g' "$work/modules.dep.src" >"$dstdir/modules.dep"
	note "modules: $(xargs -n1 basename <"$dstdir/load-order" | tr '\n' ' ')"
}

stage_busybox()
{
	local stage=$1 d

	for d in bin sbin usr/bin usr/sbin dev proc sys tmp root etc; do
		mkdir -p "$stage/$d"
	done
	install -m 0755 "$work/root/usr/bin/busybox" "$stage/bin/busybox"
	ln -s busybox "$stage/bin/sh"
	busybox_applet_links "$stage"
	install -m 0755 "$here/init" "$stage/init"
}

# The applet table is a sorted run of NUL-terminated names starting "[", "[[";
# reading it from the binary gives the links without running a riscv64 program
# on the host (or "busybox --install" at every boot). All go into /bin: /init's
# PATH makes the usual sbin/usr places unnecessary.
busybox_applet_links()
{
	local stage=$1 applet count=0

	while read -r applet; do
		[ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
		count=$((count + 1))
	done < <(busybox_applets "$stage/bin/busybox")
	[ "$count" -gt 100 ] || die "found only $count busybox applets"
	note "busybox: $count applet links"
}

busybox_applets()
{
	python3 - "$1" <<-'EOF'
		import re, sys
		data = open(sys.argv[1], "rb").read()
		start = data.find(b"[\0[[\0")
		if start < 0:
		    sys.exit("busybox applet table not found")
		names = []
		for raw in data[start:].split(b"\0"):
		    name = raw.decode("ascii", "replace")
		    if not re.fullmatch(r"[][a-z0-9_.-]+", name) or (names and name <= names[-1]):
		        break
		    names.append(name)
		print("\n".join(n for n in names if n not in ("[", "[[")))
		print("[\n[[")
	EOF
}

build_initramfs()
{
	local stage=$work/initramfs kver srcdir

	srcdir=$(echo "$work"/root/usr/lib/modules/*)
	[ -d "$srcdir" ] || srcdir=$(echo "$work"/root/lib/modules/*)
	[ -d "$srcdir/kernel" ] || die "no modules in the kernel package"
	kver=${srcdir##*/}
	rm -rf "$stage"
	mkdir -p "$stage"
	stage_busybox "$stage"
	stage_modules "$stage" "$srcdir" "$kver"
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) |
		gzip -9n >"$outdir/initramfs.cpio.gz.tmp"
	mv "$outdir/initramfs.cpio.gz.tmp" "$outdir/initramfs.cpio.gz"
}

install_kernel()
{
	local image

	image=$(echo "$work"/root/boot/vmlinux-*-riscv64)
	[ -f "$image" ] || die "no boot/vmlinux-*-riscv64 in the kernel package"
	# A RISC-V Image carries "RISCV\0\0\0" at offset 0x30 (boot-image-header.rst).
	[ "$(od -An -c -j 48 -N 5 "$image" | tr -d ' ')" = RISCV ] ||
		die "$image is not a RISC-V Image"
	cp "$image" "$outdir/vmlinux.tmp"
	mv "$outdir/vmlinux.tmp" "$outdir/vmlinux"
	note "kernel: ${image##*/}"
}

up_to_date()
{
	local f

	[ "$force" -eq 0 ] || return 1
	for f in "$outdir/vmlinux" "$outdir/initramfs.cpio.gz"; do
		[ -f "$f" ] && [ "$f" -nt "$here/init" ] && [ "$f" -nt "$0" ] &&
			[ "$f" -nt "$here/modorder.py" ] || return 1
	done
}

main()
{
	mkdir -p "$outdir"
	if up_to_date; then
		note "up to date: $outdir (--force to rebuild)"
		return 0
	fi
	ensure_host_tools
	write_sources
	if [ "$force" -eq 1 ] || ! ls "$work"/debs/linux-image-*.deb "$work"/debs/busybox-static_*.deb >/dev/null 2>&1; then
		download_debs
	fi
	unpack_debs
	install_kernel
	build_initramfs
	rm -rf "$work/root" "$work/initramfs"
	note "done: $outdir/vmlinux $outdir/initramfs.cpio.gz ($(du -h "$outdir/initramfs.cpio.gz" | cut -f1))"
}

main
