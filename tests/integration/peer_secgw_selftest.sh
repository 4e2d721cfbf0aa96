#!/usr/bin/env bash
# Self-test of the ipsec-secgw CCN edge (no sagd needed): esp_edge.py --role sagd stands in for
# sagd in the gw namespace and talks plain ESP (AES-128-GCM, SPI 0x1001 out / 0x2001 in) to
# DPDK ipsec-secgw in the edge namespace. Proves: secgw decrypts scapy's ESP (cloud host sees the
# plain ping / TCP), scapy decrypts secgw's ESP, the secgw cfg and MACs are right.
set -u
. "$(dirname "$0")/lib.sh"
it_init peer_secgw
it_start_secgw
it_start_esp_edge gw "$NS_GW" --role sagd --encap esp --peer-mac "$MAC_EDGE_WAN"

it_start capture "$NS_CLOUD" timeout 20 tcpdump -l -n -i "$IF_CLOUD" -c 2 "icmp and src $IP_BRANCH"
it_wait 5 "tcpdump in cloud" grep -q listening "${IT_LOGS[capture]}"
it_ping "$NS_BRANCH" "$IP_CLOUD" 3 || it_fail "ping branch -> cloud through secgw"
it_wait 5 "cloud sees plain ICMP from the branch" grep -q "IP $IP_BRANCH > $IP_CLOUD: ICMP echo request" "${IT_LOGS[capture]}" \
    || it_fail "cloud host did not see the decrypted ping"
it_ping "$NS_CLOUD" "$IP_BRANCH" 3 || it_fail "ping cloud -> branch through secgw"
it_tcp_transfer "$NS_BRANCH" "$NS_CLOUD" "$IP_CLOUD" 300000 || it_fail "TCP 300 KB branch <-> cloud"

s=$(it_esp_edge_stats gw) || it_fail "no stats from the sagd stand-in"
it_log "stand-in counters: $s"
[ "$(it_stat "$s" drop_auth)" = 0 ] || it_fail "ICV failures on secgw's ESP"
[ "$(it_stat "$s" rx_esp)" -gt 100 ] || it_fail "too few ESP packets from secgw"
it_pass
