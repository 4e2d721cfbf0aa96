#!/usr/bin/env bash
# sagd <-> esp_edge.py (scapy), ESP-in-UDP (default) or plain ESP:
#   sagd_esp_edge_test.sh [esp-udp|esp]
# ping both ways, 300 KB TCP echo, then wan_attack.py at sagd's WAN; sagd must survive it and
# traffic must resume (the edge restarts above the attack's sequence numbers), and sagd's
# per-reason drop counters (DPDK telemetry /sagd/drops) must move by exactly the attack's counts.
# Skips (77) until build/control-shim/sagd exists.
set -u
. "$(dirname "$0")/lib.sh"
ENCAP=${1:-esp-udp}
it_sagd_bin >/dev/null   # skip (77) before building any topology
it_init "sagd_esp_edge_$ENCAP"
cfg="$IT_LIB_DIR/sagd_edge_esp_udp.yaml"
[ "$ENCAP" = esp ] && cfg="$IT_LIB_DIR/sagd_secgw.yaml"
it_start_esp_edge edge "$NS_EDGE" --role edge --encap "$ENCAP"
it_start_sagd "$cfg"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no traffic through sagd -> esp_edge"
it_ping "$NS_BRANCH" "$IP_CLOUD" 5 || it_fail "ping branch -> cloud"
it_ping "$NS_CLOUD" "$IP_BRANCH" 5 || it_fail "ping cloud -> branch"
it_tcp_transfer "$NS_BRANCH" "$NS_CLOUD" "$IP_CLOUD" 300000 || it_fail "TCP 300 KB"
s=$(it_esp_edge_stats edge) && it_log "edge: $s"
[ "$(it_stat "$s" drop_auth)" = 0 ] || it_fail "edge saw ICV failures on sagd's ESP"

before=$(it_sagd_telemetry /sagd/drops) || it_fail "cannot read sagd's drop counters"
att=$(ip netns exec "$NS_EDGE" timeout 30 "$IT_PY" "$IT_LIB_DIR/wan_attack.py" --encap "$ENCAP" --count 10) \
    || it_fail "wan_attack.py failed"
it_log "attack: $att"
sleep 1
after=$(it_sagd_telemetry /sagd/drops) || it_fail "cannot read sagd's drop counters"
stats=$(it_sagd_telemetry /sagd/stats)
it_log "sagd stats: $stats"
"$IT_PY" -c 'import json,sys; s=list(json.loads(sys.argv[1]).values())[0]; sys.exit(s["rx"]+s["injected"]+s["handoff_in"] != s["tx"]+s["punted"]+s["handoff_out"]+s["drops"])' "$stats" \
    || it_fail "sagd's counters do not balance: rx + injected != tx + punted + drops"
# Every hostile packet is dropped under the reason that names it, and nothing else moved.
"$IT_PY" - "$before" "$after" "$att" "$ENCAP" <<'PY' || it_fail "sagd's drop counters do not match the attack"
import json, sys
before = list(json.loads(sys.argv[1]).values())[0]
after = list(json.loads(sys.argv[2]).values())[0]
att = json.loads(sys.argv[3])
sent = att["sent"]
delta = {k: after[k] - before[k] for k in after if after[k] != before[k]}
expect = {
    "esp_icv_fail": sent["tampered_ciphertext"] + sent["tampered_icv"] + sent["garbage_esp"],
    "esp_replay": sent["replay"] + sent["replay_old"],
    "esp_unknown_spi": sent["unknown_spi"],
    "esp_malformed": sent["truncated"],
    "bad_ipv4": sent["garbage_ip"],
}
if sys.argv[4] == "esp-udp":
    expect["esp_bad_udp_length"] = sent["bad_udp_len"]
else:
    expect["esp_malformed"] += sent.get("bad_udp_len", 0)
expect = {k: v for k, v in expect.items() if v}
print("sagd drop deltas:", delta, file=sys.stderr)
print("expected:        ", expect, file=sys.stderr)
sys.exit(0 if delta == expect else 1)
PY
it_alive sagd || it_fail "sagd died under attack"
next=$("$IT_PY" -c 'import json,sys; print(json.loads(sys.argv[1])["next_seq"])' "$att")
it_stop edge
it_start_esp_edge edge "$NS_EDGE" --role edge --encap "$ENCAP" --seq-start "$next"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 10 || it_fail "traffic did not resume after the attack"
it_pass
