#include "forwarding/next_hop.hpp"

#include <atomic>
#include <cstring>
#include <string>

namespace sagd::fwd {

namespace {
uint64_t hash_gateway(const next_hop& nh) noexcept {
    return uint64_t{nh.gateway};
}
uint64_t hash_gateway(const next_hop6& nh) noexcept {
    uint64_t a, b;
    std::memcpy(&a, nh.gateway.data(), 8);
    std::memcpy(&b, nh.gateway.data() + 8, 8);
    return a ^ (b * 0xc4ceb9fe1a85ec53ULL);
}
} // namespace

template <typename NH>
basic_next_hop_table<NH>::basic_next_hop_table(uint32_t capacity)
    : capacity_(capacity < 2 ? 2 : capacity), entries_(new NH[capacity_]()),
      refs_(capacity_, 0) {}

template <typename NH>
size_t basic_next_hop_table<NH>::hasher::operator()(const NH& nh) const noexcept {
    uint64_t h =
        static_cast<uint64_t>(nh.kind) | (uint64_t{nh.port} << 8) | (hash_gateway(nh) << 24);
    h ^= uint64_t{nh.tunnel} * 0x9e3779b97f4a7c15ULL;
    return static_cast<size_t>(h * 0xff51afd7ed558ccdULL);
}

template <typename NH> result<uint32_t> basic_next_hop_table<NH>::acquire(const NH& nh) {
    if (auto it = index_.find(nh); it != index_.end()) {
        ++refs_[it->second];
        return it->second;
    }
    uint32_t id;
    if (!free_.empty()) {
        id = free_.back();
        free_.pop_back();
    } else if (next_fresh_ < capacity_) {
        id = next_fresh_++;
    } else {
        return error{errc::table_full, "next hop table: full (" + std::to_string(capacity_ - 1) +
                                           " distinct next hops)"};
    }
    entries_[id] = nh;
    // Publish the entry before the id can reach a worker through the FIB.
    std::atomic_thread_fence(std::memory_order_release);
    refs_[id] = 1;
    index_.emplace(nh, id);
    ++live_;
    return id;
}

template <typename NH> status basic_next_hop_table<NH>::release(uint32_t id) {
    if (id == no_route_id || id >= capacity_ || refs_[id] == 0)
        return error{errc::not_found, "next hop " + std::to_string(id) + ": not in use"};
    if (--refs_[id] == 0) {
        index_.erase(entries_[id]);
        parked_.push_back(id);
        --live_;
    }
    return ok();
}

template <typename NH> void basic_next_hop_table<NH>::reclaim() {
    free_.insert(free_.end(), parked_.begin(), parked_.end());
    parked_.clear();
}

template class basic_next_hop_table<next_hop>;
template class basic_next_hop_table<next_hop6>;

} // namespace sagd::fwd
