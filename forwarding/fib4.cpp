#include "forwarding/fib4.hpp"

#include <rte_common.h>
#include <rte_malloc.h>

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

constexpr size_t tbl24_entries = size_t{1} << 24;

uint64_t key_of(uint32_t prefix, uint8_t len) {
    return (uint64_t{prefix} << 8) | len;
}

uint32_t mask_of(uint8_t len) {
    return len == 0 ? 0 : ~uint32_t{0} << (32 - len);
}

// DIR-24-8 entries (see fib4_table).
uint32_t entry_of(uint32_t next_hop_id, uint8_t depth) {
    return (next_hop_id << fib4_table::value_shift) | (uint32_t{depth} << 1);
}
bool is_ext(uint32_t e) {
    return (e & 1u) != 0;
}
uint8_t depth_of(uint32_t e) {
    return static_cast<uint8_t>((e >> 1) & 0x3fu);
}
uint32_t value_of(uint32_t e) {
    return e >> fib4_table::value_shift;
}
// Readers may be in this copy (single mode): whole-entry stores.
void store(uint32_t* p, uint32_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

// Sets entries [first, last) of a tbl8 group that `owned` picks to `value`.
template <typename Owned>
void fill_group(uint32_t* g, unsigned first, unsigned last, Owned owned, uint32_t value) {
    for (unsigned j = first; j < last; ++j)
        if (owned(g[j]))
            store(&g[j], value);
}

// The same over the tbl24 range of a /24-or-shorter prefix, and the whole group of each split
// /24 in it.
template <typename Owned>
void fill_range(uint32_t* tbl24, uint32_t* tbl8, uint32_t prefix, uint8_t len, Owned owned,
                uint32_t value) {
    const size_t first = prefix >> 8;
    const size_t last = first + (size_t{1} << (24 - len));
    for (size_t i = first; i < last; ++i) {
        const uint32_t old = tbl24[i];
        if (is_ext(old))
            fill_group(&tbl8[size_t{value_of(old)} << 8], 0, 256, owned, value);
        else if (owned(old))
            store(&tbl24[i], value);
    }
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
    std::unique_ptr<fib4> f(new fib4(cfg.name, cfg.max_routes));
    f->tbl8_groups_ = cfg.tbl8_groups;
    f->table_.reserve(cfg.max_routes); // like the tables below: sized once, at create
    const size_t tbl8_bytes = size_t{cfg.tbl8_groups} * 256 * sizeof(uint32_t);
    const unsigned n = cfg.double_buffered ? 2 : 1;
    for (unsigned i = 0; i < n; ++i) {
        copy& c = f->copies_[i];
        c.table.tbl24 = static_cast<uint32_t*>(rte_zmalloc_socket(
            "fib4_tbl24", tbl24_entries * sizeof(uint32_t), RTE_CACHE_LINE_SIZE, cfg.socket_id));
        c.table.tbl8 = static_cast<uint32_t*>(
            rte_zmalloc_socket("fib4_tbl8", tbl8_bytes, RTE_CACHE_LINE_SIZE, cfg.socket_id));
        if (c.table.tbl24 == nullptr || c.table.tbl8 == nullptr)
            return error{errc::dpdk_error,
                         "fib '" + cfg.name + "': cannot allocate " +
                             std::to_string((tbl24_entries * sizeof(uint32_t) + tbl8_bytes) >> 20) +
                             " MiB of EAL memory for a table copy (tbl8 groups " +
                             std::to_string(cfg.tbl8_groups) + ")"};
        c.free_groups.resize(cfg.tbl8_groups);
        for (uint32_t g = 0; g < cfg.tbl8_groups; ++g)
            c.free_groups[g] = cfg.tbl8_groups - 1 - g; // group 0 is taken first
    }
    return f;
}

fib4::~fib4() {
    for (auto& c : copies_) {
        rte_free(c.table.tbl24);
        rte_free(c.table.tbl8);
    }
}

uint32_t fib4::covering_entry(uint32_t prefix, uint8_t len) const noexcept {
    for (int l = len - 1; l >= 0; --l) {
        const auto ll = static_cast<uint8_t>(l);
        if (len_count_[ll] == 0)
            continue;
        if (const auto* c = table_.find(key_of(prefix & mask_of(ll), ll)))
            return entry_of(c->front().next_hop_id, ll);
    }
    return 0;
}

int fib4::write_route(copy& c, uint32_t prefix, uint8_t len, uint32_t next_hop_id) {
    const uint32_t e = entry_of(next_hop_id, len);
    uint32_t* tbl24 = c.table.tbl24;
    uint32_t* tbl8 = c.table.tbl8;
    // Every entry of the range that a shorter (or this) prefix wrote; entries of longer
    // prefixes stay.
    auto owned = [len](uint32_t x) { return depth_of(x) <= len; };
    if (len <= 24) {
        fill_range(tbl24, tbl8, prefix, len, owned, e);
        return 0;
    }
    const size_t i = prefix >> 8;
    uint32_t old = tbl24[i];
    uint32_t* g = nullptr;
    bool fresh = false;
    if (is_ext(old)) {
        g = &tbl8[size_t{value_of(old)} << 8];
    } else {
        if (c.free_groups.empty())
            return -ENOSPC;
        const uint32_t gi = c.free_groups.back();
        c.free_groups.pop_back();
        g = &tbl8[size_t{gi} << 8];
        for (unsigned j = 0; j < 256; ++j)
            store(&g[j], old); // the /24's addresses keep what they had
        old = (gi << fib4_table::value_shift) | 1u;
        fresh = true;
    }
    fill_group(g, prefix & 0xffu, (prefix & 0xffu) + (1u << (32 - len)), owned, e);
    if (fresh) // the group is complete before a reader can reach it
        __atomic_store_n(&tbl24[i], old, __ATOMIC_RELEASE);
    return 0;
}

void fib4::erase_route(copy& c, uint32_t prefix, uint8_t len) {
    // Only entries this prefix wrote carry its length: an address with a longer match keeps
    // it, one with a shorter match never had this prefix's entry.
    const uint32_t back = covering_entry(prefix, len);
    uint32_t* tbl24 = c.table.tbl24;
    uint32_t* tbl8 = c.table.tbl8;
    auto owned = [len](uint32_t x) { return depth_of(x) == len; };
    if (len <= 24) {
        fill_range(tbl24, tbl8, prefix, len, owned, back);
        return;
    }
    const size_t i = prefix >> 8;
    const uint32_t old = tbl24[i];
    if (!is_ext(old))
        return; // not in this copy
    const uint32_t gi = value_of(old);
    uint32_t* g = &tbl8[size_t{gi} << 8];
    fill_group(g, prefix & 0xffu, (prefix & 0xffu) + (1u << (32 - len)), owned, back);
    // The group goes when no prefix longer than /24 is left in it: all 256 entries then hold
    // the /24's covering route. (So a copy holds a group exactly for each /24 with a longer
    // prefix, and a rollback never needs more groups than the copy had.)
    for (unsigned j = 0; j < 256; ++j)
        if (depth_of(g[j]) > 24)
            return;
    __atomic_store_n(&tbl24[i], g[0], __ATOMIC_RELEASE);
    c.free_groups.push_back(gi);
}

int fib4::write_state(copy& c, uint64_t key) {
    const auto prefix = static_cast<uint32_t>(key >> 8);
    const auto len = static_cast<uint8_t>(key & 0xff);
    if (const auto* list = table_.find(key))
        return write_route(c, prefix, len, list->front().next_hop_id);
    erase_route(c, prefix, len);
    return 0;
}

void fib4::remember(uint64_t key) {
    const auto* c = table_.find(key);
    remember_as(key, c == nullptr ? route4_candidates{} : *c);
}

void fib4::remember_as(uint64_t key, const route4_candidates& before) {
    if (undo_.empty()) {
        undo_candidates_ = candidates_;
        undo_len_count_ = len_count_;
    }
    undo_.emplace_back(key, before);
}

const fib4_table* fib4::publish() noexcept {
    if (!double_buffered()) {
        undo_.clear();
        return &copies_[0].table;
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
    copy& c = writable();
    // In address order, once per prefix: neighbouring entries share cache lines.
    std::sort(to_sync_.begin(), to_sync_.end());
    to_sync_.erase(std::unique(to_sync_.begin(), to_sync_.end()), to_sync_.end());
    // The end state does not depend on the order: each prefix owns the entries carrying its
    // length, and a removed one hands them to its covering route in the current table.
    for (size_t i = 0; i < to_sync_.size(); ++i) {
        if (i + 8 < to_sync_.size()) {
            table_.prefetch(to_sync_[i + 8]);
            __builtin_prefetch(&c.table.tbl24[to_sync_[i + 8] >> 16], 1);
        }
        (void)write_state(c, to_sync_[i]); // the same writes already succeeded on the other copy
    }
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
    len_count_ = undo_len_count_;
    copy& c = writable();
    for (const auto& [key, prev] : undo_)
        (void)write_state(c, key); // restores what the copy held: no group beyond what it had
    undo_.clear();
}

status fib4::install(copy& c, const route4& r) {
    if (write_route(c, r.prefix, r.len, r.next_hop_id) == 0)
        return ok();
    return error{errc::table_full,
                 "fib '" + name_ + "': route " + format_prefix(r.prefix, r.len) +
                     ": table full (no free tbl8 group: " + std::to_string(tbl8_groups_) +
                     " /24s may hold longer prefixes)"};
}

status fib4::add(uint32_t prefix, uint8_t len, route_origin origin, uint32_t next_hop_id,
                 std::optional<uint8_t> distance) {
    if (auto s = check_prefix(prefix, len); !s)
        return s;
    if (next_hop_id == no_route_id || next_hop_id > fib4_table::max_next_hop_id)
        return error{errc::invalid_argument, "route " + format_prefix(prefix, len) +
                                                 ": invalid next hop id " +
                                                 std::to_string(next_hop_id)};
    if (!to_sync_.empty())
        return error{errc::invalid_argument,
                     "fib '" + name_ + "': changed after publish() without sync()"};
    route4 r{prefix, len, origin, distance.value_or(default_distance(origin)), next_hop_id};
    const uint64_t key = key_of(prefix, len);
    route4_candidates* cur = table_.find(key);
    if (cur == nullptr) {
        if (table_.size() >= max_routes_)
            return error{errc::table_full, "fib '" + name_ + "': route " +
                                               format_prefix(prefix, len) + ": table full (" +
                                               std::to_string(max_routes_) + " prefixes)"};
        if (auto s = install(writable(), r); !s)
            return s;
        remember_as(key, route4_candidates{});
        *table_.try_emplace(key).first = route4_candidates{r};
        count_len(len, +1);
        ++candidates_;
        return ok();
    }
    // Work on a copy so a failed install changes nothing.
    route4_candidates list = *cur;
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
    if (list.front().next_hop_id != cur->front().next_hop_id)
        if (auto s = install(writable(), list.front()); !s)
            return s;
    remember_as(key, *cur); // inserts nothing into table_: `cur` stays valid
    if (!replaced)
        ++candidates_;
    *cur = list;
    return ok();
}

status fib4::remove(uint32_t prefix, uint8_t len, route_origin origin) {
    if (auto s = check_prefix(prefix, len); !s)
        return s;
    if (!to_sync_.empty())
        return error{errc::invalid_argument,
                     "fib '" + name_ + "': changed after publish() without sync()"};
    const uint64_t key = key_of(prefix, len);
    route4_candidates* list = table_.find(key);
    auto same = list == nullptr ? nullptr
                                : std::find_if(list->begin(), list->end(),
                                               [&](const route4& c) { return c.origin == origin; });
    if (list == nullptr || same == list->end())
        return error{errc::not_found, "route " + format_prefix(prefix, len) + " (" +
                                          to_string(origin) + "): not found"};
    if (list->size() == 1) {
        remember(key);
        table_.erase(key);
        count_len(len, -1);
        --candidates_;
        erase_route(writable(), prefix, len); // frees, never fails
        return ok();
    }
    const bool was_winner = same == list->begin();
    if (was_winner && (*list)[1].next_hop_id != same->next_hop_id)
        if (auto s = install(writable(), (*list)[1]); !s)
            return s; // the prefix's own entries: needs no new group
    remember(key);
    list->erase(same);
    --candidates_;
    return ok();
}

std::optional<route4> fib4::installed(uint32_t prefix, uint8_t len) const {
    const auto* c = table_.find(key_of(prefix, len));
    if (c == nullptr)
        return std::nullopt;
    return c->front();
}

std::vector<route4> fib4::candidates(uint32_t prefix, uint8_t len) const {
    const auto* c = table_.find(key_of(prefix, len));
    if (c == nullptr)
        return {};
    return std::vector<route4>(c->begin(), c->end());
}

} // namespace sagd::fwd
