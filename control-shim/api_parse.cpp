// Request bodies that are not config objects: the declarative diff and the text route batch.
// No gateway here (the fuzz target links this file alone with the config loader).
#include "control-shim/api_parse.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "control-shim/config_yaml.hpp"
#include "forwarding/ipv6_addr.hpp"

namespace sagd::shim {

namespace {

bool same_sa(const sa_config& a, const sa_config& b) {
    return a.spi == b.spi && a.cipher == b.cipher && a.keymat == b.keymat;
}

bool same_tunnel(const tunnel_config& a, const tunnel_config& b) {
    if (a.name != b.name || a.port != b.port || a.local != b.local || a.peer != b.peer ||
        a.encap != b.encap || a.udp_src_port != b.udp_src_port ||
        a.udp_dst_port != b.udp_dst_port || a.replay_window != b.replay_window || a.esn != b.esn ||
        !same_sa(a.outbound_sa, b.outbound_sa) || a.inbound_sas.size() != b.inbound_sas.size() ||
        a.bfd != b.bfd || a.health_check != b.health_check)
        return false;
    for (size_t i = 0; i < a.inbound_sas.size(); ++i)
        if (!same_sa(a.inbound_sas[i], b.inbound_sas[i]))
            return false;
    return true;
}

bool same_route(const route_config& a, const route_config& b) {
    return a.prefix.addr == b.prefix.addr && a.prefix.len == b.prefix.len && a.via == b.via &&
           a.tunnel == b.tunnel && a.gateway == b.gateway && a.group == b.group &&
           a.distance == b.distance;
}

uint64_t route_key(const ipv4_prefix& p) {
    return (uint64_t{p.addr} << 8) | p.len;
}

bool same_route6(const route6_config& a, const route6_config& b) {
    return a.prefix.addr == b.prefix.addr && a.prefix.len == b.prefix.len && a.via == b.via &&
           a.tunnel == b.tunnel && a.gateway == b.gateway && a.group == b.group &&
           a.distance == b.distance;
}

fwd::prefix6_key route_key6(const ipv6_prefix& p) {
    return {p.addr, p.len};
}

// The IPv6 half of diff_config: static IPv6 routes.
void diff_routes6(const config& running, const config& target, dp::change_set& out,
                  std::vector<std::string>& summary) {
    std::map<fwd::prefix6_key, const route6_config*> old_r;
    for (const auto& r : running.routes6)
        old_r[route_key6(r.prefix)] = &r;
    std::set<fwd::prefix6_key> kept;
    for (const auto& r : target.routes6) {
        auto k = route_key6(r.prefix);
        kept.insert(k);
        auto it = old_r.find(k);
        if (it == old_r.end() || !same_route6(*it->second, r)) {
            summary.push_back("route " + format_ipv6_prefix(r.prefix) +
                              (it == old_r.end() ? ": add" : ": change"));
            out.put_routes6.push_back(r);
        }
    }
    for (const auto& r : running.routes6)
        if (!kept.count(route_key6(r.prefix))) {
            summary.push_back("route " + format_ipv6_prefix(r.prefix) + ": delete");
            out.delete_routes6.push_back(r.prefix);
        }
}

// One IPv6 line of a route batch ("add 2001:db8::/32 tunnel NAME", "del 2001:db8::/32").
std::optional<std::string> parse_batch_line6(const std::string_view* words, size_t n,
                                             dp::change_set& out,
                                             std::vector<std::pair<fwd::prefix6_key, size_t>>& seen,
                                             size_t line_no) {
    auto where = [&] { return "line " + std::to_string(line_no) + ": "; };
    auto prefix = parse_ipv6_prefix(words[1]);
    if (!prefix)
        return where() + "prefix " + prefix.err().message;
    seen.emplace_back(route_key6(prefix.value()), line_no);
    if (words[0] == "del" || words[0] == "delete") {
        if (n != 2)
            return where() + "expected: del PREFIX";
        out.delete_routes6.push_back(prefix.value());
        return std::nullopt;
    }
    if (words[0] != "add")
        return where() + "expected add or del";
    if (n != 4 && n != 6)
        return where() + "expected: add PREFIX (tunnel NAME | group NAME | via GATEWAY) "
                         "[distance N]";
    route6_config r;
    r.prefix = prefix.value();
    if (words[2] == "tunnel") {
        r.via = route_via::tunnel;
        r.tunnel = std::string(words[3]);
        if (r.tunnel.empty() || r.tunnel.size() > 31)
            return where() + "tunnel name must be 1..31 characters";
    } else if (words[2] == "group") {
        r.via = route_via::group;
        r.group = std::string(words[3]);
        if (r.group.empty() || r.group.size() > 31)
            return where() + "group name must be 1..31 characters";
    } else if (words[2] == "via") {
        auto g = parse_ipv6(words[3]);
        if (!g)
            return where() + "gateway " + g.err().message;
        r.via = route_via::lan_gateway;
        r.gateway = g.value();
    } else {
        return where() + "expected tunnel NAME, group NAME or via GATEWAY";
    }
    if (n == 6) {
        unsigned d = 0;
        auto [p, ec] = std::from_chars(words[5].data(), words[5].data() + words[5].size(), d);
        if (words[4] != "distance" || ec != std::errc{} || p != words[5].data() + words[5].size() ||
            d < 1 || d > 255)
            return where() + "expected distance 1..255";
        r.distance = static_cast<uint8_t>(d);
    }
    out.put_routes6.push_back(std::move(r));
    return std::nullopt;
}

} // namespace

std::optional<std::string> diff_config(const config& running, const config& target,
                                       dp::change_set& out, std::vector<std::string>& summary) {
    if (running.workers != target.workers)
        return "workers: " + std::to_string(running.workers) + " -> " +
               std::to_string(target.workers) + " needs a restart";
    if (running.eal_args != target.eal_args)
        return "eal: changing EAL arguments needs a restart";
    if (running.ports.size() != target.ports.size())
        return "ports: adding or removing ports needs a restart";
    for (size_t i = 0; i < running.ports.size(); ++i) {
        const auto& a = running.ports[i];
        const auto& b = target.ports[i];
        if (a.name != b.name || a.device != b.device || a.role != b.role)
            return "ports[" + std::to_string(i) + "] '" + b.name +
                   "': renaming a port or changing its device or role needs a restart";
        if (a.address6 != b.address6 || (a.address6 && a.prefix6_len != b.prefix6_len))
            return "ports[" + std::to_string(i) + "] '" + b.name +
                   "': changing address6 needs a restart";
        dp::port_update u;
        u.port = a.name;
        bool changed = false;
        if (a.address != b.address || a.prefix_len != b.prefix_len) {
            u.address = b.address;
            u.prefix_len = b.prefix_len;
            changed = true;
            summary.push_back("port " + a.name + ": address " + format_ipv4(b.address) + "/" +
                              std::to_string(b.prefix_len));
        }
        if (a.gateway != b.gateway) {
            u.gateway = b.gateway;
            changed = true;
            summary.push_back("port " + a.name + ": gateway " +
                              (b.gateway ? format_ipv4(*b.gateway) : std::string("none")));
        }
        if (a.mtu != b.mtu) {
            u.mtu = b.mtu;
            changed = true;
            summary.push_back("port " + a.name + ": mtu " + std::to_string(b.mtu));
        }
        if (changed)
            out.ports.push_back(std::move(u));
    }
    std::map<std::string, const tunnel_config*> old_t;
    for (const auto& t : running.tunnels)
        old_t[t.name] = &t;
    std::set<std::string> kept;
    for (const auto& t : target.tunnels) {
        auto it = old_t.find(t.name);
        kept.insert(t.name);
        if (it == old_t.end()) {
            summary.push_back("tunnel " + t.name + ": add");
            out.put_tunnels.push_back(t);
        } else if (!same_tunnel(*it->second, t)) {
            summary.push_back("tunnel " + t.name + ": change");
            out.put_tunnels.push_back(t);
        }
    }
    for (const auto& t : running.tunnels)
        if (!kept.count(t.name)) {
            summary.push_back("tunnel " + t.name + ": delete");
            out.delete_tunnels.push_back(t.name);
        }
    {
        std::map<std::string, const group_config*> old_g;
        for (const auto& g : running.groups)
            old_g[g.name] = &g;
        std::set<std::string> kept_g;
        auto same_group = [](const group_config& a, const group_config& b) {
            if (a.members.size() != b.members.size() || a.hold_down_ms != b.hold_down_ms)
                return false;
            for (size_t i = 0; i < a.members.size(); ++i)
                if (a.members[i].tunnel != b.members[i].tunnel ||
                    a.members[i].priority != b.members[i].priority ||
                    a.members[i].weight != b.members[i].weight)
                    return false;
            return true;
        };
        for (const auto& g : target.groups) {
            kept_g.insert(g.name);
            auto it = old_g.find(g.name);
            if (it == old_g.end() || !same_group(*it->second, g)) {
                summary.push_back("group " + g.name + (it == old_g.end() ? ": add" : ": change"));
                out.put_groups.push_back(g);
            }
        }
        for (const auto& g : running.groups)
            if (!kept_g.count(g.name)) {
                summary.push_back("group " + g.name + ": delete");
                out.delete_groups.push_back(g.name);
            }
    }
    std::map<uint64_t, const route_config*> old_r;
    for (const auto& r : running.routes)
        old_r[route_key(r.prefix)] = &r;
    std::set<uint64_t> kept_r;
    for (const auto& r : target.routes) {
        uint64_t k = route_key(r.prefix);
        kept_r.insert(k);
        auto it = old_r.find(k);
        if (it == old_r.end() || !same_route(*it->second, r)) {
            summary.push_back("route " + format_ipv4_prefix(r.prefix) +
                              (it == old_r.end() ? ": add" : ": change"));
            out.put_routes.push_back(r);
        }
    }
    for (const auto& r : running.routes)
        if (!kept_r.count(route_key(r.prefix))) {
            summary.push_back("route " + format_ipv4_prefix(r.prefix) + ": delete");
            out.delete_routes.push_back(r.prefix);
        }
    diff_routes6(running, target, out, summary);
    for (const auto& n : target.neighbours) {
        bool same = false;
        for (const auto& o : running.neighbours)
            same |= o.port == n.port && o.address == n.address && o.mac == n.mac;
        if (!same) {
            summary.push_back("neighbour " + n.port + "/" + format_ipv4(n.address) + ": set");
            out.put_neighbours.push_back(n);
        }
    }
    for (const auto& o : running.neighbours) {
        bool kept_n = false;
        for (const auto& n : target.neighbours)
            kept_n |= o.port == n.port && o.address == n.address;
        if (!kept_n) {
            summary.push_back("neighbour " + o.port + "/" + format_ipv4(o.address) + ": delete");
            out.delete_neighbours.push_back(o);
        }
    }
    return std::nullopt;
}

std::optional<std::string> parse_route_batch(std::string_view text, dp::change_set& out) {
    size_t line_no = 0;
    std::vector<std::pair<uint64_t, size_t>> seen; // (prefix key, line): duplicates found below
    std::vector<std::pair<fwd::prefix6_key, size_t>> seen6;
    // At most one route per line: reserve once (untouched capacity costs no memory) rather
    // than grow by doubling through a million-line batch.
    const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    seen.reserve(lines);
    out.put_routes.reserve(out.put_routes.size() + lines);
    out.delete_routes.reserve(out.delete_routes.size() + lines);
    while (!text.empty()) {
        ++line_no;
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        std::string_view words[8];
        size_t n = 0;
        size_t i = 0;
        while (i < line.size() && n < 8) {
            while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
                ++i;
            if (i >= line.size() || line[i] == '#')
                break;
            size_t j = i;
            while (j < line.size() && line[j] != ' ' && line[j] != '\t')
                ++j;
            words[n++] = line.substr(i, j - i);
            i = j;
        }
        if (n == 0)
            continue;
        auto where = [&] { return "line " + std::to_string(line_no) + ": "; };
        if (n == 8)
            return where() + "too many words";
        if (n >= 2 && words[1].find(':') != std::string_view::npos) {
            if (auto e = parse_batch_line6(words, n, out, seen6, line_no))
                return e;
            continue;
        }
        auto prefix =
            n >= 2 ? parse_ipv4_prefix(words[1]) : result<ipv4_prefix>(error{"is missing"});
        if (!prefix)
            return where() + "prefix " + prefix.err().message;
        seen.emplace_back(route_key(prefix.value()), line_no);
        if (words[0] == "del" || words[0] == "delete") {
            if (n != 2)
                return where() + "expected: del PREFIX";
            out.delete_routes.push_back(prefix.value());
            continue;
        }
        if (words[0] != "add")
            return where() + "expected add or del";
        if (n != 4 && n != 6)
            return where() + "expected: add PREFIX (tunnel NAME | group NAME | via GATEWAY) "
                             "[distance N]";
        route_config r;
        r.prefix = prefix.value();
        if (words[2] == "tunnel") {
            r.via = route_via::tunnel;
            r.tunnel = std::string(words[3]);
            if (r.tunnel.empty() || r.tunnel.size() > 31)
                return where() + "tunnel name must be 1..31 characters";
        } else if (words[2] == "group") {
            r.via = route_via::group;
            r.group = std::string(words[3]);
            if (r.group.empty() || r.group.size() > 31)
                return where() + "group name must be 1..31 characters";
        } else if (words[2] == "via") {
            auto g = parse_ipv4(words[3]);
            if (!g)
                return where() + "gateway " + g.err().message;
            r.via = route_via::lan_gateway;
            r.gateway = g.value();
        } else {
            return where() + "expected tunnel NAME, group NAME or via GATEWAY";
        }
        if (n == 6) {
            unsigned d = 0;
            auto [p, ec] = std::from_chars(words[5].data(), words[5].data() + words[5].size(), d);
            if (words[4] != "distance" || ec != std::errc{} ||
                p != words[5].data() + words[5].size() || d < 1 || d > 255)
                return where() + "expected distance 1..255";
            r.distance = static_cast<uint8_t>(d);
        }
        out.put_routes.push_back(std::move(r));
    }
    std::sort(seen.begin(), seen.end());
    for (size_t i = 1; i < seen.size(); ++i)
        if (seen[i].first == seen[i - 1].first) {
            auto key = seen[i].first;
            return "line " + std::to_string(seen[i].second) + ": prefix " +
                   format_ipv4_prefix(
                       {static_cast<ipv4_addr>(key >> 8), static_cast<uint8_t>(key & 0xff)}) +
                   " appears twice in the batch (line " + std::to_string(seen[i - 1].second) + ")";
        }
    std::sort(seen6.begin(), seen6.end());
    for (size_t i = 1; i < seen6.size(); ++i)
        if (seen6[i].first == seen6[i - 1].first)
            return "line " + std::to_string(seen6[i].second) + ": prefix " +
                   fwd::format_prefix6(seen6[i].first.addr, seen6[i].first.len) +
                   " appears twice in the batch (line " + std::to_string(seen6[i - 1].second) + ")";
    return std::nullopt;
}

} // namespace sagd::shim
