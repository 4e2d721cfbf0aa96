#include "forwarding/fib4.hpp"

#include <rte_errno.h>
#include <rte_fib.h>
#include <rte_memory.h>

#include <algorithm>
#include <atomic>
#include <cstdio>

namespace sagd::fwd {

const char* to_string(route_origin o) noexcept {
    switch (o) {
    case route_origin::connected:
        return "connected";
    case route_origin::static_route:
        return "static";
    case route_origin::learned:
        return "learned";
    }
    return "?";
}

std::string format_ipv4(uint32_t a) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff,
                  a & 0xff);
    return buf;
}

std::string format_prefix(uint32_t prefix, uint8_t len) {
    return format_ipv4(prefix) + "/" + std::to_string(len);
}

namespace {

uint64_t key_of(uint32_t prefix, uint8_t len) {
    return (uint64_t{prefix} << 8) | len;
}

status check_prefix(uint32_t prefix, uint8_t len) {
    if (len > 32)
        return error{errc::invalid_argument, "route " + format_ipv4(prefix) + "/" +
                                                 std::to_string(len) + ": prefix length above 32"};
    uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
    if ((prefix & ~mask) != 0)
        return error{errc::invalid_argument, "route " + format_prefix(prefix, len) +
                                                 ": host bits set (network is " +
                                                 format_prefix(prefix & mask, len) + ")"};
    return ok();
}

// Winner first: lowest distance, then origin order (connected, static, learned).
bool better(const route4& a, const route4& b) {
    if (a.distance != b.distance)
        return a.distance < b.distance;
    return a.origin < b.origin;
}

} // namespace

result<std::unique_ptr<fib4>> fib4::create(const fib4_config& cfg) {
    if (cfg.max_routes == 0 || cfg.max_routes > (1u << 26))
        return error{errc::invalid_argument,
                     "fib '" + cfg.name + "': max_routes must be 1..67108864"};
    if (cfg.tbl8_groups == 0 || cfg.tbl8_groups > (1u << 24))
        return error{errc::invalid_argument,
                     "fib '" + cfg.name + "': tbl8_groups must be 1..16777216"};
    static std::atomic<uint32_t> seq{0};
    // rte_fib names are global to the process (and limited to RTE_FIB_NAMESIZE).
    std::string name = cfg.name.substr(0, 40) + "_" + std::to_string(seq.fetch_add(1));
    rte_fib_conf conf{};
    conf.type = RTE_FIB_DIR24_8;
    conf.default_nh = no_route;
    // rte_fib sizes its RIB at twice max_routes (branch nodes) by itself.
    conf.max_routes = static_cast<int>(cfg.max_routes);
    conf.rib_ext_sz = 0;
    conf.dir24_8.nh_sz = RTE_FIB_DIR24_8_4B;
    conf.dir24_8.num_tbl8 = cfg.tbl8_groups;
    rte_fib* f = rte_fib_create(name.c_str(), cfg.socket_id, &conf);
    rte_fib* g = nullptr;
    if (f != nullptr && cfg.double_buffered) {
        g = rte_fib_create((name + "b").c_str(), cfg.socket_id, &conf);
        if (g == nullptr) {
            int e = rte_errno;
            rte_fib_free(f);
            f = nullptr;
            rte_errno = e;
        }
    }
    if (f == nullptr)
        return error{errc::dpdk_error,
                     "fib '" + cfg.name + "': rte_fib_create failed: " + rte_strerror(rte_errno) +
                         " (max_routes " + std::to_string(cfg.max_routes) + ", tbl8 groups " +
                         std::to_string(cfg.tbl8_groups) + ")"};
    return std::unique_ptr<fib4>(new fib4(f, g, cfg.name, cfg.max_routes));
}

fib4::~fib4() {
    rte_fib_free(fibs_[0]);
    rte_fib_free(fibs_[1]);
}

// DPDK 22.11 dir24_8 modify_fib() bug (seen on this build): when a prefix that ends at
// 255.255.255.255 (0/0, 128.0.0.0/1, 254.0.0.0/7, ...) is added, changed or deleted while its
// more-specific routes reach the top of the address space (e.g. /0 over 0/1 + 128/1), the
// range end wraps to 0 and it rewrites the whole tbl24 with the new next hop, losing every
// other route and leaking tbl8 groups. Prefixes ending at the top form one chain (one per
// length); a change to a chain member is safe when no deeper member is in the FIB. So: take
// the deeper members out (deepest first), apply the change, put them back (shallowest
// first). Workers may briefly see the covering route for the top-most addresses; at most 32
// extra operations, and only for top prefixes. Regression test: fib4.top_of_address_space_chain.
namespace {
uint32_t top_prefix(uint8_t len) {
    return len == 0 ? 0 : ~uint32_t{0} << (32 - len);
}
} // namespace

template <typename Op> int fib4::around_top_chain(rte_fib* f, uint32_t prefix, uint8_t len, Op op) {
    if (len == 32 || prefix != top_prefix(len))
        return op();
    struct member {
        uint8_t len;
        uint32_t nh;
    };
    member deeper[32];
    unsigned n = 0;
    for (unsigned l = len + 1u; l <= 32; ++l) {
        auto it = table_.find(key_of(top_prefix(static_cast<uint8_t>(l)), static_cast<uint8_t>(l)));
        if (it != table_.end())
            deeper[n++] = {static_cast<uint8_t>(l), it->second.front().next_hop_id};
    }
    if (n == 0)
        return op();
    for (unsigned i = n; i-- > 0;)
        (void)rte_fib_delete(f, top_prefix(deeper[i].len), deeper[i].len);
    int rc = op();
    for (unsigned i = 0; i < n; ++i)
        (void)rte_fib_add(f, top_prefix(deeper[i].len), deeper[i].len, deeper[i].nh);
    return rc;
}

int fib4::fib_add(rte_fib* f, uint32_t prefix, uint8_t len, uint64_t nh) {
    return around_top_chain(f, prefix, len, [&] { return rte_fib_add(f, prefix, len, nh); });
}

int fib4::fib_delete(rte_fib* f, uint32_t prefix, uint8_t len) {
    return around_top_chain(f, prefix, len, [&] { return rte_fib_delete(f, prefix, len); });
}

int fib4::write_state(rte_fib* f, uint64_t key) {
    auto prefix = static_cast<uint32_t>(key >> 8);
    auto len = static_cast<uint8_t>(key & 0xff);
    auto it = table_.find(key);
    if (it != table_.end())
        return fib_add(f, prefix, len, it->second.front().next_hop_id);
    int rc = fib_delete(f, prefix, len);
    return rc == -ENOENT ? 0 : rc;
}

void fib4::remember(uint64_t key) {
    if (undo_.empty())
        undo_candidates_ = candidates_;
    auto it = table_.find(key);
    undo_.emplace_back(key, it == table_.end() ? route4_candidates{} : it->second);
}

rte_fib* fib4::publish() noexcept {
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

void fib4::sync() {
    rte_fib* f = writable();
    // In address order, once per prefix: the RIB walks stay in cache (a big random batch
    // costs several times more otherwise).
    std::sort(to_sync_.begin(), to_sync_.end());
    to_sync_.erase(std::unique(to_sync_.begin(), to_sync_.end()), to_sync_.end());
    for (uint64_t key : to_sync_)
        (void)write_state(f, key); // the same writes already succeeded on the other copy
    to_sync_.clear();
}

void fib4::rollback() {
    if (undo_.empty())
        return;
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
        if (!it->second.empty())
            table_[it->first] = it->second;
        else
            table_.erase(it->first);
    }
    candidates_ = undo_candidates_;
    rte_fib* f = writable();
    for (const auto& [key, prev] : undo_)
        (void)write_state(f, key); // restores what the copy held: needs no new memory
    undo_.clear();
}

status fib4::install(rte_fib* f, const route4& r) {
    int rc = fib_add(f, r.prefix, r.len, r.next_hop_id);
    if (rc == 0)
        return ok();
    if (rc == -ENOSPC)
        return error{errc::table_full, "fib '" + name_ + "': route " +
                                           format_prefix(r.prefix, r.len) +
                                           ": table full (no free tbl8 group or RIB node)"};
    return error{errc::dpdk_error, "fib '" + name_ + "': route " + format_prefix(r.prefix, r.len) +
                                       ": rte_fib_add failed: " + rte_strerror(-rc)};
}

status fib4::add(uint32_t prefix, uint8_t len, route_origin origin, uint32_t next_hop_id,
                 std::optional<uint8_t> distance) {
    if (auto s = check_prefix(prefix, len); !s)
        return s;
    if (next_hop_id == no_route_id || next_hop_id >= (1u << 30))
        return error{errc::invalid_argument, "route " + format_prefix(prefix, len) +
                                                 ": invalid next hop id " +
                                                 std::to_string(next_hop_id)};
    if (!to_sync_.empty())
        return error{errc::invalid_argument,
                     "fib '" + name_ + "': changed after publish() without sync()"};
    route4 r{prefix, len, origin, distance.value_or(default_distance(origin)), next_hop_id};
    uint64_t key = key_of(prefix, len);
    auto it = table_.find(key);
    if (it == table_.end()) {
        if (table_.size() >= max_routes_)
            return error{errc::table_full, "fib '" + name_ + "': route " +
                                               format_prefix(prefix, len) + ": table full (" +
                                               std::to_string(max_routes_) + " prefixes)"};
        if (auto s = install(writable(), r); !s)
            return s;
        remember(key);
        table_.emplace(key, route4_candidates{r});
        ++candidates_;
        return ok();
    }
    // Work on a copy so a failed install changes nothing.
    route4_candidates list = it->second;
    auto same =
        std::find_if(list.begin(), list.end(), [&](const route4& c) { return c.origin == origin; });
    const bool replaced = same != list.end();
    if (replaced)
        *same = r;
    else
        list.push_back(r);
    // Stable insertion sort: at most three candidates (std::stable_sort would allocate).
    for (route4* i = list.begin() + 1; i < list.end(); ++i)
        for (route4* j = i; j > list.begin() && better(*j, *(j - 1)); --j)
            std::swap(*j, *(j - 1));
    const route4& old_winner = it->second.front();
    if (list.front().next_hop_id != old_winner.next_hop_id)
        if (auto s = install(writable(), list.front()); !s)
            return s;
    remember(key);
    if (!replaced)
        ++candidates_;
    it->second = std::move(list);
    return ok();
}

status fib4::remove(uint32_t prefix, uint8_t len, route_origin origin) {
    if (auto s = check_prefix(prefix, len); !s)
        return s;
    if (!to_sync_.empty())
        return error{errc::invalid_argument,
                     "fib '" + name_ + "': changed after publish() without sync()"};
    const uint64_t key = key_of(prefix, len);
    auto it = table_.find(key);
    auto not_found = [&] {
        return error{errc::not_found, "route " + format_prefix(prefix, len) + " (" +
                                          to_string(origin) + "): not found"};
    };
    if (it == table_.end())
        return not_found();
    auto& list = it->second;
    auto same =
        std::find_if(list.begin(), list.end(), [&](const route4& c) { return c.origin == origin; });
    if (same == list.end())
        return not_found();
    if (list.size() == 1) {
        int rc = fib_delete(writable(), prefix, len);
        if (rc != 0)
            return error{errc::dpdk_error, "fib '" + name_ + "': route " +
                                               format_prefix(prefix, len) +
                                               ": rte_fib_delete failed: " + rte_strerror(-rc)};
        remember(key);
        table_.erase(it);
        --candidates_;
        return ok();
    }
    bool was_winner = same == list.begin();
    if (was_winner && list[1].next_hop_id != same->next_hop_id)
        if (auto s = install(writable(), list[1]); !s)
            return s; // replacing an existing prefix needs no new memory: not expected
    remember(key);
    list.erase(same);
    --candidates_;
    return ok();
}

std::optional<route4> fib4::installed(uint32_t prefix, uint8_t len) const {
    auto it = table_.find(key_of(prefix, len));
    if (it == table_.end())
        return std::nullopt;
    return it->second.front();
}

std::vector<route4> fib4::candidates(uint32_t prefix, uint8_t len) const {
    auto it = table_.find(key_of(prefix, len));
    if (it == table_.end())
        return {};
    return std::vector<route4>(it->second.begin(), it->second.end());
}

} // namespace sagd::fwd
