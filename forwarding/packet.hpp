// Packet helpers on raw bytes: parsers, checksums and builders for Ethernet II (+ one 802.1Q
// tag), IPv4, ARP and ICMP. Everything works on (uint8_t*, length) so it is testable without
// mbufs; with an mbuf pass rte_pktmbuf_mtod(m, uint8_t*) and rte_pktmbuf_data_len(m)
// (see packet_mbuf.hpp). All functions are noexcept, allocate nothing and never read or
// write outside [p, p + len). Addresses are in host byte order unless the name says _be.
#pragma once

#include <rte_byteorder.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "forwarding/mac.hpp"

namespace sagd::fwd {

namespace detail {
inline uint16_t load_be16(const uint8_t* p) noexcept {
    return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) noexcept {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void store_be16(uint8_t* p, uint16_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}
} // namespace detail

inline constexpr uint16_t ethertype_ipv4 = 0x0800;
inline constexpr uint16_t ethertype_arp = 0x0806;
inline constexpr uint16_t ethertype_vlan = 0x8100; // 802.1Q
inline constexpr uint16_t ethertype_qinq = 0x88a8; // 802.1ad (not supported)
inline constexpr uint8_t ip_proto_icmp = 1;
inline constexpr size_t ethernet_header_len = 14;
inline constexpr size_t vlan_tag_len = 4;
inline constexpr size_t ipv4_min_header_len = 20;
inline constexpr size_t arp_len = 28;                // Ethernet/IPv4 ARP body
inline constexpr size_t ethernet_min_frame_len = 60; // without FCS
inline constexpr size_t icmp_error_max_len = 576;    // RFC 1812 4.3.2.3: whole datagram

enum class parse_status : uint8_t {
    ok,
    truncated,          // fewer bytes than the header needs
    not_ethernet_ii,    // 802.3 length field (< 0x0600)
    vlan_stack,         // more than one tag (QinQ): not supported
    bad_version,        // IPv4: version != 4
    bad_ihl,            // IPv4: IHL < 5 or IHL*4 > available bytes
    bad_total_length,   // IPv4: total length < IHL*4 or > available bytes
    bad_checksum,       // IPv4 header checksum
    bad_hardware_type,  // ARP: htype != 1 (Ethernet)
    bad_protocol_type,  // ARP: ptype != 0x0800
    bad_address_length, // ARP: hlen != 6 or plen != 4
    bad_operation,      // ARP: op not request(1)/reply(2)
};
const char* to_string(parse_status s) noexcept;

// ---- Ethernet -------------------------------------------------------------------------------

struct ethernet_info {
    const uint8_t* dst = nullptr; // 6 bytes
    const uint8_t* src = nullptr;
    uint16_t ethertype = 0; // after the tag, if any
    uint16_t l3_offset = 0; // 14 or 18
    uint16_t vlan_tci = 0;  // valid when has_vlan
    bool has_vlan = false;
};
inline parse_status parse_ethernet(const uint8_t* frame, size_t len, ethernet_info& out) noexcept {
    if (len < ethernet_header_len) [[unlikely]]
        return parse_status::truncated;
    uint16_t type = detail::load_be16(frame + 12);
    out.dst = frame;
    out.src = frame + 6;
    out.has_vlan = false;
    out.vlan_tci = 0;
    out.l3_offset = ethernet_header_len;
    if (type == ethertype_vlan) {
        if (len < ethernet_header_len + vlan_tag_len) [[unlikely]]
            return parse_status::truncated;
        out.has_vlan = true;
        out.vlan_tci = detail::load_be16(frame + 14);
        type = detail::load_be16(frame + 16);
        out.l3_offset = ethernet_header_len + vlan_tag_len;
        if (type == ethertype_vlan || type == ethertype_qinq) [[unlikely]]
            return parse_status::vlan_stack;
    } else if (type == ethertype_qinq) [[unlikely]] {
        return parse_status::vlan_stack;
    }
    out.ethertype = type;
    if (type < 0x0600) [[unlikely]]
        return parse_status::not_ethernet_ii;
    return parse_status::ok;
}

// ---- IPv4 -----------------------------------------------------------------------------------

struct ipv4_info {
    uint8_t header_len = 0; // bytes (IHL * 4)
    uint8_t tos = 0;
    uint16_t total_length = 0;
    uint16_t id = 0;
    uint16_t fragment_offset = 0; // in bytes
    bool dont_fragment = false;
    bool more_fragments = false;
    uint8_t ttl = 0;
    uint8_t protocol = 0;
    uint32_t src = 0; // host order
    uint32_t dst = 0;
    bool is_fragment() const noexcept { return more_fragments || fragment_offset != 0; }
};
// RFC 1812 5.2.2 checks, in order: length >= 20, version 4, IHL >= 5 and IHL*4 <= len,
// total length >= IHL*4 and <= len, header checksum (unless verify_checksum is false, e.g.
// when the NIC has checked it).
inline parse_status parse_ipv4(const uint8_t* l3, size_t len, ipv4_info& out,
                               bool verify_checksum = true) noexcept;

constexpr bool ipv4_is_multicast(uint32_t a) noexcept {
    return (a >> 28) == 0xe;
}
constexpr bool ipv4_is_limited_broadcast(uint32_t a) noexcept {
    return a == 0xffffffffu;
}
// RFC 1812 4.3.2.7 / 5.3.7: a source that does not name a single host: 0/8, 127/8,
// multicast, class E (which includes 255.255.255.255).
constexpr bool ipv4_is_bad_source(uint32_t a) noexcept {
    return (a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) >= 0xe;
}

// Internet checksum (RFC 1071). checksum_add sums 16-bit big-endian words (an odd final byte
// is the high byte of a word); checksum_finish folds and complements. internet_checksum is
// the value to store (host order; write it big-endian). A correct header sums to 0xffff.
inline uint32_t checksum_add(const uint8_t* p, size_t len, uint32_t sum = 0) noexcept {
    // RFC 1071 2(B): the one's complement sum does not depend on byte order, so add native
    // 32-bit words and swap the folded 16-bit result into network order once at the end.
    uint64_t s = 0;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t w;
        std::memcpy(&w, p + i, 4);
        s += w;
    }
    if (i + 2 <= len) {
        uint16_t w;
        std::memcpy(&w, p + i, 2);
        s += w;
        i += 2;
    }
    if (i < len) {
        uint8_t tail[2] = {p[i], 0};
        uint16_t w;
        std::memcpy(&w, tail, 2);
        s += w;
    }
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    uint64_t r = uint64_t{sum} + rte_be_to_cpu_16(static_cast<uint16_t>(s));
    while (r >> 32)
        r = (r & 0xffffffffu) + (r >> 32);
    return static_cast<uint32_t>(r);
}
inline uint16_t checksum_finish(uint32_t sum) noexcept {
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}
inline uint16_t internet_checksum(const uint8_t* p, size_t len) noexcept {
    return checksum_finish(checksum_add(p, len));
}
// Recomputes the IPv4 header checksum in place (header length from IHL).
void ipv4_set_checksum(uint8_t* hdr) noexcept;
// Forwarding: RFC 1812 5.3.1 — returns false (and changes nothing) when TTL <= 1, the caller
// then sends time exceeded; else decrements TTL and updates the checksum incrementally
// (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
inline bool ipv4_decrement_ttl(uint8_t* hdr) noexcept {
    uint8_t ttl = hdr[8];
    if (ttl <= 1)
        return false;
    // RFC 1624 eqn. 3 on the 16-bit word (TTL, protocol): m' = m - 0x0100.
    uint16_t m = detail::load_be16(hdr + 8);
    uint16_t m2 = static_cast<uint16_t>(m - 0x0100);
    uint32_t sum = static_cast<uint16_t>(~detail::load_be16(hdr + 10));
    sum += static_cast<uint16_t>(~m);
    sum += m2;
    hdr[8] = static_cast<uint8_t>(ttl - 1);
    detail::store_be16(hdr + 10, checksum_finish(sum));
    return true;
}

inline parse_status parse_ipv4(const uint8_t* l3, size_t len, ipv4_info& out,
                               bool verify_checksum) noexcept {
    if (len < ipv4_min_header_len) [[unlikely]]
        return parse_status::truncated;
    if ((l3[0] >> 4) != 4) [[unlikely]]
        return parse_status::bad_version;
    size_t hl = size_t{l3[0] & 0x0fu} * 4;
    if (hl < ipv4_min_header_len || hl > len) [[unlikely]]
        return parse_status::bad_ihl;
    uint16_t total = detail::load_be16(l3 + 2);
    if (total < hl || total > len) [[unlikely]]
        return parse_status::bad_total_length;
    if (verify_checksum && checksum_finish(checksum_add(l3, hl)) != 0) [[unlikely]]
        return parse_status::bad_checksum;
    uint16_t frag = detail::load_be16(l3 + 6);
    out.header_len = static_cast<uint8_t>(hl);
    out.tos = l3[1];
    out.total_length = total;
    out.id = detail::load_be16(l3 + 4);
    out.dont_fragment = (frag & 0x4000) != 0;
    out.more_fragments = (frag & 0x2000) != 0;
    out.fragment_offset = static_cast<uint16_t>((frag & 0x1fff) * 8);
    out.ttl = l3[8];
    out.protocol = l3[9];
    out.src = detail::load_be32(l3 + 12);
    out.dst = detail::load_be32(l3 + 16);
    return parse_status::ok;
}

// ---- ARP (RFC 826, Ethernet/IPv4 only) -------------------------------------------------------

inline constexpr uint16_t arp_op_request = 1;
inline constexpr uint16_t arp_op_reply = 2;

struct arp_info {
    uint16_t op = 0;
    mac_bytes sender_mac{};
    uint32_t sender_ip = 0; // host order
    mac_bytes target_mac{};
    uint32_t target_ip = 0;
};
parse_status parse_arp(const uint8_t* l3, size_t len, arp_info& out) noexcept;

// Who-has target_ip, tell our_ip: broadcast frame, padded to 60 bytes. vlan_tci >= 0 adds an
// 802.1Q tag. Returns the frame length, or 0 when cap is too small.
size_t build_arp_request(uint8_t* frame, size_t cap, const mac_bytes& our_mac, uint32_t our_ip,
                         uint32_t target_ip, int vlan_tci = -1) noexcept;
// Turns an ARP request for our_ip around in place into the reply (RFC 826: swap sender and
// target, fill in our MAC, op = reply; Ethernet to the requester, from us). Keeps any VLAN tag
// and the frame length. False (frame untouched) if it is not a valid request for our_ip.
bool arp_reply_in_place(uint8_t* frame, size_t len, const mac_bytes& our_mac,
                        uint32_t our_ip) noexcept;

// ---- ICMP -----------------------------------------------------------------------------------

enum class icmp_status : uint8_t {
    ok,
    malformed, // not Ethernet/IPv4, bad IPv4 header, ICMP shorter than 8 bytes
    not_echo_request,
    bad_checksum,     // ICMP checksum of the request
    fragment,         // fragmented request / non-first fragment (RFC 1812 4.3.2.7)
    broadcast,        // to broadcast/multicast (IP or link layer)
    bad_source,       // source is not a single host (RFC 1812 4.3.2.7)
    about_icmp_error, // never an ICMP error about an ICMP error (RFC 792, RFC 1812 4.3.2.7)
    no_room,          // output buffer too small
};
const char* to_string(icmp_status s) noexcept;

// Echo request -> echo reply in place (RFC 792; RFC 1122 3.2.2.6): swaps MAC and IP addresses,
// type 0, TTL 64, fixes both checksums. Refuses fragmented and broadcast/multicast requests.
icmp_status icmp_echo_reply_in_place(uint8_t* frame, size_t len) noexcept;

enum class icmp_error_kind : uint8_t {
    net_unreachable,      // type 3 code 0
    host_unreachable,     // type 3 code 1
    fragmentation_needed, // type 3 code 4, next-hop MTU (RFC 1191)
    time_exceeded,        // type 11 code 0 (TTL exceeded in transit)
};

struct icmp_error_params {
    icmp_error_kind kind = icmp_error_kind::time_exceeded;
    uint32_t source = 0;       // our address on the interface toward the sender (host order)
    uint16_t next_hop_mtu = 0; // fragmentation_needed only
    uint16_t ip_id = 0;
    bool link_broadcast = false; // the original arrived as link-layer broadcast/multicast, or
                                 // to a directed broadcast address of ours
};

struct icmp_build {
    icmp_status status = icmp_status::ok;
    uint16_t length = 0; // bytes written at out (IPv4 header onward)
};

// Whether an ICMP error may be sent about this datagram (RFC 1812 4.3.2.7).
icmp_status icmp_error_allowed(const uint8_t* orig_ip, size_t orig_len,
                               bool link_broadcast) noexcept;
// Writes IPv4 + ICMP error into out (no Ethernet header; prepend it), to the original source,
// quoting the original IP header and as much payload as fits in 576 bytes total (at least the
// first 8 bytes: RFC 792; RFC 1812 4.3.2.3), never more than the original datagram.
icmp_build build_icmp_error(uint8_t* out, size_t cap, const uint8_t* orig_ip, size_t orig_len,
                            const icmp_error_params& p) noexcept;

} // namespace sagd::fwd
