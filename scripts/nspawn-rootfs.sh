#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian 12 root file system the systemd tests boot with
# systemd-nspawn: systemd as PID 1, plus the packages that hold the
# libraries Cloister links against. Cached outside the tree and built again
# only when a package it must hold is missing; prints its path.
#   scripts/nspawn-rootfs.sh [--packages a,b,...] [DIR]
#   (default DIR ~/.cache/cloister/nspawn-rootfs)
set -euo pipefail

extra=""
if [ "${1:-}" = "--packages" ]; then
	extra=$2
	shift 2
fi
dir=${1:-${CLOISTER_NSPAWN_ROOTFS:-$HOME/.cache/cloister/nspawn-rootfs}}
stamp="$dir/.cloister-rootfs-v1"
base=systemd,systemd-sysv,dbus,iproute2,procps,curl
want=$(tr ',' '\n' <<<"$base,$extra" | sed '/^$/d' | sort -u)

if [ -e "$stamp" ] && [ -z "$(comm -23 <(echo "$want") <(sort -u "$stamp"))" ]; then
	echo "$dir"
	exit 0
fi

tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$(dirname "$dir")"
trap 'rm -rf "$tmp"' EXIT
mmdebstrap --quiet --variant=minbase --include="$(paste -sd, <<<"$want")" bookworm "$tmp" >&2
# nspawn boots faster without units that wait for hardware or a network.
rm -f "$tmp"/etc/systemd/system/*.wants/systemd-timesyncd.service
echo "$want" >"$tmp/.cloister-rootfs-v1"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
