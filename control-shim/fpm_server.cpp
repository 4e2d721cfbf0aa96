#include "control-shim/fpm_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "forwarding/packet6.hpp"

namespace sagd::shim {

namespace {

ipv4_addr v4(const ip_bytes& b) {
    return (ipv4_addr{b[0]} << 24) | (ipv4_addr{b[1]} << 16) | (ipv4_addr{b[2]} << 8) | b[3];
}

bool on_lan(const dp::tables& t, ipv4_addr a) {
    for (const auto& p : t.ports)
        if (p.role == port_role::lan &&
            (a & dp::prefix_mask(p.prefix_len)) == (p.address & dp::prefix_mask(p.prefix_len)))
            return true;
    return false;
}

// An IPv6 LAN router: on a LAN port's IPv6 prefix, or link-local with one IPv6 LAN port.
bool on_lan6(const dp::tables& t, const ip_bytes& a) {
    size_t v6_lans = 0;
    for (const auto& p : t.ports) {
        if (p.role != port_role::lan || !p.ipv6)
            continue;
        ++v6_lans;
        if (fwd::ipv6_in_prefix(a, p.address6, p.prefix6_len))
            return true;
    }
    return fwd::ipv6_is_link_local(a) && v6_lans == 1;
}

} // namespace

// IPv6 routes of a batch: the same rules as IPv4 (distance, blackholes, routes without a LAN
// router counted as unresolved), into the change's IPv6 half.
void fpm_server::stage_ipv6(const route_key& k, const dp::tables& t, dp::change_set& cs) {
    fwd::prefix6_key key{k.prefix, k.prefix_len};
    const learned_route* r = store_.find(k);
    bool want = r != nullptr;
    dp::learned_route6 l;
    if (want) {
        l.prefix = {k.prefix, k.prefix_len};
        l.distance = options_.distance;
        if (!r->route.blackhole) {
            for (const auto& h : r->route.next_hops)
                if (h.has_gateway && on_lan6(t, h.gateway))
                    l.gateways.push_back(h.gateway);
            if (l.gateways.empty()) {
                ++counters_.unresolved;
                want = false;
            }
        }
    }
    // What the FIB holds now (only this server installs learned routes).
    const auto& installed = gw_.writer().learned6();
    auto it = installed.find(key);
    if (want) {
        if (it != installed.end() && it->second.gateways == l.gateways &&
            it->second.distance == l.distance)
            return;
        cs.put_learned6.push_back(std::move(l));
    } else if (it != installed.end()) {
        cs.delete_learned6.push_back(it->second.prefix);
    }
}

fwd::result<std::unique_ptr<fpm_server>> fpm_server::create(const fpm_server_options& o,
                                                            const dp::gateway& gw, apply_fn apply) {
    std::unique_ptr<fpm_server> s(new fpm_server(o, gw, std::move(apply)));
    s->store_.reserve_ipv4(gw.writer().limits().ipv4_routes);
    std::string where = fwd::format_ipv4(o.address) + ":" + std::to_string(o.port);
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fwd::error{"fpm: socket: " + std::string(std::strerror(errno))};
    s->listen_fd_ = fd;
    int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(o.port);
    sa.sin_addr.s_addr = htonl(o.address);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        return fwd::error{"fpm: cannot listen on " + where + ": " + std::strerror(errno)};
    if (::listen(fd, 4) != 0)
        return fwd::error{"fpm: listen " + where + ": " + std::strerror(errno)};
    socklen_t len = sizeof sa;
    (void)::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    s->port_ = ntohs(sa.sin_port);
    return s;
}

fpm_server::~fpm_server() {
    if (conn_fd_ >= 0)
        ::close(conn_fd_);
    if (listen_fd_ >= 0)
        ::close(listen_fd_);
}

void fpm_server::close_session(const char* why) {
    if (conn_fd_ < 0)
        return;
    std::fprintf(stderr,
                 "sagd: fpm: session with %s closed (%s); learned routes kept for %llu ms\n",
                 peer_.c_str(), why, static_cast<unsigned long long>(options_.grace_ms));
    ::close(conn_fd_);
    conn_fd_ = -1;
    framer_.reset();
    // What this session sent before it ended is applied first, then marked stale with the rest.
    store_.apply(decoded_);
    decoded_.clear();
    store_.session_lost();
    stale_since_ms_ = now_ms_;
}

bool fpm_server::poll(uint64_t now_ms) {
    now_ms_ = now_ms;
    bool did = false;
    // A new connection replaces the old one: zebra reconnects after a restart and re-sends
    // its whole table.
    // One poll(2) tells whether to accept or read: accept4() on an idle listener is not free.
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {conn_fd_, POLLIN, 0}};
    if (::poll(fds, conn_fd_ >= 0 ? 2 : 1, 0) <= 0 && !stale_since_ms_ && touched_.empty())
        return false;
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    int fd = (fds[0].revents & POLLIN) == 0
                 ? -1
                 : ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &plen,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        if (conn_fd_ >= 0)
            close_session("replaced by a new connection");
        conn_fd_ = fd;
        char buf[INET_ADDRSTRLEN] = "?";
        ::inet_ntop(AF_INET, &peer.sin_addr, buf, sizeof buf);
        peer_ = std::string(buf) + ":" + std::to_string(ntohs(peer.sin_port));
        ++counters_.sessions;
        std::fprintf(stderr, "sagd: fpm: zebra connected from %s\n", peer_.c_str());
        did = true;
    }
    size_t messages = 0, bytes = 0;
    while (conn_fd_ >= 0 && messages < options_.max_messages_per_poll) {
        uint8_t buf[65536];
        ssize_t n = ::recv(conn_fd_, buf, sizeof buf, 0);
        if (n == 0) {
            close_session("peer closed");
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            close_session(std::strerror(errno));
            break;
        }
        bytes += static_cast<size_t>(n);
        if (auto st = framer_.feed(std::span<const uint8_t>(buf, static_cast<size_t>(n))); !st) {
            ++counters_.framing_errors;
            std::fprintf(stderr, "sagd: fpm: %s\n", st.err().message.c_str());
            close_session("bad stream");
            break;
        }
        for (;;) {
            auto next = framer_.next();
            if (!next) {
                ++counters_.framing_errors;
                std::fprintf(stderr, "sagd: fpm: %s\n", next.err().message.c_str());
                close_session("bad stream");
                break;
            }
            if (!next.value())
                break;
            ++counters_.messages;
            ++messages;
            const size_t first = decoded_.size();
            if (!decode_fpm_message(*next.value(), store_.options(), decoded_)) {
                ++counters_.decode_errors;
                store_.count_error();
                continue; // all or nothing: the message is refused, the session goes on
            }
            for (size_t i = first; i < decoded_.size(); ++i)
                if (decoded_[i].kind == fpm_item_kind::route)
                    touched_.push_back(key_of(decoded_[i].route));
        }
        store_.apply(decoded_); // all of this read at once: the store prefetches ahead
        decoded_.clear();
    }
    // More may be waiting: poll again at once rather than idle.
    did |= messages >= options_.max_messages_per_poll;
    if (!touched_.empty()) {
        if (!pending_since_ms_)
            pending_since_ms_ = now_ms;
        if (bytes == 0 || conn_fd_ < 0 || touched_.size() >= options_.install_batch ||
            now_ms - *pending_since_ms_ >= options_.install_delay_ms) {
            install_touched();
            did = true;
        }
    }
    // After the grace time, withdraw what a reconnecting zebra did not send again.
    if (stale_since_ms_ && now_ms - *stale_since_ms_ >= options_.grace_ms) {
        stale_since_ms_.reset();
        store_.for_each([&](const route_key& k, const learned_route& r) {
            if (r.stale)
                touched_.push_back(k);
        });
        size_t n = store_.sweep_stale();
        counters_.swept += n;
        if (n != 0)
            std::fprintf(stderr, "sagd: fpm: grace time over: %zu stale learned routes withdrawn\n",
                         n);
        install_touched();
        did = true;
    }
    return did;
}

void fpm_server::install_touched() {
    const dp::tables& t = gw_.tbl();
    const dp::table_writer& w = gw_.writer();
    // One decision per prefix (an update is a delete and an add of the same key).
    // Sorted by (family, prefix, length) compared as integers, not byte by byte.
    auto rank = [](const route_key& k) {
        uint64_t hi, lo;
        std::memcpy(&hi, k.prefix.data(), 8);
        std::memcpy(&lo, k.prefix.data() + 8, 8);
        return std::tuple(k.family, __builtin_bswap64(hi), __builtin_bswap64(lo), k.prefix_len);
    };
    std::sort(touched_.begin(), touched_.end(),
              [&](const route_key& a, const route_key& b) { return rank(a) < rank(b); });
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    dp::change_set cs;
    cs.put_learned.reserve(touched_.size()); // one allocation, no element moves
    for (size_t i = 0; i < touched_.size(); ++i) {
        if (i + 8 < touched_.size()) { // the lookups below miss the cache: overlap them
            const route_key& q = touched_[i + 8];
            store_.prefetch(q);
            if (q.family == ip_family::ipv4)
                w.prefetch_learned({v4(q.prefix), q.prefix_len});
        }
        const route_key& k = touched_[i];
        if (k.family != ip_family::ipv4) {
            stage_ipv6(k, t, cs);
            continue;
        }
        const ipv4_prefix prefix{v4(k.prefix), k.prefix_len};
        const learned_route* r = store_.find(k);
        bool want = r != nullptr;
        dp::learned_route4 l;
        if (want) {
            l.prefix = prefix;
            l.distance = options_.distance;
            if (!r->route.blackhole) {
                for (const auto& h : r->route.next_hops)
                    if (h.has_gateway && on_lan(t, v4(h.gateway)))
                        l.gateways.push_back(v4(h.gateway));
                if (l.gateways.empty()) {
                    ++counters_.unresolved; // e.g. zebra's own connected routes
                    want = false;
                }
            }
        }
        // What the FIB holds now (only this server installs learned routes).
        const dp::learned_route4* installed = w.find_learned(prefix);
        if (want) {
            if (installed != nullptr && installed->gateways == l.gateways &&
                installed->distance == l.distance)
                continue;
            cs.put_learned.push_back(std::move(l));
        } else if (installed != nullptr) {
            cs.delete_learned.push_back(prefix);
        }
    }
    touched_.clear();
    pending_since_ms_.reset();
    if (cs.empty())
        return;
    if (!apply_(cs)) {
        ++counters_.installed_changes;
        return;
    }
    // The batch as one failed (a table full, most likely): install what fits, one by one.
    for (const auto& l : cs.put_learned) {
        dp::change_set one;
        one.put_learned.push_back(l);
        if (auto f = apply_(one)) {
            ++counters_.install_failures;
            std::fprintf(stderr, "sagd: fpm: %s\n", f->message.c_str());
        }
    }
    for (const auto& p : cs.delete_learned) {
        dp::change_set one;
        one.delete_learned.push_back(p);
        (void)apply_(one);
    }
    for (const auto& l : cs.put_learned6) {
        dp::change_set one;
        one.put_learned6.push_back(l);
        if (auto f = apply_(one)) {
            ++counters_.install_failures;
            std::fprintf(stderr, "sagd: fpm: %s\n", f->message.c_str());
        }
    }
    for (const auto& p : cs.delete_learned6) {
        dp::change_set one;
        one.delete_learned6.push_back(p);
        (void)apply_(one);
    }
    ++counters_.installed_changes;
}

void fpm_server::write_status(json_writer& j) const {
    const size_t v4_routes = store_.size(ip_family::ipv4), v6_routes = store_.size(ip_family::ipv6);
    j.begin_object();
    j.member("state", connected() ? "connected" : "listening");
    j.member("listen", fwd::format_ipv4(options_.address) + ":" + std::to_string(port_));
    j.member("peer", connected() ? peer_ : std::string{});
    j.member("ipv4_routes", static_cast<uint64_t>(v4_routes));
    j.member("ipv6_routes", static_cast<uint64_t>(v6_routes));
    j.member("installed", static_cast<uint64_t>(installed_count()));
    j.member("installed_ipv6", static_cast<uint64_t>(installed6_count()));
    j.member("stale", static_cast<uint64_t>(store_.stale_count()));
    j.member("sessions", counters_.sessions);
    j.member("messages", counters_.messages);
    j.member("decode_errors", counters_.decode_errors);
    j.member("framing_errors", counters_.framing_errors);
    j.member("install_failures", counters_.install_failures);
    j.member("unresolved", counters_.unresolved);
    j.member("swept", counters_.swept);
    const auto& c = store_.counters();
    j.member("adds", c.adds).member("deletes", c.deletes).member("unsupported", c.unsupported);
    j.member("other_table", c.other_table);
    j.end_object();
}

} // namespace sagd::shim
