// IPv4 FIB: a control-side route table keeping every candidate route per prefix, and the
// winner of each prefix installed in a DPDK rte_fib (DIR24_8, 4-byte next hops) that workers
// read without locks. Addresses are in host byte order.
//
// Double-buffered mode (fib4_config::double_buffered, what the data plane uses): two rte_fib
// copies. Writers change only the shadow copy, so a batch of changes is invisible until
// publish() swaps the copies in one pointer store; the caller then waits for an RCU grace
// period (no reader still uses the old copy) and calls sync(), which replays the batch onto
// the old copy. rollback() undoes everything since the last publish() (readers never saw it).
// This also sidesteps rte_fib 22.11's in-place hazard: a reader can hold a tbl8 group that a
// delete frees and a later add reuses (rte_fib there has no RCU reclamation).
#pragma once

#include <rte_fib.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "forwarding/next_hop.hpp"
#include "forwarding/result.hpp"

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
    std::string name = "fib4";      // made unique per instance internally
    uint32_t max_routes = 1u << 20; // distinct prefixes installed (1,048,576)
    // rte_fib reserves one tbl8 group (1 KiB at 4-byte next hops) per installed prefix longer
    // than /24, so this caps the number of such prefixes.
    uint32_t tbl8_groups = 1u << 15;
    int socket_id = -1; // SOCKET_ID_ANY
    bool double_buffered = false;
};

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
    // distance: default_distance(origin) when not given. next_hop_id must be nonzero.
    status add(uint32_t prefix, uint8_t len, route_origin origin, uint32_t next_hop_id,
               std::optional<uint8_t> distance = std::nullopt);
    // Removes the candidate; the runner-up (if any) is installed, else the prefix goes.
    status remove(uint32_t prefix, uint8_t len, route_origin origin);
    // The installed (winning) route of exactly this prefix.
    std::optional<route4> installed(uint32_t prefix, uint8_t len) const;
    std::vector<route4> candidates(uint32_t prefix, uint8_t len) const;
    size_t prefix_count() const noexcept { return table_.size(); }
    size_t route_count() const noexcept { return candidates_; }
    template <typename F> void for_each_installed(F&& f) const {
        for (const auto& [key, list] : table_)
            f(list.front());
    }
    // Installed routes with prefix inside `prefix/len` (itself included), in address order.
    template <typename F>
    void for_each_installed_within(uint32_t prefix, uint8_t len, F&& f) const {
        uint32_t last = len == 0 ? ~uint32_t{0} : prefix | ~(~uint32_t{0} << (32 - len));
        for (auto it = table_.lower_bound(uint64_t{prefix} << 8);
             it != table_.end() && (it->first >> 8) <= last; ++it)
            if (it->second.front().len >= len)
                f(it->second.front());
    }

    // Double-buffered mode (no-ops otherwise, where changes are visible at once).
    // Makes the changes since the last publish() visible: returns the table readers must now
    // use. Call sync() after the grace period, before the next change.
    rte_fib* publish() noexcept;
    void sync();
    // Undoes every change since the last publish(). Readers never saw them.
    void rollback();
    bool dirty() const noexcept { return !undo_.empty(); }
    bool double_buffered() const noexcept { return fibs_[1] != nullptr; }

    // Worker side: lock-free, noexcept. Unrouted addresses give no_route.
    uint64_t lookup(uint32_t ip_host_order) const noexcept {
        uint64_t nh = no_route;
        rte_fib_lookup_bulk(active(), &ip_host_order, &nh, 1);
        return nh;
    }
    void lookup_bulk(const uint32_t* ips_host_order, uint64_t* next_hops,
                     unsigned n) const noexcept {
        // rte_fib_lookup_bulk does not write ips; its prototype is just not const.
        rte_fib_lookup_bulk(active(), const_cast<uint32_t*>(ips_host_order), next_hops,
                            static_cast<int>(n));
    }
    // The copy readers use (the published one).
    rte_fib* active() const noexcept { return fibs_[active_.load(std::memory_order_acquire)]; }
    rte_fib* raw() const noexcept { return active(); }
    const std::string& name() const noexcept { return name_; }

  private:
    fib4(rte_fib* a, rte_fib* b, std::string name, uint32_t max_routes)
        : fibs_{a, b}, name_(std::move(name)), max_routes_(max_routes) {}
    // The copy writers change: the shadow in double-buffered mode, else the only one.
    rte_fib* writable() const noexcept {
        return fibs_[1] == nullptr ? fibs_[0] : fibs_[active_.load(std::memory_order_relaxed) ^ 1];
    }
    status install(rte_fib* f, const route4& r);
    int fib_add(rte_fib* f, uint32_t prefix, uint8_t len, uint64_t nh);
    int fib_delete(rte_fib* f, uint32_t prefix, uint8_t len);
    // Writes the current state of one prefix (its winner, or nothing) into `f`.
    int write_state(rte_fib* f, uint64_t key);
    template <typename Op> int around_top_chain(rte_fib* f, uint32_t prefix, uint8_t len, Op op);
    void remember(uint64_t key); // saves the prefix's state before its first change

    std::array<rte_fib*, 2> fibs_;
    std::atomic<unsigned> active_{0};
    std::string name_;
    uint32_t max_routes_;
    size_t candidates_ = 0;
    // (prefix, len) -> candidates, sorted so front() is the winner.
    std::map<uint64_t, route4_candidates> table_;
    // Since the last publish(): each change's prefix and its candidates before the change
    // (empty: absent), oldest first; rollback() undoes them newest first.
    std::vector<std::pair<uint64_t, route4_candidates>> undo_;
    size_t undo_candidates_ = 0;
    std::vector<uint64_t> to_sync_; // published but not yet written to the other copy
};

// "10.1.0.0/16"-style text, for messages.
std::string format_prefix(uint32_t prefix, uint8_t len);
std::string format_ipv4(uint32_t addr_host_order);

} // namespace sagd::fwd
