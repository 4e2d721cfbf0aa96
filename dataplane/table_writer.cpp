#include "dataplane/table_writer.hpp"

#include <algorithm>
#include <array>
#include <set>
#include <tuple>

#include "crypto/esp.hpp"

namespace sagd::dp {

namespace {

std::string tunnel_label(const std::string& name) {
    return "tunnel '" + name + "'";
}

bool in_subnet(ipv4_addr a, ipv4_addr net, uint8_t len) {
    return (a & prefix_mask(len)) == (net & prefix_mask(len));
}

uint64_t key_of(const ipv4_prefix& p) {
    return (uint64_t{p.addr} << 8) | p.len;
}
uint64_t key_of(ipv4_addr a, uint8_t len) {
    return (uint64_t{a} << 8) | len;
}
std::string prefix_text(uint64_t key) {
    return fwd::format_prefix(static_cast<uint32_t>(key >> 8), static_cast<uint8_t>(key & 0xff));
}

crypto::cipher_kind to_cipher(aead_cipher c) {
    return c == aead_cipher::aes_gcm_128 ? crypto::cipher_kind::aes_gcm_128
                                         : crypto::cipher_kind::aes_gcm_256;
}

bool same_sa(const sa_config& a, const sa_config& b) {
    return a.spi == b.spi && a.cipher == b.cipher && a.keymat == b.keymat;
}

// The parameters an SA object is built from, besides its own SPI/cipher/key.
bool same_sa_context(const tunnel_config& a, const tunnel_config& b, ipv4_addr local_a,
                     ipv4_addr local_b) {
    return a.peer == b.peer && local_a == local_b && a.encap == b.encap &&
           a.udp_src_port == b.udp_src_port && a.udp_dst_port == b.udp_dst_port &&
           a.replay_window == b.replay_window && a.esn == b.esn;
}

const tunnel_config* find_config(const config& c, const std::string& name) {
    for (const auto& t : c.tunnels)
        if (t.name == name)
            return &t;
    return nullptr;
}

int port_index(const std::vector<port_runtime>& ports, const std::string& name) {
    for (size_t i = 0; i < ports.size(); ++i)
        if (ports[i].name == name)
            return static_cast<int>(i);
    return -1;
}

// The LAN port whose connected subnet holds `gw`, or -1.
int lan_port_for(const std::vector<port_runtime>& ports, ipv4_addr gw) {
    for (size_t k = 0; k < ports.size(); ++k)
        if (ports[k].role == port_role::lan && in_subnet(gw, ports[k].address, ports[k].prefix_len))
            return static_cast<int>(k);
    return -1;
}

void add_counters(retired_sa_counters& r, const crypto::outbound_sa& sa) {
    r.tx_packets += sa.packets;
    r.tx_bytes += sa.bytes;
    r.encrypt_errors += sa.errors;
    r.seq_exhausted += sa.seq_exhausted;
}

void add_counters(retired_sa_counters& r, const crypto::inbound_sa& sa) {
    r.rx_packets += sa.packets;
    r.rx_bytes += sa.bytes;
    r.decrypt_errors += sa.errors;
    r.icv_fail += sa.icv_fail;
    r.replay += sa.replay_drops;
    r.bad_padding += sa.bad_padding;
    r.bad_next_header += sa.bad_next_header;
    r.malformed += sa.too_short;
}

} // namespace

result<std::unique_ptr<table_writer>> table_writer::create(const config& cfg,
                                                           std::vector<port_runtime> ports,
                                                           crypto::engine_kind engine,
                                                           const table_limits& limits) {
    if (limits.tunnels == 0 || limits.tunnels > (1u << 20))
        return error{"limits: tunnels must be 1..1048576"};
    std::unique_ptr<table_writer> w(new table_writer());
    w->engine_ = engine;
    w->limits_ = limits;
    w->running_ = cfg;
    w->running_.tunnels.clear();
    w->running_.routes.clear();
    w->running_.routes6.clear();

    fwd::fib4_config fc;
    fc.max_routes = std::max<uint32_t>(limits.ipv4_routes, 1024);
    // One prefix in eight may be longer than /24 in a /24 of its own (1 KiB per group and copy):
    // on-premises tables carry many /25../30 LAN subnets.
    fc.tbl8_groups = std::clamp<uint32_t>(fc.max_routes / 8, 1024, 1u << 21);
    fc.double_buffered = true;
    auto fib = fwd::fib4::create(fc);
    if (!fib)
        return error{"fib: " + fib.err().message};
    w->fib_ = std::move(fib.value());
    // Room for the route limit now, not while a full table streams in (see u64_map.hpp).
    w->static_routes_.reserve(limits.ipv4_routes);
    w->learned_.reserve(limits.ipv4_routes);
    w->next_hops_ =
        std::make_unique<fwd::next_hop_table>(std::max<uint32_t>(65536, limits.tunnels + 4096));
    w->static_refs_.assign(limits.tunnels, 0);

    // The empty snapshot: ports and their connected routes only.
    auto base = std::make_unique<tables>();
    base->workers = cfg.workers;
    base->ports = std::move(ports);
    for (size_t i = 0; i < base->ports.size(); ++i)
        base->port_index_by_id[base->ports[i].port_id] = static_cast<uint8_t>(i);
    base->sa_map = std::make_shared<crypto::inbound_sa_map>(64);
    base->next_hops = w->next_hops_.get();
    for (const auto& p : base->ports)
        if (p.role == port_role::lan) {
            base->icmp_source = p.address;
            break;
        }
    for (size_t i = 0; i < base->ports.size(); ++i) {
        const auto& p = base->ports[i];
        fwd::next_hop conn{fwd::next_hop_kind::connected, static_cast<uint16_t>(i), 0, 0};
        fwd::next_hop local{fwd::next_hop_kind::local, static_cast<uint16_t>(i), 0, 0};
        auto c = w->next_hops_->acquire(conn);
        auto l = w->next_hops_->acquire(local);
        if (!c || !l)
            return error{"port '" + p.name + "': next hops exhausted"};
        uint32_t net = p.address & prefix_mask(p.prefix_len);
        if (auto st = w->fib_->add(net, p.prefix_len, fwd::route_origin::connected, c.value(), 0);
            !st)
            return error{"port '" + p.name + "': connected route: " + st.err().message};
        if (auto st = w->fib_->add(p.address, 32, fwd::route_origin::connected, l.value(), 0); !st)
            return error{"port '" + p.name + "': local route: " + st.err().message};
        w->connected_[key_of(net, p.prefix_len)] = c.value();
        w->connected_[key_of(p.address, 32)] = l.value();
    }
    base->fib = w->fib_->publish();
    w->fib_->sync();
    if (auto st = w->create_ipv6(base->ports); !st)
        return st.err();
    base->fib6 = w->fib6_->active();
    base->next_hops6 = w->next_hops6_.get();
    w->current_ = base.get();

    change_set first;
    first.put_tunnels = cfg.tunnels;
    first.put_routes = cfg.routes;
    first.put_routes6 = cfg.routes6;
    auto r = w->prepare(first);
    if (auto* f = std::get_if<change_failure>(&r))
        return error{f->message};
    auto snap = std::move(std::get<prepared>(r).snapshot);
    w->publish_fib(*snap);
    w->current_ = snap.get();
    w->finish(*base);
    w->initial_ = std::move(snap);
    return w;
}

table_writer::~table_writer() = default;

std::optional<uint32_t> table_writer::take_group_id(group_ids& g) {
    if (!g.free.empty()) {
        uint32_t id = g.free.front();
        g.free.pop_front();
        return id;
    }
    if (g.next_fresh >= max_groups)
        return std::nullopt;
    return g.next_fresh++;
}

std::unique_ptr<tables> table_writer::take_initial() noexcept {
    return std::move(initial_);
}

table_writer::route_entry table_writer::entry_of(const route_config& r, uint32_t next_hop_id) {
    route_entry e;
    e.next_hop_id = next_hop_id;
    e.via = r.via;
    e.distance = r.distance;
    e.gateway = r.via == route_via::lan_gateway ? r.gateway : 0;
    const std::string& name = r.via == route_via::tunnel  ? r.tunnel
                              : r.via == route_via::group ? r.group
                                                          : names_[0];
    auto [it, fresh] = name_index_.try_emplace(name, static_cast<uint32_t>(names_.size()));
    if (fresh)
        names_.push_back(name); // names are few (tunnels and groups) and kept
    e.name = it->second;
    return e;
}

route_config table_writer::config_of(uint64_t key, const route_entry& e) const {
    route_config r;
    r.prefix = {static_cast<ipv4_addr>(key >> 8), static_cast<uint8_t>(key & 0xff)};
    r.via = e.via;
    r.distance = e.distance;
    r.gateway = e.gateway;
    if (e.via == route_via::tunnel)
        r.tunnel = names_[e.name];
    else if (e.via == route_via::group)
        r.group = names_[e.name];
    return r;
}

config table_writer::running() const {
    config c = running_;
    c.routes.reserve(static_routes_.size());
    for_each_static([&](const route_config& r) { c.routes.push_back(r); });
    for (const auto& [key, e] : static_routes6_)
        c.routes6.push_back(e.config);
    return c;
}

const retired_sa_counters* table_writer::retired(const std::string& tunnel) const {
    auto it = retired_.find(tunnel);
    return it == retired_.end() ? nullptr : &it->second;
}

std::optional<change_failure> table_writer::fail(change_error code, std::string message) {
    rollback();
    return change_failure{code, std::move(message)};
}

result<uint32_t> table_writer::acquire(const fwd::next_hop& nh) {
    auto id = next_hops_->acquire(nh);
    if (id)
        pending_.acquired.push_back(id.value());
    return id;
}

void table_writer::rollback() {
    rollback6();
    fib_->rollback();
    for (auto it = pending_.route_undo.rbegin(); it != pending_.route_undo.rend(); ++it) {
        if (it->second)
            static_routes_[it->first] = std::move(*it->second);
        else
            static_routes_.erase(it->first);
    }
    for (auto it = pending_.learned_undo.rbegin(); it != pending_.learned_undo.rend(); ++it) {
        if (it->second)
            learned_[it->first] = std::move(*it->second);
        else
            learned_.erase(it->first);
    }
    if (!pending_.static_refs.empty())
        static_refs_ = std::move(pending_.static_refs);
    for (auto it = pending_.undo.rbegin(); it != pending_.undo.rend(); ++it)
        (*it)();
    for (uint32_t id : pending_.acquired)
        (void)next_hops_->release(id); // never published: parked until the next reclaim
    pending_ = {};
}

void table_writer::abandon() {
    if (pending_.active)
        rollback();
}

std::variant<table_writer::prepared, change_failure> table_writer::prepare(const change_set& cs) {
    if (pending_.active)
        return change_failure{change_error::conflict, "a change is already being applied"};
    pending_ = {};
    pending_.active = true;
    pending_.next = running_;
    pending_.ids = tunnel_ids_;
    config& next = pending_.next;
    const tables& cur = *current_;

    auto failure = [&](change_error code, std::string msg) {
        auto f = fail(code, std::move(msg));
        return std::variant<prepared, change_failure>(std::move(*f));
    };

    // Ports: address, prefix, gateway, MTU.
    std::vector<port_runtime> ports = cur.ports;
    std::vector<bool> port_changed(ports.size(), false);
    for (const auto& u : cs.ports) {
        int pi = port_index(ports, u.port);
        if (pi < 0)
            return failure(change_error::not_found, "port '" + u.port + "': no such port");
        auto& pr = ports[pi];
        auto& pc = next.ports[pi];
        if (u.address) {
            pr.address = pc.address = *u.address;
        }
        if (u.prefix_len) {
            if (*u.prefix_len < 1 || *u.prefix_len > 30)
                return failure(change_error::invalid,
                               "port '" + u.port + "': address prefix length must be 1..30");
            pr.prefix_len = pc.prefix_len = *u.prefix_len;
        }
        if (u.mtu) {
            if (*u.mtu < 576 || *u.mtu > 9000)
                return failure(change_error::invalid, "port '" + u.port + "': mtu " +
                                                          std::to_string(*u.mtu) +
                                                          " out of range 576..9000");
            pr.mtu = pc.mtu = *u.mtu;
        }
        if (u.gateway) {
            if (*u.gateway && pr.role != port_role::wan)
                return failure(change_error::invalid,
                               "port '" + u.port + "': gateway is only valid on a WAN port");
            pc.gateway = *u.gateway;
        }
        port_changed[pi] = true;
    }
    for (size_t i = 0; i < ports.size(); ++i) {
        if (!port_changed[i])
            continue;
        const auto& p = ports[i];
        ipv4_addr host = ~prefix_mask(p.prefix_len);
        if ((p.address & host) == 0 || (p.address & host) == host || p.address == 0 ||
            p.address >= 0xE0000000u)
            return failure(change_error::invalid,
                           "port '" + p.name + "': address " + fwd::format_ipv4(p.address) + "/" +
                               std::to_string(p.prefix_len) +
                               " is the subnet's network or broadcast address, or not unicast");
        for (size_t k = 0; k < ports.size(); ++k) {
            if (k == i)
                continue;
            uint8_t len = std::min(p.prefix_len, ports[k].prefix_len);
            if (in_subnet(p.address, ports[k].address, len))
                return failure(change_error::conflict, "port '" + p.name +
                                                           "': subnet overlaps port '" +
                                                           ports[k].name + "'");
        }
        const auto& gw = next.ports[i].gateway;
        if (gw && !in_subnet(*gw, p.address, p.prefix_len))
            return failure(change_error::invalid, "port '" + p.name + "': gateway " +
                                                      fwd::format_ipv4(*gw) +
                                                      " is not on the port's subnet");
    }

    // Static neighbours (the gateway installs them once the change is published).
    for (const auto& n : cs.delete_neighbours) {
        auto it = std::find_if(
            next.neighbours.begin(), next.neighbours.end(),
            [&](const neighbour_config& x) { return x.port == n.port && x.address == n.address; });
        if (it == next.neighbours.end())
            return failure(change_error::not_found, "neighbour " + n.port + "/" +
                                                        fwd::format_ipv4(n.address) +
                                                        ": no such static neighbour");
        next.neighbours.erase(it);
    }
    for (const auto& n : cs.put_neighbours) {
        int pi = port_index(ports, n.port);
        if (pi < 0)
            return failure(change_error::not_found, "neighbour " + fwd::format_ipv4(n.address) +
                                                        ": no port '" + n.port + "'");
        if (!in_subnet(n.address, ports[pi].address, ports[pi].prefix_len))
            return failure(change_error::invalid, "neighbour " + fwd::format_ipv4(n.address) +
                                                      ": not on port '" + n.port + "''s subnet");
        std::erase_if(next.neighbours, [&](const neighbour_config& x) {
            return x.port == n.port && x.address == n.address;
        });
        next.neighbours.push_back(n);
    }

    // Tunnels: deletes, then puts (create or replace).
    std::set<std::string> deleted;
    for (const auto& name : cs.delete_tunnels) {
        auto it = std::find_if(next.tunnels.begin(), next.tunnels.end(),
                               [&](const tunnel_config& t) { return t.name == name; });
        if (it == next.tunnels.end())
            return failure(change_error::not_found, tunnel_label(name) + ": no such tunnel");
        next.tunnels.erase(it);
        deleted.insert(name);
    }
    std::set<std::string> put_names;
    for (const auto& tc : cs.put_tunnels) {
        if (!put_names.insert(tc.name).second)
            return failure(change_error::invalid,
                           tunnel_label(tc.name) + ": given twice in one change");
        auto it = std::find_if(next.tunnels.begin(), next.tunnels.end(),
                               [&](const tunnel_config& t) { return t.name == tc.name; });
        if (it != next.tunnels.end())
            *it = tc;
        else
            next.tunnels.push_back(tc);
        deleted.erase(tc.name);
    }
    if (next.tunnels.size() > limits_.tunnels)
        return failure(change_error::full, "tunnels: " + std::to_string(next.tunnels.size()) +
                                               " exceed the limit of " +
                                               std::to_string(limits_.tunnels));
    // Ids: deleted tunnels give theirs back (reused only after the grace period), new ones
    // take the oldest free id.
    for (const auto& name : deleted) {
        auto it = pending_.ids.find(name);
        if (it == pending_.ids.end())
            continue;
        if (static_refs_[it->second] != 0) {
            // Routes deleted or repointed in this same change are accounted below.
            bool all_moved = true;
            size_t moving = 0;
            for (const auto& key : cs.delete_routes) {
                const route_entry* e = static_routes_.find(key_of(key));
                if (e != nullptr && e->via == route_via::tunnel && names_[e->name] == name)
                    ++moving;
            }
            for (const auto& r : cs.put_routes) {
                const route_entry* e = static_routes_.find(key_of(r.prefix));
                if (e != nullptr && e->via == route_via::tunnel && names_[e->name] == name &&
                    !(r.via == route_via::tunnel && r.tunnel == name))
                    ++moving;
            }
            all_moved = moving >= static_refs_[it->second];
            if (!all_moved)
                return failure(change_error::conflict,
                               tunnel_label(name) + ": in use by " +
                                   std::to_string(static_refs_[it->second] - moving) +
                                   " static route(s); delete or repoint them first");
        }
        pending_.freed_ids.push_back(it->second);
        pending_.deleted_names.push_back(name);
        pending_.ids.erase(it);
    }
    std::deque<uint32_t> free_ids = free_ids_;
    uint32_t fresh = next_fresh_id_;
    for (const auto& tc : next.tunnels) {
        if (pending_.ids.count(tc.name) != 0)
            continue;
        uint32_t id;
        if (!free_ids.empty()) {
            id = free_ids.front();
            free_ids.pop_front();
        } else if (fresh < limits_.tunnels) {
            id = fresh++;
        } else {
            return failure(change_error::full, tunnel_label(tc.name) + ": no free tunnel id");
        }
        pending_.ids[tc.name] = id;
    }

    // Tunnel objects: rebuilt when their config or WAN port changed, else shared.
    auto snap = std::make_unique<tables>();
    snap->ports = ports;
    snap->port_index_by_id = cur.port_index_by_id;
    snap->workers = cur.workers;
    snap->generation = cur.generation + 1;
    snap->next_hops = next_hops_.get();
    snap->next_hops6 = next_hops6_.get();
    snap->icmp_source = 0;
    for (const auto& p : ports)
        if (p.role == port_role::lan) {
            snap->icmp_source = p.address;
            break;
        }
    uint32_t max_id = 0;
    for (const auto& [name, id] : pending_.ids)
        max_id = std::max(max_id, id + 1);
    snap->tunnels.resize(max_id);
    size_t n_inbound = 0;
    for (size_t ti = 0; ti < next.tunnels.size(); ++ti) {
        const auto& tc = next.tunnels[ti];
        const uint32_t id = pending_.ids.at(tc.name);
        int pi = port_index(ports, tc.port);
        if (pi < 0 || ports[pi].role != port_role::wan)
            return failure(change_error::invalid,
                           tunnel_label(tc.name) + ": port '" + tc.port + "' is not a WAN port");
        const tunnel_runtime* old = cur.tunnel(id);
        if (old != nullptr && old->name != tc.name)
            old = nullptr; // the id was someone else's (cannot happen: ids are freed late)
        const tunnel_config* old_cfg = find_config(running_, tc.name);
        if (old != nullptr && !put_names.count(tc.name) && !port_changed[pi]) {
            snap->tunnels[id] = cur.tunnels[id];
            n_inbound += old->inbound.size();
            continue;
        }
        if (tc.health_check) {
            const auto& c = *tc.health_check;
            if (c.target == 0 || c.source == 0 || c.target == c.source || c.interval_ms < 100 ||
                c.interval_ms > 60000 || c.timeout_ms < 10 || c.timeout_ms > 60000 ||
                c.failures == 0 || c.failures > 100 || c.rtt_threshold_ms > 60000 ||
                c.window < 10 || c.window > fwd::sla_window::capacity ||
                (c.sla && (c.sla->max_loss_percent > 100 || *c.sla == sla_limits{})))
                return failure(change_error::invalid,
                               tunnel_label(tc.name) + ": health_check: invalid settings");
        }
        if (tc.bfd) {
            const auto& b = *tc.bfd;
            if (b.local == 0 || b.remote == 0 || b.local == b.remote)
                return failure(change_error::invalid, tunnel_label(tc.name) +
                                                          ": bfd: local and remote must be two "
                                                          "different nonzero addresses");
            if (b.desired_min_tx_us < 50'000 || b.desired_min_tx_us > 60'000'000 ||
                b.required_min_rx_us < 50'000 || b.required_min_rx_us > 60'000'000 ||
                b.detect_mult == 0)
                return failure(change_error::invalid, tunnel_label(tc.name) +
                                                          ": bfd: intervals must be 50 ms..60 s "
                                                          "and the multiplier 1..255");
        }
        const port_runtime& wan = ports[pi];
        auto tr = std::make_shared<tunnel_runtime>();
        tr->name = tc.name;
        tr->id = id;
        tr->port_index = static_cast<uint16_t>(pi);
        tr->local = tc.local.value_or(wan.address);
        tr->peer = tc.peer;
        tr->udp = tc.encap == tunnel_encap::esp_udp;
        tr->owner = id % cur.workers;
        tr->overhead = crypto::esp_encap_overhead_max - (tr->udp ? 0 : 8);
        tr->bfd = tc.bfd;
        tr->check = tc.health_check;
        // Health lives as long as the tunnel: a replaced object keeps it (and its BFD session;
        // the owner worker restarts the session itself when the BFD settings changed).
        if (old != nullptr && old->health) {
            tr->health = old->health;
            if (tc.bfd && !old->bfd) // down until the new session is Up
                tr->health->set_down(health_bfd, health_cause::bfd_down, 0);
        } else {
            tr->health = std::make_shared<tunnel_health>(tc.bfd ? health_bfd : 0);
        }
        if (in_subnet(tc.peer, wan.address, wan.prefix_len))
            tr->next_hop = tc.peer;
        else if (next.ports[pi].gateway)
            tr->next_hop = *next.ports[pi].gateway;
        else
            return failure(change_error::invalid, tunnel_label(tc.name) +
                                                      ": peer is not on port '" + wan.name +
                                                      "''s subnet and the port has no gateway");
        const bool same_context = old != nullptr && old_cfg != nullptr &&
                                  same_sa_context(*old_cfg, tc, old->local, tr->local);

        crypto::sa_params sp;
        sp.engine = engine_;
        sp.esn = tc.esn;
        sp.replay_window = tc.replay_window;
        sp.local_addr = tr->local;
        sp.peer_addr = tc.peer;
        if (tr->udp) {
            sp.local_udp_port = tc.udp_src_port;
            sp.peer_udp_port = tc.udp_dst_port;
        }
        if (same_context && same_sa(old_cfg->outbound_sa, tc.outbound_sa)) {
            tr->outbound = old->outbound;
        } else {
            sp.spi = tc.outbound_sa.spi;
            sp.cipher = to_cipher(tc.outbound_sa.cipher);
            sp.keymat = tc.outbound_sa.keymat;
            auto out = crypto::create_outbound_sa(sp);
            if (!out)
                return failure(change_error::invalid,
                               tunnel_label(tc.name) + ": outbound_sa: " + out.error);
            tr->outbound = std::move(out.sa);
        }
        for (size_t k = 0; k < tc.inbound_sas.size(); ++k) {
            const auto& ic = tc.inbound_sas[k];
            std::shared_ptr<crypto::inbound_sa> reuse;
            if (same_context)
                for (size_t j = 0; j < old_cfg->inbound_sas.size() && j < old->inbound.size(); ++j)
                    if (same_sa(old_cfg->inbound_sas[j], ic))
                        reuse = old->inbound[j];
            if (reuse) {
                tr->inbound.push_back(std::move(reuse));
                continue;
            }
            sp.spi = ic.spi;
            sp.cipher = to_cipher(ic.cipher);
            sp.keymat = ic.keymat;
            auto in = crypto::create_inbound_sa(sp);
            if (!in)
                return failure(change_error::invalid, tunnel_label(tc.name) + ": inbound_sas[" +
                                                          std::to_string(k) + "]: " + in.error);
            in.sa->user = id;
            tr->inbound.push_back(std::move(in.sa));
        }
        n_inbound += tr->inbound.size();
        snap->tunnels[id] = std::move(tr);
    }
    // SPI -> inbound SA, and the NAT-T ports.
    auto sa_map = std::make_shared<crypto::inbound_sa_map>(std::max<size_t>(64, n_inbound * 2));
    for (const auto& t : snap->tunnels) {
        if (!t)
            continue;
        if (t->udp)
            snap->natt_ports.set(find_config(next, t->name)->udp_src_port);
        for (const auto& sa : t->inbound) {
            if (auto e = sa_map->insert(sa.get()); !e.empty()) {
                std::string other;
                if (const auto* prev = sa_map->find(sa->spi))
                    for (const auto& u : snap->tunnels)
                        if (u && u->id == prev->user)
                            other = u->name;
                return failure(
                    change_error::conflict,
                    tunnel_label(t->name) + ": inbound SPI " + std::to_string(sa->spi) +
                        (other.empty() ? ": " + e : " already used by tunnel '" + other + "'"));
            }
        }
    }
    snap->sa_map = std::move(sa_map);

    // Groups: deletes, then puts; members must be tunnels of the new state.
    pending_.undo.push_back([this, saved = groups_] { groups_ = saved; });
    for (const auto& name : cs.delete_groups) {
        auto it = std::find_if(next.groups.begin(), next.groups.end(),
                               [&](const group_config& g) { return g.name == name; });
        if (it == next.groups.end())
            return failure(change_error::not_found, "group '" + name + "': no such group");
        next.groups.erase(it);
    }
    std::set<std::string> put_groups;
    for (const auto& gc : cs.put_groups) {
        if (!put_groups.insert(gc.name).second)
            return failure(change_error::invalid, "group '" + gc.name + "': given twice");
        if (pending_.ids.count(gc.name))
            return failure(change_error::conflict,
                           "group '" + gc.name + "': name already used by a tunnel");
        if (gc.members.empty() || gc.members.size() > group_runtime::max_members)
            return failure(change_error::invalid, "group '" + gc.name + "': 1..16 members");
        if (gc.hold_down_ms > 3'600'000)
            return failure(change_error::invalid,
                           "group '" + gc.name + "': hold_down_ms above 3600000");
        auto it = std::find_if(next.groups.begin(), next.groups.end(),
                               [&](const group_config& g) { return g.name == gc.name; });
        if (it != next.groups.end())
            *it = gc;
        else
            next.groups.push_back(gc);
    }
    for (const auto& g : next.groups)
        for (const auto& m : g.members)
            if (!pending_.ids.count(m.tunnel))
                return failure(
                    deleted.count(m.tunnel) ? change_error::conflict : change_error::invalid,
                    "group '" + g.name + "': member tunnel '" + m.tunnel +
                        (deleted.count(m.tunnel) ? "' is being deleted" : "' does not exist"));
    for (auto it = groups_.by_name.begin(); it != groups_.by_name.end();) {
        bool kept = std::any_of(next.groups.begin(), next.groups.end(),
                                [&](const group_config& g) { return g.name == it->first; });
        if (kept) {
            ++it;
            continue;
        }
        // Routes through a deleted group must go (or move) in the same change.
        std::optional<uint64_t> in_use;
        static_routes_.for_each([&](uint64_t key, const route_entry& e) {
            if (in_use || e.via != route_via::group || names_[e.name] != it->first)
                return;
            bool moved = false;
            for (const auto& p : cs.delete_routes)
                moved |= key_of(p) == key;
            for (const auto& r : cs.put_routes)
                moved |=
                    key_of(r.prefix) == key && !(r.via == route_via::group && r.group == it->first);
            if (!moved)
                in_use = key;
        });
        if (in_use)
            return failure(change_error::conflict, "group '" + it->first + "': in use by route " +
                                                       prefix_text(*in_use) +
                                                       "; delete or repoint it first");
        pending_.freed_group_ids.push_back(it->second);
        it = groups_.by_name.erase(it);
    }
    for (const auto& g : next.groups)
        if (!groups_.by_name.count(g.name)) {
            auto id = take_group_id(groups_);
            if (!id)
                return failure(change_error::full, "group '" + g.name + "': no free group id");
            groups_.by_name[g.name] = *id;
        }

    if (auto f = stage_routes(cs, cur.ports, ports, pending_.ids))
        return std::variant<prepared, change_failure>(std::move(*f));
    if (auto f = stage_routes6(cs, ports, pending_.ids))
        return std::variant<prepared, change_failure>(std::move(*f));

    // The groups of the new snapshot (rebuilt every change: they are small).
    uint32_t max_gid = 0;
    for (const auto& [name, id] : groups_.by_name)
        max_gid = std::max(max_gid, id + 1);
    for (const auto& [gws, e] : groups_.ecmp)
        max_gid = std::max(max_gid, e.id + 1);
    snap->groups.resize(max_gid);
    for (const auto& g : next.groups) {
        auto gr = std::make_shared<group_runtime>();
        gr->name = g.name;
        gr->id = groups_.by_name.at(g.name);
        gr->hold_down_ns = uint64_t{g.hold_down_ms} * 1'000'000;
        for (const auto& m : g.members) {
            const uint32_t tid = pending_.ids.at(m.tunnel);
            const tunnel_runtime* tr = snap->tunnel(tid);
            gr->members.push_back({{fwd::next_hop_kind::tunnel, 0, 0, tid},
                                   m.priority,
                                   m.weight,
                                   tr != nullptr ? tr->health.get() : nullptr});
        }
        snap->groups[gr->id] = std::move(gr);
    }
    for (const auto& [gws, e] : groups_.ecmp) {
        auto gr = std::make_shared<group_runtime>();
        gr->name = "ecmp";
        gr->id = e.id;
        for (ipv4_addr g : gws) {
            int pi = lan_port_for(ports, g);
            gr->members.push_back(
                {{fwd::next_hop_kind::gateway, static_cast<uint16_t>(pi < 0 ? 0 : pi), g, 0},
                 100,
                 1});
        }
        snap->groups[e.id] = std::move(gr);
    }

    free_ids_.swap(free_ids); // committed below only on success; restored by rollback
    pending_.undo.push_back(
        [this, saved = std::move(free_ids), fresh_saved = next_fresh_id_]() mutable {
            free_ids_ = std::move(saved);
            next_fresh_id_ = fresh_saved;
        });
    next_fresh_id_ = fresh;
    return prepared{std::move(snap)};
}

std::optional<change_failure>
table_writer::stage_routes(const change_set& cs, const std::vector<port_runtime>& old_ports,
                           const std::vector<port_runtime>& ports,
                           const std::map<std::string, uint32_t>& ids) {
    auto fib_error = [&](const fwd::error& e) {
        change_error code =
            e.code == fwd::errc::table_full ? change_error::full : change_error::invalid;
        return fail(code, e.message);
    };
    // Connected routes of ports whose address changed.
    for (size_t i = 0; i < ports.size(); ++i) {
        const auto& o = old_ports[i];
        const auto& p = ports[i];
        if (o.address == p.address && o.prefix_len == p.prefix_len)
            continue;
        for (uint64_t key :
             {key_of(o.address & prefix_mask(o.prefix_len), o.prefix_len), key_of(o.address, 32)}) {
            auto it = connected_.find(key);
            if (it == connected_.end())
                continue;
            if (auto st =
                    fib_->remove(static_cast<uint32_t>(key >> 8), static_cast<uint8_t>(key & 0xff),
                                 fwd::route_origin::connected);
                !st)
                return fib_error(st.err());
            pending_.to_release.push_back(it->second);
            pending_.undo.push_back([this, key, id = it->second] { connected_[key] = id; });
            connected_.erase(it);
        }
        fwd::next_hop conn{fwd::next_hop_kind::connected, static_cast<uint16_t>(i), 0, 0};
        fwd::next_hop local{fwd::next_hop_kind::local, static_cast<uint16_t>(i), 0, 0};
        uint32_t net = p.address & prefix_mask(p.prefix_len);
        for (auto [addr, len, nh] :
             {std::tuple{net, p.prefix_len, conn}, std::tuple{p.address, uint8_t{32}, local}}) {
            auto id = acquire(nh);
            if (!id)
                return fail(change_error::full, id.err().message);
            if (auto st = fib_->add(addr, len, fwd::route_origin::connected, id.value(), 0); !st)
                return fib_error(st.err());
            uint64_t key = key_of(addr, len);
            pending_.undo.push_back([this, key] { connected_.erase(key); });
            connected_[key] = id.value();
        }
    }

    auto resolve = [&](const route_config& r, fwd::next_hop& nh) -> std::optional<std::string> {
        if (r.via == route_via::group) {
            auto it = groups_.by_name.find(r.group);
            if (it == groups_.by_name.end())
                return "group '" + r.group + "' does not exist";
            nh = {fwd::next_hop_kind::group, 0, 0, it->second};
            return std::nullopt;
        }
        if (r.via == route_via::tunnel) {
            auto it = ids.find(r.tunnel);
            if (it == ids.end())
                return "tunnel '" + r.tunnel + "' does not exist";
            nh = {fwd::next_hop_kind::tunnel, 0, 0, it->second};
            return std::nullopt;
        }
        int pi = lan_port_for(ports, r.gateway);
        if (pi < 0)
            return "gateway " + fwd::format_ipv4(r.gateway) +
                   " is not on a LAN port's connected subnet";
        nh = {fwd::next_hop_kind::gateway, static_cast<uint16_t>(pi), r.gateway, 0};
        return std::nullopt;
    };
    if (!cs.put_routes.empty() || !cs.delete_routes.empty())
        pending_.static_refs = static_refs_; // restored by rollback()
    pending_.route_undo.reserve(cs.delete_routes.size() + cs.put_routes.size());
    pending_.to_release.reserve(cs.delete_routes.size() + cs.put_routes.size());
    pending_.acquired.reserve(cs.put_routes.size());
    // Static routes held per tunnel id (a tunnel in use cannot be deleted). The last name
    // looked up is remembered: a big batch names the same few tunnels over and over.
    const std::string* memo_name = nullptr;
    uint32_t* memo_refs = nullptr;
    auto adjust_refs = [&](route_via via, const std::string& tunnel, int delta) {
        if (via != route_via::tunnel)
            return;
        if (memo_name == nullptr || *memo_name != tunnel) {
            memo_name = nullptr;
            auto it = ids.find(tunnel);
            if (it == ids.end()) {
                it = tunnel_ids_.find(tunnel);
                if (it == tunnel_ids_.end())
                    return;
            }
            if (it->second >= static_refs_.size())
                return;
            memo_name = &it->first;
            memo_refs = &static_refs_[it->second];
        }
        *memo_refs += static_cast<uint32_t>(delta);
    };

    // Static routes: deletes, then puts, each in address order (neighbouring prefixes share
    // the FIB's cache lines). Order cannot matter: the change is published as one. Each loop
    // starts loading the tables' entries for the route `ahead` places on: they miss the cache.
    constexpr size_t ahead = 8;
    auto sorted_order = [](const auto& items, auto key_fn) {
        std::vector<std::pair<uint64_t, uint32_t>> order(items.size());
        for (size_t i = 0; i < items.size(); ++i)
            order[i] = {key_fn(items[i]), static_cast<uint32_t>(i)};
        std::sort(order.begin(), order.end());
        return order;
    };
    const auto del_order =
        sorted_order(cs.delete_routes, [](const ipv4_prefix& p) { return key_of(p); });
    for (size_t n = 0; n < del_order.size(); ++n) {
        if (n + ahead < del_order.size()) {
            const auto& q = cs.delete_routes[del_order[n + ahead].second];
            static_routes_.prefetch(del_order[n + ahead].first);
            fib_->prefetch(q.addr, q.len);
        }
        const auto& p = cs.delete_routes[del_order[n].second];
        uint64_t key = del_order[n].first;
        const route_entry* e = static_routes_.find(key);
        if (e == nullptr)
            return fail(change_error::not_found,
                        "route " + prefix_text(key) + ": no such static route");
        if (auto st = fib_->remove(p.addr, p.len, fwd::route_origin::static_route); !st)
            return fib_error(st.err());
        adjust_refs(e->via, names_[e->name], -1);
        pending_.to_release.push_back(e->next_hop_id);
        pending_.route_undo.emplace_back(key, *e);
        static_routes_.erase(key);
    }
    const auto put_order =
        sorted_order(cs.put_routes, [](const route_config& r) { return key_of(r.prefix); });
    for (size_t n = 0; n < put_order.size(); ++n) {
        if (n + ahead < put_order.size()) {
            const auto& q = cs.put_routes[put_order[n + ahead].second].prefix;
            static_routes_.prefetch(put_order[n + ahead].first);
            fib_->prefetch(q.addr, q.len);
        }
        const auto& r = cs.put_routes[put_order[n].second];
        uint64_t key = put_order[n].first;
        if (n > 0 && put_order[n - 1].first == key)
            return fail(change_error::invalid,
                        "route " + prefix_text(key) +
                            ": given twice (one static route per prefix; a backup path belongs "
                            "in a tunnel group)");
        fwd::next_hop nh;
        if (auto why = resolve(r, nh))
            return fail(change_error::invalid, "route " + prefix_text(key) + ": " + *why);
        auto id = acquire(nh);
        if (!id)
            return fail(change_error::full, "route " + prefix_text(key) + ": " + id.err().message);
        if (auto st = fib_->add(r.prefix.addr, r.prefix.len, fwd::route_origin::static_route,
                                id.value(), r.distance);
            !st)
            return fib_error(st.err());
        const route_entry entry = entry_of(r, id.value());
        auto [e, fresh] = static_routes_.try_emplace(key);
        if (!fresh) {
            adjust_refs(e->via, names_[e->name], -1);
            pending_.to_release.push_back(e->next_hop_id);
            pending_.route_undo.emplace_back(key, *e);
        } else {
            pending_.route_undo.emplace_back(key, std::nullopt);
        }
        *e = entry;
        adjust_refs(r.via, r.tunnel, +1);
    }
    // Gateway routes must stay on a connected LAN subnet when a LAN port's address changes.
    bool lan_changed = false;
    for (size_t i = 0; i < ports.size(); ++i)
        lan_changed |=
            ports[i].role == port_role::lan && (old_ports[i].address != ports[i].address ||
                                                old_ports[i].prefix_len != ports[i].prefix_len);
    if (lan_changed) {
        std::optional<change_failure> conflict;
        static_routes_.for_each([&](uint64_t key, const route_entry& e) {
            if (!conflict && e.via == route_via::lan_gateway && lan_port_for(ports, e.gateway) < 0)
                conflict =
                    fail(change_error::conflict,
                         "route " + prefix_text(key) + ": gateway " + fwd::format_ipv4(e.gateway) +
                             " would no longer be on a LAN port's connected subnet");
        });
        learned_.for_each([&](uint64_t key, const learned_entry& e) {
            for (ipv4_addr g : e.route.gateways)
                if (!conflict && lan_port_for(ports, g) < 0)
                    conflict = fail(change_error::conflict,
                                    "learned route " + prefix_text(key) + ": gateway " +
                                        fwd::format_ipv4(g) +
                                        " would no longer be on a LAN port's connected subnet");
        });
        if (conflict)
            return conflict;
    }

    auto ecmp_release = [&](uint64_t key) {
        const learned_entry* le = learned_.find(key);
        if (le == nullptr || le->route.gateways.size() < 2)
            return;
        std::vector<ipv4_addr> gws = le->route.gateways.to_vector();
        std::sort(gws.begin(), gws.end());
        auto e = groups_.ecmp.find(gws);
        if (e != groups_.ecmp.end() && --e->second.refs == 0) {
            pending_.freed_group_ids.push_back(e->second.id);
            groups_.ecmp.erase(e);
        }
    };
    // Learned routes (FRR): deletes, then puts. The first gateway on a LAN subnet serves.
    // The journals are sized once: growing them moves every entry again.
    pending_.learned_undo.reserve(pending_.learned_undo.size() + cs.delete_learned.size() +
                                  cs.put_learned.size());
    pending_.to_release.reserve(pending_.to_release.size() + cs.delete_learned.size() +
                                cs.put_learned.size());
    pending_.acquired.reserve(pending_.acquired.size() + cs.put_learned.size());
    const auto del_learned_order =
        sorted_order(cs.delete_learned, [](const ipv4_prefix& p) { return key_of(p); });
    for (size_t n = 0; n < del_learned_order.size(); ++n) {
        if (n + ahead < del_learned_order.size()) {
            const auto& q = cs.delete_learned[del_learned_order[n + ahead].second];
            learned_.prefetch(key_of(q));
            fib_->prefetch(q.addr, q.len);
        }
        const auto& p = cs.delete_learned[del_learned_order[n].second];
        uint64_t key = del_learned_order[n].first;
        learned_entry* le = learned_.find(key);
        if (le == nullptr)
            return fail(change_error::not_found,
                        "learned route " + prefix_text(key) + ": not present");
        if (auto st = fib_->remove(p.addr, p.len, fwd::route_origin::learned); !st)
            return fib_error(st.err());
        ecmp_release(key);
        pending_.to_release.push_back(le->next_hop_id);
        pending_.learned_undo.emplace_back(key, std::move(*le));
        learned_.erase(key);
    }
    const auto put_learned_order =
        sorted_order(cs.put_learned, [](const learned_route4& l) { return key_of(l.prefix); });
    for (size_t n = 0; n < put_learned_order.size(); ++n) {
        if (n + ahead < put_learned_order.size()) {
            const auto& q = cs.put_learned[put_learned_order[n + ahead].second].prefix;
            learned_.prefetch(key_of(q));
            fib_->prefetch(q.addr, q.len);
        }
        const auto& l = cs.put_learned[put_learned_order[n].second];
        uint64_t key = put_learned_order[n].first;
        fwd::next_hop nh{fwd::next_hop_kind::drop, 0, 0, 0};
        // The distinct gateways on a LAN subnet (no allocation: a million routes pass here).
        std::array<ipv4_addr, group_runtime::max_members> usable_gw;
        size_t n_usable = 0;
        int first_port = -1;
        for (ipv4_addr g : l.gateways) {
            if (n_usable == usable_gw.size())
                break;
            const int pi = lan_port_for(ports, g);
            if (pi < 0 || std::find(usable_gw.begin(), usable_gw.begin() + n_usable, g) !=
                              usable_gw.begin() + n_usable)
                continue;
            if (n_usable == 0)
                first_port = pi;
            usable_gw[n_usable++] = g;
        }
        if (!l.gateways.empty() && n_usable == 0)
            return fail(change_error::invalid, "learned route " + prefix_text(key) +
                                                   ": no gateway on a LAN port's subnet");
        if (n_usable == 1) {
            nh = {fwd::next_hop_kind::gateway, static_cast<uint16_t>(first_port), usable_gw[0], 0};
        } else if (n_usable > 1) {
            // Equal-cost LAN routers: one shared group per set of gateways.
            std::vector<ipv4_addr> usable(usable_gw.begin(), usable_gw.begin() + n_usable);
            std::sort(usable.begin(), usable.end());
            auto [e, fresh] = groups_.ecmp.try_emplace(usable, group_ids::ecmp_group{0, 0});
            if (fresh) {
                auto id = take_group_id(groups_);
                if (!id) {
                    groups_.ecmp.erase(e);
                    return fail(change_error::full,
                                "learned route " + prefix_text(key) + ": no free group id");
                }
                e->second.id = *id;
            }
            ++e->second.refs;
            nh = {fwd::next_hop_kind::group, 0, 0, e->second.id};
        }
        auto id = acquire(nh);
        if (!id)
            return fail(change_error::full,
                        "learned route " + prefix_text(key) + ": " + id.err().message);
        if (auto st = fib_->add(l.prefix.addr, l.prefix.len, fwd::route_origin::learned, id.value(),
                                l.distance);
            !st)
            return fib_error(st.err());
        auto [le, fresh] = learned_.try_emplace(key);
        if (!fresh) {
            ecmp_release(key); // finds the old gateways: `le` stays valid (no insert)
            pending_.to_release.push_back(le->next_hop_id);
            pending_.learned_undo.emplace_back(key, std::move(*le));
        } else {
            pending_.learned_undo.emplace_back(key, std::nullopt);
        }
        *le = {l, id.value()};
    }
    return std::nullopt;
}

void table_writer::publish_fib(tables& snapshot) noexcept {
    snapshot.fib = fib_->publish();
    snapshot.fib6 = fib6_->publish();
}

void table_writer::finish(const tables& retired) {
    fib_->sync();
    fib6_->sync();
    for (uint32_t id : pending_.to_release)
        (void)next_hops_->release(id);
    next_hops_->reclaim();
    for (uint32_t id : pending6_.to_release)
        (void)next_hops6_->release(id);
    next_hops6_->reclaim();
    pending6_ = {};
    // SAs the retired snapshot had and the current one has not: their counters move to the
    // tunnel's retired totals (they are freed with the retired snapshot).
    std::set<const void*> live;
    for (const auto& t : current_->tunnels) {
        if (!t)
            continue;
        live.insert(t->outbound.get());
        for (const auto& sa : t->inbound)
            live.insert(sa.get());
    }
    std::set<std::string> deleted(pending_.deleted_names.begin(), pending_.deleted_names.end());
    for (const auto& t : retired.tunnels) {
        if (!t || deleted.count(t->name) != 0)
            continue;
        auto& r = retired_[t->name];
        if (live.count(t->outbound.get()) == 0)
            add_counters(r, *t->outbound);
        for (const auto& sa : t->inbound)
            if (live.count(sa.get()) == 0)
                add_counters(r, *sa);
    }
    for (const auto& name : deleted)
        retired_.erase(name);
    for (uint32_t id : pending_.freed_group_ids)
        groups_.free.push_back(id);
    for (uint32_t id : pending_.freed_ids) {
        static_refs_[id] = 0;
        free_ids_.push_back(id);
    }
    tunnel_ids_ = std::move(pending_.ids);
    running_ = std::move(pending_.next);
    running_.routes.clear();
    running_.routes6.clear();
    pending_ = {};
}

} // namespace sagd::dp
