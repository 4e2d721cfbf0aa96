#!/usr/bin/env bash
# Self-test of the FRR harness (tests/integration/frr/) without sagd: zebra -M dplane_fpm_nl in
# the gw namespace streams to fpm_sink.py (a plain FPM listener) instead of sagd; bgpd peers with
# the branch LAN router (a second FRR) over the control link.
#   - BGP comes up; the router announces 10.50.1.0/24, 10.50.2.0/24 and fd50:1::/64:
#     the sink sees each added once, next hop 10.1.0.254 / fd00:1::fe (the router on the LAN);
#   - a withdrawal reaches the sink as a delete;
#   - zebra is killed (SIGKILL): the FPM session drops; meanwhile the router re-announces
#     10.50.2.0/24 and withdraws fd50:1::/64; zebra restarts: the new session carries the full
#     current set, each route once, nothing stale.
# Skips (77) when FRR is not installed. No DPDK, no sagd. ~20 s.
set -u
. "$(dirname "$0")/lib.sh"
. "$IT_LIB_DIR/frr/frr_lib.sh"
frr_check
it_init frr_harness_selftest
frr_topology_up

PORT=2620
SINK_STATE="$IT_DIR/fpm_sink.json"
it_start fpm_sink "$NS_GW" "$IT_PY" -u "$IT_LIB_DIR/fpm_sink.py" --listen "127.0.0.1:$PORT" --state-file "$SINK_STATE"
it_wait_log fpm_sink "fpm_sink: listening" 10 || it_fail "fpm_sink did not start"

# sink_route PREFIX: the sink's current next hop of PREFIX ("via 10.1.0.254"), empty if absent.
sink_route() {
    "$IT_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["routes"].get(sys.argv[2], ""))' "$SINK_STATE" "$1" 2>/dev/null
}
sink_session() { "$IT_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["session"])' "$SINK_STATE" 2>/dev/null; }
sink_session_is() { [ "$(sink_session)" = "$1" ]; }
sink_has() { [ "$(sink_route "$1")" = "via $2" ]; }
sink_lacks() { [ -z "$(sink_route "$1")" ]; }
# sink_count SESSION VERB PREFIX: how many VERB (add|del) events for PREFIX the session had.
sink_count() { grep -c "^session $1 $2 $3 " "${IT_LOGS[fpm_sink]}"; }
# sink_onprem: the sink's on-prem routes (10.50/16, fd50::/16) as "prefix=nexthop" lines, sorted
sink_onprem() {
    "$IT_PY" -c 'import json,sys
r = json.load(open(sys.argv[1]))["routes"]
print(" ".join(sorted("%s=%s" % (p, n) for p, n in r.items() if p.startswith(("10.50.", "fd50:")))))' "$SINK_STATE"
}
sink_onprem_is() { [ "$(sink_onprem)" = "$1" ]; }

frr_start_lanrtr
frr_start_gw "$PORT"
frr_wait_bgp_established 30 || it_fail "BGP session did not come up"
it_wait 15 "zebra's FPM session" sink_session_is 1 || it_fail "zebra did not connect to the FPM sink"

# --- announce: each prefix reaches the sink once, with the LAN router as next hop
frr_announce 10.50.1.0/24 10.50.2.0/24 fd50:1::/64
for p in 10.50.1.0/24 10.50.2.0/24; do
    it_wait 15 "$p in the FPM stream" sink_has "$p" "$IP_LANRTR_LAN" || it_fail "sink: $p is '$(sink_route "$p")', want via $IP_LANRTR_LAN"
done
it_wait 15 "fd50:1::/64 in the FPM stream" sink_has fd50:1::/64 "$IP6_LANRTR_LAN" || it_fail "sink: fd50:1::/64 is '$(sink_route fd50:1::/64)'"
frr_gw_has_route 10.50.1.0/24 || it_fail "gw zebra has no installed BGP route 10.50.1.0/24"
ip -n "$NS_GW" route show 10.50.1.0/24 | grep -q "via $IP_LANRTR_LAN dev $IF_GW_LANK" || it_fail "gw kernel lacks 10.50.1.0/24 via $IP_LANRTR_LAN"
sleep 1   # anything zebra would send twice has arrived by now
for p in 10.50.1.0/24 10.50.2.0/24 fd50:1::/64; do
    n=$(sink_count 1 add "$p"); [ "$n" = 1 ] || it_fail "session 1: $p added $n times"
done
it_log "sink after announce: $(sink_onprem)"

# --- withdraw: a delete
frr_withdraw 10.50.2.0/24
it_wait 15 "delete of 10.50.2.0/24" sink_lacks 10.50.2.0/24 || it_fail "sink still has 10.50.2.0/24 after the withdrawal"
[ "$(sink_count 1 del 10.50.2.0/24)" = 1 ] || it_fail "session 1: 10.50.2.0/24 not deleted exactly once"
sink_has 10.50.1.0/24 "$IP_LANRTR_LAN" || it_fail "10.50.1.0/24 lost with the withdrawal of 10.50.2.0/24"

# --- zebra crash; the routing changes while it is down; restart: full resend, nothing stale
frr_kill_zebra
it_wait_log fpm_sink "^session 1 down" 10 || it_fail "sink did not see the FPM session drop"
frr_announce 10.50.2.0/24
frr_withdraw fd50:1::/64
frr_restart_zebra
it_wait 20 "zebra's new FPM session" sink_session_is 2 || it_fail "zebra did not reconnect to the sink"
frr_wait_bgp_established 30 || it_fail "BGP session did not come back after the restart"
want="10.50.1.0/24=via $IP_LANRTR_LAN 10.50.2.0/24=via $IP_LANRTR_LAN"
it_wait 20 "full resend" sink_onprem_is "$want" || it_fail "session 2 on-prem routes: '$(sink_onprem)', want '$want'"
sleep 2   # late duplicates or a stale fd50:1::/64 would show up now
[ "$(sink_onprem)" = "$want" ] || it_fail "session 2 changed: '$(sink_onprem)'"
for p in 10.50.1.0/24 10.50.2.0/24; do
    n=$(sink_count 2 add "$p"); [ "$n" = 1 ] || it_fail "session 2: $p added $n times"
done
[ "$(sink_count 2 add fd50:1::/64)" = 0 ] || it_fail "session 2 resent the withdrawn fd50:1::/64"
# the resend is the whole RIB: zebra's connected routes come along too
grep -q "^session 2 add 10.1.0.0/24 " "${IT_LOGS[fpm_sink]}" || it_fail "session 2 lacks the connected 10.1.0.0/24"
it_log "sink session 2: $(sink_onprem)"
ip -n "$NS_GW" route show 10.50.2.0/24 | grep -q "via $IP_LANRTR_LAN" || it_fail "gw kernel lacks 10.50.2.0/24 after the restart"

for n in gw-zebra gw-bgpd lanrtr-zebra lanrtr-bgpd fpm_sink; do it_alive "$n" || it_fail "$n died"; done
frr_stop_all
it_pass
