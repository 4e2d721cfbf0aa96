#!/usr/bin/env bash
# Build DPDK's ipsec-secgw example (Debian dpdk-doc sources, DPDK 22.11) as a live ESP peer.
#   scripts/build-secgw.sh [OUTDIR]      (default: $SAGD_BUILD/secgw, else <repo>/build/secgw)
# Prints the binary path on stdout. Idempotent: rebuilds only when a source is newer than the
# binary (or this script changed).
#
# One patch is applied (unavoidable): ipsec-secgw's default port_conf hard-requires the RX
# checksum offloads (RTE_ETH_RX_OFFLOAD_CHECKSUM = 0xe) and exits with
# "port 0 required RX offloads: 0xe, available RX offloads: 0x1" on net_af_packet, which has
# none. The patch masks those *default* RX offloads by the device's capabilities (offloads the
# SAs require are still enforced); secgw then simply sees RX_L4/IP_CKSUM_UNKNOWN mbufs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src=/usr/share/dpdk/examples/ipsec-secgw
common=/usr/share/dpdk/examples/common
out="${1:-${SAGD_BUILD:+$SAGD_BUILD/secgw}}"
out="${out:-$(cd "$here/.." && pwd)/build/secgw}"
bin="$out/ipsec-secgw/build/ipsec-secgw-shared"

[ -f "$src/Makefile" ] || { echo "build-secgw: $src missing (apt-get install dpdk-doc)" >&2; exit 1; }
pkg-config --exists libdpdk || { echo "build-secgw: pkg-config libdpdk missing (libdpdk-dev)" >&2; exit 1; }

if [ -x "$bin" ] && [ -z "$(find "$src" "$common" "${BASH_SOURCE[0]}" -newer "$bin" -print -quit 2>/dev/null)" ]; then
    echo "$bin"; exit 0
fi

mkdir -p "$out"
rm -rf "$out/ipsec-secgw" "$out/common"
cp -r "$src" "$out/ipsec-secgw"
cp -r "$common" "$out/common"     # the Makefile uses -I../common
chmod -R u+w "$out"

f="$out/ipsec-secgw/ipsec-secgw.c"
anchor='local_port_conf.rxmode.offloads |= req_rx_offloads;'
grep -qF "$anchor" "$f" || { echo "build-secgw: patch anchor not found in $f" >&2; exit 1; }
sed -i "s/^\(\s*\)local_port_conf.rxmode.offloads |= req_rx_offloads;/\1\/* sagd patch: drop default RX offloads the PMD lacks (net_af_packet) *\/\n\1local_port_conf.rxmode.offloads \&= dev_info.rx_offload_capa;\n&/" "$f"
grep -q 'sagd patch' "$f" || { echo "build-secgw: patch failed" >&2; exit 1; }

make -C "$out/ipsec-secgw" -j"$(nproc)" >"$out/build.log" 2>&1 || { tail -30 "$out/build.log" >&2; exit 1; }
[ -x "$bin" ] || { echo "build-secgw: $bin not produced" >&2; exit 1; }
echo "$bin"
