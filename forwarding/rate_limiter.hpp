// Token bucket (e.g. for ICMP errors, RFC 1812 4.3.2.8 "rate limiting"). Time is explicit:
// `now` in any monotonic tick (TSC cycles, ns, ms) given with ticks_per_second, so tests are
// deterministic. One owner per instance (per worker): no atomics, no locks.
#pragma once

#include <cstdint>

namespace sagd::fwd {

class rate_limiter {
  public:
    // rate: tokens per second; burst: bucket depth (starts full).
    rate_limiter(uint64_t rate_per_second = 100, uint64_t burst = 10,
                 uint64_t ticks_per_second = 1'000'000'000) noexcept
        : rate_(rate_per_second), hz_(ticks_per_second == 0 ? 1 : ticks_per_second),
          capacity_((burst == 0 ? 1 : burst) * hz_), credit_(capacity_) {}

    // True (and spends one token) when a message may go now.
    bool allow(uint64_t now) noexcept {
        refill(now);
        if (credit_ < hz_)
            return false;
        credit_ -= hz_;
        return true;
    }
    // Whole tokens available at `now`.
    uint64_t tokens(uint64_t now) noexcept {
        refill(now);
        return credit_ / hz_;
    }

  private:
    // Credit is kept in token * ticks_per_second units so refill is exact integer math.
    void refill(uint64_t now) noexcept {
        if (!started_) {
            started_ = true;
            last_ = now;
            return;
        }
        if (now <= last_)
            return;
        uint64_t elapsed = now - last_;
        last_ = now;
        if (rate_ == 0)
            return;
        uint64_t missing = capacity_ - credit_;
        // Cap elapsed before multiplying so the product cannot overflow.
        if (elapsed >= missing / rate_ + 1) {
            credit_ = capacity_;
            return;
        }
        credit_ += elapsed * rate_;
        if (credit_ > capacity_)
            credit_ = capacity_;
    }
    uint64_t rate_;
    uint64_t hz_;
    uint64_t capacity_;
    uint64_t credit_;
    uint64_t last_ = 0;
    bool started_ = false;
};

} // namespace sagd::fwd
