#!/usr/bin/env bash
# Rekey without loss, both directions (make-before-break):
#   sagd_rekey_test.sh [esp-udp|esp]      (default esp-udp)
# The scapy edge (esp_edge.py --control) holds several inbound SAs and switches its outbound SA
# at run time; ipsec-secgw cannot (one SA per policy selector). While sequence-numbered UDP
# streams run branch -> cloud and cloud -> branch:
#   1. the edge accepts sagd's next outbound SPI (0x1002) besides the current one (0x1001);
#   2. `sagctl tunnel rekey` tells sagd: new inbound SA 0x2002, outbound now 0x1002, old inbound
#      0x2001 retired after RETIRE ms;
#   3. the edge switches its outbound SA to 0x2002 (sagd accepts both meanwhile);
#   4. after RETIRE ms sagd's tunnel lists only 0x2002 inbound; the edge drops 0x1001.
# Then: 0 lost / duplicated / reordered / misrouted packets in both directions; a capture on
# the WAN wire shows no old SPI after each side switched and the new SPIs in use; the edge
# and sagd counted no ICV, replay or unknown-SPI failure; and a packet the edge still sends on
# the retired SA 0x2001 is dropped by sagd as esp_unknown_spi (retired in the data plane too).
# Environment: REKEY_RATE (pps per direction, default 150: the scapy edge encrypts and
# decrypts every packet in Python; at 200 + 200 pps its mean latency stays ~30 ms on this VM,
# at 300 + 300 its queue grows by seconds until its socket would overflow),
# REKEY_RETIRE_MS (default 4000).
# Skips (77) until build/control-shim/sagd exists.
set -u
. "$(dirname "$0")/lib.sh"
ENCAP=${1:-esp-udp}
RATE=${REKEY_RATE:-150}
RETIRE=${REKEY_RETIRE_MS:-4000}
it_sagd_bin >/dev/null
command -v tcpdump >/dev/null || it_skip "tcpdump missing"
it_init "sagd_rekey_$ENCAP"
SOCK="$IT_DIR/sagd.sock"
CTL="$IT_DIR/edge.ctl"
SEQ="$IT_LIB_DIR/seqstream.py"
SAGCTL=("$IT_PY" "$IT_REPO/scripts/sagctl" --socket "$SOCK")
KEY_OUT2=0x$(printf '%s' sagd-rekey-out | sha256sum | cut -c1-40)   # sagd -> edge, SPI 0x1002
KEY_IN2=0x$(printf '%s' sagd-rekey-in | sha256sum | cut -c1-40)     # edge -> sagd, SPI 0x2002

cfg="$IT_DIR/sagd_rekey.yaml"
src="$IT_LIB_DIR/sagd_edge_esp_udp.yaml"
[ "$ENCAP" = esp ] && src="$IT_LIB_DIR/sagd_secgw.yaml"
{ cat "$src"; printf 'api: { socket: "%s" }\n' "$SOCK"; } >"$cfg"

it_start_esp_edge edge "$NS_EDGE" --role edge --encap "$ENCAP" --control "$CTL"
it_start_sagd "$cfg"
it_wait 10 "api socket" test -S "$SOCK" || it_fail "sagd did not open its API socket $SOCK"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no traffic branch -> cloud through sagd and the edge"
it_wait_ping "$NS_CLOUD" "$IP_BRANCH" 10 || it_fail "no traffic cloud -> branch"

# edge_ctl LINE...: commands to the edge's control socket (keys never on a command line)
edge_ctl() { printf '%s\n' "$@" | "$IT_PY" "$IT_LIB_DIR/esp_edge.py" --control-client "$CTL"; }
api() { curl -s --max-time 10 --unix-socket "$SOCK" "$@"; }
jget() { "$IT_PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
tunnel() { api http://sagd/v1/tunnels/ccn-edge-1; }
in_spis() { jget "$(tunnel)" '",".join(s["spi"] for s in d["inbound_sas"])'; }
out_spi() { jget "$(tunnel)" 'd["outbound_sa"]["spi"]'; }
now() { date +%s.%N; }

[ "$(out_spi)/$(in_spis)" = "0x1001/0x2001" ] || it_fail "unexpected SAs before the rekey: $(tunnel)"
drops0=$(api http://sagd/v1/counters) || it_fail "GET /v1/counters failed"

# ---- capture on the WAN wire at the edge's end (sagd's AF_PACKET transmit bypasses the qdisc
# and with it the taps on its own veth; at the far end its frames are ordinary receives), streams
it_start cap "$NS_EDGE" tcpdump -i "$IF_EDGE_WAN" -n -s 96 -B 8192 -U -w "$IT_DIR/wan.pcap" \
    "ip proto 50 or udp port 4500"
it_wait_log cap "listening on" 10 || it_fail "tcpdump did not start"
it_start rx "$NS_CLOUD" "$IT_PY" "$SEQ" recv --listen 5001 --local "$IP_CLOUD" \
    --stats-file "$IT_DIR/rx.json" --ready-file "$IT_DIR/rx.ready"
it_start rrx "$NS_BRANCH" "$IT_PY" "$SEQ" recv --listen 5002 --local "$IP_BRANCH" \
    --stats-file "$IT_DIR/rrx.json" --ready-file "$IT_DIR/rrx.ready"
it_wait 10 "receivers ready" test -s "$IT_DIR/rx.ready" -a -s "$IT_DIR/rrx.ready" \
    || it_fail "the stream receivers did not start"
it_start tx "$NS_BRANCH" "$IT_PY" "$SEQ" send --to "$IP_CLOUD:5001" --rate "$RATE" --duration 0 \
    --stats-file "$IT_DIR/tx.json"
it_start rtx "$NS_CLOUD" "$IT_PY" "$SEQ" send --to "$IP_BRANCH:5002" --rate "$RATE" --duration 0 \
    --stream-base 2 --stats-file "$IT_DIR/rtx.json"
sleep 3

# ---- 1. the edge accepts sagd's next outbound SA as well
edge_ctl "add-sa-in 0x1002 $KEY_OUT2" >"$IT_DIR/ctl1" || it_fail "edge refused add-sa-in 0x1002: $(cat "$IT_DIR/ctl1")"
it_log "edge: $(cat "$IT_DIR/ctl1")"
sleep 1

# ---- 2. sagd: new inbound SA, outbound switches now, old inbound retires after RETIRE ms
keys="$IT_DIR/rekey.keys"
( umask 077; printf 'out_key=%s\nin_key=%s\n' "$KEY_OUT2" "$KEY_IN2" >"$keys" )
t_sagd0=$(now)
"${SAGCTL[@]}" tunnel rekey ccn-edge-1 --out-spi 0x1002 --in-spi 0x2002 --keys-file "$keys" \
    --retire-after "$RETIRE" >"$IT_DIR/rekey.out" 2>&1 || it_fail "sagctl tunnel rekey failed: $(cat "$IT_DIR/rekey.out")"
t_sagd=$(now)
it_log "sagd: $(cat "$IT_DIR/rekey.out")"
grep -qiE '[0-9a-f]{16}' "$IT_DIR/rekey.out" && it_fail "sagctl printed key material"
t=$(tunnel)
it_log "tunnel after the rekey: $t"
[ "$(out_spi)" = 0x1002 ] || it_fail "sagd's outbound SA is not 0x1002 after the rekey: $t"
[ "$(in_spis)" = "0x2001,0x2002" ] || it_fail "sagd should accept 0x2001 and 0x2002 during the grace period: $t"
jget "$t" '[s for s in d["inbound_sas"] if s["spi"] == "0x2001"][0]["retires_in_ms"]' >/dev/null 2>&1 \
    || it_fail "the old inbound SA 0x2001 has no retires_in_ms: $t"
api http://sagd/v1/tunnels/ccn-edge-1 | grep -qiE '"key|[0-9a-f]{32}' && it_fail "GET /v1/tunnels shows key material"
sleep 1.5

# ---- 3. the edge switches its outbound SA to the one sagd now accepts
edge_ctl "set-sa-out 0x2002 $KEY_IN2" >"$IT_DIR/ctl2" || it_fail "edge refused set-sa-out 0x2002: $(cat "$IT_DIR/ctl2")"
t_edge=$(now)
it_log "edge: $(cat "$IT_DIR/ctl2")"

# ---- 4. sagd retires 0x2001 after RETIRE ms (not before); then the edge drops 0x1001
el=$("$IT_PY" -c "import sys; print(int((float(sys.argv[1]) - float(sys.argv[2])) * 1000))" "$(now)" "$t_sagd0")
if [ "$el" -lt $(( RETIRE - 300 )) ]; then
    [ "$(in_spis)" = "0x2001,0x2002" ] || it_fail "0x2001 retired after ${el} ms, before retire_after_ms $RETIRE"
fi
retired() { [ "$(in_spis)" = 0x2002 ]; }   # (it_wait re-runs a command: no $(...) in its args)
it_wait $(( RETIRE / 1000 + 5 )) "0x2001 retired" retired \
    || it_fail "sagd did not retire inbound SA 0x2001 within $RETIRE ms + 5 s: $(tunnel)"
t_retired=$(now)
it_log "sagd retired 0x2001 $("$IT_PY" -c "import sys; print(int((float(sys.argv[1]) - float(sys.argv[2])) * 1000))" "$t_retired" "$t_sagd") ms after the rekey returned"
[ "$(jget "$(api http://sagd/v1/status)" 'd["pending_rekeys"]')" = 0 ] || it_fail "pending_rekeys is not 0 after the retirement"
# the edge drops 0x1001 once nothing arrives on it any more (its input queue is drained)
in_1001() { edge_ctl stats | "$IT_PY" -c 'import json,sys; print(json.load(sys.stdin)["stats"]["in_by_spi"].get("0x1001", 0))'; }
a=$(in_1001); sleep 0.5; b=$(in_1001)
for _ in 1 2 3 4 5 6 7 8 9 10; do [ "$a" = "$b" ] && break; a=$b; sleep 0.5; b=$(in_1001); done
[ "$a" = "$b" ] || it_fail "packets on 0x1001 still reach the edge $RETIRE ms after sagd switched to 0x1002"
edge_ctl "del-sa-in 0x1001" >"$IT_DIR/ctl3" || it_fail "edge refused del-sa-in 0x1001: $(cat "$IT_DIR/ctl3")"
sleep 2

# ---- stop the streams, collect
it_stop tx 5
it_stop rtx 5
it_wait 10 "receiver results" test -s "$IT_DIR/rx.json" -a -s "$IT_DIR/rrx.json" \
    || it_fail "a receiver did not report (END markers lost?)"
sleep 0.5
it_stop cap 5
grep -E "packets (captured|dropped)" "${IT_LOGS[cap]}" | tr '\n' ' ' >&2; echo >&2
grep -qE "^0 packets dropped by kernel" "${IT_LOGS[cap]}" || it_fail "tcpdump dropped packets: the capture cannot prove the SPI switch"
edge=$(it_esp_edge_stats edge) || it_fail "no edge counters"
it_log "edge: $edge"
tx=$(cat "$IT_DIR/tx.json"); rx=$(cat "$IT_DIR/rx.json")
rtx=$(cat "$IT_DIR/rtx.json"); rrx=$(cat "$IT_DIR/rrx.json")
it_log "branch -> cloud: sent $tx"
it_log "branch -> cloud: recv $rx"
it_log "cloud -> branch: sent $rtx"
it_log "cloud -> branch: recv $rrx"
drops1=$(api http://sagd/v1/counters)

"$IT_PY" - "$tx" "$rx" "$rtx" "$rrx" "$edge" "$drops0" "$drops1" "$IT_DIR/wan.pcap" \
    "$t_sagd" "$t_edge" "$IT_DIR/verdict" "$ENCAP" <<'PY' || it_fail "$(cat "$IT_DIR/verdict")"
import json, struct, sys
tx, rx, rtx, rrx, edge, c0, c1 = (json.loads(x) for x in sys.argv[1:8])
pcap, t_sagd, t_edge, verdict, encap = sys.argv[8], float(sys.argv[9]), float(sys.argv[10]), sys.argv[11], sys.argv[12]
errors = []


def stream(name, tx, rx, sid):
    s, r = tx["streams"][sid], rx["streams"].get(sid)
    if r is None:
        errors.append("%s: nothing received" % name)
        return
    if s["send_errors"]:
        errors.append("%s: %d send errors (%s)" % (name, s["send_errors"], s["last_error"]))
    if not r["end_seen"] or r["expected"] != s["sent"]:
        errors.append("%s: sent %d, receiver expected %d (END seen: %s)" % (name, s["sent"], r["expected"], r["end_seen"]))
    if r["lost"]:
        errors.append("%s: %d of %d packets lost in %d gaps (longest %d packets / %.1f ms)"
                      % (name, r["lost"], s["sent"], r["gaps"], r["max_gap_pkts"], r["max_gap_ms"]))
    for k in ("duplicates", "reordered", "misrouted"):
        if r[k]:
            errors.append("%s: %d %s packets" % (name, r[k], k))
    if rx["misrouted"]:
        errors.append("%s: misrouted at the receiver: %s" % (name, rx["misrouted_by_dst"]))
    if (r["mean_latency_ms"] or 0) > 500:
        print("warning: %s: mean latency %.0f ms: the scapy edge cannot keep up with %s pps "
              "(lower REKEY_RATE)" % (name, r["mean_latency_ms"], tx["rate"]), file=sys.stderr)


stream("branch -> cloud", tx, rx, "1")
stream("cloud -> branch", rtx, rrx, "2")

# the edge: every SA in use, nothing failed
for k in ("drop_unknown_spi", "drop_auth", "drop_replay_dup", "drop_replay_old", "drop_malformed"):
    if edge.get(k):
        errors.append("edge: %s = %d" % (k, edge[k]))
for d, spi in (("in_by_spi", "0x1001"), ("in_by_spi", "0x1002"), ("out_by_spi", "0x2001"), ("out_by_spi", "0x2002")):
    if not edge[d].get(spi):
        errors.append("edge: no packet %s on SPI %s (%s)" % ("decrypted" if d == "in_by_spi" else "encrypted", spi, edge[d]))

# sagd: no drop at all during the rekey
delta = {k: c1["drops"][k] - c0["drops"][k] for k in c1["drops"] if c1["drops"][k] != c0["drops"][k]}
if delta:
    errors.append("sagd dropped packets during the rekey: %s" % delta)

# the capture on sagd's WAN wire: SPIs per direction before/after each switch
with open(pcap, "rb") as f:
    data = f.read()
magic = struct.unpack_from("<I", data, 0)[0]
scale = 1e-9 if magic == 0xa1b23c4d else 1e-6
off = 24
frames = []   # (time, direction, spi)
while off + 16 <= len(data):
    sec, frac, incl, _ = struct.unpack_from("<IIII", data, off)
    pkt = data[off + 16:off + 16 + incl]
    off += 16 + incl
    if len(pkt) < 34 or pkt[12:14] != b"\x08\x00":
        continue
    ihl = (pkt[14] & 15) * 4
    proto, src = pkt[23], pkt[26:30]
    l4 = 14 + ihl
    if proto == 50:
        esp = pkt[l4:]
    elif proto == 17:
        esp = pkt[l4 + 8:]
        if len(esp) < 8 or esp[:4] == b"\0\0\0\0":
            continue    # keepalive or IKE
    else:
        continue
    if len(esp) < 8:
        continue
    spi = struct.unpack_from("!I", esp, 0)[0]
    frames.append((sec + frac * scale, "out" if src == bytes([192, 0, 2, 1]) else "in", spi))
count = lambda d, spi, a=0.0, b=1e18: sum(1 for t, dd, s in frames if dd == d and s == spi and a <= t < b)  # noqa: E731
summary = {
    "sagd->edge 0x1001 before/after the sagd switch": (count("out", 0x1001, 0, t_sagd), count("out", 0x1001, t_sagd)),
    "sagd->edge 0x1002 before/after": (count("out", 0x1002, 0, t_sagd), count("out", 0x1002, t_sagd)),
    "edge->sagd 0x2001 before/after the edge switch": (count("in", 0x2001, 0, t_edge), count("in", 0x2001, t_edge)),
    "edge->sagd 0x2002 before/after": (count("in", 0x2002, 0, t_edge), count("in", 0x2002, t_edge)),
}
print("capture (%d ESP frames): %s" % (len(frames), summary), file=sys.stderr)
if count("out", 0x1001, t_sagd):
    errors.append("sagd sent %d packets on the old SA 0x1001 after the rekey request returned" % count("out", 0x1001, t_sagd))
if not count("out", 0x1001, 0, t_sagd) or not count("out", 0x1002, t_sagd):
    errors.append("the capture does not show sagd's switch 0x1001 -> 0x1002: %s" % summary)
if count("in", 0x2001, t_edge):
    errors.append("the edge sent %d packets on 0x2001 after its switch (test harness)" % count("in", 0x2001, t_edge))
if not count("in", 0x2001, 0, t_edge) or not count("in", 0x2002, t_edge):
    errors.append("the capture does not show the edge's switch 0x2001 -> 0x2002: %s" % summary)
other = {hex(s) for _, _, s in frames} - {"0x1001", "0x1002", "0x2001", "0x2002"}
if other:
    errors.append("unexpected SPIs on the wire: %s" % sorted(other))
if errors:
    with open(verdict, "w") as f:
        f.write("; ".join(errors))
    sys.exit(1)
PY

# ---- the retired SA is gone from the data plane too: the edge sends 5 packets on 0x2001
edge_ctl "set-sa-out 0x2001 $KEY_IN 1000000" >"$IT_DIR/ctl4" || it_fail "edge refused set-sa-out 0x2001: $(cat "$IT_DIR/ctl4")"
unknown_spi() { jget "$(api http://sagd/v1/counters)" 'd["drops"]["esp_unknown_spi"]'; }
u0=$(unknown_spi)
five_more() { [ $(( $(unknown_spi) - u0 )) = 5 ]; }
ip netns exec "$NS_CLOUD" "$IT_PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(b"retired", (sys.argv[1], 9)); time.sleep(0.05)' "$IP_BRANCH"
it_wait 5 "5 drops" five_more \
    || it_fail "5 packets on the retired SA 0x2001: sagd's esp_unknown_spi moved by $(( $(unknown_spi) - u0 )), expected 5"
it_alive sagd || it_fail "sagd died"
it_pass
