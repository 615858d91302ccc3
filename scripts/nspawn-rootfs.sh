#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds, once, the Debian 12 root file system the systemd tests boot with
# systemd-nspawn: systemd as PID 1 plus the libraries Cloister links
# against. Cached outside the tree; prints its path.
#   scripts/nspawn-rootfs.sh [DIR]   (default ~/.cache/cloister/nspawn-rootfs)
set -euo pipefail

dir=${1:-${CLOISTER_NSPAWN_ROOTFS:-$HOME/.cache/cloister/nspawn-rootfs}}
stamp="$dir/.cloister-rootfs-v1"
if [ -e "$stamp" ]; then
	echo "$dir"
	exit 0
fi

libs=libprotobuf-c1,libjson-c5,libseccomp2,libcap-ng0,libfdt1,libmicrohttpd12,libcurl4
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$(dirname "$dir")"
trap 'rm -rf "$tmp"' EXIT
mmdebstrap --quiet --variant=minbase \
	--include=systemd,systemd-sysv,dbus,iproute2,procps,curl,$libs \
	bookworm "$tmp" >&2
# nspawn boots faster without units that wait for hardware or a network.
rm -f "$tmp"/etc/systemd/system/*.wants/systemd-timesyncd.service
touch "$tmp/.cloister-rootfs-v1"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
