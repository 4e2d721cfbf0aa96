#include "forwarding/packet.hpp"

#include <rte_byteorder.h>

#include <cstring>

namespace sagd::fwd {

namespace {

using detail::load_be16;
using detail::load_be32;
using detail::store_be16;
using detail::store_be32;
inline void swap_bytes(uint8_t* a, uint8_t* b, size_t n) noexcept {
    uint8_t tmp[6];
    std::memcpy(tmp, a, n);
    std::memcpy(a, b, n);
    std::memcpy(b, tmp, n);
}

// ICMP types that are queries/replies; anything else counts as an error (RFC 1812 4.3.2.7
// forbids errors about errors; unknown types are treated as errors to be safe).
bool icmp_is_query(uint8_t type) noexcept {
    switch (type) {
    case 0:
    case 8:
    case 9:
    case 10:
    case 13:
    case 14:
    case 15:
    case 16:
    case 17:
    case 18:
        return true;
    default:
        return false;
    }
}

} // namespace

const char* to_string(parse_status s) noexcept {
    switch (s) {
    case parse_status::ok:
        return "ok";
    case parse_status::truncated:
        return "truncated";
    case parse_status::not_ethernet_ii:
        return "not_ethernet_ii";
    case parse_status::vlan_stack:
        return "vlan_stack";
    case parse_status::bad_version:
        return "bad_version";
    case parse_status::bad_ihl:
        return "bad_ihl";
    case parse_status::bad_total_length:
        return "bad_total_length";
    case parse_status::bad_checksum:
        return "bad_checksum";
    case parse_status::bad_hardware_type:
        return "bad_hardware_type";
    case parse_status::bad_protocol_type:
        return "bad_protocol_type";
    case parse_status::bad_address_length:
        return "bad_address_length";
    case parse_status::bad_operation:
        return "bad_operation";
    }
    return "?";
}

const char* to_string(icmp_status s) noexcept {
    switch (s) {
    case icmp_status::ok:
        return "ok";
    case icmp_status::malformed:
        return "malformed";
    case icmp_status::not_echo_request:
        return "not_echo_request";
    case icmp_status::bad_checksum:
        return "bad_checksum";
    case icmp_status::fragment:
        return "fragment";
    case icmp_status::broadcast:
        return "broadcast";
    case icmp_status::bad_source:
        return "bad_source";
    case icmp_status::about_icmp_error:
        return "about_icmp_error";
    case icmp_status::no_room:
        return "no_room";
    }
    return "?";
}

// ---- Ethernet ----

// ---- checksums ----

void ipv4_set_checksum(uint8_t* hdr) noexcept {
    size_t hl = size_t{hdr[0] & 0x0fu} * 4;
    hdr[10] = hdr[11] = 0;
    store_be16(hdr + 10, internet_checksum(hdr, hl));
}

// ---- IPv4 ----

// ---- ARP ----

parse_status parse_arp(const uint8_t* l3, size_t len, arp_info& out) noexcept {
    if (len < 8) [[unlikely]]
        return parse_status::truncated;
    if (load_be16(l3) != 1)
        return parse_status::bad_hardware_type;
    if (load_be16(l3 + 2) != ethertype_ipv4)
        return parse_status::bad_protocol_type;
    if (l3[4] != 6 || l3[5] != 4)
        return parse_status::bad_address_length;
    uint16_t op = load_be16(l3 + 6);
    if (op != arp_op_request && op != arp_op_reply)
        return parse_status::bad_operation;
    if (len < arp_len) [[unlikely]]
        return parse_status::truncated;
    out.op = op;
    std::memcpy(out.sender_mac.data(), l3 + 8, 6);
    out.sender_ip = load_be32(l3 + 14);
    std::memcpy(out.target_mac.data(), l3 + 18, 6);
    out.target_ip = load_be32(l3 + 24);
    return parse_status::ok;
}

size_t build_arp_request(uint8_t* frame, size_t cap, const mac_bytes& our_mac, uint32_t our_ip,
                         uint32_t target_ip, int vlan_tci) noexcept {
    size_t l2 = vlan_tci >= 0 ? ethernet_header_len + vlan_tag_len : ethernet_header_len;
    size_t frame_len =
        l2 + arp_len < ethernet_min_frame_len ? ethernet_min_frame_len : l2 + arp_len;
    if (cap < frame_len)
        return 0;
    std::memset(frame, 0, frame_len);
    std::memcpy(frame, broadcast_mac.data(), 6);
    std::memcpy(frame + 6, our_mac.data(), 6);
    if (vlan_tci >= 0) {
        store_be16(frame + 12, ethertype_vlan);
        store_be16(frame + 14, static_cast<uint16_t>(vlan_tci));
        store_be16(frame + 16, ethertype_arp);
    } else {
        store_be16(frame + 12, ethertype_arp);
    }
    uint8_t* a = frame + l2;
    store_be16(a, 1);
    store_be16(a + 2, ethertype_ipv4);
    a[4] = 6;
    a[5] = 4;
    store_be16(a + 6, arp_op_request);
    std::memcpy(a + 8, our_mac.data(), 6);
    store_be32(a + 14, our_ip);
    // Target hardware address: zero in a request (RFC 826 leaves it unspecified).
    store_be32(a + 24, target_ip);
    return frame_len;
}

bool arp_reply_in_place(uint8_t* frame, size_t len, const mac_bytes& our_mac,
                        uint32_t our_ip) noexcept {
    ethernet_info eth;
    if (parse_ethernet(frame, len, eth) != parse_status::ok || eth.ethertype != ethertype_arp)
        return false;
    arp_info arp;
    uint8_t* a = frame + eth.l3_offset;
    if (parse_arp(a, len - eth.l3_offset, arp) != parse_status::ok)
        return false;
    if (arp.op != arp_op_request || arp.target_ip != our_ip)
        return false;
    if (is_group_mac(arp.sender_mac.data()) || ipv4_is_bad_source(arp.sender_ip))
        return false;
    store_be16(a + 6, arp_op_reply);
    std::memcpy(a + 18, a + 8, 10);        // target <- requester (MAC + IP)
    std::memcpy(a + 8, our_mac.data(), 6); // sender <- us
    store_be32(a + 14, our_ip);
    std::memcpy(frame, arp.sender_mac.data(), 6);
    std::memcpy(frame + 6, our_mac.data(), 6);
    return true;
}

// ---- ICMP ----

icmp_status icmp_echo_reply_in_place(uint8_t* frame, size_t len) noexcept {
    ethernet_info eth;
    if (parse_ethernet(frame, len, eth) != parse_status::ok || eth.ethertype != ethertype_ipv4)
        return icmp_status::malformed;
    uint8_t* ip = frame + eth.l3_offset;
    ipv4_info h;
    if (parse_ipv4(ip, len - eth.l3_offset, h) != parse_status::ok)
        return icmp_status::malformed;
    if (h.protocol != ip_proto_icmp)
        return icmp_status::malformed;
    if (h.is_fragment())
        return icmp_status::fragment;
    if (is_group_mac(eth.dst) || ipv4_is_multicast(h.dst) || ipv4_is_limited_broadcast(h.dst))
        return icmp_status::broadcast;
    if (ipv4_is_bad_source(h.src) || is_group_mac(eth.src))
        return icmp_status::bad_source;
    size_t icmp_len = h.total_length - h.header_len;
    uint8_t* icmp = ip + h.header_len;
    if (icmp_len < 8)
        return icmp_status::malformed;
    if (icmp[0] != 8)
        return icmp_status::not_echo_request;
    if (checksum_finish(checksum_add(icmp, icmp_len)) != 0)
        return icmp_status::bad_checksum;

    swap_bytes(frame, frame + 6, 6);
    swap_bytes(ip + 12, ip + 16, 4);
    ip[8] = 64;
    ipv4_set_checksum(ip);
    icmp[0] = 0; // echo reply, code 0, identifier/sequence/data unchanged
    icmp[1] = 0;
    icmp[2] = icmp[3] = 0;
    store_be16(icmp + 2, internet_checksum(icmp, icmp_len));
    return icmp_status::ok;
}

icmp_status icmp_error_allowed(const uint8_t* orig, size_t orig_len, bool link_broadcast) noexcept {
    ipv4_info h;
    if (parse_ipv4(orig, orig_len, h) != parse_status::ok)
        return icmp_status::malformed;
    if (h.fragment_offset != 0)
        return icmp_status::fragment; // only about the first fragment
    if (link_broadcast || ipv4_is_multicast(h.dst) || ipv4_is_limited_broadcast(h.dst))
        return icmp_status::broadcast;
    if (ipv4_is_bad_source(h.src))
        return icmp_status::bad_source;
    if (h.protocol == ip_proto_icmp) {
        // An ICMP message whose type we cannot read is treated as an error message.
        if (h.total_length <= h.header_len || !icmp_is_query(orig[h.header_len]))
            return icmp_status::about_icmp_error;
    }
    return icmp_status::ok;
}

icmp_build build_icmp_error(uint8_t* out, size_t cap, const uint8_t* orig, size_t orig_len,
                            const icmp_error_params& p) noexcept {
    icmp_status st = icmp_error_allowed(orig, orig_len, p.link_broadcast);
    if (st != icmp_status::ok)
        return {st, 0};
    ipv4_info h;
    (void)parse_ipv4(orig, orig_len, h);
    constexpr size_t hdrs = ipv4_min_header_len + 8;
    size_t quote = h.total_length; // never beyond the original datagram
    if (quote > icmp_error_max_len - hdrs)
        quote = icmp_error_max_len - hdrs;
    size_t total = hdrs + quote;
    if (cap < total)
        return {icmp_status::no_room, 0};

    uint8_t type = 3, code = 0;
    switch (p.kind) {
    case icmp_error_kind::net_unreachable:
        code = 0;
        break;
    case icmp_error_kind::host_unreachable:
        code = 1;
        break;
    case icmp_error_kind::fragmentation_needed:
        code = 4;
        break;
    case icmp_error_kind::time_exceeded:
        type = 11;
        break;
    }
    // The quote first: `out` may not alias `orig`, but copy before writing headers anyway.
    std::memmove(out + hdrs, orig, quote);
    uint8_t* ip = out;
    ip[0] = 0x45;
    ip[1] = 0xc0; // RFC 1812 4.3.2.5: precedence 6 (internetwork control)
    store_be16(ip + 2, static_cast<uint16_t>(total));
    store_be16(ip + 4, p.ip_id);
    store_be16(ip + 6, 0);
    ip[8] = 64;
    ip[9] = ip_proto_icmp;
    store_be32(ip + 12, p.source);
    store_be32(ip + 16, h.src);
    ipv4_set_checksum(ip);
    uint8_t* icmp = out + ipv4_min_header_len;
    icmp[0] = type;
    icmp[1] = code;
    store_be32(icmp + 4, 0);
    if (p.kind == icmp_error_kind::fragmentation_needed)
        store_be16(icmp + 6, p.next_hop_mtu); // RFC 1191 4
    icmp[2] = icmp[3] = 0;
    store_be16(icmp + 2, internet_checksum(icmp, 8 + quote));
    return {icmp_status::ok, static_cast<uint16_t>(total)};
}

} // namespace sagd::fwd
