#!/usr/bin/env bash
# The standard packet-generator benchmark: sagd vs DPDK ipsec-secgw vs raw ipsec-mb (the ceiling).
#   scripts/bench.sh [--quick] [perf/bench.py options: --out DIR --only REGEX --no-secgw ...]
#   scripts/bench.sh --routes [perf/route_scale.py options]   route scale: 1M routes, API + FPM
# Builds (meson/ninja) into $SAGD_BUILD (default build-perf/) when needed, builds ipsec-secgw,
# reserves hugepages for the run (restored afterwards; falls back to --no-huge), and writes
# <out>/results.json, <out>/results.png and a table on stdout (default out: $SAGD_BUILD/bench).
# Full run ~8 min, --quick ~1.5 min. Needs root and both CPUs otherwise idle.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${SAGD_BUILD:-$root/build-perf}"
[ "$(id -u)" = 0 ] || { echo "bench: run as root (hugepages, DPDK)" >&2; exit 1; }
"$here/setup.sh" >/dev/null
[ -f "$build/build.ninja" ] || meson setup "$build" "$root" >/dev/null
if [ "${1:-}" = --routes ]; then   # perf/route_scale.py: needs sagd only (~7 min)
    shift
    ninja -C "$build" control-shim/sagd >/dev/null
    exec /usr/bin/python3 "$root/perf/route_scale.py" --build "$build" --out "$build/route-scale" "$@"
fi
ninja -C "$build" control-shim/sagd perf/raw_gcm perf/mempool_probe >/dev/null
export SAGD_BUILD="$build"
exec /usr/bin/python3 "$root/perf/bench.py" --build "$build" "$@"
