#!/usr/bin/env bash
# sagd with two workers and two queue pairs per port (net_af_packet qpairs=2: the kernel spreads
# flows over the queues like RSS). The tunnel's SAs belong to one worker; packets that arrive
# on the other worker's queue are handed to the owner, so every SA keeps a single writer.
# ping both ways and a TCP transfer through the scapy edge (ESP-in-UDP), then the counters must
# balance, including the hand-offs.
set -u
. "$(dirname "$0")/lib.sh"
it_sagd_bin >/dev/null
it_init sagd_two_workers
cfg="$IT_DIR/sagd_2w.yaml"
sed -e 's/^workers: 1/workers: 2/' -e 's/iface=sagd-lan"/iface=sagd-lan,qpairs=2"/' \
    -e 's/iface=sagd-wan"/iface=sagd-wan,qpairs=2"/' "$IT_LIB_DIR/sagd_edge_esp_udp.yaml" >"$cfg"
grep -q "workers: 2" "$cfg" && grep -q "qpairs=2" "$cfg" || it_fail "could not derive the 2-worker config"
it_start_esp_edge edge "$NS_EDGE" --role edge --encap esp-udp
# Three lcores on two CPUs: the control thread (mostly asleep) shares CPU 0 with worker 0.
it_start_sagd "$cfg" -- --lcores 0@0,1@0,2@1 --main-lcore 0 --no-huge -m 512 \
    --file-prefix sagd-it-sagd --no-pci
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no traffic through sagd with two workers"
it_ping "$NS_CLOUD" "$IP_BRANCH" 5 || it_fail "ping cloud -> branch"
it_tcp_transfer "$NS_BRANCH" "$NS_CLOUD" "$IP_CLOUD" 300000 || it_fail "TCP 300 KB"
w=$(it_sagd_telemetry /sagd/workers) || it_fail "no worker counters"
s=$(it_sagd_telemetry /sagd/stats)
it_log "workers: $w"
it_log "stats: $s"
"$IT_PY" - "$w" "$s" <<'PY' || it_fail "worker counters are wrong"
import json, sys
w = list(json.loads(sys.argv[1]).values())[0]
s = list(json.loads(sys.argv[2]).values())[0]
assert len(w) == 2, w
assert s["rx"] + s["injected"] + s["handoff_in"] == s["tx"] + s["punted"] + s["handoff_out"] + s["drops"], s
assert s["handoff_in"] == s["handoff_out"], s
assert s["drops"] == 0, s
PY
it_pass
