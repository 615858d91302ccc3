#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets with clang and runs each over its seed corpus
# for a while (default 20 s each; FUZZ_SECONDS to change). New inputs that
# libFuzzer finds go to a scratch directory, so the committed corpus stays small.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true >/dev/null
ninja -C build-fuzz | grep -E "error|FAILED" -A5 && exit 1 || true
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in vmjson frame virtqueue devctl api_body gateway jit; do
	mkdir -p "$scratch/$target"
	echo "fuzz: $target for ${seconds}s"
	build-fuzz/tests/fuzz/fuzz_$target -max_total_time="$seconds" -close_fd_mask=3 \
		"$scratch/$target" "tests/fuzz/corpus/$target" 2>"$scratch/$target.log" ||
		{ tail -40 "$scratch/$target.log"; echo "fuzz: $target FAILED"; exit 1; }
	grep -E "^Done|#[0-9]+.*DONE" "$scratch/$target.log" | tail -1 || true
done
