// IPv6 FIB: the IPv6 sibling of fib4. A control-side route table keeping every candidate route
// per prefix, and the winner of each prefix installed in a DPDK rte_fib6 (TRIE, 4-byte next
// hops) that workers read without locks. Addresses are 16 bytes in network order.
//
// Double-buffered exactly like fib4 (see fib4.hpp): writers change the shadow copy only;
// publish() swaps the copies in one pointer store; after an RCU grace period sync() replays
// the batch onto the old copy; rollback() undoes an unpublished batch. A batch is atomic for
// readers, and the trie's tbl8 groups freed by a delete are reused only in a copy no reader
// uses (rte_fib6 22.11 has no RCU reclamation either).
#pragma once

#include <rte_fib6.h>

#include <array>
#include <atomic>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "forwarding/fib4.hpp" // route_origin, default_distance
#include "forwarding/ipv6_addr.hpp"
#include "forwarding/next_hop.hpp"
#include "forwarding/result.hpp"

namespace sagd::fwd {

struct fib6_config {
    std::string name = "fib6";
    uint32_t max_routes = 1u << 16; // distinct prefixes installed
    // Trie tbl8 groups (256 next hops each, 1 KiB at 4-byte next hops): a prefix longer than
    // /24 needs up to (len - 24) / 8 of them, shared with its neighbours.
    uint32_t tbl8_groups = 1u << 14;
    int socket_id = -1;
    bool double_buffered = false;
};

struct route6 {
    ipv6_bytes prefix{}; // host bits zero
    uint8_t len = 0;
    route_origin origin = route_origin::static_route;
    uint8_t distance = 1;
    uint32_t next_hop_id = no_route_id;
};

class fib6 {
  public:
    static constexpr uint64_t no_route = no_route_id;

    static result<std::unique_ptr<fib6>> create(const fib6_config& cfg);
    ~fib6();
    fib6(const fib6&) = delete;
    fib6& operator=(const fib6&) = delete;

    // Control side (one thread); same contract as fib4. Failed calls change nothing.
    status add(const ipv6_bytes& prefix, uint8_t len, route_origin origin, uint32_t next_hop_id,
               std::optional<uint8_t> distance = std::nullopt);
    status remove(const ipv6_bytes& prefix, uint8_t len, route_origin origin);
    std::optional<route6> installed(const ipv6_bytes& prefix, uint8_t len) const;
    std::vector<route6> candidates(const ipv6_bytes& prefix, uint8_t len) const;
    size_t prefix_count() const noexcept { return table_.size(); }
    size_t route_count() const noexcept { return candidates_; }
    template <typename F> void for_each_installed(F&& f) const {
        for (const auto& [key, list] : table_)
            f(list.front());
    }
    // Installed routes inside `prefix/len` (itself included), in address order.
    template <typename F>
    void for_each_installed_within(const ipv6_bytes& prefix, uint8_t len, F&& f) const {
        for (auto it = table_.lower_bound(prefix6_key{ipv6_mask(prefix, len), 0});
             it != table_.end() && ipv6_in_prefix(it->first.addr, prefix, len); ++it)
            if (it->second.front().len >= len)
                f(it->second.front());
    }

    rte_fib6* publish() noexcept;
    void sync();
    void rollback();
    bool dirty() const noexcept { return !undo_.empty(); }
    bool double_buffered() const noexcept { return fibs_[1] != nullptr; }

    // Worker side: lock-free, noexcept.
    uint64_t lookup(const ipv6_bytes& a) const noexcept {
        uint64_t nh = no_route;
        uint8_t ip[1][RTE_FIB6_IPV6_ADDR_SIZE];
        std::copy(a.begin(), a.end(), ip[0]);
        rte_fib6_lookup_bulk(active(), ip, &nh, 1);
        return nh;
    }
    rte_fib6* active() const noexcept { return fibs_[active_.load(std::memory_order_acquire)]; }
    const std::string& name() const noexcept { return name_; }

  private:
    fib6(rte_fib6* a, rte_fib6* b, std::string name, uint32_t max_routes)
        : fibs_{a, b}, name_(std::move(name)), max_routes_(max_routes) {}
    rte_fib6* writable() const noexcept {
        return fibs_[1] == nullptr ? fibs_[0]
                                   : fibs_[active_.load(std::memory_order_relaxed) ^ 1];
    }
    status install(rte_fib6* f, const route6& r);
    int write_state(rte_fib6* f, const prefix6_key& key);
    void remember(const prefix6_key& key);

    std::array<rte_fib6*, 2> fibs_;
    std::atomic<unsigned> active_{0};
    std::string name_;
    uint32_t max_routes_;
    size_t candidates_ = 0;
    std::map<prefix6_key, std::vector<route6>> table_; // front() is the winner
    std::vector<std::pair<prefix6_key, std::optional<std::vector<route6>>>> undo_;
    size_t undo_candidates_ = 0;
    std::vector<prefix6_key> to_sync_;
};

} // namespace sagd::fwd
