// The whole pipeline, driven synchronously through DPDK ring ports: frames go in on a port's
// rx ring, the workers and the slow path are stepped, frames come out of the tx rings. The
// ESP peer is built from crypto/ with the OpenSSL engine, sagd uses ipsec-mb, so every
// tunnel test is also a cross-engine check.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_udp.h>

#include <arpa/inet.h>

#include "crypto/esp.hpp"
#include "crypto/sa.hpp"
#include "dataplane/gateway.hpp"
#include "dataplane/stats.hpp"
#include "forwarding/bfd.hpp"
#include "forwarding/packet6.hpp"

namespace sagd::dp {
namespace {

constexpr ipv4_addr ip(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return ipv4_addr{a} << 24 | ipv4_addr{b} << 16 | ipv4_addr{c} << 8 | d;
}

const mac_addr wan_gw_mac{0x02, 0, 0, 0, 0xee, 0x01};
const mac_addr host_mac{0x02, 0, 0, 0, 0x10, 0x02};
const mac_addr router_mac{0x02, 0, 0, 0, 0x10, 0xfe};

std::vector<uint8_t> key(uint8_t seed, size_t n = 20) {
    std::vector<uint8_t> k(n);
    for (size_t i = 0; i < n; ++i)
        k[i] = static_cast<uint8_t>(seed + i * 7);
    return k;
}

rte_mempool* pool() {
    static rte_mempool* p =
        rte_pktmbuf_pool_create("gw_test_pool", 8191, 64, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    return p;
}

struct ring_port {
    std::string name;
    rte_ring* rx = nullptr; // we enqueue, sagd receives
    rte_ring* tx = nullptr; // sagd sends, we dequeue
    uint16_t id = 0;
};

ring_port make_ring_port(const std::string& name) {
    ring_port p;
    p.name = name;
    p.rx = rte_ring_create((name + "_rx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    p.tx = rte_ring_create((name + "_tx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    int id = rte_eth_from_rings(name.c_str(), &p.rx, 1, &p.tx, 1, 0);
    EXPECT_GE(id, 0);
    p.id = static_cast<uint16_t>(id);
    char ethdev_name[RTE_ETH_NAME_MAX_LEN];
    EXPECT_EQ(rte_eth_dev_get_name_by_port(p.id, ethdev_name), 0);
    p.name = ethdev_name; // the ring PMD names the port after, not exactly as, the request
    return p;
}

// A frame as bytes.
using frame = std::vector<uint8_t>;

frame ipv4_packet(ipv4_addr src, ipv4_addr dst, uint8_t proto, const frame& l4, uint8_t ttl = 64,
                  bool df = false) {
    frame f(20 + l4.size());
    auto* h = reinterpret_cast<rte_ipv4_hdr*>(f.data());
    h->version_ihl = 0x45;
    h->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(f.size()));
    h->packet_id = rte_cpu_to_be_16(7);
    h->fragment_offset = df ? rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG) : 0;
    h->time_to_live = ttl;
    h->next_proto_id = proto;
    h->src_addr = rte_cpu_to_be_32(src);
    h->dst_addr = rte_cpu_to_be_32(dst);
    h->hdr_checksum = rte_ipv4_cksum(h);
    std::memcpy(f.data() + 20, l4.data(), l4.size());
    return f;
}

frame udp_payload(uint16_t sport, uint16_t dport, size_t n, uint8_t fill = 0xab) {
    frame f(8 + n, fill);
    f[0] = sport >> 8, f[1] = sport & 0xff, f[2] = dport >> 8, f[3] = dport & 0xff;
    f[4] = static_cast<uint8_t>((8 + n) >> 8), f[5] = static_cast<uint8_t>((8 + n) & 0xff);
    f[6] = f[7] = 0;
    return f;
}

frame icmp_echo(uint16_t id, uint16_t seq, size_t n = 32) {
    frame f(8 + n, 0x5a);
    f[0] = 8, f[1] = 0, f[2] = f[3] = 0;
    f[4] = id >> 8, f[5] = id & 0xff, f[6] = seq >> 8, f[7] = seq & 0xff;
    uint16_t c = static_cast<uint16_t>(~rte_raw_cksum(f.data(), f.size()));
    std::memcpy(&f[2], &c, 2);
    return f;
}

frame ether(const rte_ether_addr& dst, const mac_addr& src, uint16_t type, const frame& payload) {
    frame f(std::max<size_t>(60, 14 + payload.size()), 0); // Ethernet pads to 60 bytes
    std::memcpy(f.data(), dst.addr_bytes, 6);
    std::memcpy(f.data() + 6, src.data(), 6);
    f[12] = type >> 8, f[13] = type & 0xff;
    std::copy(payload.begin(), payload.end(), f.begin() + 14);
    return f;
}

rte_mbuf* to_mbuf(const frame& f) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    EXPECT_NE(m, nullptr);
    auto* d = rte_pktmbuf_append(m, static_cast<uint16_t>(f.size()));
    EXPECT_NE(d, nullptr);
    std::memcpy(d, f.data(), f.size());
    return m;
}

frame to_frame(rte_mbuf* m) {
    frame f(rte_pktmbuf_pkt_len(m));
    std::memcpy(f.data(), rte_pktmbuf_mtod(m, const uint8_t*), f.size());
    return f;
}

ipv6_addr a6(const char* text) {
    ipv6_addr a{};
    EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
    return a;
}

frame ipv6_packet(const ipv6_addr& src, const ipv6_addr& dst, uint8_t nh, const frame& l4,
                  uint8_t hop_limit = 64) {
    frame f(40 + l4.size());
    f[0] = 0x60;
    f[4] = static_cast<uint8_t>(l4.size() >> 8), f[5] = static_cast<uint8_t>(l4.size() & 0xff);
    f[6] = nh;
    f[7] = hop_limit;
    std::memcpy(&f[8], src.data(), 16);
    std::memcpy(&f[24], dst.data(), 16);
    std::copy(l4.begin(), l4.end(), f.begin() + 40);
    if (nh == IPPROTO_ICMPV6 || nh == IPPROTO_UDP) { // checksum by DPDK's own routine
        uint16_t c = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(f.data()),
                                           f.data() + 40);
        std::memcpy(&f[40 + (nh == IPPROTO_UDP ? 6 : 2)], &c, 2);
    }
    return f;
}

// An ICMPv6 message (checksum filled by ipv6_packet).
frame icmp6(uint8_t type, const frame& body) {
    frame f(4 + body.size(), 0);
    f[0] = type;
    std::copy(body.begin(), body.end(), f.begin() + 4);
    return f;
}

frame echo6_body(uint16_t id, uint16_t seq, size_t n = 24) {
    frame b(4 + n, 0x6a);
    b[0] = id >> 8, b[1] = id & 0xff, b[2] = seq >> 8, b[3] = seq & 0xff;
    return b;
}

// NS/NA body: flags/reserved, target, optional link-layer option (type 1 source, 2 target).
frame nd_body(const ipv6_addr& target, uint8_t opt_type, const mac_addr* mac, uint8_t flags = 0) {
    frame b(20 + (mac ? 8 : 0), 0);
    b[0] = flags;
    std::memcpy(&b[4], target.data(), 16);
    if (mac) {
        b[20] = opt_type, b[21] = 1;
        std::memcpy(&b[22], mac->data(), 6);
    }
    return b;
}

bool icmp6_checksum_valid(const frame& f, size_t l3 = 14) {
    return rte_ipv6_udptcp_cksum_verify(reinterpret_cast<const rte_ipv6_hdr*>(f.data() + l3),
                                        f.data() + l3 + 40) == 0;
}

uint32_t be32(const uint8_t* p) {
    return uint32_t{p[0]} << 24 | p[1] << 16 | p[2] << 8 | p[3];
}
uint16_t be16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}

class GatewayTest : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_NE(pool(), nullptr); }

    // extra_tunnels: more esp tunnels "bulk-N" (peer 198.51.101.x / 198.51.102.x), each with
    // two inbound SAs (0x30000 + 2N, 0x30001 + 2N) and a route 10.100+N/8... see below.
    void start(unsigned workers = 1, unsigned extra_tunnels = 0) {
        static int instance = 0;
        ++instance;
        lan_ = make_ring_port("gwt_lan" + std::to_string(instance));
        wan_ = make_ring_port("gwt_wan" + std::to_string(instance));
        cfg_.workers = static_cast<uint16_t>(workers);
        port_config lan;
        lan.name = "lan0";
        lan.role = port_role::lan;
        lan.device = lan_.name;
        lan.address = ip(10, 1, 0, 1);
        lan.prefix_len = 24;
        port_config wan;
        wan.name = "wan0";
        wan.role = port_role::wan;
        wan.device = wan_.name;
        wan.address = ip(192, 0, 2, 1);
        wan.prefix_len = 24;
        wan.gateway = ip(192, 0, 2, 254);
        lan.address6 = a6("2001:db8:1::1");
        lan.prefix6_len = 64;
        cfg_.ports = {lan, wan};
        for (int i = 0; i < 2; ++i) {
            tunnel_config t;
            t.name = i == 0 ? "edge-esp" : "edge-udp";
            t.port = "wan0";
            t.peer = ip(198, 51, 100, static_cast<uint8_t>(1 + i));
            t.encap = i == 0 ? tunnel_encap::esp : tunnel_encap::esp_udp;
            t.replay_window = 64;
            t.outbound_sa.spi = 0x1001 + static_cast<uint32_t>(i);
            t.outbound_sa.keymat = key(static_cast<uint8_t>(10 + i));
            sa_config in;
            in.spi = 0x2001 + static_cast<uint32_t>(i);
            in.keymat = key(static_cast<uint8_t>(20 + i));
            t.inbound_sas.push_back(in);
            cfg_.tunnels.push_back(t);
        }
        for (unsigned n = 0; n < extra_tunnels; ++n) {
            tunnel_config t;
            t.name = "bulk-" + std::to_string(n);
            t.port = "wan0";
            t.peer = ip(198, 18, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n & 0xff));
            t.encap = tunnel_encap::esp;
            t.outbound_sa.spi = 0x10000 + n;
            t.outbound_sa.keymat = key(static_cast<uint8_t>(n));
            for (uint32_t k = 0; k < 2; ++k) {
                sa_config in;
                in.spi = 0x30000 + 2 * n + k;
                in.keymat = key(static_cast<uint8_t>(n + 100 + k));
                t.inbound_sas.push_back(in);
            }
            cfg_.tunnels.push_back(t);
            route_config r;
            r.prefix = {ip(172, 16, 0, 0) | (n << 4), 28}; // 172.16.0.0/28, 172.16.0.16/28, ...
            r.tunnel = t.name;
            cfg_.routes.push_back(r);
        }
        route_config r1;
        r1.prefix = {ip(10, 2, 0, 0), 16};
        r1.tunnel = "edge-esp";
        route_config r2;
        r2.prefix = {ip(10, 3, 0, 0), 16};
        r2.tunnel = "edge-udp";
        route_config r3;
        r3.prefix = {ip(10, 9, 0, 0), 16};
        r3.via = route_via::lan_gateway;
        r3.gateway = ip(10, 1, 0, 254);
        cfg_.routes.insert(cfg_.routes.end(), {r1, r2, r3});
        route6_config r6;
        r6.prefix = {a6("2001:db8:2::"), 48};
        r6.tunnel = "edge-esp";
        route6_config r6gw;
        r6gw.prefix = {a6("2001:db8:9::"), 48};
        r6gw.via = route_via::lan_gateway;
        r6gw.gateway = a6("2001:db8:1::fe");
        cfg_.routes6 = {r6, r6gw};
        cfg_.neighbours = {{"wan0", ip(192, 0, 2, 254), wan_gw_mac},
                           {"lan0", ip(10, 1, 0, 2), host_mac},
                           {"lan0", ip(10, 1, 0, 254), router_mac}};
        auto gw = gateway::create(cfg_, pool(), crypto::engine_kind::ipsec_mb);
        ASSERT_TRUE(gw.ok()) << gw.err().message;
        gw_ = std::move(gw.value());
        lan_mac_ = gw_->tbl().ports[0].mac;
        wan_mac_ = gw_->tbl().ports[1].mac;
        for (int i = 0; i < 2; ++i) {
            // The peer's view of tunnel i, on the other engine.
            crypto::sa_params out;
            out.spi = 0x2001 + static_cast<uint32_t>(i);
            auto k_out = key(static_cast<uint8_t>(20 + i));
            out.keymat = k_out;
            out.engine = crypto::engine_kind::openssl;
            out.local_addr = ip(198, 51, 100, static_cast<uint8_t>(1 + i));
            out.peer_addr = ip(192, 0, 2, 1);
            if (i == 1)
                out.local_udp_port = out.peer_udp_port = 4500;
            auto o = crypto::create_outbound_sa(out);
            ASSERT_TRUE(o) << o.error;
            peer_out_[i] = std::move(o.sa);
            crypto::sa_params in = out;
            in.spi = 0x1001 + static_cast<uint32_t>(i);
            auto k_in = key(static_cast<uint8_t>(10 + i));
            in.keymat = k_in;
            in.replay_window = 1024;
            auto n = crypto::create_inbound_sa(in);
            ASSERT_TRUE(n) << n.error;
            peer_in_[i] = std::move(n.sa);
        }
    }

    void TearDown() override {
        gw_.reset();
        for (auto* r : {lan_.rx, lan_.tx, wan_.rx, wan_.tx}) {
            void* m;
            while (r != nullptr && rte_ring_dequeue(r, &m) == 0)
                rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            rte_ring_free(r);
        }
    }

    void send(ring_port& p, const frame& f) { ASSERT_EQ(rte_ring_enqueue(p.rx, to_mbuf(f)), 0); }
    void send_lan_ip(const frame& ippkt, const mac_addr& src = host_mac) {
        send(lan_, ether(lan_mac_, src, RTE_ETHER_TYPE_IPV4, ippkt));
    }
    void send_lan_ip6(const frame& ippkt, const mac_addr& src = host_mac) {
        send(lan_, ether(lan_mac_, src, RTE_ETHER_TYPE_IPV6, ippkt));
    }
    // A LAN host solicits our address (with its link-layer address): sagd learns it and
    // answers. Returns sagd's answer.
    std::vector<frame> introduce6(const ipv6_addr& addr, const mac_addr& mac) {
        ipv6_addr group = a6("ff02::1:ff00:1"); // solicited-node group of 2001:db8:1::1
        frame ns = ipv6_packet(addr, group, IPPROTO_ICMPV6,
                               icmp6(135, nd_body(a6("2001:db8:1::1"), 1, &mac)), 255);
        rte_ether_addr mc{{0x33, 0x33, 0xff, 0x00, 0x00, 0x01}};
        send(lan_, ether(mc, mac, RTE_ETHER_TYPE_IPV6, ns));
        step();
        return drain(lan_);
    }
    frame peer_esp6(int i, const frame& inner) { return peer_esp(i, inner); }
    // ESP from the peer of tunnel i carrying `inner`; returns the frame sagd receives.
    frame peer_esp(int i, const frame& inner) {
        rte_mbuf* m = to_mbuf(inner);
        EXPECT_EQ(crypto::esp_encap(*peer_out_[i], m), crypto::esp_status::ok);
        frame outer = to_frame(m);
        rte_pktmbuf_free(m);
        return ether(wan_mac_, wan_gw_mac, RTE_ETHER_TYPE_IPV4, outer);
    }
    void step(uint64_t now_ms = 1000) {
        for (int round = 0; round < 3; ++round) {
            for (unsigned w = 0; w < gw_->workers().size(); ++w)
                gw_->poll_worker(w);
            gw_->poll_slow_path(now_ms);
        }
    }
    std::vector<frame> drain(ring_port& p) {
        std::vector<frame> out;
        void* m;
        while (rte_ring_dequeue(p.tx, &m) == 0) {
            out.push_back(to_frame(static_cast<rte_mbuf*>(m)));
            rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        }
        return out;
    }
    // Decrypts a frame sagd sent to tunnel i's peer; returns the inner packet.
    crypto::esp_status peer_decap(int i, const frame& f, frame& inner) {
        frame outer(f.begin() + 14, f.end());
        rte_mbuf* m = to_mbuf(outer);
        auto st = crypto::esp_decap(*peer_in_[i], m);
        if (st == crypto::esp_status::ok)
            inner = to_frame(m);
        rte_pktmbuf_free(m);
        return st;
    }
    uint64_t dropped(drop d) { return sum_counters(*gw_).by_reason[static_cast<unsigned>(d)]; }
    void expect_balanced() {
        auto t = sum_counters(*gw_);
        EXPECT_EQ(t.in_flight(), 0) << "rx " << t.rx << " injected " << t.injected << " tx " << t.tx
                                    << " punted " << t.punted << " drops " << t.drops;
    }

    config cfg_;
    ring_port lan_, wan_;
    rte_ether_addr lan_mac_{}, wan_mac_{};
    std::unique_ptr<gateway> gw_;
    std::unique_ptr<crypto::outbound_sa> peer_out_[2];
    std::unique_ptr<crypto::inbound_sa> peer_in_[2];
};

TEST_F(GatewayTest, AnswersArpForItsOwnAddress) {
    start();
    frame arp(28);
    arp[1] = 1, arp[2] = 0x08, arp[4] = 6, arp[5] = 4, arp[7] = 1; // request
    std::memcpy(&arp[8], host_mac.data(), 6);
    uint32_t sender = rte_cpu_to_be_32(ip(10, 1, 0, 50)),
             target = rte_cpu_to_be_32(ip(10, 1, 0, 1));
    std::memcpy(&arp[14], &sender, 4);
    std::memcpy(&arp[24], &target, 4);
    rte_ether_addr bcast;
    std::memset(bcast.addr_bytes, 0xff, 6);
    send(lan_, ether(bcast, host_mac, RTE_ETHER_TYPE_ARP, arp));
    step();
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    const frame& r = out[0];
    EXPECT_EQ(std::memcmp(r.data(), host_mac.data(), 6), 0);
    EXPECT_EQ(std::memcmp(r.data() + 6, lan_mac_.addr_bytes, 6), 0);
    EXPECT_EQ(be16(&r[12]), RTE_ETHER_TYPE_ARP);
    EXPECT_EQ(be16(&r[14 + 6]), 2); // reply
    EXPECT_EQ(std::memcmp(&r[14 + 8], lan_mac_.addr_bytes, 6), 0);
    EXPECT_EQ(be32(&r[14 + 14]), ip(10, 1, 0, 1));
    EXPECT_EQ(be32(&r[14 + 24]), ip(10, 1, 0, 50));
    // The requester was learned (RFC 826: the request was for us).
    const auto* e = gw_->neighbours().lookup(0, ip(10, 1, 0, 50));
    ASSERT_NE(e, nullptr);
    EXPECT_TRUE(e->read().usable());
    expect_balanced();
}

TEST_F(GatewayTest, AnswersPingToItsOwnAddress) {
    start();
    send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 1, 0, 1), IPPROTO_ICMP, icmp_echo(9, 1)));
    step();
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    const uint8_t* iph = out[0].data() + 14;
    EXPECT_EQ(be32(iph + 12), ip(10, 1, 0, 1));
    EXPECT_EQ(be32(iph + 16), ip(10, 1, 0, 2));
    EXPECT_EQ(iph[20], 0); // echo reply
    EXPECT_EQ(rte_raw_cksum(iph + 20, be16(iph + 2) - 20), 0xffff);
    expect_balanced();
}

TEST_F(GatewayTest, EncryptsLanTrafficToTheTunnelPeer) {
    start();
    frame inner = ipv4_packet(ip(10, 1, 0, 2), ip(10, 2, 3, 4), IPPROTO_UDP,
                              udp_payload(1234, 5678, 300), 64);
    send_lan_ip(inner);
    step();
    auto out = drain(wan_);
    ASSERT_EQ(out.size(), 1u);
    const frame& f = out[0];
    EXPECT_EQ(std::memcmp(f.data(), wan_gw_mac.data(), 6), 0);
    EXPECT_EQ(std::memcmp(f.data() + 6, wan_mac_.addr_bytes, 6), 0);
    EXPECT_EQ(f[14 + 9], IPPROTO_ESP);
    EXPECT_EQ(be32(&f[14 + 12]), ip(192, 0, 2, 1));
    EXPECT_EQ(be32(&f[14 + 16]), ip(198, 51, 100, 1));
    EXPECT_EQ(be32(&f[14 + 20]), 0x1001u);
    EXPECT_EQ(be32(&f[14 + 24]), 1u); // first sequence number
    frame got;
    ASSERT_EQ(peer_decap(0, f, got), crypto::esp_status::ok);
    ASSERT_EQ(got.size(), inner.size());
    EXPECT_EQ(got[8], 63); // TTL decremented by the gateway
    EXPECT_EQ(rte_raw_cksum(got.data(), 20), 0xffff);
    EXPECT_TRUE(std::equal(got.begin() + 20, got.end(), inner.begin() + 20));
    auto s = read_tunnel(*gw_->tbl().tunnels[0]);
    EXPECT_EQ(s.tx_packets, 1u);
    expect_balanced();
}

TEST_F(GatewayTest, DecryptsPeerTrafficToTheLan) {
    start();
    frame inner = ipv4_packet(ip(10, 2, 3, 4), ip(10, 1, 0, 2), IPPROTO_UDP,
                              udp_payload(5678, 1234, 900), 30);
    send(wan_, peer_esp(0, inner));
    step();
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    const frame& f = out[0];
    EXPECT_EQ(std::memcmp(f.data(), host_mac.data(), 6), 0);
    ASSERT_EQ(f.size(), 14 + inner.size());
    EXPECT_EQ(f[14 + 8], 29);
    EXPECT_TRUE(std::equal(f.begin() + 14 + 20, f.end(), inner.begin() + 20));
    EXPECT_EQ(read_tunnel(*gw_->tbl().tunnels[0]).rx_packets, 1u);
    expect_balanced();
}

TEST_F(GatewayTest, EspInUdpBothWays) {
    start();
    frame inner =
        ipv4_packet(ip(10, 1, 0, 2), ip(10, 3, 0, 9), IPPROTO_UDP, udp_payload(1, 2, 100));
    send_lan_ip(inner);
    step();
    auto out = drain(wan_);
    ASSERT_EQ(out.size(), 1u);
    const uint8_t* o = out[0].data() + 14;
    EXPECT_EQ(o[9], IPPROTO_UDP);
    EXPECT_EQ(be16(o + 20), 4500);
    EXPECT_EQ(be16(o + 22), 4500);
    EXPECT_EQ(be16(o + 24), be16(o + 2) - 20); // RFC 768 length: header + data
    EXPECT_EQ(be16(o + 26), 0);                // RFC 3948 2.1: checksum zero
    EXPECT_EQ(be32(o + 28), 0x1002u);
    frame got;
    ASSERT_EQ(peer_decap(1, out[0], got), crypto::esp_status::ok);
    EXPECT_TRUE(std::equal(got.begin() + 20, got.end(), inner.begin() + 20));

    frame back = ipv4_packet(ip(10, 3, 0, 9), ip(10, 1, 0, 2), IPPROTO_UDP, udp_payload(2, 1, 64));
    send(wan_, peer_esp(1, back));
    step();
    auto lan = drain(lan_);
    ASSERT_EQ(lan.size(), 1u);
    EXPECT_TRUE(std::equal(lan[0].begin() + 14 + 20, lan[0].end(), back.begin() + 20));
    expect_balanced();
}

TEST_F(GatewayTest, HostileWanInputIsDroppedByReasonAndGoodTrafficFlows) {
    start();
    frame inner = ipv4_packet(ip(10, 2, 0, 1), ip(10, 1, 0, 2), IPPROTO_UDP, udp_payload(7, 7, 64));
    frame good1 = peer_esp(0, inner);
    frame good2 = peer_esp(0, inner);
    frame bad_ct = peer_esp(0, inner);
    bad_ct[14 + 20 + 8 + 8 + 3] ^= 0x01; // a ciphertext byte
    frame bad_icv = peer_esp(0, inner);
    bad_icv[bad_icv.size() - 1 - (bad_icv.size() - 14 - be16(&bad_icv[16]))] ^=
        0x80; // last ICV byte
    frame unknown = peer_esp(0, inner);
    unknown[14 + 20 + 3] ^= 0x55; // SPI
    frame truncated = peer_esp(0, inner);
    truncated.resize(14 + 20 + 12);
    { // fix the outer IP length/checksum so it is a well-formed, too-short ESP packet
        auto* h = reinterpret_cast<rte_ipv4_hdr*>(&truncated[14]);
        h->total_length = rte_cpu_to_be_16(32);
        h->hdr_checksum = 0;
        h->hdr_checksum = rte_ipv4_cksum(h);
    }
    frame udp_inner =
        ipv4_packet(ip(10, 3, 0, 1), ip(10, 1, 0, 2), IPPROTO_UDP, udp_payload(7, 7, 64));
    frame bad_udp_len = peer_esp(1, udp_inner);
    bad_udp_len[14 + 20 + 5] ^= 0x04; // UDP length field

    send(wan_, good1);
    send(wan_, bad_ct);
    send(wan_, bad_icv);
    send(wan_, good1); // replay
    send(wan_, unknown);
    send(wan_, truncated);
    send(wan_, bad_udp_len);
    send(wan_, good2);
    step();
    auto out = drain(lan_);
    EXPECT_EQ(out.size(), 2u); // good1 and good2
    EXPECT_EQ(dropped(drop::esp_icv_fail), 2u);
    EXPECT_EQ(dropped(drop::esp_replay), 1u);
    EXPECT_EQ(dropped(drop::esp_unknown_spi), 1u);
    EXPECT_EQ(dropped(drop::esp_malformed), 1u);
    EXPECT_EQ(dropped(drop::esp_bad_udp_length), 1u);
    auto s = read_tunnel(*gw_->tbl().tunnels[0]);
    EXPECT_EQ(s.icv_fail, 2u);
    EXPECT_EQ(s.replay, 1u);
    EXPECT_EQ(s.rx_packets, 2u);
    expect_balanced();
}

TEST_F(GatewayTest, PlainIpFromTheWanIsNotForwarded) {
    start();
    send(wan_, ether(wan_mac_, wan_gw_mac, RTE_ETHER_TYPE_IPV4,
                     ipv4_packet(ip(203, 0, 113, 9), ip(10, 1, 0, 2), IPPROTO_UDP,
                                 udp_payload(1, 2, 10))));
    step();
    EXPECT_TRUE(drain(lan_).empty());
    EXPECT_EQ(dropped(drop::wan_not_tunnel), 1u);
    expect_balanced();
}

TEST_F(GatewayTest, DirectedBroadcastAndMulticastAreNotForwarded) {
    start();
    send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 1, 0, 255), IPPROTO_UDP, udp_payload(1, 2, 8)));
    send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(224, 0, 0, 5), IPPROTO_UDP, udp_payload(1, 2, 8)));
    step();
    EXPECT_TRUE(drain(lan_).empty());
    EXPECT_TRUE(drain(wan_).empty());
    EXPECT_EQ(dropped(drop::multicast), 2u);
    EXPECT_EQ(gw_->slow_path().arp_requests_sent, 0u);
    expect_balanced();
}

TEST_F(GatewayTest, TtlExpiryAndNoRouteSendIcmpErrors) {
    start();
    frame expiring =
        ipv4_packet(ip(10, 1, 0, 2), ip(10, 9, 0, 1), IPPROTO_UDP, udp_payload(1, 2, 20), 1);
    send_lan_ip(expiring);
    frame nowhere =
        ipv4_packet(ip(10, 1, 0, 2), ip(172, 16, 0, 1), IPPROTO_UDP, udp_payload(1, 2, 20));
    send_lan_ip(nowhere);
    step();
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 2u);
    for (const auto& f : out) {
        const uint8_t* iph = f.data() + 14;
        EXPECT_EQ(std::memcmp(f.data(), host_mac.data(), 6), 0);
        EXPECT_EQ(iph[9], IPPROTO_ICMP);
        EXPECT_EQ(be32(iph + 12), ip(10, 1, 0, 1));
        EXPECT_EQ(be32(iph + 16), ip(10, 1, 0, 2));
    }
    EXPECT_EQ(out[0][14 + 20], 11); // time exceeded
    EXPECT_EQ(out[1][14 + 20], 3);  // destination unreachable
    EXPECT_EQ(out[1][14 + 21], 0);  // net unreachable
    EXPECT_EQ(dropped(drop::ttl_exceeded), 1u);
    EXPECT_EQ(dropped(drop::no_route), 1u);
    expect_balanced();
}

TEST_F(GatewayTest, RoutesViaLanRouterAndHoldsPacketsUntilArpResolves) {
    start();
    // Via the static LAN router.
    send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 9, 1, 1), IPPROTO_UDP, udp_payload(1, 2, 20)));
    step();
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(std::memcmp(out[0].data(), router_mac.data(), 6), 0);

    // A connected host nobody has resolved: an ARP request goes out, the packet waits.
    frame pkt = ipv4_packet(ip(10, 2, 0, 5), ip(10, 1, 0, 77), IPPROTO_UDP, udp_payload(3, 4, 50));
    send(wan_, peer_esp(0, pkt));
    step(2000);
    out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(be16(&out[0][12]), RTE_ETHER_TYPE_ARP);
    EXPECT_EQ(be32(&out[0][14 + 24]), ip(10, 1, 0, 77));
    const mac_addr mac77{0x02, 0, 0, 0, 0x10, 0x77};
    frame reply(28);
    reply[1] = 1, reply[2] = 0x08, reply[4] = 6, reply[5] = 4, reply[7] = 2;
    std::memcpy(&reply[8], mac77.data(), 6);
    uint32_t s = rte_cpu_to_be_32(ip(10, 1, 0, 77)), t = rte_cpu_to_be_32(ip(10, 1, 0, 1));
    std::memcpy(&reply[14], &s, 4);
    std::memcpy(&reply[18], lan_mac_.addr_bytes, 6);
    std::memcpy(&reply[24], &t, 4);
    send(lan_, ether(lan_mac_, mac77, RTE_ETHER_TYPE_ARP, reply));
    step(2100);
    out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(std::memcmp(out[0].data(), mac77.data(), 6), 0);
    EXPECT_EQ(out[0].size(), 14 + pkt.size());
    EXPECT_EQ(gw_->slow_path().held_sent, 1u);
    expect_balanced();
}

TEST_F(GatewayTest, TwoWorkersHandPacketsToTheSaOwner) {
    start(2);
    ASSERT_EQ(gw_->tbl().tunnels[1]->owner, 1u);
    frame inner = ipv4_packet(ip(10, 1, 0, 2), ip(10, 3, 0, 9), IPPROTO_UDP, udp_payload(1, 2, 40));
    for (int i = 0; i < 5; ++i)
        send_lan_ip(inner);
    gw_->poll_worker(0); // receives all five, owns only tunnel 0
    auto t = sum_counters(*gw_);
    EXPECT_EQ(t.handoff_out, 5u);
    EXPECT_TRUE(drain(wan_).empty());
    gw_->poll_worker(1);
    auto out = drain(wan_);
    ASSERT_EQ(out.size(), 5u);
    for (size_t i = 0; i < out.size(); ++i)
        EXPECT_EQ(be32(&out[i][14 + 20 + 8 + 4]), i + 1); // sequence numbers in order
    t = sum_counters(*gw_);
    EXPECT_EQ(t.handoff_in, 5u);
    expect_balanced();
}

TEST_F(GatewayTest, GarbageFramesNeverCrashAndAlwaysBalance) {
    start();
    std::mt19937 rng(1234);
    for (int round = 0; round < 40; ++round) {
        for (int i = 0; i < 50; ++i) {
            size_t len = rng() % 200;
            frame f(len);
            for (auto& b : f)
                b = static_cast<uint8_t>(rng());
            if (len >= 14 && (rng() & 1)) { // mostly-valid headers reach deeper stages
                std::memcpy(f.data(), (i & 1) ? lan_mac_.addr_bytes : wan_mac_.addr_bytes, 6);
                f[12] = 0x08, f[13] = (rng() % 4 == 0) ? 0x06 : 0x00;
                if (len >= 34) {
                    f[14] = 0x45;
                    f[14 + 2] = 0, f[14 + 3] = static_cast<uint8_t>(len - 14);
                    f[14 + 9] = (rng() & 1) ? IPPROTO_ESP : IPPROTO_UDP;
                    auto* h = reinterpret_cast<rte_ipv4_hdr*>(&f[14]);
                    h->dst_addr = rte_cpu_to_be_32((i & 1) ? ip(10, 2, 0, 1) : ip(192, 0, 2, 1));
                    h->hdr_checksum = 0;
                    h->hdr_checksum = rte_ipv4_cksum(h);
                }
            }
            if (f.empty())
                f.push_back(0);
            send((i & 1) ? lan_ : wan_, f);
        }
        step(1000 + static_cast<uint64_t>(round));
        drain(lan_);
        drain(wan_);
    }
    auto t = sum_counters(*gw_);
    EXPECT_EQ(t.rx, 2000u);
    expect_balanced();
}

TEST_F(GatewayTest, ThousandTunnelsEachWithTwoInboundSasDuringRekey) {
    constexpr unsigned n = 1200;
    start(1, n);
    ASSERT_EQ(gw_->tbl().tunnels.size(), n + 2);
    const unsigned last = n - 1;
    // Outbound: traffic to the last tunnel's prefix leaves with that tunnel's SPI and peer.
    uint32_t dst = (ip(172, 16, 0, 0) | (last << 4)) + 5;
    send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), dst, IPPROTO_UDP, udp_payload(1, 2, 64)));
    step();
    auto out = drain(wan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(be32(&out[0][14 + 16]), ip(198, 18, last >> 8, last & 0xff));
    EXPECT_EQ(be32(&out[0][14 + 20]), 0x10000u + last);
    // Inbound: both SAs of the last tunnel are accepted (old and new during a rekey).
    for (uint32_t k = 0; k < 2; ++k) {
        crypto::sa_params p;
        p.spi = 0x30000 + 2 * last + k;
        auto km = key(static_cast<uint8_t>(last + 100 + k));
        p.keymat = km;
        p.engine = crypto::engine_kind::openssl;
        p.local_addr = ip(198, 18, last >> 8, last & 0xff);
        p.peer_addr = ip(192, 0, 2, 1);
        auto peer = crypto::create_outbound_sa(p);
        ASSERT_TRUE(peer) << peer.error;
        rte_mbuf* m =
            to_mbuf(ipv4_packet(dst, ip(10, 1, 0, 2), IPPROTO_UDP, udp_payload(2, 1, 64)));
        ASSERT_EQ(crypto::esp_encap(*peer.sa, m), crypto::esp_status::ok);
        send(wan_, ether(wan_mac_, wan_gw_mac, RTE_ETHER_TYPE_IPV4, to_frame(m)));
        rte_pktmbuf_free(m);
    }
    step();
    EXPECT_EQ(drain(lan_).size(), 2u);
    EXPECT_EQ(read_tunnel(*gw_->tbl().tunnels[2 + last]).rx_packets, 2u);
    expect_balanced();
}

TEST(GatewayConfig, RefusesTunnelsOnAMissingPortWithAClearError) {
    config cfg;
    cfg.workers = 1;
    auto gw = gateway::create(cfg, pool(), crypto::engine_kind::ipsec_mb);
    ASSERT_TRUE(gw.ok()); // no ports is valid for the data plane (config refuses it earlier)
    port_config p;
    p.name = "lan0";
    p.device = "net_does_not_exist0";
    cfg.ports = {p};
    auto bad = gateway::create(cfg, pool(), crypto::engine_kind::ipsec_mb);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.err().message.find("port 'lan0': device 'net_does_not_exist0' not found"),
              std::string::npos)
        << bad.err().message;
}

} // namespace
} // namespace sagd::dp

namespace sagd::dp {
namespace {

// ---- runtime changes (table_writer + gateway::apply) ----

tunnel_config tunnel_cfg(const std::string& name, uint8_t peer_last, uint32_t out_spi,
                         uint32_t in_spi, uint8_t key_seed) {
    tunnel_config t;
    t.name = name;
    t.port = "wan0";
    t.peer = ip(198, 51, 100, peer_last);
    t.encap = tunnel_encap::esp;
    t.replay_window = 64;
    t.outbound_sa.spi = out_spi;
    t.outbound_sa.keymat = key(key_seed);
    sa_config in;
    in.spi = in_spi;
    in.keymat = key(static_cast<uint8_t>(key_seed + 1));
    t.inbound_sas.push_back(in);
    return t;
}

route_config tunnel_route(ipv4_prefix p, const std::string& tunnel) {
    route_config r;
    r.prefix = p;
    r.via = route_via::tunnel;
    r.tunnel = tunnel;
    return r;
}

TEST_F(GatewayTest, TunnelAndRouteAddedAtRuntimeCarryTraffic) {
    start();
    frame inner = ipv4_packet(ip(10, 1, 0, 2), ip(10, 7, 0, 5), IPPROTO_UDP, udp_payload(1, 2, 64));
    send_lan_ip(inner);
    step();
    EXPECT_TRUE(drain(wan_).empty());
    EXPECT_EQ(dropped(drop::no_route), 1u);

    change_set cs;
    cs.put_tunnels.push_back(tunnel_cfg("edge-new", 9, 0x5001, 0x6001, 40));
    cs.put_routes.push_back(tunnel_route({ip(10, 7, 0, 0), 16}, "edge-new"));
    auto f = gw_->apply(cs);
    ASSERT_FALSE(f) << f->message;
    EXPECT_EQ(gw_->changes_applied(), 1u);

    send_lan_ip(inner);
    step();
    auto out = drain(wan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(be32(&out[0][14 + 16]), ip(198, 51, 100, 9));
    EXPECT_EQ(be32(&out[0][14 + 20]), 0x5001u);
    // Untouched tunnels kept their objects (and sequence numbers).
    send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 2, 0, 5), IPPROTO_UDP, udp_payload(1, 2, 8)));
    step();
    out = drain(wan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(be32(&out[0][14 + 20]), 0x1001u);
    expect_balanced();
}

TEST_F(GatewayTest, AFailedChangeChangesNothing) {
    start();
    auto routes_before = gw_->writer().fib().prefix_count();
    const tables* before = &gw_->tbl();
    change_set cs;
    cs.put_tunnels.push_back(tunnel_cfg("edge-new", 9, 0x5001, 0x6001, 40));
    cs.put_routes.push_back(tunnel_route({ip(10, 7, 0, 0), 16}, "edge-new"));
    cs.put_routes.push_back(tunnel_route({ip(10, 8, 0, 0), 16}, "no-such-tunnel"));
    auto f = gw_->apply(cs);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->code, change_error::invalid);
    EXPECT_NE(f->message.find("10.8.0.0/16"), std::string::npos) << f->message;
    EXPECT_NE(f->message.find("no-such-tunnel"), std::string::npos) << f->message;
    EXPECT_EQ(&gw_->tbl(), before);
    EXPECT_EQ(gw_->writer().fib().prefix_count(), routes_before);
    EXPECT_EQ(gw_->tbl().find_tunnel("edge-new"), nullptr);
    EXPECT_FALSE(gw_->writer().fib().installed(ip(10, 7, 0, 0), 16));
    // A duplicate inbound SPI is refused with the other tunnel named; nothing changes either.
    change_set dup;
    dup.put_tunnels.push_back(tunnel_cfg("edge-dup", 9, 0x5002, 0x2001, 40));
    f = gw_->apply(dup);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->code, change_error::conflict);
    EXPECT_NE(f->message.find("edge-esp"), std::string::npos) << f->message;
    // The writer is usable after failures: the good half alone applies.
    change_set good;
    good.put_tunnels.push_back(tunnel_cfg("edge-new", 9, 0x5001, 0x6001, 40));
    good.put_routes.push_back(tunnel_route({ip(10, 7, 0, 0), 16}, "edge-new"));
    ASSERT_FALSE(gw_->apply(good));
    EXPECT_TRUE(gw_->writer().fib().installed(ip(10, 7, 0, 0), 16));
}

TEST_F(GatewayTest, ATunnelInUseCannotBeDeletedUntilItsRoutesGo) {
    start();
    change_set del;
    del.delete_tunnels.push_back("edge-esp");
    auto f = gw_->apply(del);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->code, change_error::conflict);
    EXPECT_NE(f->message.find("in use by 1 static route"), std::string::npos) << f->message;
    // Deleting the IPv4 route alone is not enough: an IPv6 route uses the tunnel too.
    del.delete_routes.push_back({ip(10, 2, 0, 0), 16});
    f = gw_->apply(del);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->code, change_error::conflict);
    EXPECT_NE(f->message.find("in use by IPv6 static route 2001:db8:2::/48"), std::string::npos)
        << f->message;
    // Deleting both routes in the same change is fine.
    del.delete_routes6.push_back({a6("2001:db8:2::"), 48});
    ASSERT_FALSE(gw_->apply(del));
    EXPECT_EQ(gw_->tbl().find_tunnel("edge-esp"), nullptr);
    // Its inbound SPI is gone too: the peer's packets are unknown SPIs now.
    send(wan_, peer_esp(0, ipv4_packet(ip(10, 2, 0, 4), ip(10, 1, 0, 2), IPPROTO_UDP,
                                       udp_payload(1, 2, 16))));
    step();
    EXPECT_TRUE(drain(lan_).empty());
    EXPECT_EQ(dropped(drop::esp_unknown_spi), 1u);
    expect_balanced();
}

TEST_F(GatewayTest, ReplacingATunnelKeepsUnchangedSasAndTheirState) {
    start();
    for (int i = 0; i < 3; ++i)
        send_lan_ip(
            ipv4_packet(ip(10, 1, 0, 2), ip(10, 2, 0, 5), IPPROTO_UDP, udp_payload(1, 2, 8)));
    step();
    ASSERT_EQ(drain(wan_).size(), 3u);
    const auto* sa_before = gw_->tbl().find_tunnel("edge-esp")->outbound.get();
    // Make-before-break rekey: a second inbound SA joins, the outbound SA stays (same SPI/key).
    tunnel_config t = cfg_.tunnels[0];
    sa_config in2;
    in2.spi = 0x2101;
    in2.keymat = key(77);
    t.inbound_sas.push_back(in2);
    change_set cs;
    cs.put_tunnels.push_back(t);
    ASSERT_FALSE(gw_->apply(cs));
    EXPECT_EQ(gw_->tbl().find_tunnel("edge-esp")->outbound.get(), sa_before);
    send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 2, 0, 5), IPPROTO_UDP, udp_payload(1, 2, 8)));
    step();
    auto out = drain(wan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(be32(&out[0][14 + 24]), 4u); // the sequence number went on
    // The old inbound SA still takes the peer's packets.
    send(wan_, peer_esp(0, ipv4_packet(ip(10, 2, 0, 4), ip(10, 1, 0, 2), IPPROTO_UDP,
                                       udp_payload(1, 2, 16))));
    step();
    EXPECT_EQ(drain(lan_).size(), 1u);
    // Switch the outbound SA: new SPI from the next packet on, counters stay monotonic.
    t.outbound_sa.spi = 0x1101;
    t.outbound_sa.keymat = key(78);
    change_set sw;
    sw.put_tunnels.push_back(t);
    ASSERT_FALSE(gw_->apply(sw));
    send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 2, 0, 5), IPPROTO_UDP, udp_payload(1, 2, 8)));
    step();
    out = drain(wan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(be32(&out[0][14 + 20]), 0x1101u);
    EXPECT_EQ(be32(&out[0][14 + 24]), 1u);
    const auto* tun = gw_->tbl().find_tunnel("edge-esp");
    auto s = read_tunnel(*tun, gw_->writer().retired("edge-esp"));
    EXPECT_EQ(s.tx_packets, 5u);
    EXPECT_EQ(s.rx_packets, 1u);
    expect_balanced();
}

TEST_F(GatewayTest, PortAddressChangeMovesConnectedRoutesAndChecksGateways) {
    start();
    change_set bad;
    port_update u;
    u.port = "lan0";
    u.address = ip(10, 5, 0, 1);
    u.prefix_len = 24;
    bad.ports.push_back(u);
    auto f = gw_->apply(bad); // the static route via 10.1.0.254 would dangle
    ASSERT_TRUE(f);
    EXPECT_NE(f->message.find("10.1.0.254"), std::string::npos) << f->message;
    EXPECT_TRUE(gw_->writer().fib().installed(ip(10, 1, 0, 0), 24));

    change_set good = bad;
    good.delete_routes.push_back({ip(10, 9, 0, 0), 16});
    ASSERT_FALSE(gw_->apply(good));
    EXPECT_FALSE(gw_->writer().fib().installed(ip(10, 1, 0, 0), 24));
    EXPECT_TRUE(gw_->writer().fib().installed(ip(10, 5, 0, 0), 24));
    EXPECT_EQ(gw_->tbl().ports[0].address, ip(10, 5, 0, 1));
    // Ping to the new address is answered.
    send_lan_ip(ipv4_packet(ip(10, 5, 0, 2), ip(10, 5, 0, 1), IPPROTO_ICMP, icmp_echo(3, 1)));
    step();
    EXPECT_EQ(drain(lan_).size(), 1u);
}

TEST_F(GatewayTest, LearnedRoutesYieldToStaticOnesOfTheSamePrefix) {
    start();
    change_set cs;
    learned_route4 l;
    l.prefix = {ip(10, 2, 0, 0), 16}; // also a static route via edge-esp
    l.gateways = {ip(10, 1, 0, 254)};
    cs.put_learned.push_back(l);
    learned_route4 l2;
    l2.prefix = {ip(10, 60, 0, 0), 16};
    l2.gateways = {ip(10, 1, 0, 254)};
    cs.put_learned.push_back(l2);
    ASSERT_FALSE(gw_->apply(cs));
    auto winner = gw_->writer().fib().installed(ip(10, 2, 0, 0), 16);
    ASSERT_TRUE(winner);
    EXPECT_EQ(winner->origin, fwd::route_origin::static_route);
    EXPECT_EQ(gw_->writer().fib().candidates(ip(10, 2, 0, 0), 16).size(), 2u);
    // Traffic to the learned prefix goes to the LAN router.
    send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 60, 1, 1), IPPROTO_UDP, udp_payload(1, 2, 8)));
    step();
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(std::memcmp(out[0].data(), router_mac.data(), 6), 0);
    // Removing the static route lets the learned one win.
    change_set del;
    del.delete_routes.push_back({ip(10, 2, 0, 0), 16});
    ASSERT_FALSE(gw_->apply(del));
    EXPECT_EQ(gw_->writer().fib().installed(ip(10, 2, 0, 0), 16)->origin,
              fwd::route_origin::learned);
    expect_balanced();
}

} // namespace
} // namespace sagd::dp

namespace sagd::dp {
namespace {

TEST_F(GatewayTest, TunnelGroupsPreferTheMasterAndSpreadFlowsOverEqualMembers) {
    start();
    change_set cs;
    group_config g;
    g.name = "ccn";
    g.members = {{"edge-esp", 200, 1}, {"edge-udp", 100, 1}};
    cs.put_groups.push_back(g);
    route_config r;
    r.prefix = {ip(10, 50, 0, 0), 16};
    r.via = route_via::group;
    r.group = "ccn";
    cs.put_routes.push_back(r);
    auto f = gw_->apply(cs);
    ASSERT_FALSE(f) << f->message;
    auto spis = [&](int flows) {
        for (int i = 0; i < flows; ++i)
            send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 50, 0, 1), IPPROTO_UDP,
                                    udp_payload(static_cast<uint16_t>(1000 + i), 53, 16)));
        for (int k = 0; k <= flows / 90; ++k) // a step takes 3 bursts of 32
            step();
        std::map<uint32_t, int> by_spi;
        for (const auto& fr : drain(wan_)) {
            bool udp = fr[14 + 9] == IPPROTO_UDP;
            ++by_spi[be32(&fr[14 + 20 + (udp ? 8 : 0)])];
        }
        return by_spi;
    };
    auto master = spis(20);
    EXPECT_EQ(master.size(), 1u);
    EXPECT_EQ(master[0x1001], 20);
    // Equal priorities: flows are spread by weight, and one flow stays on one member.
    g.members[1].priority = 200;
    g.members[1].weight = 3;
    change_set eq;
    eq.put_groups.push_back(g);
    ASSERT_FALSE(gw_->apply(eq));
    auto spread = spis(200);
    EXPECT_GT(spread[0x1001], 20);
    EXPECT_GT(spread[0x1002], 2 * spread[0x1001] / 2); // weight 3:1, roughly
    EXPECT_EQ(spread[0x1001] + spread[0x1002], 200);
    auto once = spis(1);
    auto again = spis(1);
    EXPECT_EQ(once, again);
    // A member cannot be deleted while the group holds it; the group while a route uses it.
    change_set del;
    del.delete_routes.push_back({ip(10, 3, 0, 0), 16});
    del.delete_tunnels.push_back("edge-udp");
    f = gw_->apply(del);
    ASSERT_TRUE(f);
    EXPECT_NE(f->message.find("group 'ccn'"), std::string::npos) << f->message;
    change_set delg;
    delg.delete_groups.push_back("ccn");
    f = gw_->apply(delg);
    ASSERT_TRUE(f);
    EXPECT_NE(f->message.find("10.50.0.0/16"), std::string::npos) << f->message;
    delg.delete_routes.push_back(r.prefix);
    ASSERT_FALSE(gw_->apply(delg));
    EXPECT_EQ(gw_->tbl().find_group("ccn"), nullptr);
    expect_balanced();
}

TEST_F(GatewayTest, EqualCostLearnedRoutesSpreadFlowsOverLanRouters) {
    start();
    const mac_addr router2{0x02, 0, 0, 0, 0x10, 0xfd};
    change_set cs;
    cs.put_neighbours.push_back({"lan0", ip(10, 1, 0, 253), router2});
    learned_route4 l;
    l.prefix = {ip(10, 60, 0, 0), 16};
    l.gateways = {ip(10, 1, 0, 254), ip(10, 1, 0, 253)};
    cs.put_learned.push_back(l);
    learned_route4 l2 = l;
    l2.prefix = {ip(10, 61, 0, 0), 16}; // same gateway set: shares the group
    cs.put_learned.push_back(l2);
    ASSERT_FALSE(gw_->apply(cs));
    size_t groups = 0;
    for (const auto& g : gw_->tbl().groups)
        groups += g != nullptr;
    EXPECT_EQ(groups, 1u);
    for (int i = 0; i < 100; ++i)
        send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 60, 1, 1), IPPROTO_TCP,
                                udp_payload(static_cast<uint16_t>(2000 + i), 80, 16)));
    step();
    step();
    int to_254 = 0, to_253 = 0;
    for (const auto& fr : drain(lan_)) {
        to_254 += std::memcmp(fr.data(), router_mac.data(), 6) == 0;
        to_253 += std::memcmp(fr.data(), router2.data(), 6) == 0;
    }
    EXPECT_EQ(to_254 + to_253, 100);
    EXPECT_GT(to_254, 20);
    EXPECT_GT(to_253, 20);
    // Withdrawing both routes frees the group (after the grace period, in finish()).
    change_set del;
    del.delete_learned = {l.prefix, l2.prefix};
    ASSERT_FALSE(gw_->apply(del));
    groups = 0;
    for (const auto& g : gw_->tbl().groups)
        groups += g != nullptr;
    EXPECT_EQ(groups, 0u);
    expect_balanced();
}

// ---- Tunnel health: BFD inside the tunnels, failover, hold-down, WAN link (issue 5) ----------

std::atomic<uint64_t> fake_now_ns{10'000'000'000};
uint64_t fake_clock() noexcept {
    return fake_now_ns.load();
}

class HealthTest : public GatewayTest {
  protected:
    static constexpr uint64_t ms = 1'000'000;

    // Both tunnels with BFD (100 ms x 3) unless told otherwise, in group "ccn": edge-esp the
    // master (priority 200), edge-udp the backup (100); route 10.50.0.0/16 via the group.
    void start_health(bool bfd = true, uint32_t hold_down_ms = 1000) {
        start();
        fake_now_ns = 10'000'000'000;
        gw_->set_clock(&fake_clock);
        change_set cs;
        for (int i = 0; i < 2 && bfd; ++i) {
            tunnel_config t = cfg_.tunnels[i];
            tunnel_bfd_config b;
            b.local = bfd_local(i);
            b.remote = bfd_remote(i);
            b.desired_min_tx_us = b.required_min_rx_us = 100'000;
            b.detect_mult = 3;
            t.bfd = b;
            cs.put_tunnels.push_back(t);
        }
        group_config g;
        g.name = "ccn";
        g.members = {{"edge-esp", 200, 1}, {"edge-udp", 100, 1}};
        g.hold_down_ms = hold_down_ms;
        cs.put_groups.push_back(g);
        route_config r;
        r.prefix = {ip(10, 50, 0, 0), 16};
        r.via = route_via::group;
        r.group = "ccn";
        cs.put_routes.push_back(r);
        auto f = gw_->apply(cs);
        ASSERT_FALSE(f) << f->message;
    }
    static ipv4_addr bfd_local(int i) { return ip(169, 254, static_cast<uint8_t>(1 + i), 1); }
    static ipv4_addr bfd_remote(int i) { return ip(169, 254, static_cast<uint8_t>(1 + i), 2); }

    // The far end's control packet through tunnel i.
    frame peer_bfd_packet(int i, fwd::bfd_state st, uint32_t your_disc, uint8_t ttl = 255,
                          ipv4_addr src = 0) {
        fwd::bfd_packet p;
        p.state = st;
        p.detect_mult = 3;
        p.my_discriminator = 0x7000 + static_cast<uint32_t>(i);
        p.your_discriminator = your_disc;
        p.desired_min_tx_us = p.required_min_rx_us = 100'000;
        frame l4 = udp_payload(49200, fwd::bfd_udp_port, fwd::bfd_header_len);
        fwd::bfd_encode(p, l4.data() + 8, fwd::bfd_header_len);
        return ipv4_packet(src != 0 ? src : bfd_remote(i), bfd_local(i), IPPROTO_UDP, l4, ttl);
    }
    void peer_bfd(int i, fwd::bfd_state st, uint8_t ttl = 255) {
        send(wan_, peer_esp(i, peer_bfd_packet(i, st, local_disc(i), ttl)));
    }
    uint32_t local_disc(int i) {
        return gw_->tbl().find_tunnel(cfg_.tunnels[i].name)->health->bfd.view_local_disc.load();
    }
    fwd::bfd_state bfd_state(int i) {
        return static_cast<fwd::bfd_state>(
            gw_->tbl().find_tunnel(cfg_.tunnels[i].name)->health->bfd.view_state.load());
    }
    bool tunnel_up(int i) { return gw_->tbl().find_tunnel(cfg_.tunnels[i].name)->health->up(); }
    void advance(uint64_t ns) {
        fake_now_ns += ns;
        step();
    }
    // Sends one 200-byte packet to 10.50.0.1 and returns the SPI it left on (0: none).
    uint32_t traffic_spi() {
        drain(wan_);
        send_lan_ip(ipv4_packet(ip(10, 1, 0, 2), ip(10, 50, 0, 1), IPPROTO_UDP,
                                udp_payload(1000, 53, 200)));
        step();
        uint32_t spi = 0;
        for (const auto& fr : drain(wan_)) {
            if (fr.size() < 200)
                continue; // BFD control packets
            bool udp = fr[14 + 9] == IPPROTO_UDP;
            spi = be32(&fr[14 + 20 + (udp ? 8 : 0)]);
        }
        return spi;
    }
};

TEST_F(HealthTest, BfdControlPacketsGoThroughTheTunnelAsRfc5881SingleHop) {
    start_health();
    EXPECT_FALSE(tunnel_up(0)); // down until the session is Up
    step();
    auto out = drain(wan_);
    ASSERT_EQ(out.size(), 2u); // one Down packet per tunnel, sent at once
    for (const auto& fr : out) {
        int i = fr[14 + 9] == IPPROTO_UDP ? 1 : 0;
        frame inner;
        ASSERT_EQ(peer_decap(i, fr, inner), crypto::esp_status::ok);
        ASSERT_EQ(inner.size(), 20u + 8 + 24);
        EXPECT_EQ(inner[8], 255); // TTL
        EXPECT_EQ(inner[9], IPPROTO_UDP);
        EXPECT_EQ(rte_raw_cksum(inner.data(), 20), 0xffff);
        EXPECT_EQ(be32(&inner[12]), bfd_local(i));
        EXPECT_EQ(be32(&inner[16]), bfd_remote(i));
        EXPECT_GE(be16(&inner[20]), 49152);
        EXPECT_EQ(be16(&inner[22]), fwd::bfd_udp_port);
        fwd::bfd_packet p;
        ASSERT_EQ(fwd::bfd_decode(&inner[28], 24, p), fwd::bfd_status::ok);
        EXPECT_EQ(p.state, fwd::bfd_state::down);
        EXPECT_EQ(p.my_discriminator, local_disc(i));
        EXPECT_NE(p.my_discriminator, 0u);
        EXPECT_EQ(p.your_discriminator, 0u);
        EXPECT_EQ(p.required_min_rx_us, 100'000u);
    }
    // No member up: the group drops.
    EXPECT_EQ(traffic_spi(), 0u);
    EXPECT_EQ(dropped(drop::group_down), 1u);
    expect_balanced();
}

TEST_F(HealthTest, FailoverOnBfdTimeoutAndFailbackAfterTheHoldDown) {
    start_health(true, 1000);
    step();
    peer_bfd(0, fwd::bfd_state::init);
    peer_bfd(1, fwd::bfd_state::init);
    step();
    ASSERT_EQ(bfd_state(0), fwd::bfd_state::up);
    ASSERT_EQ(bfd_state(1), fwd::bfd_state::up);
    EXPECT_TRUE(tunnel_up(0));
    EXPECT_EQ(traffic_spi(), 0x1001u); // the master, at once (a first up has no hold-down)

    // The master goes silent; the backup keeps talking. Detection time 3 x 100 ms.
    auto* h = gw_->tbl().find_tunnel("edge-esp")->health.get();
    const uint64_t downs = h->downs(); // configuring BFD took the (up) tunnel down once
    uint64_t silent = 0;
    while (bfd_state(0) == fwd::bfd_state::up && silent < 1000 * ms) {
        peer_bfd(1, fwd::bfd_state::up);
        advance(10 * ms);
        silent += 10 * ms;
    }
    EXPECT_GE(silent, 290 * ms);
    EXPECT_LE(silent, 310 * ms);
    EXPECT_EQ(bfd_state(0), fwd::bfd_state::down);
    EXPECT_FALSE(tunnel_up(0));
    EXPECT_EQ(traffic_spi(), 0x1002u); // failover: no route was touched
    const group_status* st = gw_->health().group("ccn");
    ASSERT_NE(st, nullptr);
    EXPECT_EQ(st->failovers, 1u);
    EXPECT_EQ(st->active, "edge-udp");
    EXPECT_NE(st->last_cause.find("bfd down"), std::string::npos) << st->last_cause;

    // The master answers again: up, but it gets the traffic back only after 1 s of health.
    peer_bfd(0, fwd::bfd_state::init);
    step();
    ASSERT_EQ(bfd_state(0), fwd::bfd_state::up);
    EXPECT_TRUE(tunnel_up(0));
    for (int k = 0; k < 9; ++k) {
        peer_bfd(0, fwd::bfd_state::up);
        peer_bfd(1, fwd::bfd_state::up);
        advance(100 * ms);
        EXPECT_EQ(traffic_spi(), 0x1002u) << "still in hold-down after " << (k + 1) * 100 << " ms";
    }
    peer_bfd(0, fwd::bfd_state::up);
    peer_bfd(1, fwd::bfd_state::up);
    advance(101 * ms);
    EXPECT_EQ(traffic_spi(), 0x1001u); // failback
    st = gw_->health().group("ccn");
    EXPECT_EQ(st->failbacks, 1u);
    EXPECT_EQ(st->switches, 3u); // first up, failover, failback
    EXPECT_EQ(st->active, "edge-esp");
    EXPECT_EQ(h->downs(), downs + 1);
    EXPECT_EQ(h->bfd.down_transitions.load(), 1u);
    EXPECT_EQ(h->bfd.up_transitions.load(), 2u);
    EXPECT_EQ(gw_->health().totals().tunnel_down, 1u); // seen by the monitor (after start)
    // A flap during the hold-down restarts it; with the backup down too, the master carries
    // the traffic at once (nothing better is left).
    while (bfd_state(1) == fwd::bfd_state::up) {
        peer_bfd(0, fwd::bfd_state::up);
        advance(50 * ms);
    }
    EXPECT_EQ(traffic_spi(), 0x1001u);
    expect_balanced();
}

TEST_F(HealthTest, PeerSignalledDownTakesTheTunnelDownAtOnce) {
    start_health();
    step();
    peer_bfd(0, fwd::bfd_state::init);
    peer_bfd(1, fwd::bfd_state::init);
    step();
    ASSERT_EQ(traffic_spi(), 0x1001u);
    peer_bfd(0, fwd::bfd_state::down); // RFC 5880 6.8.6: Up + remote Down -> Down (diag 3)
    step();
    EXPECT_EQ(bfd_state(0), fwd::bfd_state::down);
    EXPECT_EQ(traffic_spi(), 0x1002u);
    expect_balanced();
}

TEST_F(HealthTest, BadBfdPacketsAreDroppedAndCountedByReason) {
    start_health();
    step();
    drain(wan_);
    peer_bfd(0, fwd::bfd_state::init, 254); // TTL must be 255
    send(wan_, peer_esp(0, peer_bfd_packet(0, fwd::bfd_state::init, 0x12345))); // not ours
    send(wan_, peer_esp(0, peer_bfd_packet(0, fwd::bfd_state::init, local_disc(0), 255,
                                           ip(169, 254, 1, 99)))); // unknown source
    frame bad = peer_bfd_packet(0, fwd::bfd_state::init, local_disc(0));
    bad[28] = 0x00; // version 0
    send(wan_, peer_esp(0, bad));
    frame zero_mult = peer_bfd_packet(0, fwd::bfd_state::init, local_disc(0));
    zero_mult[28 + 2] = 0;
    send(wan_, peer_esp(0, zero_mult));
    frame short_udp = peer_bfd_packet(0, fwd::bfd_state::init, local_disc(0));
    short_udp[24] = 0, short_udp[25] = 20; // UDP length 20: 12 bytes of BFD
    send(wan_, peer_esp(0, short_udp));
    // UDP 3784 to the gateway's own address through a tunnel: no session there.
    frame own = peer_bfd_packet(0, fwd::bfd_state::init, 0);
    own[16] = 10, own[17] = 1, own[18] = 0, own[19] = 1; // 10.1.0.1 (sagd's LAN address)
    auto* h = reinterpret_cast<rte_ipv4_hdr*>(own.data());
    h->hdr_checksum = 0;
    h->hdr_checksum = rte_ipv4_cksum(h);
    send(wan_, peer_esp(0, own));
    step();
    EXPECT_EQ(dropped(drop::bfd_bad_ttl), 1u);
    EXPECT_EQ(dropped(drop::bfd_bad_discriminator), 1u);
    EXPECT_EQ(dropped(drop::bfd_no_session), 2u);
    EXPECT_EQ(dropped(drop::bfd_malformed), 3u);
    EXPECT_EQ(dropped(drop::bfd_received), 0u);
    EXPECT_EQ(bfd_state(0), fwd::bfd_state::down); // none of them moved the session
    // Six of them reached the session's checks (the seventh was not for a session).
    EXPECT_EQ(gw_->tbl().find_tunnel("edge-esp")->health->bfd.rx_dropped.load(), 6u);
    // A good one is taken.
    peer_bfd(0, fwd::bfd_state::init);
    step();
    EXPECT_EQ(dropped(drop::bfd_received), 1u);
    EXPECT_EQ(bfd_state(0), fwd::bfd_state::up);
    expect_balanced();
}

TEST_F(HealthTest, WanLinkDownTakesItsTunnelsDownAtOnce) {
    start_health(false, 5000);
    EXPECT_EQ(traffic_spi(), 0x1001u);
    ASSERT_EQ(rte_eth_dev_set_link_down(wan_.id), 0);
    advance(11 * ms); // the link monitor polls every 10 ms
    EXPECT_FALSE(tunnel_up(0));
    EXPECT_FALSE(tunnel_up(1));
    EXPECT_FALSE(gw_->health().port_link(1));
    EXPECT_EQ(traffic_spi(), 0u);
    EXPECT_EQ(dropped(drop::group_down), 1u);
    ASSERT_EQ(rte_eth_dev_set_link_up(wan_.id), 0);
    advance(11 * ms);
    EXPECT_TRUE(tunnel_up(0));
    // Both recovered together: nothing else is up, so the hold-down does not keep them idle.
    EXPECT_EQ(traffic_spi(), 0x1001u);
    EXPECT_EQ(gw_->tbl().find_tunnel("edge-esp")->health->last_cause(), health_cause::link_up);
    expect_balanced();
}

TEST_F(HealthTest, BfdSettingsChangeRestartsTheSessionAndRemovingBfdBringsTheTunnelUp) {
    start_health();
    step();
    peer_bfd(0, fwd::bfd_state::init);
    step();
    ASSERT_EQ(bfd_state(0), fwd::bfd_state::up);
    uint32_t disc = local_disc(0);
    tunnel_config t = gw_->writer().running().tunnels[0];
    ASSERT_EQ(t.name, "edge-esp");
    ASSERT_TRUE(t.bfd);
    t.bfd->detect_mult = 5;
    change_set cs;
    cs.put_tunnels.push_back(t);
    ASSERT_FALSE(gw_->apply(cs));
    step();
    EXPECT_EQ(bfd_state(0), fwd::bfd_state::down);
    EXPECT_FALSE(tunnel_up(0));
    EXPECT_NE(local_disc(0), disc);
    t.bfd.reset();
    change_set off;
    off.put_tunnels.push_back(t);
    ASSERT_FALSE(gw_->apply(off));
    step();
    EXPECT_TRUE(tunnel_up(0));
    EXPECT_EQ(traffic_spi(), 0x1001u);
    expect_balanced();
}

TEST_F(HealthTest, IcmpHealthCheckTakesItsTunnelOutAndReportsSlaFigures) {
    start_health(false, 0);
    tunnel_config t = gw_->writer().running().tunnels[0];
    ASSERT_EQ(t.name, "edge-esp");
    tunnel_check_config c;
    c.target = ip(10, 2, 0, 9);
    c.source = ip(10, 1, 0, 1);
    c.interval_ms = 100;
    c.timeout_ms = 250;
    c.failures = 3;
    c.rtt_threshold_ms = 150;
    t.health_check = c;
    change_set cs;
    cs.put_tunnels.push_back(t);
    ASSERT_FALSE(gw_->apply(cs));
    auto* h = gw_->tbl().find_tunnel("edge-esp")->health.get();
    // Probes go out through the tunnel every interval; the far host answers after `delay`.
    auto answer = [&](uint64_t delay) {
        for (const auto& fr : drain(wan_)) {
            if (fr[14 + 9] != IPPROTO_ESP || be32(&fr[14 + 20]) != 0x1001)
                continue;
            frame inner;
            ASSERT_EQ(peer_decap(0, fr, inner), crypto::esp_status::ok);
            if (inner[9] != IPPROTO_ICMP || inner[20] != 8)
                continue; // traffic, not a probe
            EXPECT_EQ(be32(&inner[12]), c.source);
            EXPECT_EQ(be32(&inner[16]), c.target);
            frame reply = inner;
            std::swap_ranges(reply.begin() + 12, reply.begin() + 16, reply.begin() + 16);
            reply[20] = 0; // echo reply, same id/seq/payload
            reply[22] = reply[23] = 0;
            uint16_t sum = static_cast<uint16_t>(~rte_raw_cksum(&reply[20], reply.size() - 20));
            std::memcpy(&reply[22], &sum, 2);
            auto* ih = reinterpret_cast<rte_ipv4_hdr*>(reply.data());
            ih->hdr_checksum = 0;
            ih->hdr_checksum = rte_ipv4_cksum(ih);
            fake_now_ns += delay;
            send(wan_, peer_esp(0, reply));
            step();
        }
    };
    for (int k = 0; k < 10; ++k) {
        advance(100 * ms);
        answer(k % 2 == 0 ? 20 * ms : 40 * ms);
    }
    EXPECT_TRUE(tunnel_up(0));
    EXPECT_GE(h->check.replies.load(), 9u);
    EXPECT_EQ(h->check.loss_permille.load(), 0u);
    EXPECT_GE(h->check.latency_ns.load(), 20 * ms);
    EXPECT_LE(h->check.latency_ns.load(), 40 * ms);
    EXPECT_GE(h->check.jitter_ns.load(), 15 * ms); // |40 - 20| between consecutive probes
    EXPECT_EQ(traffic_spi(), 0x1001u);
    EXPECT_GE(dropped(drop::probe_received), 9u);
    // The target stops answering: three timeouts in a row take the tunnel out of service.
    for (int k = 0; k < 6; ++k) {
        advance(100 * ms);
        drain(wan_);
    }
    EXPECT_FALSE(tunnel_up(0));
    EXPECT_EQ(h->last_cause(), health_cause::check_down);
    EXPECT_EQ(traffic_spi(), 0x1002u);
    EXPECT_GT(h->check.loss_permille.load(), 0u);
    // Answers come back, but too slowly (200 ms > 150 ms threshold): still failing.
    for (int k = 0; k < 5; ++k) {
        advance(100 * ms);
        answer(200 * ms);
    }
    EXPECT_FALSE(tunnel_up(0));
    EXPECT_GE(h->check.slow.load(), 3u);
    // Three good ones in a row bring it back (hold-down 0 here).
    for (int k = 0; k < 4; ++k) {
        advance(100 * ms);
        answer(10 * ms);
    }
    EXPECT_TRUE(tunnel_up(0));
    EXPECT_EQ(traffic_spi(), 0x1001u);
    expect_balanced();
}

TEST_F(HealthTest, BrownOutMovesTrafficToTheMemberThatMeetsTheSlaClass) {
    start_health(false, 0);
    tunnel_config t = gw_->writer().running().tunnels[0];
    tunnel_check_config c;
    c.target = ip(10, 2, 0, 9);
    c.source = ip(10, 1, 0, 1);
    c.interval_ms = 100;
    c.timeout_ms = 150;
    c.failures = 3;
    c.window = 10;
    c.sla = sla_limits{20, 0, 0}; // at most 20% loss
    t.health_check = c;
    change_set cs;
    cs.put_tunnels.push_back(t);
    ASSERT_FALSE(gw_->apply(cs));
    auto* h = gw_->tbl().find_tunnel("edge-esp")->health.get();
    // Answers the probes waiting on the WAN ring, all or every other one.
    unsigned n = 0;
    auto answer = [&](bool every_other) {
        for (const auto& fr : drain(wan_)) {
            if (fr[14 + 9] != IPPROTO_ESP || be32(&fr[14 + 20]) != 0x1001)
                continue;
            frame inner;
            ASSERT_EQ(peer_decap(0, fr, inner), crypto::esp_status::ok);
            if (inner[9] != IPPROTO_ICMP || inner[20] != 8 || (every_other && n++ % 2 == 1))
                continue;
            frame reply = inner;
            std::swap_ranges(reply.begin() + 12, reply.begin() + 16, reply.begin() + 16);
            reply[20] = 0;
            reply[22] = reply[23] = 0;
            uint16_t sum = static_cast<uint16_t>(~rte_raw_cksum(&reply[20], reply.size() - 20));
            std::memcpy(&reply[22], &sum, 2);
            auto* ih = reinterpret_cast<rte_ipv4_hdr*>(reply.data());
            ih->hdr_checksum = 0;
            ih->hdr_checksum = rte_ipv4_cksum(ih);
            fake_now_ns += 5 * ms;
            send(wan_, peer_esp(0, reply));
            step();
        }
    };
    for (int k = 0; k < 12; ++k) {
        advance(100 * ms);
        answer(false);
    }
    EXPECT_FALSE(h->browned_out());
    EXPECT_EQ(traffic_spi(), 0x1001u);
    // Half the probes lost: up (never three in a row), but below its class.
    for (int k = 0; k < 14 && !h->browned_out(); ++k) {
        advance(100 * ms);
        answer(true);
    }
    EXPECT_TRUE(h->browned_out());
    EXPECT_TRUE(tunnel_up(0));
    EXPECT_EQ(traffic_spi(), 0x1002u);
    EXPECT_NE(gw_->health().group("ccn")->last_cause.find("below its SLA class (loss)"),
              std::string::npos)
        << gw_->health().group("ccn")->last_cause;
    // Clean again: once the window's loss is <= 16% (80% of the limit), back to the master.
    for (int k = 0; k < 14 && h->browned_out(); ++k) {
        advance(100 * ms);
        answer(false);
    }
    EXPECT_FALSE(h->browned_out());
    EXPECT_EQ(traffic_spi(), 0x1001u);
    EXPECT_EQ(h->check.brownouts.load(), 1u);
    EXPECT_EQ(gw_->health().group("ccn")->last_cause, "tunnel 'edge-esp' meets its SLA class again");
    EXPECT_EQ(gw_->health().group("ccn")->failbacks, 1u);
    expect_balanced();
}

} // namespace
} // namespace sagd::dp

namespace sagd::dp {
namespace {

// ---- IPv6 ------------------------------------------------------------------------------------

TEST_F(GatewayTest, Ipv6AnswersNeighborSolicitationAndPing) {
    start();
    const ipv6_addr host = a6("2001:db8:1::2");
    auto out = introduce6(host, host_mac);
    ASSERT_EQ(out.size(), 1u);
    const frame& na = out[0];
    EXPECT_EQ(std::memcmp(na.data(), host_mac.data(), 6), 0);
    EXPECT_EQ(be16(&na[12]), RTE_ETHER_TYPE_IPV6);
    EXPECT_EQ(na[14 + 6], IPPROTO_ICMPV6);
    EXPECT_EQ(na[14 + 7], 255); // RFC 4861 7.1.2
    EXPECT_EQ(std::memcmp(&na[14 + 8], a6("2001:db8:1::1").data(), 16), 0);
    EXPECT_EQ(std::memcmp(&na[14 + 24], host.data(), 16), 0);
    EXPECT_EQ(na[54], 136);
    EXPECT_EQ(na[54 + 4], 0xe0); // router, solicited, override
    EXPECT_EQ(std::memcmp(&na[54 + 8], a6("2001:db8:1::1").data(), 16), 0);
    EXPECT_EQ(na[54 + 24], 2); // target link-layer address option
    EXPECT_EQ(std::memcmp(&na[54 + 26], lan_mac_.addr_bytes, 6), 0);
    EXPECT_TRUE(icmp6_checksum_valid(na));
    const auto* e = gw_->neighbours6().lookup(0, host);
    ASSERT_NE(e, nullptr);
    EXPECT_TRUE(e->read().usable());
    EXPECT_EQ(gw_->slow_path().neighbor_adverts_sent, 1u);

    // ping6 to the global and to the link-local address.
    for (const ipv6_addr& ours : {a6("2001:db8:1::1"), gw_->tbl().ports[0].link_local}) {
        const ipv6_addr src = fwd::ipv6_is_link_local(ours) ? a6("fe80::2") : host;
        send_lan_ip6(ipv6_packet(src, ours, IPPROTO_ICMPV6, icmp6(128, echo6_body(7, 1))));
        step();
        out = drain(lan_);
        ASSERT_EQ(out.size(), 1u);
        const frame& r = out[0];
        EXPECT_EQ(std::memcmp(r.data(), host_mac.data(), 6), 0);
        EXPECT_EQ(std::memcmp(&r[14 + 8], ours.data(), 16), 0);
        EXPECT_EQ(std::memcmp(&r[14 + 24], src.data(), 16), 0);
        EXPECT_EQ(r[54], 129);
        EXPECT_EQ(be16(&r[54 + 4]), 7);
        EXPECT_TRUE(icmp6_checksum_valid(r));
    }
    EXPECT_EQ(gw_->tbl().ports[0].link_local[0], 0xfe);
    EXPECT_EQ(gw_->tbl().ports[0].link_local[11], 0xff); // EUI-64 from the MAC
    EXPECT_EQ(gw_->tbl().ports[0].link_local[8], lan_mac_.addr_bytes[0] ^ 2);
    expect_balanced();
}

TEST_F(GatewayTest, Ipv6DefendsItsAddressAgainstDadAndRefusesBadNd) {
    start();
    // DAD probe (source ::, to the solicited-node group, no source lladdr option).
    frame dad = ipv6_packet(ipv6_addr{}, a6("ff02::1:ff00:1"), IPPROTO_ICMPV6,
                            icmp6(135, nd_body(a6("2001:db8:1::1"), 1, nullptr)), 255);
    rte_ether_addr mc{{0x33, 0x33, 0xff, 0x00, 0x00, 0x01}};
    send(lan_, ether(mc, host_mac, RTE_ETHER_TYPE_IPV6, dad));
    step();
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    const frame& na = out[0];
    EXPECT_EQ(std::memcmp(na.data(), "\x33\x33\x00\x00\x00\x01", 6), 0);
    EXPECT_EQ(std::memcmp(&na[14 + 24], a6("ff02::1").data(), 16), 0);
    EXPECT_EQ(na[54 + 4], 0xa0); // solicited flag clear (RFC 4861 7.2.4)
    EXPECT_TRUE(icmp6_checksum_valid(na));
    EXPECT_EQ(gw_->slow_path().dad_defended, 1u);
    EXPECT_EQ(gw_->neighbours6().size(), 0u); // nothing learned from ::

    // Bad ND: hop limit 254 (off-link), bad checksum, DAD probe with a source lladdr.
    frame off_link = ipv6_packet(a6("2001:db8:1::2"), a6("ff02::1:ff00:1"), IPPROTO_ICMPV6,
                                 icmp6(135, nd_body(a6("2001:db8:1::1"), 1, &host_mac)), 254);
    frame bad_sum = ipv6_packet(a6("2001:db8:1::2"), a6("ff02::1:ff00:1"), IPPROTO_ICMPV6,
                                icmp6(135, nd_body(a6("2001:db8:1::1"), 1, &host_mac)), 255);
    bad_sum[40 + 2] ^= 0x55;
    frame dad_opt = ipv6_packet(ipv6_addr{}, a6("ff02::1:ff00:1"), IPPROTO_ICMPV6,
                                icmp6(135, nd_body(a6("2001:db8:1::1"), 1, &host_mac)), 255);
    for (const frame* f : {&off_link, &bad_sum, &dad_opt})
        send(lan_, ether(mc, host_mac, RTE_ETHER_TYPE_IPV6, *f));
    step();
    EXPECT_TRUE(drain(lan_).empty());
    EXPECT_EQ(gw_->slow_path().nd_invalid, 3u);
    // Someone else claims our address: counted, our address kept.
    frame claim = ipv6_packet(a6("2001:db8:1::1"), a6("ff02::1"), IPPROTO_ICMPV6,
                              icmp6(136, nd_body(a6("2001:db8:1::1"), 2, &host_mac, 0x20)), 255);
    rte_ether_addr all{{0x33, 0x33, 0, 0, 0, 1}};
    send(lan_, ether(all, host_mac, RTE_ETHER_TYPE_IPV6, claim));
    step();
    EXPECT_EQ(gw_->slow_path().duplicate_address, 1u);
    expect_balanced();
}

TEST_F(GatewayTest, Ipv6LanTrafficIsEncryptedWithNextHeader41) {
    start();
    const frame inner = ipv6_packet(a6("2001:db8:1::2"), a6("2001:db8:2::5"), IPPROTO_UDP,
                                    udp_payload(1234, 5678, 300), 64);
    send_lan_ip6(inner);
    step();
    auto out = drain(wan_);
    ASSERT_EQ(out.size(), 1u);
    const frame& f = out[0];
    EXPECT_EQ(be16(&f[12]), RTE_ETHER_TYPE_IPV4); // the outer header stays IPv4 to the edge
    EXPECT_EQ(f[14 + 9], IPPROTO_ESP);
    EXPECT_EQ(be32(&f[14 + 16]), ip(198, 51, 100, 1));
    frame got;
    ASSERT_EQ(peer_decap(0, f, got), crypto::esp_status::ok); // checks next header 41
    ASSERT_EQ(got.size(), inner.size());
    EXPECT_EQ(got[0] >> 4, 6);
    EXPECT_EQ(got[7], 63); // hop limit decremented
    EXPECT_TRUE(std::equal(got.begin() + 8, got.end(), inner.begin() + 8));
    expect_balanced();
}

TEST_F(GatewayTest, Ipv6FromTheTunnelIsResolvedWithNdAndDelivered) {
    start();
    const ipv6_addr host = a6("2001:db8:1::77");
    const mac_addr mac77{0x02, 0, 0, 0, 0x10, 0x77};
    const frame inner = ipv6_packet(a6("2001:db8:2::5"), host, IPPROTO_UDP,
                                    udp_payload(5678, 1234, 200), 40);
    send(wan_, peer_esp6(0, inner));
    step(2000);
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 1u); // the packet waits; a Neighbor Solicitation goes out
    const frame& ns = out[0];
    EXPECT_EQ(std::memcmp(ns.data(), "\x33\x33\xff\x00\x00\x77", 6), 0);
    EXPECT_EQ(ns[54], 135);
    EXPECT_EQ(std::memcmp(&ns[14 + 8], a6("2001:db8:1::1").data(), 16), 0);
    EXPECT_EQ(std::memcmp(&ns[14 + 24], a6("ff02::1:ff00:77").data(), 16), 0);
    EXPECT_EQ(std::memcmp(&ns[54 + 8], host.data(), 16), 0);
    EXPECT_TRUE(icmp6_checksum_valid(ns));
    // The answer releases the packet.
    frame na = ipv6_packet(host, a6("2001:db8:1::1"), IPPROTO_ICMPV6,
                           icmp6(136, nd_body(host, 2, &mac77, 0x60)), 255);
    send_lan_ip6(na, mac77);
    step(2100);
    out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(std::memcmp(out[0].data(), mac77.data(), 6), 0);
    EXPECT_EQ(be16(&out[0][12]), RTE_ETHER_TYPE_IPV6);
    ASSERT_EQ(out[0].size(), 14 + inner.size());
    EXPECT_EQ(out[0][14 + 7], 39);
    EXPECT_TRUE(std::equal(out[0].begin() + 14 + 8, out[0].end(), inner.begin() + 8));
    EXPECT_EQ(gw_->slow_path().held_sent, 1u);
    // Now resolved: the next one goes straight out, and an unanswered neighbour ages to FAILED
    // and its held packet is dropped, counted.
    send(wan_, peer_esp6(0, inner));
    step(2200);
    EXPECT_EQ(drain(lan_).size(), 1u);
    const frame lost = ipv6_packet(a6("2001:db8:2::5"), a6("2001:db8:1::99"), IPPROTO_UDP,
                                   udp_payload(1, 2, 10));
    send(wan_, peer_esp6(0, lost));
    for (uint64_t t = 3000; t <= 9000; t += 500)
        step(t);
    EXPECT_EQ(gw_->slow_path().held_dropped_unresolved, 1u);
    EXPECT_EQ(gw_->slow_path().neighbor_solicits_sent, 4u); // 1 + 3 for ::99
    expect_balanced();
}

TEST_F(GatewayTest, Ipv6HopLimitNoRouteAndTooBigSendIcmpv6Errors) {
    start();
    const ipv6_addr host = a6("2001:db8:1::2");
    ASSERT_EQ(introduce6(host, host_mac).size(), 1u);
    send_lan_ip6(ipv6_packet(host, a6("2001:db8:2::5"), IPPROTO_UDP, udp_payload(1, 2, 20), 1));
    send_lan_ip6(ipv6_packet(host, a6("2001:db8:77::1"), IPPROTO_UDP, udp_payload(1, 2, 20)));
    send_lan_ip6(ipv6_packet(host, a6("2001:db8:2::5"), IPPROTO_UDP, udp_payload(1, 2, 1440)));
    step();
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 3u);
    for (const auto& f : out) {
        EXPECT_EQ(std::memcmp(f.data(), host_mac.data(), 6), 0);
        EXPECT_EQ(f[14 + 6], IPPROTO_ICMPV6);
        EXPECT_EQ(std::memcmp(&f[14 + 8], a6("2001:db8:1::1").data(), 16), 0);
        EXPECT_EQ(std::memcmp(&f[14 + 24], host.data(), 16), 0);
        EXPECT_TRUE(icmp6_checksum_valid(f));
        EXPECT_LE(f.size(), 14u + 1280u);
    }
    EXPECT_EQ(out[0][54], 3); // time exceeded
    EXPECT_EQ(out[1][54], 1); // destination unreachable, no route
    EXPECT_EQ(out[1][55], 0);
    EXPECT_EQ(out[2][54], 2); // packet too big
    const uint32_t mtu = be32(&out[2][54 + 4]);
    const auto& tun = *gw_->tbl().tunnels[0];
    EXPECT_EQ(mtu, 1500u - tun.overhead);
    EXPECT_EQ(dropped(drop::hop_limit_exceeded), 1u);
    EXPECT_EQ(dropped(drop::no_route), 1u);
    EXPECT_EQ(dropped(drop::mtu_exceeded), 1u);
    // A packet that just fits goes through.
    send_lan_ip6(ipv6_packet(host, a6("2001:db8:2::5"), IPPROTO_UDP,
                             udp_payload(1, 2, mtu - 48)));
    step();
    EXPECT_EQ(drain(wan_).size(), 1u);
    expect_balanced();
}

TEST_F(GatewayTest, MalformedIpv6IsCountedNeverForwarded) {
    start();
    const ipv6_addr host = a6("2001:db8:1::2");
    frame good = ipv6_packet(host, a6("2001:db8:2::5"), IPPROTO_UDP, udp_payload(1, 2, 20));
    frame bad_version = good;
    bad_version[0] = 0x40;
    frame too_long = good;
    too_long[4] = 0x05; // payload length 1280+ beyond the frame
    frame jumbo = good;
    jumbo[4] = jumbo[5] = 0;
    frame truncated(good.begin(), good.begin() + 30);
    frame mcast_src = good;
    mcast_src[8] = 0xff;
    frame ll_dst = ipv6_packet(host, a6("fe80::9"), IPPROTO_UDP, udp_payload(1, 2, 20));
    frame mcast_dst = ipv6_packet(host, a6("ff05::2"), IPPROTO_UDP, udp_payload(1, 2, 20));
    for (const frame* f : {&bad_version, &too_long, &jumbo, &truncated})
        send_lan_ip6(*f);
    send_lan_ip6(mcast_src);
    send_lan_ip6(ll_dst);
    send_lan_ip6(mcast_dst);
    // IPv6 on the WAN port (no address6 there).
    send(wan_, ether(wan_mac_, wan_gw_mac, RTE_ETHER_TYPE_IPV6, good));
    step();
    EXPECT_TRUE(drain(wan_).empty());
    EXPECT_TRUE(drain(lan_).empty());
    EXPECT_EQ(dropped(drop::bad_ipv6), 4u);
    EXPECT_EQ(dropped(drop::ipv6_bad_source), 1u);
    EXPECT_EQ(dropped(drop::ipv6_multicast), 2u);
    EXPECT_EQ(dropped(drop::ipv6_unsupported), 1u);
    expect_balanced();
    // Random IPv6 garbage never crashes and always balances.
    std::mt19937 rng(66);
    for (int i = 0; i < 400; ++i) {
        frame g = good;
        g.resize(40 + rng() % 80);
        for (int k = 0; k < 6; ++k)
            g[rng() % g.size()] = static_cast<uint8_t>(rng());
        g[0] = static_cast<uint8_t>(0x60 | (g[0] & 0x0f));
        send_lan_ip6(g);
        if (i % 32 == 31)
            step();
    }
    step();
    drain(wan_);
    drain(lan_);
    expect_balanced();
}

TEST_F(GatewayTest, Ipv6LearnedRoutesYieldToStaticAndChangesAreAllOrNothing) {
    start();
    change_set cs;
    learned_route6 l;
    l.prefix = {a6("2001:db8:2::"), 48}; // also a static route via edge-esp
    l.gateways = {a6("2001:db8:1::fe")};
    cs.put_learned6.push_back(l);
    learned_route6 l2;
    l2.prefix = {a6("2001:db8:60::"), 48};
    l2.gateways = {a6("fe80::fe")}; // link-local: the only IPv6 LAN port
    cs.put_learned6.push_back(l2);
    ASSERT_FALSE(gw_->apply(cs));
    const auto& fib = gw_->writer().fib6();
    ASSERT_TRUE(fib.installed(a6("2001:db8:2::"), 48));
    EXPECT_EQ(fib.installed(a6("2001:db8:2::"), 48)->origin, fwd::route_origin::static_route);
    EXPECT_EQ(fib.candidates(a6("2001:db8:2::"), 48).size(), 2u);
    EXPECT_EQ(gw_->writer().learned6_count(), 2u);
    // A change with one bad route changes nothing (the good route of it included).
    change_set bad;
    route6_config good;
    good.prefix = {a6("2001:db8:70::"), 48};
    good.tunnel = "edge-udp";
    route6_config nowhere;
    nowhere.prefix = {a6("2001:db8:71::"), 48};
    nowhere.via = route_via::lan_gateway;
    nowhere.gateway = a6("2001:db8:5::1"); // not on a LAN prefix
    bad.put_routes6 = {good, nowhere};
    bad.delete_learned6.push_back({a6("2001:db8:60::"), 48});
    auto f = gw_->apply(bad);
    ASSERT_TRUE(f);
    EXPECT_NE(f->message.find("2001:db8:71::/48"), std::string::npos) << f->message;
    EXPECT_FALSE(fib.installed(a6("2001:db8:70::"), 48));
    EXPECT_TRUE(fib.installed(a6("2001:db8:60::"), 48));
    EXPECT_EQ(gw_->writer().static_route6_count(), 2u);
    // A tunnel used by an IPv6 route cannot go.
    change_set del_tunnel;
    del_tunnel.delete_tunnels.push_back("edge-esp");
    del_tunnel.delete_routes.push_back({ip(10, 2, 0, 0), 16});
    f = gw_->apply(del_tunnel);
    ASSERT_TRUE(f);
    EXPECT_NE(f->message.find("IPv6 static route 2001:db8:2::/48"), std::string::npos)
        << f->message;
    // Removing the static route lets the learned one win; traffic goes to the LAN router.
    change_set del;
    del.delete_routes6.push_back({a6("2001:db8:2::"), 48});
    ASSERT_FALSE(gw_->apply(del));
    EXPECT_EQ(fib.installed(a6("2001:db8:2::"), 48)->origin, fwd::route_origin::learned);
    const mac_addr rmac{0x02, 0, 0, 0, 0x10, 0xfe};
    ASSERT_EQ(introduce6(a6("2001:db8:1::fe"), rmac).size(), 1u);
    send_lan_ip6(ipv6_packet(a6("2001:db8:1::2"), a6("2001:db8:2::5"), IPPROTO_UDP,
                             udp_payload(1, 2, 8)));
    step();
    auto out = drain(lan_);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(std::memcmp(out[0].data(), rmac.data(), 6), 0);
    expect_balanced();
}

} // namespace
} // namespace sagd::dp
