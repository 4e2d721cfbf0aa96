#include "forwarding/fib6.hpp"

#include <rte_errno.h>

#include <algorithm>

namespace sagd::fwd {

namespace {

status check_prefix(const ipv6_bytes& prefix, uint8_t len) {
    if (len > 128)
        return error{errc::invalid_argument, "route " + format_ipv6(prefix) + "/" +
                                                 std::to_string(len) +
                                                 ": prefix length above 128"};
    if (ipv6_mask(prefix, len) != prefix)
        return error{errc::invalid_argument, "route " + format_prefix6(prefix, len) +
                                                 ": host bits set (network is " +
                                                 format_prefix6(ipv6_mask(prefix, len), len) +
                                                 ")"};
    return ok();
}

bool better(const route6& a, const route6& b) {
    if (a.distance != b.distance)
        return a.distance < b.distance;
    return a.origin < b.origin;
}

} // namespace

result<std::unique_ptr<fib6>> fib6::create(const fib6_config& cfg) {
    if (cfg.max_routes == 0 || cfg.max_routes > (1u << 24))
        return error{errc::invalid_argument,
                     "fib '" + cfg.name + "': max_routes must be 1..16777216"};
    if (cfg.tbl8_groups == 0 || cfg.tbl8_groups > (1u << 24))
        return error{errc::invalid_argument,
                     "fib '" + cfg.name + "': tbl8_groups must be 1..16777216"};
    static std::atomic<uint32_t> seq{0};
    std::string name = cfg.name.substr(0, 40) + "_" + std::to_string(seq.fetch_add(1));
    rte_fib6_conf conf{};
    conf.type = RTE_FIB6_TRIE;
    conf.default_nh = no_route;
    conf.max_routes = static_cast<int>(cfg.max_routes);
    conf.rib_ext_sz = 0;
    conf.trie.nh_sz = RTE_FIB6_TRIE_4B;
    conf.trie.num_tbl8 = cfg.tbl8_groups;
    rte_fib6* f = rte_fib6_create(name.c_str(), cfg.socket_id, &conf);
    rte_fib6* g = nullptr;
    if (f != nullptr && cfg.double_buffered) {
        g = rte_fib6_create((name + "b").c_str(), cfg.socket_id, &conf);
        if (g == nullptr) {
            int e = rte_errno;
            rte_fib6_free(f);
            f = nullptr;
            rte_errno = e;
        }
    }
    if (f == nullptr)
        return error{errc::dpdk_error,
                     "fib '" + cfg.name + "': rte_fib6_create failed: " + rte_strerror(rte_errno) +
                         " (max_routes " + std::to_string(cfg.max_routes) + ", tbl8 groups " +
                         std::to_string(cfg.tbl8_groups) + ")"};
    return std::unique_ptr<fib6>(new fib6(f, g, cfg.name, cfg.max_routes));
}

fib6::~fib6() {
    rte_fib6_free(fibs_[0]);
    rte_fib6_free(fibs_[1]);
}

int fib6::write_state(rte_fib6* f, const prefix6_key& key) {
    auto it = table_.find(key);
    if (it != table_.end())
        return rte_fib6_add(f, key.addr.data(), key.len, it->second.front().next_hop_id);
    int rc = rte_fib6_delete(f, key.addr.data(), key.len);
    return rc == -ENOENT ? 0 : rc;
}

void fib6::remember(const prefix6_key& key) {
    if (undo_.empty())
        undo_candidates_ = candidates_;
    auto it = table_.find(key);
    if (it == table_.end())
        undo_.emplace_back(key, std::nullopt);
    else
        undo_.emplace_back(key, it->second);
}

rte_fib6* fib6::publish() noexcept {
    if (fibs_[1] == nullptr) {
        undo_.clear();
        return fibs_[0];
    }
    if (undo_.empty())
        return active();
    to_sync_.reserve(to_sync_.size() + undo_.size());
    for (const auto& [key, prev] : undo_)
        to_sync_.push_back(key);
    undo_.clear();
    active_.store(active_.load(std::memory_order_relaxed) ^ 1, std::memory_order_release);
    return active();
}

void fib6::sync() {
    rte_fib6* f = writable();
    std::sort(to_sync_.begin(), to_sync_.end());
    to_sync_.erase(std::unique(to_sync_.begin(), to_sync_.end()), to_sync_.end());
    for (const auto& key : to_sync_)
        (void)write_state(f, key); // the same writes already succeeded on the other copy
    to_sync_.clear();
}

void fib6::rollback() {
    if (undo_.empty())
        return;
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
        if (it->second)
            table_[it->first] = std::move(*it->second);
        else
            table_.erase(it->first);
    }
    candidates_ = undo_candidates_;
    rte_fib6* f = writable();
    for (const auto& [key, prev] : undo_)
        (void)write_state(f, key);
    undo_.clear();
}

status fib6::install(rte_fib6* f, const route6& r) {
    int rc = rte_fib6_add(f, r.prefix.data(), r.len, r.next_hop_id);
    if (rc == 0)
        return ok();
    if (rc == -ENOSPC)
        return error{errc::table_full, "fib '" + name_ + "': route " +
                                           format_prefix6(r.prefix, r.len) +
                                           ": table full (no free tbl8 group or RIB node)"};
    return error{errc::dpdk_error, "fib '" + name_ + "': route " +
                                       format_prefix6(r.prefix, r.len) +
                                       ": rte_fib6_add failed: " + rte_strerror(-rc)};
}

status fib6::add(const ipv6_bytes& prefix, uint8_t len, route_origin origin, uint32_t next_hop_id,
                 std::optional<uint8_t> distance) {
    if (auto s = check_prefix(prefix, len); !s)
        return s;
    if (next_hop_id == no_route_id || next_hop_id >= (1u << 30))
        return error{errc::invalid_argument, "route " + format_prefix6(prefix, len) +
                                                 ": invalid next hop id " +
                                                 std::to_string(next_hop_id)};
    if (!to_sync_.empty())
        return error{errc::invalid_argument,
                     "fib '" + name_ + "': changed after publish() without sync()"};
    route6 r{prefix, len, origin, distance.value_or(default_distance(origin)), next_hop_id};
    prefix6_key key{prefix, len};
    auto it = table_.find(key);
    if (it == table_.end()) {
        if (table_.size() >= max_routes_)
            return error{errc::table_full, "fib '" + name_ + "': route " +
                                               format_prefix6(prefix, len) + ": table full (" +
                                               std::to_string(max_routes_) + " prefixes)"};
        if (auto s = install(writable(), r); !s)
            return s;
        remember(key);
        table_.emplace(key, std::vector<route6>{r});
        ++candidates_;
        return ok();
    }
    std::vector<route6> list = it->second;
    auto same =
        std::find_if(list.begin(), list.end(), [&](const route6& c) { return c.origin == origin; });
    const bool replaced = same != list.end();
    if (replaced)
        *same = r;
    else
        list.push_back(r);
    std::stable_sort(list.begin(), list.end(), better);
    if (list.front().next_hop_id != it->second.front().next_hop_id)
        if (auto s = install(writable(), list.front()); !s)
            return s;
    remember(key);
    if (!replaced)
        ++candidates_;
    it->second = std::move(list);
    return ok();
}

status fib6::remove(const ipv6_bytes& prefix, uint8_t len, route_origin origin) {
    if (auto s = check_prefix(prefix, len); !s)
        return s;
    if (!to_sync_.empty())
        return error{errc::invalid_argument,
                     "fib '" + name_ + "': changed after publish() without sync()"};
    const prefix6_key key{prefix, len};
    auto it = table_.find(key);
    auto not_found = [&] {
        return error{errc::not_found, "route " + format_prefix6(prefix, len) + " (" +
                                          to_string(origin) + "): not found"};
    };
    if (it == table_.end())
        return not_found();
    auto& list = it->second;
    auto same =
        std::find_if(list.begin(), list.end(), [&](const route6& c) { return c.origin == origin; });
    if (same == list.end())
        return not_found();
    if (list.size() == 1) {
        int rc = rte_fib6_delete(writable(), prefix.data(), len);
        if (rc != 0)
            return error{errc::dpdk_error, "fib '" + name_ + "': route " +
                                               format_prefix6(prefix, len) +
                                               ": rte_fib6_delete failed: " + rte_strerror(-rc)};
        remember(key);
        table_.erase(it);
        --candidates_;
        return ok();
    }
    bool was_winner = same == list.begin();
    if (was_winner && list[1].next_hop_id != same->next_hop_id)
        if (auto s = install(writable(), list[1]); !s)
            return s;
    remember(key);
    list.erase(same);
    --candidates_;
    return ok();
}

std::optional<route6> fib6::installed(const ipv6_bytes& prefix, uint8_t len) const {
    auto it = table_.find(prefix6_key{prefix, len});
    if (it == table_.end())
        return std::nullopt;
    return it->second.front();
}

std::vector<route6> fib6::candidates(const ipv6_bytes& prefix, uint8_t len) const {
    auto it = table_.find(prefix6_key{prefix, len});
    if (it == table_.end())
        return {};
    return it->second;
}

} // namespace sagd::fwd
