#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what building, testing and running Cloister needs on Debian 12.
set -euo pipefail

packages=(
	meson ninja-build pkg-config gcc libc6-dev
	libseccomp-dev libcap-ng-dev protobuf-c-compiler libprotobuf-c-dev
	libjson-c-dev libsodium-dev libssl-dev libzstd-dev libcriterion-dev libfdt-dev libcurl4-openssl-dev
	gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu
	python3 python3-pytest python3-jsonschema python3-yaml curl gdb procps strace clang libclang-rt-14-dev
	qemu-system-misc opensbi
	iproute2 iputils-ping e2fsprogs tmux cpio xz-utils
	libsystemd-dev
	# The systemd tests boot a Debian root (scripts/nspawn-rootfs.sh) in a container.
	mmdebstrap systemd-container
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "setup: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
