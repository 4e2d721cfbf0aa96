#!/usr/bin/env bash
# Network namespaces + veths for the sagd integration topology (see tests/integration/README.md).
#
#   branch(br0 10.1.0.2) == sagd-lan [gw: sagd] sagd-wan == edge-wan [edge: secgw | esp_edge.py]
#                                                             edge-cloud == cl0(10.2.0.2) [cloud]
#
# Usage:  scripts/netns.sh up|down|status|run [--hold CMD...]
#   up      create (or recreate) all namespaces and veths; idempotent
#   down    kill whatever runs inside our namespaces, delete them; idempotent
#   status  show namespaces, links, addresses
#   run CMD create the topology, run CMD, tear it down on exit (also on error / Ctrl-C)
#   lanrtr-up  add the LAN router extension to a running topology (see netns_lanrtr_up)
# Source it to get the functions netns_up / netns_down / netns_exists (used by lib.sh) and the
# optional extension netns_lanrtr_up / netns_lanrtr_down (FRR tests; netns_down removes it too).
# Environment: SAGD_NS_PREFIX (default "sagd-"), SAGD_INNER_MTU (default 1400),
#              BRANCH_STATIC_NEIGH=1 adds a permanent ARP entry for 10.1.0.1 in the branch.

_netns_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../tests/integration/topology.env
. "$_netns_here/../tests/integration/topology.env"

netns_list() { echo "$NS_BRANCH $NS_GW $NS_EDGE $NS_CLOUD"; }

netns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }

# Kill every process still inside namespace $1 (they can only be ours: we created the namespace).
_netns_kill_inside() {
    local ns=$1 pids i
    netns_exists "$ns" || return 0
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [ -n "${pids// }" ] || return 0
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 1 30); do
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        [ -n "${pids// }" ] || return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
}

netns_down() {
    local ns
    for ns in $(netns_list) $(netns_lanrtr_list); do
        _netns_kill_inside "$ns"
        if netns_exists "$ns"; then ip netns del "$ns" 2>/dev/null || true; fi
    done
    return 0
}

# quiet interface: no IPv6 chatter, no offloads (AF_PACKET readers must see real frames with
# real checksums, not 64 KB GSO super-packets or CHECKSUM_PARTIAL)
_netns_if_prep() {
    local ns=$1 dev=$2 mac=$3
    ip -n "$ns" link set "$dev" address "$mac"
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1" >/dev/null 2>&1 || true
    ip netns exec "$ns" ethtool -K "$dev" rx off tx off tso off gso off gro off >/dev/null 2>&1 || true
    ip -n "$ns" link set "$dev" up
}

netns_up() {
    local ns
    netns_down
    for ns in $(netns_list); do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
    done
    ip link add "$IF_BRANCH" netns "$NS_BRANCH" type veth peer name "$IF_GW_LAN" netns "$NS_GW"
    ip link add "$IF_GW_WAN" netns "$NS_GW" type veth peer name "$IF_EDGE_WAN" netns "$NS_EDGE"
    ip link add "$IF_EDGE_CLOUD" netns "$NS_EDGE" type veth peer name "$IF_CLOUD" netns "$NS_CLOUD"

    _netns_if_prep "$NS_BRANCH" "$IF_BRANCH" "$MAC_BRANCH"
    _netns_if_prep "$NS_GW" "$IF_GW_LAN" "$MAC_GW_LAN"
    _netns_if_prep "$NS_GW" "$IF_GW_WAN" "$MAC_GW_WAN"
    _netns_if_prep "$NS_EDGE" "$IF_EDGE_WAN" "$MAC_EDGE_WAN"
    _netns_if_prep "$NS_EDGE" "$IF_EDGE_CLOUD" "$MAC_EDGE_CLOUD"
    _netns_if_prep "$NS_CLOUD" "$IF_CLOUD" "$MAC_CLOUD"

    # branch host
    ip -n "$NS_BRANCH" link set "$IF_BRANCH" mtu "$SAGD_INNER_MTU"
    ip -n "$NS_BRANCH" addr add "$IP_BRANCH/24" dev "$IF_BRANCH"
    ip -n "$NS_BRANCH" route add default via "$IP_GW_LAN" dev "$IF_BRANCH"
    if [ "${BRANCH_STATIC_NEIGH:-0}" = 1 ]; then
        ip -n "$NS_BRANCH" neigh replace "$IP_GW_LAN" lladdr "$MAC_GW_LAN" dev "$IF_BRANCH" nud permanent
    fi
    # cloud host: the edge (secgw) does not answer ARP -> static neighbour
    ip -n "$NS_CLOUD" link set "$IF_CLOUD" mtu "$SAGD_INNER_MTU"
    ip -n "$NS_CLOUD" addr add "$IP_CLOUD/24" dev "$IF_CLOUD"
    ip -n "$NS_CLOUD" route add 10.1.0.0/16 via "$IP_EDGE_CLOUD" dev "$IF_CLOUD"
    ip -n "$NS_CLOUD" neigh replace "$IP_EDGE_CLOUD" lladdr "$MAC_EDGE_CLOUD" dev "$IF_CLOUD" nud permanent
    # gw and edge: no kernel addresses at all (the DPDK process / scapy peer owns the wire)
}

# --- optional extension: a LAN router (and an on-premises host behind it) on the branch LAN.
#
#  branch: bridge br0 10.1.0.2/24 (same name, MAC, address, default route as without it)
#     ports sw-gw == sagd-lan (gw, sagd's DPDK port)      sw-rtr == lr-lan 10.1.0.254/24 (lanrtr)
#  lanrtr: lr-lan 10.1.0.254/24, lr-ctl 10.9.0.2/30 + fd00:9::2/64 == gw-ctl (gw, kernel only,
#          10.9.0.1/30 + fd00:9::1/64: BGP), lr-op 10.50.1.254/24 == op0 (onprem 10.50.1.1/24 +
#          10.50.2.1/24, default via 10.50.1.254); forwarding on, default via 10.1.0.1 (sagd)
#  gw:     lan0-k 10.1.0.1/24 + fd00:1::1/64 (veth, peer lan0-kp in gw, both up): the kernel's
#          view of sagd's LAN port so zebra resolves next hops on 10.1.0.0/24
# Call after netns_up (the base namespaces must exist). Idempotent: netns_lanrtr_down first.
netns_lanrtr_list() { echo "$NS_LANRTR $NS_ONPREM"; }

netns_lanrtr_down() {
    local ns
    for ns in $(netns_lanrtr_list); do
        _netns_kill_inside "$ns"
        if netns_exists "$ns"; then ip netns del "$ns" 2>/dev/null || true; fi
    done
    if netns_exists "$NS_GW"; then
        ip netns exec "$NS_GW" sysctl -qw "net.ipv4.conf.$IF_GW_LAN.arp_ignore=0" 2>/dev/null || true
        ip -n "$NS_GW" link del "$IF_GW_LANK" 2>/dev/null || true
        ip -n "$NS_GW" link del "$IF_GW_CTL" 2>/dev/null || true
    fi
    # branch: back to the plain veth br0
    if netns_exists "$NS_BRANCH" && ip -n "$NS_BRANCH" link show "$IF_SW_GW" >/dev/null 2>&1; then
        ip -n "$NS_BRANCH" link del "$IF_BRANCH" 2>/dev/null || true     # the bridge
        ip -n "$NS_BRANCH" link set "$IF_SW_GW" down
        ip -n "$NS_BRANCH" link set "$IF_SW_GW" name "$IF_BRANCH"
        ip -n "$NS_BRANCH" link set "$IF_BRANCH" address "$MAC_BRANCH" mtu "$SAGD_INNER_MTU" up
        ip -n "$NS_BRANCH" addr add "$IP_BRANCH/24" dev "$IF_BRANCH"
        ip -n "$NS_BRANCH" route add default via "$IP_GW_LAN" dev "$IF_BRANCH"
        if [ "${BRANCH_STATIC_NEIGH:-0}" = 1 ]; then
            ip -n "$NS_BRANCH" neigh replace "$IP_GW_LAN" lladdr "$MAC_GW_LAN" dev "$IF_BRANCH" nud permanent
        fi
    fi
    return 0
}

netns_lanrtr_up() {
    local ns
    if ! netns_exists "$NS_BRANCH" || ! netns_exists "$NS_GW"; then
        echo "netns_lanrtr_up: run netns_up first" >&2; return 1
    fi
    netns_lanrtr_down
    for ns in $(netns_lanrtr_list); do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
    done
    # branch: the veth br0 becomes port sw-gw of a bridge that takes over the name br0
    ip -n "$NS_BRANCH" link set "$IF_BRANCH" down
    ip -n "$NS_BRANCH" addr flush dev "$IF_BRANCH"
    ip -n "$NS_BRANCH" link set "$IF_BRANCH" name "$IF_SW_GW"
    ip -n "$NS_BRANCH" link set "$IF_SW_GW" address "$MAC_SW_GW" mtu 1500
    ip -n "$NS_BRANCH" link add "$IF_BRANCH" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    ip -n "$NS_BRANCH" link set "$IF_BRANCH" address "$MAC_BRANCH" mtu "$SAGD_INNER_MTU"
    ip -n "$NS_BRANCH" link set "$IF_SW_GW" master "$IF_BRANCH"
    ip link add "$IF_SW_RTR" netns "$NS_BRANCH" type veth peer name "$IF_LANRTR_LAN" netns "$NS_LANRTR"
    ip link add "$IF_GW_CTL" netns "$NS_GW" type veth peer name "$IF_LANRTR_CTL" netns "$NS_LANRTR"
    ip link add "$IF_LANRTR_ONPREM" netns "$NS_LANRTR" type veth peer name "$IF_ONPREM" netns "$NS_ONPREM"
    ip link add "$IF_GW_LANK" netns "$NS_GW" type veth peer name "$IF_GW_LANK_PEER" netns "$NS_GW"
    ip -n "$NS_BRANCH" link set "$IF_SW_RTR" master "$IF_BRANCH"
    _netns_if_prep "$NS_BRANCH" "$IF_SW_GW" "$MAC_SW_GW"
    _netns_if_prep "$NS_BRANCH" "$IF_SW_RTR" "$MAC_SW_RTR"
    _netns_if_prep "$NS_BRANCH" "$IF_BRANCH" "$MAC_BRANCH"
    _netns_if_prep "$NS_LANRTR" "$IF_LANRTR_LAN" "$MAC_LANRTR_LAN"
    _netns_if_prep "$NS_LANRTR" "$IF_LANRTR_ONPREM" 02:00:00:05:00:fe
    _netns_if_prep "$NS_ONPREM" "$IF_ONPREM" 02:00:00:05:00:01
    _netns_if_prep "$NS_LANRTR" "$IF_LANRTR_CTL" 02:00:00:09:00:02
    _netns_if_prep "$NS_GW" "$IF_GW_CTL" 02:00:00:09:00:01
    _netns_if_prep "$NS_GW" "$IF_GW_LANK" "$MAC_GW_LAN"
    _netns_if_prep "$NS_GW" "$IF_GW_LANK_PEER" 02:00:00:01:00:0f
    # branch host: as in netns_up, now on the bridge
    ip -n "$NS_BRANCH" addr add "$IP_BRANCH/24" dev "$IF_BRANCH"
    ip -n "$NS_BRANCH" route add default via "$IP_GW_LAN" dev "$IF_BRANCH"
    if [ "${BRANCH_STATIC_NEIGH:-0}" = 1 ]; then
        ip -n "$NS_BRANCH" neigh replace "$IP_GW_LAN" lladdr "$MAC_GW_LAN" dev "$IF_BRANCH" nud permanent
    fi
    # LAN router: inner MTU on the LAN side (its traffic to the cloud goes through the tunnel)
    ip -n "$NS_LANRTR" link set "$IF_LANRTR_LAN" mtu "$SAGD_INNER_MTU"
    ip -n "$NS_LANRTR" addr add "$IP_LANRTR_LAN/24" dev "$IF_LANRTR_LAN"
    ip -n "$NS_LANRTR" addr add "$IP_LANRTR_CTL/30" dev "$IF_LANRTR_CTL"
    ip -n "$NS_LANRTR" addr add "$IP_LANRTR_ONPREM/24" dev "$IF_LANRTR_ONPREM"
    ip -n "$NS_LANRTR" route add default via "$IP_GW_LAN" dev "$IF_LANRTR_LAN"
    ip -n "$NS_LANRTR" route add 10.50.2.0/24 via "$IP_ONPREM" dev "$IF_LANRTR_ONPREM"
    ip netns exec "$NS_LANRTR" sysctl -qw net.ipv4.ip_forward=1
    # on-premises host
    ip -n "$NS_ONPREM" link set "$IF_ONPREM" mtu "$SAGD_INNER_MTU"
    ip -n "$NS_ONPREM" addr add "$IP_ONPREM/24" dev "$IF_ONPREM"
    ip -n "$NS_ONPREM" addr add "$IP_ONPREM2/24" dev "$IF_ONPREM"
    ip -n "$NS_ONPREM" route add default via "$IP_LANRTR_ONPREM" dev "$IF_ONPREM"
    # gw kernel: control link and the stand-in for sagd's LAN port (kernel only, sagd never sees
    # them). IPv6 only here: the BGP session carries an IPv6 prefix too.
    ip -n "$NS_GW" addr add "$IP_GW_CTL/30" dev "$IF_GW_CTL"
    ip -n "$NS_GW" addr add "$IP_GW_LAN/24" dev "$IF_GW_LANK"
    # the kernel now owns 10.1.0.1 and would answer ARP for it on sagd's wire too: never there
    ip netns exec "$NS_GW" sysctl -qw "net.ipv4.conf.$IF_GW_LAN.arp_ignore=8"
    ip netns exec "$NS_GW" sysctl -qw "net.ipv6.conf.$IF_GW_CTL.disable_ipv6=0" "net.ipv6.conf.$IF_GW_LANK.disable_ipv6=0"
    ip netns exec "$NS_LANRTR" sysctl -qw "net.ipv6.conf.$IF_LANRTR_CTL.disable_ipv6=0"
    ip -n "$NS_GW" -6 addr add "$IP6_GW_CTL/64" dev "$IF_GW_CTL" nodad
    ip -n "$NS_GW" -6 addr add "$IP6_GW_LANK/64" dev "$IF_GW_LANK" nodad
    ip -n "$NS_LANRTR" -6 addr add "$IP6_LANRTR_CTL/64" dev "$IF_LANRTR_CTL" nodad
}

netns_status() {
    local ns
    for ns in $(netns_list) $(netns_lanrtr_list); do
        if [[ " $(netns_lanrtr_list) " == *" $ns "* ]] && ! netns_exists "$ns"; then continue; fi
        if netns_exists "$ns"; then
            echo "== $ns"; ip -n "$ns" -br addr; ip -n "$ns" route 2>/dev/null | sed 's/^/   route: /'
        else
            echo "== $ns (absent)"
        fi
    done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    [ "$(id -u)" = 0 ] || { echo "netns.sh: must run as root" >&2; exit 1; }
    case "${1:-}" in
        up) netns_up; netns_status ;;
        down) netns_down ;;
        lanrtr-up) netns_lanrtr_up; netns_status ;;
        status) netns_status ;;
        run)
            shift
            trap 'netns_down' EXIT
            trap 'exit 130' INT TERM
            netns_up
            "$@"
            ;;
        *) sed -n '2,16p' "$0" >&2; exit 2 ;;
    esac
fi
