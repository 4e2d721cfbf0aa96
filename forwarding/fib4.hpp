// IPv4 FIB: a control-side route table keeping every candidate route per prefix, and the
// winner of each prefix installed in a DIR-24-8 table (Gupta, Lin, McKeown 1998) that workers
// read without locks. Addresses are in host byte order.
//
// The DIR-24-8 table is our own, not DPDK's rte_fib: each entry carries the length of the
// prefix that wrote it (as rte_lpm's do), so an add or a delete finds the entries it owns
// without a RIB; the covering route a delete falls back to comes from the prefix table (one
// hash probe per prefix length in use). A /24 or shorter prefix writes 2^(24-len) tbl24
// entries; a longer one takes a tbl8 group of 256 entries for its /24, released when the last
// longer prefix there goes. rte_fib 22.11 walked its RIB several times per change, which
// capped a million-route table near 300k changes/s; it also had no RCU hook for tbl8 reuse
// and mis-handled prefixes ending at 255.255.255.255 (regression test kept:
// fib4.top_of_address_space_chain).
//
// Double-buffered mode (fib4_config::double_buffered, what the data plane uses): two table
// copies. Writers change only the shadow copy, so a batch of changes is invisible until
// publish() swaps the copies in one pointer store; the caller then waits for an RCU grace
// period (no reader still uses the old copy) and calls sync(), which replays the batch onto
// the old copy. rollback() undoes everything since the last publish() (readers never saw it).
// In single mode changes are visible at once, and a tbl8 group freed by a delete can be
// reused while a reader is still in it: single mode is for tests and benchmarks.
#pragma once

#include <rte_prefetch.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "forwarding/next_hop.hpp"
#include "forwarding/result.hpp"
#include "forwarding/u64_map.hpp"

namespace sagd::fwd {

enum class route_origin : uint8_t { connected, static_route, learned };

// Administrative distance defaults (lower wins on equal prefix).
constexpr uint8_t default_distance(route_origin o) noexcept {
    switch (o) {
    case route_origin::connected:
        return 0;
    case route_origin::static_route:
        return 1;
    case route_origin::learned:
        return 20;
    }
    return 255;
}
const char* to_string(route_origin o) noexcept;

struct fib4_config {
    std::string name = "fib4"; // for messages
    // Distinct prefixes installed (1,048,576). The prefix table is reserved for them at
    // create (48 bytes a slot, at most 3/4 full: about 100 MB at 1M).
    uint32_t max_routes = 1u << 20;
    // One tbl8 group (1 KiB) per /24 that holds a prefix longer than /24, per copy.
    uint32_t tbl8_groups = 1u << 15;
    int socket_id = -1; // SOCKET_ID_ANY
    bool double_buffered = false;
};

// One copy of the DIR-24-8 table, what workers read. An entry is
//   bits 7..31 value, bits 1..6 depth (the length of the prefix that wrote it), bit 0 ext;
// with ext clear the value is the next-hop id (0: no route), with ext set it is the index of
// the tbl8 group that holds the /24's 256 addresses.
struct fib4_table {
    uint32_t* tbl24 = nullptr; // 2^24 entries, indexed by address >> 8
    uint32_t* tbl8 = nullptr;  // tbl8_groups x 256 entries
    static constexpr unsigned value_shift = 7;
    static constexpr uint32_t max_next_hop_id = (1u << 25) - 1;
};

namespace detail {
// Relaxed loads, as DPDK's rte_fib and rte_lpm use plain ones: the tbl8 read depends on the
// address read from tbl24 (the writer fills a group before its release store links it).
inline uint32_t fib4_lookup_one(const fib4_table* t, uint32_t ip) noexcept {
    uint32_t e = __atomic_load_n(&t->tbl24[ip >> 8], __ATOMIC_RELAXED);
    if (e & 1u) [[unlikely]]
        e = __atomic_load_n(&t->tbl8[(size_t{e >> fib4_table::value_shift} << 8) | (ip & 0xffu)],
                            __ATOMIC_RELAXED);
    return e >> fib4_table::value_shift;
}
} // namespace detail

// Worker side: lock-free, allocation-free. Unrouted addresses give no_route_id (0).
inline void fib4_lookup_bulk(const fib4_table* t, const uint32_t* ips, uint64_t* next_hops,
                             unsigned n) noexcept {
    const unsigned ahead = n < 8 ? n : 8; // prefetch distance (as rte_fib's scalar lookup)
    for (unsigned i = 0; i < ahead; ++i)
        rte_prefetch0(&t->tbl24[ips[i] >> 8]);
    unsigned i = 0;
    for (; i + ahead < n; ++i) {
        rte_prefetch0(&t->tbl24[ips[i + ahead] >> 8]);
        next_hops[i] = detail::fib4_lookup_one(t, ips[i]);
    }
    for (; i < n; ++i)
        next_hops[i] = detail::fib4_lookup_one(t, ips[i]);
}

struct route4 {
    uint32_t prefix = 0; // host order, host bits zero
    uint8_t len = 0;
    route_origin origin = route_origin::static_route;
    uint8_t distance = 1;
    uint32_t next_hop_id = no_route_id;
};

// The candidates of one prefix, best first: at most one per origin, so they fit inline (no
// heap allocation per prefix; a table holds millions).
class route4_candidates {
  public:
    static constexpr size_t capacity = 3; // one per route_origin
    route4_candidates() = default;
    explicit route4_candidates(const route4& r) : n_(1) { r_[0] = r; }
    size_t size() const noexcept { return n_; }
    bool empty() const noexcept { return n_ == 0; }
    const route4& front() const noexcept { return r_[0]; }
    const route4& operator[](size_t i) const noexcept { return r_[i]; }
    route4* begin() noexcept { return r_.data(); }
    route4* end() noexcept { return r_.data() + n_; }
    const route4* begin() const noexcept { return r_.data(); }
    const route4* end() const noexcept { return r_.data() + n_; }
    void push_back(const route4& r) noexcept { r_[n_++] = r; } // callers keep n_ < capacity
    void erase(const route4* pos) noexcept {
        auto i = static_cast<size_t>(pos - r_.data());
        for (; i + 1 < n_; ++i)
            r_[i] = r_[i + 1];
        --n_;
    }

  private:
    std::array<route4, capacity> r_{};
    uint8_t n_ = 0;
};

class fib4 {
  public:
    static constexpr uint64_t no_route = no_route_id;

    static result<std::unique_ptr<fib4>> create(const fib4_config& cfg);
    ~fib4();
    fib4(const fib4&) = delete;
    fib4& operator=(const fib4&) = delete;

    // Control side (one thread). Adding an existing (prefix, len, origin) replaces it.
    // Failed calls change nothing.
    // distance: default_distance(origin) when not given. next_hop_id: 1..max_next_hop_id.
    status add(uint32_t prefix, uint8_t len, route_origin origin, uint32_t next_hop_id,
               std::optional<uint8_t> distance = std::nullopt);
    // Removes the candidate; the runner-up (if any) is installed, else the prefix goes.
    status remove(uint32_t prefix, uint8_t len, route_origin origin);
    // Starts loading what add()/remove() of this prefix will touch (see u64_map::prefetch).
    void prefetch(uint32_t prefix, uint8_t len) noexcept {
        table_.prefetch((uint64_t{prefix} << 8) | len);
        __builtin_prefetch(&writable().table.tbl24[prefix >> 8], 1);
    }
    // The installed (winning) route of exactly this prefix.
    std::optional<route4> installed(uint32_t prefix, uint8_t len) const;
    std::vector<route4> candidates(uint32_t prefix, uint8_t len) const;
    size_t prefix_count() const noexcept { return table_.size(); }
    size_t route_count() const noexcept { return candidates_; }
    // Installed routes in address order (sorts: O(n log n), for listings).
    template <typename F> void for_each_installed(F&& f) const {
        for_each_installed_within(0, 0, std::forward<F>(f));
    }
    // Installed routes with prefix inside `prefix/len` (itself included), in address order.
    template <typename F>
    void for_each_installed_within(uint32_t prefix, uint8_t len, F&& f) const {
        const uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
        table_.for_each_sorted(
            [&](uint64_t, const route4_candidates& c) {
                return c.front().len >= len && (c.front().prefix & mask) == prefix;
            },
            [&](uint64_t, const route4_candidates& c) { f(c.front()); });
    }

    // Double-buffered mode (no-ops otherwise, where changes are visible at once).
    // Makes the changes since the last publish() visible: returns the table readers must now
    // use. Call sync() after the grace period, before the next change.
    const fib4_table* publish() noexcept;
    void sync();
    // Undoes every change since the last publish(). Readers never saw them.
    void rollback();
    bool dirty() const noexcept { return !undo_.empty(); }
    bool double_buffered() const noexcept { return copies_[1].table.tbl24 != nullptr; }

    // Worker side: lock-free, noexcept. Unrouted addresses give no_route.
    uint64_t lookup(uint32_t ip_host_order) const noexcept {
        uint64_t nh = no_route;
        fib4_lookup_bulk(active(), &ip_host_order, &nh, 1);
        return nh;
    }
    void lookup_bulk(const uint32_t* ips_host_order, uint64_t* next_hops,
                     unsigned n) const noexcept {
        fib4_lookup_bulk(active(), ips_host_order, next_hops, n);
    }
    // The copy readers use (the published one).
    const fib4_table* active() const noexcept {
        return &copies_[active_.load(std::memory_order_acquire)].table;
    }
    const std::string& name() const noexcept { return name_; }

  private:
    struct copy {
        fib4_table table;
        std::vector<uint32_t> free_groups; // tbl8 group indexes, popped from the back
    };
    fib4(std::string name, uint32_t max_routes) : name_(std::move(name)), max_routes_(max_routes) {}
    // The copy writers change: the shadow in double-buffered mode, else the only one.
    copy& writable() noexcept {
        return copies_[1].table.tbl24 == nullptr
                   ? copies_[0]
                   : copies_[active_.load(std::memory_order_relaxed) ^ 1];
    }
    // Writes prefix/len -> next hop into `c` (0 or -ENOSPC: no free tbl8 group; then `c` is
    // unchanged).
    int write_route(copy& c, uint32_t prefix, uint8_t len, uint32_t next_hop_id);
    // Hands the prefix's addresses back to its covering route in `c` (or to no route).
    void erase_route(copy& c, uint32_t prefix, uint8_t len);
    // The entry the addresses of prefix/len fall back to: the longest shorter prefix in the
    // table that covers it, or no route.
    uint32_t covering_entry(uint32_t prefix, uint8_t len) const noexcept;
    // Writes the current state of one prefix (its winner, or nothing) into `c`.
    int write_state(copy& c, uint64_t key);
    status install(copy& c, const route4& r);
    void remember(uint64_t key); // saves the prefix's state before its first change
    void remember_as(uint64_t key, const route4_candidates& before);
    void count_len(uint8_t len, int delta) noexcept { len_count_[len] += delta; }

    std::array<copy, 2> copies_;
    std::atomic<unsigned> active_{0};
    std::string name_;
    uint32_t max_routes_;
    uint32_t tbl8_groups_ = 0;
    size_t candidates_ = 0;
    // (prefix << 8 | len) -> candidates, sorted so front() is the winner.
    u64_map<route4_candidates> table_;
    std::array<int, 33> len_count_{}; // prefixes in table_ per length
    // Since the last publish(): each change's prefix and its candidates before the change
    // (empty: absent), oldest first; rollback() undoes them newest first.
    std::vector<std::pair<uint64_t, route4_candidates>> undo_;
    size_t undo_candidates_ = 0;
    std::array<int, 33> undo_len_count_{};
    std::vector<uint64_t> to_sync_; // published but not yet written to the other copy
};

// "10.1.0.0/16"-style text, for messages.
std::string format_prefix(uint32_t prefix, uint8_t len);
std::string format_ipv4(uint32_t addr_host_order);

} // namespace sagd::fwd
