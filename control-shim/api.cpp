#include "control-shim/api.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <set>

#include <openssl/crypto.h>
#include <yaml-cpp/yaml.h>

#include "control-shim/config_yaml.hpp"
#include "dataplane/stats.hpp"

namespace sagd::shim {

namespace {

uint64_t monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

http_response json_response(int status, std::string body) {
    http_response r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

http_response error_response(int status, std::string_view message) {
    return json_response(status, json_error(message));
}

// GET of a collection of n named objects: the one called `name` (404 when there is none), or
// all of them as {"<plural>": [...]} when no name is given. name_of(i) and write(i) by index.
template <typename NameOf, typename Write>
http_response one_or_all(json_writer& j, const std::string& name, std::string_view kind,
                         const char* plural, size_t n, NameOf name_of, Write write) {
    if (!name.empty()) {
        for (size_t i = 0; i < n; ++i)
            if (name_of(i) == name) {
                write(i);
                return json_response(200, j.take());
            }
        return error_response(404,
                              std::string(kind) + " '" + name + "': no such " + std::string(kind));
    }
    j.begin_object().key(plural).begin_array();
    for (size_t i = 0; i < n; ++i)
        write(i);
    j.end_array().end_object();
    return json_response(200, j.take());
}

int status_of(dp::change_error e) {
    switch (e) {
    case dp::change_error::invalid:
        return 400;
    case dp::change_error::not_found:
        return 404;
    case dp::change_error::conflict:
        return 409;
    case dp::change_error::full:
        return 507;
    }
    return 400;
}

std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> parts;
    size_t i = 0;
    while (i < path.size()) {
        while (i < path.size() && path[i] == '/')
            ++i;
        size_t j = path.find('/', i);
        if (j == std::string::npos)
            j = path.size();
        if (j > i)
            parts.push_back(path.substr(i, j - i));
        i = j;
    }
    return parts;
}

// Bodies are JSON (or YAML); the route batch may also be text/plain.
bool acceptable_body(const http_request& r, bool text_ok) {
    auto ct = r.header("content-type");
    if (!ct)
        return true;
    std::string_view v = *ct;
    v = v.substr(0, v.find(';'));
    while (!v.empty() && v.back() == ' ')
        v.remove_suffix(1);
    return v == "application/json" || v == "application/yaml" || v == "application/x-yaml" ||
           v == "text/yaml" || (text_ok && v == "text/plain");
}

bool is_text_plain(const http_request& r) {
    auto ct = r.header("content-type");
    return ct && ct->substr(0, 10) == "text/plain";
}

const char* cipher_name(aead_cipher c) {
    return c == aead_cipher::aes_gcm_128 ? "aes-gcm-128" : "aes-gcm-256";
}

std::string hex_spi(uint32_t spi) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%x", spi);
    return buf;
}

void write_via(json_writer& j, const dp::tables& t, const dp::table_writer& w, uint32_t nh_id) {
    const fwd::next_hop& nh = w.next_hops().get(nh_id);
    j.key("via").begin_object();
    auto port_name = [&](uint16_t p) {
        return p < t.ports.size() ? t.ports[p].name : std::string("?");
    };
    switch (nh.kind) {
    case fwd::next_hop_kind::drop:
        j.member("drop", true);
        break;
    case fwd::next_hop_kind::local:
        j.member("local", port_name(nh.port));
        break;
    case fwd::next_hop_kind::connected:
        j.member("connected", port_name(nh.port));
        break;
    case fwd::next_hop_kind::gateway:
        j.member("gateway", format_ipv4(nh.gateway)).member("port", port_name(nh.port));
        break;
    case fwd::next_hop_kind::tunnel: {
        const auto* tun = t.tunnel(nh.tunnel);
        j.member("tunnel", tun ? tun->name : std::string("?"));
        break;
    }
    case fwd::next_hop_kind::group: {
        const auto* g = t.group(nh.tunnel);
        if (g != nullptr && g->name == "ecmp") {
            j.key("gateways").begin_array();
            for (const auto& m : g->members)
                j.value(format_ipv4(m.hop.gateway));
            j.end_array();
        } else {
            j.member("group", g ? g->name : std::string("?"));
        }
        break;
    }
    }
    j.end_object();
}

void write_route(json_writer& j, const dp::tables& t, const dp::table_writer& w,
                 const fwd::route4& r, bool installed) {
    j.begin_object();
    j.member("prefix", fwd::format_prefix(r.prefix, r.len));
    j.member("origin", fwd::to_string(r.origin));
    j.member("distance", r.distance);
    j.member("installed", installed);
    write_via(j, t, w, r.next_hop_id);
    j.end_object();
}

void write_route6(json_writer& j, const dp::tables& t, const dp::table_writer& w,
                  const fwd::route6& r, bool installed) {
    j.begin_object();
    j.member("prefix", fwd::format_prefix6(r.prefix, r.len));
    j.member("origin", fwd::to_string(r.origin));
    j.member("distance", r.distance);
    j.member("installed", installed);
    const fwd::next_hop6& nh = w.next_hops6().get(r.next_hop_id);
    auto port_name = [&](uint16_t p) {
        return p < t.ports.size() ? t.ports[p].name : std::string("?");
    };
    j.key("via").begin_object();
    switch (nh.kind) {
    case fwd::next_hop_kind::drop:
        j.member("drop", true);
        break;
    case fwd::next_hop_kind::local:
        j.member("local", port_name(nh.port));
        break;
    case fwd::next_hop_kind::connected:
        j.member("connected", port_name(nh.port));
        break;
    case fwd::next_hop_kind::gateway:
        j.member("gateway", fwd::format_ipv6(nh.gateway)).member("port", port_name(nh.port));
        break;
    case fwd::next_hop_kind::tunnel: {
        const auto* tun = t.tunnel(nh.tunnel);
        j.member("tunnel", tun ? tun->name : std::string("?"));
        break;
    }
    case fwd::next_hop_kind::group: {
        const auto* g = t.group(nh.tunnel);
        j.member("group", g ? g->name : std::string("?"));
        break;
    }
    }
    j.end_object();
    j.end_object();
}

bool write_file_atomically(const std::string& path, const std::string& text, std::string& why) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        why = tmp + ": " + std::strerror(errno);
        return false;
    }
    size_t off = 0;
    while (off < text.size()) {
        ssize_t n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            why = tmp + ": write: " + std::strerror(errno);
            ::close(fd);
            ::unlink(tmp.c_str());
            return false;
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        why = tmp + ": fsync/close: " + std::strerror(errno);
        ::unlink(tmp.c_str());
        return false;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        why = path + ": rename: " + std::strerror(errno);
        ::unlink(tmp.c_str());
        return false;
    }
    std::string dir =
        path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
    return true;
}

// A YAML/JSON map body with only the given keys; the scalar values are returned as text.
std::optional<std::string> read_flat_object(const std::string& body,
                                            std::initializer_list<std::string_view> allowed,
                                            std::map<std::string, std::optional<std::string>>& out,
                                            std::string_view what) {
    try {
        YAML::Node n = YAML::Load(body);
        if (!n.IsMap())
            return std::string(what) + ": expected an object";
        for (const auto& kv : n) {
            std::string k = kv.first.as<std::string>();
            if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
                return std::string(what) + ": unknown field '" + k.substr(0, 32) + "'";
            if (kv.second.IsNull())
                out[k] = std::nullopt;
            else if (kv.second.IsScalar())
                out[k] = kv.second.Scalar();
            else
                return std::string(what) + ": " + k + " must be a scalar";
        }
    } catch (const YAML::Exception& e) {
        return std::string(what) + ": malformed body: " + e.msg;
    }
    return std::nullopt;
}

} // namespace

api::api(dp::gateway& gw, api_options options, api_hooks hooks)
    : gw_(gw), options_(std::move(options)), hooks_(std::move(hooks)) {
    started_ms_ = monotonic_ms();
    now_ms_ = started_ms_;
}

std::optional<dp::change_failure> api::apply(const dp::change_set& cs) {
    if (cs.empty())
        return std::nullopt;
    auto failure = gw_.apply(cs);
    if (failure)
        return failure;
    // Learned routes are not config: zebra re-sends them. Anything else is persisted, at once
    // for a small config; a big one (a bulk route load) at most once a second, from poll().
    bool config_change = cs.size() != cs.put_learned.size() + cs.delete_learned.size();
    if (config_change && !options_.persist_path.empty()) {
        persist_dirty_ = true;
        if (gw_.writer().static_route_count() < 10'000 || now_ms_ - persisted_ms_ >= 1000)
            flush();
    }
    return std::nullopt;
}

void api::flush() {
    if (!persist_dirty_)
        return;
    persist_dirty_ = false;
    persisted_ms_ = now_ms_;
    if (std::string why = persist(); !why.empty())
        std::fprintf(stderr, "sagd: warning: running config not persisted: %s\n", why.c_str());
}

std::string api::persist() {
    if (options_.persist_path.empty())
        return {};
    std::string text = "# sagd running config, written by sagd after every change (mode 0600)\n";
    text += dump_config(gw_.writer().running(), true);
    std::string why;
    bool ok = write_file_atomically(options_.persist_path, text, why);
    OPENSSL_cleanse(text.data(), text.size());
    return ok ? std::string{} : why;
}

bool api::poll(uint64_t now_ms) {
    now_ms_ = now_ms;
    bool did = false;
    if (persist_dirty_ && now_ms - persisted_ms_ >= 1000) {
        flush();
        did = true;
    }
    for (size_t i = 0; i < retire_.size();) {
        if (retire_[i].due_ms > now_ms) {
            ++i;
            continue;
        }
        pending_retire r = retire_[i];
        retire_.erase(retire_.begin() + static_cast<std::ptrdiff_t>(i));
        did = true;
        for (const auto& t : gw_.writer().running_without_routes().tunnels) {
            if (t.name != r.tunnel || t.inbound_sas.size() < 2)
                continue;
            tunnel_config next = t;
            std::erase_if(next.inbound_sas, [&](const sa_config& sa) { return sa.spi == r.spi; });
            if (next.inbound_sas.size() == t.inbound_sas.size())
                break;
            dp::change_set cs;
            cs.put_tunnels.push_back(std::move(next));
            if (auto f = apply(cs))
                std::fprintf(stderr, "sagd: tunnel '%s': retiring inbound SA %s failed: %s\n",
                             r.tunnel.c_str(), hex_spi(r.spi).c_str(), f->message.c_str());
            else
                std::fprintf(stderr, "sagd: tunnel '%s': inbound SA %s retired after rekey\n",
                             r.tunnel.c_str(), hex_spi(r.spi).c_str());
            break;
        }
    }
    return did;
}

http_response api::handle(const http_request& r, const connection_info&) {
    now_ms_ = monotonic_ms();
    auto parts = split_path(r.path);
    const std::string& m = r.method;
    auto method_not_allowed = [&] {
        return error_response(405, "method " + m + " not allowed on " + r.path);
    };
    if (parts.size() == 1 && parts[0] == "metrics") {
        if (m != "GET")
            return method_not_allowed();
        http_response resp;
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
        resp.body = hooks_.metrics ? hooks_.metrics() : std::string{};
        return resp;
    }
    if (parts.size() < 2 || parts[0] != "v1")
        return error_response(404, "no such endpoint: " + r.path + " (see /v1/...)");
    const std::string& what = parts[1];
    const std::string name = parts.size() > 2 ? parts[2] : std::string{};
    bool has_body = m == "POST" || m == "PUT" || m == "PATCH";
    if (has_body && !acceptable_body(r, what == "routes"))
        return error_response(415, "request body must be application/json (or YAML)");
    try {
        if (what == "status" && parts.size() == 2)
            return m == "GET" ? get_status() : method_not_allowed();
        if (what == "ports" && parts.size() <= 3) {
            if (m == "GET")
                return get_ports(name);
            if (m == "PATCH" && !name.empty())
                return patch_port(name, r.body);
            return method_not_allowed();
        }
        if (what == "tunnels") {
            if (parts.size() == 4 && parts[3] == "rekey")
                return m == "POST" ? rekey(name, r.body) : method_not_allowed();
            if (parts.size() == 4 && parts[3] == "health")
                return m == "GET" ? get_tunnel_health(name) : method_not_allowed();
            if (parts.size() > 3)
                return error_response(404, "no such endpoint: " + r.path);
            if (m == "GET")
                return get_tunnels(name);
            if (m == "POST" && name.empty())
                return put_tunnel("", r.body, true);
            if (m == "PUT" && !name.empty())
                return put_tunnel(name, r.body, false);
            if (m == "DELETE" && !name.empty())
                return delete_tunnel(name);
            return method_not_allowed();
        }
        if (what == "groups" && parts.size() <= 3) {
            if (m == "GET")
                return get_groups(name);
            if (m == "POST" && name.empty())
                return put_group("", r.body, true);
            if (m == "PUT" && !name.empty())
                return put_group(name, r.body, false);
            if (m == "DELETE" && !name.empty())
                return delete_group(name);
            return method_not_allowed();
        }
        if (what == "routes" && parts.size() == 2) {
            if (m == "GET")
                return get_routes(r);
            if (m == "POST")
                return post_routes(r);
            if (m == "DELETE")
                return delete_route(r);
            return method_not_allowed();
        }
        if (what == "onprem-prefixes" && parts.size() == 2)
            return m == "GET" ? get_onprem() : method_not_allowed();
        if (what == "neighbours" && parts.size() == 2) {
            if (m == "GET")
                return get_neighbours();
            if (m == "POST")
                return post_neighbours(r.body);
            if (m == "DELETE") {
                size_t n = gw_.flush_neighbours();
                json_writer j;
                j.begin_object().member("flushed", static_cast<uint64_t>(n)).end_object();
                return json_response(200, j.take());
            }
            return method_not_allowed();
        }
        if (what == "counters" && parts.size() == 2)
            return m == "GET" ? get_counters() : method_not_allowed();
        if (what == "config" && parts.size() == 2) {
            if (m == "GET")
                return get_config();
            if (m == "PUT")
                return put_config(r);
            return method_not_allowed();
        }
    } catch (const std::bad_alloc&) {
        return error_response(507, "out of memory");
    }
    return error_response(404, "no such endpoint: " + r.path);
}

http_response api::get_status() {
    const auto& t = gw_.tbl();
    size_t tunnels = 0;
    for (const auto& x : t.tunnels)
        tunnels += x != nullptr;
    json_writer j;
    j.begin_object();
    j.member("version", options_.version);
    j.member("workers", static_cast<uint64_t>(gw_.workers().size()));
    j.member("uptime_s", (now_ms_ - started_ms_) / 1000);
    j.key("routes").begin_object();
    j.member("ipv4", static_cast<uint64_t>(gw_.writer().fib().prefix_count()));
    j.member("ipv4_candidates", static_cast<uint64_t>(gw_.writer().fib().route_count()));
    j.member("learned", static_cast<uint64_t>(gw_.writer().learned_count()));
    j.member("limit", gw_.writer().limits().ipv4_routes);
    j.member("ipv6", static_cast<uint64_t>(gw_.writer().fib6().prefix_count()));
    j.member("ipv6_candidates", static_cast<uint64_t>(gw_.writer().fib6().route_count()));
    j.member("learned_ipv6", static_cast<uint64_t>(gw_.writer().learned6_count()));
    j.member("ipv6_limit", gw_.writer().limits().ipv6_routes);
    j.end_object();
    j.member("tunnels", static_cast<uint64_t>(tunnels));
    j.member("tunnel_limit", gw_.writer().limits().tunnels);
    j.member("next_hops", gw_.writer().next_hops().size());
    j.member("neighbours", gw_.neighbours().size());
    j.member("neighbours_ipv6", gw_.neighbours6().size());
    j.member("changes_applied", gw_.changes_applied());
    j.member("pending_rekeys", static_cast<uint64_t>(retire_.size()));
    if (hooks_.fpm_status) {
        j.key("fpm");
        hooks_.fpm_status(j);
    }
    j.end_object();
    return json_response(200, j.take());
}

http_response api::get_ports(const std::string& name) {
    const auto& t = gw_.tbl();
    const auto& cfg = gw_.writer().running_without_routes();
    auto sums = dp::sum_counters(gw_);
    json_writer j;
    auto write_port = [&](size_t i) {
        const auto& p = t.ports[i];
        j.begin_object();
        j.member("name", p.name);
        j.member("role", p.role == port_role::lan ? "lan" : "wan");
        j.member("device", cfg.ports[i].device);
        j.member("address", format_ipv4(p.address) + "/" + std::to_string(p.prefix_len));
        if (p.ipv6) {
            j.member("address6",
                     fwd::format_ipv6(p.address6) + "/" + std::to_string(p.prefix6_len));
            j.member("link_local", fwd::format_ipv6(p.link_local));
        }
        j.key("gateway");
        if (cfg.ports[i].gateway)
            j.value(format_ipv4(*cfg.ports[i].gateway));
        else
            j.null();
        j.member("mtu", p.mtu);
        char mac[18];
        std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", p.mac.addr_bytes[0],
                      p.mac.addr_bytes[1], p.mac.addr_bytes[2], p.mac.addr_bytes[3],
                      p.mac.addr_bytes[4], p.mac.addr_bytes[5]);
        j.member("mac", std::string_view(mac));
        j.member("rx_queues", p.n_rx_queues).member("tx_queues", p.n_tx_queues);
        j.key("counters").begin_object();
        j.member("rx_packets", sums.ports[i].rx_packets).member("rx_bytes", sums.ports[i].rx_bytes);
        j.member("tx_packets", sums.ports[i].tx_packets).member("tx_bytes", sums.ports[i].tx_bytes);
        j.end_object();
        j.end_object();
    };
    return one_or_all(
        j, name, "port", "ports", t.ports.size(),
        [&](size_t i) -> const std::string& { return t.ports[i].name; }, write_port);
}

http_response api::patch_port(const std::string& name, const std::string& body) {
    std::map<std::string, std::optional<std::string>> f;
    std::string what = "port '" + name + "'";
    if (auto e = read_flat_object(body, {"address", "gateway", "mtu"}, f, what))
        return error_response(400, *e);
    dp::port_update u;
    u.port = name;
    if (auto it = f.find("address"); it != f.end()) {
        if (!it->second)
            return error_response(400, what + ": address cannot be removed");
        auto c = parse_ipv4_cidr(*it->second);
        if (!c)
            return error_response(400, what + ": address " + c.err().message);
        u.address = c.value().addr;
        u.prefix_len = c.value().len;
    }
    if (auto it = f.find("gateway"); it != f.end()) {
        if (!it->second || *it->second == "none") {
            u.gateway = std::optional<ipv4_addr>{};
        } else {
            auto g = parse_ipv4(*it->second);
            if (!g)
                return error_response(400, what + ": gateway " + g.err().message);
            u.gateway = std::optional<ipv4_addr>{g.value()};
        }
    }
    if (auto it = f.find("mtu"); it != f.end()) {
        unsigned v = 0;
        const std::string& s = it->second.value_or("");
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || p != s.data() + s.size() || s.empty())
            return error_response(400, what + ": mtu must be a number");
        if (v > 65535)
            return error_response(400, what + ": mtu " + s + " out of range 576..9000");
        u.mtu = static_cast<uint16_t>(v);
    }
    if (f.empty())
        return error_response(400, what + ": nothing to change (address, gateway, mtu)");
    dp::change_set cs;
    cs.ports.push_back(std::move(u));
    if (auto fail = apply(cs))
        return error_response(status_of(fail->code), fail->message);
    return get_ports(name);
}

namespace {

// A tunnel's health: in service or not and why, the last change and its cause, and the BFD
// session (state, discriminators, timers, counters).
void write_health(json_writer& j, const tunnel_config& tc, const dp::tunnel_runtime* rt,
                  uint64_t now) {
    j.begin_object();
    if (rt == nullptr || !rt->health) {
        j.member("state", "down").end_object();
        return;
    }
    const dp::tunnel_health& h = *rt->health;
    j.member("state", h.up() ? "up" : "down");
    j.key("down_reasons").begin_array();
    for (uint8_t bit = 1; bit != 0x80; bit = static_cast<uint8_t>(bit << 1))
        if ((h.down_reasons() & bit) != 0)
            j.value(dp::health_reason_name(bit));
    j.end_array();
    j.member("last_change_cause", dp::to_string(h.last_cause()));
    if (h.last_change_ns() != 0)
        j.member("last_change_ms_ago", (now - std::min(now, h.last_change_ns())) / 1'000'000);
    j.member("downs", h.downs()).member("ups", h.ups());
    if (h.up() && h.up_since_ns() != 0)
        j.member("up_for_ms", (now - std::min(now, h.up_since_ns())) / 1'000'000);
    if (tc.bfd) {
        const dp::bfd_link& b = h.bfd;
        constexpr auto rel = std::memory_order_relaxed;
        j.key("bfd").begin_object();
        j.member("local", format_ipv4(tc.bfd->local)).member("remote", format_ipv4(tc.bfd->remote));
        j.member("state", fwd::to_string(static_cast<fwd::bfd_state>(b.view_state.load(rel))));
        j.member("remote_state",
                 fwd::to_string(static_cast<fwd::bfd_state>(b.view_remote_state.load(rel))));
        j.member("diag", fwd::to_string(static_cast<fwd::bfd_diag>(b.view_diag.load(rel))));
        j.member("local_discriminator", b.view_local_disc.load(rel));
        j.member("remote_discriminator", b.view_remote_disc.load(rel));
        j.member("transmit_interval_ms", tc.bfd->desired_min_tx_us / 1000);
        j.member("receive_interval_ms", tc.bfd->required_min_rx_us / 1000);
        j.member("detect_multiplier", tc.bfd->detect_mult);
        j.member("negotiated_tx_interval_us", b.view_tx_interval_ns.load(rel) / 1000);
        j.member("detection_time_us", b.view_detection_ns.load(rel) / 1000);
        uint64_t last_rx = b.last_rx_ns.load(rel);
        if (last_rx != 0)
            j.member("last_rx_ms_ago", (now - std::min(now, last_rx)) / 1'000'000);
        j.member("rx", b.rx.load(rel)).member("tx", b.tx.load(rel));
        j.member("rx_dropped", b.rx_dropped.load(rel));
        j.member("up_transitions", b.up_transitions.load(rel));
        j.member("down_transitions", b.down_transitions.load(rel));
        j.end_object();
    }
    if (tc.health_check) {
        const auto& c = h.check;
        const auto& k = *tc.health_check;
        constexpr auto rel = std::memory_order_relaxed;
        j.key("health_check").begin_object();
        j.member("target", format_ipv4(k.target)).member("source", format_ipv4(k.source));
        j.member("interval_ms", k.interval_ms).member("timeout_ms", k.timeout_ms);
        j.member("failures", k.failures).member("rtt_threshold_ms", k.rtt_threshold_ms);
        j.member("state", (h.down_reasons() & dp::health_check) != 0 ? "failing" : "ok");
        j.member("sent", c.sent.load(rel)).member("replies", c.replies.load(rel));
        j.member("timeouts", c.timeouts.load(rel)).member("slow", c.slow.load(rel));
        j.member("failed_in_row", c.failed_in_row_view.load(rel));
        j.member("last_rtt_us", c.last_rtt_ns.load(rel) / 1000);
        // SLA figures over the last 100 probes (loss, mean RTT, mean |RTT(i) - RTT(i-1)|).
        j.key("sla").begin_object();
        j.member("loss_percent", c.loss_permille.load(rel) / 10.0);
        j.member("latency_us", c.latency_ns.load(rel) / 1000);
        j.member("jitter_us", c.jitter_ns.load(rel) / 1000);
        if (k.sla) {
            j.member("class_met", !c.browned_out.load(rel));
            j.member("brownouts", c.brownouts.load(rel));
            j.member("max_loss_percent", k.sla->max_loss_percent);
            j.member("max_latency_ms", k.sla->max_latency_ms);
            j.member("max_jitter_ms", k.sla->max_jitter_ms);
        }
        j.end_object();
        j.end_object();
    }
    j.end_object();
}

} // namespace

http_response api::get_tunnel_health(const std::string& name) {
    const auto& t = gw_.tbl();
    for (const auto& tc : gw_.writer().running_without_routes().tunnels)
        if (tc.name == name) {
            json_writer j;
            write_health(j, tc, t.find_tunnel(name), gw_.now_ns());
            return json_response(200, j.take());
        }
    return error_response(404, "tunnel '" + name + "': no such tunnel");
}

http_response api::get_tunnels(const std::string& name) {
    const auto& t = gw_.tbl();
    const auto& cfg = gw_.writer().running_without_routes();
    json_writer j;
    auto write_tunnel = [&](const tunnel_config& tc) {
        const dp::tunnel_runtime* rt = t.find_tunnel(tc.name);
        j.begin_object();
        j.member("name", tc.name);
        j.member("port", tc.port);
        j.member("local", format_ipv4(rt ? rt->local : tc.local.value_or(0)));
        j.member("peer", format_ipv4(tc.peer));
        j.member("encap", tc.encap == tunnel_encap::esp ? "esp" : "esp-udp");
        if (tc.encap == tunnel_encap::esp_udp)
            j.member("udp_src_port", tc.udp_src_port).member("udp_dst_port", tc.udp_dst_port);
        j.member("replay_window", tc.replay_window);
        j.member("esn", tc.esn);
        if (rt) {
            j.member("worker", rt->owner);
            j.member("id", rt->id);
            j.member("next_hop", format_ipv4(rt->next_hop));
        }
        j.key("outbound_sa").begin_object();
        j.member("spi", hex_spi(tc.outbound_sa.spi));
        j.member("cipher", cipher_name(tc.outbound_sa.cipher));
        if (rt && rt->outbound)
            j.member("seq", rt->outbound->seq);
        j.end_object();
        j.key("inbound_sas").begin_array();
        for (const auto& sa : tc.inbound_sas) {
            j.begin_object();
            j.member("spi", hex_spi(sa.spi));
            j.member("cipher", cipher_name(sa.cipher));
            for (const auto& pr : retire_)
                if (pr.tunnel == tc.name && pr.spi == sa.spi)
                    j.member("retires_in_ms", pr.due_ms > now_ms_ ? pr.due_ms - now_ms_ : 0);
            j.end_object();
        }
        j.end_array();
        j.key("health");
        write_health(j, tc, rt, gw_.now_ns());
        if (rt) {
            auto s = dp::read_tunnel(*rt, gw_.writer().retired(tc.name));
            j.key("counters").begin_object();
            j.member("tx_packets", s.tx_packets).member("tx_bytes", s.tx_bytes);
            j.member("rx_packets", s.rx_packets).member("rx_bytes", s.rx_bytes);
            j.member("encrypt_errors", s.encrypt_errors).member("seq_exhausted", s.seq_exhausted);
            j.member("decrypt_errors", s.decrypt_errors).member("icv_fail", s.icv_fail);
            j.member("replay", s.replay).member("bad_padding", s.bad_padding);
            j.member("bad_next_header", s.bad_next_header).member("malformed", s.malformed);
            j.end_object();
        }
        j.end_object();
    };
    return one_or_all(
        j, name, "tunnel", "tunnels", cfg.tunnels.size(),
        [&](size_t i) -> const std::string& { return cfg.tunnels[i].name; },
        [&](size_t i) { write_tunnel(cfg.tunnels[i]); });
}

http_response api::put_tunnel(const std::string& name, const std::string& body, bool create) {
    auto tc = parse_tunnel_body(gw_.writer().running_without_routes(), body);
    if (!tc)
        return error_response(400, tc.err().message);
    bool exists = gw_.tbl().find_tunnel(tc.value().name) != nullptr;
    if (create && exists)
        return error_response(409, "tunnel '" + tc.value().name +
                                       "': already exists (PUT /v1/tunnels/<name> replaces)");
    if (!create && tc.value().name != name)
        return error_response(400, "tunnel '" + name + "': the body names tunnel '" +
                                       tc.value().name + "' (a tunnel cannot be renamed)");
    if (!create && !exists)
        return error_response(404, "tunnel '" + name + "': no such tunnel (POST creates)");
    dp::change_set cs;
    std::string tname = tc.value().name;
    cs.put_tunnels.push_back(std::move(tc.value()));
    if (auto f = apply(cs))
        return error_response(status_of(f->code), f->message);
    auto resp = get_tunnels(tname);
    resp.status = create ? 201 : 200;
    return resp;
}

http_response api::delete_tunnel(const std::string& name) {
    dp::change_set cs;
    cs.delete_tunnels.push_back(name);
    if (auto f = apply(cs))
        return error_response(status_of(f->code), f->message);
    std::erase_if(retire_, [&](const pending_retire& r) { return r.tunnel == name; });
    return json_response(200, "{\"deleted\":\"" + name + "\"}");
}

http_response api::rekey(const std::string& name, const std::string& body) {
    const tunnel_config* cur = nullptr;
    for (const auto& t : gw_.writer().running_without_routes().tunnels)
        if (t.name == name)
            cur = &t;
    if (cur == nullptr)
        return error_response(404, "tunnel '" + name + "': no such tunnel");
    // The new SAs are validated as a tunnel object with this tunnel's settings, by the same
    // rules as the file.
    std::string retire_text;
    std::string out_text, in_text;
    try {
        YAML::Node n = YAML::Load(body);
        if (!n.IsMap())
            return error_response(400, "rekey: expected an object {outbound_sa, inbound_sa}");
        for (const auto& kv : n) {
            std::string k = kv.first.as<std::string>();
            YAML::Emitter e;
            e << YAML::Flow << kv.second;
            if (k == "outbound_sa")
                out_text = e.c_str();
            else if (k == "inbound_sa")
                in_text = e.c_str();
            else if (k == "retire_after_ms" && kv.second.IsScalar())
                retire_text = kv.second.Scalar();
            else
                return error_response(400, "rekey: unknown field '" + k.substr(0, 32) + "'");
        }
    } catch (const YAML::Exception& e) {
        return error_response(400, "rekey: malformed body: " + e.msg);
    }
    if (out_text.empty() || in_text.empty())
        return error_response(400, "rekey: both outbound_sa and inbound_sa are required");
    uint64_t retire_ms = options_.rekey_retire_ms;
    if (!retire_text.empty()) {
        auto [p, ec] =
            std::from_chars(retire_text.data(), retire_text.data() + retire_text.size(), retire_ms);
        if (ec != std::errc{} || p != retire_text.data() + retire_text.size() ||
            retire_ms > 3'600'000)
            return error_response(400, "rekey: retire_after_ms must be 0..3600000");
    }
    std::string doc = "{name: " + name + ", port: " + cur->port +
                      ", peer: " + format_ipv4(cur->peer) +
                      (cur->encap == tunnel_encap::esp ? ", encap: esp" : ", encap: esp-udp") +
                      ", outbound_sa: " + out_text + ", inbound_sas: [" + in_text + "]}";
    OPENSSL_cleanse(out_text.data(), out_text.size());
    OPENSSL_cleanse(in_text.data(), in_text.size());
    auto parsed = parse_tunnel_body(gw_.writer().running_without_routes(), doc);
    OPENSSL_cleanse(doc.data(), doc.size());
    if (!parsed) {
        std::string msg = parsed.err().message;
        std::string prefix = "tunnels[0] '" + name + "': ";
        if (msg.rfind(prefix, 0) == 0)
            msg = msg.substr(prefix.size());
        return error_response(400, "tunnel '" + name + "': rekey: " + msg);
    }
    tunnel_config next = *cur;
    const sa_config& new_in = parsed.value().inbound_sas[0];
    for (const auto& sa : cur->inbound_sas)
        if (sa.spi == new_in.spi)
            return error_response(409, "tunnel '" + name + "': rekey: inbound SPI " +
                                           hex_spi(new_in.spi) + " is already this tunnel's");
    if (parsed.value().outbound_sa.spi == cur->outbound_sa.spi)
        return error_response(409, "tunnel '" + name + "': rekey: outbound SPI " +
                                       hex_spi(cur->outbound_sa.spi) + " is the current one");
    // Make before break: the new inbound SA joins the old one, the outbound SA switches; the
    // old inbound SA stays for retire_after_ms (packets the peer sent before it switched). A
    // tunnel keeps at most two: a rekey during a rekey retires the oldest now.
    std::vector<uint32_t> retired_now;
    while (next.inbound_sas.size() >= 2) {
        retired_now.push_back(next.inbound_sas.front().spi);
        next.inbound_sas.erase(next.inbound_sas.begin());
    }
    uint32_t old_in = next.inbound_sas.empty() ? 0 : next.inbound_sas.back().spi;
    next.inbound_sas.push_back(new_in);
    next.outbound_sa = parsed.value().outbound_sa;
    if (retire_ms == 0 && old_in != 0) {
        retired_now.push_back(old_in);
        next.inbound_sas.erase(next.inbound_sas.begin());
        old_in = 0;
    }
    dp::change_set cs;
    cs.put_tunnels.push_back(std::move(next));
    if (auto f = apply(cs))
        return error_response(status_of(f->code), f->message);
    std::erase_if(retire_, [&](const pending_retire& r) {
        return r.tunnel == name &&
               std::find(retired_now.begin(), retired_now.end(), r.spi) != retired_now.end();
    });
    if (old_in != 0)
        retire_.push_back({name, old_in, now_ms_ + retire_ms});
    return get_tunnels(name);
}

http_response api::get_groups(const std::string& name) {
    const auto& t = gw_.tbl();
    const auto& cfg = gw_.writer().running_without_routes();
    json_writer j;
    auto write_group = [&](const group_config& gc) {
        const dp::group_runtime* g = t.find_group(gc.name);
        j.begin_object();
        j.member("name", gc.name);
        // The members new flows take now, as workers pick them (health and hold-down included):
        // one in master/backup, several when equal members share the traffic.
        const uint64_t now = gw_.now_ns();
        const uint32_t mask = g != nullptr ? dp::group_active_mask(t, *g, now) : 0;
        j.key("active").begin_array();
        for (size_t i = 0; i < gc.members.size(); ++i)
            if ((mask & (1u << i)) != 0)
                j.value(gc.members[i].tunnel);
        j.end_array();
        j.member("hold_down_ms", gc.hold_down_ms);
        if (const auto* st = gw_.health().group(gc.name)) {
            j.member("switches", st->switches)
                .member("failovers", st->failovers)
                .member("failbacks", st->failbacks)
                .member("last_change_ms_ago", (now - std::min(now, st->last_change_ns)) / 1'000'000)
                .member("last_cause", st->last_cause);
        }
        j.key("members").begin_array();
        for (size_t i = 0; i < gc.members.size(); ++i) {
            const auto& m = gc.members[i];
            bool up = g != nullptr && i < g->members.size() && t.member_up(g->members[i]);
            bool held = up && !t.member_ready(g->members[i], now, g->hold_down_ns);
            bool brown =
                up && g->members[i].health != nullptr && g->members[i].health->browned_out();
            j.begin_object();
            j.member("tunnel", m.tunnel).member("priority", m.priority).member("weight", m.weight);
            j.member("state", up ? (held ? "hold-down" : brown ? "brown-out" : "up") : "down");
            j.end_object();
        }
        j.end_array();
        j.end_object();
    };
    return one_or_all(
        j, name, "group", "groups", cfg.groups.size(),
        [&](size_t i) -> const std::string& { return cfg.groups[i].name; },
        [&](size_t i) { write_group(cfg.groups[i]); });
}

http_response api::put_group(const std::string& name, const std::string& body, bool create) {
    auto gc = parse_group_body(gw_.writer().running_without_routes(), body);
    if (!gc)
        return error_response(400, gc.err().message);
    bool exists = gw_.tbl().find_group(gc.value().name) != nullptr;
    if (create && exists)
        return error_response(409, "group '" + gc.value().name + "': already exists");
    if (!create && gc.value().name != name)
        return error_response(400, "group '" + name + "': the body names group '" +
                                       gc.value().name + "' (a group cannot be renamed)");
    if (!create && !exists)
        return error_response(404, "group '" + name + "': no such group (POST creates)");
    dp::change_set cs;
    std::string gname = gc.value().name;
    cs.put_groups.push_back(std::move(gc.value()));
    if (auto f = apply(cs))
        return error_response(status_of(f->code), f->message);
    auto resp = get_groups(gname);
    resp.status = create ? 201 : 200;
    return resp;
}

http_response api::delete_group(const std::string& name) {
    dp::change_set cs;
    cs.delete_groups.push_back(name);
    if (auto f = apply(cs))
        return error_response(status_of(f->code), f->message);
    return json_response(200, "{\"deleted\":\"" + name + "\"}");
}

http_response api::get_routes(const http_request& r) {
    const auto& fib = gw_.writer().fib();
    const auto& t = gw_.tbl();
    std::optional<ipv4_prefix> filter;
    std::optional<ipv6_prefix> filter6;
    if (auto p = r.query_value("prefix"); p && p->find(':') != std::string_view::npos) {
        auto pr = parse_ipv6_prefix(*p);
        if (!pr)
            return error_response(400, "prefix " + pr.err().message);
        filter6 = pr.value();
    } else if (p) {
        auto pr = parse_ipv4_prefix(*p);
        if (!pr)
            return error_response(400, "prefix " + pr.err().message);
        filter = pr.value();
    }
    std::string match = std::string(r.query_value("match").value_or("longer"));
    if (match != "longer" && match != "exact" && match != "best")
        return error_response(400, "match must be exact, longer or best");
    std::string origin = std::string(r.query_value("origin").value_or(""));
    if (!origin.empty() && origin != "static" && origin != "learned" && origin != "connected")
        return error_response(400, "origin must be static, learned or connected");
    size_t limit = options_.max_routes_listed;
    if (auto l = r.query_value("limit")) {
        auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), limit);
        if (ec != std::errc{} || p != l->data() + l->size())
            return error_response(400, "limit must be a number");
    }
    json_writer j;
    j.begin_object().key("routes").begin_array();
    size_t total = 0, listed = 0;
    auto emit = [&](const fwd::route4& winner) {
        for (const auto& c : fib.candidates(winner.prefix, winner.len)) {
            if (!origin.empty() && origin != fwd::to_string(c.origin))
                continue;
            ++total;
            if (listed >= limit)
                continue;
            ++listed;
            write_route(j, t, gw_.writer(), c, c.origin == winner.origin);
        }
    };
    // IPv6: the same listing over fib6 (all families when no prefix is given).
    const auto& fib6 = gw_.writer().fib6();
    auto emit6 = [&](const fwd::route6& winner) {
        for (const auto& c : fib6.candidates(winner.prefix, winner.len)) {
            if (!origin.empty() && origin != fwd::to_string(c.origin))
                continue;
            ++total;
            if (listed >= limit)
                continue;
            ++listed;
            write_route6(j, t, gw_.writer(), c, c.origin == winner.origin);
        }
    };
    if (filter6) {
        if (match == "exact") {
            if (auto w = fib6.installed(filter6->addr, filter6->len))
                emit6(*w);
        } else if (match == "longer") {
            fib6.for_each_installed_within(filter6->addr, filter6->len, emit6);
        } else {
            for (int len = filter6->len; len >= 0; --len) {
                auto l = static_cast<uint8_t>(len);
                if (auto w = fib6.installed(fwd::ipv6_mask(filter6->addr, l), l)) {
                    emit6(*w);
                    break;
                }
            }
        }
    } else if (!filter) {
        fib.for_each_installed(emit);
        fib6.for_each_installed(emit6);
    } else if (match == "exact") {
        if (auto w = fib.installed(filter->addr, filter->len))
            emit(*w);
    } else if (match == "longer") {
        fib.for_each_installed_within(filter->addr, filter->len, emit);
    } else { // best: the route a packet to the prefix's address would take
        for (int len = filter->len; len >= 0; --len) {
            auto l = static_cast<uint8_t>(len);
            if (auto w = fib.installed(filter->addr & dp::prefix_mask(l), l)) {
                emit(*w);
                break;
            }
        }
    }
    j.end_array();
    j.member("total", static_cast<uint64_t>(total));
    j.member("truncated", listed < total);
    j.end_object();
    return json_response(200, j.take());
}

http_response api::post_routes(const http_request& r) {
    dp::change_set cs;
    if (is_text_plain(r)) {
        if (auto e = parse_route_batch(r.body, cs))
            return error_response(400, *e);
    } else {
        // One route object or list, or {"add": [...], "delete": ["prefix", ...]}.
        std::string add_text;
        std::vector<std::string> del;
        try {
            YAML::Node n = YAML::Load(r.body);
            if (n.IsMap() && (n["add"] || n["delete"])) {
                for (const auto& kv : n) {
                    std::string k = kv.first.as<std::string>();
                    if (k == "add") {
                        YAML::Emitter e;
                        e << YAML::Flow << kv.second;
                        add_text = e.c_str();
                    } else if (k == "delete" && kv.second.IsSequence()) {
                        for (const auto& p : kv.second)
                            del.push_back(p.IsScalar() ? p.Scalar() : std::string("?"));
                    } else {
                        return error_response(400, "routes: unknown or malformed field '" +
                                                       k.substr(0, 32) + "'");
                    }
                }
            } else {
                add_text = r.body;
            }
        } catch (const YAML::Exception& e) {
            return error_response(400, "routes: malformed body: " + e.msg);
        }
        if (!add_text.empty() && add_text != "[]") {
            auto routes = parse_routes_body_any(gw_.writer().running_without_routes(), add_text);
            if (!routes)
                return error_response(400, routes.err().message);
            cs.put_routes = std::move(routes.value().routes);
            cs.put_routes6 = std::move(routes.value().routes6);
        }
        for (size_t i = 0; i < del.size(); ++i) {
            if (del[i].find(':') != std::string::npos) {
                auto p6 = parse_ipv6_prefix(del[i]);
                if (!p6)
                    return error_response(400, "delete[" + std::to_string(i) + "]: prefix " +
                                                   p6.err().message);
                cs.delete_routes6.push_back(p6.value());
                continue;
            }
            auto p = parse_ipv4_prefix(del[i]);
            if (!p)
                return error_response(400, "delete[" + std::to_string(i) + "]: prefix " +
                                               p.err().message);
            cs.delete_routes.push_back(p.value());
        }
    }
    if (cs.empty())
        return error_response(400, "routes: nothing to add or delete");
    size_t added = cs.put_routes.size() + cs.put_routes6.size(),
           deleted = cs.delete_routes.size() + cs.delete_routes6.size();
    if (auto f = apply(cs))
        return error_response(status_of(f->code), f->message);
    json_writer j;
    j.begin_object().member("added", static_cast<uint64_t>(added));
    j.member("deleted", static_cast<uint64_t>(deleted)).end_object();
    return json_response(200, j.take());
}

http_response api::delete_route(const http_request& r) {
    auto p = r.query_value("prefix");
    if (!p)
        return error_response(400, "DELETE /v1/routes needs ?prefix=a.b.c.d/len");
    if (p->find(':') != std::string_view::npos) {
        auto p6 = parse_ipv6_prefix(*p);
        if (!p6)
            return error_response(400, "prefix " + p6.err().message);
        dp::change_set cs6;
        cs6.delete_routes6.push_back(p6.value());
        if (auto f = apply(cs6))
            return error_response(status_of(f->code), f->message);
        return json_response(200, "{\"deleted\":\"" + format_ipv6_prefix(p6.value()) + "\"}");
    }
    auto pr = parse_ipv4_prefix(*p);
    if (!pr)
        return error_response(400, "prefix " + pr.err().message);
    dp::change_set cs;
    cs.delete_routes.push_back(pr.value());
    if (auto f = apply(cs))
        return error_response(status_of(f->code), f->message);
    return json_response(200, "{\"deleted\":\"" + format_ipv4_prefix(pr.value()) + "\"}");
}

http_response api::get_onprem() {
    const auto& t = gw_.tbl();
    json_writer j;
    j.begin_object().key("prefixes").begin_array();
    for (const auto& p : t.ports)
        if (p.role == port_role::lan)
            j.begin_object()
                .member("prefix",
                        fwd::format_prefix(p.address & dp::prefix_mask(p.prefix_len), p.prefix_len))
                .member("origin", "connected")
                .member("port", p.name)
                .end_object();
    gw_.writer().for_each_static([&](const route_config& r) {
        if (r.via == route_via::lan_gateway)
            j.begin_object()
                .member("prefix", format_ipv4_prefix(r.prefix))
                .member("origin", "static")
                .member("gateway", format_ipv4(r.gateway))
                .end_object();
    });
    // Learned routes in address order (the store is hashed).
    std::vector<const dp::learned_route4*> learned;
    learned.reserve(gw_.writer().learned_count());
    gw_.writer().for_each_learned([&](const dp::learned_route4& l) {
        if (!l.gateways.empty()) // blackholes are not reachable prefixes
            learned.push_back(&l);
    });
    std::sort(learned.begin(), learned.end(), [](const auto* a, const auto* b) {
        return std::pair(a->prefix.addr, a->prefix.len) < std::pair(b->prefix.addr, b->prefix.len);
    });
    for (const auto* l : learned)
        j.begin_object()
            .member("prefix", format_ipv4_prefix(l->prefix))
            .member("origin", "learned")
            .member("gateway", format_ipv4(l->gateways.front()))
            .end_object();
    for (const auto& p : t.ports)
        if (p.role == port_role::lan && p.ipv6)
            j.begin_object()
                .member("prefix", format_ipv6_prefix(
                                      {fwd::ipv6_mask(p.address6, p.prefix6_len), p.prefix6_len}))
                .member("origin", "connected")
                .member("port", p.name)
                .end_object();
    gw_.writer().for_each_static6([&](const route6_config& r) {
        if (r.via == route_via::lan_gateway)
            j.begin_object()
                .member("prefix", format_ipv6_prefix(r.prefix))
                .member("origin", "static")
                .member("gateway", format_ipv6(r.gateway))
                .end_object();
    });
    for (const auto& [key, l] : gw_.writer().learned6()) {
        if (l.gateways.empty())
            continue;
        j.begin_object()
            .member("prefix", format_ipv6_prefix(l.prefix))
            .member("origin", "learned")
            .member("gateway", format_ipv6(l.gateways.front()))
            .end_object();
    }
    j.end_array().end_object();
    return json_response(200, j.take());
}

http_response api::get_neighbours() {
    const auto& t = gw_.tbl();
    json_writer j;
    j.begin_object().key("neighbours").begin_array();
    gw_.neighbours().for_each([&](const fwd::neighbour_entry& e) {
        auto v = e.read();
        char mac[18];
        std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", v.mac[0], v.mac[1],
                      v.mac[2], v.mac[3], v.mac[4], v.mac[5]);
        j.begin_object();
        j.member("port", e.port() < t.ports.size() ? t.ports[e.port()].name : std::string("?"));
        j.member("address", format_ipv4(e.ip()));
        j.member("mac", std::string_view(mac));
        j.member("state", fwd::to_string(v.state));
        j.member("family", "ipv4");
        j.end_object();
    });
    gw_.neighbours6().for_each([&](const fwd::neighbour6_entry& e) {
        auto v = e.read();
        char mac[18];
        std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", v.mac[0], v.mac[1],
                      v.mac[2], v.mac[3], v.mac[4], v.mac[5]);
        j.begin_object();
        j.member("port", e.port() < t.ports.size() ? t.ports[e.port()].name : std::string("?"));
        j.member("address", fwd::format_ipv6(e.ip()));
        j.member("mac", std::string_view(mac));
        j.member("state", fwd::to_string(v.state));
        j.member("family", "ipv6");
        j.end_object();
    });
    j.end_array().end_object();
    return json_response(200, j.take());
}

http_response api::post_neighbours(const std::string& body) {
    auto n = parse_neighbours_body(gw_.writer().running_without_routes(), body);
    if (!n)
        return error_response(400, n.err().message);
    dp::change_set cs;
    cs.put_neighbours = std::move(n.value());
    if (auto f = apply(cs))
        return error_response(status_of(f->code), f->message);
    return get_neighbours();
}

http_response api::get_counters() {
    auto s = dp::sum_counters(gw_);
    const auto& sp = gw_.slow_path();
    json_writer j;
    j.begin_object();
    j.key("totals").begin_object();
    j.member("rx", s.rx).member("tx", s.tx).member("punted", s.punted);
    j.member("injected", s.injected).member("handoff_in", s.handoff_in);
    j.member("handoff_out", s.handoff_out).member("drops", s.drops);
    j.member("in_flight", s.in_flight());
    j.end_object();
    j.key("drops").begin_object();
    for (unsigned i = 0; i < dp::n_drop_reasons; ++i)
        j.member(dp::drop_infos[i].name, s.by_reason[i]);
    j.end_object();
    j.key("slow_path").begin_object();
    j.member("punted_in", sp.punted_in).member("arp_in", sp.arp_in);
    j.member("arp_replies_sent", sp.arp_replies_sent)
        .member("arp_requests_sent", sp.arp_requests_sent);
    j.member("held", sp.held).member("held_sent", sp.held_sent);
    j.member("icmp_errors_sent", sp.icmp_errors_sent);
    j.member("icmp_errors_suppressed", sp.icmp_errors_suppressed);
    j.end_object();
    j.key("workers").begin_array();
    for (const auto& w : gw_.workers()) {
        const auto& c = w->counters;
        j.begin_object();
        j.member("index", w->index).member("lcore", w->lcore);
        j.member("rx", c.rx).member("tx", c.tx).member("loops", c.loops);
        j.member("busy_loops", c.busy_loops).member("busy_cycles", c.busy_cycles);
        j.member("busy_packets", c.busy_packets);
        j.member("cycles_per_packet", c.busy_packets ? c.busy_cycles / c.busy_packets : 0);
        j.end_object();
    }
    j.end_array();
    j.end_object();
    return json_response(200, j.take());
}

http_response api::get_config() {
    http_response r;
    r.content_type = "application/yaml";
    r.body = dump_config(gw_.writer().running(), false);
    return r;
}

http_response api::put_config(const http_request& r) {
    auto target = load_config_string(r.body, "body");
    if (!target)
        return error_response(400, target.err().message);
    dp::change_set cs;
    std::vector<std::string> summary;
    if (auto e = diff_config(gw_.writer().running(), target.value(), cs, summary))
        return error_response(409, *e);
    bool dry = r.query_value("dry_run").value_or("0") != "0";
    if (!dry)
        if (auto f = apply(cs))
            return error_response(status_of(f->code), f->message);
    json_writer j;
    j.begin_object();
    j.member("applied", !dry);
    j.member("changes", static_cast<uint64_t>(summary.size()));
    j.key("summary").begin_array();
    for (const auto& line : summary)
        j.value(line);
    j.end_array().end_object();
    return json_response(200, j.take());
}

} // namespace sagd::shim
