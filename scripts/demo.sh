#!/usr/bin/env bash
# The main job, end to end on one machine: builds sagd, builds a branch -> sagd -> CCN edge ->
# cloud topology of network namespaces (the CCN edge is DPDK's ipsec-secgw, an independent
# ESP implementation), sends traffic branch -> cloud and back, prints sagd's live counters,
# and shows that the WAN link carried nothing but ESP. Cleans up after itself. Run as root.
#   scripts/demo.sh [SECONDS]     (traffic duration, default 15)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-15}
export SAGD_BUILD=${SAGD_BUILD:-$top/build}

cd "$top"
scripts/setup.sh
[ -f "$SAGD_BUILD/build.ninja" ] || meson setup "$SAGD_BUILD" >/dev/null
ninja -C "$SAGD_BUILD" control-shim/sagd >/dev/null
scripts/build-secgw.sh >/dev/null
scripts/netns.sh down >/dev/null 2>&1 || true

export IT_TEST_TIMEOUT=$((secs + 90))
# shellcheck source=../tests/integration/lib.sh
. "$top/tests/integration/lib.sh"
it_init demo

hdr() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
tele() { it_sagd_telemetry "$1"; }

hdr "topology"
cat <<TOPO
  branch host $IP_BRANCH  --  [sagd: LAN 10.1.0.1 | WAN 192.0.2.1]  ==ESP==  [CCN edge: ipsec-secgw 192.0.2.254]  --  cloud host $IP_CLOUD
  tunnel ccn-edge-1: AES-128-GCM, SPI 0x1001 out / 0x2001 in, route 10.2.0.0/16 -> tunnel
TOPO

hdr "starting the CCN edge (ipsec-secgw) and sagd"
it_start_secgw
# Capture the WAN wire from the edge's side for the whole run.
it_start wancap "$NS_EDGE" tcpdump -i "$IF_EDGE_WAN" -n -w "$IT_DIR/wan.pcap"
sleep 1
it_start_sagd "$IT_LIB_DIR/sagd_secgw.yaml"

hdr "ping branch -> cloud and cloud -> branch"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no path through the tunnel"
ip netns exec "$NS_BRANCH" ping -n -c 3 -i 0.2 "$IP_CLOUD" | sed 's/^/  /'
ip netns exec "$NS_CLOUD" ping -n -c 3 -i 0.2 "$IP_BRANCH" | sed 's/^/  /'

hdr "TCP transfer branch -> cloud (checked byte for byte)"
it_tcp_transfer "$NS_BRANCH" "$NS_CLOUD" "$IP_CLOUD" 2000000 || it_fail "TCP transfer"

hdr "live counters while the branch streams to the cloud for ${secs}s"
ip netns exec "$NS_CLOUD" timeout $((secs + 10)) /usr/bin/python3 "$IT_LIB_DIR/stream.py" sink 5002 \
    >"$IT_DIR/sink.out" 2>&1 &
sink=$!
sleep 0.5
ip netns exec "$NS_BRANCH" /usr/bin/python3 "$IT_LIB_DIR/stream.py" send "$IP_CLOUD" 5002 "$secs" \
    >"$IT_DIR/send.out" 2>&1 &
src=$!
/usr/bin/python3 scripts/sagd-stats.py --prefix sagd-it-sagd --tunnel ccn-edge-1 --count "$secs" | sed 's/^/  /'
wait "$src" 2>/dev/null || true
wait "$sink" 2>/dev/null || true
sed 's/^/  /' "$IT_DIR/send.out" "$IT_DIR/sink.out"

hdr "sagd counters"
tele /sagd/stats | /usr/bin/python3 -c 'import json,sys; s=list(json.load(sys.stdin).values())[0]; print("  " + "  ".join(f"{k}={v}" for k,v in s.items() if v))'
tele /sagd/tunnel,ccn-edge-1 | /usr/bin/python3 -c 'import json,sys; s=list(json.load(sys.stdin).values())[0]; print("  tunnel ccn-edge-1: " + "  ".join(f"{k}={v}" for k,v in s.items()))'
tele /sagd/drops | /usr/bin/python3 -c 'import json,sys; s=list(json.load(sys.stdin).values())[0]; d={k:v for k,v in s.items() if v}; print("  drops by reason:", d if d else "none")'

hdr "the runtime API: sagctl over sagd's unix socket"
scripts/sagctl show tunnels | sed 's/^/  /' || it_fail "sagctl show tunnels"
scripts/sagctl show routes | sed 's/^/  /' || it_fail "sagctl show routes"

hdr "what the WAN link carried"
it_stop wancap >/dev/null 2>&1 || true
total=$(tshark -r "$IT_DIR/wan.pcap" 2>/dev/null | wc -l)
esp=$(tshark -r "$IT_DIR/wan.pcap" -Y esp 2>/dev/null | wc -l)
other=$(tshark -r "$IT_DIR/wan.pcap" -Y 'ip && !esp' 2>/dev/null | wc -l)
echo "  $total frames on the WAN: $esp ESP, $other other IP"
tshark -r "$IT_DIR/wan.pcap" -c 4 -Y esp 2>/dev/null | sed 's/^/  /'
[ "$other" = 0 ] || it_fail "plain IP leaked onto the WAN"
[ "$esp" -gt 0 ] || it_fail "no ESP on the WAN"

hdr "done"
it_pass
