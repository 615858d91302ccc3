#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the guest bench/userspace.py runs: an initramfs holding Debian's own
# riscv64 user space for the workloads (busybox, coreutils, gzip, gawk,
# perl-base, python3-minimal and every library they need) and an /init that
# runs each workload in turn, printing a marker line before and after it.
#
#   bench/userspace-guest.sh [--force] [OUTDIR]
#
# OUTDIR defaults to ${CLOISTER_CACHE:-$HOME/.cache/cloister}/userspace; it
# gets initramfs.cpio.gz, plus work/ (private apt lists, the .debs) so a
# second run downloads nothing. The kernel is the one guest/linux/fetch.sh
# fetched. apt runs with private state and a one-off sources file that points
# at the machine's configured Debian archive (as in guest/linux/fetch.sh):
# the host's own apt lists, caches and preferences are neither used nor
# changed.
#
# Environment: CLOISTER_DEBIAN_SUITE (default trixie), CLOISTER_DEBIAN_URI.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=guest/apt-riscv64.sh
. "$here/../guest/apt-riscv64.sh"
suite=${CLOISTER_DEBIAN_SUITE:-trixie}
packages=(busybox-static coreutils gzip gawk perl-base python3-minimal)
# Pulled in by the dependency closure but never run by a workload.
skip_re='^(debconf|dpkg|tar|install-info|libdebconfclient0|base-files|usrmerge|usr-is-merged|init-system-helpers|media-types|tzdata|netbase|readline-common)$'

die()
{
	echo "userspace-guest.sh: $*" >&2
	exit 1
}

note()
{
	echo "userspace-guest.sh: $*"
}

force=0
outdir=
while [ $# -gt 0 ]; do
	case $1 in
	--force) force=1 ;;
	-h|--help) sed -n '4,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) [ -z "$outdir" ] || die "one OUTDIR only"; outdir=$1 ;;
	esac
	shift
done
outdir=${outdir:-${CLOISTER_CACHE:-$HOME/.cache/cloister}/userspace}
work=$outdir/work

# The packages and everything they depend on (not what they recommend).
closure()
{
	local p

	apt_riscv apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances "${packages[@]/%/:riscv64}" |
		awk '/^[a-z0-9]/ { sub(/:riscv64$/, "", $1); print $1 }' | sort -u |
		while read -r p; do
			[[ $p =~ $skip_re ]] || echo "$p"
		done
}

download()
{
	local list pkgs

	note "updating private package lists for $suite/riscv64"
	apt_riscv apt-get update >/dev/null
	list=$(closure)
	[ -n "$list" ] || die "empty dependency closure"
	note "downloading $(echo "$list" | wc -l) packages"
	rm -f "$work"/debs/*.deb
	mapfile -t pkgs <<<"$list"
	(cd "$work/debs" && apt_riscv apt-get download "${pkgs[@]/%/:riscv64}" >/dev/null)
}

# Merged /usr as Debian has it, busybox for what coreutils does not provide.
stage()
{
	local root=$work/root deb a

	rm -rf "$root"
	mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib"
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	for deb in "$work"/debs/*.deb; do
		dpkg-deb -x "$deb" "$root"
	done
	[ -x "$root/usr/bin/busybox" ] || die "no busybox in the packages"
	[ -e "$root/usr/bin/python3" ] || die "no python3 in the packages"
	for a in sh mount poweroff seq head tr; do
		[ -e "$root/usr/bin/$a" ] || ln -s busybox "$root/usr/bin/$a"
	done
	mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/bench"
	install -m 0755 "$here/userspace-init" "$root/init"
	rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" \
		"$root/usr/share/info" "$root/usr/share/lintian"
}

pack()
{
	(cd "$work/root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) |
		gzip -6n >"$outdir/initramfs.cpio.gz.tmp"
	mv "$outdir/initramfs.cpio.gz.tmp" "$outdir/initramfs.cpio.gz"
	rm -rf "$work/root"
}

main()
{
	mkdir -p "$outdir"
	if [ "$force" -eq 0 ] && [ -f "$outdir/initramfs.cpio.gz" ] &&
		[ "$outdir/initramfs.cpio.gz" -nt "$here/userspace-init" ] &&
		[ "$outdir/initramfs.cpio.gz" -nt "$0" ]; then
		note "up to date: $outdir/initramfs.cpio.gz (--force to rebuild)"
		return 0
	fi
	if ! command -v dpkg-deb >/dev/null || ! command -v cpio >/dev/null; then
		die "needs dpkg-deb and cpio"
	fi
	write_sources
	if [ "$force" -eq 1 ] || ! ls "$work"/debs/python3*-minimal_*.deb >/dev/null 2>&1; then
		download
	fi
	stage
	pack
	note "done: $outdir/initramfs.cpio.gz ($(du -h "$outdir/initramfs.cpio.gz" | cut -f1))"
}

main
