// Next hops: where a route points. The FIB stores small uint32 ids handed out by
// next_hop_table; workers turn an id into a next_hop with get() (no locks: entries are
// written before their id is published and are never moved).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "forwarding/result.hpp"

namespace sagd::fwd {

enum class next_hop_kind : uint8_t {
    drop,      // blackhole / unreachable
    local,     // one of our addresses: deliver to the gateway itself
    connected, // LAN host on a connected subnet: the destination itself is the neighbour
    gateway,   // a LAN router: the neighbour is `gateway`
    tunnel,    // ESP tunnel, id `tunnel`
    group,     // a group (tunnel group, or equal-cost LAN routers), id in `tunnel`
};

struct next_hop {
    next_hop_kind kind = next_hop_kind::drop;
    uint16_t port = 0;    // egress port index (connected, gateway); ignored otherwise
    uint32_t gateway = 0; // host byte order (gateway)
    uint32_t tunnel = 0;  // tunnel id (tunnel) or group id (group)
    bool operator==(const next_hop&) const = default;
};
static_assert(sizeof(next_hop) == 12);
static_assert(std::is_trivially_copyable_v<next_hop>);

// An IPv6 route's next hop: the same kinds, with a 16-byte gateway (network order). IPv6
// routes have their own FIB and their own id space (next_hop6_table).
struct next_hop6 {
    next_hop_kind kind = next_hop_kind::drop;
    uint16_t port = 0;
    uint32_t tunnel = 0;
    std::array<uint8_t, 16> gateway{};
    bool operator==(const next_hop6&) const = default;
};
static_assert(sizeof(next_hop6) == 24);
static_assert(std::is_trivially_copyable_v<next_hop6>);

// Id 0 is reserved: the FIB's "no route" value (see fib4::no_route). It reads as a drop.
inline constexpr uint32_t no_route_id = 0;

template <typename NH> class basic_next_hop_table {
  public:
    explicit basic_next_hop_table(uint32_t capacity = 65536);

    // Returns the id of an identical next hop (taking one more reference) or a new id.
    result<uint32_t> acquire(const NH& nh);
    // Drops one reference. An id whose count reaches zero is parked: it is handed out again
    // only after reclaim(), which the owner calls once readers are quiescent (RCU/QSBR).
    status release(uint32_t id);
    void reclaim();

    // Worker side. Unknown ids read as drop.
    const NH& get(uint32_t id) const noexcept {
        return id < capacity_ ? entries_[id] : entries_[no_route_id];
    }
    uint32_t refcount(uint32_t id) const noexcept { return id < capacity_ ? refs_[id] : 0; }
    uint32_t size() const noexcept { return live_; } // ids in use, not counting no_route_id
    uint32_t capacity() const noexcept { return capacity_; }

  private:
    struct hasher {
        size_t operator()(const NH& nh) const noexcept;
    };
    uint32_t capacity_;
    std::unique_ptr<NH[]> entries_; // fixed: never reallocated under readers
    std::vector<uint32_t> refs_;
    std::unordered_map<NH, uint32_t, hasher> index_;
    std::vector<uint32_t> free_;   // reusable ids
    std::vector<uint32_t> parked_; // released, waiting for reclaim()
    uint32_t next_fresh_ = 1;
    uint32_t live_ = 0;
};

using next_hop_table = basic_next_hop_table<next_hop>;
using next_hop6_table = basic_next_hop_table<next_hop6>;
extern template class basic_next_hop_table<next_hop>;
extern template class basic_next_hop_table<next_hop6>;

} // namespace sagd::fwd
