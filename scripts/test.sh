#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds sagd and the ESP peer (DPDK's
# ipsec-secgw), then runs every meson test suite (unit, integration). Run as root on Debian 12.
#   scripts/test.sh [meson test args...]     e.g. scripts/test.sh --suite unit
# Ends with one line "N passed, N failed, N skipped".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${SAGD_BUILD:-$top/build}
cd "$top"

scripts/setup.sh
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" >/dev/null
fi
ninja -C "$build"
SAGD_BUILD="$build" scripts/build-secgw.sh

# Leftovers of an interrupted earlier run would make the namespace tests fail.
scripts/netns.sh down >/dev/null 2>&1 || true

rc=0
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || rc=$?

/usr/bin/python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] == "OK": passed += 1
    elif r["result"] == "SKIP": skipped += 1
    else:
        failed += 1
        print("FAILED:", r["name"], r["result"])
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc
