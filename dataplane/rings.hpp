// The small messages that move packets between workers and the control thread. Each is one
// 16-byte ring element (rte_ring_create_elem), so no allocation happens per packet.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

namespace sagd::dp {

// Worker -> control thread (the slow path). The mbuf's data starts at the IPv4 header except
// for `arp`, where it starts at the Ethernet header.
enum class punt_reason : uint8_t {
    arp,             // ARP frame received on `port`
    resolve,         // IP packet for `port` waiting for `addr` to resolve (ARP)
    ttl_exceeded,    // send ICMP time exceeded, then free
    net_unreachable, // send ICMP destination unreachable (net), then free
    frag_needed,     // send ICMP fragmentation needed with next-hop MTU `mtu`, then free
    // IPv6 (data at the IPv6 header unless said otherwise; `port` is the arrival port index):
    nd,              // Neighbor Solicitation/Advertisement on `port` (data at Ethernet)
    resolve6,        // IPv6 packet for `port`: 16 bytes of next-hop address precede the header
    time_exceeded6,  // send ICMPv6 time exceeded, then free
    no_route6,       // send ICMPv6 destination unreachable (no route), then free
    packet_too_big6, // send ICMPv6 packet too big with MTU `mtu`, then free
};

struct punt_msg {
    rte_mbuf* m;
    punt_reason reason;
    uint8_t port; // port index (not DPDK id)
    uint16_t mtu;
    uint32_t addr; // host order: next hop to resolve, or the ICMP error's source address
};
static_assert(sizeof(punt_msg) == 16);

// Control thread -> worker: packets the slow path wants sent.
enum class inject_kind : uint8_t {
    tx,      // complete Ethernet frame: transmit on `port`
    forward, // IPv4 or IPv6 packet (data at the IP header): route it like a received packet
};

struct inject_msg {
    rte_mbuf* m;
    inject_kind kind;
    uint8_t port;
    uint8_t pad_[6];
};
static_assert(sizeof(inject_msg) == 16);

// Worker -> worker: a packet whose SA another worker owns (one writer per SA).
enum class handoff_stage : uint8_t { encap, decap };

struct handoff_msg {
    rte_mbuf* m;
    handoff_stage stage;
    uint8_t rx_port;
    uint16_t pad_;
    uint32_t index; // tunnel index (encap) or inbound SA map value (decap)
};
static_assert(sizeof(handoff_msg) == 16);

} // namespace sagd::dp
