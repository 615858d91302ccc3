#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Adds up meson's test logs and pytest's counts into one closing line."""
import json
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            if path.endswith(".json"):
                for line in f:
                    result = json.loads(line).get("result")
                    if result == "OK":
                        passed += 1
                    elif result == "SKIP":
                        skipped += 1
                    else:
                        failed += 1
            else:
                p, fl, s = (int(x) for x in f.read().split())
                passed, failed, skipped = passed + p, failed + fl, skipped + s
    except FileNotFoundError:
        print(f"summary: {path} is missing: that suite did not run", file=sys.stderr)
        failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
