# shellcheck shell=bash
# FRR harness for the learned-routes tests (source it after lib.sh; bash only, root).
#
#   . "$(dirname "$0")/lib.sh"; . "$IT_LIB_DIR/frr/frr_lib.sh"
#   frr_check                    # skip (77) when FRR is not installed (call before it_init)
#   it_init my_test; frr_topology_up   # base topology + LAN router + on-prem host (netns_lanrtr_up)
#   frr_start_lanrtr             # zebra + bgpd of the branch LAN router (AS 65001)
#   frr_start_gw 2620            # zebra -M dplane_fpm_nl (-> 127.0.0.1:2620) + bgpd (AS 65000)
#   frr_wait_bgp_established 30
#   frr_announce 10.50.1.0/24 fd50:1::/64; frr_withdraw 10.50.1.0/24
#   frr_kill_zebra; frr_restart_zebra
#   (frr_stop_all runs from lib.sh's cleanup; call it yourself to stop earlier)
#
# Topology and addresses: tests/integration/README.md ("FRR: learned routes") and topology.env.
# Every FRR instance has its own directory $FRR_DIR/<inst> (rendered configs, pid files, zserv
# socket, vty sockets); nothing in /etc/frr or /var/run/frr is used or modified. The daemons
# run in the foreground under `ip netns exec` through it_start (logs: $IT_DIR/<inst>-<daemon>.log,
# `--log stdout`), with the vty TCP port off (-P 0). vtysh talks to an instance with
# `vtysh --vty_socket $FRR_DIR/<inst>` (frr_vtysh INST CMD...).
#
# FRR 8.4 quirks handled here:
# - The daemons drop privileges to user frr (-u root is refused: "user(root) is not part of vty
#   group specified(frrvty)"), so $FRR_DIR is a directory of its own owned by frr (the test
#   work dir is 0700 root).
# - Connected routes go to FPM too (rtm_protocol 2, no gateway): 10.1.0.0/24, 10.9.0.0/30, ...
# - bgpd does not replay its selected routes to a restarted zebra (FRR issue #22362, fixed only
#   in FRR 10.x): frr_restart_zebra restarts bgpd after zebra, as watchfrr does when zebra dies.
# - IPv6 over the IPv4 session: the router sets the global next hop, but its updates also carry
#   its link-local address on the control link, which bgpd prefers; the gateway's inbound
#   route-map sets "ipv6 next-hop prefer-global".

FRR_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! declare -F it_init >/dev/null; then
    # shellcheck source=../lib.sh
    . "$FRR_LIB_DIR/../lib.sh"
fi

FRR_SBIN="${FRR_SBIN:-/usr/lib/frr}"
FRR_VTYSH="${FRR_VTYSH:-vtysh}"
FRR_USER="${FRR_USER:-frr}"
FRR_AS_GW=65000
FRR_AS_LANRTR=65001
FRR_DIR=""          # created by frr__init
FRR_FPM_PORT=2620   # set by frr_start_gw
declare -gA FRR_NS=([gw]="$NS_GW" [lanrtr]="$NS_LANRTR")

# frr_check: skip (77) unless the FRR binaries and the FPM module are installed.
frr_check() {
    local b
    for b in "$FRR_SBIN/zebra" "$FRR_SBIN/bgpd"; do
        [ -x "$b" ] || it_skip "FRR not installed ($b missing; scripts/setup.sh installs frr)"
    done
    command -v "$FRR_VTYSH" >/dev/null || it_skip "vtysh missing (package frr)"
    id "$FRR_USER" >/dev/null 2>&1 || it_skip "user $FRR_USER missing (package frr)"
    compgen -G "/usr/lib/*/frr/modules/dplane_fpm_nl.so" >/dev/null ||
        compgen -G "/usr/lib/frr/modules/dplane_fpm_nl.so" >/dev/null ||
        it_skip "FRR module dplane_fpm_nl not found"
}

frr__init() {
    [ -n "$FRR_DIR" ] && [ -d "$FRR_DIR" ] && return 0
    FRR_DIR="$(mktemp -d "/tmp/sagd-frr-${IT_NAME:-x}.XXXXXX")"
    mkdir -p "$FRR_DIR/gw" "$FRR_DIR/lanrtr"
    chown -R "$FRR_USER:$FRR_USER" "$FRR_DIR"
    chmod 0750 "$FRR_DIR" "$FRR_DIR/gw" "$FRR_DIR/lanrtr"
    it_on_cleanup frr_stop_all
}

# frr_topology_up: the LAN router and on-prem host namespaces on top of it_init's topology.
frr_topology_up() { netns_lanrtr_up || it_fail "netns_lanrtr_up failed"; }

# frr_ipv6_up: IPv6 on the data path of that topology (only the FRR test needs it; the other
# tests keep a silent IPv6-free LAN): the LAN router on the branch LAN (fd00:1::fe/64, default
# via sagd's fd00:1::1) and toward the on-prem host (fd50:1::fe/64), the on-prem host
# (fd50:1::1/64), and the cloud host (fd02::2/64, fd50::/16 via the edge fd02::1, a static
# neighbour: secgw does no ND). No DAD anywhere (nodad): the addresses are usable at once.
frr_ipv6_up() {
    local d
    for d in "$NS_LANRTR:$IF_LANRTR_LAN" "$NS_LANRTR:$IF_LANRTR_ONPREM" "$NS_ONPREM:$IF_ONPREM" "$NS_CLOUD:$IF_CLOUD"; do
        ip netns exec "${d%%:*}" sysctl -qw "net.ipv6.conf.${d#*:}.disable_ipv6=0" || it_fail "enable IPv6 on $d"
    done
    ip netns exec "$NS_LANRTR" sysctl -qw net.ipv6.conf.all.forwarding=1
    ip -n "$NS_LANRTR" -6 addr add "$IP6_LANRTR_LAN/64" dev "$IF_LANRTR_LAN" nodad
    ip -n "$NS_LANRTR" -6 addr add "$IP6_LANRTR_ONPREM/64" dev "$IF_LANRTR_ONPREM" nodad
    ip -n "$NS_LANRTR" -6 route add default via "$IP6_GW_LAN" dev "$IF_LANRTR_LAN"
    ip -n "$NS_ONPREM" -6 addr add "$IP6_ONPREM/64" dev "$IF_ONPREM" nodad
    ip -n "$NS_ONPREM" -6 route add default via "$IP6_LANRTR_ONPREM" dev "$IF_ONPREM"
    ip -n "$NS_CLOUD" -6 addr add "$IP6_CLOUD/64" dev "$IF_CLOUD" nodad
    ip -n "$NS_CLOUD" -6 route add fd50::/16 via "$IP6_EDGE_CLOUD" dev "$IF_CLOUD"
    ip -n "$NS_CLOUD" -6 neigh replace "$IP6_EDGE_CLOUD" lladdr "$MAC_EDGE_CLOUD" dev "$IF_CLOUD" nud permanent
}

# frr__render TEMPLATE OUT: fill @VAR@ placeholders from topology.env and this file.
frr__render() {
    sed -e "s|@FPM_PORT@|$FRR_FPM_PORT|g; s|@NS_GW@|$NS_GW|g; s|@NS_LANRTR@|$NS_LANRTR|g" \
        -e "s|@IP_LANRTR_LAN@|$IP_LANRTR_LAN|g; s|@IP6_LANRTR_LAN@|$IP6_LANRTR_LAN|g; s|@IF_GW_LANK@|$IF_GW_LANK|g" \
        -e "s|@IP_GW_CTL@|$IP_GW_CTL|g; s|@IP_LANRTR_CTL@|$IP_LANRTR_CTL|g" \
        -e "s|@AS_GW@|$FRR_AS_GW|g; s|@AS_LANRTR@|$FRR_AS_LANRTR|g" "$1" >"$2"
    grep -q '@[A-Z0-9_]*@' "$2" && it_fail "unfilled placeholder in $2: $(grep -o '@[A-Z0-9_]*@' "$2" | head -1)"
    chown "$FRR_USER:$FRR_USER" "$2"
}

# frr_vtysh INST CMD...: run vtysh commands against instance INST (gw|lanrtr); each CMD one line.
frr_vtysh() {
    local inst=$1 a=(); shift
    local c; for c in "$@"; do a+=(-c "$c"); done
    timeout 10 "$FRR_VTYSH" --vty_socket "$FRR_DIR/$inst" "${a[@]}"
}

# frr__start INST DAEMON [extra daemon args...]: one daemon in the instance's namespace.
# A restarted daemon keeps its earlier logs as <name>.N.log.
frr__start() {
    local inst=$1 d=$2; shift 2
    local dir="$FRR_DIR/$inst" name="$inst-$d" n=1
    if [ -e "$IT_DIR/$name.log" ]; then
        while [ -e "$IT_DIR/$name.$n.log" ]; do n=$((n + 1)); done
        mv "$IT_DIR/$name.log" "$IT_DIR/$name.$n.log"
    fi
    rm -f "$dir/$d.pid" "$dir/$d.vty"
    it_start "$name" "${FRR_NS[$inst]}" "$FRR_SBIN/$d" -f "$dir/$d.conf" -i "$dir/$d.pid" \
        -z "$dir/zserv.api" --vty_socket "$dir" -P 0 --log stdout "$@"
    it_wait 15 "$name vty" timeout 5 "$FRR_VTYSH" --vty_socket "$dir" -d "$d" -c "show version" ||
        it_fail "$name did not come up (log: $IT_DIR/$name.log)"
    it_alive "$name" || it_fail "$name exited"
}

frr__start_instance() {
    local inst=$1; shift
    frr__init
    frr__render "$FRR_LIB_DIR/${inst}_zebra.conf.in" "$FRR_DIR/$inst/zebra.conf"
    frr__render "$FRR_LIB_DIR/${inst}_bgpd.conf.in" "$FRR_DIR/$inst/bgpd.conf"
    frr__start "$inst" zebra "$@"
    frr__start "$inst" bgpd
}

# frr_start_gw [FPM_PORT=2620]: zebra (-M dplane_fpm_nl, connects to 127.0.0.1:FPM_PORT in
# $NS_GW) and bgpd of the gateway.
frr_start_gw() {
    FRR_FPM_PORT=${1:-2620}
    frr__start_instance gw -M dplane_fpm_nl
}

# frr_start_lanrtr: zebra and bgpd of the branch LAN router.
frr_start_lanrtr() { frr__start_instance lanrtr; }

# frr_announce PREFIX...: the LAN router starts announcing PREFIX (IPv4 or IPv6) to the gateway,
# next hop 10.1.0.254 / fd00:1::fe. frr_withdraw PREFIX...: stops.
frr__network() {
    local no=$1 p af cmds=(); shift
    cmds=("configure terminal" "router bgp $FRR_AS_LANRTR")
    for p in "$@"; do
        af=ipv4; [[ "$p" == *:* ]] && af=ipv6
        cmds+=("address-family $af unicast" "${no}network $p" "exit-address-family")
    done
    cmds+=(end)
    frr_vtysh lanrtr "${cmds[@]}" >/dev/null || it_fail "vtysh lanrtr: ${no}network $*"
    if [ -n "$no" ]; then it_log "lanrtr: withdrew $*"; else it_log "lanrtr: announced $*"; fi
}
frr_announce() { frr__network "" "$@"; }
frr_withdraw() { frr__network "no " "$@"; }

# frr_bgp_state [INST=gw]: the session state (Established, Active, ...) as INST sees it.
frr_bgp_state() {
    local inst=${1:-gw} peer=$IP_LANRTR_CTL
    [ "$inst" = lanrtr ] && peer=$IP_GW_CTL
    frr_vtysh "$inst" "show bgp neighbors $peer json" 2>/dev/null |
        "$IT_PY" -c 'import json,sys; d=json.load(sys.stdin); print(next(iter(d.values())).get("bgpState","?"))' 2>/dev/null
}
frr__established() { [ "$(frr_bgp_state gw)" = Established ] && [ "$(frr_bgp_state lanrtr)" = Established ]; }

# frr_wait_bgp_established [TIMEOUT_S=30]: both ends see the session Established.
frr_wait_bgp_established() {
    it_wait "${1:-30}" "BGP session gw <-> lanrtr Established" frr__established
}

# frr_gw_has_route PREFIX: the gateway's zebra has PREFIX as a selected, installed BGP route.
frr_gw_has_route() {
    local af=ip; [[ "$1" == *:* ]] && af=ipv6
    frr_vtysh gw "show $af route $1 json" 2>/dev/null | "$IT_PY" -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(r.get("protocol") == "bgp" and r.get("selected") and r.get("installed")
                  for r in d.get(sys.argv[1], [])) else 1)' "$1"
}

frr__dead() {   # PID gone or a zombie (our child until reaped)
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -z "$st" ] || [ "$st" = Z ] || [ "$st" = X ]
}

# frr_kill_zebra: SIGKILL the gateway's zebra (a crash: no route cleanup, the FPM session drops;
# bgpd keeps running and keeps its session with the LAN router).
frr_kill_zebra() {
    local p=${IT_PIDS[gw-zebra]:-}
    [ -n "$p" ] || it_fail "gw zebra not running"
    # disown first: bash would report the killed job ("Killed  setsid ip netns exec ...") when
    # reaping it; it still reaps it (then /proc/PID is gone)
    disown "$p" 2>/dev/null
    kill -KILL "$p" 2>/dev/null
    it_wait 5 "gw zebra gone" frr__dead "$p" || it_fail "gw zebra survived SIGKILL"
    unset "IT_PIDS[gw-zebra]"
    it_log "killed gw zebra (pid $p, SIGKILL)"
}

# frr_restart_zebra [--zebra-only]: start the gateway's zebra again, then restart its bgpd the
# way watchfrr does after zebra died: FRR 8.4's bgpd would otherwise keep its routes without
# ever sending them to the new zebra (FRR issue #22362). --zebra-only shows that bug.
frr_restart_zebra() {
    [ -n "${IT_PIDS[gw-zebra]:-}" ] && it_alive gw-zebra && it_fail "gw zebra still running"
    if [ "${1:-}" != --zebra-only ]; then it_stop gw-bgpd 5; fi
    frr__start gw zebra -M dplane_fpm_nl
    if [ "${1:-}" != --zebra-only ]; then frr__start gw bgpd; fi
    it_log "restarted gw zebra${1:+ only}"
}

# frr_stop_all: stop every FRR daemon (bgpd first), remove $FRR_DIR. Idempotent; also the
# lib.sh cleanup hook.
frr_stop_all() {
    local n
    for n in gw-bgpd lanrtr-bgpd gw-zebra lanrtr-zebra; do
        [ -n "${IT_PIDS[$n]:-}" ] && it_stop "$n" 3
    done
    if [ -n "$FRR_DIR" ] && [ -d "$FRR_DIR" ]; then
        # keep the rendered configs with the logs when the test's logs are kept
        if [ -n "$IT_DIR" ] && [ -d "$IT_DIR" ]; then
            mkdir -p "$IT_DIR/frr"
            for n in "$FRR_DIR"/*/*.conf; do [ -f "$n" ] && cp "$n" "$IT_DIR/frr/$(basename "$(dirname "$n")")-$(basename "$n")"; done
        fi
        rm -rf "$FRR_DIR"
    fi
    FRR_DIR=""
    return 0
}
