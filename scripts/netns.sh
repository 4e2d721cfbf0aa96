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
# Source it to get the functions netns_up / netns_down / netns_exists (used by lib.sh).
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
    for ns in $(netns_list); do
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

netns_status() {
    local ns
    for ns in $(netns_list); do
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
