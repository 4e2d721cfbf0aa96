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
#
# DPDK 22.11 race (fixed upstream later, "pdump: fix race in disabling"): when dumpcap stops it
# disables the capture and at once frees its ring and mbuf pool, without waiting for a worker
# that is still inside the capture callback; that worker then uses freed memory (SIGSEGV in
# rte_pktmbuf_copy, or on an unmapped page). Busy ports crash within a few captures. Here the
# port is nearly idle and the window is narrowed as far as we can: dumpcap runs on the control
# thread's CPU only (taskset), so it cannot preempt the worker mid-callback and free the pool
# under it, and sagd preallocates its memory (-m) so that freed pages stay mapped.
set -u
. "$(dirname "$0")/lib.sh"
it_sagd_bin >/dev/null   # skip (77) before building any topology
dumpcap=$(command -v dpdk-dumpcap) || it_skip "dpdk-dumpcap missing (apt-get install dpdk)"
command -v tshark >/dev/null || it_skip "tshark missing (apt-get install tshark)"
HP=/sys/kernel/mm/hugepages/hugepages-2048kB
[ -w "$HP/nr_hugepages" ] || it_skip "no 2 MB hugepages in this kernel ($HP)"
PD_MEM=384       # MB sagd preallocates (-m); it uses ~310 MB (mbuf pool, tables), more if needed
PD_NEED=$(( PD_MEM / 2 + 64 ))   # 2 MB pages: sagd's plus 128 MB (dumpcap's ring and pool ~12 MB)
PD_ADDED=0
PD_MNT=""
IT_TEST_TIMEOUT=${IT_TEST_TIMEOUT:-150}   # tshark is slow to start on a busy machine
PD_PREFIX=sagd-it-pdump   # EAL file prefix of this test's sagd (dumpcap attaches by it)

it_init sagd_pdump

# Give back what we took, after every process that maps the pages has stopped; then lib.sh's
# cleanup (namespaces, logs) with the test's exit code.
pd_cleanup() {
    local n
    for n in "${!IT_PIDS[@]}"; do it_stop "$n" 3 >/dev/null 2>&1 || true; done
    if [ -n "$PD_MNT" ]; then
        for _ in 1 2 3 4 5; do umount "$PD_MNT" 2>/dev/null && break; sleep 0.5; done
        mountpoint -q "$PD_MNT" && { it_log "hugetlbfs $PD_MNT busy: lazy unmount"; umount -l "$PD_MNT"; }
    fi
    if [ "$PD_ADDED" -gt 0 ]; then
        n=$(( $(cat "$HP/nr_hugepages") - PD_ADDED ))
        echo $(( n < 0 ? 0 : n )) >"$HP/nr_hugepages"
        it_log "hugepages given back: $PD_ADDED (the kernel frees them as the mounts go away)"
    fi
    rm -rf "/var/run/dpdk/$PD_PREFIX"
}
pd_exit() {
    local rc=$?
    pd_cleanup
    (exit "$rc") # it__cleanup takes the test's exit code from $?
    it__cleanup
}
trap pd_exit EXIT

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
cfg="$IT_DIR/sagd.yaml"   # the esp config with its own API socket (no clash on the default one)
{ cat "$IT_LIB_DIR/sagd_secgw.yaml"; printf 'api: { socket: "%s" }\n' "$IT_DIR/api.sock"; } >"$cfg"
it_start_sagd "$cfg" -- -l 0-1 --main-lcore 1 -m "$PD_MEM" --huge-dir "$PD_MNT" \
    --file-prefix "$PD_PREFIX" --no-pci
it_log "sagd runs on hugepages: $(( $(cat "$HP/nr_hugepages") - $(cat "$HP/free_hugepages") )) in use"
grep -q "(pdump) unavailable" "${IT_LOGS[sagd]}" && it_fail "sagd could not set up pdump"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no traffic through sagd -> esp_edge"

# The LAN port is the first device in the config: ethdev name net_af_packet0 (dumpcap -D lists them).
ports=$(ip netns exec "$NS_GW" timeout 20 "$dumpcap" --file-prefix="$PD_PREFIX" -D 2>"$IT_DIR/dumpcap-D.err") \
    || it_fail "dpdk-dumpcap cannot attach to sagd: $(grep -v 'not driven\|cannot be used' "$IT_DIR/dumpcap-D.err")"
it_log "dumpcap sees: $(tr '\n' ' ' <<<"$ports")"
grep -q "net_af_packet0" <<<"$ports" || it_fail "no port net_af_packet0 in dumpcap -D"

# -p: leave the port's promiscuous mode alone; dumpcap prints "Packets captured:" (stderr)
# once its capture callbacks are installed in sagd. taskset: off the worker's CPU (see above).
pcap="$IT_DIR/lan.pcapng"
it_start dumpcap "$NS_GW" taskset -c 1 "$dumpcap" --file-prefix="$PD_PREFIX" -i net_af_packet0 -p \
    -w "$pcap" -a duration:60
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

# One tshark pass (it is slow to start): per frame the pcapng direction flag (0x...1 inbound,
# 0x...2 outbound), ICMP type, addresses and ICMP payload length.
frames=$(tshark -n -r "$pcap" -T fields -e frame.packet_flags_direction -e icmp.type -e ip.src \
    -e ip.dst -e data.len 2>"$IT_DIR/tshark.err") || it_fail "tshark cannot read the capture: $(cat "$IT_DIR/tshark.err")"
count() { # count TYPE SRC DST [DIRECTION]
    awk -F'\t' -v t="$1" -v s="$2" -v d="$3" -v dir="${4:-}" -v n="$size" '
        $2 == t && $3 == s && $4 == d && $5 == n && (dir == "" || $1 ~ ("^(0x)?0*" dir "$")) { c++ }
        END { print c + 0 }' <<<"$frames"
}
req_in=$(count 8 "$IP_BRANCH" "$IP_CLOUD" 1)
req_all=$(count 8 "$IP_BRANCH" "$IP_CLOUD")
rep_out=$(count 0 "$IP_CLOUD" "$IP_BRANCH" 2)
total=$(grep -c . <<<"$frames")
it_log "capture: $total frames; echo requests $req_in inbound ($req_all in all), replies $rep_out outbound"
[ "$req_in" = "$sent" ] && [ "$req_all" = "$sent" ] \
    || it_fail "capture holds $req_in inbound echo requests ($req_all in all), ping sent $sent"
[ "$rep_out" -ge "$got" ] || it_fail "capture holds $rep_out outbound echo replies, ping got $got"

# Detaching removed the capture callbacks: sagd still forwards, and still runs.
it_ping "$NS_BRANCH" "$IP_CLOUD" 3 || it_fail "no traffic through sagd after the capture"
it_alive sagd || it_fail "sagd died"
it_pass
