#!/usr/bin/env bash
# Hitless table changes: while a sequence-numbered UDP stream runs branch -> cloud (10.2.0.2,
# through the untouched route 10.2.0.0/16 and the ipsec-secgw edge) and a second one cloud ->
# branch, the runtime API (unix socket) adds 100,000 routes in 10,000-line text batches to
# prefixes that do not cover the streams, churns unrelated routes (more-specifics inside
# 10.2.0.0/16 that do not cover 10.2.0.2, routes via the LAN, next-hop replacements), deletes
# the 100,000 routes, adds 500 tunnels (own SPIs; peers in the WAN subnet and behind the WAN
# gateway) with a route each and deletes them again. A deliberately bad batch in the middle
# must be refused with 4xx and change nothing. Probes prove the changes reached the data
# plane (tunnel tx counters move; after deletion the probes hit no_route).
# Afterwards: the streams lost nothing, saw no duplicate, reordered or misrouted packet (and no
# stream packet came back into the branch LAN: AF_PACKET trap on br0); sagd's counters balance
# (in_flight 0), its drops are exactly the probes sent to deleted routes, its mbufs in use are
# back to the baseline, and the route and tunnel counts are back to where they started.
#
# On loss, the verdict names the hop (packet counters of every veth and of sagd's ports) and
# the phase of the test each large gap fell in.
# Environment: HITLESS_RATE (pps branch -> cloud, default 50000), HITLESS_REVERSE_RATE
# (cloud -> branch, default 10000; 0 = off), HITLESS_FRAMES (AF_PACKET ring frames of sagd and
# secgw, default 16384: the VM's 2 CPUs are shared by two busy-polling DPDK processes, the
# traffic generators and the kernel, and a deep ring absorbs scheduler stalls). The senders
# ramp up over 2 s (1 s reverse) so the scheduler can settle; without the ramp, the start
# transient alone lost packets in sagd's input ring above ~50,000 pps.
# Measured on the 2-CPU VM when otherwise idle: 80,000 + 20,000 pps pass; at 100,000 + 10,000
# sagd's single worker (sharing its CPU with the generators) overruns its input ring. The
# default keeps ~40% headroom for other load on the machine.
# Skips (77) until build/control-shim/sagd exists.
set -u
: "${IT_TEST_TIMEOUT:=145}"
. "$(dirname "$0")/lib.sh"
it_sagd_bin >/dev/null
RATE=${HITLESS_RATE:-50000}
RRATE=${HITLESS_REVERSE_RATE:-10000}
FRAMES=${HITLESS_FRAMES:-16384}
it_init sagd_hitless
SOCK="$IT_DIR/sagd.sock"
SEQ="$IT_LIB_DIR/seqstream.py"

cfg="$IT_DIR/sagd_hitless.yaml"
{
    sed "s/iface=\(sagd-[a-z]*\)\"/iface=\1,framecnt=$FRAMES\"/" "$IT_LIB_DIR/sagd_secgw.yaml"
    printf 'api: { socket: "%s" }\n' "$SOCK"
    printf 'limits: { ipv4_routes: 131072, tunnels: 1024 }\n'
} >"$cfg"
[ "$(grep -c "framecnt=$FRAMES" "$cfg")" = 2 ] || it_fail "could not derive the sagd config"

# ipsec-secgw as in it_start_secgw, with the same deep AF_PACKET rings
secgw=$(it_secgw_bin)
it_start_dpdk secgw "$NS_EDGE" "entering main loop" 30 "$secgw" $(it_eal secgw 1) \
    --vdev "net_af_packet0,iface=$IF_EDGE_WAN,framecnt=$FRAMES" \
    --vdev "net_af_packet1,iface=$IF_EDGE_CLOUD,framecnt=$FRAMES" \
    --vdev crypto_aesni_mb -- -p 0x3 -P -u 0x1 --config "(0,0,1),(1,0,1)" \
    -f "$IT_LIB_DIR/secgw_edge.cfg" -l -w 1024
sleep 0.5
# 131072 routes size two FIB copies of ~80 MB each: more EAL memory than the default 512 MB
it_start_sagd "$cfg" -- -l 0-1 --main-lcore 1 --no-huge -m 1024 --file-prefix sagd-it-sagd --no-pci
it_wait 10 "api socket" test -S "$SOCK" || it_fail "sagd did not open its API socket $SOCK"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no traffic branch -> cloud through sagd and secgw"
it_wait_ping "$NS_CLOUD" "$IP_BRANCH" 10 || it_fail "no traffic cloud -> branch through secgw and sagd"

api() { curl -s --max-time 30 --unix-socket "$SOCK" "$@"; }
# jget JSON PYTHON-EXPR: evaluate EXPR with d = the parsed JSON
jget() { "$IT_PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
mbufs() { api http://sagd/metrics | awk '$1 == "sagd_mbufs_in_use" {print $2}'; }
# hops: packet counters along both stream paths (kernel veths, sagd's ports) as one JSON object
hops() {
    "$IT_PY" - "$SOCK" "$NS_BRANCH:$IF_BRANCH" "$NS_GW:$IF_GW_LAN" "$NS_GW:$IF_GW_WAN" \
        "$NS_EDGE:$IF_EDGE_WAN" "$NS_EDGE:$IF_EDGE_CLOUD" "$NS_CLOUD:$IF_CLOUD" <<'PY'
import json, subprocess, sys
out = {}
for x in sys.argv[2:]:
    ns, dev = x.split(":")
    j = json.loads(subprocess.run(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev],
                                  capture_output=True, text=True).stdout or "[{}]")[0]
    st = j.get("stats64", j.get("stats", {}))
    out[dev] = {"rx": st.get("rx", {}).get("packets"), "tx": st.get("tx", {}).get("packets"),
                "rx_dropped": st.get("rx", {}).get("dropped")}
# the kernel's per-CPU input backlog (veth receive): drops and squeezes, all CPUs
with open("/proc/net/softnet_stat") as f:
    rows = [[int(x, 16) for x in line.split()] for line in f]
out["softnet"] = {"rx": sum(r[0] for r in rows), "dropped": sum(r[1] for r in rows)}
r = subprocess.run(["curl", "-s", "--max-time", "10", "--unix-socket", sys.argv[1],
                    "http://sagd/v1/ports"], capture_output=True, text=True).stdout
try:
    for p in json.loads(r)["ports"]:
        out["sagd:" + p["name"]] = {"rx": p["counters"]["rx_packets"], "tx": p["counters"]["tx_packets"]}
except (ValueError, KeyError):
    pass
print(json.dumps(out))
PY
}
in_flight() { jget "$(api http://sagd/v1/counters)" 'd["totals"]["in_flight"]'; }
idle() { [ "$(in_flight)" = 0 ]; }            # (it_wait re-runs a command: no $(...) in its args)
mbufs_back() { [ "$(mbufs)" = "$mbufs0" ]; }

# ---- baseline (idle)
it_wait 5 "sagd idle" idle || it_fail "sagd's in_flight is not 0 before the test"
status0=$(api http://sagd/v1/status) || it_fail "GET /v1/status failed"
mbufs0=$(mbufs)
[ -n "$mbufs0" ] || it_fail "no sagd_mbufs_in_use in /metrics"
it_log "baseline: mbufs in use $mbufs0, status $status0"

# ---- streams
it_start rx "$NS_CLOUD" "$IT_PY" "$SEQ" recv --listen 5001 --local "$IP_CLOUD" \
    --stats-file "$IT_DIR/rx.json" --ready-file "$IT_DIR/rx.ready"
it_start trap "$NS_BRANCH" "$IT_PY" "$SEQ" trap --iface "$IF_BRANCH" --port 5001 \
    --local "$IP_BRANCH" --stats-file "$IT_DIR/trap.json" --ready-file "$IT_DIR/trap.ready"
if [ "$RRATE" != 0 ]; then
    it_start rrx "$NS_BRANCH" "$IT_PY" "$SEQ" recv --listen 5002 --local "$IP_BRANCH" \
        --stats-file "$IT_DIR/rrx.json" --ready-file "$IT_DIR/rrx.ready"
fi
it_wait 10 "receivers ready" test -s "$IT_DIR/rx.ready" -a -s "$IT_DIR/trap.ready" \
    || it_fail "the stream receivers did not start"
[ "$RRATE" = 0 ] || it_wait 10 "reverse receiver" test -s "$IT_DIR/rrx.ready" || it_fail "reverse receiver did not start"
hops0=$(hops)
t_stream=$("$IT_PY" -c 'import time; print(time.monotonic())')
# one sender after the other: a python start-up is a CPU burst the other stream would feel
if [ "$RRATE" != 0 ]; then
    it_start rtx "$NS_CLOUD" "$IT_PY" "$SEQ" send --to "$IP_BRANCH:5002" --rate "$RRATE" \
        --duration 0 --ramp 1 --stream-base 2 --stats-file "$IT_DIR/rtx.json" --ready-file "$IT_DIR/rtx.ready"
    it_wait 10 "reverse sender" test -s "$IT_DIR/rtx.ready" || it_fail "the reverse sender did not start"
fi
it_start tx "$NS_BRANCH" "$IT_PY" "$SEQ" send --to "$IP_CLOUD:5001" --rate "$RATE" --duration 0 \
    --ramp 2 --stats-file "$IT_DIR/tx.json" --ready-file "$IT_DIR/tx.ready"
it_wait 10 "sender" test -s "$IT_DIR/tx.ready" || it_fail "the sender did not start"
sleep 4   # the ramp (2 s), then a quiet stretch: loss here is the harness, not a change

# ---- the changes (one python driver on the API socket; in the branch namespace so that it can
# also send the probe packets)
it_log "changes start (stream $RATE pps branch -> cloud, $RRATE pps cloud -> branch)"
ip netns exec "$NS_BRANCH" timeout 100 "$IT_PY" - "$SOCK" >"$IT_DIR/driver.json" 2>"$IT_DIR/driver.log" <<'PY'
import hashlib, http.client, json, socket, sys, time

SOCK = sys.argv[1]
T0 = time.monotonic()


def log(msg):
    print("[%6.2f s] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


class Conn(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("sagd", timeout=30)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(SOCK)
        self.sock = s


def call(method, path, body=None, ctype="application/json"):
    """(status, parsed JSON or text). A new connection per request: nothing is ever resent."""
    c = Conn()
    t = time.monotonic()
    try:
        headers = {}
        if body is not None:
            if not isinstance(body, (str, bytes)):
                body = json.dumps(body)
            headers["Content-Type"] = ctype
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read().decode()
    except (OSError, http.client.HTTPException) as e:
        fail("%s %s: no answer from sagd after %.1f s: %r" % (method, path, time.monotonic() - t, e))
    finally:
        c.close()
    if time.monotonic() - t > 2:
        log("slow: %s %s took %.1f s" % (method, path[:40], time.monotonic() - t))
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


def ok(method, path, body=None, ctype="application/json", expect=(200, 201)):
    st, d = call(method, path, body, ctype)
    if st not in expect:
        fail("%s %s -> HTTP %d %s (expected %s)" % (method, path, st, d, expect))
    return d


def status():
    d = ok("GET", "/v1/status")
    return d["routes"]["ipv4"], d["routes"]["ipv4_candidates"], d["tunnels"]


def tx_packets(tunnel):
    return ok("GET", "/v1/tunnels/" + tunnel)["counters"]["tx_packets"]


def drops():
    return ok("GET", "/v1/counters")["drops"]


def key(label):
    return "0x" + hashlib.sha256(label.encode()).hexdigest()[:40]


def tunnel(name, peer, spi_out, spi_in):
    return {"name": name, "port": "wan0", "peer": peer, "encap": "esp", "replay_window": 1024,
            "outbound_sa": {"spi": spi_out, "cipher": "aes-gcm-128", "key": key(name + "o")},
            "inbound_sas": [{"spi": spi_in, "cipher": "aes-gcm-128", "key": key(name + "i")}]}


probe_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def probe(addr, n=20):
    for _ in range(n):
        probe_sock.sendto(b"probe", (addr, 9))
        time.sleep(0.001)


def expect_tx(tunnel_name, addr, n=20):
    """n probe packets to addr must leave through tunnel_name (sagd's tunnel tx counter)."""
    before = tx_packets(tunnel_name)
    probe(addr, n)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        got = tx_packets(tunnel_name) - before
        if got >= n:
            break
        time.sleep(0.05)
    if got != n:
        fail("%d probe packets to %s: tunnel %s sent %d within 3 s (the route is missing from "
             "the data plane, or the probes were lost before sagd: harness overloaded?)"
             % (n, addr, tunnel_name, got))


result = {"phases": {}}


def phase(name, t):
    result["phases"][name] = [round(t, 4), round(time.monotonic(), 4)]   # CLOCK_MONOTONIC
    log("%s done in %.2f s" % (name, time.monotonic() - t))


base = status()
drops0 = drops()
log("start: routes/candidates/tunnels %s" % (base,))
probes_to_no_route = 0

# ---- 4 bulk tunnels behind the WAN gateway (198.51.100.0/24 is not on the WAN subnet)
t = time.monotonic()
BULK = ["bulk-%d" % i for i in range(4)]
for i, name in enumerate(BULK):
    ok("POST", "/v1/tunnels", tunnel(name, "198.51.100.%d" % (200 + i), 0x30000 + i, 0x31000 + i))
phase("bulk_tunnels_add", t)


# ---- 100,000 routes: 96,000 /24 from 11.0.0.0, 2,000 /20 from 14.0.0.0, 2,000 /32 in 13.0.0.0/16
def route_prefixes():
    out = []
    for i in range(96000):
        out.append("%d.%d.%d.0/24" % (11 + (i >> 16), (i >> 8) & 255, i & 255))
    for i in range(2000):
        v = (14 << 24) + (i << 12)
        out.append("%d.%d.%d.0/20" % (v >> 24, (v >> 16) & 255, (v >> 8) & 255))
    for i in range(2000):
        out.append("13.0.%d.%d/32" % (i >> 8, i & 255))
    return out


prefixes = route_prefixes()
assert len(prefixes) == 100000 and len(set(prefixes)) == 100000
batches = [prefixes[i:i + 10000] for i in range(0, 100000, 10000)]
via = lambda b: BULK[b % 4]  # noqa: E731


def churn(rounds):
    """Unrelated route changes: more-specifics inside 10.2.0.0/16 that do not cover 10.2.0.2,
    a LAN-side route, replacements of the next hop, deletion; several changes per round."""
    for r in range(rounds):
        ok("POST", "/v1/routes", "add 10.2.0.128/25 tunnel %s\nadd 10.2.1.0/24 via 10.1.0.2\n"
           "add 10.2.0.3/32 via 10.1.0.2\nadd 10.2.128.0/17 tunnel %s\nadd 10.3.0.0/16 tunnel %s\n"
           % (BULK[r % 4], BULK[(r + 1) % 4], BULK[(r + 2) % 4]), "text/plain")
        ok("POST", "/v1/routes", "add 10.2.0.128/25 tunnel %s\nadd 10.2.0.3/32 tunnel %s\n"
           "del 10.2.1.0/24\nadd 10.2.0.64/26 via 10.1.0.2\n"
           % (BULK[(r + 3) % 4], BULK[r % 4]), "text/plain")
        ok("POST", "/v1/routes", {"add": [{"prefix": "10.2.2.0/24", "tunnel": BULK[r % 4]}],
                                  "delete": ["10.2.0.128/25", "10.2.0.3/32", "10.2.128.0/17"]})
        ok("POST", "/v1/routes", "del 10.2.0.64/26\ndel 10.3.0.0/16\ndel 10.2.2.0/24\n",
           "text/plain")


t = time.monotonic()
for b, chunk in enumerate(batches):
    tb = time.monotonic()
    d = ok("POST", "/v1/routes", "".join("add %s tunnel %s\n" % (p, via(b)) for p in chunk),
           "text/plain")
    if d.get("added") != len(chunk):
        fail("batch %d: sagd says added %s, sent %d" % (b, d.get("added"), len(chunk)))
    log("route batch %d (+10000 -> %s): %.0f ms" % (b, via(b), (time.monotonic() - tb) * 1000))
    if b == 4:
        # the deliberately bad request: a 10,000-line batch whose line 7777 names a missing
        # tunnel must be refused as a whole with 4xx and change nothing
        before = status()
        bad = ["add %d.%d.%d.0/24 tunnel bulk-0\n" % (20 + (i >> 16), (i >> 8) & 255, i & 255)
               for i in range(10000)]
        bad[7776] = "add 30.0.0.0/24 tunnel no-such-tunnel\n"
        st, d = call("POST", "/v1/routes", "".join(bad), "text/plain")
        if not 400 <= st < 500:
            fail("a batch with a route to a missing tunnel got HTTP %d %s, expected 4xx" % (st, d))
        after = status()
        if after != before:
            fail("the refused batch changed sagd: routes/candidates/tunnels %s -> %s"
                 % (before, after))
        st2, d2 = call("GET", "/v1/routes?prefix=20.0.0.0/24&match=exact")
        if st2 != 200 or d2.get("total") != 0:
            fail("after the refused batch, 20.0.0.0/24 exists: HTTP %d %s" % (st2, d2))
        log("bad batch refused: HTTP %d %s; nothing changed" % (st, d))
        result["bad_batch"] = {"status": st, "error": d.get("error") if isinstance(d, dict) else d}
        # a tunnel in use cannot be deleted (409), and nothing changes
        st, d = call("DELETE", "/v1/tunnels/bulk-0")
        if st != 409 or status() != before:
            fail("DELETE of tunnel bulk-0 (in use by 20,000 routes) got HTTP %d %s, expected 409 "
                 "and no change" % (st, d))
        result["delete_in_use"] = st
        churn(5)
phase("routes_add_100k", t)
n = status()
if n[0] != base[0] + 100000 or n[2] != base[2] + 4:
    fail("after adding 100,000 routes and 4 tunnels: routes/candidates/tunnels %s, expected "
         "%d prefixes and %d tunnels" % (n, base[0] + 100000, base[2] + 4))
for p in ("11.0.0.0/24", "12.118.255.0/24", "14.0.0.0/20", "13.0.7.207/32"):
    st, d = call("GET", "/v1/routes?prefix=%s&match=exact" % p)
    if st != 200 or d.get("total") != 1:
        fail("route %s missing after the batches: HTTP %d %s" % (p, st, d))
# the data plane forwards by the new routes: first batch (bulk-0), last /24 batch, a /32, a /20
expect_tx(BULK[0], "11.0.0.9")
expect_tx(via(9), "12.118.255.9")
expect_tx(via(9), "13.0.7.207")
expect_tx(via(9), "14.2.3.4")

t = time.monotonic()
churn(60)
# next-hop replacement of 10,000 installed routes (same prefixes, another tunnel), and back
for tun in (BULK[3], via(2)):
    d = ok("POST", "/v1/routes", "".join("add %s tunnel %s\n" % (p, tun) for p in batches[2]),
           "text/plain")
    if d.get("added") != 10000:
        fail("next-hop replacement: sagd says added %s, sent 10000" % d.get("added"))
    if tun == BULK[3]:
        expect_tx(BULK[3], "11.78.32.1")   # 11.78.32.0/24 is in batch 2
n = status()
if n[0] != base[0] + 100000:
    fail("next-hop replacement changed the route count: %s" % (n,))
phase("churn_with_100k", t)

t = time.monotonic()
for b, chunk in enumerate(batches):
    tb = time.monotonic()
    d = ok("POST", "/v1/routes", "".join("del %s\n" % p for p in chunk), "text/plain")
    if d.get("deleted") != len(chunk):
        fail("delete batch %d: sagd says deleted %s, sent %d" % (b, d.get("deleted"), len(chunk)))
    log("route delete batch %d: %.0f ms" % (b, (time.monotonic() - tb) * 1000))
phase("routes_delete_100k", t)
n = status()
if n[0] != base[0] or n[1] != base[1]:
    fail("after deleting the 100,000 routes: routes/candidates %s, expected %s" % (n[:2], base[:2]))
probe("11.0.0.9")
probe("13.0.7.207")
probes_to_no_route += 40

# ---- 500 tunnels, each with its own SPIs and a route; 240 peers on the WAN subnet
# (192.0.2.10-249), 260 behind the WAN gateway (198.51.100.1-199, 203.0.113.1-61)
def peer(i):
    if i < 240:
        return "192.0.2.%d" % (10 + i)
    i -= 240
    return "198.51.100.%d" % (1 + i) if i < 199 else "203.0.113.%d" % (1 + i - 199)


TUN = ["t-%d" % i for i in range(500)]
t = time.monotonic()
for i, name in enumerate(TUN):
    ok("POST", "/v1/tunnels", tunnel(name, peer(i), 0x100000 + i, 0x200000 + i), expect=(201,))
phase("tunnels_add_500", t)
t = time.monotonic()
ok("POST", "/v1/routes", "".join("add 16.%d.%d.0/24 tunnel %s\n" % (i >> 8, i & 255, name)
                                  for i, name in enumerate(TUN)), "text/plain")
phase("tunnel_routes_add_500", t)
n = status()
if n != (base[0] + 500, base[1] + 500, base[2] + 504):
    fail("after adding 500 tunnels with a route each: routes/candidates/tunnels %s, expected %s"
         % (n, (base[0] + 500, base[1] + 500, base[2] + 504)))
expect_tx("t-300", "16.1.44.1")   # t-300: peer 198.51.100.61, behind the gateway
expect_tx("t-499", "16.1.243.1")
t = time.monotonic()
churn(20)
ok("POST", "/v1/routes", "".join("del 16.%d.%d.0/24\n" % (i >> 8, i & 255)
                                  for i in range(500)), "text/plain")
for name in TUN:
    ok("DELETE", "/v1/tunnels/" + name)
phase("tunnels_delete_500", t)
probe("16.1.44.1")
probes_to_no_route += 20
t = time.monotonic()
for name in BULK:
    ok("DELETE", "/v1/tunnels/" + name)
phase("bulk_tunnels_delete", t)

t = time.monotonic()
n = status()
if n != base:
    fail("at the end: routes/candidates/tunnels %s, expected the start %s" % (n, base))
phase("final_checks", t)
result["probes_to_no_route"] = probes_to_no_route
result["drops_before"] = drops0
result["total_s"] = round(time.monotonic() - T0, 2)
log("all changes done: routes/candidates/tunnels %s" % (n,))
print(json.dumps(result))
PY
rc=$?
cat "$IT_DIR/driver.log" >&2
[ "$rc" = 124 ] && it_fail "the changes did not finish within 100 s (sagd's API far slower than the ~10 s it takes on a quiet machine; see the driver log above)"
[ "$rc" = 0 ] || it_fail "the change driver failed (rc $rc): $(grep FAIL "$IT_DIR/driver.log" | tail -1)"
it_alive sagd || it_fail "sagd died during the changes"
# the operator CLI on the same socket: a route to a missing tunnel is refused (exit 1, sagd's
# 4xx message) and changes nothing
st1=$(api http://sagd/v1/status | "$IT_PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["routes"], d["tunnels"])')
out=$("$IT_PY" "$IT_REPO/scripts/sagctl" --socket "$SOCK" route add 10.9.0.0/16 tunnel no-such-tunnel 2>&1); rc=$?
[ "$rc" = 1 ] && grep -q "no-such-tunnel" <<<"$out" \
    || it_fail "sagctl route add to a missing tunnel: exit $rc, '$out' (expected 1 and sagd's error)"
st2=$(api http://sagd/v1/status | "$IT_PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["routes"], d["tunnels"])')
[ "$st1" = "$st2" ] || it_fail "the refused sagctl route add changed sagd: $st1 -> $st2"
it_log "sagctl: refused as expected: $out"
sleep 2   # a quiet tail after the last change

# ---- stop the streams and collect
it_stop tx 5
[ "$RRATE" = 0 ] || it_stop rtx 5
it_wait 10 "receiver results" test -s "$IT_DIR/rx.json" || it_fail "the receiver did not report (END markers lost?)"
[ "$RRATE" = 0 ] || it_wait 10 "reverse receiver results" test -s "$IT_DIR/rrx.json" || it_fail "the reverse receiver did not report"
it_stop trap 3
it_wait 5 "trap results" test -s "$IT_DIR/trap.json" || it_fail "the trap did not report"
tx=$(cat "$IT_DIR/tx.json"); rx=$(cat "$IT_DIR/rx.json"); trap=$(cat "$IT_DIR/trap.json")
it_log "sender:   $tx"
it_log "receiver: $rx"
it_log "trap:     $trap"
rtx='{}'; rrx='{}'
if [ "$RRATE" != 0 ]; then
    rtx=$(cat "$IT_DIR/rtx.json"); rrx=$(cat "$IT_DIR/rrx.json")
    it_log "reverse sender:   $rtx"
    it_log "reverse receiver: $rrx"
fi
drv=$(cat "$IT_DIR/driver.json")

# ---- sagd idle again: counters balance, mbufs back, drops are exactly the no-route probes
it_wait 5 "in_flight 0" idle || it_fail "sagd's counters do not balance when idle: in_flight $(in_flight)"
it_wait 5 "mbufs back to $mbufs0" mbufs_back \
    || it_fail "sagd's mbufs in use did not return to the baseline: $mbufs0 before, $(mbufs) now (leak?)"
counters=$(api http://sagd/v1/counters)
it_log "sagd counters: $counters"
hops1=$(hops)

"$IT_PY" - "$tx" "$rx" "$trap" "$rtx" "$rrx" "$drv" "$counters" "$IT_DIR/verdict" "$hops0" "$hops1" \
    "$t_stream" <<'PY' || it_fail "$(cat "$IT_DIR/verdict")"
import json, sys
tx, rx, trap, rtx, rrx, drv, counters = (json.loads(x) for x in sys.argv[1:8])
h0, h1 = json.loads(sys.argv[9]), json.loads(sys.argv[10])
phases = [("quiet start", float(sys.argv[11]), min(v[0] for v in drv["phases"].values()))]
phases += sorted(((k, v[0], v[1]) for k, v in drv["phases"].items()), key=lambda x: x[1])
errors = []


def hop_deltas(path):
    d = {}
    for name, key in path:
        a, b = h0.get(name, {}).get(key), h1.get(name, {}).get(key)
        d["%s %s" % (name, key)] = None if a is None or b is None else b - a
    return ", ".join("%s %s" % kv for kv in d.items())


def when(t):
    if t is None:
        return "?"
    for name, a, b in phases:
        if a <= t <= b:
            return name
    return "between phases"


def check_stream(name, tx, rx, sid, path):
    s = tx["streams"][sid]
    r = rx["streams"].get(sid)
    if s["send_errors"]:
        errors.append("%s: the sender had %d send errors (%s)" % (name, s["send_errors"], s["last_error"]))
    if r is None:
        errors.append("%s: the receiver got no packet of stream %s" % (name, sid))
        return
    if not r["end_seen"]:
        errors.append("%s: the END marker never arrived (tail loss unknown)" % name)
    if r["expected"] != s["sent"]:
        errors.append("%s: sender sent %d, receiver expected %d" % (name, s["sent"], r["expected"]))
    if r["lost"]:
        errors.append("%s: %d of %d packets lost in %d gaps (longest %d packets / %.1f ms); "
                      "largest gaps during: %s; packets per hop: %s"
                      % (name, r["lost"], s["sent"], r["gaps"], r["max_gap_pkts"], r["max_gap_ms"],
                         ", ".join("%d in %s" % (g["pkts"], when(g["after_s"])) for g in r["worst_gaps"][:5]),
                         hop_deltas(path)))
    for k in ("duplicates", "reordered", "misrouted"):
        if r[k]:
            errors.append("%s: %d %s packets" % (name, r[k], k))
    if rx["misrouted"]:
        errors.append("%s: %d misrouted packets at the receiver %s" % (name, rx["misrouted"], rx["misrouted_by_dst"]))
    if not tx["pacing_ok"]:
        print("warning: %s sender fell %.1f ms behind its schedule (caught up in a burst)"
              % (name, tx["max_lag_ms"]), file=sys.stderr)


check_stream("branch -> cloud", tx, rx, "1",
             [("br0", "tx"), ("sagd-lan", "rx"), ("sagd:lan0", "rx"), ("sagd:wan0", "tx"),
              ("edge-wan", "rx"), ("edge-cloud", "tx"), ("cl0", "rx"), ("softnet", "dropped")])
if rtx:
    check_stream("cloud -> branch", rtx, rrx, "2",
                 [("cl0", "tx"), ("edge-cloud", "rx"), ("edge-wan", "tx"), ("sagd-wan", "rx"),
                  ("sagd:wan0", "rx"), ("sagd:lan0", "tx"), ("br0", "rx"), ("softnet", "dropped")])
print("packets per hop during the streams: %s" % hop_deltas(
    [(k, x) for k in h1 for x in ("rx", "tx")]), file=sys.stderr)
if trap["packets"] or trap["misrouted"]:
    errors.append("%d stream packets (misrouted %d) came back into the branch LAN: %s"
                  % (trap["packets"], trap["misrouted"], trap["misrouted_by_dst"]))
before = drv["drops_before"]
after = counters["drops"]
delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
expect = {"no_route": drv["probes_to_no_route"]}
if delta != expect:
    errors.append("sagd's drops moved by %s, expected exactly %s" % (delta, expect))
if errors:
    with open(sys.argv[8], "w") as f:
        f.write("; ".join(errors))
    sys.exit(1)
PY
it_alive sagd || it_fail "sagd died"
it_log "phases: $drv"
it_pass
