// SPI -> inbound SA table for the receive path. Built by the control path, then published
// and read lock-free by every worker; it is immutable once published (to change it, build a
// new one and swap the pointer under RCU). Open addressing with linear probing, load factor
// <= 1/2, so a lookup is usually one cache line. SPI 0 is reserved (RFC 4303 2.1) and marks
// an empty slot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "crypto/sa.hpp"

namespace sagd::crypto {

class inbound_sa_map {
  public:
    // Capacity is fixed at construction (the default covers 1000+ tunnels x 2 for rekey).
    explicit inbound_sa_map(size_t max_sas = 4096);

    // Control path. Returns an empty string on success, or why it failed (duplicate SPI,
    // table full, reserved SPI). Does not take ownership of the SA.
    std::string insert(inbound_sa* sa);

    size_t size() const noexcept { return size_; }
    size_t max_size() const noexcept { return max_sas_; }

    inbound_sa* find(uint32_t spi) const noexcept {
        if (spi == 0) [[unlikely]]
            return nullptr;
        for (size_t i = slot_of(spi);; i = (i + 1) & mask_) {
            const slot& s = slots_[i];
            if (s.spi == spi)
                return s.sa;
            if (s.spi == 0)
                return nullptr;
        }
    }

    // Looks up a burst of SPIs (host order); out[i] is null when spis[i] is unknown.
    // Prefetches the home slots first so the misses overlap.
    void find_bulk(const uint32_t* spis, size_t n, inbound_sa** out) const noexcept;

  private:
    struct slot {
        uint32_t spi;
        inbound_sa* sa;
    };
    size_t slot_of(uint32_t spi) const noexcept {
        // Fibonacci hashing: SPIs are often sequential, the multiply spreads them.
        return static_cast<size_t>((uint64_t{spi} * 0x9E3779B97F4A7C15ull) >> shift_);
    }

    std::unique_ptr<slot[]> slots_;
    size_t mask_ = 0;
    unsigned shift_ = 0;
    size_t size_ = 0;
    size_t max_sas_ = 0;
};

} // namespace sagd::crypto
