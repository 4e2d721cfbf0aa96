#!/usr/bin/env bash
# Soak: sagd at full rate in both directions, sampled once a second (throughput, mbufs in use,
# RSS, counters); fails on leaks, unbalanced counters or uncounted loss.
#   scripts/soak.sh [--duration SECONDS (default 600)] [perf/soak.py options]
# Writes <out>/soak.json and <out>/soak.png (default out: $SAGD_BUILD/soak). Root needed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${SAGD_BUILD:-$root/build-perf}"
[ "$(id -u)" = 0 ] || { echo "soak: run as root (hugepages, DPDK)" >&2; exit 1; }
"$here/setup.sh" >/dev/null
[ -f "$build/build.ninja" ] || meson setup "$build" "$root" >/dev/null
ninja -C "$build" control-shim/sagd perf/mempool_probe >/dev/null
export SAGD_BUILD="$build"
exec /usr/bin/python3 "$root/perf/soak.py" --build "$build" "$@"
