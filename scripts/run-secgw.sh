#!/usr/bin/env bash
# Run DPDK ipsec-secgw as the CCN edge in the edge namespace, in the foreground (Ctrl-C stops).
#   scripts/netns.sh up && scripts/run-secgw.sh [CFG] [-- extra secgw app args, e.g. -e]
# The namespaces must exist (scripts/netns.sh up). Tests use it_start_secgw (lib.sh) instead.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../tests/integration/topology.env"
cfg="$here/../tests/integration/secgw_edge.cfg"
if [ $# -gt 0 ] && [ "$1" != -- ]; then cfg=$1; shift; fi
[ "${1:-}" = -- ] && shift
ip netns list | awk '{print $1}' | grep -qx "$NS_EDGE" || { echo "run-secgw: $NS_EDGE missing: scripts/netns.sh up" >&2; exit 1; }
bin=$("$here/build-secgw.sh")
set -x
exec ip netns exec "$NS_EDGE" "$bin" -l 1 --no-huge -m 512 --file-prefix sagd-secgw --no-pci --no-telemetry \
    --vdev "net_af_packet0,iface=$IF_EDGE_WAN" --vdev "net_af_packet1,iface=$IF_EDGE_CLOUD" \
    --vdev crypto_aesni_mb \
    -- -p 0x3 -P -u 0x1 --config "(0,0,1),(1,0,1)" -f "$cfg" -l -w 1024 "$@"
