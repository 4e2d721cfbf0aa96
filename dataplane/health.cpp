#include "dataplane/health.hpp"

#include <algorithm>

namespace sagd::dp {

const char* health_reason_name(uint8_t bit) noexcept {
    switch (bit) {
    case health_bfd:
        return "bfd";
    case health_link:
        return "link";
    case health_check:
        return "health_check";
    default:
        return "unknown";
    }
}

const char* to_string(health_cause c) noexcept {
    switch (c) {
    case health_cause::none:
        return "none";
    case health_cause::created:
        return "created";
    case health_cause::bfd_down:
        return "bfd down";
    case health_cause::bfd_up:
        return "bfd up";
    case health_cause::link_down:
        return "link down";
    case health_cause::link_up:
        return "link up";
    case health_cause::check_down:
        return "health check failed";
    case health_cause::check_up:
        return "health check ok";
    }
    return "unknown";
}

bool tunnel_health::set_down(uint8_t reason, health_cause cause, uint64_t now_ns) noexcept {
    uint64_t old = word_.load(std::memory_order_relaxed);
    uint64_t next;
    do {
        if ((old & reason) != 0)
            return false;
        next = old | reason;
        if ((old & health_reason_mask) == 0)
            next |= been_up; // the next up is a recovery: hold-down applies
    } while (!word_.compare_exchange_weak(old, next, std::memory_order_relaxed));
    if ((old & health_reason_mask) != 0)
        return false; // already down for another reason
    downs_.fetch_add(1, std::memory_order_relaxed);
    last_change_ns_.store(now_ns, std::memory_order_relaxed);
    last_cause_.store(static_cast<uint8_t>(cause), std::memory_order_relaxed);
    return true;
}

bool tunnel_health::set_up(uint8_t reason, health_cause cause, uint64_t now_ns) noexcept {
    uint64_t old = word_.load(std::memory_order_relaxed);
    uint64_t next;
    do {
        if ((old & reason) == 0)
            return false;
        next = old & ~uint64_t{reason};
        if ((next & health_reason_mask) == 0) {
            // Up again: a recovery starts its hold-down now; a first up is matured at once.
            // now_ns >> since_shift is at least 1 after the first microsecond of uptime.
            uint64_t since =
                (old & been_up) != 0 ? std::max<uint64_t>(now_ns >> since_shift, 1) : 0;
            next = (next & 0xff) | (since << 8);
        }
    } while (!word_.compare_exchange_weak(old, next, std::memory_order_relaxed));
    if ((next & health_reason_mask) != 0)
        return false;
    ups_.fetch_add(1, std::memory_order_relaxed);
    last_change_ns_.store(now_ns, std::memory_order_relaxed);
    last_cause_.store(static_cast<uint8_t>(cause), std::memory_order_relaxed);
    return true;
}

} // namespace sagd::dp
