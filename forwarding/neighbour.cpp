#include "forwarding/neighbour.hpp"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_jhash.h>

#include <cstdio>
#include <string>

#include "forwarding/fib4.hpp" // format_ipv4
#include "forwarding/fib6.hpp" // format_ipv6

namespace sagd::fwd {

const char* to_string(neighbour_state s) noexcept {
    switch (s) {
    case neighbour_state::none:
        return "none";
    case neighbour_state::incomplete:
        return "incomplete";
    case neighbour_state::reachable:
        return "reachable";
    case neighbour_state::stale:
        return "stale";
    case neighbour_state::probe:
        return "probe";
    case neighbour_state::failed:
        return "failed";
    case neighbour_state::permanent:
        return "permanent";
    }
    return "?";
}

namespace {

template <typename Addr> basic_neighbour_key<Addr> make_key(uint16_t port, const Addr& ip) noexcept {
    return {ip, port, 0};
}

std::string format_addr(uint32_t ip) {
    return format_ipv4(ip);
}
std::string format_addr(const ipv6_bytes& ip) {
    return format_ipv6(ip);
}

template <typename Addr> std::string describe(uint16_t port, const Addr& ip) {
    return "neighbour " + format_addr(ip) + " on port " + std::to_string(port);
}

constexpr mac_bytes zero_mac{};

} // namespace

template <typename Addr>
result<std::unique_ptr<basic_neighbour_table<Addr>>>
basic_neighbour_table<Addr>::create(uint32_t capacity, neighbour_timers t, int socket_id) {
    if (capacity < 8 || capacity > (1u << 22))
        return error{errc::invalid_argument, "neighbour table: capacity must be 8..4194304"};
    if (t.max_requests == 0)
        return error{errc::invalid_argument, "neighbour table: max_requests must be >= 1"};
    static std::atomic<uint32_t> seq{0};
    std::string name = (sizeof(Addr) == 4 ? "sagd_nbr_" : "sagd_nbr6_") + std::to_string(seq.fetch_add(1));
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = capacity;
    p.key_len = sizeof(basic_neighbour_key<Addr>);
    p.hash_func = rte_jhash;
    p.hash_func_init_val = 0;
    p.socket_id = socket_id;
    // Lock-free readers against one writer; the extendable table guarantees `capacity` keys
    // fit whatever the bucket distribution.
    p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    rte_hash* h = rte_hash_create(&p);
    if (h == nullptr)
        return error{errc::dpdk_error, "neighbour table: rte_hash_create failed: " +
                                           std::string(rte_strerror(rte_errno))};
    std::unique_ptr<basic_neighbour_table> t_(new basic_neighbour_table());
    t_->hash_ = h;
    t_->capacity_ = capacity;
    t_->slots_.reset(new entry[capacity]);
    t_->timers_ = t;
    t_->free_.reserve(capacity);
    for (uint32_t i = capacity; i-- > 0;)
        t_->free_.push_back(i);
    return t_;
}

template <typename Addr> basic_neighbour_table<Addr>::~basic_neighbour_table() {
    rte_hash_free(hash_);
}

template <typename Addr>
const typename basic_neighbour_table<Addr>::entry* basic_neighbour_table<Addr>::lookup(uint16_t port, const Addr& ip) const noexcept {
    basic_neighbour_key<Addr> k = make_key(port, ip);
    void* data = nullptr;
    if (rte_hash_lookup_data(hash_, &k, &data) < 0) [[unlikely]]
        return nullptr;
    return &slots_[reinterpret_cast<uintptr_t>(data)];
}

template <typename Addr>
void basic_neighbour_table<Addr>::lookup_bulk(const uint16_t* ports, const Addr* ips, unsigned n,
                                  const entry** out) const noexcept {
    constexpr unsigned chunk = RTE_HASH_LOOKUP_BULK_MAX;
    basic_neighbour_key<Addr> keys[chunk];
    const void* kp[chunk];
    void* data[chunk];
    for (unsigned base = 0; base < n; base += chunk) {
        unsigned m = n - base < chunk ? n - base : chunk;
        for (unsigned i = 0; i < m; ++i) {
            keys[i] = make_key(ports[base + i], ips[base + i]);
            kp[i] = &keys[i];
        }
        uint64_t hits = 0;
        if (rte_hash_lookup_bulk_data(hash_, kp, m, &hits, data) < 0) [[unlikely]]
            hits = 0;
        for (unsigned i = 0; i < m; ++i)
            out[base + i] =
                (hits >> i) & 1 ? &slots_[reinterpret_cast<uintptr_t>(data[i])] : nullptr;
    }
}

template <typename Addr>
typename basic_neighbour_table<Addr>::entry* basic_neighbour_table<Addr>::find(uint16_t port, const Addr& ip) const noexcept {
    return const_cast<entry*>(lookup(port, ip));
}

template <typename Addr>
result<typename basic_neighbour_table<Addr>::entry*> basic_neighbour_table<Addr>::insert(uint16_t port, const Addr& ip) {
    if (free_.empty())
        reclaim();
    if (free_.empty())
        return error{errc::table_full, describe(port, ip) + ": neighbour table full (" +
                                           std::to_string(capacity_) + " entries)"};
    uint32_t slot = free_.back();
    entry& e = slots_[slot];
    e.port_ = port;
    e.ip_ = ip;
    e.updated_ms = 0;
    e.last_request_ms = 0;
    e.requests = 0;
    e.used_.store(0, std::memory_order_relaxed);
    e.publish(zero_mac, neighbour_state::incomplete);
    basic_neighbour_key<Addr> k = make_key(port, ip);
    // The key becomes visible to readers here, after the entry is initialised.
    int rc = rte_hash_add_key_data(hash_, &k, reinterpret_cast<void*>(uintptr_t{slot}));
    if (rc < 0)
        return error{rc == -ENOSPC ? errc::table_full : errc::dpdk_error,
                     describe(port, ip) + ": cannot add to hash: " + rte_strerror(-rc)};
    int32_t pos = rte_hash_lookup(hash_, &k);
    e.hash_pos_ = pos < 0 ? 0 : static_cast<uint32_t>(pos);
    e.in_use_ = true;
    free_.pop_back();
    ++live_;
    return &e;
}

template <typename Addr>
void basic_neighbour_table<Addr>::erase(entry& e) {
    e.publish(zero_mac, neighbour_state::none);
    basic_neighbour_key<Addr> k = make_key(e.port_, e.ip_);
    int32_t pos = rte_hash_del_key(hash_, &k);
    if (pos >= 0)
        e.hash_pos_ = static_cast<uint32_t>(pos);
    e.in_use_ = false;
    --live_;
    uint32_t slot = static_cast<uint32_t>(&e - slots_.get());
    parked_.push_back({slot, qsbr_ ? rte_rcu_qsbr_start(qsbr_) : 0});
}

template <typename Addr>
void basic_neighbour_table<Addr>::reclaim() {
    if (qsbr_ == nullptr)
        return;
    size_t kept = 0;
    for (auto& p : parked_) {
        if (rte_rcu_qsbr_check(qsbr_, p.token, false) == 1) {
            rte_hash_free_key_with_position(hash_, static_cast<int32_t>(slots_[p.slot].hash_pos_));
            free_.push_back(p.slot);
        } else {
            parked_[kept++] = p;
        }
    }
    parked_.resize(kept);
}

template <typename Addr>
void basic_neighbour_table<Addr>::reclaim_all() {
    for (auto& p : parked_) {
        rte_hash_free_key_with_position(hash_, static_cast<int32_t>(slots_[p.slot].hash_pos_));
        free_.push_back(p.slot);
    }
    parked_.clear();
}

template <typename Addr>
result<learn_outcome> basic_neighbour_table<Addr>::learn(uint16_t port, const Addr& ip, const mac_bytes& mac,
                                             uint64_t now, bool for_us) {
    entry* e = find(port, ip);
    learn_outcome outcome = learn_outcome::updated;
    if (e == nullptr) {
        if (!for_us)
            return learn_outcome::ignored; // RFC 826: merge only, no new entry
        auto r = insert(port, ip);
        if (!r)
            return r.err();
        e = r.value();
        outcome = learn_outcome::created;
    } else {
        neighbour_view v = e->read();
        if (v.state == neighbour_state::permanent)
            return learn_outcome::ignored;
        if (v.state == neighbour_state::reachable && v.mac == mac)
            outcome = learn_outcome::refreshed;
    }
    e->updated_ms = now;
    e->requests = 0;
    e->used_.store(0, std::memory_order_relaxed);
    e->publish(mac, neighbour_state::reachable);
    return outcome;
}

template <typename Addr>
bool basic_neighbour_table<Addr>::resolve_wanted(uint16_t port, const Addr& ip, uint64_t now) {
    entry* e = find(port, ip);
    if (e == nullptr) {
        auto r = insert(port, ip);
        if (!r) {
            ++full_misses_;
            return false;
        }
        e = r.value();
        e->updated_ms = now;
        e->requests = 1;
        e->last_request_ms = now;
        return true;
    }
    switch (e->read().state) {
    case neighbour_state::incomplete:
        if (now - e->last_request_ms < timers_.retrans_ms)
            return false;
        if (e->requests < timers_.max_requests) {
            ++e->requests;
            e->last_request_ms = now;
            return true;
        }
        e->updated_ms = now;
        e->publish(zero_mac, neighbour_state::failed);
        return false;
    case neighbour_state::failed:
        if (now - e->updated_ms < timers_.failed_hold_ms)
            return false;
        e->updated_ms = now;
        e->requests = 1;
        e->last_request_ms = now;
        e->publish(zero_mac, neighbour_state::incomplete);
        return true;
    case neighbour_state::stale:
        e->mark_used(); // aging will re-check it
        return false;
    default:
        return false;
    }
}

template <typename Addr>
status basic_neighbour_table<Addr>::add_static(uint16_t port, const Addr& ip, const mac_bytes& mac) {
    entry* e = find(port, ip);
    if (e == nullptr) {
        auto r = insert(port, ip);
        if (!r)
            return r.err();
        e = r.value();
    }
    e->requests = 0;
    e->publish(mac, neighbour_state::permanent);
    return ok();
}

template <typename Addr>
status basic_neighbour_table<Addr>::remove(uint16_t port, const Addr& ip) {
    entry* e = find(port, ip);
    if (e == nullptr)
        return error{errc::not_found, describe(port, ip) + ": not found"};
    erase(*e);
    return ok();
}

template <typename Addr>
void basic_neighbour_table<Addr>::flush(uint16_t port, bool include_static) {
    for (uint32_t i = 0; i < capacity_; ++i) {
        entry& e = slots_[i];
        if (!e.in_use_ || e.port_ != port)
            continue;
        if (!include_static && e.read().state == neighbour_state::permanent)
            continue;
        erase(e);
    }
}

template <typename Addr>
typename basic_neighbour_table<Addr>::age_action basic_neighbour_table<Addr>::age_one(entry& e, uint64_t now) {
    auto retry = [&](entry& x) {
        if (now - x.last_request_ms < timers_.retrans_ms)
            return age_action::none;
        if (x.requests < timers_.max_requests) {
            ++x.requests;
            x.last_request_ms = now;
            return age_action::request;
        }
        x.updated_ms = now;
        x.publish(zero_mac, neighbour_state::failed);
        return age_action::none;
    };
    switch (e.read().state) {
    case neighbour_state::incomplete:
    case neighbour_state::probe:
        return retry(e);
    case neighbour_state::reachable:
        if (now - e.updated_ms >= timers_.reachable_ms) {
            e.used_.store(0, std::memory_order_relaxed);
            e.updated_ms = now;
            e.publish(e.read().mac, neighbour_state::stale);
        }
        return age_action::none;
    case neighbour_state::stale:
        if (e.used_.load(std::memory_order_relaxed)) {
            // RFC 1122 2.3.2.1: revalidate an entry that is still in use.
            e.used_.store(0, std::memory_order_relaxed);
            e.requests = 1;
            e.last_request_ms = now;
            e.publish(e.read().mac, neighbour_state::probe);
            return age_action::request;
        }
        return now - e.updated_ms >= timers_.stale_gc_ms ? age_action::erase : age_action::none;
    case neighbour_state::failed:
        return now - e.updated_ms >= timers_.failed_hold_ms ? age_action::erase : age_action::none;
    case neighbour_state::none:
    case neighbour_state::permanent:
        return age_action::none;
    }
    return age_action::none;
}

template class basic_neighbour_table<uint32_t>;
template class basic_neighbour_table<ipv6_bytes>;

} // namespace sagd::fwd
