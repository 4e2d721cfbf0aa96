#!/usr/bin/env bash
# Idempotent installer of everything sagd needs to build, test and benchmark (Debian 12, root).
# Runs `apt-get update` + install only if a package is missing; < 1 s when all are present.
#   scripts/setup.sh            install what is missing
#   scripts/setup.sh --check    only report missing packages (exit 1 if any)
set -euo pipefail

PKGS=(
    build-essential meson ninja-build pkg-config
    dpdk dpdk-dev libdpdk-dev dpdk-doc libipsec-mb-dev libhyperscan-dev libssl-dev
    libyaml-cpp-dev libbenchmark-dev libgtest-dev libgmock-dev
    python3-scapy python3-cryptography python3-yaml python3-pyelftools python3-matplotlib linux-perf
    tshark iproute2 iputils-ping frr curl nftables tcpdump socat netcat-openbsd ethtool
    libpcap-dev libnuma-dev
)

# one dpkg-query for all (unknown packages are simply absent from its output)
installed=" $(dpkg-query -W -f='${Package}:${Status}\n' "${PKGS[@]}" 2>/dev/null \
    | sed -n 's/^\([^:]*\):install ok installed$/\1/p' | tr '\n' ' ') "
missing=()
for p in "${PKGS[@]}"; do
    [[ "$installed" == *" $p "* ]] || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: all ${#PKGS[@]} packages present"
    exit 0
fi
echo "setup: missing: ${missing[*]}"
[ "${1:-}" = --check ] && exit 1
[ "$(id -u)" = 0 ] || { echo "setup: run as root" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
# tshark's wireshark-common asks whether non-root users may capture: no
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -q
apt-get install -y -q \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
echo "setup: installed ${missing[*]}"
