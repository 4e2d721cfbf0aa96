// The tables workers read: built by the control path from config, published as one snapshot.
// Workers never lock; everything here is read-only once published (the SAs' hot state is
// written only by the SA's owner worker).
#pragma once

#include <algorithm>
#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crypto/esp.hpp"
#include "crypto/sa.hpp"
#include "crypto/sa_map.hpp"
#include "dataplane/config.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/health.hpp"
#include "dataplane/port.hpp"
#include "dataplane/result.hpp"
#include "forwarding/fib4.hpp"
#include "forwarding/fib6.hpp"
#include "forwarding/neighbour.hpp"
#include "forwarding/next_hop.hpp"

namespace sagd::dp {

// A tunnel as workers see it. Immutable once published, except the SAs' hot state, which only
// the owner worker writes. SAs are shared so that a replaced tunnel object (new route MTU,
// new peer port, a rekey) keeps the SAs whose parameters did not change, with their sequence
// numbers and replay windows.
struct tunnel_runtime {
    std::string name;
    uint32_t id = 0;         // index in tables::tunnels; stable for the tunnel's life
    uint16_t port_index = 0; // WAN port (index into tables::ports)
    ipv4_addr local = 0;
    ipv4_addr peer = 0;
    ipv4_addr next_hop = 0; // outer next hop: the peer when on-link, else the port's gateway
    unsigned owner = 0;     // the worker that owns this tunnel's SAs (single writer)
    uint16_t overhead = 0;  // worst-case bytes ESP adds (outer IP, UDP, ESP, IV, pad, ICV)
    bool udp = false;
    std::shared_ptr<crypto::outbound_sa> outbound;
    std::vector<std::shared_ptr<crypto::inbound_sa>> inbound;
    std::optional<tunnel_bfd_config> bfd; // BFD inside the tunnel (run by the owner worker)
    std::optional<tunnel_check_config> check; // ICMP health check (owner worker)
    // Shared by every snapshot for the tunnel's whole life (a replaced tunnel object keeps it):
    // up/down and why, and the BFD session.
    std::shared_ptr<tunnel_health> health;
};

// A group as workers see it: members with a priority and a weight. The members with the highest
// priority among those up carry the traffic; equal ones share it by weight, by flow hash.
// Members are tunnels (tunnel groups) or LAN routers (equal-cost learned routes).
struct group_member {
    fwd::next_hop hop; // kind tunnel or gateway
    uint8_t priority = 100;
    uint16_t weight = 1;
    const tunnel_health* health = nullptr; // tunnel members: the tunnel's (same snapshot)
};

struct group_runtime {
    static constexpr unsigned max_members = 16;
    std::string name;
    uint32_t id = 0;
    std::vector<group_member> members;
    uint64_t hold_down_ns = 0; // failback dampening (group_config::hold_down_ms)
};

// Network mask of a prefix length 0..32, host byte order.
constexpr ipv4_addr prefix_mask(uint8_t len) noexcept {
    return len == 0 ? 0 : ~((ipv4_addr{1} << (32 - len)) - 1);
}

// One published snapshot of everything workers read. Immutable once published: a change
// builds a new snapshot (sharing the unchanged tunnel objects), publishes it with one pointer
// store, and frees the old one after an RCU grace period (see gateway::apply).
struct tables {
    std::vector<port_runtime> ports;
    std::array<uint8_t, RTE_MAX_ETHPORTS> port_index_by_id{};
    std::vector<std::shared_ptr<const tunnel_runtime>> tunnels; // by id; null: free id
    std::vector<std::shared_ptr<const group_runtime>> groups;   // by id; null: free id
    const fwd::fib4_table* fib = nullptr;                       // the published FIB copy
    const fwd::next_hop_table* next_hops = nullptr;
    rte_fib6* fib6 = nullptr; // the published IPv6 FIB copy
    const fwd::next_hop6_table* next_hops6 = nullptr;
    std::shared_ptr<const crypto::inbound_sa_map> sa_map;
    std::bitset<65536> natt_ports; // UDP destination ports that carry ESP-in-UDP
    unsigned workers = 1;
    uint64_t generation = 0; // bumped by every published change (workers notice new snapshots)
    ipv4_addr icmp_source = 0; // source of ICMP errors about decapsulated traffic

    const tunnel_runtime* tunnel(uint32_t id) const noexcept {
        return id < tunnels.size() ? tunnels[id].get() : nullptr;
    }
    const group_runtime* group(uint32_t id) const noexcept {
        return id < groups.size() ? groups[id].get() : nullptr;
    }
    const group_runtime* find_group(const std::string& name) const noexcept {
        for (const auto& g : groups)
            if (g && g->name == name)
                return g.get();
        return nullptr;
    }
    // The member a flow takes at now_ns: one of active_members(g, now_ns), by weight and
    // `flow_hash` (one flow, one member). Null: no member up.
    const group_member* select(const group_runtime& g, uint32_t flow_hash,
                               uint64_t now_ns) const noexcept {
        const uint32_t mask = active_members(g, now_ns);
        if (mask == 0)
            return nullptr;
        uint32_t total = 0;
        for (size_t i = 0; i < g.members.size(); ++i)
            if ((mask & (1u << i)) != 0)
                total += g.members[i].weight;
        uint32_t pick = static_cast<uint32_t>((uint64_t{flow_hash} * total) >> 32);
        for (size_t i = 0; i < g.members.size(); ++i) {
            if ((mask & (1u << i)) == 0)
                continue;
            if (pick < g.members[i].weight)
                return &g.members[i];
            pick -= g.members[i].weight;
        }
        return nullptr;
    }
    // The members that carry a group's traffic at now_ns (bit i = members[i]): the highest
    // priority among members that are up and have been up for the group's hold-down, so a
    // recovered master takes traffic back only after that; members meeting their SLA class
    // (health check) before browned-out ones. When no member has, the ones up
    // the longest (the member that took over stays until the others mature), highest
    // priority among those. 0: no member up.
    uint32_t active_members(const group_runtime& g, uint64_t now_ns) const noexcept {
        // best[0]: ready and meeting their SLA class; best[1]: ready (browned out).
        int best[2] = {-1, -1};
        uint32_t mask[2] = {0, 0};
        uint32_t up = 0;
        uint64_t oldest = UINT64_MAX;
        for (size_t i = 0; i < g.members.size() && i < group_runtime::max_members; ++i) {
            const auto& m = g.members[i];
            if (!member_up(m))
                continue;
            up |= 1u << i;
            if (m.health != nullptr)
                oldest = std::min(oldest, m.health->up_since_ns());
            else
                oldest = 0;
            if (!member_ready(m, now_ns, g.hold_down_ns))
                continue;
            const int k = m.health != nullptr && m.health->browned_out() ? 1 : 0;
            if (m.priority > best[k]) {
                best[k] = m.priority;
                mask[k] = 0;
            }
            if (m.priority == best[k])
                mask[k] |= 1u << i;
        }
        if (mask[0] != 0)
            return mask[0];
        if (mask[1] != 0 || up == 0)
            return mask[1];
        int best_up = -1;
        uint32_t oldest_mask = 0;
        for (size_t i = 0; i < g.members.size() && i < group_runtime::max_members; ++i) {
            const auto& m = g.members[i];
            if ((up & (1u << i)) == 0 || (m.health != nullptr && m.health->up_since_ns() != oldest))
                continue;
            if (m.priority > best_up) {
                best_up = m.priority;
                oldest_mask = 0;
            }
            if (m.priority == best_up)
                oldest_mask |= 1u << i;
        }
        return oldest_mask;
    }
    // Up: a LAN router member always; a tunnel member while it exists and its health is up.
    bool member_up(const group_member& m) const noexcept {
        if (m.hop.kind != fwd::next_hop_kind::tunnel)
            return true;
        return tunnel(m.hop.tunnel) != nullptr && (m.health == nullptr || m.health->up());
    }
    bool member_ready(const group_member& m, uint64_t now_ns, uint64_t hold_down_ns) const noexcept {
        if (m.hop.kind != fwd::next_hop_kind::tunnel)
            return true;
        return tunnel(m.hop.tunnel) != nullptr &&
               (m.health == nullptr || m.health->matured(now_ns, hold_down_ns));
    }
    const tunnel_runtime* find_tunnel(const std::string& name) const noexcept {
        for (const auto& t : tunnels)
            if (t && t->name == name)
                return t.get();
        return nullptr;
    }
    bool is_own_address(ipv4_addr a) const noexcept {
        for (const auto& p : ports)
            if (p.address == a)
                return true;
        return false;
    }
    // One of our IPv6 addresses (global or link-local) on any port.
    bool is_own_address6(const ipv6_addr& a) const noexcept {
        for (const auto& p : ports)
            if (p.ipv6 && (p.address6 == a || p.link_local == a))
                return true;
        return false;
    }
    // The IPv6 source for ICMPv6 errors about traffic that arrived on `port` (index): that
    // port's address when it has one, else the first LAN port's. Null: no IPv6 anywhere.
    const ipv6_addr* icmp6_source(size_t port) const noexcept {
        if (port < ports.size() && ports[port].ipv6)
            return &ports[port].address6;
        for (const auto& p : ports)
            if (p.ipv6 && p.role == port_role::lan)
                return &p.address6;
        return nullptr;
    }
    // The broadcast address of a connected subnet (RFC 1812 5.3.5.2: not forwarded by default).
    bool is_directed_broadcast(ipv4_addr a) const noexcept {
        for (const auto& p : ports) {
            ipv4_addr host = p.prefix_len >= 31 ? 0 : ~prefix_mask(p.prefix_len);
            if (host != 0 && (a & host) == host && (a & ~host) == (p.address & ~host))
                return true;
        }
        return false;
    }

};

} // namespace sagd::dp
