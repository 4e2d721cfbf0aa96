// Unit tests for control-shim/fpm.*: the FPM decoder (hand-built netlink messages and real
// captures from FRR 8.4 zebra), the stream framer and the learned-route store.
#include "control-shim/fpm.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace sagd::shim;
using bytes = std::vector<uint8_t>;

// ---- builders: netlink messages laid out as zebra's netlink encoder does (rtnetlink(7))

bytes v4(const char* text) {
    bytes b(4);
    EXPECT_EQ(inet_pton(AF_INET, text, b.data()), 1) << text;
    return b;
}
bytes v6(const char* text) {
    bytes b(16);
    EXPECT_EQ(inet_pton(AF_INET6, text, b.data()), 1) << text;
    return b;
}
ip_bytes ip(const bytes& b) {
    ip_bytes out{};
    std::memcpy(out.data(), b.data(), b.size());
    return out;
}
bytes u32(uint32_t v) {
    bytes b(4);
    std::memcpy(b.data(), &v, 4);
    return b;
}

void put_attr(bytes& out, uint16_t type, const bytes& payload) {
    rtattr a{};
    a.rta_len = static_cast<unsigned short>(RTA_LENGTH(payload.size()));
    a.rta_type = type;
    const size_t at = out.size();
    out.resize(at + RTA_SPACE(payload.size()), 0);
    std::memcpy(out.data() + at, &a, sizeof(a));
    if (!payload.empty()) // memcpy from an empty vector's null data() is UB
        std::memcpy(out.data() + at + RTA_LENGTH(0), payload.data(), payload.size());
}

struct hop_spec {
    bytes gateway; // empty: none
    int ifindex = 0;
    uint8_t hops = 0; // weight - 1
};

bytes multipath(const std::vector<hop_spec>& hops) {
    bytes out;
    for (const auto& h : hops) {
        bytes attrs;
        if (!h.gateway.empty())
            put_attr(attrs, RTA_GATEWAY, h.gateway);
        rtnexthop nh{};
        nh.rtnh_len = static_cast<unsigned short>(sizeof(rtnexthop) + attrs.size());
        nh.rtnh_hops = h.hops;
        nh.rtnh_ifindex = h.ifindex;
        const size_t at = out.size();
        out.resize(at + sizeof(nh));
        std::memcpy(out.data() + at, &nh, sizeof(nh));
        out.insert(out.end(), attrs.begin(), attrs.end());
    }
    return out;
}

struct route_msg {
    uint16_t type = RTM_NEWROUTE;
    uint8_t family = AF_INET;
    uint8_t dst_len = 0;
    uint8_t src_len = 0;
    uint8_t table = RT_TABLE_MAIN;
    uint8_t protocol = 196; // zebra's RTPROT_STATIC
    uint8_t rtm_type = RTN_UNICAST;
    bytes attrs;

    route_msg& attr(uint16_t t, const bytes& payload) {
        put_attr(attrs, t, payload);
        return *this;
    }
    bytes build() const {
        nlmsghdr nh{};
        rtmsg rtm{};
        nh.nlmsg_len = static_cast<uint32_t>(NLMSG_SPACE(sizeof(rtmsg)) + attrs.size());
        nh.nlmsg_type = type;
        nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
        rtm.rtm_family = family;
        rtm.rtm_dst_len = dst_len;
        rtm.rtm_src_len = src_len;
        rtm.rtm_table = table;
        rtm.rtm_protocol = protocol;
        rtm.rtm_type = rtm_type;
        bytes out(nh.nlmsg_len, 0);
        std::memcpy(out.data(), &nh, sizeof(nh));
        std::memcpy(out.data() + NLMSG_HDRLEN, &rtm, sizeof(rtm));
        std::copy(attrs.begin(), attrs.end(), out.begin() + NLMSG_SPACE(sizeof(rtmsg)));
        return out;
    }
};

bytes netlink_other(uint16_t type, size_t body = 8) {
    nlmsghdr nh{};
    nh.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + body);
    nh.nlmsg_type = type;
    bytes out(NLMSG_HDRLEN + body, 0);
    std::memcpy(out.data(), &nh, sizeof(nh));
    return out;
}

// fpm.rst: version 1, type 1 (netlink), 16-bit big-endian length including the header.
bytes fpm(const std::vector<bytes>& netlink_msgs) {
    bytes out{1, 1, 0, 0};
    for (const auto& m : netlink_msgs)
        out.insert(out.end(), m.begin(), m.end());
    out[2] = static_cast<uint8_t>(out.size() >> 8);
    out[3] = static_cast<uint8_t>(out.size());
    return out;
}
bytes fpm(const bytes& one) {
    return fpm(std::vector<bytes>{one});
}

void set_fpm_len(bytes& m, size_t len) {
    m[2] = static_cast<uint8_t>(len >> 8);
    m[3] = static_cast<uint8_t>(len);
}
void set_nlmsg_len(bytes& m, size_t at, uint32_t len) {
    std::memcpy(m.data() + at, &len, 4);
}

bytes v4_route(const char* dst, uint8_t len, const char* gw, uint32_t oif, uint32_t metric = 20) {
    route_msg r;
    r.dst_len = len;
    r.attr(RTA_DST, v4(dst)).attr(RTA_PRIORITY, u32(metric));
    if (gw)
        r.attr(RTA_GATEWAY, v4(gw));
    if (oif)
        r.attr(RTA_OIF, u32(oif));
    return fpm(r.build());
}

bytes from_hex(const char* hex) {
    bytes out;
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2)
        out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex + i, 2), nullptr, 16)));
    return out;
}

std::vector<fpm_item> decode_ok(const bytes& m, const fpm_decode_options& o = {}) {
    auto r = decode_fpm_message(m, o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    return r.ok() ? r.value() : std::vector<fpm_item>{};
}
std::string decode_error(const bytes& m, const fpm_decode_options& o = {}) {
    auto r = decode_fpm_message(m, o);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string("<no error>") : r.err().message;
}

// ---- real messages captured from FRR 8.4.4 zebra (-M dplane_fpm_nl) in a network namespace:
// static routes 10.97.0.0/24 via 192.0.2.1 + 192.0.2.3 (ECMP), 10.98.0.0/16 blackhole,
// 10.99.0.0/16 via 192.0.2.1, 2001:db8:99::/48 via 2001:db8:1::1, connected 192.0.2.0/24,
// 2001:db8:1::/64 and fe80::/64 on veth d0 (ifindex 3) / d1 (2).
// frr84_nhg_stream: zebra defaults ("fpm use-next-hop-groups"): 8 RTM_NEWNEXTHOP, routes
// carrying only RTA_NH_ID, then 'no ip route 10.99.0.0/16 192.0.2.1' (RTM_DELROUTE).
// frr84_stream: "no fpm use-next-hop-groups": 7 adds with inline next hops; then
// 'ip route 10.99.0.0/16 192.0.2.5' (one FPM message: RTM_DELROUTE + RTM_NEWROUTE with
// RTA_MULTIPATH), then the 10.97.0.0/24 and 10.98.0.0/16 routes removed (2 x RTM_DELROUTE).
// clang-format off
// 864 bytes
constexpr const char* frr84_nhg_stream =
    "010100403c00000068000105000000003c3332ad0a000b000000000008000100100000001400060020010db800010000"
    "000000000000000108000500030000000101002c2800000068000105000000003c3332ad02000b000000000008000100"
    "0400000008000500030000000101002c2800000068000105000000003c3332ad0a000b00000000000800010005000000"
    "08000500030000000101002c2800000068000105000000003c3332ad0a000b0000000000080001000600000008000500"
    "02000000010100282400000068000105000000003c3332ad02000b0000000000080001000c0000000400040001010034"
    "3000000068000105000000003c3332ad02000b0000000000080001000d00000008000600c00002010800050003000000"
    "010100383400000068000105000000003c3332ad00000b0000000000080001000e000000140002000d00000000000000"
    "0f00000000000000010100343000000068000105000000003c3332ad02000b0000000000080001000f00000008000600"
    "c00002030800050003000000010100383400000018000105000000003c3332ad02180000fec400010000000008000100"
    "0a610000080006001400000008001e000e000000010100302c00000018000105000000003c3332ad02100000fec40006"
    "00000000080001000a6200000800060014000000010100383400000018000105000000003c3332ad02100000fec40001"
    "00000000080001000a630000080006001400000008001e000d000000010100383400000018000105000000003c3332ad"
    "02180000fe0200010000000008000100c0000200080006001400000008001e0004000000010100444000000018000104"
    "000000003c3332ad0a400000fe020001000000001400010020010db80001000000000000000000000800060014000000"
    "08001e0005000000010100444000000018000104000000003c3332ad0a300000fec40001000000001400010020010db8"
    "009900000000000000000000080006001400000008001e0010000000010100444000000018000104000000003c3332ad"
    "0a400000fe0200010000000014000100fe800000000000000000000000000000080006001400000008001e0006000000"
    "010100302c00000019000104000000003c3332ad02100000fec4000000000000080001000a6300000800060014000000";

// 700 bytes
constexpr const char* frr84_stream =
    "01010054500000001800010500000000b61cc79102180000fec4000100000000080001000a6100000800060014000000"
    "24000980100000000300000008000500c0000201100000000300000008000500c0000203010100302c00000018000105"
    "00000000b61cc79102100000fec4000600000000080001000a6200000800060014000000010100403c00000018000105"
    "00000000b61cc79102100000fec4000100000000080001000a630000080006001400000008000500c000020108000400"
    "0300000001010038340000001800010500000000b61cc79102180000fe0200010000000008000100c000020008000600"
    "14000000080004000300000001010044400000001800010400000000b61cc7910a400000fe0200010000000014000100"
    "20010db80001000000000000000000000800060014000000080004000300000001010058540000001800010400000000"
    "b61cc7910a300000fec40001000000001400010020010db8009900000000000000000000080006001400000014000500"
    "20010db8000100000000000000000001080004000300000001010044400000001800010400000000b61cc7910a400000"
    "fe0200010000000014000100fe8000000000000000000000000000000800060014000000080004000200000001010080"
    "2c0000001900010400000000b61cc79102100000fec4000000000000080001000a630000080006001400000050000000"
    "1800010500000000b61cc79102100000fec4000100000000080001000a63000008000600140000002400098010000000"
    "0300000008000500c0000201100000000300000008000500c0000205010100302c0000001900010400000000b61cc791"
    "02180000fec4000000000000080001000a6100000800060014000000010100302c0000001900010400000000b61cc791"
    "02100000fec4000000000000080001000a6200000800060014000000";
// clang-format on

// ---- decoder: valid messages

TEST(fpm_decode, ipv4_add_single_next_hop) {
    const auto items = decode_ok(v4_route("10.1.0.0", 16, "192.0.2.1", 3, 20));
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].kind, fpm_item_kind::route);
    const auto& u = items[0].route;
    EXPECT_TRUE(u.add);
    EXPECT_EQ(u.family, ip_family::ipv4);
    EXPECT_EQ(u.prefix, ip(v4("10.1.0.0")));
    EXPECT_EQ(u.prefix_len, 16);
    EXPECT_EQ(u.table, 254u);
    EXPECT_EQ(u.protocol, 196);
    EXPECT_EQ(u.metric, 20u);
    EXPECT_FALSE(u.blackhole);
    ASSERT_EQ(u.next_hops.size(), 1u);
    EXPECT_TRUE(u.next_hops[0].has_gateway);
    EXPECT_EQ(u.next_hops[0].gateway, ip(v4("192.0.2.1")));
    EXPECT_EQ(u.next_hops[0].ifindex, 3u);
    EXPECT_EQ(u.next_hops[0].weight, 1);
    EXPECT_EQ(format_update(u),
              "add 10.1.0.0/16 table 254 proto 196 metric 20 via 192.0.2.1 dev 3 weight 1");
}

TEST(fpm_decode, ipv4_connected_and_default_route) {
    auto items = decode_ok(v4_route("192.0.2.0", 24, nullptr, 3));
    ASSERT_EQ(items.size(), 1u);
    ASSERT_EQ(items[0].route.next_hops.size(), 1u);
    EXPECT_FALSE(items[0].route.next_hops[0].has_gateway);
    EXPECT_EQ(items[0].route.next_hops[0].ifindex, 3u);

    // 0.0.0.0/0: zebra sends RTA_DST anyway; without it the kernel reads the default route.
    route_msg r;
    r.attr(RTA_GATEWAY, v4("192.0.2.1"));
    items = decode_ok(fpm(r.build()));
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].route.prefix_len, 0);
    EXPECT_EQ(format_prefix(ip_family::ipv4, items[0].route.prefix, 0), "0.0.0.0/0");
}

TEST(fpm_decode, ipv6_add_and_delete) {
    route_msg r;
    r.family = AF_INET6;
    r.dst_len = 48;
    r.attr(RTA_DST, v6("2001:db8:99::"))
        .attr(RTA_GATEWAY, v6("2001:db8:1::1"))
        .attr(RTA_OIF, u32(3));
    auto items = decode_ok(fpm(r.build()));
    ASSERT_EQ(items.size(), 1u);
    const fpm_route_update u = items[0].route;
    EXPECT_TRUE(u.add);
    EXPECT_EQ(u.family, ip_family::ipv6);
    EXPECT_EQ(format_prefix(u.family, u.prefix, u.prefix_len), "2001:db8:99::/48");
    ASSERT_EQ(u.next_hops.size(), 1u);
    EXPECT_EQ(format_address(u.family, u.next_hops[0].gateway), "2001:db8:1::1");

    route_msg d;
    d.type = RTM_DELROUTE;
    d.family = AF_INET6;
    d.dst_len = 48;
    d.rtm_type = RTN_UNSPEC; // as zebra sends deletes
    d.attr(RTA_DST, v6("2001:db8:99::"));
    items = decode_ok(fpm(d.build()));
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].kind, fpm_item_kind::route);
    EXPECT_FALSE(items[0].route.add);
    EXPECT_EQ(items[0].route.prefix, u.prefix);
}

TEST(fpm_decode, multipath_with_weights) {
    route_msg r;
    r.dst_len = 24;
    r.attr(RTA_DST, v4("10.97.0.0"))
        .attr(RTA_PRIORITY, u32(20))
        .attr(RTA_MULTIPATH | NLA_F_NESTED, // zebra sets NLA_F_NESTED; the type is masked
              multipath({{v4("192.0.2.1"), 3, 0}, {v4("192.0.2.3"), 4, 4}, {{}, 5, 255}}));
    const auto items = decode_ok(fpm(r.build()));
    ASSERT_EQ(items.size(), 1u);
    const auto& hops = items[0].route.next_hops;
    ASSERT_EQ(hops.size(), 3u);
    EXPECT_EQ(hops[0].gateway, ip(v4("192.0.2.1")));
    EXPECT_EQ(hops[0].ifindex, 3u);
    EXPECT_EQ(hops[0].weight, 1);
    EXPECT_EQ(hops[1].gateway, ip(v4("192.0.2.3")));
    EXPECT_EQ(hops[1].weight, 5);
    EXPECT_FALSE(hops[2].has_gateway);
    EXPECT_EQ(hops[2].ifindex, 5u);
    EXPECT_EQ(hops[2].weight, 256);

    route_msg r6;
    r6.family = AF_INET6;
    r6.dst_len = 64;
    r6.attr(RTA_DST, v6("2001:db8:5::"))
        .attr(RTA_MULTIPATH, multipath({{v6("fe80::1"), 3, 1}, {v6("fe80::2"), 3, 2}}));
    const auto items6 = decode_ok(fpm(r6.build()));
    ASSERT_EQ(items6.size(), 1u);
    ASSERT_EQ(items6[0].route.next_hops.size(), 2u);
    EXPECT_EQ(items6[0].route.next_hops[0].weight, 2);
    EXPECT_EQ(items6[0].route.next_hops[1].weight, 3);
    EXPECT_EQ(format_address(ip_family::ipv6, items6[0].route.next_hops[1].gateway), "fe80::2");
}

TEST(fpm_decode, blackhole_types) {
    for (uint8_t t : {RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT}) {
        route_msg r;
        r.dst_len = 16;
        r.rtm_type = t;
        r.attr(RTA_DST, v4("10.98.0.0")).attr(RTA_PRIORITY, u32(20));
        const auto items = decode_ok(fpm(r.build()));
        ASSERT_EQ(items.size(), 1u);
        EXPECT_EQ(items[0].kind, fpm_item_kind::route);
        EXPECT_TRUE(items[0].route.blackhole);
        EXPECT_EQ(items[0].route.route_type, t);
        EXPECT_TRUE(items[0].route.next_hops.empty());
    }
    route_msg bad;
    bad.dst_len = 16;
    bad.rtm_type = RTN_BLACKHOLE;
    bad.attr(RTA_DST, v4("10.98.0.0")).attr(RTA_GATEWAY, v4("192.0.2.1"));
    EXPECT_NE(decode_error(fpm(bad.build())).find("blackhole"), std::string::npos);
    bad.table = 68; // also outside the learned table (fpm_fuzz found this one)
    bad.rtm_type = RTN_UNREACHABLE;
    EXPECT_NE(decode_error(fpm(bad.build())).find("blackhole"), std::string::npos);
}

TEST(fpm_decode, tables) {
    route_msg r;
    r.dst_len = 8;
    r.table = 10;
    r.attr(RTA_DST, v4("10.0.0.0")).attr(RTA_OIF, u32(2));
    auto items = decode_ok(fpm(r.build()));
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].kind, fpm_item_kind::other_table);
    EXPECT_EQ(items[0].route.table, 10u);
    EXPECT_NE(items[0].note.find("table 10"), std::string::npos) << items[0].note;

    items = decode_ok(fpm(r.build()), fpm_decode_options{10});
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].kind, fpm_item_kind::route);

    // Tables >= 256: rtm_table is RT_TABLE_UNSPEC (or RT_TABLE_COMPAT) and RTA_TABLE says.
    route_msg big;
    big.dst_len = 8;
    big.table = RT_TABLE_UNSPEC;
    big.attr(RTA_TABLE, u32(1000)).attr(RTA_DST, v4("10.0.0.0")).attr(RTA_OIF, u32(2));
    items = decode_ok(fpm(big.build()));
    EXPECT_EQ(items[0].kind, fpm_item_kind::other_table);
    EXPECT_EQ(items[0].route.table, 1000u);
    items = decode_ok(fpm(big.build()), fpm_decode_options{1000});
    EXPECT_EQ(items[0].kind, fpm_item_kind::route);

    // RTA_TABLE wins over rtm_table: main given by attribute only.
    route_msg main_by_attr;
    main_by_attr.dst_len = 8;
    main_by_attr.table = RT_TABLE_UNSPEC;
    main_by_attr.attr(RTA_TABLE, u32(254)).attr(RTA_DST, v4("10.0.0.0")).attr(RTA_OIF, u32(2));
    EXPECT_EQ(decode_ok(fpm(main_by_attr.build()))[0].kind, fpm_item_kind::route);
}

TEST(fpm_decode, update_is_delete_then_add_in_one_fpm_message) {
    // dplane_fpm_nl encodes a route update as RTM_DELROUTE followed by RTM_NEWROUTE in one
    // FPM message (fpm_nl_enqueue), unless "fpm use-route-replace" is on.
    route_msg d;
    d.type = RTM_DELROUTE;
    d.dst_len = 16;
    d.rtm_type = RTN_UNSPEC;
    d.attr(RTA_DST, v4("10.99.0.0"));
    route_msg a;
    a.dst_len = 16;
    a.attr(RTA_DST, v4("10.99.0.0")).attr(RTA_GATEWAY, v4("192.0.2.5")).attr(RTA_OIF, u32(3));
    const auto items = decode_ok(fpm({d.build(), a.build()}));
    ASSERT_EQ(items.size(), 2u);
    EXPECT_FALSE(items[0].route.add);
    EXPECT_TRUE(items[1].route.add);
    EXPECT_EQ(items[1].route.next_hops[0].gateway, ip(v4("192.0.2.5")));
}

TEST(fpm_decode, unknown_attributes_are_skipped) {
    route_msg r;
    r.dst_len = 16;
    r.attr(RTA_ENCAP_TYPE, bytes{1, 0})
        .attr(RTA_DST, v4("10.5.0.0"))
        .attr(RTA_PREFSRC, v4("192.0.2.2"))
        .attr(RTA_ENCAP | NLA_F_NESTED, bytes(13, 0xee)) // odd size: padding follows
        .attr(RTA_NH_ID, u32(77))
        .attr(999, bytes{})
        .attr(RTA_GATEWAY, v4("192.0.2.1"));
    const auto items = decode_ok(fpm(r.build()));
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].kind, fpm_item_kind::route);
    EXPECT_EQ(items[0].route.nhg_id, 77u);
    EXPECT_EQ(items[0].route.next_hops.size(), 1u);
}

TEST(fpm_decode, unsupported_is_reported_not_an_error) {
    struct {
        bytes msg;
        const char* why;
    } cases[] = {
        {fpm(netlink_other(RTM_NEWNEXTHOP)), "netlink type 104"},
        {fpm(netlink_other(RTM_DELNEXTHOP)), "netlink type 105"},
        {fpm(netlink_other(RTM_NEWNEIGH)), "netlink type 28"},
        {fpm(netlink_other(RTM_NEWLINK, 0)), "netlink type 16"},
    };
    for (const auto& c : cases) {
        const auto items = decode_ok(c.msg);
        ASSERT_EQ(items.size(), 1u);
        EXPECT_EQ(items[0].kind, fpm_item_kind::unsupported);
        EXPECT_NE(items[0].note.find(c.why), std::string::npos) << items[0].note;
    }
    route_msg local;
    local.dst_len = 32;
    local.rtm_type = RTN_LOCAL;
    local.attr(RTA_DST, v4("192.0.2.2")).attr(RTA_OIF, u32(3));
    EXPECT_NE(decode_ok(fpm(local.build()))[0].note.find("rtm_type 2"), std::string::npos);

    route_msg mpls;
    mpls.family = AF_MPLS;
    mpls.dst_len = 20;
    EXPECT_EQ(decode_ok(fpm(mpls.build()))[0].kind, fpm_item_kind::unsupported);

    route_msg sadr; // IPv6 source-specific route
    sadr.family = AF_INET6;
    sadr.dst_len = 0;
    sadr.src_len = 64;
    sadr.attr(RTA_OIF, u32(3));
    EXPECT_NE(decode_ok(fpm(sadr.build()))[0].note.find("source-specific"), std::string::npos);

    route_msg nhg_only; // zebra's default "fpm use-next-hop-groups"
    nhg_only.dst_len = 16;
    nhg_only.attr(RTA_DST, v4("10.99.0.0")).attr(RTA_NH_ID, u32(13));
    const auto items = decode_ok(fpm(nhg_only.build()));
    EXPECT_EQ(items[0].kind, fpm_item_kind::unsupported);
    EXPECT_NE(items[0].note.find("no fpm use-next-hop-groups"), std::string::npos);

    route_msg via;
    via.dst_len = 16;
    via.attr(RTA_DST, v4("10.99.0.0")).attr(RTA_VIA, bytes(18, 0)).attr(RTA_OIF, u32(3));
    EXPECT_NE(decode_ok(fpm(via.build()))[0].note.find("RTA_VIA"), std::string::npos);

    // A mix: unsupported parts do not hide the route.
    const bytes route = v4_route("10.1.0.0", 16, "192.0.2.1", 3);
    const auto mixed =
        decode_ok(fpm({netlink_other(RTM_NEWNEXTHOP), bytes(route.begin() + 4, route.end())}));
    ASSERT_EQ(mixed.size(), 2u);
    EXPECT_EQ(mixed[0].kind, fpm_item_kind::unsupported);
    EXPECT_EQ(mixed[1].kind, fpm_item_kind::route);
}

// ---- decoder: every validation rule names its field

struct error_case {
    const char* name;
    bytes msg;
    const char* expect; // substring of the error
};

std::vector<error_case> error_cases() {
    std::vector<error_case> c;
    const bytes good = v4_route("10.1.0.0", 16, "192.0.2.1", 3);
    auto with = [&](auto edit) {
        bytes m = good;
        edit(m);
        return m;
    };
    c.push_back({"empty", bytes{}, "too short for the 4-byte header"});
    c.push_back({"version", with([](bytes& m) { m[0] = 2; }), "version 2"});
    c.push_back({"type_protobuf", with([](bytes& m) { m[1] = 2; }), "message type 2"});
    c.push_back({"fpm_len_short", with([](bytes& m) { set_fpm_len(m, m.size() - 1); }),
                 "FPM header: length"});
    c.push_back({"fpm_len_long", with([](bytes& m) { set_fpm_len(m, m.size() + 4); }),
                 "FPM header: length"});
    c.push_back({"no_netlink", bytes{1, 1, 0, 4}, "carries no netlink message"});
    c.push_back({"trailing_bytes", with([](bytes& m) {
                     m.insert(m.end(), {0, 0, 0, 0});
                     set_fpm_len(m, m.size());
                 }),
                 "too short for struct nlmsghdr"});
    c.push_back({"nlmsg_len_below_16", with([](bytes& m) { set_nlmsg_len(m, 4, 15); }),
                 "nlmsg_len 15 is below 16"});
    c.push_back({"nlmsg_len_zero", with([](bytes& m) { set_nlmsg_len(m, 4, 0); }), "nlmsg_len 0"});
    c.push_back({"nlmsg_len_overrun",
                 with([](bytes& m) { set_nlmsg_len(m, 4, static_cast<uint32_t>(m.size())); }),
                 "overruns the FPM message"});
    c.push_back(
        {"nlmsg_len_huge", with([](bytes& m) { set_nlmsg_len(m, 4, 0xffffffffu); }), "overruns"});
    c.push_back({"rtmsg_short", with([](bytes& m) { set_nlmsg_len(m, 4, 20); }),
                 "too short for struct rtmsg"});
    c.push_back({"nlmsg_type_error", with([](bytes& m) { m[8] = NLMSG_ERROR; }), "nlmsg_type 2"});
    c.push_back(
        {"nlmsg_type_noop", with([](bytes& m) { m[8] = NLMSG_NOOP; }), "not an rtnetlink message"});
    c.push_back({"nlmsg_type_high", with([](bytes& m) {
                     m[8] = 0xff;
                     m[9] = 0x7f;
                 }),
                 "nlmsg_type 32767"});
    c.push_back({"family", with([](bytes& m) { m[4 + 16] = AF_UNSPEC; }), "rtm_family 0"});
    c.push_back({"family_bridge", with([](bytes& m) { m[4 + 16] = AF_BRIDGE; }), "rtm_family 7"});
    {
        route_msg r;
        r.dst_len = 33;
        r.attr(RTA_DST, v4("10.0.0.0")).attr(RTA_OIF, u32(1));
        c.push_back({"dst_len_33", fpm(r.build()), "rtm_dst_len 33 exceeds 32"});
        r.family = AF_INET6;
        r.dst_len = 129;
        r.attrs.clear();
        r.attr(RTA_DST, v6("2001:db8::")).attr(RTA_OIF, u32(1));
        c.push_back({"dst_len_129", fpm(r.build()), "rtm_dst_len 129 exceeds 128"});
    }
    {
        route_msg r;
        r.dst_len = 16;
        r.attr(RTA_DST, bytes{10, 1, 0}).attr(RTA_OIF, u32(1));
        c.push_back({"dst_size_3", fpm(r.build()), "RTA_DST is 3 bytes, expected 4 for AF_INET"});
        r.attrs.clear();
        r.attr(RTA_DST, v6("2001:db8::")).attr(RTA_OIF, u32(1));
        c.push_back({"dst_v6_in_v4", fpm(r.build()), "RTA_DST is 16 bytes, expected 4"});
        route_msg r6;
        r6.family = AF_INET6;
        r6.dst_len = 32;
        r6.attr(RTA_DST, v6("2001:db8::")).attr(RTA_GATEWAY, v4("192.0.2.1"));
        c.push_back(
            {"gw_v4_in_v6", fpm(r6.build()), "RTA_GATEWAY is 4 bytes, expected 16 for AF_INET6"});
    }
    {
        route_msg r;
        r.dst_len = 16;
        r.attr(RTA_DST, v4("10.1.2.0")).attr(RTA_OIF, u32(1));
        c.push_back({"host_bits", fpm(r.build()), "10.1.2.0/16 has host bits set"});
        route_msg r6;
        r6.family = AF_INET6;
        r6.dst_len = 127;
        r6.attr(RTA_DST, v6("2001:db8::1")).attr(RTA_OIF, u32(1));
        c.push_back({"host_bits_v6", fpm(r6.build()), "2001:db8::1/127 has host bits set"});
        route_msg z;
        z.dst_len = 0;
        z.attr(RTA_DST, v4("0.0.0.1")).attr(RTA_OIF, u32(1));
        c.push_back({"host_bits_default", fpm(z.build()), "0.0.0.1/0 has host bits set"});
    }
    {
        route_msg r;
        r.dst_len = 16;
        r.attr(RTA_OIF, u32(1));
        c.push_back({"dst_missing", fpm(r.build()), "RTA_DST missing for a /16 route"});
    }
    {
        route_msg r;
        r.dst_len = 16;
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_OIF, bytes{1, 0});
        c.push_back({"oif_size", fpm(r.build()), "RTA_OIF is 2 bytes, expected 4"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_OIF, u32(1)).attr(RTA_PRIORITY, bytes(8, 0));
        c.push_back({"priority_size", fpm(r.build()), "RTA_PRIORITY is 8 bytes"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_OIF, u32(1)).attr(RTA_TABLE, bytes{254});
        c.push_back({"table_size", fpm(r.build()), "RTA_TABLE is 1 bytes"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_DST, v4("10.2.0.0")).attr(RTA_OIF, u32(1));
        c.push_back({"duplicate_dst", fpm(r.build()), "duplicate RTA_DST"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0"));
        c.push_back({"no_next_hop", fpm(r.build()), "without a next hop"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0"))
            .attr(RTA_GATEWAY, v4("192.0.2.1"))
            .attr(RTA_MULTIPATH, multipath({{v4("192.0.2.2"), 3, 0}}));
        c.push_back(
            {"multipath_and_gateway", fpm(r.build()), "both RTA_MULTIPATH and RTA_GATEWAY"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_MULTIPATH, bytes{});
        c.push_back({"multipath_empty", fpm(r.build()), "RTA_MULTIPATH holds no next hop"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_MULTIPATH, bytes{4, 0, 0, 0, 3, 0, 0, 0});
        c.push_back({"rtnh_len_below_8", fpm(r.build()), "rtnh_len 4 is below 8"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_MULTIPATH, bytes{16, 0, 0, 0, 3, 0, 0, 0});
        c.push_back({"rtnh_len_overrun", fpm(r.build()), "rtnh_len 16 overruns RTA_MULTIPATH"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_MULTIPATH, bytes{8, 0, 0, 0, 3, 0, 0, 0, 1, 2});
        c.push_back({"rtnexthop_trailing", fpm(r.build()), "too short for struct rtnexthop"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_MULTIPATH, multipath({{v6("fe80::1"), 3, 0}}));
        c.push_back({"multipath_gw_size", fpm(r.build()),
                     "next hop 0: RTA_GATEWAY is 16 bytes, expected 4"});
        r.attrs.clear();
        r.attr(RTA_DST, v4("10.1.0.0")).attr(RTA_MULTIPATH, multipath({{v4("192.0.2.2"), -1, 0}}));
        c.push_back({"rtnh_ifindex_negative", fpm(r.build()), "rtnh_ifindex -1"});
    }
    c.push_back({"rta_len_below_4", with([](bytes& m) {
                     m[4 + 28] = 3;
                     m[4 + 29] = 0;
                 }),
                 "rta_len 3 is below 4"});
    c.push_back({"rta_len_overrun", with([](bytes& m) {
                     m[4 + 28] = 200;
                     m[4 + 29] = 0;
                 }),
                 "RTA_DST (type 1) rta_len 200 overruns the message"});
    c.push_back({"attr_trailing", with([](bytes& m) {
                     m.insert(m.end(), {0, 0, 0, 0});
                     set_fpm_len(m, m.size());
                     set_nlmsg_len(m, 4, static_cast<uint32_t>(m.size() - 6));
                 }),
                 "2 trailing bytes, too short for an rtattr header"});
    // A bad second message spoils the whole FPM message.
    {
        route_msg bad;
        bad.dst_len = 40;
        c.push_back({"second_message_bad", fpm({bytes(good.begin() + 4, good.end()), bad.build()}),
                     "FPM netlink message 1 (RTM_NEWROUTE): rtm_dst_len 40"});
    }
    return c;
}

TEST(fpm_decode, every_validation_rule_gives_a_named_error) {
    for (const auto& c : error_cases()) {
        SCOPED_TRACE(c.name);
        const std::string e = decode_error(c.msg);
        EXPECT_NE(e.find(c.expect), std::string::npos) << c.name << ": " << e;
    }
}

TEST(fpm_decode, every_truncation_is_an_error) {
    route_msg r;
    r.dst_len = 24;
    r.attr(RTA_DST, v4("10.97.0.0"))
        .attr(RTA_PRIORITY, u32(20))
        .attr(RTA_MULTIPATH, multipath({{v4("192.0.2.1"), 3, 0}, {v4("192.0.2.3"), 3, 1}}));
    route_msg r6;
    r6.family = AF_INET6;
    r6.dst_len = 48;
    r6.attr(RTA_DST, v6("2001:db8:99::"))
        .attr(RTA_GATEWAY, v6("2001:db8:1::1"))
        .attr(RTA_OIF, u32(3));
    for (const bytes& whole : {fpm(r.build()), fpm(r6.build())}) {
        ASSERT_TRUE(decode_fpm_message(whole).ok());
        for (size_t n = 0; n < whole.size(); ++n) {
            bytes cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
            EXPECT_FALSE(decode_fpm_message(cut).ok()) << "cut at " << n;
            // The same with an FPM length that agrees: the netlink lengths must catch it.
            if (n >= 4) {
                set_fpm_len(cut, n);
                EXPECT_FALSE(decode_fpm_message(cut).ok()) << "cut at " << n << " (length fixed)";
            }
        }
    }
}

TEST(fpm_decode, lying_length_fields_never_read_out_of_bounds) {
    const bytes good = v4_route("10.1.0.0", 16, "192.0.2.1", 3);
    const auto truth = decode_ok(good);
    // nlmsg_len: every value up to beyond the message.
    for (uint32_t len = 0; len < good.size() + 64; ++len) {
        bytes m = good;
        set_nlmsg_len(m, 4, len);
        auto r = decode_fpm_message(m);
        if (len != good.size() - 4) {
            EXPECT_FALSE(r.ok()) << "nlmsg_len " << len;
        }
    }
    for (uint32_t len : {0x10000u, 0x7fffffffu, 0x80000000u, 0xfffffffcu, 0xffffffffu}) {
        bytes m = good;
        set_nlmsg_len(m, 4, len);
        EXPECT_FALSE(decode_fpm_message(m).ok());
    }
    // Every rta_len of every attribute.
    for (size_t at = 4 + 28; at + 4 <= good.size();) {
        const uint16_t real = static_cast<uint16_t>(good[at] | (good[at + 1] << 8));
        for (uint32_t len = 0; len < 0x10000; len += (len < 300 ? 1 : 997)) {
            bytes m = good;
            m[at] = static_cast<uint8_t>(len);
            m[at + 1] = static_cast<uint8_t>(len >> 8);
            auto r = decode_fpm_message(m);
            if (len > m.size() - at || len < 4) {
                EXPECT_FALSE(r.ok()) << "attr at " << at << " rta_len " << len;
            }
        }
        at += (real + 3u) & ~3u;
    }
    // FPM length: every value.
    for (uint32_t len = 0; len < 0x10000; ++len) {
        bytes m = good;
        set_fpm_len(m, len);
        EXPECT_EQ(decode_fpm_message(m).ok(), len == good.size());
    }
}

TEST(fpm_decode, random_garbage_and_mutations_never_crash) {
    std::mt19937 rng(20261129);
    const std::vector<bytes> seeds = {
        v4_route("10.1.0.0", 16, "192.0.2.1", 3),
        fpm([] {
            route_msg r;
            r.dst_len = 24;
            r.attr(RTA_DST, v4("10.97.0.0"))
                .attr(RTA_MULTIPATH, multipath({{v4("192.0.2.1"), 3, 0}, {v4("192.0.2.3"), 3, 1}}));
            return r.build();
        }()),
    };
    size_t ok = 0;
    for (int i = 0; i < 100000; ++i) {
        bytes m;
        if (i % 2 == 0) { // pure garbage, half of it behind a plausible FPM header
            m.resize(rng() % 160);
            for (auto& b : m)
                b = static_cast<uint8_t>(rng());
            if (i % 4 == 0 && m.size() >= 4) {
                m[0] = 1;
                m[1] = 1;
                set_fpm_len(m, m.size());
            }
        } else { // a valid message with a few bytes changed, lengths kept consistent or not
            m = seeds[rng() % seeds.size()];
            for (int k = 1 + rng() % 4; k > 0; --k)
                m[rng() % m.size()] = static_cast<uint8_t>(rng());
            if (rng() % 2)
                set_fpm_len(m, m.size());
        }
        auto r = decode_fpm_message(m);
        if (r.ok()) {
            ++ok;
            for (const auto& item : r.value()) {
                if (item.kind == fpm_item_kind::route) { // whatever passed obeys the rules
                    EXPECT_LE(item.route.prefix_len, max_prefix_len(item.route.family));
                }
            }
        }
    }
    EXPECT_GT(ok, 0u); // mutations of unchecked bytes (metric, gateway) still decode
}

// ---- framer

TEST(fpm_framer, several_messages_in_one_chunk) {
    const bytes a = v4_route("10.1.0.0", 16, "192.0.2.1", 3);
    const bytes b = v4_route("10.2.0.0", 16, "192.0.2.1", 3);
    bytes chunk = a;
    chunk.insert(chunk.end(), b.begin(), b.end());
    chunk.insert(chunk.end(), a.begin(), a.begin() + 5); // and the start of a third
    fpm_framer f;
    ASSERT_TRUE(f.feed(chunk).ok());
    auto m1 = f.next();
    ASSERT_TRUE(m1.ok() && m1.value().has_value());
    EXPECT_EQ(bytes(m1.value()->begin(), m1.value()->end()), a);
    auto m2 = f.next();
    ASSERT_TRUE(m2.ok() && m2.value().has_value());
    EXPECT_EQ(bytes(m2.value()->begin(), m2.value()->end()), b);
    auto m3 = f.next();
    ASSERT_TRUE(m3.ok());
    EXPECT_FALSE(m3.value().has_value());
    EXPECT_EQ(f.buffered(), 5u);
    ASSERT_TRUE(f.feed(std::span<const uint8_t>(a).subspan(5)).ok());
    m3 = f.next();
    ASSERT_TRUE(m3.ok() && m3.value().has_value());
    EXPECT_EQ(bytes(m3.value()->begin(), m3.value()->end()), a);
    EXPECT_EQ(f.buffered(), 0u);
}

TEST(fpm_framer, message_split_byte_by_byte) {
    bytes stream;
    std::vector<bytes> sent;
    for (int i = 0; i < 5; ++i) {
        const std::string dst = "10." + std::to_string(i) + ".0.0";
        sent.push_back(v4_route(dst.c_str(), 16, "192.0.2.1", 3));
        stream.insert(stream.end(), sent.back().begin(), sent.back().end());
    }
    fpm_framer f;
    std::vector<bytes> got;
    for (uint8_t byte : stream) {
        ASSERT_TRUE(f.feed(std::span<const uint8_t>(&byte, 1)).ok());
        for (;;) {
            auto m = f.next();
            ASSERT_TRUE(m.ok()) << m.err().message;
            if (!m.value())
                break;
            got.emplace_back(m.value()->begin(), m.value()->end());
        }
    }
    EXPECT_EQ(got, sent);
}

TEST(fpm_framer, garbage_poisons_the_stream) {
    fpm_framer f;
    const bytes garbage{'G', 'E', 'T', ' ', '/'};
    ASSERT_TRUE(f.feed(garbage).ok());
    auto m = f.next();
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.err().message.find("version 71"), std::string::npos) << m.err().message;
    EXPECT_TRUE(f.poisoned());
    // Stays poisoned, whatever comes next, until reset (new session).
    EXPECT_FALSE(f.feed(v4_route("10.1.0.0", 16, "192.0.2.1", 3)).ok());
    EXPECT_FALSE(f.next().ok());
    f.reset();
    ASSERT_TRUE(f.feed(v4_route("10.1.0.0", 16, "192.0.2.1", 3)).ok());
    auto again = f.next();
    ASSERT_TRUE(again.ok() && again.value().has_value());

    fpm_framer type_bad; // detected after two bytes, without waiting for the length
    ASSERT_TRUE(type_bad.feed(bytes{1, 2}).ok());
    EXPECT_NE(type_bad.next().err().message.find("message type 2"), std::string::npos);

    fpm_framer short_len;
    ASSERT_TRUE(short_len.feed(bytes{1, 1, 0, 3}).ok());
    EXPECT_NE(short_len.next().err().message.find("header length 3"), std::string::npos);
}

TEST(fpm_framer, maximum_message_size) {
    const bytes m = v4_route("10.1.0.0", 16, "192.0.2.1", 3);
    fpm_framer small(m.size() - 1);
    ASSERT_TRUE(small.feed(bytes(m.begin(), m.begin() + 4)).ok()); // header alone is enough
    auto r = small.next();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.err().message.find("header length " + std::to_string(m.size())), std::string::npos);

    fpm_framer exact(m.size());
    ASSERT_TRUE(exact.feed(m).ok());
    auto e = exact.next();
    ASSERT_TRUE(e.ok() && e.value().has_value());

    EXPECT_EQ(fpm_framer(1u << 20).max_message_size(), 65535u);
    fpm_framer biggest;
    ASSERT_TRUE(biggest.feed(bytes{1, 1, 0xff, 0xff}).ok());
    auto b = biggest.next(); // legal length: waits for the rest
    ASSERT_TRUE(b.ok());
    EXPECT_FALSE(b.value().has_value());
}

TEST(fpm_framer, random_chunks_and_garbage) {
    std::mt19937 rng(7);
    bytes stream;
    for (int i = 0; i < 200; ++i) {
        const bytes m = v4_route("10.1.0.0", 16, "192.0.2.1", static_cast<uint32_t>(i + 1));
        stream.insert(stream.end(), m.begin(), m.end());
    }
    for (int round = 0; round < 200; ++round) {
        fpm_framer f;
        size_t got = 0;
        for (size_t off = 0; off < stream.size();) {
            const size_t n = std::min<size_t>(1 + rng() % 300, stream.size() - off);
            ASSERT_TRUE(f.feed(std::span<const uint8_t>(stream).subspan(off, n)).ok());
            off += n;
            for (auto m = f.next(); m.ok() && m.value(); m = f.next()) {
                ASSERT_TRUE(decode_fpm_message(*m.value()).ok());
                ++got;
            }
        }
        EXPECT_EQ(got, 200u);
    }
    for (int i = 0; i < 20000; ++i) { // garbage: never a crash, poisoned or waiting
        fpm_framer f(1 + rng() % 70000);
        bytes g(rng() % 64);
        for (auto& b : g)
            b = static_cast<uint8_t>(rng());
        if (!g.empty() && rng() % 2)
            g[0] = 1;
        if (g.size() > 1 && rng() % 2)
            g[1] = 1;
        (void)f.feed(g);
        for (int k = 0; k < 4; ++k) {
            auto m = f.next();
            if (!m.ok() || !m.value())
                break;
            (void)decode_fpm_message(*m.value());
        }
    }
}

// ---- learned routes

TEST(learned_routes, add_replace_delete_and_counters) {
    learned_routes store;
    ASSERT_TRUE(store.apply_message(v4_route("10.1.0.0", 16, "192.0.2.1", 3)).ok());
    ASSERT_TRUE(store.apply_message(v4_route("10.2.0.0", 16, "192.0.2.1", 3)).ok());
    ASSERT_TRUE(store.apply_message(v4_route("10.1.0.0", 16, "192.0.2.9", 4)).ok()); // replace
    EXPECT_EQ(store.size(), 2u);
    const route_key k1{ip_family::ipv4, ip(v4("10.1.0.0")), 16};
    ASSERT_NE(store.find(k1), nullptr);
    EXPECT_EQ(store.find(k1)->route.next_hops[0].gateway, ip(v4("192.0.2.9")));
    // Same address, other length: another route.
    ASSERT_TRUE(store.apply_message(v4_route("10.1.0.0", 24, "192.0.2.1", 3)).ok());
    EXPECT_EQ(store.size(), 3u);

    route_msg d;
    d.type = RTM_DELROUTE;
    d.dst_len = 16;
    d.rtm_type = RTN_UNSPEC;
    d.attr(RTA_DST, v4("10.1.0.0"));
    const uint64_t gen = store.generation();
    ASSERT_TRUE(store.apply_message(fpm(d.build())).ok());
    EXPECT_EQ(store.find(k1), nullptr);
    EXPECT_GT(store.generation(), gen);
    ASSERT_TRUE(store.apply_message(fpm(d.build())).ok()); // again: a miss, no change
    EXPECT_EQ(store.size(), 2u);

    EXPECT_FALSE(store.apply_message(bytes{1, 1, 0, 5, 0}).ok());
    ASSERT_TRUE(store.apply_message(fpm(netlink_other(RTM_NEWNEXTHOP))).ok());
    route_msg other;
    other.dst_len = 8;
    other.table = 10;
    other.attr(RTA_DST, v4("10.0.0.0")).attr(RTA_OIF, u32(1));
    ASSERT_TRUE(store.apply_message(fpm(other.build())).ok());

    const auto& c = store.counters();
    EXPECT_EQ(c.adds, 4u);
    EXPECT_EQ(c.deletes, 1u);
    EXPECT_EQ(c.delete_misses, 1u);
    EXPECT_EQ(c.errors, 1u);
    EXPECT_EQ(c.unsupported, 1u);
    EXPECT_EQ(c.other_table, 1u);
    EXPECT_EQ(store.size(), 2u);
}

TEST(learned_routes, a_bad_fpm_message_changes_nothing) {
    learned_routes store;
    route_msg bad;
    bad.dst_len = 40;
    const bytes good = v4_route("10.1.0.0", 16, "192.0.2.1", 3);
    const uint64_t gen = store.generation();
    EXPECT_FALSE(store.apply_message(fpm({bytes(good.begin() + 4, good.end()), bad.build()})).ok());
    EXPECT_EQ(store.size(), 0u);
    EXPECT_EQ(store.generation(), gen);
    EXPECT_EQ(store.counters().errors, 1u);
    EXPECT_EQ(store.counters().adds, 0u);
}

// The server decodes a whole read into one list: a refused message must leave in it only what
// earlier messages brought, not the valid routes that preceded its bad part.
TEST(fpm_decode, appending_a_bad_message_leaves_the_list_as_it_was) {
    route_msg bad;
    bad.dst_len = 40;
    const bytes good = v4_route("10.1.0.0", 16, "192.0.2.1", 3);
    std::vector<fpm_item> items;
    ASSERT_TRUE(decode_fpm_message(v4_route("10.9.0.0", 16, "192.0.2.1", 3), {}, items).ok());
    ASSERT_EQ(items.size(), 1u);
    const auto st =
        decode_fpm_message(fpm({bytes(good.begin() + 4, good.end()), bad.build()}), {}, items);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.err().message.find("FPM netlink message 1"), std::string::npos)
        << st.err().message;
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].route.prefix_len, 16);
    // And a good one appends after it.
    ASSERT_TRUE(decode_fpm_message(good, {}, items).ok());
    EXPECT_EQ(items.size(), 2u);
}

TEST(learned_routes, stale_sweep_and_resync) {
    learned_routes store;
    // The store keeps its stale count incrementally: check it against a walk each time.
    auto stale = [&store] {
        size_t walked = 0;
        store.for_each([&](const route_key&, const learned_route& r) { walked += r.stale; });
        EXPECT_EQ(store.stale_count(), walked);
        return walked;
    };
    for (const char* dst : {"10.1.0.0", "10.2.0.0", "10.3.0.0"})
        ASSERT_TRUE(store.apply_message(v4_route(dst, 16, "192.0.2.1", 3)).ok());
    route_msg r6;
    r6.family = AF_INET6;
    r6.dst_len = 48;
    r6.attr(RTA_DST, v6("2001:db8:99::")).attr(RTA_OIF, u32(3));
    ASSERT_TRUE(store.apply_message(fpm(r6.build())).ok());
    EXPECT_EQ(stale(), 0u);

    store.session_lost();
    EXPECT_EQ(stale(), 4u);
    EXPECT_EQ(store.size(), 4u); // still forwarding during the grace time

    // zebra reconnects and re-sends what it still has (one route changed its next hop).
    ASSERT_TRUE(store.apply_message(v4_route("10.1.0.0", 16, "192.0.2.1", 3)).ok());
    ASSERT_TRUE(store.apply_message(v4_route("10.3.0.0", 16, "192.0.2.7", 3)).ok());
    ASSERT_TRUE(store.apply_message(fpm(r6.build())).ok());
    EXPECT_EQ(stale(), 1u);

    // A second loss before the sweep: everything stale again; nothing re-sent this time.
    store.session_lost();
    EXPECT_EQ(stale(), 4u);
    ASSERT_TRUE(store.apply_message(v4_route("10.1.0.0", 16, "192.0.2.1", 3)).ok());
    EXPECT_EQ(store.sweep_stale(), 3u);
    EXPECT_EQ(store.size(), 1u);
    EXPECT_EQ(stale(), 0u);
    EXPECT_EQ(store.sweep_stale(), 0u);
    EXPECT_EQ(store.counters().swept, 3u);
    EXPECT_EQ(store.counters().session_losses, 2u);

    // for_each visits every route once (in no particular order); counts by family and stale.
    ASSERT_TRUE(store.apply_message(fpm(r6.build())).ok());
    ASSERT_TRUE(store.apply_message(v4_route("10.0.0.0", 16, "192.0.2.1", 3)).ok());
    std::vector<std::string> listed;
    store.for_each([&](const route_key& k, const learned_route& r) {
        listed.push_back(format_prefix(k.family, k.prefix, k.prefix_len) +
                         (r.stale ? " stale" : ""));
    });
    std::sort(listed.begin(), listed.end());
    EXPECT_EQ(store.size(ip_family::ipv4), 2u);
    EXPECT_EQ(store.size(ip_family::ipv6), 1u);
    EXPECT_EQ(store.stale_count(), 0u);
    EXPECT_EQ(listed, (std::vector<std::string>{"10.0.0.0/16", "10.1.0.0/16", "2001:db8:99::/48"}));
}

// ---- real FRR captures

learned_routes replay(const char* hex, size_t chunk) {
    const bytes stream = from_hex(hex);
    learned_routes store;
    fpm_framer f;
    for (size_t off = 0; off < stream.size(); off += chunk) {
        const size_t n = std::min(chunk, stream.size() - off);
        EXPECT_TRUE(f.feed(std::span<const uint8_t>(stream).subspan(off, n)).ok());
        for (auto m = f.next(); m.ok() && m.value(); m = f.next()) {
            auto s = store.apply_message(*m.value());
            EXPECT_TRUE(s.ok()) << s.err().message;
        }
        EXPECT_FALSE(f.poisoned());
    }
    EXPECT_EQ(f.buffered(), 0u);
    return store;
}

TEST(fpm_frr_capture, inline_next_hops) {
    // Before the changes at the end of the capture:
    const bytes stream = from_hex(frr84_stream);
    fpm_framer f;
    ASSERT_TRUE(f.feed(stream).ok());
    std::vector<fpm_route_update> updates;
    for (auto m = f.next(); m.ok() && m.value(); m = f.next()) {
        auto items = decode_fpm_message(*m.value());
        ASSERT_TRUE(items.ok()) << items.err().message;
        for (const auto& i : items.value()) {
            EXPECT_EQ(i.kind, fpm_item_kind::route) << i.note;
            updates.push_back(i.route);
        }
    }
    ASSERT_EQ(updates.size(), 11u);
    EXPECT_EQ(format_update(updates[0]), "add 10.97.0.0/24 table 254 proto 196 metric 20 via "
                                         "192.0.2.1 dev 3 weight 1 via 192.0.2.3 dev 3 weight 1");
    EXPECT_EQ(format_update(updates[1]),
              "add 10.98.0.0/16 table 254 proto 196 metric 20 blackhole");
    EXPECT_EQ(updates[1].route_type, RTN_BLACKHOLE);
    EXPECT_EQ(format_update(updates[2]),
              "add 10.99.0.0/16 table 254 proto 196 metric 20 via 192.0.2.1 dev 3 weight 1");
    EXPECT_EQ(format_update(updates[3]),
              "add 192.0.2.0/24 table 254 proto 2 metric 20 dev 3 weight 1");
    EXPECT_EQ(
        format_update(updates[5]),
        "add 2001:db8:99::/48 table 254 proto 196 metric 20 via 2001:db8:1::1 dev 3 weight 1");
    // 'ip route 10.99.0.0/16 192.0.2.5': one FPM message, delete then add with RTA_MULTIPATH.
    EXPECT_EQ(format_update(updates[7]), "delete 10.99.0.0/16 table 254 proto 196 metric 20");
    EXPECT_EQ(updates[7].route_type, RTN_UNSPEC);
    EXPECT_EQ(format_update(updates[8]), "add 10.99.0.0/16 table 254 proto 196 metric 20 via "
                                         "192.0.2.1 dev 3 weight 1 via 192.0.2.5 dev 3 weight 1");
    EXPECT_FALSE(updates[9].add);
    EXPECT_FALSE(updates[10].add);

    for (size_t chunk : {1u, 3u, 7u, 64u, 1000u}) {
        const auto store = replay(frr84_stream, chunk);
        std::vector<std::string> listed;
        store.for_each([&](const route_key&, const learned_route& r) {
            listed.push_back(format_update(r.route));
        });
        std::sort(listed.begin(), listed.end());
        EXPECT_EQ(listed,
                  (std::vector<std::string>{
                      "add 10.99.0.0/16 table 254 proto 196 metric 20 via 192.0.2.1 dev 3 weight 1 "
                      "via 192.0.2.5 dev 3 weight 1",
                      "add 192.0.2.0/24 table 254 proto 2 metric 20 dev 3 weight 1",
                      "add 2001:db8:1::/64 table 254 proto 2 metric 20 dev 3 weight 1",
                      "add 2001:db8:99::/48 table 254 proto 196 metric 20 via 2001:db8:1::1 dev 3 "
                      "weight 1",
                      "add fe80::/64 table 254 proto 2 metric 20 dev 2 weight 1",
                  }));
        EXPECT_EQ(store.counters().adds, 8u);
        EXPECT_EQ(store.counters().deletes, 3u);
        EXPECT_EQ(store.counters().errors, 0u);
    }
}

TEST(fpm_frr_capture, next_hop_groups_default) {
    const auto store = replay(frr84_nhg_stream, 5);
    // 8 RTM_NEWNEXTHOP and 6 routes naming a group only are skipped; the blackhole (no group)
    // is learned; the final delete of 10.99.0.0/16 finds nothing.
    EXPECT_EQ(store.counters().unsupported, 14u);
    EXPECT_EQ(store.counters().adds, 1u);
    EXPECT_EQ(store.counters().delete_misses, 1u);
    EXPECT_EQ(store.counters().errors, 0u);
    ASSERT_EQ(store.size(), 1u);
    store.for_each([](const route_key&, const learned_route& r) {
        EXPECT_EQ(format_update(r.route),
                  "add 10.98.0.0/16 table 254 proto 196 metric 20 blackhole");
    });
}

TEST(fpm_frr_capture, every_truncation_of_real_messages) {
    for (const char* hex : {frr84_stream, frr84_nhg_stream}) {
        const bytes stream = from_hex(hex);
        fpm_framer f;
        ASSERT_TRUE(f.feed(stream).ok());
        for (auto m = f.next(); m.ok() && m.value(); m = f.next()) {
            const bytes whole(m.value()->begin(), m.value()->end());
            // A cut between two netlink messages (zebra's delete + add) leaves a valid message.
            std::vector<size_t> boundaries;
            for (size_t at = 4; at + 4 <= whole.size();) {
                uint32_t len = 0;
                std::memcpy(&len, whole.data() + at, 4);
                at += (len + 3u) & ~3u;
                boundaries.push_back(at);
            }
            for (size_t n = 4; n < whole.size(); ++n) {
                bytes cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
                set_fpm_len(cut, n);
                const bool boundary =
                    std::find(boundaries.begin(), boundaries.end(), n) != boundaries.end();
                EXPECT_EQ(decode_fpm_message(cut).ok(), boundary) << "cut at " << n;
            }
        }
    }
}

} // namespace
