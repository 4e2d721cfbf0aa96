#include "forwarding/packet6.hpp"

#include <algorithm>
#include <cstring>

namespace sagd::fwd {

namespace {

using detail::load_be16; // forwarding/packet.hpp
using detail::store_be16;
using detail::store_be32;
inline ipv6_bytes load_addr(const uint8_t* p) noexcept {
    ipv6_bytes a;
    std::memcpy(a.data(), p, 16);
    return a;
}

uint32_t pseudo_sum(const uint8_t* ip6, size_t icmp_len) noexcept {
    uint32_t sum = checksum_add(ip6 + 8, 32); // source and destination
    sum += static_cast<uint32_t>(icmp_len >> 16) + static_cast<uint32_t>(icmp_len & 0xffff);
    sum += ip_proto_icmpv6;
    return sum;
}

void write_ipv6(uint8_t* p, uint16_t payload_len, uint8_t hop_limit, const ipv6_bytes& src,
                const ipv6_bytes& dst) noexcept {
    p[0] = 0x60;
    p[1] = p[2] = p[3] = 0;
    store_be16(p + 4, payload_len);
    p[6] = ip_proto_icmpv6;
    p[7] = hop_limit;
    std::memcpy(p + 8, src.data(), 16);
    std::memcpy(p + 24, dst.data(), 16);
}

void write_ethernet(uint8_t* f, const mac_bytes& dst, const mac_bytes& src) noexcept {
    std::memcpy(f, dst.data(), 6);
    std::memcpy(f + 6, src.data(), 6);
    store_be16(f + 12, ethertype_ipv6);
}

} // namespace

const char* to_string(ipv6_status s) noexcept {
    switch (s) {
    case ipv6_status::ok:
        return "ok";
    case ipv6_status::truncated:
        return "truncated";
    case ipv6_status::bad_version:
        return "bad_version";
    case ipv6_status::bad_payload_length:
        return "bad_payload_length";
    }
    return "?";
}

const char* to_string(nd_status s) noexcept {
    switch (s) {
    case nd_status::ok:
        return "ok";
    case nd_status::malformed:
        return "malformed";
    case nd_status::not_nd:
        return "not_nd";
    case nd_status::bad_hop_limit:
        return "bad_hop_limit";
    case nd_status::bad_checksum:
        return "bad_checksum";
    case nd_status::bad_code:
        return "bad_code";
    case nd_status::bad_target:
        return "bad_target";
    case nd_status::bad_option:
        return "bad_option";
    case nd_status::bad_dad:
        return "bad_dad";
    }
    return "?";
}

ipv6_status parse_ipv6(const uint8_t* l3, size_t len, ipv6_info& out) noexcept {
    if (len < ipv6_header_len)
        return ipv6_status::truncated;
    if ((l3[0] >> 4) != 6)
        return ipv6_status::bad_version;
    out.payload_length = load_be16(l3 + 4);
    if (out.payload_length == 0 || ipv6_header_len + out.payload_length > len)
        return ipv6_status::bad_payload_length;
    out.next_header = l3[6];
    out.hop_limit = l3[7];
    std::memcpy(out.src.data(), l3 + 8, 16);
    std::memcpy(out.dst.data(), l3 + 24, 16);
    return ipv6_status::ok;
}

ipv6_bytes solicited_node(const ipv6_bytes& a) noexcept {
    ipv6_bytes g{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, a[13], a[14], a[15]};
    return g;
}

mac_bytes ipv6_multicast_mac(const ipv6_bytes& g) noexcept {
    return {0x33, 0x33, g[12], g[13], g[14], g[15]};
}

ipv6_bytes link_local_from_mac(const mac_bytes& m) noexcept {
    return {0xfe, 0x80, 0,    0,    0,    0,    0,    0,
            static_cast<uint8_t>(m[0] ^ 0x02), m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]};
}

bool ipv6_decrement_hop_limit(uint8_t* hdr) noexcept {
    if (hdr[7] <= 1)
        return false;
    --hdr[7];
    return true;
}

uint16_t icmp6_checksum(const uint8_t* ip6, const uint8_t* icmp, size_t icmp_len) noexcept {
    return checksum_finish(checksum_add(icmp, icmp_len, pseudo_sum(ip6, icmp_len)));
}

bool icmp6_checksum_ok(const uint8_t* ip6, const uint8_t* icmp, size_t icmp_len) noexcept {
    return checksum_finish(checksum_add(icmp, icmp_len, pseudo_sum(ip6, icmp_len))) == 0;
}

icmp_status icmp6_echo_reply_in_place(uint8_t* frame, size_t len) noexcept {
    constexpr size_t l3 = ethernet_header_len;
    if (len < l3 + ipv6_header_len + 8)
        return icmp_status::malformed;
    uint8_t* ip = frame + l3;
    ipv6_info info;
    if (parse_ipv6(ip, len - l3, info) != ipv6_status::ok ||
        info.next_header != ip_proto_icmpv6 || info.payload_length < 8)
        return icmp_status::malformed;
    uint8_t* icmp = ip + ipv6_header_len;
    if (icmp[0] != icmp6_echo_request || icmp[1] != 0)
        return icmp_status::not_echo_request;
    if (ipv6_is_multicast(info.dst) || is_group_mac(frame))
        return icmp_status::broadcast;
    if (ipv6_is_multicast(info.src) || ipv6_is_unspecified(info.src))
        return icmp_status::bad_source;
    if (!icmp6_checksum_ok(ip, icmp, info.payload_length))
        return icmp_status::bad_checksum;
    uint8_t tmp[16];
    std::memcpy(tmp, frame, 6);
    std::memcpy(frame, frame + 6, 6);
    std::memcpy(frame + 6, tmp, 6);
    std::memcpy(tmp, ip + 8, 16);
    std::memcpy(ip + 8, ip + 24, 16);
    std::memcpy(ip + 24, tmp, 16);
    ip[7] = 64;
    icmp[0] = icmp6_echo_reply;
    icmp[2] = icmp[3] = 0;
    store_be16(icmp + 2, icmp6_checksum(ip, icmp, info.payload_length));
    return icmp_status::ok;
}

nd_status parse_nd(const uint8_t* l3, size_t len, nd_info& out) noexcept {
    ipv6_info ip;
    if (parse_ipv6(l3, len, ip) != ipv6_status::ok || ip.next_header != ip_proto_icmpv6 ||
        ip.payload_length < 4)
        return nd_status::malformed;
    const uint8_t* icmp = l3 + ipv6_header_len;
    const size_t ilen = ip.payload_length;
    if (icmp[0] != icmp6_neighbor_solicit && icmp[0] != icmp6_neighbor_advert)
        return nd_status::not_nd;
    // RFC 4861 7.1.1 / 7.1.2: only on-link senders (hop limit 255), code 0, >= 24 bytes.
    if (ip.hop_limit != 255)
        return nd_status::bad_hop_limit;
    if (icmp[1] != 0)
        return nd_status::bad_code;
    if (ilen < 24)
        return nd_status::malformed;
    if (!icmp6_checksum_ok(l3, icmp, ilen))
        return nd_status::bad_checksum;
    out = nd_info{};
    out.type = icmp[0];
    out.src = ip.src;
    out.dst = ip.dst;
    out.target = load_addr(icmp + 8);
    if (ipv6_is_multicast(out.target))
        return nd_status::bad_target;
    if (out.type == icmp6_neighbor_advert) {
        out.router = (icmp[4] & 0x80) != 0;
        out.solicited = (icmp[4] & 0x40) != 0;
        out.override_flag = (icmp[4] & 0x20) != 0;
        if (out.solicited && ipv6_is_multicast(out.dst))
            return nd_status::bad_target; // RFC 4861 7.1.2
    }
    const uint8_t want_opt = out.type == icmp6_neighbor_solicit ? 1 : 2;
    for (size_t off = 24; off < ilen;) {
        if (off + 2 > ilen)
            return nd_status::bad_option;
        size_t olen = size_t{icmp[off + 1]} * 8;
        if (olen == 0 || off + olen > ilen)
            return nd_status::bad_option;
        if (icmp[off] == want_opt && olen >= 8) {
            out.has_lladdr = true;
            std::memcpy(out.lladdr.data(), icmp + off + 2, 6);
        }
        off += olen;
    }
    if (out.type == icmp6_neighbor_solicit && ipv6_is_unspecified(out.src)) {
        if (out.has_lladdr)
            return nd_status::bad_option;
        const ipv6_bytes sn = solicited_node(out.target);
        if (out.dst != sn)
            return nd_status::bad_dad;
    }
    return nd_status::ok;
}

size_t build_neighbor_solicit(uint8_t* frame, size_t cap, const mac_bytes& our_mac,
                              const ipv6_bytes& src, const ipv6_bytes& target,
                              const mac_bytes* unicast_mac) noexcept {
    if (cap < nd_frame_len)
        return 0;
    const ipv6_bytes dst = unicast_mac != nullptr ? target : solicited_node(target);
    write_ethernet(frame, unicast_mac != nullptr ? *unicast_mac : ipv6_multicast_mac(dst),
                   our_mac);
    uint8_t* ip = frame + ethernet_header_len;
    write_ipv6(ip, 32, 255, src, dst);
    uint8_t* icmp = ip + ipv6_header_len;
    std::memset(icmp, 0, 32);
    icmp[0] = icmp6_neighbor_solicit;
    std::memcpy(icmp + 8, target.data(), 16);
    icmp[24] = 1; // source link-layer address
    icmp[25] = 1;
    std::memcpy(icmp + 26, our_mac.data(), 6);
    store_be16(icmp + 2, icmp6_checksum(ip, icmp, 32));
    return nd_frame_len;
}

size_t build_neighbor_advert(uint8_t* frame, size_t cap, const mac_bytes& our_mac,
                             const mac_bytes& dst_mac, const ipv6_bytes& target,
                             const ipv6_bytes& dst, bool solicited) noexcept {
    if (cap < nd_frame_len)
        return 0;
    write_ethernet(frame, dst_mac, our_mac);
    uint8_t* ip = frame + ethernet_header_len;
    write_ipv6(ip, 32, 255, target, dst);
    uint8_t* icmp = ip + ipv6_header_len;
    std::memset(icmp, 0, 32);
    icmp[0] = icmp6_neighbor_advert;
    icmp[4] = static_cast<uint8_t>(0x80 | (solicited ? 0x40 : 0) | 0x20); // R, S, O
    std::memcpy(icmp + 8, target.data(), 16);
    icmp[24] = 2; // target link-layer address
    icmp[25] = 1;
    std::memcpy(icmp + 26, our_mac.data(), 6);
    store_be16(icmp + 2, icmp6_checksum(ip, icmp, 32));
    return nd_frame_len;
}

icmp_status icmp6_error_allowed(const uint8_t* orig, size_t orig_len,
                                const icmp6_error_params& p) noexcept {
    ipv6_info ip;
    if (parse_ipv6(orig, orig_len, ip) != ipv6_status::ok)
        return icmp_status::malformed;
    if (ipv6_is_multicast(ip.src) || ipv6_is_unspecified(ip.src))
        return icmp_status::bad_source;
    if (p.kind != icmp6_error_kind::packet_too_big &&
        (ipv6_is_multicast(ip.dst) || p.link_multicast))
        return icmp_status::broadcast;
    // Errors (types 0..127) are never answered with an error (RFC 4443 2.4 (e.1)).
    if (ip.next_header == ip_proto_icmpv6 && ip.payload_length >= 1 &&
        orig[ipv6_header_len] < 128)
        return icmp_status::about_icmp_error;
    return icmp_status::ok;
}

icmp_build build_icmp6_error(uint8_t* out, size_t cap, const uint8_t* orig, size_t orig_len,
                             const icmp6_error_params& p) noexcept {
    icmp_build b;
    b.status = icmp6_error_allowed(orig, orig_len, p);
    if (b.status != icmp_status::ok)
        return b;
    ipv6_info ip;
    (void)parse_ipv6(orig, orig_len, ip);
    const size_t orig_ip_len = ipv6_header_len + ip.payload_length;
    const size_t quote =
        std::min(orig_ip_len, icmp6_error_max_len - ipv6_header_len - 8);
    const size_t total = ipv6_header_len + 8 + quote;
    if (cap < total) {
        b.status = icmp_status::no_room;
        return b;
    }
    write_ipv6(out, static_cast<uint16_t>(8 + quote), 64, p.source, ip.src);
    uint8_t* icmp = out + ipv6_header_len;
    std::memset(icmp, 0, 8);
    switch (p.kind) {
    case icmp6_error_kind::no_route:
        icmp[0] = 1;
        break;
    case icmp6_error_kind::packet_too_big:
        icmp[0] = 2;
        store_be32(icmp + 4, p.mtu);
        break;
    case icmp6_error_kind::time_exceeded:
        icmp[0] = 3;
        break;
    }
    std::memmove(icmp + 8, orig, quote);
    store_be16(icmp + 2, icmp6_checksum(out, icmp, 8 + quote));
    b.length = static_cast<uint16_t>(total);
    return b;
}

} // namespace sagd::fwd
