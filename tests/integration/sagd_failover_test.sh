#!/usr/bin/env bash
# Master/backup failover driven by BFD inside the tunnels, with FRR's bfdd as the far end.
#
#  branch --- sagd lan0                      wan (bridges)                 edge (secgw #1)
#             sagd wan0 192.0.2.1  == wa-gw [bra] wa-edge == edge-wan  192.0.2.254 -- edge-cloud == cl0 \
#             sagd wan1 192.0.3.1  == wb-gw [brb] wb-edge == edge2-wan 192.0.3.254 -- edge2-cloud == cl1 - cloud
#                                                                    edge2 (secgw #2)      10.2.0.2, bfdd
#
# Tunnel edge-a (wan0, master, priority 200) and edge-b (wan1, backup, 100) form group "ccn"
# (hold-down HOLD_MS); 10.2.0.0/16 routes via the group. Each tunnel carries a BFD session
# (100 ms x 3) between 169.254.N.1 (sagd) and 169.254.N.2 (bfdd in the cloud namespace: the
# secgw edge decrypts sagd's control packets and routes them to it, and encrypts its replies).
#   1. both sessions come up on both ends (sagd API, bfdd `show bfd peers`);
#   2. a sequenced stream branch -> cloud (RATE pps) runs while the master path is cut in the
#      middle (wa-edge down: sagd's own link stays up, only BFD can see it): the receiver's
#      longest gap must be <= MAX_GAP_MS, traffic continues on the backup; bfdd sees the
#      session go down too;
#   3. the path is restored: both ends come back up, and after the hold-down the traffic
#      returns to the master with no loss (the stream has exactly one gap: the failover);
#   3a. the cut of 2/3 again while a load sender floods branch -> cloud (8 UDP flows, 64 B, 75 kpps, more
#      than reaches sagd, logged): longest probe gap <= MAX_GAP_MS,
#      the probe continues on the backup, failback after the hold-down; rates logged;
#   3b. 30% loss on the master path (nftables in the WAN bridge) under a stream: the master's
#      health check SLA class (loss <= 10%) steers the traffic to the backup while it lasts;
#   4. sagd's own WAN port goes down (sagd-wan down): its tunnel is down at once (cause: link),
#      before BFD could notice.
# Environment: FAILOVER_RATE (default 2000), FAILOVER_MAX_GAP_MS (350), FAILOVER_HOLD_MS (2000),
# FAILOVER_LOAD_RATE (75000), FAILOVER_LOAD_FLOWS (8), FAILOVER_LOAD_PIN ("taskset -c 0").
set -u
. "$(dirname "$0")/lib.sh"
. "$IT_LIB_DIR/frr/frr_lib.sh"
RATE=${FAILOVER_RATE:-2000}
MAX_GAP_MS=${FAILOVER_MAX_GAP_MS:-350}
HOLD_MS=${FAILOVER_HOLD_MS:-2000}
LOAD_RATE=${FAILOVER_LOAD_RATE:-75000}      # pps offered by the load sender, all flows
LOAD_FLOWS=${FAILOVER_LOAD_FLOWS:-8}
LOAD_PORT0=6001
# CPU 0, beside sagd's worker: on CPU 1 it starves the edges, which then drop ~20% of what sagd
# sends them and the master's health check SLA (loss <= 10%) steers away before the cut.
LOAD_PIN=${FAILOVER_LOAD_PIN-taskset -c 0}
it_sagd_bin >/dev/null
[ -x "$FRR_SBIN/bfdd" ] && [ -x "$FRR_SBIN/zebra" ] || it_skip "FRR bfdd/zebra not installed"
id "$FRR_USER" >/dev/null 2>&1 || it_skip "user $FRR_USER missing (package frr)"
command -v curl >/dev/null || it_skip "curl missing"
IT_TEST_TIMEOUT=${IT_TEST_TIMEOUT:-150}
it_init sagd_failover
SOCK="$IT_DIR/sagd.sock"
SEQ="$IT_LIB_DIR/seqstream.py"

NS_WAN="${SAGD_NS_PREFIX}wan"
NS_EDGE2="${SAGD_NS_PREFIX}edge2"
MAC_GW_WAN1=02:00:00:02:01:01
MAC_EDGE2_WAN=02:00:00:02:01:fe
MAC_EDGE2_CLOUD=02:00:00:03:01:01
MAC_CLOUD1=02:00:00:03:01:02
KEY_OUT_B=0x$(printf '%s' failover-out-b | sha256sum | cut -c1-40)   # sagd -> edge2, SPI 0x1002
KEY_IN_B=0x$(printf '%s' failover-in-b | sha256sum | cut -c1-40)     # edge2 -> sagd, SPI 0x2002

failover_down() {
    local ns
    for ns in "$NS_WAN" "$NS_EDGE2"; do
        _netns_kill_inside "$ns"
        netns_exists "$ns" && ip netns del "$ns" 2>/dev/null
    done
    rm -rf /var/run/dpdk/sagd-it-secgw2
    return 0
}
it_on_cleanup failover_down

# ---- topology: the base one, with the WAN wire cut in two by a bridge namespace, and a second
# WAN port, edge and cloud interface.
ip -n "$NS_GW" link del "$IF_GW_WAN" || it_fail "cannot remove the direct WAN veth"
for ns in "$NS_WAN" "$NS_EDGE2"; do
    ip netns add "$ns" && ip -n "$ns" link set lo up || it_fail "cannot create $ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
done
ip link add "$IF_GW_WAN" netns "$NS_GW" type veth peer name wa-gw netns "$NS_WAN"
ip link add wa-edge netns "$NS_WAN" type veth peer name "$IF_EDGE_WAN" netns "$NS_EDGE"
ip link add sagd-wan1 netns "$NS_GW" type veth peer name wb-gw netns "$NS_WAN"
ip link add wb-edge netns "$NS_WAN" type veth peer name edge2-wan netns "$NS_EDGE2"
ip link add edge2-cloud netns "$NS_EDGE2" type veth peer name cl1 netns "$NS_CLOUD"
_netns_if_prep "$NS_GW" "$IF_GW_WAN" "$MAC_GW_WAN"
_netns_if_prep "$NS_EDGE" "$IF_EDGE_WAN" "$MAC_EDGE_WAN"
_netns_if_prep "$NS_GW" sagd-wan1 "$MAC_GW_WAN1"
_netns_if_prep "$NS_EDGE2" edge2-wan "$MAC_EDGE2_WAN"
_netns_if_prep "$NS_EDGE2" edge2-cloud "$MAC_EDGE2_CLOUD"
_netns_if_prep "$NS_CLOUD" cl1 "$MAC_CLOUD1"
n=0
for p in wa-gw wa-edge wb-gw wb-edge; do
    _netns_if_prep "$NS_WAN" "$p" "02:00:00:0a:00:0$n"; n=$((n + 1))
done
for b in bra brb; do
    ip -n "$NS_WAN" link add "$b" type bridge stp_state 0 || it_fail "no bridge support"
    ip -n "$NS_WAN" link set "$b" up
done
ip -n "$NS_WAN" link set wa-gw master bra && ip -n "$NS_WAN" link set wa-edge master bra
ip -n "$NS_WAN" link set wb-gw master brb && ip -n "$NS_WAN" link set wb-edge master brb
# cloud host: branch traffic arrives on cl0 (edge) or cl1 (edge2); replies leave through cl0.
# BFD: 169.254.1.2 on cl0 (sagd's end 169.254.1.1 behind edge), 169.254.2.2 on cl1.
for k in all default cl0 cl1; do ip netns exec "$NS_CLOUD" sysctl -qw "net.ipv4.conf.$k.rp_filter=0"; done
ip -n "$NS_CLOUD" link set cl1 mtu "$SAGD_INNER_MTU"
ip -n "$NS_CLOUD" addr add 169.254.1.2/24 dev "$IF_CLOUD"
ip -n "$NS_CLOUD" addr add 169.254.2.2/24 dev cl1
ip -n "$NS_CLOUD" neigh replace 169.254.1.1 lladdr "$MAC_EDGE_CLOUD" dev "$IF_CLOUD" nud permanent
ip -n "$NS_CLOUD" neigh replace 169.254.2.1 lladdr "$MAC_EDGE2_CLOUD" dev cl1 nud permanent

# ---- the two edges (ipsec-secgw), each: port 0 WAN (ESP), port 1 cloud
key_colon() { echo "${1#0x}" | sed 's/../&:/g; s/:$//'; }
edge_cfg() { # FILE SPI_TO_SAGD KEY_TO_SAGD SPI_FROM_SAGD KEY_FROM_SAGD EDGE_IP SAGD_IP BFD_NET SAGD_MAC CLOUD_MAC
    cat >"$1" <<EOF
sp ipv4 out esp protect $2 pri 1 dst 10.1.0.0/16 sport 0:65535 dport 0:65535
sp ipv4 out esp protect $2 pri 2 dst $8.1/32 sport 0:65535 dport 0:65535
sp ipv4 in esp protect $4 pri 1 dst 10.2.0.0/16 sport 0:65535 dport 0:65535
sp ipv4 in esp protect $4 pri 2 dst $8.2/32 sport 0:65535 dport 0:65535
sa out $2 aead_algo aes-128-gcm aead_key $(key_colon "$3") mode ipv4-tunnel src $6 dst $7
sa in $4 aead_algo aes-128-gcm aead_key $(key_colon "$5") mode ipv4-tunnel src $7 dst $6
rt ipv4 dst $7/32 port 0
rt ipv4 dst 10.2.0.0/16 port 1
rt ipv4 dst $8.0/24 port 1
neigh port 0 $9
neigh port 1 ${10}
EOF
}
edge_cfg "$IT_DIR/edge1.cfg" 8193 "$KEY_IN" 4097 "$KEY_OUT" 192.0.2.254 192.0.2.1 169.254.1 "$MAC_GW_WAN" "$MAC_CLOUD"
edge_cfg "$IT_DIR/edge2.cfg" 8194 "$KEY_IN_B" 4098 "$KEY_OUT_B" 192.0.3.254 192.0.3.1 169.254.2 "$MAC_GW_WAN1" "$MAC_CLOUD1"
bin=$(it_secgw_bin)
for e in 1 2; do
    ns=$NS_EDGE; wan=$IF_EDGE_WAN; cloud=$IF_EDGE_CLOUD; name=secgw
    [ $e = 2 ] && { ns=$NS_EDGE2; wan=edge2-wan; cloud=edge2-cloud; name=secgw2; }
    # shellcheck disable=SC2046
    it_start_dpdk "$name" "$ns" "entering main loop" 30 "$bin" $(it_eal "$name" 1) \
        --vdev "net_af_packet0,iface=$wan" --vdev "net_af_packet1,iface=$cloud" \
        --vdev "crypto_aesni_mb$e" -- -p 0x3 -P -u 0x1 --config "(0,0,1),(1,0,1)" \
        -f "$IT_DIR/edge$e.cfg" -l -w 1024
done

# ---- FRR bfdd in the cloud namespace (zebra for the interfaces)
frr__init
FRR_NS[cloud]="$NS_CLOUD"
mkdir -p "$FRR_DIR/cloud"
printf 'hostname cloud\n' >"$FRR_DIR/cloud/zebra.conf"
cat >"$FRR_DIR/cloud/bfdd.conf" <<EOF
hostname cloud-bfdd
bfd
 peer 169.254.1.1 local-address 169.254.1.2 interface $IF_CLOUD
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
 peer 169.254.2.1 local-address 169.254.2.2 interface cl1
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
!
EOF
chown -R "$FRR_USER:$FRR_USER" "$FRR_DIR/cloud"; chmod 0750 "$FRR_DIR/cloud"
stop_cloud_frr() { it_stop cloud-bfdd 3; it_stop cloud-zebra 3; }
it_on_cleanup stop_cloud_frr
frr__start cloud zebra
frr__start cloud bfdd
bfdd_peer_status() { # PEER -> up/down/init...
    frr_vtysh cloud "show bfd peer $1 json" 2>/dev/null |
        "$IT_PY" -c 'import json,sys; print(json.load(sys.stdin).get("status","?"))' 2>/dev/null
}

# ---- sagd
bfd_cfg() { echo "{local: 169.254.$1.1, remote: 169.254.$1.2, transmit_interval_ms: 100, receive_interval_ms: 100, detect_multiplier: 3}"; }
cat >"$IT_DIR/sagd.yaml" <<EOF
workers: 1
api: { socket: "$SOCK" }
ports:
  - { name: lan0, role: lan, device: "net_af_packet0,iface=$IF_GW_LAN", address: 10.1.0.1/24 }
  - { name: wan0, role: wan, device: "net_af_packet1,iface=$IF_GW_WAN", address: 192.0.2.1/24 }
  - { name: wan1, role: wan, device: "net_af_packet2,iface=sagd-wan1", address: 192.0.3.1/24 }
tunnels:
  - name: edge-a
    port: wan0
    peer: 192.0.2.254
    encap: esp
    outbound_sa: { spi: 0x1001, cipher: aes-gcm-128, key: "$KEY_OUT" }
    inbound_sas: [ { spi: 0x2001, cipher: aes-gcm-128, key: "$KEY_IN" } ]
    bfd: $(bfd_cfg 1)
    health_check: {target: 169.254.1.2, source: 169.254.1.1, interval_ms: 100, timeout_ms: 300, failures: 8, window: 20, sla: {max_loss_percent: 10}}
  - name: edge-b
    port: wan1
    peer: 192.0.3.254
    encap: esp
    outbound_sa: { spi: 0x1002, cipher: aes-gcm-128, key: "$KEY_OUT_B" }
    inbound_sas: [ { spi: 0x2002, cipher: aes-gcm-128, key: "$KEY_IN_B" } ]
    bfd: $(bfd_cfg 2)
groups:
  - name: ccn
    hold_down_ms: $HOLD_MS
    members: [ { tunnel: edge-a, priority: 200 }, { tunnel: edge-b, priority: 100 } ]
routes:
  - { prefix: 10.2.0.0/16, group: ccn }
neighbours:
  - { port: wan0, address: 192.0.2.254, mac: "$MAC_EDGE_WAN" }
  - { port: wan1, address: 192.0.3.254, mac: "$MAC_EDGE2_WAN" }
EOF
it_start_sagd "$IT_DIR/sagd.yaml"
it_wait 10 "api socket" test -S "$SOCK" || it_fail "sagd did not open its API socket"
api() { curl -s --max-time 5 --unix-socket "$SOCK" "http://sagd$1"; }
jget() { "$IT_PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
bfd_state() { jget "$(api "/v1/tunnels/$1/health")" 'd.get("bfd",{}).get("state","?")'; }
active() { jget "$(api /v1/groups/ccn)" '",".join(d["active"])'; }
is_active() { [ "$(active)" = "$1" ]; }
tunnel_is() { [ "$(jget "$(api "/v1/tunnels/$1/health")" 'd["state"]')" = "$2" ]; }
bfdd_is() { [ "$(bfdd_peer_status "$1")" = "$2" ]; }
both_up() { [ "$(bfd_state edge-a)" = up ] && [ "$(bfd_state edge-b)" = up ] &&
            [ "$(bfdd_peer_status 169.254.1.1)" = up ] && [ "$(bfdd_peer_status 169.254.2.1)" = up ]; }

# ---- 1. both sessions up, both ends
it_wait 20 "BFD up on both tunnels, both ends" both_up || {
    it_log "sagd: $(api /v1/tunnels/edge-a/health) $(api /v1/tunnels/edge-b/health)"
    it_log "bfdd: $(frr_vtysh cloud 'show bfd peers brief')"
    it_fail "BFD sessions did not come up"; }
it_log "BFD up: edge-a $(api /v1/tunnels/edge-a/health)"
it_log "bfdd: $(frr_vtysh cloud 'show bfd peers brief' | tr '\n' ' ')"
it_log "sagd BFD drops: $(api /v1/counters | "$IT_PY" -c 'import json,sys; d=json.load(sys.stdin); print({k: v for k, v in (d.get("drops") or {}).items() if k.startswith("bfd")})' 2>&1)"
[ "$(active)" = edge-a ] || it_fail "master not active: $(api /v1/groups/ccn)"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 10 || it_fail "no traffic branch -> cloud"

# ---- 2. cut the master path in the middle while a stream runs
DUR=$(( 4 + 3 + HOLD_MS / 1000 + 4 ))
it_start rx "$NS_CLOUD" "$IT_PY" "$SEQ" recv --listen 5001 --local "$IP_CLOUD" --idle 3 \
    --stats-file "$IT_DIR/rx.json" --ready-file "$IT_DIR/rx.ready"
it_wait 10 "receiver" test -s "$IT_DIR/rx.ready" || it_fail "the receiver did not start"
it_start tx "$NS_BRANCH" "$IT_PY" "$SEQ" send --to "$IP_CLOUD:5001" --rate "$RATE" \
    --duration "$DUR" --size 200 --stats-file "$IT_DIR/tx.json" --ready-file "$IT_DIR/tx.ready"
it_wait 10 "sender" test -s "$IT_DIR/tx.ready" || it_fail "the sender did not start"
sleep 2
it_log "cutting the master path (wa-edge down in $NS_WAN)"
ip -n "$NS_WAN" link set wa-edge down
it_wait 3 "failover to edge-b" is_active edge-b || it_fail "no failover: $(api /v1/groups/ccn)"
it_log "failed over: $(api /v1/groups/ccn)"
it_wait 5 "bfdd sees edge-a down" bfdd_is 169.254.1.1 down ||
    it_fail "bfdd did not see the session go down: $(bfdd_peer_status 169.254.1.1)"
[ "$(jget "$(api /v1/tunnels/edge-a/health)" 'd["last_change_cause"]')" = "bfd down" ] ||
    it_fail "edge-a down for the wrong reason: $(api /v1/tunnels/edge-a/health)"
sleep 1
it_log "restoring the master path"
ip -n "$NS_WAN" link set wa-edge up
t_restore=$(date +%s%N)
bfd_up_a() { [ "$(bfd_state edge-a)" = up ]; }
it_wait 10 "sagd's session of edge-a up again" bfd_up_a || it_fail "BFD did not come back: $(api /v1/tunnels/edge-a/health)"
t_bfd=$(date +%s%N)
# the health check wants 8 good probes in a row too (about 0.8 s)
it_wait 5 "edge-a in service again" tunnel_is edge-a up || it_fail "edge-a stays down: $(api /v1/tunnels/edge-a/health)"
# when sagd put it in service (its own timestamp: the polls above may see it hundreds of ms late
# on a busy machine, which made the hold-down check below fail)
h=$(api /v1/tunnels/edge-a/health); t_up=$(( $(date +%s%N) - $(jget "$h" 'd["last_change_ms_ago"]') * 1000000 ))
g=$(api /v1/groups/ccn)
[ "$(jget "$g" '",".join(d["active"])')" = edge-b ] || it_fail "traffic went back before the hold-down: $g"
[ "$(jget "$g" '[m["state"] for m in d["members"]][0]')" = hold-down ] || it_fail "edge-a not in hold-down: $g"
it_wait $(( HOLD_MS / 1000 + 3 )) "failback to edge-a" is_active edge-a ||
    it_fail "no failback: $(api /v1/groups/ccn)"
t_back=$(date +%s%N)
back_ms=$(( (t_back - t_up) / 1000000 ))
it_log "BFD up $(( (t_bfd - t_restore) / 1000000 )) ms after the restore, tunnel up $(( (t_up - t_restore) / 1000000 )) ms after it, failback $back_ms ms after that (hold-down $HOLD_MS ms)"
[ "$back_ms" -ge $(( HOLD_MS - 300 )) ] || it_fail "failback after $back_ms ms, before the hold-down"
it_wait 10 "bfdd sees both sessions up again" both_up || it_fail "bfdd: $(frr_vtysh cloud 'show bfd peers brief')"
it_wait $(( DUR + 10 )) "stream end" test -s "$IT_DIR/rx.json" || it_fail "the receiver did not finish"
rx=$(cat "$IT_DIR/rx.json"); tx=$(cat "$IT_DIR/tx.json" 2>/dev/null)
it_log "receiver: $rx"
st() { jget "$rx" "list(d['streams'].values())[0]['$1']"; }
gap=$(st max_gap_ms); gaps=$(st gaps); lost=$(st lost); gap_pkts=$(st max_gap_pkts)
it_log "failover gap ${gap} ms ($gap_pkts packets at $RATE pps), gaps $gaps, lost $lost, reordered $(st reordered), duplicates $(st duplicates)"
[ "$(jget "$tx" 'd.get("pacing_ok", True)')" = True ] || it_log "warning: the sender could not keep its pace: $tx"
"$IT_PY" -c "import sys; sys.exit(0 if float('$gap') <= $MAX_GAP_MS else 1)" ||
    it_fail "failover gap ${gap} ms > $MAX_GAP_MS ms"
[ "$gaps" = 1 ] && [ "$lost" = "$gap_pkts" ] ||
    it_fail "loss outside the failover (switch-back must be lossless): gaps $gaps, lost $lost, largest gap $gap_pkts"
[ "$(st duplicates)" = 0 ] || it_fail "duplicates"
g=$(api /v1/groups/ccn)
[ "$(jget "$g" 'd["failovers"]')" = 1 ] && [ "$(jget "$g" 'd["failbacks"]')" = 1 ] ||
    it_fail "group counters: $g"
grep -q "group 'ccn': active edge-a -> edge-b (tunnel 'edge-a' bfd down" "${IT_LOGS[sagd]}" ||
    it_fail "the failover was not logged with its cause"
api /metrics | grep -q 'sagd_group_switches_total{group="ccn",kind="failover"} 1' ||
    it_fail "metrics: $(api /metrics | grep sagd_group)"

# ---- 3a. the same cut under saturation. A load sender in the branch (LOAD_FLOWS UDP flows of
# 64 bytes, LOAD_RATE pps, on sagd's CPU) runs beside the probe stream; the cloud drops the load in
# prerouting (nftables, counted per interface: no socket, no ICMP port-unreachable storm back
# through the tunnel). More is offered on sagd's LAN wire than reaches sagd (the kernel's veth
# backlog and af_packet ring overflow), so the probe stream also loses packets at random: only
# its longest gap is asserted, not "exactly one gap" (random gaps measured 30-100 ms).
# Note: what saturates here is the kernel path into sagd (veth backlog, af_packet ring) on this
# 2-core box, with sagd's worker sharing its CPU with the sender; not the worker's own loop: its
# busy ratio (polls that found packets) stays low, it polls between the kernel's bursts.
it_log "stream again, with sagd saturated by a background load"
nft_load() {
    printf '%s\n' 'table inet sagd_load {' '  counter load_cl0 { }' '  counter load_cl1 { }' \
        '  counter probe_cl1 { }' '  chain pre {' \
        '    type filter hook prerouting priority -300; policy accept;' \
        "    iifname \"$IF_CLOUD\" udp dport $LOAD_PORT0-$((LOAD_PORT0 + LOAD_FLOWS - 1)) counter name load_cl0 drop" \
        "    iifname \"cl1\" udp dport $LOAD_PORT0-$((LOAD_PORT0 + LOAD_FLOWS - 1)) counter name load_cl1 drop" \
        '    iifname "cl1" udp dport 5001 counter name probe_cl1' '  }' '}' |
        ip netns exec "$NS_CLOUD" nft -f -
}
nft_count() { ip netns exec "$NS_CLOUD" nft list counter inet sagd_load "$1" | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }
# load_snap: one line of figures for the window arithmetic below (time, what the branch put on
# the wire toward sagd, what sagd took in on lan0 and sent into each tunnel, its worker's loops)
load_snap() {
    local t=$(date +%s%N) off lan ta tb c cl
    off=$(ip netns exec "$NS_BRANCH" cat "/sys/class/net/$IF_BRANCH/statistics/tx_packets")
    lan=$(api /v1/ports/lan0); ta=$(api /v1/tunnels/edge-a); tb=$(api /v1/tunnels/edge-b)
    c=$(api /v1/counters) || return 1; cl=$(( $(nft_count load_cl0) + $(nft_count load_cl1) ))
    "$IT_PY" -c 'import json,sys
lan, ta, tb, c = (json.loads(x) for x in sys.argv[4:8])
w = c["workers"][0]
print(sys.argv[1], sys.argv[2], lan["counters"]["rx_packets"], ta["counters"]["tx_packets"],
      tb["counters"]["tx_packets"], w["loops"], w["busy_loops"], sys.argv[3], w["busy_cycles"],
      w["busy_packets"])' "$t" "$off" "$cl" "$lan" "$ta" "$tb" "$c"
}
nft_load || it_fail "nft (cloud) failed"
rm -f "$IT_DIR/rx.json" "$IT_DIR/tx.json" "$IT_DIR/rx.ready" "$IT_DIR/tx.ready" "$IT_DIR/load.json" "$IT_DIR/load.ready"
it_start rx "$NS_CLOUD" "$IT_PY" "$SEQ" recv --listen 5001 --local "$IP_CLOUD" --idle 3 \
    --stats-file "$IT_DIR/rx.json" --ready-file "$IT_DIR/rx.ready"
it_wait 10 "receiver" test -s "$IT_DIR/rx.ready" || it_fail "the receiver did not start"
to=(); for i in $(seq 0 $((LOAD_FLOWS - 1))); do to+=(--to "$IP_CLOUD:$((LOAD_PORT0 + i))"); done
# shellcheck disable=SC2086
it_start load "$NS_BRANCH" $LOAD_PIN "$IT_PY" "$SEQ" send "${to[@]}" --rate $(( LOAD_RATE / LOAD_FLOWS )) \
    --duration 30 --size 64 --batch 64 --slip-ms 20 --stream-base 100 \
    --stats-file "$IT_DIR/load.json" --ready-file "$IT_DIR/load.ready"
it_wait 10 "load sender" test -s "$IT_DIR/load.ready" || it_fail "the load sender did not start"
# the probe stream runs until the load has stopped (its END markers must not drown in it)
it_start tx "$NS_BRANCH" "$IT_PY" "$SEQ" send --to "$IP_CLOUD:5001" --rate "$RATE" \
    --duration 30 --size 200 --stats-file "$IT_DIR/tx.json" --ready-file "$IT_DIR/tx.ready"
it_wait 10 "sender" test -s "$IT_DIR/tx.ready" || it_fail "the sender did not start"
sleep 1.5
s0=$(load_snap)
sleep 0.5
[ "$(active)" = edge-a ] || it_fail "the load alone moved the traffic off the master: $(api /v1/groups/ccn)"
it_log "cutting the master path under load"
ip -n "$NS_WAN" link set wa-edge down
t_cut=$(date +%s%N)
it_wait 3 "failover to edge-b" is_active edge-b || it_fail "no failover under load: $(api /v1/groups/ccn)"
it_log "failed over under load after $(( ($(date +%s%N) - t_cut) / 1000000 )) ms (polled): $(jget "$(api /v1/groups/ccn)" 'd["last_cause"]')"
probe_b0=$(nft_count probe_cl1)
sleep 1
probe_b1=$(nft_count probe_cl1)
s1=$(load_snap)
it_log "restoring the master path"
ip -n "$NS_WAN" link set wa-edge up
it_wait 10 "sagd's session of edge-a up again" bfd_up_a || it_fail "BFD did not come back under load: $(api /v1/tunnels/edge-a/health)"
it_wait 5 "edge-a in service again" tunnel_is edge-a up || it_fail "edge-a stays down under load: $(api /v1/tunnels/edge-a/health)"
h=$(api /v1/tunnels/edge-a/health); t_up=$(( $(date +%s%N) - $(jget "$h" 'd["last_change_ms_ago"]') * 1000000 ))
it_wait $(( HOLD_MS / 1000 + 3 )) "failback to edge-a under load" is_active edge-a ||
    it_fail "no failback under load: $(api /v1/groups/ccn)"
it_log "failback under load $(( ($(date +%s%N) - t_up) / 1000000 )) ms after edge-a was up again (hold-down $HOLD_MS ms)"
s2=$(load_snap)
it_stop load 5
sleep 0.5
it_stop tx 5
it_wait 10 "stream end" test -s "$IT_DIR/rx.json" || it_fail "the receiver did not finish"
test -s "$IT_DIR/load.json" || it_fail "the load sender left no figures"
rx=$(cat "$IT_DIR/rx.json"); ld=$(cat "$IT_DIR/load.json")
# figures over two windows: s0..s1 (master until the cut, then the backup), s1..s2 (restore and
# failback); the saturation proof is taken over the whole of them (s0..s2)
it_log "snapshots: $s0 / $s1 / $s2"
read -r fig <<<"$("$IT_PY" -c 'import sys
a, b, c = ([int(x) for x in s.split()] for s in sys.argv[1:4])
def rates(p, q):
    dt = (q[0] - p[0]) / 1e9
    off, rx, tx, cl = (q[1] - p[1]) / dt, (q[2] - p[2]) / dt, (q[3] + q[4] - p[3] - p[4]) / dt, (q[7] - p[7]) / dt
    busy = (q[6] - p[6]) / max(q[5] - p[5], 1)
    return dt, off, rx, tx, cl, busy
dt, off, rx, tx, cl, busy = rates(a, c)
_, _, _, txb, _, _ = rates(a, b)
cpp = (c[8] - a[8]) // max(c[9] - a[9], 1)
print("%.1f %d %d %d %d %.4f %d %.1f %d" % (dt, off, rx, tx, cl, busy, txb, 100.0 * (off - rx) / off, cpp))' "$s0" "$s1" "$s2")"
read -r win off_pps rx_pps fwd_pps cloud_pps busy cut_pps lan_drop_pct cpp <<<"$fig"
it_log "under load (${win} s window from before the cut to after the failback): offered $off_pps pps at sagd's LAN (the load sender sent $(jget "$ld" 'sum(v["sent"] for v in d["streams"].values())') packets), sagd took in $rx_pps pps (${lan_drop_pct}% dropped by the kernel before sagd), forwarded $fwd_pps pps into the tunnels ($cut_pps pps in the window around the cut), the cloud got $cloud_pps pps of it; worker busy ratio $busy, $cpp TSC cycles per packet"
it_log "probe receiver under load: $rx"
gap=$(st max_gap_ms); gap_pkts=$(st max_gap_pkts)
it_log "failover gap under load ${gap} ms ($gap_pkts packets at $RATE pps), lost $(st lost) of $(st expected), gaps $(st gaps), probe packets through edge-b in 1 s after the failover: $((probe_b1 - probe_b0)); worst gaps: $(jget "$rx" "list(d['streams'].values())[0]['worst_gaps'][:4]")"
"$IT_PY" -c "import sys; sys.exit(0 if float('$gap') <= $MAX_GAP_MS else 1)" ||
    it_fail "failover gap under load ${gap} ms > $MAX_GAP_MS ms"
# the trailing gap (packets lost after the last one received) has no end time: bound it in packets
[ "$gap_pkts" -le $(( MAX_GAP_MS * RATE / 1000 )) ] || it_fail "a gap of $gap_pkts packets under load (more than $MAX_GAP_MS ms at $RATE pps)"
[ "$(st end_seen)" = True ] || it_fail "the probe stream's end markers were lost"
[ $((probe_b1 - probe_b0)) -ge $(( RATE / 4 )) ] || it_fail "the probe stream did not continue on edge-b: $((probe_b1 - probe_b0)) packets in 1 s"
[ "$(st duplicates)" = 0 ] || it_fail "duplicates"
# Saturation is reported, not asserted: how much of the offered load the kernel path into sagd
# takes depends on the machine (14-18% was dropped before sagd on a quiet one here), and the
# timing claim above holds either way.
if [ "$off_pps" -gt $(( rx_pps * 11 / 10 )) ]; then
    it_log "saturated: offered $off_pps pps, $rx_pps pps reached sagd"
else
    it_log "WARNING: not saturated: the offered load ($off_pps pps) did not exceed what reached sagd ($rx_pps pps) by 10%"
fi
g=$(api /v1/groups/ccn)
[ "$(jget "$g" 'd["failovers"]')" = 2 ] && [ "$(jget "$g" 'd["failbacks"]')" = 2 ] ||
    it_fail "group counters after the cut under load: $g"
[ "$(grep -c "group 'ccn': active edge-a -> edge-b (tunnel 'edge-a' bfd down" "${IT_LOGS[sagd]}")" = 2 ] ||
    it_fail "the failover under load was not by BFD: $(grep "group 'ccn'" "${IT_LOGS[sagd]}" | tail -3)"
it_wait 10 "bfdd sees both sessions up again" both_up || it_fail "bfdd: $(frr_vtysh cloud 'show bfd peers brief')"
ip netns exec "$NS_CLOUD" nft delete table inet sagd_load

# ---- 3b. brown-out: 30% loss on the master path (both directions, nftables in the WAN bridge;
# this kernel has no netem). The health check's SLA class (loss <= 10% over 20 probes) must
# steer the traffic to the backup and keep it there while the loss lasts; BFD (100 ms x 3) may
# flap meanwhile. Then the loss stops and the traffic returns to the master.
it_log "stream again, with 30% loss on the master path"
rm -f "$IT_DIR/rx.json" "$IT_DIR/tx.json" "$IT_DIR/rx.ready" "$IT_DIR/tx.ready"
it_start rx "$NS_CLOUD" "$IT_PY" "$SEQ" recv --listen 5001 --local "$IP_CLOUD" --idle 3 \
    --stats-file "$IT_DIR/rx.json" --ready-file "$IT_DIR/rx.ready"
it_wait 10 "receiver" test -s "$IT_DIR/rx.ready" || it_fail "the receiver did not start"
it_start tx "$NS_BRANCH" "$IT_PY" "$SEQ" send --to "$IP_CLOUD:5001" --rate "$RATE" \
    --duration 16 --size 200 --stats-file "$IT_DIR/tx.json" --ready-file "$IT_DIR/tx.ready"
it_wait 10 "sender" test -s "$IT_DIR/tx.ready" || it_fail "the sender did not start"
sleep 1
printf '%s\n' 'table bridge sagd_loss {' '  chain loss {' \
    '    type filter hook forward priority 0; policy accept;' \
    '    iifname { "wa-gw", "wa-edge" } numgen random mod 100 < 30 drop' '  }' '}' |
    ip netns exec "$NS_WAN" nft -f - || it_fail "nft failed"
t_loss=$(date +%s%N)
it_wait 8 "steering to edge-b" is_active edge-b ||
    it_fail "traffic stayed on the lossy master: $(api /v1/groups/ccn) $(api /v1/tunnels/edge-a/health)"
it_log "steered away after $(( ($(date +%s%N) - t_loss) / 1000000 )) ms: $(jget "$(api /v1/groups/ccn)" 'd["last_cause"]')"
held=0
for i in $(seq 1 10); do
    sleep 0.3
    is_active edge-b && held=$((held + 1))
done
h=$(api /v1/tunnels/edge-a/health)
it_log "edge-a under 30% loss: $(jget "$h" 'd["health_check"]["sla"]')"
[ "$held" -ge 9 ] || it_fail "traffic went back to the lossy master ($held/10 samples on edge-b): $(api /v1/groups/ccn)"
loss=$(jget "$h" 'd["health_check"]["sla"]["loss_percent"]')
"$IT_PY" -c "import sys; sys.exit(0 if float('$loss') >= 10 else 1)" || it_fail "SLA loss figure $loss% with 30% injected"
grep -q "below its SLA class (loss)" "${IT_LOGS[sagd]}" ||
    it_log "note: steered by BFD only, not by the SLA class: $(grep "group 'ccn'" "${IT_LOGS[sagd]}" | tail -3)"
ip netns exec "$NS_WAN" nft delete table bridge sagd_loss
t_clean=$(date +%s%N)
it_wait 15 "back to edge-a after the loss" is_active edge-a ||
    it_fail "no return to the master: $(api /v1/groups/ccn) $(api /v1/tunnels/edge-a/health)"
it_log "back on edge-a $(( ($(date +%s%N) - t_clean) / 1000000 )) ms after the loss stopped: $(jget "$(api /v1/groups/ccn)" 'd["last_cause"]')"
it_wait 25 "stream end" test -s "$IT_DIR/rx.json" || it_fail "the receiver did not finish"
rx=$(cat "$IT_DIR/rx.json")
it_log "brown-out stream: lost $(st lost) of $(st expected), gaps $(st gaps), largest gap $(st max_gap_ms) ms, duplicates $(st duplicates)"
[ "$(st duplicates)" = 0 ] || it_fail "duplicates"

# ---- 4. sagd's own WAN port down: its tunnel goes down at once, before any BFD timeout
t0=$(date +%s%N)
ip -n "$NS_GW" link set "$IF_GW_WAN" down
it_wait 2 "edge-a down" tunnel_is edge-a down ||
    it_fail "edge-a still up with its port down"
h=$(api /v1/tunnels/edge-a/health)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# when sagd took the tunnel down, after the link went: time since t0 minus how long ago it was
react=$(( ms - $(jget "$h" 'd["last_change_ms_ago"]') ))
it_log "WAN link down -> edge-a down after ~${react} ms (sagd's own timestamp; polls every 10 ms): $h"
[ "$(jget "$h" 'd["last_change_cause"]')" = "link down" ] || it_fail "edge-a went down for another cause: $h"
# The cause is the proof (had BFD noticed first, it would read "bfd down"); the time is an upper
# bound (it includes `ip netns exec` and the control thread sharing its core with both edges).
[ "$react" -le 250 ] || it_fail "link down took ${react} ms to take the tunnel down"
[ "$(active)" = edge-b ] || it_fail "no failover on link down: $(api /v1/groups/ccn)"
grep -q "port 'wan0': link down" "${IT_LOGS[sagd]}" || it_fail "link down not logged"
ip -n "$NS_GW" link set "$IF_GW_WAN" up
it_wait 10 "edge-a back" tunnel_is edge-a up ||
    it_fail "edge-a did not recover after the link came back: $(api /v1/tunnels/edge-a/health)"
it_log "sagd drops: $(api /v1/counters | head -c 600)"
it_pass
