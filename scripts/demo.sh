#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo: boot a guest that counts on every hart, pause it, snapshot it,
# stop the whole process tree, restore a new one from the snapshot, resume.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build >/dev/null

work=$(mktemp -d /tmp/cloister-demo.XXXXXX)
sock=$work/api.sock
serial=$work/serial.log
snap=$work/snapshot
log=$work/cloister.log
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
trap 'echo "demo failed; cloister said:"; tail -20 "$log"' ERR

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
remote() { echo "\$ cloister-remote --api-socket $sock $*" >&2; build/cloister-remote --api-socket "$sock" "$@"; }
wait_socket() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }

step "boot: 2 harts, 4 GiB, virtio-rng; the guest counts once a second on every hart"
echo "\$ cloister --api-socket $sock --cpus boot=2 --memory size=4G --kernel build/guest/demo.elf --serial file=$serial --rng"
build/cloister --api-socket "$sock" --cpus boot=2 --memory size=4G \
	--kernel build/guest/demo.elf --serial "file=$serial" --rng 2>>"$log" &
wait_socket "$sock"
sleep 3.5
cat "$serial"

step "pause, then snapshot into $snap"
remote pause
remote info | python3 -c 'import json,sys; print("state:", json.load(sys.stdin)["state"])'
mkdir "$snap"
remote snapshot "file://$snap"
ls -ls "$snap"
echo "(the first column is the space used: guest memory never written is not stored)"
lines=$(wc -l <"$serial")

step "stop the whole process tree"
remote shutdown-vmm
wait

step "restore a new process tree from the snapshot; it comes back paused"
echo "\$ cloister --api-socket $sock --restore source_url=file://$snap"
build/cloister --api-socket "$sock" --restore "source_url=file://$snap" 2>>"$log" &
wait_socket "$sock"
remote info | python3 -c 'import json,sys; print("state:", json.load(sys.stdin)["state"])'

step "resume: each hart goes on from the next count"
remote resume
sleep 3.5
echo "last lines before the snapshot:"
sed -n "$((lines - 1)),${lines}p" "$serial"
echo "first lines after the restore:"
tail -n +"$((lines + 1))" "$serial"
remote shutdown-vmm
wait
rm -rf "$work"
