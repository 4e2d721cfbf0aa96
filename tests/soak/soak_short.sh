#!/usr/bin/env bash
# CI short soak: perf/soak.py for 60 s (+8 s warm-up, ~3 s start-up/pcaps). Fixed margins keep
# the verdict deterministic: mbufs in use may not rise by more than 512 (last third vs first
# third after warm-up; per-lcore caches move ~256), RSS by more than 4 MB, sagd's balance must
# stay within 4096 packets per sample and be exact in its exit line, and the ports' counters
# must match sagd's within the read skew. Needs $SAGD_BIN and $SAGD_BUILD (meson sets them);
# perf/mempool_probe comes from the same build (meson test builds all targets first).
set -u
[ "$(id -u)" = 0 ] || { echo "soak_short: needs root: skipped"; exit 77; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${SAGD_BUILD:=$root/build}"
: "${SAGD_BIN:=$SAGD_BUILD/control-shim/sagd}"
[ -x "$SAGD_BIN" ] || { echo "soak_short: $SAGD_BIN missing: skipped"; exit 77; }
out="$(mktemp -d /tmp/sagd-soak.XXXXXX)"
/usr/bin/python3 "$root/perf/soak.py" --duration "${SOAK_SECONDS:-60}" --warmup 8 \
    --out "$out" --sagd "$SAGD_BIN" --build "$SAGD_BUILD" --no-plot
rc=$?
if [ "$rc" = 0 ]; then rm -rf "$out"; else echo "soak_short: logs kept in $out"; fi
exit "$rc"
