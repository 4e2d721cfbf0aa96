#!/usr/bin/env bash
# Learned routes end to end: FRR zebra (-M dplane_fpm_nl) -> sagd's FPM server -> sagd's FIB.
#
#   cloud 10.2.0.2 -> secgw (edge) =ESP=> sagd -> branch LAN -> LAN router 10.1.0.254 -> on-prem
#   10.50.1.1 / 10.50.2.1. The LAN router (FRR, AS 65001) announces the on-prem prefixes by BGP
#   to the gateway's bgpd (AS 65000, namespace gw, kernel-only control link); the gateway's zebra
#   streams them to sagd over FPM (127.0.0.1:2620); sagd forwards to the next hop 10.1.0.254.
#   Topology: tests/integration/README.md ("FRR: learned routes").
#
# Checks:
#   1. announce 10.50.1.0/24, 10.50.2.0/24, 10.50.9.0/24: all three in GET /v1/routes?origin=learned
#      (next hop 10.1.0.254, once each); the cloud pings 10.50.1.1 and 10.50.2.1 through the tunnel;
#   1b. IPv6: announce fd50:1::/64 (IPv6 unicast AFI, next hop fd00:1::fe on the branch LAN):
#      in GET /v1/routes?prefix=fd50::/16 as a learned route via fd00:1::fe (once); the cloud
#      host pings6 fd50:1::1 through the tunnel (inner IPv6 in ESP, next header 41, on SAs
#      0x1003/0x2003 to secgw; sagd resolves fd00:1::fe with Neighbor Discovery and answers the
#      LAN router's NS for fd00:1::1); withdraw it: gone from /v1/routes, ping6 fails, IPv4 on;
#   2. withdraw 10.50.2.0/24: gone from /v1/routes, ping to 10.50.2.1 fails, 10.50.1.1 still works;
#   3. kill zebra (SIGKILL): sagd keeps forwarding on its stale routes during the grace time;
#      while zebra is down the router re-announces 10.50.2.0/24 and withdraws 10.50.9.0/24;
#      restart zebra (and bgpd, as watchfrr would): /v1/routes holds exactly 10.50.1.0/24 and
#      10.50.2.0/24, once each (10.50.9.0/24 swept after the grace time, 10.50.1.0/24 never
#      gone within it), and both hosts answer again.
# fpm.grace_seconds is 10 here (SAGD_FRR_GRACE): the restart of zebra + bgpd and the new BGP
# session take ~5 s, on a loaded machine more.
#
# Skips (77) when sagd is not built, FRR is missing, or sagd's config does not accept the `fpm`
# and `api` sections yet (`sagd --check` refuses them). Needs curl (scripts/setup.sh).
# SAGD_FRR_STATIC=1: no FRR/FPM at all, a static route 10.50.0.0/16 via 10.1.0.254 instead;
# checks only the data path of this topology (works with a sagd that has no FPM server).
set -u
. "$(dirname "$0")/lib.sh"
. "$IT_LIB_DIR/frr/frr_lib.sh"
: "${IT_TEST_TIMEOUT:=160}"
STATIC=${SAGD_FRR_STATIC:-0}
FPM_PORT=2620
GRACE=${SAGD_FRR_GRACE:-10}   # fpm.grace_seconds: long enough to cover zebra+bgpd restart and BGP
it_sagd_bin >/dev/null   # skip (77) before building any topology
SAGD=$(it_sagd_bin)
frr_check
command -v curl >/dev/null || it_skip "curl missing (scripts/setup.sh installs it)"

# sagd_frr_cfg OUT API_SOCKET MODE: render the config; MODE base (no fpm/api), fpm, static.
sagd_frr_cfg() {
    local out=$1 sock=$2 mode=$3 routes=""
    [ "$mode" = static ] && routes="  - { prefix: 10.50.0.0/16, gateway: $IP_LANRTR_LAN }"
    sed -e "s|@API_SOCKET@|$sock|; s|@FPM_PORT@|$FPM_PORT|; s|@GRACE@|$GRACE|" \
        -e "s|^@STATIC_ROUTES@\$|$routes|" "$IT_LIB_DIR/frr/sagd_frr.yaml.in" |
        if [ "$mode" = fpm ]; then cat; else sed '/^# --- fpm\/api/,$d'; fi >"$out"
}

# The config without fpm/api must pass (else this test's own config is wrong); with them it
# must pass too, or sagd's FPM/API side does not exist yet: skip.
chk=$(mktemp -d /tmp/sagd-frr-check.XXXXXX)
sagd_frr_cfg "$chk/base.yaml" /nonexistent/sagd.sock base
if ! err=$("$SAGD" -c "$chk/base.yaml" --check 2>&1); then rm -rf "$chk"; it_fail "base config refused: $err"; fi
if [ "$STATIC" != 1 ]; then
    sagd_frr_cfg "$chk/fpm.yaml" "$chk/sagd.sock" fpm
    if ! err=$("$SAGD" -c "$chk/fpm.yaml" --check 2>&1); then
        rm -rf "$chk"; it_skip "sagd does not accept the fpm/api config yet: $err"
    fi
fi
rm -rf "$chk"

it_init sagd_frr_fpm
frr_topology_up
# the cloud host reaches the on-prem prefixes through the edge (secgw protects 10.50.0.0/16 too)
ip -n "$NS_CLOUD" route add 10.50.0.0/16 via "$IP_EDGE_CLOUD" dev "$IF_CLOUD"
frr_ipv6_up
API_SOCK="$IT_DIR/sagd.sock"
CFG="$IT_DIR/sagd_frr.yaml"
if [ "$STATIC" = 1 ]; then sagd_frr_cfg "$CFG" "$API_SOCK" static; else sagd_frr_cfg "$CFG" "$API_SOCK" fpm; fi

it_start_secgw "$IT_LIB_DIR/frr/secgw_edge_onprem.cfg"
it_start_sagd "$CFG"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no traffic branch -> cloud through sagd (tunnel down?)"

# ping_none NS DST: no reply at all to 3 probes (bounded: ~4 s)
ping_none() {
    local out
    out=$(timeout 10 ip netns exec "$1" ping -n -c 3 -i 0.3 -W 1 "$2" 2>&1)
    if grep -q " 0 received" <<<"$out"; then it_log "ping $1 -> $2: no reply (as expected)"; return 0; fi
    it_log "ping $1 -> $2 got replies: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
    return 1
}

if [ "$STATIC" = 1 ]; then
    it_wait_ping "$NS_CLOUD" "$IP_ONPREM" 20 || it_fail "cloud -> on-prem (static route) never answered"
    it_ping "$NS_CLOUD" "$IP_ONPREM" 5 || it_fail "ping cloud -> $IP_ONPREM"
    it_ping "$NS_CLOUD" "$IP_ONPREM2" 5 || it_fail "ping cloud -> $IP_ONPREM2"
    it_ping "$NS_ONPREM" "$IP_CLOUD" 5 || it_fail "ping on-prem -> cloud"
    it_tcp_transfer "$NS_CLOUD" "$NS_ONPREM" "$IP_ONPREM" 300000 || it_fail "TCP 300 KB cloud -> on-prem"
    it_alive sagd || it_fail "sagd died"
    it_pass
fi

it_wait 10 "sagd API socket" test -S "$API_SOCK" || it_fail "no API socket $API_SOCK"

# api GET PATH: one request on the unix socket (bounded), body on stdout
api() { curl -sS --fail --max-time 5 --unix-socket "$API_SOCK" "http://sagd$1"; }

# learned_onprem: sagd's learned routes in 10.50.0.0/16 as sorted "prefix=nexthop,..." words.
# Tolerant of the exact JSON shape: a list of route objects, or an object holding one; the
# prefix is in "prefix" (or "dst"/"destination"), the next hops are every IPv4 address found
# anywhere else in the route object (gateway, via, next_hops[].address, ...). Duplicates of a
# prefix show up as repeated words.
learned_onprem() {
    local body
    body=$(api "/v1/routes?origin=learned") || return 1
    "$IT_PY" - "$body" <<'PY'
import ipaddress, json, sys
d = json.loads(sys.argv[1])
def route_list(x):
    if isinstance(x, list):
        return x
    if isinstance(x, dict):
        for k in ("routes", "learned", "items"):
            if isinstance(x.get(k), list):
                return x[k]
        for v in x.values():
            if isinstance(v, list):
                return v
    return []
def addrs(x, out):
    if isinstance(x, dict):
        for v in x.values():
            addrs(v, out)
    elif isinstance(x, list):
        for v in x:
            addrs(v, out)
    elif isinstance(x, str):
        try:
            out.append(str(ipaddress.IPv4Address(x)))
        except ValueError:
            pass
words = []
for r in route_list(d):
    if not isinstance(r, dict):
        continue
    if r.get("origin", "learned") != "learned":
        continue
    p = r.get("prefix") or r.get("dst") or r.get("destination")
    if not isinstance(p, str) or not p.startswith("10.50."):
        continue
    rest = {k: v for k, v in r.items() if k not in ("prefix", "dst", "destination")}
    nh = []
    addrs(rest, nh)
    words.append("%s=%s" % (p, ",".join(sorted(set(nh))) or "-"))
print(" ".join(sorted(words)))
PY
}
learned_is() { [ "$(learned_onprem 2>/dev/null)" = "$1" ]; }
NH=$IP_LANRTR_LAN

frr_start_lanrtr
frr_start_gw "$FPM_PORT"
frr_wait_bgp_established 30 || it_fail "BGP session did not come up"

# --- 1. announce
frr_announce 10.50.1.0/24 10.50.2.0/24 10.50.9.0/24
want="10.50.1.0/24=$NH 10.50.2.0/24=$NH 10.50.9.0/24=$NH"
it_wait 20 "learned routes in sagd" learned_is "$want" ||
    it_fail "sagd's learned on-prem routes: '$(learned_onprem)', want '$want'"
it_log "learned: $(api "/v1/routes?origin=learned" | head -c 2000)"
it_wait_ping "$NS_CLOUD" "$IP_ONPREM" 20 || it_fail "cloud -> $IP_ONPREM never answered (learned route not used?)"
it_ping "$NS_CLOUD" "$IP_ONPREM" 5 || it_fail "ping cloud -> $IP_ONPREM"
it_ping "$NS_CLOUD" "$IP_ONPREM2" 5 || it_fail "ping cloud -> $IP_ONPREM2"
it_ping "$NS_ONPREM" "$IP_CLOUD" 3 || it_fail "ping on-prem -> cloud"

# --- 1b. IPv6
# learned6: sagd's learned routes in fd50::/16 as sorted "prefix=gateway" words
learned6() {
    local body
    body=$(api "/v1/routes?prefix=fd50::/16&match=longer&origin=learned") || return 1
    "$IT_PY" - "$body" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
print(" ".join(sorted("%s=%s" % (r.get("prefix"), (r.get("via") or {}).get("gateway", "-"))
                      for r in d.get("routes", []))))
PY
}
learned6_is() { local cur; cur=$(learned6 2>/dev/null) || return 1; [ "$cur" = "$1" ]; }
frr_announce fd50:1::/64
want6="fd50:1::/64=$IP6_LANRTR_LAN"
it_wait 20 "learned IPv6 route in sagd" learned6_is "$want6" ||
    it_fail "sagd's learned IPv6 routes: '$(learned6)', want '$want6' (zebra: $(frr_vtysh gw 'show ipv6 route' 2>&1 | tail -n 5 | tr '\n' ' '))"
it_log "learned IPv6: $(api "/v1/routes?prefix=fd50::/16&match=longer" | head -c 1000)"
it_wait_ping "$NS_CLOUD" "$IP6_ONPREM" 20 || it_fail "cloud -> $IP6_ONPREM (ping6) never answered"
it_ping "$NS_CLOUD" "$IP6_ONPREM" 5 || it_fail "ping6 cloud -> $IP6_ONPREM"
it_ping "$NS_ONPREM" "$IP6_CLOUD" 3 || it_fail "ping6 on-prem -> cloud"
it_log "neighbours: $(api /v1/neighbours | head -c 1000)"
api /v1/neighbours | grep -q "\"address\":\"$IP6_LANRTR_LAN\"" ||
    it_fail "the LAN router $IP6_LANRTR_LAN is not in sagd's IPv6 neighbours"
frr_withdraw fd50:1::/64
it_wait 20 "IPv6 withdrawal in sagd" learned6_is "" ||
    it_fail "after the IPv6 withdrawal sagd has '$(learned6)'"
ping_none "$NS_CLOUD" "$IP6_ONPREM" || it_fail "cloud still reaches $IP6_ONPREM after the withdrawal"
it_ping "$NS_CLOUD" "$IP_ONPREM" 3 || it_fail "ping cloud -> $IP_ONPREM after the IPv6 withdrawal"

# --- 2. withdraw
frr_withdraw 10.50.2.0/24
want="10.50.1.0/24=$NH 10.50.9.0/24=$NH"
it_wait 20 "withdrawal in sagd" learned_is "$want" ||
    it_fail "after the withdrawal sagd has '$(learned_onprem)', want '$want'"
ping_none "$NS_CLOUD" "$IP_ONPREM2" || it_fail "cloud still reaches $IP_ONPREM2 after the withdrawal"
it_ping "$NS_CLOUD" "$IP_ONPREM" 3 || it_fail "ping cloud -> $IP_ONPREM after withdrawing another prefix"

# --- 3. zebra crash and restart
frr_kill_zebra
killed_at=$(date +%s)
# stale routes keep forwarding while sagd waits grace_seconds for zebra
it_ping "$NS_CLOUD" "$IP_ONPREM" 2 5 || it_fail "sagd stopped forwarding right after the FPM session dropped (grace ${GRACE}s)"
frr_announce 10.50.2.0/24
frr_withdraw 10.50.9.0/24
frr_restart_zebra
# Resync: 10.50.2.0/24 comes back, the stale 10.50.9.0/24 is swept (not before the grace time),
# and 10.50.1.0/24, re-sent by the new session, must not vanish within the grace time.
GAP=""
learned_track() {
    local cur; cur=$(learned_onprem 2>/dev/null) || return 1
    if [[ " $cur " != *" 10.50.1.0/24=$NH "* ]] && [ -z "$GAP" ]; then
        GAP="$(( $(date +%s) - killed_at ))s after the kill: '$cur'"
    fi
    [ "$cur" = "$1" ]
}
want="10.50.1.0/24=$NH 10.50.2.0/24=$NH"
it_wait $(( GRACE + 30 )) "resync after the zebra restart" learned_track "$want" ||
    it_fail "after the zebra restart sagd has '$(learned_onprem)', want '$want'"
it_log "resynchronised $(( $(date +%s) - killed_at ))s after the kill"
if [ -n "$GAP" ]; then
    gap_s=${GAP%%s *}
    if [ "$gap_s" -lt "$GRACE" ]; then it_fail "10.50.1.0/24 vanished within the grace time: $GAP"; fi
    it_log "warning: 10.50.1.0/24 was gone for a while ($GAP): the restart took longer than grace_seconds=$GRACE"
fi
sleep 2   # a late duplicate or a re-appearing stale route would show now
learned_is "$want" || it_fail "after the resync sagd has '$(learned_onprem)', want '$want'"
it_log "learned after resync: $(api "/v1/routes?origin=learned" | head -c 2000)"
it_log "status: $(api /v1/status | head -c 1000)"
it_wait_ping "$NS_CLOUD" "$IP_ONPREM2" 20 || it_fail "cloud -> $IP_ONPREM2 after the resync"
it_ping "$NS_CLOUD" "$IP_ONPREM" 3 || it_fail "ping cloud -> $IP_ONPREM after the resync"
it_ping "$NS_CLOUD" "$IP_ONPREM2" 3 || it_fail "ping cloud -> $IP_ONPREM2 after the resync"

for n in sagd secgw gw-zebra gw-bgpd lanrtr-bgpd; do it_alive "$n" || it_fail "$n died"; done
it_pass
