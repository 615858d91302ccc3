#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test run: set-up, build, unit tests, the whole-tree integration
# tests, the unit tests again under AddressSanitizer and UBSan, and a short
# run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

scripts/setup.sh
scripts/build.sh build
# Debian's riscv64 kernel and busybox, for the Linux guest tests (cached).
guest/linux/fetch.sh

status=0
echo "== unit tests"
meson test -C build --print-errorlogs --num-processes 2 || status=1

echo "== integration tests"
CLOISTER_BUILD="$top/build" /usr/bin/python3 -m pytest -q tests/integration || status=1

echo "== unit tests under ASan + UBSan"
scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs --num-processes 2 || status=1

echo "== fuzz targets, briefly, over their seed corpora"
FUZZ_SECONDS=${FUZZ_SECONDS:-10} scripts/fuzz.sh || status=1

/usr/bin/python3 scripts/summary.py build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
	tests/integration/.results.txt || status=1
exit $status
