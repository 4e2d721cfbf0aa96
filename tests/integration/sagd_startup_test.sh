#!/usr/bin/env bash
# sagd's start-up and shutdown as an operator meets them: a bad config, a missing device and too
# little memory each stop sagd with exit code 1 and a message naming the cause (and nothing is
# left running); a good config starts, and SIGTERM stops it cleanly with exit code 0.
set -u
. "$(dirname "$0")/lib.sh"
bin=$(it_sagd_bin)
it_init sagd_startup
eal=(-- -l 0-1 --main-lcore 1 --no-huge -m 512 --file-prefix sagd-it-sagd --no-pci)

# expect_refusal NAME REGEX sagd-args...: sagd must exit 1 and print REGEX on stderr.
expect_refusal() {
    local name=$1 re=$2; shift 2
    local out rc
    out=$(ip netns exec "$NS_GW" timeout 30 "$bin" "$@" 2>&1); rc=$?
    [ "$rc" = 1 ] || it_fail "$name: exit code $rc, expected 1; output: $out"
    grep -qE "$re" <<<"$out" || it_fail "$name: message does not match '$re': $out"
    it_log "$name: refused: $(grep -E "$re" <<<"$out" | head -1)"
}

bad="$IT_DIR/bad.yaml"
sed 's/10.2.0.0\/16/10.2.0.1\/16/' "$IT_LIB_DIR/sagd_secgw.yaml" >"$bad"
expect_refusal "bad route prefix" "routes.*10\.2\.0\.1/16.*host bits" -c "$bad" "${eal[@]}"

expect_refusal "check mode" "host bits" -c "$bad" --check
ip netns exec "$NS_GW" "$bin" -c "$IT_LIB_DIR/sagd_secgw.yaml" --check | grep -q ": ok" \
    || it_fail "--check refuses a good config"

missing="$IT_DIR/missing.yaml"
sed 's/iface=sagd-wan/iface=no-such-if0/' "$IT_LIB_DIR/sagd_secgw.yaml" >"$missing"
expect_refusal "missing device" "port 'wan0': device '.*no-such-if0' not found" -c "$missing" "${eal[@]}"

expect_refusal "too little memory" "mbuf pool|memory" -c "$IT_LIB_DIR/sagd_secgw.yaml" \
    -- -l 0-1 --main-lcore 1 --no-huge -m 24 --file-prefix sagd-it-sagd --no-pci

expect_refusal "too few lcores" "1 workers need 2 lcores" -c "$IT_LIB_DIR/sagd_secgw.yaml" \
    -- -l 0 --no-huge -m 512 --file-prefix sagd-it-sagd --no-pci

pgrep -f "sagd-it-sagd" >/dev/null && it_fail "a refused sagd is still running"

it_start_sagd "$IT_LIB_DIR/sagd_secgw.yaml"
it_sagd_telemetry /sagd/stats >/dev/null || it_fail "no telemetry from a running sagd"
pid=$(pgrep -f -- "--file-prefix sagd-it-sagd" | head -1)
[ -n "$pid" ] || it_fail "cannot find the sagd process"
kill -TERM "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && it_fail "sagd did not stop within 5 s of SIGTERM"
grep -q "sagd: stopped" "${IT_LOGS[sagd]}" || it_fail "sagd did not log a clean stop"
it_log "SIGTERM: clean stop"
it_pass
