// Parsers, checksums and builders in forwarding/packet.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "forwarding/packet.hpp"

using namespace sagd::fwd;
using bytes = std::vector<uint8_t>;

namespace {

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return (a << 24) | (b << 16) | (c << 8) | d;
}
constexpr mac_bytes our_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr mac_bytes peer_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
constexpr uint32_t our_ip = ip(192, 168, 1, 1);
constexpr uint32_t peer_ip = ip(192, 168, 1, 20);

uint16_t be16(const uint8_t* p) {
    return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
uint32_t be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
bool sums_ok(const uint8_t* p, size_t n) {
    return internet_checksum(p, n) == 0;
}

struct ip_spec {
    uint8_t ihl = 5;
    uint16_t payload = 8;
    uint8_t proto = 17;
    uint32_t src = peer_ip;
    uint32_t dst = ip(10, 0, 0, 1);
    uint8_t ttl = 64;
    uint16_t frag = 0; // flags + offset field
};

// An IPv4 datagram with a correct header checksum and payload bytes 0, 1, 2, ...
bytes make_ipv4(const ip_spec& s) {
    size_t hl = size_t{s.ihl} * 4;
    bytes b(hl + s.payload);
    b[0] = static_cast<uint8_t>(0x40 | s.ihl);
    put16(&b[2], static_cast<uint16_t>(b.size()));
    put16(&b[4], 0x1234);
    put16(&b[6], s.frag);
    b[8] = s.ttl;
    b[9] = s.proto;
    put32(&b[12], s.src);
    put32(&b[16], s.dst);
    for (size_t i = 20; i < hl; ++i)
        b[i] = 1; // NOP options
    for (size_t i = hl; i < b.size(); ++i)
        b[i] = static_cast<uint8_t>(i - hl);
    ipv4_set_checksum(b.data());
    return b;
}

bytes with_ethernet(const bytes& l3, uint16_t ethertype, const mac_bytes& dst = our_mac,
                    const mac_bytes& src = peer_mac) {
    bytes f(14 + l3.size());
    std::memcpy(f.data(), dst.data(), 6);
    std::memcpy(f.data() + 6, src.data(), 6);
    put16(f.data() + 12, ethertype);
    std::copy(l3.begin(), l3.end(), f.begin() + 14);
    return f;
}

bytes make_echo_request(uint16_t payload_len = 56, uint32_t dst = our_ip, uint16_t frag = 0) {
    ip_spec s;
    s.proto = ip_proto_icmp;
    s.payload = static_cast<uint16_t>(8 + payload_len);
    s.dst = dst;
    s.frag = frag;
    bytes l3 = make_ipv4(s);
    uint8_t* icmp = &l3[20];
    icmp[0] = 8;
    icmp[1] = 0;
    put16(icmp + 2, 0);
    put16(icmp + 4, 0xbeef); // identifier
    put16(icmp + 6, 7);      // sequence
    put16(icmp + 2, internet_checksum(icmp, l3.size() - 20));
    return with_ethernet(l3, ethertype_ipv4);
}

} // namespace

// ---- checksums ----

TEST(checksum, known_header) {
    // The classic example header: checksum 0xb861.
    bytes h{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
            0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    EXPECT_EQ(internet_checksum(h.data(), h.size()), 0xb861);
    ipv4_set_checksum(h.data());
    EXPECT_EQ(be16(&h[10]), 0xb861);
    EXPECT_TRUE(sums_ok(h.data(), h.size()));
    // Odd length: the last byte is the high half of a word.
    uint8_t odd[3] = {0x01, 0x02, 0x03};
    EXPECT_EQ(internet_checksum(odd, 3), static_cast<uint16_t>(~(0x0102 + 0x0300)));
}

TEST(checksum, ttl_decrement_incremental_equals_full) {
    std::mt19937 rng(7);
    for (int i = 0; i < 200'000; ++i) {
        uint8_t h[60];
        for (auto& x : h)
            x = static_cast<uint8_t>(rng());
        uint8_t ihl = static_cast<uint8_t>(5 + rng() % 11);
        h[0] = static_cast<uint8_t>(0x40 | ihl);
        if (i % 4 == 0)
            std::memset(h + 1, i % 8 == 0 ? 0xff : 0x00, 7); // edge words
        h[8] = static_cast<uint8_t>(2 + rng() % 254);
        ipv4_set_checksum(h);
        uint8_t full[60];
        std::memcpy(full, h, sizeof h);
        full[8] = static_cast<uint8_t>(full[8] - 1);
        ipv4_set_checksum(full);
        ASSERT_TRUE(ipv4_decrement_ttl(h));
        ASSERT_EQ(std::memcmp(h, full, sizeof h), 0) << "iteration " << i;
        ASSERT_TRUE(sums_ok(h, size_t{ihl} * 4));
    }
    uint8_t h[20] = {0x45};
    for (uint8_t ttl : {0, 1}) {
        h[8] = ttl;
        ipv4_set_checksum(h);
        uint8_t before[20];
        std::memcpy(before, h, 20);
        EXPECT_FALSE(ipv4_decrement_ttl(h));
        EXPECT_EQ(std::memcmp(h, before, 20), 0);
    }
}

// ---- Ethernet ----

TEST(parse_ethernet, untagged_tagged_and_errors) {
    bytes f = with_ethernet(bytes(20, 0), ethertype_ipv4);
    ethernet_info e;
    ASSERT_EQ(parse_ethernet(f.data(), f.size(), e), parse_status::ok);
    EXPECT_EQ(e.ethertype, ethertype_ipv4);
    EXPECT_EQ(e.l3_offset, 14);
    EXPECT_FALSE(e.has_vlan);
    EXPECT_EQ(std::memcmp(e.dst, our_mac.data(), 6), 0);
    EXPECT_EQ(std::memcmp(e.src, peer_mac.data(), 6), 0);

    bytes t = f;
    uint8_t tag[4] = {0x81, 0x00, 0x20, 0x64}; // PCP 1, VID 100
    t.insert(t.begin() + 12, tag, tag + 4);
    ASSERT_EQ(parse_ethernet(t.data(), t.size(), e), parse_status::ok);
    EXPECT_TRUE(e.has_vlan);
    EXPECT_EQ(e.vlan_tci, 0x2064);
    EXPECT_EQ(e.ethertype, ethertype_ipv4);
    EXPECT_EQ(e.l3_offset, 18);
    for (size_t n = 0; n < 18; ++n) {
        auto st = parse_ethernet(t.data(), n, e);
        EXPECT_EQ(st, parse_status::truncated) << n;
    }
    for (size_t n = 0; n < 14; ++n)
        EXPECT_EQ(parse_ethernet(f.data(), n, e), parse_status::truncated) << n;

    bytes q = t;
    q[16] = 0x81;
    q[17] = 0x00;
    EXPECT_EQ(parse_ethernet(q.data(), q.size(), e), parse_status::vlan_stack);
    bytes ad = f;
    put16(&ad[12], ethertype_qinq);
    EXPECT_EQ(parse_ethernet(ad.data(), ad.size(), e), parse_status::vlan_stack);
    bytes l = f;
    put16(&l[12], 46); // 802.3 length
    EXPECT_EQ(parse_ethernet(l.data(), l.size(), e), parse_status::not_ethernet_ii);
}

// ---- IPv4 ----

TEST(parse_ipv4, valid_with_and_without_options) {
    for (uint8_t ihl = 5; ihl <= 15; ++ihl) {
        ip_spec s;
        s.ihl = ihl;
        s.payload = 30;
        s.frag = 0x2000 | 3; // MF, offset 24 bytes
        bytes b = make_ipv4(s);
        b.resize(b.size() + 7, 0xee); // Ethernet padding after the datagram is fine
        ipv4_info h;
        ASSERT_EQ(parse_ipv4(b.data(), b.size(), h), parse_status::ok) << int{ihl};
        EXPECT_EQ(h.header_len, ihl * 4);
        EXPECT_EQ(h.total_length, ihl * 4 + 30);
        EXPECT_EQ(h.ttl, 64);
        EXPECT_EQ(h.protocol, 17);
        EXPECT_EQ(h.src, peer_ip);
        EXPECT_EQ(h.dst, ip(10, 0, 0, 1));
        EXPECT_EQ(h.id, 0x1234);
        EXPECT_TRUE(h.more_fragments);
        EXPECT_FALSE(h.dont_fragment);
        EXPECT_EQ(h.fragment_offset, 24);
        EXPECT_TRUE(h.is_fragment());
    }
}

TEST(parse_ipv4, truncated_at_every_length) {
    for (uint8_t ihl : {5, 6, 15}) {
        ip_spec s;
        s.ihl = ihl;
        s.payload = 40;
        bytes b = make_ipv4(s);
        size_t hl = size_t{ihl} * 4;
        for (size_t n = 0; n < b.size(); ++n) {
            bytes cut(b.begin(), b.begin() + static_cast<long>(n)); // exact size: ASan-friendly
            ipv4_info h;
            parse_status st = parse_ipv4(cut.data(), n, h);
            parse_status want = n < 20   ? parse_status::truncated
                                : n < hl ? parse_status::bad_ihl
                                         : parse_status::bad_total_length;
            EXPECT_EQ(st, want) << "ihl " << int{ihl} << " len " << n << ": " << to_string(st);
        }
    }
}

TEST(parse_ipv4, lying_fields_and_bad_checksum) {
    bytes b = make_ipv4({});
    ipv4_info h;
    auto fix = [](bytes x) {
        ipv4_set_checksum(x.data());
        return x;
    };
    bytes v6 = b;
    v6[0] = 0x65;
    EXPECT_EQ(parse_ipv4(fix(v6).data(), b.size(), h), parse_status::bad_version);
    bytes ihl4 = b;
    ihl4[0] = 0x44;
    EXPECT_EQ(parse_ipv4(ihl4.data(), ihl4.size(), h), parse_status::bad_ihl);
    bytes ihl15 = b; // header claims 60 bytes, only 28 there
    ihl15[0] = 0x4f;
    EXPECT_EQ(parse_ipv4(ihl15.data(), ihl15.size(), h), parse_status::bad_ihl);
    bytes big = b;
    put16(&big[2], 0xffff);
    EXPECT_EQ(parse_ipv4(fix(big).data(), big.size(), h), parse_status::bad_total_length);
    bytes small = b;
    put16(&small[2], 19);
    EXPECT_EQ(parse_ipv4(fix(small).data(), small.size(), h), parse_status::bad_total_length);
    bytes zero = b;
    put16(&zero[2], 0);
    EXPECT_EQ(parse_ipv4(fix(zero).data(), zero.size(), h), parse_status::bad_total_length);
    bytes bad = b;
    bad[11] ^= 1;
    EXPECT_EQ(parse_ipv4(bad.data(), bad.size(), h), parse_status::bad_checksum);
    EXPECT_EQ(parse_ipv4(bad.data(), bad.size(), h, false), parse_status::ok);
    bytes opt = make_ipv4({.ihl = 8});
    opt[25] ^= 0x40; // corrupt an option byte
    EXPECT_EQ(parse_ipv4(opt.data(), opt.size(), h), parse_status::bad_checksum);
}

// ---- ARP ----

TEST(arp, request_bytes) {
    uint8_t f[64];
    ASSERT_EQ(build_arp_request(f, sizeof f, our_mac, our_ip, peer_ip), 60u);
    const uint8_t want[42] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00,
                              0x00, 0x01, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04,
                              0x00, 0x01,                                                 // hdr, op
                              0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc0, 0xa8, 0x01, 0x01, // sender
                              0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x14}; // target
    EXPECT_EQ(std::memcmp(f, want, 42), 0);
    for (size_t i = 42; i < 60; ++i)
        EXPECT_EQ(f[i], 0) << i;
    EXPECT_EQ(build_arp_request(f, 59, our_mac, our_ip, peer_ip), 0u);

    ASSERT_EQ(build_arp_request(f, sizeof f, our_mac, our_ip, peer_ip, 100), 60u); // 18+28, padded
    EXPECT_EQ(be16(f + 12), ethertype_vlan);
    EXPECT_EQ(be16(f + 14), 100);
    EXPECT_EQ(be16(f + 16), ethertype_arp);
    EXPECT_EQ(std::memcmp(f + 18, want + 14, 28), 0);

    ethernet_info e;
    arp_info a;
    ASSERT_EQ(parse_ethernet(f, 60, e), parse_status::ok);
    ASSERT_EQ(parse_arp(f + e.l3_offset, 60 - e.l3_offset, a), parse_status::ok);
    EXPECT_EQ(a.op, arp_op_request);
    EXPECT_EQ(a.sender_ip, our_ip);
    EXPECT_EQ(a.sender_mac, our_mac);
    EXPECT_EQ(a.target_ip, peer_ip);
}

TEST(arp, reply_in_place) {
    uint8_t f[60];
    ASSERT_EQ(build_arp_request(f, sizeof f, peer_mac, peer_ip, our_ip), 60u);
    uint8_t orig[60];
    std::memcpy(orig, f, 60);
    EXPECT_FALSE(arp_reply_in_place(f, 60, our_mac, ip(192, 168, 1, 2))); // not for us
    EXPECT_EQ(std::memcmp(f, orig, 60), 0);
    ASSERT_TRUE(arp_reply_in_place(f, 60, our_mac, our_ip));
    const uint8_t want[42] = {
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc0, 0xa8, 0x01, 0x01,  // sender: us
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0xc0, 0xa8, 0x01, 0x14}; // target: requester
    EXPECT_EQ(std::memcmp(f, want, 42), 0);
    // A reply is not turned around again.
    EXPECT_FALSE(arp_reply_in_place(f, 60, our_mac, our_ip));
    // Tagged request keeps its tag.
    uint8_t t[64];
    ASSERT_EQ(build_arp_request(t, sizeof t, peer_mac, peer_ip, our_ip, 7), 60u);
    ASSERT_TRUE(arp_reply_in_place(t, 60, our_mac, our_ip));
    EXPECT_EQ(be16(t + 14), 7);
    EXPECT_EQ(std::memcmp(t + 18, want + 14, 28), 0);
}

TEST(arp, parse_errors_and_truncation) {
    uint8_t f[60];
    build_arp_request(f, sizeof f, peer_mac, peer_ip, our_ip);
    uint8_t* a = f + 14;
    arp_info info;
    for (size_t n = 0; n < arp_len; ++n) {
        bytes cut(a, a + n);
        EXPECT_EQ(parse_arp(cut.data(), n, info), parse_status::truncated) << n;
    }
    auto mutate = [&](size_t off, uint8_t v) {
        uint8_t c[28];
        std::memcpy(c, a, 28);
        c[off] = v;
        return parse_arp(c, 28, info);
    };
    EXPECT_EQ(mutate(1, 6), parse_status::bad_hardware_type);
    EXPECT_EQ(mutate(2, 0x86), parse_status::bad_protocol_type);
    EXPECT_EQ(mutate(4, 8), parse_status::bad_address_length);
    EXPECT_EQ(mutate(5, 16), parse_status::bad_address_length);
    EXPECT_EQ(mutate(7, 3), parse_status::bad_operation);
    EXPECT_EQ(mutate(7, 0), parse_status::bad_operation);
    EXPECT_EQ(mutate(7, 2), parse_status::ok);
}

// ---- ICMP echo ----

TEST(icmp_echo, reply_in_place) {
    bytes f = make_echo_request(56);
    bytes orig = f;
    ASSERT_EQ(icmp_echo_reply_in_place(f.data(), f.size()), icmp_status::ok);
    EXPECT_EQ(std::memcmp(&f[0], peer_mac.data(), 6), 0);
    EXPECT_EQ(std::memcmp(&f[6], our_mac.data(), 6), 0);
    const uint8_t* l3 = &f[14];
    ipv4_info h;
    ASSERT_EQ(parse_ipv4(l3, f.size() - 14, h), parse_status::ok); // checksum verified
    EXPECT_EQ(h.src, our_ip);
    EXPECT_EQ(h.dst, peer_ip);
    EXPECT_EQ(h.ttl, 64);
    const uint8_t* icmp = l3 + 20;
    EXPECT_EQ(icmp[0], 0);
    EXPECT_EQ(icmp[1], 0);
    EXPECT_TRUE(sums_ok(icmp, 8 + 56));
    EXPECT_EQ(std::memcmp(icmp + 4, &orig[14 + 20 + 4], 4 + 56), 0); // id, seq, data
    // Odd payload length.
    bytes odd = make_echo_request(33);
    ASSERT_EQ(icmp_echo_reply_in_place(odd.data(), odd.size()), icmp_status::ok);
    EXPECT_TRUE(sums_ok(&odd[34], 8 + 33));
}

TEST(icmp_echo, refusals) {
    bytes frag = make_echo_request(56, our_ip, 0x2000);
    EXPECT_EQ(icmp_echo_reply_in_place(frag.data(), frag.size()), icmp_status::fragment);
    bytes bc = make_echo_request(56, 0xffffffff);
    EXPECT_EQ(icmp_echo_reply_in_place(bc.data(), bc.size()), icmp_status::broadcast);
    bytes mc = make_echo_request(56, ip(224, 0, 0, 1));
    EXPECT_EQ(icmp_echo_reply_in_place(mc.data(), mc.size()), icmp_status::broadcast);
    bytes l2bc = make_echo_request(56);
    std::memset(&l2bc[0], 0xff, 6);
    EXPECT_EQ(icmp_echo_reply_in_place(l2bc.data(), l2bc.size()), icmp_status::broadcast);
    bytes bad = make_echo_request(56);
    bad[14 + 20 + 10] ^= 1;
    EXPECT_EQ(icmp_echo_reply_in_place(bad.data(), bad.size()), icmp_status::bad_checksum);
    bytes rep = make_echo_request(56);
    ASSERT_EQ(icmp_echo_reply_in_place(rep.data(), rep.size()), icmp_status::ok);
    EXPECT_EQ(icmp_echo_reply_in_place(rep.data(), rep.size()), icmp_status::not_echo_request);
    bytes zero_src = make_echo_request(56);
    std::memset(&zero_src[14 + 12], 0, 4);
    ipv4_set_checksum(&zero_src[14]);
    EXPECT_EQ(icmp_echo_reply_in_place(zero_src.data(), zero_src.size()), icmp_status::bad_source);
    bytes short_icmp = make_echo_request(0);
    EXPECT_EQ(icmp_echo_reply_in_place(short_icmp.data(), 14 + 20 + 7), icmp_status::malformed);
    bytes arp(60);
    build_arp_request(arp.data(), 60, peer_mac, peer_ip, our_ip);
    EXPECT_EQ(icmp_echo_reply_in_place(arp.data(), arp.size()), icmp_status::malformed);
}

// ---- ICMP errors ----

TEST(icmp_error, time_exceeded_layout) {
    ip_spec s;
    s.payload = 80;
    s.ttl = 1;
    bytes orig = make_ipv4(s);
    uint8_t out[600];
    icmp_error_params p;
    p.kind = icmp_error_kind::time_exceeded;
    p.source = our_ip;
    p.ip_id = 0x4242;
    icmp_build r = build_icmp_error(out, sizeof out, orig.data(), orig.size(), p);
    ASSERT_EQ(r.status, icmp_status::ok);
    ASSERT_EQ(r.length, 20 + 8 + 100);
    ipv4_info h;
    ASSERT_EQ(parse_ipv4(out, r.length, h), parse_status::ok);
    EXPECT_EQ(h.total_length, r.length);
    EXPECT_EQ(h.protocol, ip_proto_icmp);
    EXPECT_EQ(h.src, our_ip);
    EXPECT_EQ(h.dst, peer_ip);
    EXPECT_EQ(h.tos, 0xc0);
    EXPECT_EQ(h.id, 0x4242);
    EXPECT_GT(h.ttl, 1);
    EXPECT_FALSE(h.is_fragment());
    const uint8_t* icmp = out + 20;
    EXPECT_EQ(icmp[0], 11);
    EXPECT_EQ(icmp[1], 0);
    EXPECT_EQ(be32(icmp + 4), 0u);
    EXPECT_TRUE(sums_ok(icmp, r.length - 20u));
    EXPECT_EQ(std::memcmp(icmp + 8, orig.data(), orig.size()), 0);
}

TEST(icmp_error, unreachable_codes_and_576_limit) {
    ip_spec s;
    s.payload = 1480;
    s.frag = 0x4000; // DF
    bytes orig = make_ipv4(s);
    uint8_t out[1600];
    struct {
        icmp_error_kind kind;
        uint8_t code;
    } cases[] = {{icmp_error_kind::net_unreachable, 0},
                 {icmp_error_kind::host_unreachable, 1},
                 {icmp_error_kind::fragmentation_needed, 4}};
    for (auto c : cases) {
        icmp_error_params p;
        p.kind = c.kind;
        p.source = our_ip;
        p.next_hop_mtu = 1400;
        icmp_build r = build_icmp_error(out, sizeof out, orig.data(), orig.size(), p);
        ASSERT_EQ(r.status, icmp_status::ok);
        EXPECT_EQ(r.length, 576); // RFC 1812 4.3.2.3
        EXPECT_EQ(out[20], 3);
        EXPECT_EQ(out[21], c.code);
        EXPECT_EQ(be16(out + 24), 0);
        EXPECT_EQ(be16(out + 26), c.kind == icmp_error_kind::fragmentation_needed ? 1400 : 0);
        EXPECT_TRUE(sums_ok(out + 20, 556));
        EXPECT_TRUE(sums_ok(out, 20));
        EXPECT_EQ(std::memcmp(out + 28, orig.data(), 548), 0);
    }
    // Too small an output buffer.
    icmp_error_params p;
    p.source = our_ip;
    EXPECT_EQ(build_icmp_error(out, 575, orig.data(), orig.size(), p).status, icmp_status::no_room);
    // A tiny original (header + 2 bytes): quote what exists.
    ip_spec tiny;
    tiny.payload = 2;
    bytes t = make_ipv4(tiny);
    icmp_build r = build_icmp_error(out, sizeof out, t.data(), t.size(), p);
    ASSERT_EQ(r.status, icmp_status::ok);
    EXPECT_EQ(r.length, 20 + 8 + 22);
}

TEST(icmp_error, suppressed_cases) {
    uint8_t out[600];
    icmp_error_params p;
    p.source = our_ip;
    auto build = [&](const bytes& orig, bool link_bc = false) {
        icmp_error_params q = p;
        q.link_broadcast = link_bc;
        return build_icmp_error(out, sizeof out, orig.data(), orig.size(), q).status;
    };
    // About an ICMP error: never. About an echo request: yes.
    for (uint8_t type : {3, 4, 5, 11, 12, 42}) {
        ip_spec s;
        s.proto = ip_proto_icmp;
        bytes o = make_ipv4(s);
        o[20] = type;
        EXPECT_EQ(build(o), icmp_status::about_icmp_error) << int{type};
    }
    {
        ip_spec s;
        s.proto = ip_proto_icmp;
        bytes o = make_ipv4(s);
        o[20] = 8;
        EXPECT_EQ(build(o), icmp_status::ok);
        ip_spec e = s;
        e.payload = 0; // ICMP type unreadable: treated as an error
        EXPECT_EQ(build(make_ipv4(e)), icmp_status::about_icmp_error);
    }
    // Fragments: first yes, later no.
    EXPECT_EQ(build(make_ipv4({.frag = 0x2000})), icmp_status::ok);
    EXPECT_EQ(build(make_ipv4({.frag = 0x2001})), icmp_status::fragment);
    EXPECT_EQ(build(make_ipv4({.frag = 0x0010})), icmp_status::fragment);
    // Broadcast / multicast destinations, link-layer broadcast.
    EXPECT_EQ(build(make_ipv4({.dst = 0xffffffff})), icmp_status::broadcast);
    EXPECT_EQ(build(make_ipv4({.dst = ip(239, 1, 1, 1)})), icmp_status::broadcast);
    EXPECT_EQ(build(make_ipv4({}), true), icmp_status::broadcast);
    // Sources that are not a single host.
    for (uint32_t src :
         {0u, ip(0, 1, 2, 3), ip(127, 0, 0, 1), ip(224, 0, 0, 5), ip(240, 0, 0, 1), 0xffffffffu})
        EXPECT_EQ(build(make_ipv4({.src = src})), icmp_status::bad_source) << src;
    // Malformed original.
    bytes m = make_ipv4({});
    m[11] ^= 0xff;
    EXPECT_EQ(build(m), icmp_status::malformed);
}

// ---- garbage ----

TEST(parsers, random_garbage_does_not_crash) {
    std::mt19937_64 rng(99);
    unsigned ok_ip = 0, ok_arp = 0, ok_eth = 0;
    uint8_t out[600];
    for (int it = 0; it < 100'000; ++it) {
        size_t n = rng() % 140;
        bytes b(n); // exact size so out-of-bounds reads show under sanitizers
        for (auto& x : b)
            x = static_cast<uint8_t>(rng());
        // Steer a share of inputs toward plausible headers to reach deeper checks.
        if (n >= 34 && it % 3 == 0) {
            put16(&b[12], it % 2 ? ethertype_ipv4 : ethertype_arp);
            b[14] = static_cast<uint8_t>(0x40 | (b[14] & 0x0f));
            if (it % 2 == 0) {
                put16(&b[14], 1);
                put16(&b[16], ethertype_ipv4);
                b[18] = 6;
                b[19] = 4;
                put16(&b[20], static_cast<uint16_t>(1 + rng() % 2));
            } else if (rng() % 2) {
                put16(&b[16], static_cast<uint16_t>(n - 14 - rng() % 4));
                if (14 + size_t{b[14] & 0x0fu} * 4 <= n)
                    ipv4_set_checksum(&b[14]);
            }
        }
        ethernet_info e;
        parse_status se = parse_ethernet(b.data(), n, e);
        if (se == parse_status::ok) {
            ++ok_eth;
            ASSERT_LE(e.l3_offset, n);
            const uint8_t* l3 = b.data() + e.l3_offset;
            size_t l3n = n - e.l3_offset;
            ipv4_info h;
            if (parse_ipv4(l3, l3n, h) == parse_status::ok) {
                ++ok_ip;
                ASSERT_GE(h.header_len, 20);
                ASSERT_LE(h.header_len, h.total_length);
                ASSERT_LE(h.total_length, l3n);
                ASSERT_TRUE(sums_ok(l3, h.header_len));
            }
            arp_info a;
            if (parse_arp(l3, l3n, a) == parse_status::ok) {
                ++ok_arp;
                ASSERT_GE(l3n, arp_len);
                ASSERT_TRUE(a.op == 1 || a.op == 2);
            }
            icmp_build r = build_icmp_error(out, sizeof out, l3, l3n, {});
            if (r.status == icmp_status::ok) {
                ASSERT_LE(r.length, 576);
                ASSERT_TRUE(sums_ok(out + 20, r.length - 20u));
            }
        }
        bytes c = b;
        (void)icmp_echo_reply_in_place(c.data(), n);
        (void)arp_reply_in_place(c.data(), n, our_mac, our_ip);
    }
    EXPECT_GT(ok_eth, 1000u);
    EXPECT_GT(ok_ip, 100u);
    EXPECT_GT(ok_arp, 100u);
}

// ---- mbuf wrappers ----

#include <rte_mbuf.h>

#include "forwarding/packet_mbuf.hpp"

TEST(packet_mbuf, wrappers) {
    rte_mempool* mp = rte_pktmbuf_pool_create("fwd_unit_pool", 63, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              SOCKET_ID_ANY);
    ASSERT_NE(mp, nullptr);
    rte_mbuf* m = rte_pktmbuf_alloc(mp);
    ASSERT_NE(m, nullptr);
    ASSERT_TRUE(build_arp_request(m, peer_mac, peer_ip, our_ip));
    EXPECT_EQ(rte_pktmbuf_data_len(m), 60);
    ethernet_info e;
    ASSERT_EQ(parse_ethernet(m, e), parse_status::ok);
    EXPECT_EQ(e.ethertype, ethertype_arp);
    ASSERT_TRUE(arp_reply_in_place(m, our_mac, our_ip));
    EXPECT_EQ(std::memcmp(mbuf_bytes(m), peer_mac.data(), 6), 0);

    rte_mbuf* echo = rte_pktmbuf_alloc(mp);
    bytes req = make_echo_request(56);
    std::memcpy(rte_pktmbuf_append(echo, static_cast<uint16_t>(req.size())), req.data(),
                req.size());
    EXPECT_EQ(icmp_echo_reply_in_place(echo), icmp_status::ok);

    rte_mbuf* orig = rte_pktmbuf_alloc(mp);
    bytes udp = with_ethernet(make_ipv4({.payload = 1000}), ethertype_ipv4);
    std::memcpy(rte_pktmbuf_append(orig, static_cast<uint16_t>(udp.size())), udp.data(),
                udp.size());
    rte_mbuf* err = rte_pktmbuf_alloc(mp);
    icmp_error_params p;
    p.kind = icmp_error_kind::host_unreachable;
    p.source = our_ip;
    icmp_build r = build_icmp_error(err, orig, 14, p);
    ASSERT_EQ(r.status, icmp_status::ok);
    EXPECT_EQ(r.length, 576);
    EXPECT_EQ(rte_pktmbuf_data_len(err), 576);
    EXPECT_EQ(build_icmp_error(err, orig, 2000, p).status, icmp_status::malformed);
    rte_pktmbuf_free(m);
    rte_pktmbuf_free(echo);
    rte_pktmbuf_free(orig);
    rte_pktmbuf_free(err);
    rte_mempool_free(mp);
}
