// Per-worker counters, one writer each, summed on read. Every packet a worker receives ends in
// exactly one of: tx, punted (handed to the control thread's slow path), handed off to the
// worker that owns its SA, or one drop reason. So, summed over workers:
//   rx + injected + handoff_in == tx + punted + handoff_out + sum(drops)
// and once the hand-off rings are empty the hand-off terms cancel.
#pragma once

#include <array>
#include <cstdint>

#include <rte_common.h>

namespace sagd::dp {

// One list of drop reasons (name, help). The metrics and telemetry names come from here.
#define SAGD_DROP_REASONS(X)                                                                       \
    X(not_for_us, "destination MAC is neither ours nor broadcast")                                 \
    X(bad_l2, "truncated or unsupported Ethernet frame (VLAN, LLC)")                               \
    X(unknown_ethertype, "ethertype other than IPv4, IPv6 or ARP")                                 \
    X(ipv6_unsupported, "IPv6 packet on a port without an IPv6 address (address6)")                \
    X(bad_ipv6, "IPv6 header failed checks (version, payload length vs frame, jumbogram)")         \
    X(ipv6_multicast, "IPv6 multicast other than Neighbor Discovery, or a link-local destination") \
    X(ipv6_bad_source, "IPv6 source is multicast, unspecified or loopback")                        \
    X(hop_limit_exceeded, "IPv6 hop limit expired in transit (ICMPv6 time exceeded when allowed)") \
    X(bad_ipv4, "IPv4 header failed RFC 1812 checks (length, version, checksum)")                  \
    X(ip_options, "IPv4 packet to the gateway with options")                                       \
    X(fragment_to_us, "IPv4 fragment addressed to the gateway")                                    \
    X(multicast, "IPv4 broadcast or multicast destination")                                        \
    X(local_unhandled, "packet for the gateway that no local service takes")                       \
    X(wan_not_tunnel, "plain IP from the WAN that is not for a tunnel (no Internet breakout)")     \
    X(ttl_exceeded, "TTL expired in transit (ICMP time exceeded sent when allowed)")               \
    X(no_route, "no route to the destination (ICMP unreachable sent when allowed)")                \
    X(group_down, "the route's group has no member up")                                            \
    X(mtu_exceeded, "packet larger than the egress MTU")                                           \
    X(esp_malformed, "ESP or ESP-in-UDP too short or with inconsistent lengths")                   \
    X(esp_bad_udp_length, "ESP-in-UDP with a UDP length that does not match the IP length")        \
    X(natt_keepalive, "RFC 3948 NAT-keepalive (consumed)")                                         \
    X(ike_on_natt_port, "IKE (non-ESP marker) on the NAT-T port: no IKE daemon attached")          \
    X(esp_unknown_spi, "ESP with an SPI that matches no inbound SA")                               \
    X(esp_wrong_peer, "ESP from an outer source that is not the SA's peer")                        \
    X(esp_replay, "ESP sequence number replayed or left of the window")                            \
    X(esp_icv_fail, "ESP integrity check (ICV) failed")                                            \
    X(esp_bad_padding, "ESP padding or pad length invalid after decryption")                       \
    X(esp_bad_next_header, "ESP next header is neither IPv4 nor IPv6")                             \
    X(esp_dummy, "ESP dummy packet (next header 59, RFC 4303 2.6)")                                \
    X(esp_bad_inner, "decrypted inner packet is not a valid IPv4 or IPv6 packet")                  \
    X(esp_seq_exhausted, "outbound SA sequence number exhausted: SA stopped, rekey needed")        \
    X(esp_encap_error, "ESP encapsulation failed (no room in the buffer, multi-segment)")          \
    X(crypto_error, "crypto engine reported an error")                                             \
    X(bfd_received, "BFD control packet taken by its tunnel's session (consumed, not lost)")       \
    X(bfd_malformed, "BFD control packet failing RFC 5880 6.8.6 checks, or a bad UDP header")      \
    X(bfd_bad_ttl, "BFD control packet with TTL other than 255 (RFC 5881 5)")                      \
    X(bfd_bad_discriminator, "BFD Your Discriminator matching no session (RFC 5880 6.8.6)")        \
    X(bfd_no_session, "BFD to the gateway from a source or tunnel with no BFD session")            \
    X(probe_received, "health-check echo reply taken by its tunnel's check (consumed, not lost)")  \
    X(punt_ring_full, "slow-path ring full")                                                       \
    X(handoff_ring_full, "hand-off ring to the SA's owner worker full")                            \
    X(tx_full, "transmit queue full")

enum class drop : uint8_t {
#define SAGD_X(name, help) name,
    SAGD_DROP_REASONS(SAGD_X)
#undef SAGD_X
        count_
};
inline constexpr unsigned n_drop_reasons = static_cast<unsigned>(drop::count_);

struct drop_info {
    const char* name;
    const char* help;
};
inline constexpr std::array<drop_info, n_drop_reasons> drop_infos{{
#define SAGD_X(name, help) {#name, help},
    SAGD_DROP_REASONS(SAGD_X)
#undef SAGD_X
}};

inline constexpr unsigned max_ports = 16;

struct port_counters {
    uint64_t rx_packets = 0;
    uint64_t rx_bytes = 0;
    uint64_t tx_packets = 0;
    uint64_t tx_bytes = 0;
};

// Written only by its worker; readers tolerate torn-free 64-bit loads (x86-64).
struct alignas(RTE_CACHE_LINE_SIZE) worker_counters {
    uint64_t rx = 0;
    uint64_t tx = 0;
    uint64_t punted = 0;
    uint64_t handoff_out = 0;
    uint64_t handoff_in = 0;
    uint64_t injected = 0; // packets the slow path handed this worker to send or route, and
                           // the worker's own BFD control packets
    uint64_t loops = 0;
    uint64_t busy_loops = 0;
    uint64_t busy_cycles = 0;
    uint64_t busy_packets = 0;
    std::array<uint64_t, n_drop_reasons> drops{};
    std::array<port_counters, max_ports> ports{};

    void count_drop(drop d, uint64_t n = 1) noexcept { drops[static_cast<unsigned>(d)] += n; }
    uint64_t total_drops() const noexcept {
        uint64_t s = 0;
        for (auto v : drops)
            s += v;
        return s;
    }
};

} // namespace sagd::dp
