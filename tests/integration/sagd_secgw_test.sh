#!/usr/bin/env bash
# sagd <-> DPDK ipsec-secgw (plain ESP, AES-128-GCM): ping both ways and a 300 KB TCP echo
# branch <-> cloud; secgw (independent implementation) decrypts sagd's ESP and vice versa.
# Skips (77) until build/control-shim/sagd exists.
set -u
. "$(dirname "$0")/lib.sh"
it_sagd_bin >/dev/null   # skip (77) before building any topology
it_init sagd_secgw
it_start_secgw
it_start_sagd "$IT_LIB_DIR/sagd_secgw.yaml"
it_wait_ping "$NS_BRANCH" "$IP_CLOUD" 20 || it_fail "no traffic through sagd -> secgw"
it_ping "$NS_BRANCH" "$IP_CLOUD" 5 || it_fail "ping branch -> cloud"
it_ping "$NS_CLOUD" "$IP_BRANCH" 5 || it_fail "ping cloud -> branch"
it_tcp_transfer "$NS_BRANCH" "$NS_CLOUD" "$IP_CLOUD" 300000 || it_fail "TCP 300 KB"
it_alive sagd || it_fail "sagd died"
it_pass
