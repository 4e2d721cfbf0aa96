#!/usr/bin/env bash
# sagd <-> esp_edge.py with AES-256-GCM, extended sequence numbers (RFC 4303 2.2.1) and
# ESP-in-UDP. The edge starts its sequence counter 16 below 2^32, so traffic toward sagd
# crosses the 32-bit boundary: sagd must infer the high-order bits (RFC 4303 Appendix A) and
# authenticate with them (RFC 4106 ESN AAD), or every packet after the wrap fails its ICV.
set -u
. "$(dirname "$0")/lib.sh"
it_sagd_bin >/dev/null
it_init sagd_esn_aes256
key_out=0x$(printf 'a%.0s' $(seq 64))11223344
key_in=0x$(printf '5%.0s' $(seq 64))55667788
cfg="$IT_DIR/sagd_esn.yaml"
sed -e 's/esn: false/esn: true/' -e 's/aes-gcm-128/aes-gcm-256/g' \
    -e "s/key: \"0x2b7e[0-9a-f]*\"/key: \"$key_out\"/" -e "s/key: \"0x603d[0-9a-f]*\"/key: \"$key_in\"/" \
    "$IT_LIB_DIR/sagd_edge_esp_udp.yaml" >"$cfg"
grep -q "esn: true" "$cfg" && grep -q "$key_in" "$cfg" || it_fail "could not derive the ESN config"
it_start_esp_edge edge "$NS_EDGE" --role edge --encap esp-udp --esn \
    --key-out "$key_in" --key-in "$key_out" --seq-start 0xfffffff0
it_start_sagd "$cfg"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no traffic through sagd -> esp_edge (ESN, AES-256)"
it_ping "$NS_CLOUD" "$IP_BRANCH" 5 || it_fail "ping cloud -> branch"
it_tcp_transfer "$NS_BRANCH" "$NS_CLOUD" "$IP_CLOUD" 200000 || it_fail "TCP 200 KB across the 2^32 wrap"
t=$(it_sagd_telemetry /sagd/tunnel,ccn-edge-1) || it_fail "no tunnel counters"
it_log "sagd tunnel: $t"
"$IT_PY" -c 'import json,sys; t=list(json.loads(sys.argv[1]).values())[0]; sys.exit(not (t["rx_packets"] > 16 and t["icv_fail"] == 0 and t["replay"] == 0))' "$t" \
    || it_fail "sagd did not accept the edge's packets across the sequence wrap"
"$IT_PY" -c 'import json,sys; t=list(json.loads(sys.argv[1]).values())[0]; sys.exit(not (t["state"] == "up" and t["down_reasons"] == "" and t["downs"] == 0))' "$t" \
    || it_fail "telemetry: a tunnel without BFD or checks should be up, never down"
s=$(it_esp_edge_stats edge) && it_log "edge: $s"
[ "$(it_stat "$s" drop_auth)" = 0 ] || it_fail "edge saw ICV failures on sagd's ESN ESP"
[ "$(it_stat "$s" out_seq_next)" -gt 4294967312 ] || it_fail "the edge's sequence numbers did not cross 2^32 (test too short)"
it_pass
