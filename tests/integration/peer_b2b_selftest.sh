#!/usr/bin/env bash
# Self-test of esp_edge.py and wan_attack.py (no sagd, no DPDK): two esp_edge instances back to
# back - "--role sagd" in the gw namespace, "--role edge" in the edge namespace.
#   peer_b2b_selftest.sh [esp|esp-udp]     (default esp-udp)
# 1. ping both ways + 300 KB TCP echo branch <-> cloud through the scapy tunnel
# 2. wan_attack.py from the edge namespace at the gw stand-in: its drop counters must equal the
#    attack's per-category counts (this is the check a sagd test does with sagd's counters)
# 3. the edge restarts above the attack's sequence numbers and traffic flows again
set -u
. "$(dirname "$0")/lib.sh"
ENCAP=${1:-esp-udp}
it_init "peer_b2b_$ENCAP"
it_start_esp_edge gw "$NS_GW" --role sagd --encap "$ENCAP"
it_start_esp_edge edge "$NS_EDGE" --role edge --encap "$ENCAP"

it_ping "$NS_BRANCH" "$IP_CLOUD" 3 || it_fail "ping branch -> cloud"
it_ping "$NS_CLOUD" "$IP_BRANCH" 3 || it_fail "ping cloud -> branch"
it_tcp_transfer "$NS_BRANCH" "$NS_CLOUD" "$IP_CLOUD" 300000 || it_fail "TCP 300 KB branch <-> cloud"

before=$(it_esp_edge_stats gw) || it_fail "no stats"
N=7
att=$(ip netns exec "$NS_EDGE" timeout 30 "$IT_PY" "$IT_LIB_DIR/wan_attack.py" --encap "$ENCAP" --count $N) \
    || it_fail "wan_attack.py failed"
it_log "attack: $att"
sleep 0.5
after=$(it_esp_edge_stats gw) || it_fail "no stats"
it_log "gw stand-in after attack: $after"
d() { echo $(( $(it_stat "$after" "$1") - $(it_stat "$before" "$1") )); }
sent() { "$IT_PY" -c 'import json,sys; print(json.loads(sys.argv[1])["sent"].get(sys.argv[2], 0))' "$att" "$1"; }
check() { # counter expected
    local got; got=$(d "$1")
    [ "$got" = "$2" ] || it_fail "counter $1: got $got, expected $2"
    it_log "counter $1 = $got as expected"
}
check drop_auth $(( $(sent tampered_ciphertext) + $(sent tampered_icv) + $(sent garbage_esp) ))
check drop_replay_dup "$(sent replay)"
check drop_replay_old "$(sent replay_old)"
check drop_unknown_spi "$(sent unknown_spi)"
check drop_malformed $(( $(sent truncated) + $(sent garbage_ip) ))
check drop_udp_len "$(sent bad_udp_len)"
check decrypted 1
[ "$(sent replay)" = $N ] || it_fail "attack did not send the replay category"

# legitimate traffic resumes once the edge continues above the attack's sequence numbers
next=$("$IT_PY" -c 'import json,sys; print(json.loads(sys.argv[1])["next_seq"])' "$att")
it_stop edge
it_start_esp_edge edge "$NS_EDGE" --role edge --encap "$ENCAP" --seq-start "$next"
it_ping "$NS_BRANCH" "$IP_CLOUD" 3 || it_fail "ping after the attack"
it_pass
