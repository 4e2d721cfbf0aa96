// Neighbour tables keyed by (port index, address): IPv4 (ARP, RFC 826; host-order uint32) as
// `neighbour_table`, IPv6 (ND, RFC 4861; 16 bytes, network order) as `neighbour6_table`. One
// template, the same states and timers for both (RFC 4861 7.3.2's INCOMPLETE / REACHABLE /
// STALE / PROBE map onto the ARP states here; DELAY is folded into STALE-in-use -> PROBE).
// Readers (workers) look entries up without locks: the key index is an rte_hash with
// lock-free reader/writer concurrency, and each entry publishes MAC + state in one 64-bit
// atomic word. There is ONE writer (the control thread); it drives time with an explicit
// `now` in milliseconds so behaviour is deterministic under test.
// Entry slots live in a fixed array. A removed slot is reused only after readers are
// quiescent: when an rte_rcu_qsbr is attached, its grace period decides; without one the
// owner calls reclaim_all() at a point where it knows no reader holds an entry.
#pragma once

#include <rte_rcu_qsbr.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "forwarding/mac.hpp"
#include "forwarding/result.hpp"

struct rte_hash;

namespace sagd::fwd {

enum class neighbour_state : uint8_t {
    none,       // slot unused / removed
    incomplete, // request sent, no reply yet (not usable)
    reachable,  // confirmed recently
    stale,      // not confirmed for reachable_time; still used, re-checked when in use
    probe,      // stale and in use: unicast/broadcast re-requests in flight; still usable
    failed,     // no reply to max_requests requests; held for failed_hold_ms (not usable)
    permanent,  // static: never aged, never overwritten by ARP
};
const char* to_string(neighbour_state s) noexcept;

constexpr bool usable(neighbour_state s) noexcept {
    return s == neighbour_state::reachable || s == neighbour_state::stale ||
           s == neighbour_state::probe || s == neighbour_state::permanent;
}

struct neighbour_view { // what a reader sees, from one atomic load
    mac_bytes mac{};
    neighbour_state state = neighbour_state::none;
    bool usable() const noexcept { return fwd::usable(state); }
};

using ipv6_bytes = std::array<uint8_t, 16>;

template <typename Addr> class basic_neighbour_table;

template <typename Addr> class basic_neighbour_entry {
  public:
    // Reader side.
    neighbour_view read() const noexcept {
        uint64_t w = word_.load(std::memory_order_acquire);
        neighbour_view v;
        std::memcpy(v.mac.data(), &w, 6); // little-endian: bytes 0..5 are the MAC
        v.state = static_cast<neighbour_state>((w >> 48) & 0xff);
        return v;
    }
    // Workers call this when they forward through a stale entry so that aging re-checks it
    // (write only when needed, to keep the cache line shared).
    void mark_used() const noexcept {
        if (!used_.load(std::memory_order_relaxed))
            used_.store(1, std::memory_order_relaxed);
    }
    uint16_t port() const noexcept { return port_; }
    const Addr& ip() const noexcept { return ip_; }

    // Writer-side bookkeeping (the control thread only; readable in for_each).
    uint64_t updated_ms = 0;      // last confirmation / state change
    uint64_t last_request_ms = 0; // last ARP request we asked for
    uint8_t requests = 0;         // requests sent in the current incomplete/probe round

  private:
    friend class basic_neighbour_table<Addr>;
    void publish(const mac_bytes& mac, neighbour_state s) noexcept {
        uint64_t w = 0;
        std::memcpy(&w, mac.data(), 6);
        w |= uint64_t{static_cast<uint8_t>(s)} << 48;
        word_.store(w, std::memory_order_release);
    }
    std::atomic<uint64_t> word_{0};
    mutable std::atomic<uint8_t> used_{0};
    uint16_t port_ = 0;
    Addr ip_{};
    uint32_t hash_pos_ = 0;
    bool in_use_ = false;
};

template <typename Addr> struct basic_neighbour_key { // rte_hash key, no padding
    Addr ip;
    uint16_t port;
    uint16_t zero;
};
static_assert(sizeof(basic_neighbour_key<uint32_t>) == 8);
static_assert(sizeof(basic_neighbour_key<ipv6_bytes>) == 20);

struct neighbour_timers {
    uint64_t reachable_ms = 30'000;   // REACHABLE -> STALE
    uint64_t stale_gc_ms = 60'000;    // unused STALE entries are removed after this
    uint64_t retrans_ms = 1'000;      // at most one request per second per entry
    uint8_t max_requests = 3;         // then FAILED
    uint64_t failed_hold_ms = 20'000; // FAILED: no new requests, then removed
};

enum class learn_outcome : uint8_t { ignored, created, updated, refreshed };

template <typename Addr> class basic_neighbour_table {
  public:
    using entry = basic_neighbour_entry<Addr>;
    static constexpr uint32_t default_capacity = 65536;
    static result<std::unique_ptr<basic_neighbour_table>>
    create(uint32_t capacity = default_capacity, neighbour_timers t = {}, int socket_id = -1);
    ~basic_neighbour_table();
    basic_neighbour_table(const basic_neighbour_table&) = delete;
    basic_neighbour_table& operator=(const basic_neighbour_table&) = delete;

    // ---- reader side (any thread, lock-free) ----
    const entry* lookup(uint16_t port, const Addr& ip) const noexcept;
    // out[i] = entry or nullptr. Any n (processed in chunks of 64).
    void lookup_bulk(const uint16_t* ports, const Addr* ips, unsigned n,
                     const entry** out) const noexcept;

    // ---- writer side (the control thread only) ----
    // RFC 826 merge: if (port, ip) exists, update its MAC and mark it reachable; otherwise
    // create it only when the packet was addressed to us (for_us = target IP is ours).
    // Permanent entries are left alone (ignored).
    result<learn_outcome> learn(uint16_t port, const Addr& ip, const mac_bytes& mac, uint64_t now,
                                bool for_us);
    // A packet wants (port, ip). Returns true when the caller should send an ARP request now:
    // creates an INCOMPLETE entry, then at most one request per retrans_ms, up to
    // max_requests, then FAILED for failed_hold_ms. False for usable entries or when full.
    bool resolve_wanted(uint16_t port, const Addr& ip, uint64_t now);
    status add_static(uint16_t port, const Addr& ip, const mac_bytes& mac);
    status remove(uint16_t port, const Addr& ip); // any entry, static included
    // Removes dynamic entries of `port` (and static ones too when asked).
    void flush(uint16_t port, bool include_static = false);
    // Ages entries; `send_request(const entry&)` is called for every entry the
    // caller should send an ARP request for (stale entries in use, incomplete retries).
    template <typename F> void age(uint64_t now, F&& send_request);
    template <typename F> void for_each(F&& f) const {
        for (uint32_t i = 0; i < capacity_; ++i)
            if (slots_[i].in_use_)
                f(static_cast<const entry&>(slots_[i]));
    }

    // Slot reuse. attach_qsbr: reuse removed slots once every reader reported quiescent.
    void attach_qsbr(rte_rcu_qsbr* v) noexcept { qsbr_ = v; }
    void reclaim();     // reuses the slots whose grace period has passed (qsbr attached)
    void reclaim_all(); // caller guarantees no reader holds an entry pointer

    uint32_t size() const noexcept { return live_; }
    uint32_t capacity() const noexcept { return capacity_; }
    uint64_t full_misses() const noexcept { return full_misses_; } // resolve_wanted when full
    const neighbour_timers& timers() const noexcept { return timers_; }

  private:
    basic_neighbour_table() = default;
    entry* find(uint16_t port, const Addr& ip) const noexcept;
    result<entry*> insert(uint16_t port, const Addr& ip);
    void erase(entry& e);
    enum class age_action : uint8_t { none, request, erase };
    age_action age_one(entry& e, uint64_t now);

    struct parked {
        uint32_t slot;
        uint64_t token;
    };
    rte_hash* hash_ = nullptr;
    uint32_t capacity_ = 0;
    std::unique_ptr<entry[]> slots_;
    std::vector<uint32_t> free_;
    std::vector<parked> parked_;
    rte_rcu_qsbr* qsbr_ = nullptr;
    neighbour_timers timers_;
    uint32_t live_ = 0;
    uint64_t full_misses_ = 0;
};

template <typename Addr>
template <typename F>
void basic_neighbour_table<Addr>::age(uint64_t now, F&& send_request) {
    reclaim();
    for (uint32_t i = 0; i < capacity_; ++i) {
        entry& e = slots_[i];
        if (!e.in_use_)
            continue;
        switch (age_one(e, now)) {
        case age_action::none:
            break;
        case age_action::request:
            send_request(static_cast<const entry&>(e));
            break;
        case age_action::erase:
            erase(e);
            break;
        }
    }
}

using neighbour_entry = basic_neighbour_entry<uint32_t>;
using neighbour_table = basic_neighbour_table<uint32_t>;
using neighbour6_entry = basic_neighbour_entry<ipv6_bytes>;
using neighbour6_table = basic_neighbour_table<ipv6_bytes>;
extern template class basic_neighbour_table<uint32_t>;
extern template class basic_neighbour_table<ipv6_bytes>;

} // namespace sagd::fwd
