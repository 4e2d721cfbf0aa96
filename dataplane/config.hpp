// The object model shared by the declarative config file and (later) the runtime API.
// Plain values only: parsing lives in control-shim/, table building in dataplane/.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sagd {

using ipv4_addr = uint32_t; // host byte order everywhere in the control path
using mac_addr = std::array<uint8_t, 6>;
using ipv6_addr = std::array<uint8_t, 16>; // network byte order

struct ipv4_prefix {
    ipv4_addr addr = 0; // network address, host bits zero
    uint8_t len = 0;
};

struct ipv6_prefix {
    ipv6_addr addr{}; // network address, host bits zero
    uint8_t len = 0;
};

enum class port_role : uint8_t { lan, wan };

struct port_config {
    std::string name; // e.g. "lan0"
    port_role role = port_role::lan;
    std::string device;      // DPDK device: PCI address or vdev args ("net_af_packet0,iface=x")
    ipv4_addr address = 0;   // the gateway's own address on this port
    uint8_t prefix_len = 24; // connected subnet
    std::optional<ipv4_addr> gateway; // WAN default gateway (next hop toward edge nodes)
    uint16_t mtu = 1500;
    // IPv6 (LAN ports): a global/ULA address and its on-link prefix (config `address6`). The
    // EUI-64 link-local address is derived from the port's MAC at start.
    std::optional<ipv6_addr> address6;
    uint8_t prefix6_len = 64;
};

enum class aead_cipher : uint8_t { aes_gcm_128, aes_gcm_256 };

// Key material is RFC 4106 keymat: AES key followed by the 4-byte salt (20 or 36 bytes).
// The holder wipes it (see secure_bytes); it is never printed or logged.
struct sa_config {
    uint32_t spi = 0;
    aead_cipher cipher = aead_cipher::aes_gcm_128;
    std::vector<uint8_t> keymat;
    ~sa_config();
    sa_config() = default;
    sa_config(const sa_config&) = default;
    sa_config(sa_config&&) = default;
    sa_config& operator=(const sa_config&) = default;
    sa_config& operator=(sa_config&&) = default;
};

enum class tunnel_encap : uint8_t { esp, esp_udp };

// BFD (RFC 5880 asynchronous mode) carried inside the tunnel: single-hop framing (RFC 5881:
// UDP 3784, TTL 255) between two inner addresses, run by the tunnel's owner worker.
struct tunnel_bfd_config {
    ipv4_addr local = 0;                  // our inner address (source of our control packets)
    ipv4_addr remote = 0;                 // the far end's inner address (e.g. FRR bfdd)
    uint32_t desired_min_tx_us = 300'000; // 50 ms .. 60 s
    uint32_t required_min_rx_us = 300'000;
    uint8_t detect_mult = 3; // 1..255
    bool operator==(const tunnel_bfd_config&) const = default;
};

// ICMP echo health check through the tunnel (toward a host behind the far end), and the SLA
// figures it yields (loss, latency, jitter over the last 100 probes). `failures` probes in a
// row that time out or exceed the RTT threshold take the tunnel out of service; as many good
// ones in a row bring it back.
// An SLA class: a tunnel whose health-check figures exceed any limit is "browned out": groups
// prefer members that meet their class (recovery when every figure is at or below 80% of its
// limit). 0 = that figure is not checked.
struct sla_limits {
    uint32_t max_loss_percent = 0;
    uint32_t max_latency_ms = 0;
    uint32_t max_jitter_ms = 0;
    bool operator==(const sla_limits&) const = default;
};

struct tunnel_check_config {
    ipv4_addr target = 0;          // inner destination that answers echo requests
    ipv4_addr source = 0;          // inner source: must route back into this tunnel
    uint32_t interval_ms = 1000;   // 100..60000
    uint32_t timeout_ms = 1000;    // 10..60000
    uint32_t failures = 3;         // 1..100
    uint32_t rtt_threshold_ms = 0; // 0: off; else a slower reply counts as a failure
    uint32_t window = 100;         // SLA figures over the last N probes (10..256)
    std::optional<sla_limits> sla; // brown-out steering
    bool operator==(const tunnel_check_config&) const = default;
};

struct tunnel_config {
    std::string name;
    std::string port;               // WAN port name
    std::optional<ipv4_addr> local; // outer source; default: the WAN port's address
    ipv4_addr peer = 0;             // CCN edge node's address (outer destination)
    tunnel_encap encap = tunnel_encap::esp;
    uint16_t udp_src_port = 4500; // RFC 3948 NAT traversal ports
    uint16_t udp_dst_port = 4500;
    uint32_t replay_window = 1024; // 0 disables anti-replay; else 64..4096
    bool esn = false;
    sa_config outbound_sa;
    std::vector<sa_config> inbound_sas;   // one or two (two during rekey)
    std::optional<tunnel_bfd_config> bfd; // liveness inside the tunnel; none: up while it exists
    std::optional<tunnel_check_config> health_check;
};

// A tunnel group: a route's next hop that resolves to one of its member tunnels. The members
// with the highest priority that are up carry the traffic (master/backup); equal-priority
// members share it by weight, flow-hashed so one flow stays on one tunnel.
struct group_member_config {
    std::string tunnel;
    uint8_t priority = 100; // higher wins (VRRP style)
    uint16_t weight = 1;    // 1..1000, among members of equal priority
};

struct group_config {
    std::string name;
    std::vector<group_member_config> members; // 1..16
    // Failback dampening: a member that recovers carries traffic again only after it has been
    // up this long without a break (unless no other member is up). 0..3600000.
    uint32_t hold_down_ms = 3000;
};

enum class route_via : uint8_t { tunnel, lan_gateway, group };

struct route_config {
    ipv4_prefix prefix;
    route_via via = route_via::tunnel;
    std::string tunnel;    // via == tunnel
    ipv4_addr gateway = 0; // via == lan_gateway: a LAN router on a connected subnet
    std::string group;     // via == group
    uint8_t distance = 1;  // administrative distance: static 1, learned 20 by default
};

// A static IPv6 route: the same next hop kinds, with an IPv6 LAN router (on a LAN port's
// IPv6 prefix) for via == lan_gateway.
struct route6_config {
    ipv6_prefix prefix;
    route_via via = route_via::tunnel;
    std::string tunnel;
    ipv6_addr gateway{};
    std::string group;
    uint8_t distance = 1;
};

struct neighbour_config { // static neighbour (for peers that do not answer ARP)
    std::string port;
    ipv4_addr address = 0;
    mac_addr mac{};
};

// The runtime API (control-shim/API.md).
struct api_config {
    std::string socket = "/run/sagd/sagd.sock"; // unix socket, mode 0600; "" disables
    std::string tcp_address;                    // loopback only; "" disables TCP
    uint16_t tcp_port = 0;
    std::string token_file; // bearer token for TCP (required with TCP)
    std::string persist;    // running config written here after every change; "" disables
};

// The FPM server for FRR zebra's dplane_fpm_nl.
struct fpm_config {
    bool enabled = false;
    ipv4_addr address = 0x7f000001; // 127.0.0.1
    uint16_t port = 2620;
    uint32_t grace_seconds = 30; // learned routes kept this long after the session is lost
};

struct limits_config {
    uint32_t ipv4_routes = 65536; // sizes both FIB copies (about 70 MB each at 65536)
    uint32_t ipv6_routes = 16384; // sizes both IPv6 FIB copies (about 70 MB each)
    uint32_t tunnels = 4096;
};

struct config {
    std::vector<std::string> eal_args; // extra EAL arguments (command line ones come first)
    uint16_t workers = 1;
    api_config api;
    fpm_config fpm;
    limits_config limits;
    std::vector<port_config> ports;
    std::vector<tunnel_config> tunnels;
    std::vector<group_config> groups;
    std::vector<route_config> routes;
    std::vector<route6_config> routes6; // `routes:` entries with an IPv6 prefix
    std::vector<neighbour_config> neighbours;
};

} // namespace sagd
