#!/usr/bin/env bash
# Packet capture of a running sagd with dpdk-dumpcap (DPDK pdump): sagd calls rte_pdump_init(),
# dumpcap attaches to it as a DPDK secondary process (--file-prefix) and writes a pcapng of the
# LAN port. Pings from the branch through the tunnel (scapy ESP edge) must show up in the
# capture: every echo request as received (inbound) on the LAN port, every reply as sent
# (outbound); sagd keeps forwarding after dumpcap detaches.
#
# A secondary process can only attach to a primary that runs on hugepages: with --no-huge the
# primary's memory is private (memfd) and dumpcap's EAL stops at "Cannot get hugepage
# information". So this test reserves 2 MB hugepages through sysfs, mounts a private hugetlbfs
# for sagd (--huge-dir) and gives both back at the end; it skips (77) if it cannot get them.
set -u
. "$(dirname "$0")/lib.sh"
bin=$(it_sagd_bin)
dumpcap=$(command -v dpdk-dumpcap) || it_skip "dpdk-dumpcap missing (apt-get install dpdk)"
command -v tshark >/dev/null || it_skip "tshark missing (apt-get install tshark)"
HP=/sys/kernel/mm/hugepages/hugepages-2048kB
[ -w "$HP/nr_hugepages" ] || it_skip "no 2 MB hugepages in this kernel ($HP)"
PD_NEED=128      # 256 MB: sagd takes ~110 MB (mbuf pool, tables), dumpcap's ring and pool ~12 MB
PD_ADDED=0
PD_MNT=""

it_init sagd_pdump

# Give back what we took, after every process that maps the pages has stopped; then lib.sh's
# cleanup (namespaces, logs) with the test's exit code.
pd_cleanup() {
    local n i
    for n in "${!IT_PIDS[@]}"; do it_stop "$n" 3 >/dev/null 2>&1 || true; done
    if [ -n "$PD_MNT" ]; then
        for i in 1 2 3 4 5; do umount "$PD_MNT" 2>/dev/null && break; sleep 0.5; done
        mountpoint -q "$PD_MNT" && { it_log "hugetlbfs $PD_MNT busy: lazy unmount"; umount -l "$PD_MNT"; }
    fi
    if [ "$PD_ADDED" -gt 0 ]; then
        n=$(( $(cat "$HP/nr_hugepages") - PD_ADDED ))
        echo $(( n < 0 ? 0 : n )) >"$HP/nr_hugepages"
        it_log "hugepages given back: nr_hugepages $(cat "$HP/nr_hugepages")"
    fi
}
trap 'pd_rc=$?; pd_cleanup; (exit $pd_rc); it__cleanup' EXIT

free=$(cat "$HP/free_hugepages")
if [ "$free" -lt "$PD_NEED" ]; then
    before=$(cat "$HP/nr_hugepages")
    echo $(( before + PD_NEED - free )) >"$HP/nr_hugepages" 2>/dev/null
    PD_ADDED=$(( $(cat "$HP/nr_hugepages") - before ))
    [ "$PD_ADDED" -lt 0 ] && PD_ADDED=0
    free=$(cat "$HP/free_hugepages")
    [ "$free" -ge "$PD_NEED" ] || it_skip "cannot reserve $PD_NEED hugepages of 2 MB (got $free free)"
fi
PD_MNT="$IT_DIR/huge"
mkdir -p "$PD_MNT"
mount -t hugetlbfs -o pagesize=2M nodev "$PD_MNT" || { PD_MNT=""; it_skip "cannot mount hugetlbfs"; }
it_log "hugepages: $free free of $(cat "$HP/nr_hugepages") (added $PD_ADDED), hugetlbfs on $PD_MNT"

it_start_esp_edge edge "$NS_EDGE" --role edge --encap esp
it_start_sagd "$IT_LIB_DIR/sagd_secgw.yaml" -- -l 0-1 --main-lcore 1 --huge-dir "$PD_MNT" \
    --file-prefix sagd-it-sagd --no-pci
grep -q "(pdump) unavailable" "${IT_LOGS[sagd]}" && it_fail "sagd could not set up pdump"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no traffic through sagd -> esp_edge"

# The LAN port is the first device in the config: ethdev name net_af_packet0 (dumpcap -D lists them).
ports=$(ip netns exec "$NS_GW" timeout 20 "$dumpcap" --file-prefix=sagd-it-sagd -D 2>"$IT_DIR/dumpcap-D.err") \
    || it_fail "dpdk-dumpcap cannot attach to sagd: $(grep -v 'not driven\|cannot be used' "$IT_DIR/dumpcap-D.err")"
it_log "dumpcap sees: $(tr '\n' ' ' <<<"$ports")"
grep -q "net_af_packet0" <<<"$ports" || it_fail "no port net_af_packet0 in dumpcap -D"

# -p: leave the port's promiscuous mode alone; dumpcap prints "Packets captured:" (stderr)
# once its capture callbacks are installed in sagd.
pcap="$IT_DIR/lan.pcapng"
it_start dumpcap "$NS_GW" "$dumpcap" --file-prefix=sagd-it-sagd -i net_af_packet0 -p -w "$pcap" -a duration:60
it_wait_log dumpcap "Packets captured:" 20 || it_fail "dpdk-dumpcap did not start capturing"

size=333   # ICMP payload bytes: marks our probes in the capture
out=$(ip netns exec "$NS_BRANCH" ping -n -c 8 -i 0.2 -W 2 -s $size "$IP_CLOUD" 2>&1)
sent=$(sed -n 's/^\([0-9]\+\) packets transmitted.*/\1/p' <<<"$out")
got=$(sed -n 's/.* \([0-9]\+\) received.*/\1/p' <<<"$out")
it_log "ping: ${sent:-?} sent, ${got:-?} replies"
[ "${got:-0}" -ge 6 ] || it_fail "ping through sagd during the capture: ${out##*---}"
sleep 0.5
it_stop dumpcap 5
grep -q "Packets received/dropped on interface 'net_af_packet0'" "${IT_LOGS[dumpcap]}" \
    || it_fail "dpdk-dumpcap did not finish cleanly"
it_log "dumpcap: $(grep -o "Packets received/dropped.*" "${IT_LOGS[dumpcap]}")"
[ -s "$pcap" ] || it_fail "no capture file"

probe="ip.src==$IP_BRANCH && ip.dst==$IP_CLOUD && data.len==$size"
reply="ip.src==$IP_CLOUD && ip.dst==$IP_BRANCH && data.len==$size"
count() { tshark -r "$pcap" -Y "$1" 2>/dev/null | wc -l; }
req_in=$(count "icmp.type==8 && $probe && frame.packet_flags_direction==1")
req_all=$(count "icmp.type==8 && $probe")
rep_out=$(count "icmp.type==0 && $reply && frame.packet_flags_direction==2")
total=$(count "frame")
it_log "capture: $total frames; echo requests $req_in inbound ($req_all in all), replies $rep_out outbound"
[ "$req_in" = "$sent" ] && [ "$req_all" = "$sent" ] \
    || it_fail "capture holds $req_in inbound echo requests ($req_all in all), ping sent $sent"
[ "$rep_out" -ge "$got" ] || it_fail "capture holds $rep_out outbound echo replies, ping got $got"

# Detaching removed the capture callbacks: sagd still forwards, and still runs.
it_ping "$NS_BRANCH" "$IP_CLOUD" 3 || it_fail "no traffic through sagd after the capture"
it_alive sagd || it_fail "sagd died"
it_pass
