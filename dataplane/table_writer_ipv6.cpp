// The IPv6 half of the table writer: its own FIB (fib6, double-buffered like fib4) and next-hop
// ids, connected prefixes of the LAN ports with an IPv6 address, static routes (config `routes`
// entries with an IPv6 prefix, API) and learned routes (FRR over FPM). Staged in the same
// change as the IPv4 routes and rolled back with them: a change is all or nothing across both.
#include <algorithm>

#include "dataplane/table_writer.hpp"
#include "forwarding/packet6.hpp"

namespace sagd::dp {

namespace {

fwd::prefix6_key key6(const ipv6_prefix& p) {
    return {p.addr, p.len};
}

std::string text6(const fwd::prefix6_key& k) {
    return fwd::format_prefix6(k.addr, k.len);
}

// The LAN port a gateway is reached through: the one whose IPv6 prefix holds it, or for a
// link-local gateway the only LAN port with IPv6 (link-local addresses do not say which link).
int lan_port_for6(const std::vector<port_runtime>& ports, const ipv6_addr& gw, std::string& why) {
    if (fwd::ipv6_is_link_local(gw)) {
        int found = -1;
        for (size_t k = 0; k < ports.size(); ++k)
            if (ports[k].role == port_role::lan && ports[k].ipv6) {
                if (found >= 0) {
                    why = "link-local gateway " + fwd::format_ipv6(gw) +
                          " is ambiguous: more than one LAN port has IPv6";
                    return -1;
                }
                found = static_cast<int>(k);
            }
        if (found < 0)
            why = "gateway " + fwd::format_ipv6(gw) + ": no LAN port has an IPv6 address";
        return found;
    }
    for (size_t k = 0; k < ports.size(); ++k)
        if (ports[k].role == port_role::lan && ports[k].ipv6 &&
            fwd::ipv6_in_prefix(gw, ports[k].address6, ports[k].prefix6_len))
            return static_cast<int>(k);
    why = "gateway " + fwd::format_ipv6(gw) + " is not on a LAN port's IPv6 prefix";
    return -1;
}

} // namespace

status table_writer::create_ipv6(const std::vector<port_runtime>& ports) {
    fwd::fib6_config fc;
    fc.name = "fib6";
    fc.max_routes = std::max<uint32_t>(limits_.ipv6_routes, 1024);
    fc.tbl8_groups = std::clamp<uint32_t>(fc.max_routes, 1024, 1u << 17);
    fc.double_buffered = true;
    auto fib = fwd::fib6::create(fc);
    if (!fib)
        return error{"fib6: " + fib.err().message};
    fib6_ = std::move(fib.value());
    next_hops6_ =
        std::make_unique<fwd::next_hop6_table>(std::max<uint32_t>(65536, limits_.tunnels + 4096));
    for (size_t i = 0; i < ports.size(); ++i) {
        const auto& p = ports[i];
        if (!p.ipv6)
            continue;
        auto c = next_hops6_->acquire({fwd::next_hop_kind::connected, static_cast<uint16_t>(i), 0, {}});
        auto l = next_hops6_->acquire({fwd::next_hop_kind::local, static_cast<uint16_t>(i), 0, {}});
        if (!c || !l)
            return error{"port '" + p.name + "': IPv6 next hops exhausted"};
        if (auto st = fib6_->add(fwd::ipv6_mask(p.address6, p.prefix6_len), p.prefix6_len,
                                 fwd::route_origin::connected, c.value(), 0);
            !st)
            return error{"port '" + p.name + "': IPv6 connected route: " + st.err().message};
        if (auto st =
                fib6_->add(p.address6, 128, fwd::route_origin::connected, l.value(), 0);
            !st)
            return error{"port '" + p.name + "': IPv6 local route: " + st.err().message};
    }
    (void)fib6_->publish();
    fib6_->sync();
    return ok();
}

result<uint32_t> table_writer::acquire6(const fwd::next_hop6& nh) {
    auto id = next_hops6_->acquire(nh);
    if (id)
        pending6_.acquired.push_back(id.value());
    return id;
}

void table_writer::rollback6() {
    fib6_->rollback();
    for (auto it = pending6_.route_undo.rbegin(); it != pending6_.route_undo.rend(); ++it) {
        if (it->second)
            static_routes6_[it->first] = std::move(*it->second);
        else
            static_routes6_.erase(it->first);
    }
    for (auto it = pending6_.learned_undo.rbegin(); it != pending6_.learned_undo.rend(); ++it) {
        if (it->second) {
            learned6_[it->first] = it->second->first;
            learned6_nh_[it->first] = it->second->second;
        } else {
            learned6_.erase(it->first);
            learned6_nh_.erase(it->first);
        }
    }
    for (uint32_t id : pending6_.acquired)
        (void)next_hops6_->release(id); // never published: parked until the next reclaim
    pending6_ = {};
}

std::optional<change_failure>
table_writer::stage_routes6(const change_set& cs, const std::vector<port_runtime>& ports,
                            const std::map<std::string, uint32_t>& ids) {
    auto fib_error = [&](const fwd::error& e) {
        return fail(e.code == fwd::errc::table_full ? change_error::full : change_error::invalid,
                    e.message);
    };
    auto resolve = [&](const route6_config& r, fwd::next_hop6& nh) -> std::optional<std::string> {
        switch (r.via) {
        case route_via::group: {
            auto it = groups_.by_name.find(r.group);
            if (it == groups_.by_name.end())
                return "group '" + r.group + "' does not exist";
            nh = {fwd::next_hop_kind::group, 0, it->second, {}};
            return std::nullopt;
        }
        case route_via::tunnel: {
            auto it = ids.find(r.tunnel);
            if (it == ids.end())
                return "tunnel '" + r.tunnel + "' does not exist";
            nh = {fwd::next_hop_kind::tunnel, 0, it->second, {}};
            return std::nullopt;
        }
        case route_via::lan_gateway: {
            std::string why;
            int pi = lan_port_for6(ports, r.gateway, why);
            if (pi < 0)
                return why;
            nh = {fwd::next_hop_kind::gateway, static_cast<uint16_t>(pi), 0, r.gateway};
            return std::nullopt;
        }
        }
        return "unknown next hop";
    };

    // Static routes: deletes, then puts, each in address order.
    std::vector<ipv6_prefix> deletes = cs.delete_routes6;
    std::sort(deletes.begin(), deletes.end(),
              [](const ipv6_prefix& a, const ipv6_prefix& b) { return key6(a) < key6(b); });
    for (const auto& p : deletes) {
        const auto key = key6(p);
        auto it = static_routes6_.find(key);
        if (it == static_routes6_.end())
            return fail(change_error::not_found,
                        "route " + text6(key) + ": no such static route");
        if (auto st = fib6_->remove(p.addr, p.len, fwd::route_origin::static_route); !st)
            return fib_error(st.err());
        pending6_.to_release.push_back(it->second.next_hop_id);
        pending6_.route_undo.emplace_back(key, std::move(it->second));
        static_routes6_.erase(it);
    }
    std::vector<const route6_config*> puts;
    for (const auto& r : cs.put_routes6)
        puts.push_back(&r);
    std::sort(puts.begin(), puts.end(), [](const route6_config* a, const route6_config* b) {
        return key6(a->prefix) < key6(b->prefix);
    });
    for (size_t n = 0; n < puts.size(); ++n) {
        const auto& r = *puts[n];
        const auto key = key6(r.prefix);
        if (n > 0 && key6(puts[n - 1]->prefix) == key)
            return fail(change_error::invalid,
                        "route " + text6(key) +
                            ": given twice (one static route per prefix; a backup path belongs "
                            "in a tunnel group)");
        if (fwd::ipv6_mask(r.prefix.addr, r.prefix.len) != r.prefix.addr || r.prefix.len > 128)
            return fail(change_error::invalid, "route " + text6(key) + ": host bits set");
        fwd::next_hop6 nh;
        if (auto why = resolve(r, nh))
            return fail(change_error::invalid, "route " + text6(key) + ": " + *why);
        auto id = acquire6(nh);
        if (!id)
            return fail(change_error::full, "route " + text6(key) + ": " + id.err().message);
        if (auto st = fib6_->add(r.prefix.addr, r.prefix.len, fwd::route_origin::static_route,
                                 id.value(), r.distance);
            !st)
            return fib_error(st.err());
        auto [it, fresh] = static_routes6_.try_emplace(key);
        if (!fresh) {
            pending6_.to_release.push_back(it->second.next_hop_id);
            pending6_.route_undo.emplace_back(key, std::move(it->second));
        } else {
            pending6_.route_undo.emplace_back(key, std::nullopt);
        }
        it->second = {r, id.value()};
    }
    // Tunnels and groups an IPv6 route points at must survive the change (IPv4 routes are
    // checked the same way by the tunnel and group stages).
    for (const auto& [key, e] : static_routes6_) {
        if (e.config.via == route_via::tunnel && ids.count(e.config.tunnel) == 0)
            return fail(change_error::conflict,
                        "tunnel '" + e.config.tunnel + "': in use by IPv6 static route " +
                            text6(key) + "; delete or repoint it first");
        if (e.config.via == route_via::group && groups_.by_name.count(e.config.group) == 0)
            return fail(change_error::conflict, "group '" + e.config.group +
                                                    "': in use by IPv6 static route " +
                                                    text6(key) + "; delete or repoint it first");
    }

    // Learned routes (FRR): deletes, then puts. The first usable LAN router serves.
    std::vector<ipv6_prefix> ldeletes = cs.delete_learned6;
    std::sort(ldeletes.begin(), ldeletes.end(),
              [](const ipv6_prefix& a, const ipv6_prefix& b) { return key6(a) < key6(b); });
    for (const auto& p : ldeletes) {
        const auto key = key6(p);
        auto it = learned6_.find(key);
        if (it == learned6_.end())
            return fail(change_error::not_found, "learned route " + text6(key) + ": not present");
        if (auto st = fib6_->remove(p.addr, p.len, fwd::route_origin::learned); !st)
            return fib_error(st.err());
        const uint32_t old_id = learned6_nh_.at(key);
        pending6_.to_release.push_back(old_id);
        pending6_.learned_undo.emplace_back(key, std::pair{it->second, old_id});
        learned6_.erase(it);
        learned6_nh_.erase(key);
    }
    std::vector<const learned_route6*> lputs;
    for (const auto& l : cs.put_learned6)
        lputs.push_back(&l);
    std::sort(lputs.begin(), lputs.end(), [](const learned_route6* a, const learned_route6* b) {
        return key6(a->prefix) < key6(b->prefix);
    });
    for (size_t n = 0; n < lputs.size(); ++n) {
        const auto& l = *lputs[n];
        const auto key = key6(l.prefix);
        if (n > 0 && key6(lputs[n - 1]->prefix) == key)
            return fail(change_error::invalid, "learned route " + text6(key) + ": given twice");
        if (fwd::ipv6_mask(l.prefix.addr, l.prefix.len) != l.prefix.addr || l.prefix.len > 128)
            return fail(change_error::invalid, "learned route " + text6(key) + ": host bits set");
        fwd::next_hop6 nh{fwd::next_hop_kind::drop, 0, 0, {}};
        std::string why;
        bool usable = l.gateways.empty();
        for (const auto& g : l.gateways) {
            int pi = lan_port_for6(ports, g, why);
            if (pi >= 0) {
                nh = {fwd::next_hop_kind::gateway, static_cast<uint16_t>(pi), 0, g};
                usable = true;
                break;
            }
        }
        if (!usable)
            return fail(change_error::invalid, "learned route " + text6(key) + ": " + why);
        auto id = acquire6(nh);
        if (!id)
            return fail(change_error::full,
                        "learned route " + text6(key) + ": " + id.err().message);
        if (auto st = fib6_->add(l.prefix.addr, l.prefix.len, fwd::route_origin::learned,
                                 id.value(), l.distance);
            !st)
            return fib_error(st.err());
        auto it = learned6_.find(key);
        if (it != learned6_.end()) {
            const uint32_t old_id = learned6_nh_.at(key);
            pending6_.to_release.push_back(old_id);
            pending6_.learned_undo.emplace_back(key, std::pair{it->second, old_id});
            it->second = l;
        } else {
            pending6_.learned_undo.emplace_back(key, std::nullopt);
            learned6_.emplace(key, l);
        }
        learned6_nh_[key] = id.value();
    }
    return std::nullopt;
}

} // namespace sagd::dp
