// The worker: one per lcore, run to completion. The pipeline is wired here, in one place:
//
//   rx burst -> classify (L2, IPv4/IPv6 checks, local / ND / ESP / forward)
//            -> decap runs (packets that share an inbound SA)  -> forward | forward6
//            -> forward (FIB burst lookup, TTL, MTU)           -> encap runs | LAN tx | slow path
//            -> forward6 (FIB6 burst lookup, hop limit, MTU)   -> encap runs | LAN tx | slow path
//            -> encap runs (packets that share a tunnel)       -> WAN tx
//   then the hand-off ring (packets whose SA this worker owns), the inject ring (packets the
//   slow path wants sent), the BFD timers of the tunnels this worker owns (their control
//   packets join the encap stage), and one tx flush per port.
//
// BFD (RFC 5880/5881) runs inside each tunnel, by the tunnel's owner worker: the same worker
// that decrypts the tunnel's packets and encrypts for it, so a session has one writer and its
// timers are checked every loop iteration (not by a slow control loop).
//
// Every packet ends in exactly one place (tx, punted, handed off, or a drop reason), so the
// counters balance; see counters.hpp.
#include <algorithm>
#include <cstring>

#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_fib6.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <rte_random.h>
#include <rte_spinlock.h>
#include <rte_udp.h>

#include "dataplane/gateway.hpp"
#include "dataplane/rings.hpp"
#include "dataplane/worker_stages.hpp"
#include "forwarding/bfd.hpp"
#include "forwarding/packet.hpp"
#include "forwarding/packet6.hpp"

namespace sagd::dp {

namespace {

constexpr unsigned burst_size = 32;
constexpr unsigned stage_capacity = burst_size * 2;

inline bool is_broadcast(const rte_ether_addr& a) noexcept {
    return rte_is_broadcast_ether_addr(&a);
}

inline uint16_t udp_dst_port(const uint8_t* udp) noexcept {
    return static_cast<uint16_t>(udp[2] << 8 | udp[3]);
}

// Flow hash of an IPv4 packet for choosing among equal group members: addresses, protocol and,
// for the first fragment or unfragmented TCP/UDP/SCTP, the ports. One flow, one member.
inline uint32_t flow_hash(const rte_ipv4_hdr* ip) noexcept {
    uint64_t h = (uint64_t{ip->src_addr} << 32 | ip->dst_addr) ^ (uint64_t{ip->next_proto_id} << 7);
    const bool first = (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK)) == 0;
    const auto proto = ip->next_proto_id;
    const unsigned ihl = (ip->version_ihl & 0xf) * 4u;
    if (first && (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP) &&
        rte_be_to_cpu_16(ip->total_length) >= ihl + 4) {
        uint32_t ports;
        std::memcpy(&ports, reinterpret_cast<const uint8_t*>(ip) + ihl, 4);
        h ^= uint64_t{ports} * 0x9E3779B97F4A7C15ull;
    }
    h *= 0xff51afd7ed558ccdull; // murmur3 fmix64
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return static_cast<uint32_t>(h);
}

// The same for IPv6: addresses, next header, flow label and, for TCP/UDP/SCTP right after the
// fixed header, the ports.
inline uint32_t flow_hash6(const uint8_t* ip6, uint32_t len) noexcept {
    uint64_t a[4];
    std::memcpy(a, ip6 + 8, 32);
    uint64_t h = a[0] ^ (a[1] * 0x9E3779B97F4A7C15ull) ^ (a[2] * 0xC2B2AE3D27D4EB4Full) ^
                 (a[3] * 0x165667B19E3779F9ull);
    h ^= uint64_t{ip6[6]} << 7;
    h ^= (uint64_t{ip6[1] & 0x0fu} << 16 | uint64_t{ip6[2]} << 8 | ip6[3]) << 20;
    const uint8_t nh = ip6[6];
    if ((nh == IPPROTO_TCP || nh == IPPROTO_UDP || nh == IPPROTO_SCTP) && len >= 44) {
        uint32_t ports;
        std::memcpy(&ports, ip6 + 40, 4);
        h ^= uint64_t{ports} * 0x9E3779B97F4A7C15ull;
    }
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return static_cast<uint32_t>(h);
}

inline bool is_martian_destination(ipv4_addr dst) noexcept {
    return dst >= 0xE0000000u /* multicast, class E, limited broadcast */ || dst == 0;
}

// A fixed-capacity list of packets for one stage; never allocates.
struct packet_list {
    std::array<rte_mbuf*, stage_capacity> pkts;
    std::array<uint32_t, stage_capacity> key; // stage-specific: SA or tunnel index
    unsigned n = 0;
    void push(rte_mbuf* m, uint32_t k = 0) noexcept {
        pkts[n] = m;
        key[n] = k;
        ++n;
    }
};

class worker_loop {
  public:
    worker_loop(gateway& gw, worker_context& w, rte_ring* punt, tx_locks& locks) noexcept
        : gw_(gw), t_(&gw.tbl()), w_(w), c_(w.counters), neigh_(gw.neighbours()),
          neigh6_(gw.neighbours6()), punt_(punt), locks_(locks) {}

    void run() noexcept;
    // One iteration: every rx queue once, the hand-off and inject rings, one flush.
    void poll() noexcept;

  private:
    void on_rx(uint8_t port, rte_mbuf** pkts, unsigned n) noexcept;
    void classify(uint8_t port, rte_mbuf* m) noexcept;
    void classify6(uint8_t port, rte_mbuf* m, uint8_t* data, uint32_t len, bool l2_group) noexcept;
    void forward6(packet_list& in) noexcept;
    void send_ip6(uint8_t port, const ipv6_addr& next_hop, rte_mbuf* m) noexcept;
    void forward_all() noexcept {
        forward(forward_list_);
        forward6(forward6_list_);
    }
    void decap(packet_list& in) noexcept;
    void decap_run(crypto::inbound_sa& sa, rte_mbuf** pkts, const crypto::esp_outer_info* outer,
                   unsigned n) noexcept;
    bool bfd_input(uint32_t tunnel, rte_mbuf* m, const fwd::ipv4_info& ip) noexcept;
    void run_probes() noexcept;
    uint64_t check_poll(const tunnel_runtime& t) noexcept;
    void check_result(const tunnel_runtime& t, bool ok, uint32_t n) noexcept;
    void check_publish(const tunnel_runtime& t) noexcept;
    void echo_send(const tunnel_runtime& t, uint32_t seq) noexcept;
    bool echo_input(uint32_t tunnel, rte_mbuf* m, const fwd::ipv4_info& ip) noexcept;
    uint64_t bfd_poll_session(const tunnel_runtime& t) noexcept;
    void bfd_send(const tunnel_runtime& t, const fwd::bfd_packet& pkt) noexcept;
    void bfd_changed(const tunnel_runtime& t, const fwd::bfd_state_change& ch) noexcept;
    void bfd_publish(const tunnel_runtime& t) noexcept;
    void forward(packet_list& in) noexcept;
    void encap(packet_list& in) noexcept;
    void encap_run(uint32_t tunnel, rte_mbuf** pkts, unsigned n) noexcept;
    bool resolve(uint16_t port, ipv4_addr next_hop, rte_ether_addr& mac) noexcept;
    void send_ip(uint8_t port, ipv4_addr next_hop, rte_mbuf* m) noexcept;
    void send_to(uint8_t port, const rte_ether_addr& mac, rte_mbuf* m,
                 uint16_t ethertype = RTE_ETHER_TYPE_IPV4) noexcept;
    void tx(uint8_t port, rte_mbuf* m) noexcept;
    void flush(uint8_t port) noexcept;
    void flush_all() noexcept;
    void drain_handoff() noexcept;
    void drain_inject() noexcept;
    void punt(rte_mbuf* m, punt_reason r, uint8_t port, uint32_t addr, uint16_t mtu = 0) noexcept;
    void handoff(rte_mbuf* m, handoff_stage s, uint8_t port, uint32_t index,
                 unsigned owner) noexcept;
    void drop(rte_mbuf* m, drop reason) noexcept {
        rte_pktmbuf_free(m);
        c_.count_drop(reason);
    }
    // The packet is counted under `reason`; the slow path quotes it in an ICMP error (RFC 1812
    // 4.3.2), rate-limited, and frees it.
    void drop_with_icmp(rte_mbuf* m, punt_reason icmp, dp::drop reason, uint16_t mtu = 0) noexcept {
        punt(m, icmp, 0, icmp_source(m), mtu);
        c_.count_drop(reason);
    }
    // ICMPv6 errors: the slow path picks our address on the arrival port (see tables).
    void drop_with_icmp6(rte_mbuf* m, punt_reason icmp, dp::drop reason,
                         uint16_t mtu = 0) noexcept {
        const uint8_t port =
            m->port < RTE_MAX_ETHPORTS ? t_->port_index_by_id[m->port] : uint8_t{0};
        punt(m, icmp, port, 0, mtu);
        c_.count_drop(reason);
    }
    ipv4_addr icmp_source(const rte_mbuf* m) const noexcept {
        if (m->port >= RTE_MAX_ETHPORTS) [[unlikely]]
            return t_->icmp_source;
        const auto& p = t_->ports[t_->port_index_by_id[m->port]];
        return p.role == port_role::lan ? p.address : t_->icmp_source;
    }

    gateway& gw_;
    const tables* t_;     // the published tables, loaded once per iteration
    uint64_t now_ns_ = 0; // the gateway clock, read once per iteration
    worker_context& w_;
    worker_counters& c_;
    const fwd::neighbour_table& neigh_;
    const fwd::neighbour6_table& neigh6_;
    rte_ring* punt_;
    tx_locks& locks_;

    packet_list decap_list_;
    packet_list forward_list_;
    packet_list forward6_list_;
    packet_list encap_list_;
    struct neighbour_cache_slot {
        uint64_t generation = 0; // == iteration_ when valid
        ipv4_addr ip = 0;
        uint16_t port = 0;
        rte_ether_addr mac{};
    };
    static constexpr unsigned neighbour_cache_size = 16;
    std::array<neighbour_cache_slot, neighbour_cache_size> neighbour_cache_{};
    uint64_t iteration_ = 0;
    std::array<std::array<rte_mbuf*, burst_size>, max_ports> txbuf_{};
    std::array<uint16_t, max_ports> txn_{};
};

void worker_loop::run() noexcept {
    while (!gw_.stopping())
        poll();
}

void worker_loop::poll() noexcept {
    ++iteration_; // invalidates the neighbour cache
    // The tables stay valid until this iteration ends with the quiescent report below.
    t_ = &gw_.tbl();
    now_ns_ = gw_.now_ns();
    std::array<rte_mbuf*, burst_size> pkts;
    uint64_t start = rte_rdtsc();
    uint64_t before = c_.rx + c_.handoff_in + c_.injected;
    for (const auto& q : w_.rx_queues) {
        uint16_t n = rte_eth_rx_burst(t_->ports[q.port].port_id, q.queue, pkts.data(), burst_size);
        if (n != 0)
            on_rx(q.port, pkts.data(), n);
    }
    drain_handoff();
    drain_inject();
    run_probes();
    flush_all();
    rte_rcu_qsbr_quiescent(gw_.qsbr(), w_.index);
    ++c_.loops;
    uint64_t done = c_.rx + c_.handoff_in + c_.injected - before;
    if (done != 0) {
        ++c_.busy_loops;
        c_.busy_packets += done;
        c_.busy_cycles += rte_rdtsc() - start;
    }
}

void worker_loop::on_rx(uint8_t port, rte_mbuf** pkts, unsigned n) noexcept {
    auto& pc = c_.ports[port];
    c_.rx += n;
    pc.rx_packets += n;
    for (unsigned i = 0; i < n; ++i) {
        if (i + 3 < n)
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 3], void*));
        pc.rx_bytes += rte_pktmbuf_pkt_len(pkts[i]);
        classify(port, pkts[i]);
    }
    decap(decap_list_);
    forward_all();
    encap(encap_list_);
}

void worker_loop::classify(uint8_t port, rte_mbuf* m) noexcept {
    const port_runtime& p = t_->ports[port];
    if (unlikely(m->nb_segs != 1))
        return drop(m, drop::bad_l2);
    auto* data = rte_pktmbuf_mtod(m, uint8_t*);
    uint32_t len = rte_pktmbuf_data_len(m);
    fwd::ethernet_info eth;
    if (unlikely(fwd::parse_ethernet(data, len, eth) != fwd::parse_status::ok || eth.has_vlan))
        return drop(m, drop::bad_l2);
    constexpr uint32_t l3_offset = fwd::ethernet_header_len;
    const auto* eh = reinterpret_cast<const rte_ether_hdr*>(data);
    bool bcast = is_broadcast(eh->dst_addr);
    // IPv6 Neighbor Discovery arrives on solicited-node groups (33:33:ff:xx:xx:xx, RFC 2464 7).
    const bool group6 =
        eth.ethertype == RTE_ETHER_TYPE_IPV6 && rte_is_multicast_ether_addr(&eh->dst_addr);
    if (unlikely(!bcast && !group6 && !rte_is_same_ether_addr(&eh->dst_addr, &p.mac)))
        return drop(m, drop::not_for_us);

    if (eth.ethertype == RTE_ETHER_TYPE_ARP)
        return punt(m, punt_reason::arp, port, 0);
    if (eth.ethertype == RTE_ETHER_TYPE_IPV6)
        return classify6(port, m, data, len, bcast || group6);
    if (unlikely(eth.ethertype != RTE_ETHER_TYPE_IPV4))
        return drop(m, drop::unknown_ethertype);

    fwd::ipv4_info ip;
    if (unlikely(fwd::parse_ipv4(data + l3_offset, len - l3_offset, ip) != fwd::parse_status::ok))
        return drop(m, drop::bad_ipv4);
    // Later stages (ESP's outer header parse) need not sum the header again; ICMP errors
    // take their source from the arrival port (not every PMD sets m->port).
    m->port = p.port_id;
    m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_IP_CKSUM_MASK) | RTE_MBUF_F_RX_IP_CKSUM_GOOD;
    // Ethernet pads short frames: the IP total length, not the frame, says where the packet ends.
    rte_pktmbuf_trim(m, static_cast<uint16_t>(len - l3_offset - ip.total_length));
    if (unlikely(bcast || is_martian_destination(ip.dst) || t_->is_directed_broadcast(ip.dst)))
        return drop(m, drop::multicast);

    if (ip.dst == p.address || t_->is_own_address(ip.dst)) {
        if (ip.more_fragments || ip.fragment_offset != 0)
            return drop(m, drop::fragment_to_us);
        if (p.role == port_role::wan && ip.dst == p.address &&
            (ip.protocol == IPPROTO_ESP ||
             (ip.protocol == IPPROTO_UDP && ip.total_length >= ip.header_len + 4u &&
              t_->natt_ports.test(udp_dst_port(data + l3_offset + ip.header_len))))) {
            rte_pktmbuf_adj(m, l3_offset);
            decap_list_.push(m);
            return;
        }
        if (ip.protocol == IPPROTO_ICMP &&
            fwd::icmp_echo_reply_in_place(data, rte_pktmbuf_data_len(m)) == fwd::icmp_status::ok) {
            tx(port, m);
            return;
        }
        return drop(m, drop::local_unhandled);
    }
    if (p.role == port_role::wan)
        return drop(m, drop::wan_not_tunnel);
    rte_pktmbuf_adj(m, l3_offset);
    forward_list_.push(m);
}

void worker_loop::classify6(uint8_t port, rte_mbuf* m, uint8_t* data, uint32_t len,
                            bool l2_group) noexcept {
    const port_runtime& p = t_->ports[port];
    if (unlikely(!p.ipv6))
        return drop(m, drop::ipv6_unsupported);
    constexpr uint32_t l3_offset = fwd::ethernet_header_len;
    fwd::ipv6_info ip;
    if (unlikely(fwd::parse_ipv6(data + l3_offset, len - l3_offset, ip) != fwd::ipv6_status::ok))
        return drop(m, drop::bad_ipv6);
    m->port = p.port_id;
    // Ethernet pads short frames: the payload length says where the packet ends.
    rte_pktmbuf_trim(
        m, static_cast<uint16_t>(len - l3_offset - fwd::ipv6_header_len - ip.payload_length));
    const bool icmp6 = ip.next_header == fwd::ip_proto_icmpv6 && ip.payload_length >= 4;
    const uint8_t icmp_type = icmp6 ? data[l3_offset + fwd::ipv6_header_len] : 0;
    const bool own = t_->is_own_address6(ip.dst);
    // Neighbor Discovery for us (to our address or a multicast group, which includes our
    // solicited-node groups); the slow path validates it fully (RFC 4861 7.1).
    if (icmp6 &&
        (icmp_type == fwd::icmp6_neighbor_solicit || icmp_type == fwd::icmp6_neighbor_advert)) {
        if (own || fwd::ipv6_is_multicast(ip.dst))
            return punt(m, punt_reason::nd, port, 0);
        return drop(m, drop::not_for_us);
    }
    if (unlikely(fwd::ipv6_is_multicast(ip.dst) || l2_group))
        return drop(m, drop::ipv6_multicast);
    if (unlikely(fwd::ipv6_is_multicast(ip.src) || fwd::ipv6_is_unspecified(ip.src) ||
                 fwd::ipv6_is_loopback(ip.src)))
        return drop(m, drop::ipv6_bad_source);
    if (own) {
        if (icmp_type == fwd::icmp6_echo_request &&
            fwd::icmp6_echo_reply_in_place(data, rte_pktmbuf_data_len(m)) == fwd::icmp_status::ok)
            return tx(port, m);
        return drop(m, drop::local_unhandled);
    }
    // RFC 4291 2.5.6: link-local destinations are never forwarded.
    if (unlikely(fwd::ipv6_is_link_local(ip.dst) || fwd::ipv6_is_loopback(ip.dst)))
        return drop(m, drop::ipv6_multicast);
    rte_pktmbuf_adj(m, l3_offset);
    forward6_list_.push(m);
}

void worker_loop::decap(packet_list& in) noexcept {
    if (in.n == 0)
        return;
    // Parse outer headers and find each packet's inbound SA; then run crypto over runs of
    // consecutive packets that share an SA (one SA load, one counter update per run).
    unsigned kept = 0;
    std::array<crypto::inbound_sa*, stage_capacity> sas;
    std::array<crypto::esp_outer_info, stage_capacity> outer;
    const crypto::inbound_sa* last = nullptr; // consecutive packets mostly share an SA:
    bool last_ours = true;                    // its owner is worked out once per run
    for (unsigned i = 0; i < in.n; ++i) {
        rte_mbuf* m = in.pkts[i];
        crypto::inbound_sa* sa = nullptr;
        dp::drop reason{};
        if (!lookup_inbound(*t_, m, sa, outer[kept], reason)) {
            drop(m, reason);
            continue;
        }
        if (sa != last) {
            last = sa;
            last_ours = t_->workers == 1 || sa->user % t_->workers == w_.index;
        }
        if (!last_ours) { // a tunnel's owner: its id mod workers
            handoff(m, handoff_stage::decap, 0, sa->user, sa->user % t_->workers);
            continue;
        }
        in.pkts[kept] = m;
        sas[kept] = sa;
        ++kept;
    }
    unsigned start = 0;
    for (unsigned i = 1; i <= kept; ++i) {
        if (i == kept || sas[i] != sas[start]) {
            decap_run(*sas[start], &in.pkts[start], &outer[start], i - start);
            start = i;
        }
    }
    in.n = 0;
}

void worker_loop::decap_run(crypto::inbound_sa& sa, rte_mbuf** pkts,
                            const crypto::esp_outer_info* outer, unsigned n) noexcept {
    std::array<crypto::esp_status, stage_capacity> st;
    crypto::esp_decap_burst(sa, std::span<rte_mbuf* const>(pkts, n), outer, st.data());
    for (unsigned i = 0; i < n; ++i) {
        if (st[i] != crypto::esp_status::ok) {
            drop(pkts[i], drop_for(st[i]));
            continue;
        }
        // The inner header is new to us: its checksum is verified below, not inherited.
        pkts[i]->ol_flags &= ~RTE_MBUF_F_RX_IP_CKSUM_MASK;
        const auto* data = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
        const uint32_t dlen = rte_pktmbuf_data_len(pkts[i]);
        if ((data[0] >> 4) == 6) { // ESP next header 41 (esp_decap checked the pair)
            fwd::ipv6_info ip6;
            if (unlikely(fwd::parse_ipv6(data, dlen, ip6) != fwd::ipv6_status::ok)) {
                drop(pkts[i], drop::esp_bad_inner);
                continue;
            }
            if (unlikely(fwd::ipv6_is_multicast(ip6.dst) || fwd::ipv6_is_link_local(ip6.dst) ||
                         fwd::ipv6_is_multicast(ip6.src) || fwd::ipv6_is_unspecified(ip6.src))) {
                drop(pkts[i], drop::ipv6_multicast);
                continue;
            }
            forward6_list_.push(pkts[i]);
            continue;
        }
        fwd::ipv4_info ip;
        if (unlikely(fwd::parse_ipv4(data, dlen, ip) != fwd::parse_status::ok)) {
            drop(pkts[i], drop::esp_bad_inner);
            continue;
        }
        if (ip.protocol == IPPROTO_UDP && ip.total_length >= ip.header_len + 8u &&
            udp_dst_port(data + ip.header_len) == fwd::bfd_udp_port && !ip.is_fragment() &&
            bfd_input(sa.user, pkts[i], ip)) [[unlikely]]
            continue;
        if (ip.protocol == IPPROTO_ICMP && ip.total_length >= ip.header_len + 8u &&
            data[ip.header_len] == 0 /* echo reply */ && !ip.is_fragment() &&
            echo_input(sa.user, pkts[i], ip)) [[unlikely]]
            continue;
        forward_list_.push(pkts[i]);
    }
}

void worker_loop::forward(packet_list& in) noexcept {
    if (in.n == 0)
        return;
    std::array<uint32_t, stage_capacity> dst;
    std::array<uint64_t, stage_capacity> nh;
    for (unsigned i = 0; i < in.n; ++i)
        dst[i] = rte_be_to_cpu_32(rte_pktmbuf_mtod(in.pkts[i], const rte_ipv4_hdr*)->dst_addr);
    fwd::fib4_lookup_bulk(t_->fib, dst.data(), nh.data(), in.n);
    for (unsigned i = 0; i < in.n; ++i) {
        rte_mbuf* m = in.pkts[i];
        auto* ip = rte_pktmbuf_mtod(m, rte_ipv4_hdr*);
        const fwd::next_hop* hp = &t_->next_hops->get(static_cast<uint32_t>(nh[i]));
        if (hp->kind == fwd::next_hop_kind::group) {
            const group_runtime* g = t_->group(hp->tunnel);
            const group_member* member =
                g != nullptr ? t_->select(*g, flow_hash(ip), now_ns_) : nullptr;
            if (unlikely(member == nullptr)) {
                drop(m, drop::group_down);
                continue;
            }
            hp = &member->hop;
        }
        const fwd::next_hop& hop = *hp;
        switch (hop.kind) {
        case fwd::next_hop_kind::drop:
            drop_with_icmp(m, punt_reason::net_unreachable, drop::no_route);
            continue;
        case fwd::next_hop_kind::local:
            drop(m, drop::local_unhandled);
            continue;
        default:
            break;
        }
        if (!fwd::ipv4_decrement_ttl(reinterpret_cast<uint8_t*>(ip))) {
            drop_with_icmp(m, punt_reason::ttl_exceeded, drop::ttl_exceeded);
            continue;
        }
        // The MTU the inner packet must fit: a tunnel's WAN MTU less what ESP adds.
        const bool via_tunnel = hop.kind == fwd::next_hop_kind::tunnel;
        const tunnel_runtime* tun = via_tunnel ? t_->tunnel(hop.tunnel) : nullptr;
        if (unlikely(via_tunnel && tun == nullptr)) {
            drop(m, drop::no_route); // a route is never published without its tunnel
            continue;
        }
        const uint16_t mtu =
            via_tunnel ? static_cast<uint16_t>(t_->ports[tun->port_index].mtu - tun->overhead)
                       : t_->ports[hop.port].mtu;
        if (unlikely(rte_pktmbuf_pkt_len(m) > mtu)) {
            if ((ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)) != 0)
                drop_with_icmp(m, punt_reason::frag_needed, drop::mtu_exceeded, mtu);
            else
                drop(m, drop::mtu_exceeded); // fragmentation is not implemented
            continue;
        }
        if (via_tunnel) {
            encap_list_.push(m, hop.tunnel);
            continue;
        }
        ipv4_addr next = hop.kind == fwd::next_hop_kind::gateway ? hop.gateway : dst[i];
        send_ip(hop.port, next, m);
    }
    in.n = 0;
}

// A decrypted packet to UDP 3784: ours when it is addressed to the tunnel's BFD address (or
// to one of the gateway's own addresses); anything else is transit traffic and forwarded.
// Returns true when the packet was consumed or dropped here.
bool worker_loop::bfd_input(uint32_t tunnel, rte_mbuf* m, const fwd::ipv4_info& ip) noexcept {
    const tunnel_runtime* t = t_->tunnel(tunnel);
    const bool to_session = t != nullptr && t->bfd && ip.dst == t->bfd->local;
    if (!to_session) {
        if (!t_->is_own_address(ip.dst))
            return false;
        drop(m, drop::bfd_no_session);
        return true;
    }
    bfd_link& b = t->health->bfd;
    if (ip.src != t->bfd->remote || !b.session) {
        b.rx_dropped.fetch_add(1, std::memory_order_relaxed);
        drop(m, drop::bfd_no_session);
        return true;
    }
    // RFC 5881 5: single-hop packets must arrive with TTL 255 (GTSM).
    if (ip.ttl != 255) {
        b.rx_dropped.fetch_add(1, std::memory_order_relaxed);
        drop(m, drop::bfd_bad_ttl);
        return true;
    }
    const uint8_t* udp = rte_pktmbuf_mtod(m, const uint8_t*) + ip.header_len;
    const unsigned udp_len = static_cast<unsigned>(udp[4] << 8 | udp[5]);
    const unsigned avail = ip.total_length - ip.header_len;
    fwd::bfd_packet pkt;
    if (udp_len < 8 || udp_len > avail ||
        fwd::bfd_decode(udp + 8, udp_len - 8, pkt) != fwd::bfd_status::ok) {
        b.rx_dropped.fetch_add(1, std::memory_order_relaxed);
        drop(m, drop::bfd_malformed);
        return true;
    }
    // RFC 5880 6.8.6: a nonzero Your Discriminator must select this session.
    if (pkt.your_discriminator != 0 && pkt.your_discriminator != b.session->local_discriminator()) {
        b.rx_dropped.fetch_add(1, std::memory_order_relaxed);
        drop(m, drop::bfd_bad_discriminator);
        return true;
    }
    auto change = b.session->on_receive(pkt, now_ns_);
    drop(m, drop::bfd_received);
    if (change)
        bfd_changed(*t, *change);
    // A received Poll wants a Final at once, a state change a prompt packet: run the timers.
    w_.bfd_next_ns = 0;
    b.next_wakeup_ns = 0;
    bfd_publish(*t);
    return true;
}

// The probes of the tunnels this worker owns (BFD sessions, ICMP health checks): when one is
// due, or when a new snapshot may have started, changed or stopped some.
void worker_loop::run_probes() noexcept {
    const bool rescan = t_->generation != w_.bfd_generation;
    if (!rescan && now_ns_ < w_.bfd_next_ns)
        return;
    w_.bfd_generation = t_->generation;
    uint64_t next = UINT64_MAX;
    for (size_t id = w_.index; id < t_->tunnels.size(); id += t_->workers) {
        const tunnel_runtime* t = t_->tunnels[id].get();
        if (t == nullptr || !t->health)
            continue;
        next = std::min(next, bfd_poll_session(*t));
        next = std::min(next, check_poll(*t));
    }
    w_.bfd_next_ns = next;
    encap(encap_list_);
}

// Starts, restarts (new settings) or stops the tunnel's session, runs its timers; returns its
// next wakeup.
uint64_t worker_loop::bfd_poll_session(const tunnel_runtime& t) noexcept {
    tunnel_health& h = *t.health;
    bfd_link& b = h.bfd;
    if (!t.bfd) {
        if (b.session) {
            b.session.reset();
            b.view_state.store(static_cast<uint8_t>(fwd::bfd_state::admin_down),
                               std::memory_order_relaxed);
        }
        h.set_up(health_bfd, health_cause::bfd_up, now_ns_);
        return UINT64_MAX;
    }
    if (!b.session || b.cfg != *t.bfd) {
        fwd::bfd_config c;
        // Unique within the gateway: the tunnel id in the low bits, random high bits so a
        // restarted session is not mistaken for the old one by the far end.
        c.local_discriminator =
            static_cast<uint32_t>((rte_rand() & 0xfff00000u) | ((t.id + 1) & 0xfffffu));
        c.desired_min_tx_us = t.bfd->desired_min_tx_us;
        c.required_min_rx_us = t.bfd->required_min_rx_us;
        c.detect_mult = t.bfd->detect_mult;
        c.jitter_seed = rte_rand() | 1;
        const bool was_up = b.session && b.session->state() == fwd::bfd_state::up;
        b.session.emplace(c, now_ns_);
        b.cfg = *t.bfd;
        b.src_port = static_cast<uint16_t>(49152 + t.id % 16384);
        b.next_wakeup_ns = 0;
        if (was_up)
            b.down_transitions.fetch_add(1, std::memory_order_relaxed);
        h.set_down(health_bfd, health_cause::bfd_down, now_ns_); // down until the new one is Up
        bfd_publish(t);
    }
    if (now_ns_ < b.next_wakeup_ns)
        return b.next_wakeup_ns;
    fwd::bfd_poll_result r;
    for (int i = 0; i < 4; ++i) { // at most a Final and a periodic packet are due at once
        r = b.session->poll(now_ns_);
        if (r.change)
            bfd_changed(t, *r.change);
        if (r.tx)
            bfd_send(t, *r.tx);
        if (r.next_wakeup_ns > now_ns_)
            break;
    }
    b.next_wakeup_ns = r.next_wakeup_ns;
    bfd_publish(t);
    return b.next_wakeup_ns;
}

uint64_t worker_loop::check_poll(const tunnel_runtime& t) noexcept {
    tunnel_health& h = *t.health;
    echo_check& c = h.check;
    if (!t.check) {
        if (c.window) {
            c.window.reset();
            c.classifier.reset();
            c.active.store(false, std::memory_order_relaxed);
            c.browned_out.store(false, std::memory_order_relaxed);
        }
        h.set_up(health_check, health_cause::check_up, now_ns_);
        return UINT64_MAX;
    }
    const uint64_t ms = 1'000'000;
    if (!c.window || c.cfg != *t.check) {
        fwd::sla_window_config wc;
        wc.max_probes = t.check->window;
        wc.probe_timeout_ns = t.check->timeout_ms * ms;
        c.window.emplace(wc);
        c.classifier.reset();
        c.browned_out.store(false, std::memory_order_relaxed);
        if (t.check->sla) {
            fwd::sla_class cls;
            cls.max_loss_percent =
                t.check->sla->max_loss_percent != 0 ? t.check->sla->max_loss_percent : 100.0;
            cls.max_latency_ns = t.check->sla->max_latency_ms * ms;
            cls.max_jitter_ns = t.check->sla->max_jitter_ms * ms;
            cls.min_probes = t.check->window / 2; // resolved ones: the newest may be pending
            c.classifier.emplace(cls);
        }
        c.cfg = *t.check;
        c.next_send_ns = now_ns_;
        c.ident = static_cast<uint16_t>(0x5300 + t.id);
        c.failed_in_row = c.good_in_row = 0;
        c.active.store(true, std::memory_order_relaxed);
        h.set_up(health_check, health_cause::check_up, now_ns_); // new settings: trusted again
    }
    if (uint32_t expired = c.window->expire(now_ns_); expired != 0) {
        c.timeouts.fetch_add(expired, std::memory_order_relaxed);
        check_result(t, false, expired);
    }
    if (now_ns_ >= c.next_send_ns) {
        c.last_seq = c.window->on_sent(now_ns_);
        echo_send(t, c.last_seq);
        c.next_send_ns = now_ns_ + c.cfg.interval_ms * ms;
    }
    check_publish(t);
    return std::min(c.next_send_ns, now_ns_ + 10 * ms); // timeouts are noticed within 10 ms
}

void worker_loop::check_result(const tunnel_runtime& t, bool ok, uint32_t n) noexcept {
    tunnel_health& h = *t.health;
    echo_check& c = h.check;
    if (ok) {
        c.failed_in_row = 0;
        if (++c.good_in_row >= c.cfg.failures)
            h.set_up(health_check, health_cause::check_up, now_ns_);
    } else {
        c.good_in_row = 0;
        c.failed_in_row += n;
        if (c.failed_in_row >= c.cfg.failures)
            h.set_down(health_check, health_cause::check_down, now_ns_);
    }
}

void worker_loop::check_publish(const tunnel_runtime& t) noexcept {
    echo_check& c = t.health->check;
    const fwd::sla_stats st = c.window->stats(now_ns_);
    constexpr auto rel = std::memory_order_relaxed;
    c.loss_permille.store(static_cast<uint32_t>(st.loss_percent * 10 + 0.5), rel);
    c.latency_ns.store(st.latency_ns, rel);
    c.jitter_ns.store(st.jitter_ns, rel);
    c.failed_in_row_view.store(c.failed_in_row, rel);
    if (c.classifier) {
        if (auto v = c.classifier->update(st)) {
            c.violations.store(v->violations, rel);
            if (!v->ok)
                c.brownouts.fetch_add(1, rel);
            c.browned_out.store(!v->ok, rel);
        }
    }
}

// An echo reply to the tunnel's health-check source with the check's identifier: taken by the
// check (the decrypting worker is the owner). Anything else is forwarded as usual.
bool worker_loop::echo_input(uint32_t tunnel, rte_mbuf* m, const fwd::ipv4_info& ip) noexcept {
    const tunnel_runtime* t = t_->tunnel(tunnel);
    if (t == nullptr || !t->check || ip.dst != t->check->source)
        return false;
    echo_check& c = t->health->check;
    const uint8_t* icmp = rte_pktmbuf_mtod(m, const uint8_t*) + ip.header_len;
    const uint16_t ident = static_cast<uint16_t>(icmp[4] << 8 | icmp[5]);
    if (!c.window || ident != c.ident)
        return false;
    const uint16_t seq16 = static_cast<uint16_t>(icmp[6] << 8 | icmp[7]);
    const uint32_t seq = c.last_seq - ((c.last_seq - seq16) & 0xffffu);
    drop(m, drop::probe_received);
    if (!c.window->on_received(seq, now_ns_))
        return true; // late, duplicate or unknown: counted by the window, no verdict
    c.replies.fetch_add(1, std::memory_order_relaxed);
    // The probe carries its send time: the RTT of this reply, for the threshold.
    uint64_t sent_ns = 0;
    if (ip.total_length >= ip.header_len + 16u)
        std::memcpy(&sent_ns, icmp + 8, sizeof sent_ns);
    const uint64_t rtt = now_ns_ >= sent_ns ? now_ns_ - sent_ns : 0;
    c.last_rtt_ns.store(rtt, std::memory_order_relaxed);
    const bool slow = c.cfg.rtt_threshold_ms != 0 && rtt > c.cfg.rtt_threshold_ms * 1'000'000ull;
    if (slow)
        c.slow.fetch_add(1, std::memory_order_relaxed);
    check_result(*t, !slow, 1);
    check_publish(*t);
    return true;
}

void worker_loop::echo_send(const tunnel_runtime& t, uint32_t seq) noexcept {
    rte_mbuf* m = rte_pktmbuf_alloc(const_cast<rte_mempool*>(gw_.pool()));
    if (m == nullptr) [[unlikely]]
        return; // counts as a lost probe
    constexpr uint16_t payload = 16;
    constexpr uint16_t len = sizeof(rte_ipv4_hdr) + 8 + payload;
    auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
    if (p == nullptr) [[unlikely]] {
        rte_pktmbuf_free(m);
        return;
    }
    echo_check& c = t.health->check;
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = 0;
    ip->total_length = rte_cpu_to_be_16(len);
    ip->packet_id = rte_cpu_to_be_16(static_cast<uint16_t>(seq));
    ip->fragment_offset = 0;
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_ICMP;
    ip->hdr_checksum = 0;
    ip->src_addr = rte_cpu_to_be_32(t.check->source);
    ip->dst_addr = rte_cpu_to_be_32(t.check->target);
    uint8_t* icmp = p + sizeof(rte_ipv4_hdr);
    icmp[0] = 8; // echo request
    icmp[1] = 0;
    icmp[2] = icmp[3] = 0;
    icmp[4] = static_cast<uint8_t>(c.ident >> 8);
    icmp[5] = static_cast<uint8_t>(c.ident);
    icmp[6] = static_cast<uint8_t>(seq >> 8);
    icmp[7] = static_cast<uint8_t>(seq);
    std::memset(icmp + 8, 0x53, payload);
    std::memcpy(icmp + 8, &now_ns_, sizeof now_ns_); // echoed back: the reply's RTT
    const uint16_t sum = static_cast<uint16_t>(~rte_raw_cksum(icmp, 8 + payload));
    std::memcpy(icmp + 2, &sum, 2);
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    c.sent.fetch_add(1, std::memory_order_relaxed);
    ++c_.injected;
    encap_list_.push(m, t.id);
    if (encap_list_.n >= burst_size)
        encap(encap_list_);
}

void worker_loop::bfd_changed(const tunnel_runtime& t, const fwd::bfd_state_change& ch) noexcept {
    tunnel_health& h = *t.health;
    if (ch.to == fwd::bfd_state::up) {
        h.bfd.up_transitions.fetch_add(1, std::memory_order_relaxed);
        h.set_up(health_bfd, health_cause::bfd_up, now_ns_);
    } else {
        if (ch.from == fwd::bfd_state::up)
            h.bfd.down_transitions.fetch_add(1, std::memory_order_relaxed);
        h.set_down(health_bfd, health_cause::bfd_down, now_ns_);
    }
}

void worker_loop::bfd_publish(const tunnel_runtime& t) noexcept {
    bfd_link& b = t.health->bfd;
    const fwd::bfd_session& s = *b.session;
    constexpr auto rel = std::memory_order_relaxed;
    b.view_state.store(static_cast<uint8_t>(s.state()), rel);
    b.view_remote_state.store(static_cast<uint8_t>(s.remote_state()), rel);
    b.view_diag.store(static_cast<uint8_t>(s.local_diag()), rel);
    b.view_local_disc.store(s.local_discriminator(), rel);
    b.view_remote_disc.store(s.remote_discriminator(), rel);
    b.view_tx_interval_ns.store(s.tx_interval_ns(), rel);
    b.view_detection_ns.store(s.detection_time_ns(), rel);
    b.rx.store(s.counters().rx, rel);
    b.tx.store(s.counters().tx, rel);
    b.last_rx_ns.store(s.last_rx_ns(), rel);
}

// One control packet: inner IPv4/UDP (RFC 5881 4: TTL 255, source port 49152..65535) to the
// far end's BFD address, then the encap stage encrypts it with the tunnel's outbound SA.
void worker_loop::bfd_send(const tunnel_runtime& t, const fwd::bfd_packet& pkt) noexcept {
    rte_mbuf* m = rte_pktmbuf_alloc(const_cast<rte_mempool*>(gw_.pool()));
    if (m == nullptr) [[unlikely]]
        return; // no packet, nothing to count in the balance; the session retries
    constexpr uint16_t len = sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + fwd::bfd_header_len;
    auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
    if (p == nullptr) [[unlikely]] {
        rte_pktmbuf_free(m);
        return;
    }
    bfd_link& b = t.health->bfd;
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = 0xc0; // CS6: network control
    ip->total_length = rte_cpu_to_be_16(len);
    ip->packet_id = rte_cpu_to_be_16(b.ip_id++);
    ip->fragment_offset = 0;
    ip->time_to_live = 255;
    ip->next_proto_id = IPPROTO_UDP;
    ip->hdr_checksum = 0;
    ip->src_addr = rte_cpu_to_be_32(t.bfd->local);
    ip->dst_addr = rte_cpu_to_be_32(t.bfd->remote);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(p + sizeof(rte_ipv4_hdr));
    udp->src_port = rte_cpu_to_be_16(b.src_port);
    udp->dst_port = rte_cpu_to_be_16(fwd::bfd_udp_port);
    udp->dgram_len = rte_cpu_to_be_16(sizeof(rte_udp_hdr) + fwd::bfd_header_len);
    udp->dgram_cksum = 0;
    fwd::bfd_encode(pkt, p + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr), fwd::bfd_header_len);
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    ++c_.injected;
    encap_list_.push(m, t.id);
    if (encap_list_.n >= burst_size)
        encap(encap_list_);
}

void worker_loop::forward6(packet_list& in) noexcept {
    if (in.n == 0)
        return;
    if (unlikely(t_->fib6 == nullptr)) {
        for (unsigned i = 0; i < in.n; ++i)
            drop(in.pkts[i], drop::ipv6_unsupported);
        in.n = 0;
        return;
    }
    uint8_t dst[stage_capacity][RTE_FIB6_IPV6_ADDR_SIZE];
    std::array<uint64_t, stage_capacity> nh;
    for (unsigned i = 0; i < in.n; ++i)
        std::memcpy(dst[i], rte_pktmbuf_mtod_offset(in.pkts[i], const uint8_t*, 24), 16);
    rte_fib6_lookup_bulk(t_->fib6, dst, nh.data(), static_cast<int>(in.n));
    for (unsigned i = 0; i < in.n; ++i) {
        rte_mbuf* m = in.pkts[i];
        auto* ip = rte_pktmbuf_mtod(m, uint8_t*);
        const fwd::next_hop6& hop = t_->next_hops6->get(static_cast<uint32_t>(nh[i]));
        fwd::next_hop_kind kind = hop.kind;
        uint32_t tunnel_id = hop.tunnel;
        if (kind == fwd::next_hop_kind::group) {
            const group_runtime* g = t_->group(hop.tunnel);
            const group_member* member =
                g != nullptr ? t_->select(*g, flow_hash6(ip, rte_pktmbuf_data_len(m)), now_ns_)
                             : nullptr;
            // IPv6 routes use tunnel groups only (LAN router groups carry IPv4 gateways).
            if (unlikely(member == nullptr || member->hop.kind != fwd::next_hop_kind::tunnel)) {
                drop(m, drop::group_down);
                continue;
            }
            kind = fwd::next_hop_kind::tunnel;
            tunnel_id = member->hop.tunnel;
        }
        switch (kind) {
        case fwd::next_hop_kind::drop:
            drop_with_icmp6(m, punt_reason::no_route6, drop::no_route);
            continue;
        case fwd::next_hop_kind::local:
            drop(m, drop::local_unhandled);
            continue;
        default:
            break;
        }
        // RFC 8200 3 / RFC 4443 3.3: hop limit 0 after the decrement -> time exceeded.
        if (!fwd::ipv6_decrement_hop_limit(ip)) {
            drop_with_icmp6(m, punt_reason::time_exceeded6, drop::hop_limit_exceeded);
            continue;
        }
        const bool via_tunnel = kind == fwd::next_hop_kind::tunnel;
        const tunnel_runtime* tun = via_tunnel ? t_->tunnel(tunnel_id) : nullptr;
        if (unlikely(via_tunnel && tun == nullptr)) {
            drop(m, drop::no_route);
            continue;
        }
        const uint16_t mtu =
            via_tunnel ? static_cast<uint16_t>(t_->ports[tun->port_index].mtu - tun->overhead)
                       : t_->ports[hop.port].mtu;
        // RFC 8200 5: routers never fragment IPv6; the source learns the MTU (RFC 4443 3.2).
        if (unlikely(rte_pktmbuf_pkt_len(m) > mtu)) {
            drop_with_icmp6(m, punt_reason::packet_too_big6, drop::mtu_exceeded, mtu);
            continue;
        }
        if (via_tunnel) {
            encap_list_.push(m, tunnel_id);
            continue;
        }
        if (kind == fwd::next_hop_kind::gateway) {
            send_ip6(static_cast<uint8_t>(hop.port), hop.gateway, m);
        } else {
            ipv6_addr d;
            std::memcpy(d.data(), dst[i], 16);
            send_ip6(static_cast<uint8_t>(hop.port), d, m);
        }
    }
    in.n = 0;
}

void worker_loop::send_ip6(uint8_t port, const ipv6_addr& next_hop, rte_mbuf* m) noexcept {
    const fwd::neighbour6_entry* e = neigh6_.lookup(port, next_hop);
    if (likely(e != nullptr)) {
        fwd::neighbour_view v = e->read();
        if (likely(v.usable())) {
            if (v.state != fwd::neighbour_state::reachable)
                e->mark_used();
            rte_ether_addr mac;
            std::memcpy(mac.addr_bytes, v.mac.data(), 6);
            return send_to(port, mac, m, RTE_ETHER_TYPE_IPV6);
        }
    }
    // The slow path holds the packet and solicits: it reads the next hop from the front.
    auto* front = rte_pktmbuf_prepend(m, 16);
    if (unlikely(front == nullptr))
        return drop(m, drop::esp_encap_error);
    std::memcpy(front, next_hop.data(), 16);
    punt(m, punt_reason::resolve6, port, 0);
}

void worker_loop::encap(packet_list& in) noexcept {
    if (in.n == 0)
        return;
    unsigned kept = 0;
    const unsigned workers = t_->workers;
    for (unsigned i = 0; i < in.n; ++i) {
        // A tunnel's owner: its id mod workers (no division with one worker).
        const unsigned owner = workers == 1 ? 0 : in.key[i] % workers;
        if (owner != w_.index) {
            handoff(in.pkts[i], handoff_stage::encap, 0, in.key[i], owner);
            continue;
        }
        in.pkts[kept] = in.pkts[i];
        in.key[kept] = in.key[i];
        ++kept;
    }
    unsigned start = 0;
    for (unsigned i = 1; i <= kept; ++i) {
        if (i == kept || in.key[i] != in.key[start]) {
            encap_run(in.key[start], &in.pkts[start], i - start);
            start = i;
        }
    }
    in.n = 0;
}

void worker_loop::encap_run(uint32_t tunnel, rte_mbuf** pkts, unsigned n) noexcept {
    const tunnel_runtime* t = t_->tunnel(tunnel);
    if (unlikely(t == nullptr)) { // deleted while the packet was handed over to us
        for (unsigned i = 0; i < n; ++i)
            drop(pkts[i], drop::no_route);
        return;
    }
    const tunnel_runtime& tun = *t;
    std::array<crypto::esp_status, stage_capacity> st;
    crypto::esp_encap_burst(*tun.outbound, std::span<rte_mbuf* const>(pkts, n), st.data());
    // One neighbour lookup serves the whole run: every packet goes to the tunnel's next hop.
    rte_ether_addr mac;
    bool resolved = resolve(tun.port_index, tun.next_hop, mac);
    for (unsigned i = 0; i < n; ++i) {
        if (st[i] != crypto::esp_status::ok) {
            drop(pkts[i], drop_for(st[i]));
            continue;
        }
        if (likely(resolved))
            send_to(tun.port_index, mac, pkts[i]);
        else
            punt(pkts[i], punt_reason::resolve, static_cast<uint8_t>(tun.port_index), tun.next_hop);
    }
}

bool worker_loop::resolve(uint16_t port, ipv4_addr next_hop, rte_ether_addr& mac) noexcept {
    // Most packets of a burst share a few next hops (every tunnel behind one WAN gateway, a
    // few LAN hosts): a small cache valid for one loop iteration saves the hash lookups. It
    // must not outlive the iteration: the worker reports quiescence at its end, after which
    // the neighbour table may reuse entries.
    neighbour_cache_slot& slot = neighbour_cache_[(next_hop ^ port) & (neighbour_cache_size - 1)];
    if (slot.generation == iteration_ && slot.ip == next_hop && slot.port == port) {
        mac = slot.mac;
        return true;
    }
    const fwd::neighbour_entry* e = neigh_.lookup(port, next_hop);
    if (unlikely(e == nullptr))
        return false;
    fwd::neighbour_view v = e->read();
    if (unlikely(!v.usable()))
        return false;
    if (v.state != fwd::neighbour_state::reachable)
        e->mark_used(); // aging re-checks stale entries that traffic still uses
    std::memcpy(mac.addr_bytes, v.mac.data(), 6);
    slot = {iteration_, next_hop, port, mac};
    return true;
}

void worker_loop::send_ip(uint8_t port, ipv4_addr next_hop, rte_mbuf* m) noexcept {
    rte_ether_addr mac;
    if (unlikely(!resolve(port, next_hop, mac)))
        return punt(m, punt_reason::resolve, port, next_hop);
    send_to(port, mac, m);
}

void worker_loop::send_to(uint8_t port, const rte_ether_addr& mac, rte_mbuf* m,
                          uint16_t ethertype) noexcept {
    auto* eh = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, sizeof(rte_ether_hdr)));
    if (unlikely(eh == nullptr))
        return drop(m, drop::esp_encap_error);
    eh->dst_addr = mac;
    eh->src_addr = t_->ports[port].mac;
    eh->ether_type = rte_cpu_to_be_16(ethertype);
    tx(port, m);
}

void worker_loop::tx(uint8_t port, rte_mbuf* m) noexcept {
    txbuf_[port][txn_[port]++] = m;
    if (txn_[port] == burst_size)
        flush(port);
}

void worker_loop::flush(uint8_t port) noexcept {
    uint16_t n = txn_[port];
    if (n == 0)
        return;
    txn_[port] = 0;
    const port_runtime& p = t_->ports[port];
    auto& buf = txbuf_[port];
    std::array<uint32_t, burst_size> bytes;
    for (uint16_t i = 0; i < n; ++i)
        bytes[i] = rte_pktmbuf_pkt_len(buf[i]);
    uint16_t queue = static_cast<uint16_t>(w_.index % p.n_tx_queues);
    uint16_t sent;
    if (p.tx_shared) {
        rte_spinlock_t& lock = locks_.at(port, queue);
        rte_spinlock_lock(&lock);
        sent = rte_eth_tx_burst(p.port_id, queue, buf.data(), n);
        rte_spinlock_unlock(&lock);
    } else {
        sent = rte_eth_tx_burst(p.port_id, queue, buf.data(), n);
    }
    auto& pc = c_.ports[port];
    for (uint16_t i = 0; i < sent; ++i)
        pc.tx_bytes += bytes[i];
    pc.tx_packets += sent;
    c_.tx += sent;
    for (uint16_t i = sent; i < n; ++i)
        drop(buf[i], drop::tx_full);
}

void worker_loop::flush_all() noexcept {
    for (uint8_t p = 0; p < t_->ports.size(); ++p)
        flush(p);
}

void worker_loop::punt(rte_mbuf* m, punt_reason r, uint8_t port, uint32_t addr,
                       uint16_t mtu) noexcept {
    punt_msg msg{m, r, port, mtu, addr};
    bool icmp = r == punt_reason::ttl_exceeded || r == punt_reason::net_unreachable ||
                r == punt_reason::frag_needed || r == punt_reason::time_exceeded6 ||
                r == punt_reason::no_route6 || r == punt_reason::packet_too_big6;
    if (unlikely(rte_ring_mp_enqueue_elem(punt_, &msg, sizeof(msg)) != 0)) {
        rte_pktmbuf_free(m);
        // An ICMP-error punt is already counted under its drop reason by the caller.
        if (!icmp)
            c_.count_drop(drop::punt_ring_full);
        return;
    }
    // ICMP-error punts carry a packet that is already counted as dropped; the slow path only
    // quotes it. Everything else is the slow path's to finish.
    if (!icmp)
        ++c_.punted;
}

void worker_loop::handoff(rte_mbuf* m, handoff_stage s, uint8_t port, uint32_t index,
                          unsigned owner) noexcept {
    handoff_msg msg{m, s, port, 0, index};
    if (unlikely(rte_ring_mp_enqueue_elem(gw_.workers()[owner]->handoff, &msg, sizeof(msg)) != 0))
        return drop(m, drop::handoff_ring_full);
    ++c_.handoff_out;
}

void worker_loop::drain_handoff() noexcept {
    std::array<handoff_msg, burst_size> msgs;
    unsigned n = rte_ring_sc_dequeue_burst_elem(w_.handoff, msgs.data(), sizeof(handoff_msg),
                                                burst_size, nullptr);
    if (n == 0)
        return;
    c_.handoff_in += n;
    for (unsigned i = 0; i < n; ++i) {
        if (msgs[i].stage == handoff_stage::decap)
            decap_list_.push(msgs[i].m);
        else
            encap_list_.push(msgs[i].m, msgs[i].index);
    }
    decap(decap_list_);
    forward_all();
    encap(encap_list_);
}

void worker_loop::drain_inject() noexcept {
    std::array<inject_msg, burst_size> msgs;
    unsigned n = rte_ring_sc_dequeue_burst_elem(w_.inject, msgs.data(), sizeof(inject_msg),
                                                burst_size, nullptr);
    if (n == 0)
        return;
    c_.injected += n;
    for (unsigned i = 0; i < n; ++i) {
        if (msgs[i].kind == inject_kind::tx)
            tx(msgs[i].port, msgs[i].m);
        else if ((*rte_pktmbuf_mtod(msgs[i].m, const uint8_t*) >> 4) == 6)
            forward6_list_.push(msgs[i].m);
        else
            forward_list_.push(msgs[i].m);
    }
    forward_all();
    encap(encap_list_);
}

} // namespace

int gateway::worker_main(worker_context& w) noexcept {
    crypto::worker_thread_init();
    rte_rcu_qsbr_thread_online(qsbr_, w.index);
    worker_loop loop(*this, w, punt_, tx_locks_);
    loop.run();
    rte_rcu_qsbr_thread_offline(qsbr_, w.index);
    return 0;
}

void gateway::poll_worker(unsigned index) noexcept {
    worker_context& w = *workers_[index];
    crypto::worker_thread_init();
    rte_rcu_qsbr_thread_online(qsbr_, w.index);
    worker_loop loop(*this, w, punt_, tx_locks_);
    loop.poll();
    rte_rcu_qsbr_thread_offline(qsbr_, w.index);
}

} // namespace sagd::dp
