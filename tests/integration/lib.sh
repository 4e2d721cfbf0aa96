# shellcheck shell=bash
# Test library for sagd integration tests (source it; bash only, run as root).
#
#   . "$(dirname "$0")/lib.sh"
#   it_init my_test              # traps, work dir $IT_DIR, fresh namespaces (netns_up)
#   it_start_secgw               # DPDK ipsec-secgw in the edge namespace (waits until polling)
#   it_start_dpdk sagd "$NS_GW" "ready-regex" 20 build/control-shim/sagd -c cfg.yaml $(it_eal sagd)
#   it_ping "$NS_BRANCH" 10.2.0.2
#   it_tcp_transfer "$NS_BRANCH" "$NS_CLOUD" 10.2.0.2 300000
#   it_pass                      # or it_fail "why"; cleanup always runs (EXIT/INT/TERM trap)
#
# Every wait has a timeout; the whole test is bounded by IT_TEST_TIMEOUT (default 110 s):
# a watchdog fails the test and cleans up if it is exceeded.
# Exit codes: 0 pass, 1 fail, 77 skip (meson's skip code).

IT_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IT_REPO="$(cd "$IT_LIB_DIR/../.." && pwd)"
# shellcheck source=../../scripts/netns.sh
. "$IT_REPO/scripts/netns.sh"

IT_PY=/usr/bin/python3          # Debian's python (has scapy); NOT the pyenv python3 on PATH
IT_BUILD="${SAGD_BUILD:-$IT_REPO/build}"
IT_NAME=""
IT_DIR=""
IT_KEEP_LOGS="${IT_KEEP_LOGS:-0}"
declare -gA IT_PIDS=()           # name -> pid (the `ip netns exec` wrapper, own process group)
declare -gA IT_LOGS=()           # name -> log file
IT_WATCHDOG=""
IT_RESULT=""
declare -ga IT_CLEANUP_HOOKS=()  # commands the cleanup runs first, last registered first

# it_on_cleanup CMD: run CMD (a function name, no arguments) at cleanup, before the processes
# started with it_start are stopped and the namespaces deleted (e.g. frr_stop_all).
it_on_cleanup() { IT_CLEANUP_HOOKS=("$1" "${IT_CLEANUP_HOOKS[@]}"); }

it_log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${IT_NAME:-it}" "$*" >&2; }

it_skip() { it_log "SKIP: $*"; IT_RESULT=skip; exit 77; }
it_fail() {
    it_log "FAIL: $*"
    IT_RESULT=fail
    local n
    for n in "${!IT_LOGS[@]}"; do
        [ -s "${IT_LOGS[$n]}" ] || continue
        it_log "---- last lines of $n log (${IT_LOGS[$n]})"
        tail -n 25 "${IT_LOGS[$n]}" >&2
    done
    exit 1
}
it_pass() { IT_RESULT=pass; it_log "PASS"; exit 0; }

# it_init NAME: root check, traps, private work dir, fresh topology.
it_init() {
    IT_NAME="$1"
    [ "$(id -u)" = 0 ] || it_skip "needs root (network namespaces)"
    command -v ip >/dev/null || it_skip "iproute2 missing"
    [ -x "$IT_PY" ] && "$IT_PY" -c 'import scapy' 2>/dev/null || it_skip "$IT_PY lacks scapy (apt-get install python3-scapy)"
    IT_DIR="$(mktemp -d "/tmp/sagd-it-$IT_NAME.XXXXXX")"
    trap 'it__cleanup' EXIT
    trap 'it_log "interrupted"; exit 130' INT TERM HUP
    it__watchdog "${IT_TEST_TIMEOUT:-110}"
    netns_up
    it_log "topology up, logs in $IT_DIR"
}

it__watchdog() {
    local secs=$1 me=$$
    # own process group so cleanup can kill the sleep too (no stray processes left behind)
    setsid bash -c "sleep $secs; echo '[watchdog] $IT_NAME exceeded ${secs}s' >&2; kill -TERM $me" </dev/null &
    IT_WATCHDOG=$!
}

it__cleanup() {
    local rc=$? n
    trap - EXIT INT TERM HUP
    for n in "${IT_CLEANUP_HOOKS[@]}"; do "$n" >/dev/null 2>&1 || true; done
    for n in "${!IT_PIDS[@]}"; do it_stop "$n" 3 >/dev/null 2>&1 || true; done
    netns_down
    rm -rf /var/run/dpdk/sagd-it-secgw /var/run/dpdk/sagd-it-sagd   # EAL runtime dirs of our processes
    [ -n "$IT_WATCHDOG" ] && { kill -- "-$IT_WATCHDOG" 2>/dev/null || kill "$IT_WATCHDOG" 2>/dev/null; }
    if [ -n "$IT_DIR" ] && [ -d "$IT_DIR" ]; then
        if { [ "$rc" = 0 ] || [ "$rc" = 77 ]; } && [ "$IT_KEEP_LOGS" != 1 ]; then rm -rf "$IT_DIR"; else it_log "logs kept in $IT_DIR"; fi
    fi
    exit "$rc"
}

# it_wait TIMEOUT_S DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds; 1 on timeout.
it_wait() {
    local t=$1 what=$2; shift 2
    local end=$(( $(date +%s%N) + t * 1000000000 ))
    while :; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if [ "$(date +%s%N)" -ge "$end" ]; then it_log "timeout (${t}s) waiting for: $what"; return 1; fi
        sleep 0.2
    done
}

# it_start NAME NS CMD...: run CMD in namespace NS in the background (own process group),
# stdout+stderr to $IT_DIR/NAME.log. NS "-" = root namespace.
it_start() {
    local name=$1 ns=$2; shift 2
    local log="$IT_DIR/$name.log"
    if [ "$ns" = - ]; then
        setsid "$@" >"$log" 2>&1 </dev/null &
    else
        setsid ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
    fi
    IT_PIDS[$name]=$!
    IT_LOGS[$name]=$log
    it_log "started $name (pid $!) in ${ns}: $*"
}

# it_alive NAME: running (a dead child stays a zombie until reaped, so kill -0 is not enough)
it_alive() {
    local p=${IT_PIDS[$1]:-} st
    [ -n "$p" ] && [ -r "/proc/$p/stat" ] || return 1
    st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# it_wait_log NAME REGEX TIMEOUT: wait until NAME's log matches REGEX; fail early if it died.
it_wait_log() {
    local name=$1 re=$2 t=$3
    local end=$(( $(date +%s%N) + t * 1000000000 ))
    while :; do
        grep -Eq -- "$re" "${IT_LOGS[$name]}" 2>/dev/null && return 0
        it_alive "$name" || { it_log "$name exited before /$re/"; return 1; }
        [ "$(date +%s%N)" -ge "$end" ] && { it_log "timeout (${t}s) waiting for /$re/ in $name log"; return 1; }
        sleep 0.2
    done
}

# it_stop NAME [GRACE_S=5]: SIGTERM the process group, SIGKILL after GRACE_S.
it_stop() {
    local name=$1 grace=${2:-5} pid=${IT_PIDS[$1]:-} i
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
        for i in $(seq 1 $(( grace * 10 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            it_log "$name did not exit in ${grace}s: SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
        fi
    fi
    wait "$pid" 2>/dev/null
    unset "IT_PIDS[$name]"
    return 0
}

# it_eal PREFIX [LCORE]: EAL args for a test DPDK process (no hugepages, own file prefix).
it_eal() { echo "-l ${2:-1} --no-huge -m 512 --file-prefix sagd-it-$1 --no-pci --no-telemetry"; }

# it_start_dpdk NAME NS READY_REGEX TIMEOUT CMD...: start a DPDK process and wait until its
# log matches READY_REGEX (e.g. sagd's "ready" line); fail the test if it does not.
it_start_dpdk() {
    local name=$1 ns=$2 re=$3 t=$4; shift 4
    it_start "$name" "$ns" "$@"
    it_wait_log "$name" "$re" "$t" || it_fail "$name did not become ready"
}

# it_secgw_bin: build (once) and print the ipsec-secgw binary.
it_secgw_bin() { "$IT_REPO/scripts/build-secgw.sh" "$IT_BUILD/secgw" 2>"$IT_DIR/secgw-build.err" || it_fail "secgw build failed: $(cat "$IT_DIR/secgw-build.err")"; }

# it_start_secgw [CFG] [extra secgw app args...]: ipsec-secgw as the CCN edge in $NS_EDGE,
# port 0 = edge-wan (ESP side, "unprotected" -u 0x1), port 1 = edge-cloud. lcore 1.
it_start_secgw() {
    local cfg=${1:-$IT_LIB_DIR/secgw_edge.cfg}; shift || true
    local bin; bin=$(it_secgw_bin)
    # shellcheck disable=SC2046
    it_start_dpdk secgw "$NS_EDGE" "entering main loop" 30 "$bin" $(it_eal secgw 1) \
        --vdev "net_af_packet0,iface=$IF_EDGE_WAN" --vdev "net_af_packet1,iface=$IF_EDGE_CLOUD" \
        --vdev crypto_aesni_mb -- -p 0x3 -P -u 0x1 --config "(0,0,1),(1,0,1)" -f "$cfg" \
        -l -w 1024 "$@"
    sleep 0.5   # "entering main loop" is printed just before the first rx poll
}

# it_start_esp_edge NAME NS [esp_edge.py args...]: scapy ESP peer (waits for its ready line).
it_start_esp_edge() {
    local name=$1 ns=$2; shift 2
    it_start "$name" "$ns" "$IT_PY" -u "$IT_LIB_DIR/esp_edge.py" --stats-file "$IT_DIR/$name.stats" "$@"
    it_wait_log "$name" "esp_edge: ready" 15 || it_fail "$name did not start"
}

# it_esp_edge_stats NAME: ask a running esp_edge for its counters, print the JSON line.
# (`setsid` and `ip netns exec` both exec in place in a non-interactive shell, so the pid we
# recorded is the python process itself.)
it_esp_edge_stats() {
    local f="$IT_DIR/$1.stats"
    rm -f "$f"
    it_alive "$1" || { it_log "$1 not running"; return 1; }
    kill -USR1 "${IT_PIDS[$1]}"
    it_wait 5 "$1 stats" test -s "$f" && cat "$f"
}

# it_stat JSON KEY: one integer counter from an esp_edge stats line.
it_stat() { "$IT_PY" -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], 0))' "$1" "$2"; }

# it_ping NS DST [COUNT=3] [TIMEOUT_S=10]: all-or-nothing is too strict for the first packet
# (ARP), so require COUNT replies out of COUNT+2 probes.
it_ping() {
    local ns=$1 dst=$2 n=${3:-3} t=${4:-10} out got
    out=$(timeout "$t" ip netns exec "$ns" ping -n -c $(( n + 2 )) -i 0.2 -W 2 "$dst" 2>&1)
    got=$(sed -n 's/.* \([0-9]\+\) received.*/\1/p' <<<"$out")
    if [ "${got:-0}" -ge "$n" ]; then it_log "ping $ns -> $dst: $got/$(( n + 2 )) ok"; return 0; fi
    it_log "ping $ns -> $dst failed: ${out##*---}"
    return 1
}

# it_tcp_transfer SRC_NS DST_NS DST_IP BYTES [PORT=5001] [TIMEOUT_S=60]: send BYTES random bytes
# from SRC_NS to an echo server in DST_NS and back; compare sha256 of sent and echoed data.
it_tcp_transfer() {
    local src=$1 dst=$2 ip=$3 bytes=$4 port=${5:-5001} t=${6:-60}
    local in="$IT_DIR/tcp-$port.in" out="$IT_DIR/tcp-$port.out" srv="echo-$port" a b
    head -c "$bytes" /dev/urandom >"$in"
    it_start "$srv" "$dst" timeout "$t" socat -T "$t" TCP-LISTEN:"$port",reuseaddr EXEC:cat
    it_wait 5 "echo server :$port" ip netns exec "$dst" sh -c "ss -ltn | grep -q ':$port '" || { it_stop "$srv"; return 1; }
    local t0; t0=$(date +%s%N)
    timeout "$t" ip netns exec "$src" socat -T "$t" -t "$t" - TCP:"$ip":"$port",connect-timeout=5 <"$in" >"$out" 2>"$IT_DIR/tcp-$port.err"
    local rc=$? ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    it_stop "$srv" 2
    a=$(sha256sum <"$in" | cut -d' ' -f1); b=$(sha256sum <"$out" | cut -d' ' -f1)
    if [ "$rc" = 0 ] && [ "$a" = "$b" ]; then
        it_log "tcp $src -> $ip:$port $bytes bytes echoed intact in ${ms} ms"
        return 0
    fi
    it_log "tcp transfer failed: rc=$rc sent=$bytes got=$(stat -c %s "$out") ($(cat "$IT_DIR/tcp-$port.err"))"
    return 1
}

# it_sagd_bin: the sagd binary ($SAGD_BIN or $IT_BUILD/control-shim/sagd); skip if not built.
it_sagd_bin() {
    local b="${SAGD_BIN:-$IT_BUILD/control-shim/sagd}"
    [ -x "$b" ] || it_skip "sagd not built ($b)"
    echo "$b"
}

# it_start_sagd CFG [extra sagd args...]: sagd in $NS_GW on net_af_packet (devices come from
# CFG). Its worker polls lcore 0 and its mostly idle control thread sits on lcore 1, so a peer
# busy-polling lcore 1 (secgw) does not starve it. Telemetry stays on (file prefix sagd-it-sagd)
# so tests can read its counters with it_sagd_stat.
# Extra sagd options may follow CFG; "-- EAL args" replaces the default EAL arguments (keep
# --file-prefix sagd-it-sagd so telemetry and cleanup find it).
it_start_sagd() {
    local cfg=$1; shift
    local bin; bin=$(it_sagd_bin)
    local eal=(-l 0-1 --main-lcore 1 --no-huge -m 512 --file-prefix sagd-it-sagd --no-pci) opts=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then shift; eal=("$@"); break; fi
        opts+=("$1"); shift
    done
    it_start sagd "$NS_GW" "$bin" -c "$cfg" "${opts[@]}" -- "${eal[@]}"
    it_wait_log sagd "${SAGD_READY_REGEX:-sagd: running}" 30 || it_fail "sagd did not become ready"
}

# it_sagd_telemetry CMD: one DPDK telemetry query to the running sagd (JSON on stdout).
it_sagd_telemetry() {
    echo "$1" | ip netns exec "$NS_GW" /usr/bin/python3 /usr/bin/dpdk-telemetry.py -f sagd-it-sagd 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; t=sys.stdin.read(); print(json.dumps(json.loads(t[t.index("{"):])))'
}

# it_sagd_stat ENDPOINT KEY: one number from a sagd telemetry endpoint (/sagd/stats, /sagd/drops).
it_sagd_stat() {
    it_sagd_telemetry "$1" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(list(d.values())[0]['"'"'"$2"'"'"'])'
}

# it_wait_ping NS DST TIMEOUT_S: wait until one ping gets through (tunnel up, ARP resolved).
it_wait_ping() { it_wait "$3" "ping $1 -> $2" ip netns exec "$1" ping -n -c 1 -W 1 "$2"; }
