// packet6: IPv6 header checks, hop limit, ND parse/build, ICMPv6 echo and errors (RFC 8200,
// RFC 4861, RFC 4443). Checksums are checked against an independent sum over the pseudo-header.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "forwarding/packet6.hpp"

using namespace sagd::fwd;

namespace {

ipv6_bytes a6(const char* t) {
    ipv6_bytes a{};
    EXPECT_EQ(inet_pton(AF_INET6, t, a.data()), 1) << t;
    return a;
}

// Independent RFC 1071 sum over pseudo-header + ICMPv6 message; 0xffff when correct.
uint16_t ones_sum(const uint8_t* ip6) {
    const size_t plen = size_t{ip6[4]} << 8 | ip6[5];
    uint32_t s = 0;
    auto add = [&](const uint8_t* p, size_t n) {
        for (size_t i = 0; i + 1 < n; i += 2)
            s += uint32_t{p[i]} << 8 | p[i + 1];
        if (n & 1)
            s += uint32_t{p[n - 1]} << 8;
    };
    add(ip6 + 8, 32);
    s += static_cast<uint32_t>(plen) + 58;
    add(ip6 + 40, plen);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

std::vector<uint8_t> ip6(const ipv6_bytes& src, const ipv6_bytes& dst, uint8_t nh, size_t plen,
                         uint8_t hlim = 64) {
    std::vector<uint8_t> p(40 + plen, 0);
    p[0] = 0x60;
    p[4] = static_cast<uint8_t>(plen >> 8), p[5] = static_cast<uint8_t>(plen);
    p[6] = nh, p[7] = hlim;
    std::memcpy(&p[8], src.data(), 16);
    std::memcpy(&p[24], dst.data(), 16);
    return p;
}

// An NS/NA (with an optional link-layer option) with a correct checksum.
std::vector<uint8_t> nd(uint8_t type, const ipv6_bytes& src, const ipv6_bytes& dst,
                        const ipv6_bytes& target, int opt_type, uint8_t flags = 0,
                        uint8_t hlim = 255, uint8_t opt_len = 1) {
    const size_t plen = 24 + (opt_type ? 8 : 0);
    auto p = ip6(src, dst, 58, plen, hlim);
    uint8_t* m = &p[40];
    m[0] = type;
    m[4] = flags;
    std::memcpy(m + 8, target.data(), 16);
    if (opt_type) {
        m[24] = static_cast<uint8_t>(opt_type), m[25] = opt_len;
        const uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
        std::memcpy(m + 26, mac, 6);
    }
    uint16_t c = icmp6_checksum(p.data(), m, plen);
    m[2] = static_cast<uint8_t>(c >> 8), m[3] = static_cast<uint8_t>(c);
    EXPECT_EQ(ones_sum(p.data()), 0xffff);
    return p;
}

} // namespace

TEST(packet6, header_checks_and_hop_limit) {
    auto p = ip6(a6("2001:db8::1"), a6("2001:db8::2"), 17, 8);
    ipv6_info info;
    EXPECT_EQ(parse_ipv6(p.data(), p.size(), info), ipv6_status::ok);
    EXPECT_EQ(info.payload_length, 8);
    EXPECT_EQ(info.next_header, 17);
    EXPECT_EQ(parse_ipv6(p.data(), 39, info), ipv6_status::truncated);
    EXPECT_EQ(parse_ipv6(p.data(), p.size() - 1, info), ipv6_status::bad_payload_length);
    auto jumbo = p;
    jumbo[4] = jumbo[5] = 0;
    EXPECT_EQ(parse_ipv6(jumbo.data(), jumbo.size(), info), ipv6_status::bad_payload_length);
    auto v4 = p;
    v4[0] = 0x45;
    EXPECT_EQ(parse_ipv6(v4.data(), v4.size(), info), ipv6_status::bad_version);
    p[7] = 2;
    EXPECT_TRUE(ipv6_decrement_hop_limit(p.data()));
    EXPECT_EQ(p[7], 1);
    EXPECT_FALSE(ipv6_decrement_hop_limit(p.data())); // would reach 0: time exceeded
    EXPECT_EQ(p[7], 1);
}

TEST(packet6, addresses_groups_and_eui64) {
    EXPECT_EQ(solicited_node(a6("2001:db8::12:3456")), a6("ff02::1:ff12:3456"));
    EXPECT_EQ(ipv6_multicast_mac(a6("ff02::1:ff12:3456")), (mac_bytes{0x33, 0x33, 0xff, 0x12, 0x34, 0x56}));
    EXPECT_EQ(link_local_from_mac({0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c}), a6("fe80::21b:21ff:fe0a:b0c"));
    EXPECT_TRUE(ipv6_is_link_local(a6("febf::1")));
    EXPECT_FALSE(ipv6_is_link_local(a6("fec0::1")));
    EXPECT_TRUE(ipv6_is_multicast(a6("ff05::2")));
    EXPECT_TRUE(ipv6_is_unspecified(ipv6_bytes{}));
    EXPECT_TRUE(ipv6_is_loopback(a6("::1")));
}

TEST(packet6, neighbor_discovery_parse_rules) {
    const auto us = a6("2001:db8::1"), host = a6("2001:db8::2");
    nd_info n;
    auto ns = nd(135, host, solicited_node(us), us, 1);
    ASSERT_EQ(parse_nd(ns.data(), ns.size(), n), nd_status::ok);
    EXPECT_EQ(n.type, 135);
    EXPECT_EQ(n.target, us);
    EXPECT_TRUE(n.has_lladdr);
    EXPECT_EQ(n.lladdr, (mac_bytes{2, 0, 0, 0, 0, 9}));
    auto na = nd(136, host, us, host, 2, 0x60);
    ASSERT_EQ(parse_nd(na.data(), na.size(), n), nd_status::ok);
    EXPECT_TRUE(n.solicited);
    EXPECT_TRUE(n.override_flag);
    EXPECT_FALSE(n.router);
    auto dad = nd(135, ipv6_bytes{}, solicited_node(us), us, 0);
    EXPECT_EQ(parse_nd(dad.data(), dad.size(), n), nd_status::ok);

    auto t = nd(135, host, solicited_node(us), us, 1, 0, 254);
    EXPECT_EQ(parse_nd(t.data(), t.size(), n), nd_status::bad_hop_limit);
    t = ns;
    t[41] = 1; // code
    EXPECT_EQ(parse_nd(t.data(), t.size(), n), nd_status::bad_code);
    t = ns;
    t[40 + 30] ^= 1;
    EXPECT_EQ(parse_nd(t.data(), t.size(), n), nd_status::bad_checksum);
    t = nd(135, host, solicited_node(us), a6("ff02::1"), 1);
    EXPECT_EQ(parse_nd(t.data(), t.size(), n), nd_status::bad_target);
    t = nd(135, host, solicited_node(us), us, 1, 0, 255, 0); // option length 0
    EXPECT_EQ(parse_nd(t.data(), t.size(), n), nd_status::bad_option);
    t = nd(135, host, solicited_node(us), us, 1, 0, 255, 2); // option past the end
    EXPECT_EQ(parse_nd(t.data(), t.size(), n), nd_status::bad_option);
    t = nd(135, ipv6_bytes{}, solicited_node(us), us, 1); // DAD with a source lladdr
    EXPECT_EQ(parse_nd(t.data(), t.size(), n), nd_status::bad_option);
    t = nd(135, ipv6_bytes{}, us, us, 0); // DAD not to the solicited-node group
    EXPECT_EQ(parse_nd(t.data(), t.size(), n), nd_status::bad_dad);
    t = nd(136, host, a6("ff02::1"), host, 2, 0x40); // solicited NA to a group
    EXPECT_EQ(parse_nd(t.data(), t.size(), n), nd_status::bad_target);
    auto echo = ip6(host, us, 58, 8);
    echo[40] = 128;
    EXPECT_EQ(parse_nd(echo.data(), echo.size(), n), nd_status::not_nd);
    EXPECT_EQ(parse_nd(ns.data(), 60, n), nd_status::malformed);
}

TEST(packet6, neighbor_solicit_and_advert_builders) {
    const mac_bytes me{2, 0, 0, 0, 0, 1}, peer{2, 0, 0, 0, 0, 2};
    const auto us = a6("fd00:1::1"), rtr = a6("fd00:1::fe");
    uint8_t f[nd_frame_len];
    ASSERT_EQ(build_neighbor_solicit(f, sizeof f, me, us, rtr), nd_frame_len);
    EXPECT_EQ(std::memcmp(f, "\x33\x33\xff\x00\x00\xfe", 6), 0);
    nd_info n;
    ASSERT_EQ(parse_nd(f + 14, sizeof f - 14, n), nd_status::ok);
    EXPECT_EQ(n.dst, solicited_node(rtr));
    EXPECT_EQ(n.lladdr, me);
    EXPECT_EQ(ones_sum(f + 14), 0xffff);
    ASSERT_EQ(build_neighbor_solicit(f, sizeof f, me, us, rtr, &peer), nd_frame_len); // PROBE
    EXPECT_EQ(std::memcmp(f, peer.data(), 6), 0);
    ASSERT_EQ(parse_nd(f + 14, sizeof f - 14, n), nd_status::ok);
    EXPECT_EQ(n.dst, rtr);
    ASSERT_EQ(build_neighbor_advert(f, sizeof f, me, peer, us, rtr, true), nd_frame_len);
    ASSERT_EQ(parse_nd(f + 14, sizeof f - 14, n), nd_status::ok);
    EXPECT_TRUE(n.router && n.solicited && n.override_flag);
    EXPECT_EQ(n.src, us);
    EXPECT_EQ(ones_sum(f + 14), 0xffff);
    EXPECT_EQ(build_neighbor_advert(f, nd_frame_len - 1, me, peer, us, rtr, true), 0u);
}

TEST(packet6, echo_reply_in_place_and_refusals) {
    const auto us = a6("2001:db8::1"), host = a6("2001:db8::2");
    auto make = [&](const ipv6_bytes& dst) {
        std::vector<uint8_t> f(14, 0);
        f[12] = 0x86, f[13] = 0xdd;
        f[0] = 2, f[6] = 2, f[11] = 7;
        auto p = ip6(host, dst, 58, 12);
        p[40] = 128;
        p[44] = 0, p[45] = 5, p[47] = 9;
        uint16_t c = icmp6_checksum(p.data(), &p[40], 12);
        p[42] = static_cast<uint8_t>(c >> 8), p[43] = static_cast<uint8_t>(c);
        f.insert(f.end(), p.begin(), p.end());
        return f;
    };
    auto f = make(us);
    ASSERT_EQ(icmp6_echo_reply_in_place(f.data(), f.size()), icmp_status::ok);
    EXPECT_EQ(f[14 + 40], 129);
    EXPECT_EQ(std::memcmp(&f[14 + 8], us.data(), 16), 0);
    EXPECT_EQ(std::memcmp(&f[14 + 24], host.data(), 16), 0);
    EXPECT_EQ(f[11], 0); // MACs swapped: back to the sender
    EXPECT_EQ(f[5], 7);
    EXPECT_EQ(ones_sum(f.data() + 14), 0xffff);
    f = make(a6("ff02::1"));
    EXPECT_EQ(icmp6_echo_reply_in_place(f.data(), f.size()), icmp_status::broadcast);
    f = make(us);
    f.back() ^= 1;
    EXPECT_EQ(icmp6_echo_reply_in_place(f.data(), f.size()), icmp_status::bad_checksum);
    f = make(us);
    f[14 + 40] = 129;
    EXPECT_EQ(icmp6_echo_reply_in_place(f.data(), f.size()), icmp_status::not_echo_request);
}

TEST(packet6, icmpv6_errors_quote_up_to_1280_and_follow_rfc4443_2_4) {
    const auto us = a6("2001:db8::1"), host = a6("2001:db8::2");
    auto big = ip6(host, a6("2001:db8:5::5"), 17, 1400);
    uint8_t out[1400];
    icmp6_error_params p;
    p.source = us;
    p.kind = icmp6_error_kind::packet_too_big;
    p.mtu = 1280;
    auto b = build_icmp6_error(out, sizeof out, big.data(), big.size(), p);
    ASSERT_EQ(b.status, icmp_status::ok);
    EXPECT_EQ(b.length, 1280u); // the minimum MTU, no more
    EXPECT_EQ(out[40], 2);
    EXPECT_EQ(out[44] << 24 | out[45] << 16 | out[46] << 8 | out[47], 1280);
    EXPECT_EQ(std::memcmp(&out[8], us.data(), 16), 0);
    EXPECT_EQ(std::memcmp(&out[24], host.data(), 16), 0);
    EXPECT_EQ(std::memcmp(&out[48], big.data(), 40), 0); // the quote starts with the header
    EXPECT_EQ(ones_sum(out), 0xffff);
    EXPECT_EQ(build_icmp6_error(out, 1279, big.data(), big.size(), p).status, icmp_status::no_room);
    // Never about an ICMPv6 error; about a multicast destination only Packet Too Big.
    auto err = ip6(host, us, 58, 8);
    err[40] = 1;
    p.kind = icmp6_error_kind::time_exceeded;
    EXPECT_EQ(build_icmp6_error(out, sizeof out, err.data(), err.size(), p).status,
              icmp_status::about_icmp_error);
    err[40] = 128; // an echo request is not an error
    EXPECT_EQ(build_icmp6_error(out, sizeof out, err.data(), err.size(), p).status, icmp_status::ok);
    auto mc = ip6(host, a6("ff0e::1"), 17, 8);
    EXPECT_EQ(build_icmp6_error(out, sizeof out, mc.data(), mc.size(), p).status,
              icmp_status::broadcast);
    p.kind = icmp6_error_kind::packet_too_big;
    EXPECT_EQ(build_icmp6_error(out, sizeof out, mc.data(), mc.size(), p).status, icmp_status::ok);
    auto unspec = ip6(ipv6_bytes{}, us, 17, 8);
    EXPECT_EQ(build_icmp6_error(out, sizeof out, unspec.data(), unspec.size(), p).status,
              icmp_status::bad_source);
}
