// IPv6 packet helpers on raw bytes, the sibling of packet.hpp: the IPv6 header checks a router
// makes (RFC 8200), hop limit, ICMPv6 (RFC 4443: checksum, echo, errors) and Neighbor Discovery
// messages (RFC 4861 NS/NA with link-layer address options). noexcept, no allocation, never
// outside [p, p + len). Addresses are 16 bytes in network order.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "forwarding/mac.hpp"
#include "forwarding/packet.hpp"

namespace sagd::fwd {

using ipv6_bytes = std::array<uint8_t, 16>;

inline constexpr uint16_t ethertype_ipv6 = 0x86dd;
inline constexpr size_t ipv6_header_len = 40;
inline constexpr uint8_t ip_proto_icmpv6 = 58;
inline constexpr uint8_t icmp6_echo_request = 128;
inline constexpr uint8_t icmp6_echo_reply = 129;
inline constexpr uint8_t icmp6_neighbor_solicit = 135;
inline constexpr uint8_t icmp6_neighbor_advert = 136;
// RFC 4443 2.4 (c): an error carries as much of the offending packet as fits in the IPv6
// minimum MTU.
inline constexpr size_t icmp6_error_max_len = 1280;
inline constexpr size_t nd_frame_len = 14 + 40 + 24 + 8; // NS/NA with one link-layer option

struct ipv6_info {
    uint16_t payload_length = 0;
    uint8_t next_header = 0;
    uint8_t hop_limit = 0;
    ipv6_bytes src{};
    ipv6_bytes dst{};
};

enum class ipv6_status : uint8_t {
    ok,
    truncated,          // fewer than 40 bytes
    bad_version,        // version != 6
    bad_payload_length, // 40 + payload length beyond the frame, or 0 (jumbogram, RFC 2675)
};
const char* to_string(ipv6_status s) noexcept;

ipv6_status parse_ipv6(const uint8_t* l3, size_t len, ipv6_info& out) noexcept;

constexpr bool ipv6_is_multicast(const ipv6_bytes& a) noexcept {
    return a[0] == 0xff;
}
constexpr bool ipv6_is_link_local(const ipv6_bytes& a) noexcept {
    return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}
constexpr bool ipv6_is_unspecified(const ipv6_bytes& a) noexcept {
    for (auto b : a)
        if (b != 0)
            return false;
    return true;
}
constexpr bool ipv6_is_loopback(const ipv6_bytes& a) noexcept {
    for (unsigned i = 0; i < 15; ++i)
        if (a[i] != 0)
            return false;
    return a[15] == 1;
}
// RFC 4291 2.7.1: ff02::1:ffXX:XXXX from the low 24 bits of `a`.
ipv6_bytes solicited_node(const ipv6_bytes& a) noexcept;
// RFC 2464 7: 33:33 + the low 32 bits of a multicast address.
mac_bytes ipv6_multicast_mac(const ipv6_bytes& group) noexcept;
// RFC 4291 2.5.1 / RFC 2464 5: fe80::/64 with the modified EUI-64 interface identifier.
ipv6_bytes link_local_from_mac(const mac_bytes& mac) noexcept;

// Forwarding (RFC 8200 3): false (nothing changed) when the hop limit is <= 1, else decrement.
// IPv6 has no header checksum.
bool ipv6_decrement_hop_limit(uint8_t* hdr) noexcept;

// The ICMPv6 checksum over the pseudo-header (RFC 8200 8.1) and the message at `icmp`; the
// value to store (host order). A correct message sums to 0 with icmp6_checksum_ok.
uint16_t icmp6_checksum(const uint8_t* ip6, const uint8_t* icmp, size_t icmp_len) noexcept;
bool icmp6_checksum_ok(const uint8_t* ip6, const uint8_t* icmp, size_t icmp_len) noexcept;

// Echo request (to one of our unicast addresses) -> reply in place (RFC 4443 4.2): swaps MACs
// and addresses, type 129, hop limit 64, new checksum. frame = Ethernet + IPv6 + ICMPv6 with no
// extension headers; the frame length must already be trimmed to the IPv6 length.
icmp_status icmp6_echo_reply_in_place(uint8_t* frame, size_t len) noexcept;

// Neighbor Discovery (RFC 4861 4.3, 4.4, 7.1). Parsing checks hop limit 255, code 0, length,
// checksum, target not multicast, option lengths non-zero, and for NS from :: (DAD) that the
// destination is a solicited-node address and there is no source link-layer option.
struct nd_info {
    uint8_t type = 0; // 135 or 136
    ipv6_bytes src{}, dst{}, target{};
    bool has_lladdr = false; // source (NS) or target (NA) link-layer address option
    mac_bytes lladdr{};
    bool router = false, solicited = false, override_flag = false; // NA flags
};
enum class nd_status : uint8_t {
    ok,
    malformed,    // not IPv6/ICMPv6 with no extension header, too short, bad lengths
    not_nd,       // other ICMPv6 type
    bad_hop_limit,
    bad_checksum,
    bad_code,
    bad_target, // multicast target
    bad_option, // option with length 0 or past the end; DAD NS with a source lladdr
    bad_dad,    // NS from :: not to a solicited-node address
};
const char* to_string(nd_status s) noexcept;
nd_status parse_nd(const uint8_t* l3, size_t len, nd_info& out) noexcept;

// Neighbor Solicitation for `target` from `src` with our source link-layer option, to the
// solicited-node group (multicast MAC), or unicast to `unicast_mac` when given (PROBE, RFC
// 4861 7.3.3). Writes the whole Ethernet frame; returns its length or 0 when cap is too small.
size_t build_neighbor_solicit(uint8_t* frame, size_t cap, const mac_bytes& our_mac,
                              const ipv6_bytes& src, const ipv6_bytes& target,
                              const mac_bytes* unicast_mac = nullptr) noexcept;
// Neighbor Advertisement for `target` (ours) with our target link-layer option. Solicited
// answers go to the solicitor; an answer to a DAD NS (source ::) goes to all-nodes ff02::1
// with S clear (RFC 4861 7.2.4). Router flag set: we forward.
size_t build_neighbor_advert(uint8_t* frame, size_t cap, const mac_bytes& our_mac,
                             const mac_bytes& dst_mac, const ipv6_bytes& target,
                             const ipv6_bytes& dst, bool solicited) noexcept;

enum class icmp6_error_kind : uint8_t {
    no_route,       // type 1 code 0 (RFC 4443 3.1)
    packet_too_big, // type 2 code 0, MTU (RFC 4443 3.2)
    time_exceeded,  // type 3 code 0, hop limit exceeded in transit (RFC 4443 3.3)
};
struct icmp6_error_params {
    icmp6_error_kind kind = icmp6_error_kind::time_exceeded;
    ipv6_bytes source{}; // our address toward the sender
    uint32_t mtu = 0;    // packet_too_big
    bool link_multicast = false; // the original arrived as link-layer multicast/broadcast
};
// RFC 4443 2.4 (e): never about an ICMPv6 error, nor (except Packet Too Big) about a packet to
// a multicast group or link multicast; never to an unspecified/multicast source.
icmp_status icmp6_error_allowed(const uint8_t* orig, size_t orig_len,
                                const icmp6_error_params& p) noexcept;
// Writes IPv6 + ICMPv6 error (no Ethernet) quoting as much of `orig` as fits in 1280 bytes.
icmp_build build_icmp6_error(uint8_t* out, size_t cap, const uint8_t* orig, size_t orig_len,
                             const icmp6_error_params& p) noexcept;

} // namespace sagd::fwd
