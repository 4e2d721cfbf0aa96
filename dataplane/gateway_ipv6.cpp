// The IPv6 slow path on the control thread: Neighbor Discovery (RFC 4861: answers NS for our
// addresses, defends them against DAD probes, learns from NS/NA, solicits next hops and holds
// their packets, ages entries like ARP) and ICMPv6 errors (RFC 4443, rate-limited with the
// ICMPv4 ones).
#include <cstring>

#include <rte_cycles.h>
#include <rte_ether.h>

#include "dataplane/gateway.hpp"
#include "forwarding/packet6.hpp"

namespace sagd::dp {

namespace {

constexpr size_t max_held_packets6 = 1024;
constexpr size_t max_held_per_neighbour6 = 16;
constexpr uint64_t held_timeout_ms6 = 3000;

rte_ether_addr to_ether6(const fwd::mac_bytes& b) {
    rte_ether_addr a;
    std::copy(b.begin(), b.end(), a.addr_bytes);
    return a;
}

fwd::mac_bytes to_bytes6(const rte_ether_addr& a) {
    fwd::mac_bytes b;
    std::copy(std::begin(a.addr_bytes), std::end(a.addr_bytes), b.begin());
    return b;
}

} // namespace

void gateway::handle_nd(rte_mbuf* m, uint8_t port, uint64_t now) {
    ++slow_.nd_in;
    const port_runtime& p = tbl().ports[port];
    const auto* data = rte_pktmbuf_mtod(m, const uint8_t*);
    const size_t len = rte_pktmbuf_data_len(m);
    fwd::nd_info nd;
    if (!p.ipv6 || len < fwd::ethernet_header_len ||
        fwd::parse_nd(data + fwd::ethernet_header_len, len - fwd::ethernet_header_len, nd) !=
            fwd::nd_status::ok) {
        ++slow_.nd_invalid;
        rte_pktmbuf_free(m);
        return;
    }
    fwd::mac_bytes eth_src;
    std::memcpy(eth_src.data(), data + 6, 6);
    rte_pktmbuf_free(m);
    const bool target_ours = nd.target == p.address6 || nd.target == p.link_local;

    if (nd.type == fwd::icmp6_neighbor_advert) {
        if (target_ours) {
            // Someone else claims our address (RFC 4862 5.4.4): keep it, count it.
            ++slow_.duplicate_address;
            return;
        }
        // RFC 4861 7.2.5: an NA updates an existing entry only; no lladdr, nothing to learn.
        if (!nd.has_lladdr)
            return;
        auto learned = neighbours6_->learn(port, nd.target, nd.lladdr, now, false);
        if (learned && learned.value() != fwd::learn_outcome::ignored)
            release_held6(port, nd.target, to_ether6(nd.lladdr));
        return;
    }

    // Neighbor Solicitation.
    if (!target_ours) {
        ++slow_.nd_not_for_us;
        return;
    }
    rte_mbuf* out = rte_pktmbuf_alloc(pool_);
    auto* frame = out == nullptr
                      ? nullptr
                      : reinterpret_cast<uint8_t*>(rte_pktmbuf_append(out, fwd::nd_frame_len));
    if (frame == nullptr) {
        ++slow_.dropped;
        rte_pktmbuf_free(out);
        return;
    }
    const fwd::mac_bytes our_mac = to_bytes6(p.mac);
    size_t n;
    if (fwd::ipv6_is_unspecified(nd.src)) {
        // A DAD probe for our address (RFC 4862 5.4.3): defend it, to all-nodes, S clear
        // (RFC 4861 7.2.4). Nothing is learned from ::.
        ++slow_.dad_defended;
        const fwd::ipv6_bytes all_nodes{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        n = fwd::build_neighbor_advert(frame, fwd::nd_frame_len, our_mac,
                                       fwd::ipv6_multicast_mac(all_nodes), nd.target, all_nodes,
                                       false);
    } else {
        // RFC 4861 7.2.3: the solicitor's address goes into the cache (with its lladdr).
        const fwd::mac_bytes& mac = nd.has_lladdr ? nd.lladdr : eth_src;
        if (nd.has_lladdr) {
            auto learned = neighbours6_->learn(port, nd.src, nd.lladdr, now, true);
            if (learned && learned.value() != fwd::learn_outcome::ignored)
                release_held6(port, nd.src, to_ether6(nd.lladdr));
        }
        n = fwd::build_neighbor_advert(frame, fwd::nd_frame_len, our_mac, mac, nd.target, nd.src,
                                       true);
    }
    if (n == 0) {
        ++slow_.dropped;
        rte_pktmbuf_free(out);
        return;
    }
    if (inject(out, inject_kind::tx, port))
        ++slow_.neighbor_adverts_sent;
}

void gateway::send_neighbor_solicit(uint8_t port, const ipv6_addr& target,
                                    const fwd::mac_bytes* unicast) {
    const port_runtime& p = tbl().ports[port];
    if (!p.ipv6)
        return;
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    auto* frame = m == nullptr
                      ? nullptr
                      : reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, fwd::nd_frame_len));
    // The source: the link-local address for link-local targets, else our on-link address.
    const ipv6_addr& src = fwd::ipv6_is_link_local(target) ? p.link_local : p.address6;
    if (frame == nullptr || fwd::build_neighbor_solicit(frame, fwd::nd_frame_len, to_bytes6(p.mac),
                                                        src, target, unicast) == 0) {
        ++slow_.dropped;
        rte_pktmbuf_free(m);
        return;
    }
    if (inject(m, inject_kind::tx, port))
        ++slow_.neighbor_solicits_sent;
}

void gateway::handle_resolve6(const punt_msg& msg, uint64_t now) {
    ipv6_addr addr;
    std::memcpy(addr.data(), rte_pktmbuf_mtod(msg.m, const uint8_t*), 16);
    rte_pktmbuf_adj(msg.m, 16);
    if (const auto* e = neighbours6_->lookup(msg.port, addr); e != nullptr) {
        auto v = e->read();
        if (v.usable()) {
            held6_.push_back({msg.m, msg.port, addr, now});
            ++slow_.held;
            release_held6(msg.port, addr, to_ether6(v.mac));
            return;
        }
    }
    size_t same = 0;
    for (const auto& h : held6_)
        same += (h.port == msg.port && h.addr == addr);
    if (held6_.size() >= max_held_packets6 || same >= max_held_per_neighbour6) {
        ++slow_.held_dropped_full;
        rte_pktmbuf_free(msg.m);
    } else {
        held6_.push_back({msg.m, msg.port, addr, now});
        ++slow_.held;
    }
    if (neighbours6_->resolve_wanted(msg.port, addr, now))
        send_neighbor_solicit(msg.port, addr);
}

void gateway::release_held6(uint8_t port, const ipv6_addr& addr, const rte_ether_addr& mac) {
    const port_runtime& p = tbl().ports[port];
    size_t kept = 0;
    for (auto& h : held6_) {
        if (h.port != port || h.addr != addr) {
            held6_[kept++] = h;
            continue;
        }
        auto* eh =
            reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(h.m, sizeof(rte_ether_hdr)));
        if (eh == nullptr) {
            ++slow_.dropped;
            rte_pktmbuf_free(h.m);
            continue;
        }
        eh->dst_addr = mac;
        eh->src_addr = p.mac;
        eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
        if (inject(h.m, inject_kind::tx, port))
            ++slow_.held_sent;
    }
    held6_.resize(kept);
}

void gateway::expire_held6(uint64_t now) {
    size_t kept = 0;
    for (auto& h : held6_) {
        const auto* e = neighbours6_->lookup(h.port, h.addr);
        bool failed = e == nullptr || e->read().state == fwd::neighbour_state::failed;
        if (now - h.since_ms > held_timeout_ms6 || (failed && now - h.since_ms > 100)) {
            ++slow_.held_dropped_unresolved;
            rte_pktmbuf_free(h.m);
            continue;
        }
        held6_[kept++] = h;
    }
    held6_.resize(kept);
}

void gateway::handle_icmp6_error(const punt_msg& msg) {
    rte_mbuf* orig = msg.m;
    const ipv6_addr* source = tbl().icmp6_source(msg.port);
    if (source == nullptr || !icmp_limiter_.allow(rte_get_tsc_cycles())) {
        ++slow_.icmp_errors_suppressed;
        rte_pktmbuf_free(orig);
        return;
    }
    fwd::icmp6_error_params params;
    params.kind = msg.reason == punt_reason::time_exceeded6 ? fwd::icmp6_error_kind::time_exceeded
                  : msg.reason == punt_reason::packet_too_big6
                      ? fwd::icmp6_error_kind::packet_too_big
                      : fwd::icmp6_error_kind::no_route;
    params.source = *source;
    params.mtu = msg.mtu;
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    auto* out = m == nullptr
                    ? nullptr
                    : reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, fwd::icmp6_error_max_len));
    if (out == nullptr) {
        ++slow_.dropped;
        rte_pktmbuf_free(m);
        rte_pktmbuf_free(orig);
        return;
    }
    auto built = fwd::build_icmp6_error(out, fwd::icmp6_error_max_len,
                                        rte_pktmbuf_mtod(orig, const uint8_t*),
                                        rte_pktmbuf_data_len(orig), params);
    rte_pktmbuf_free(orig);
    if (built.status != fwd::icmp_status::ok) {
        ++slow_.icmp_errors_suppressed;
        rte_pktmbuf_free(m);
        return;
    }
    rte_pktmbuf_trim(m, static_cast<uint16_t>(fwd::icmp6_error_max_len - built.length));
    m->port = msg.port < tbl().ports.size() ? tbl().ports[msg.port].port_id : 0;
    if (inject(m, inject_kind::forward, msg.port))
        ++slow_.icmp_errors_sent;
}

} // namespace sagd::dp
