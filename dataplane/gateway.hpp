// The running data plane: ports, tables, workers and the control thread's slow path.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <vector>

#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_spinlock.h>

#include "dataplane/counters.hpp"
#include "dataplane/health_monitor.hpp"
#include "dataplane/rings.hpp"
#include "dataplane/table_writer.hpp"
#include "dataplane/tables.hpp"
#include "forwarding/neighbour.hpp"
#include "forwarding/rate_limiter.hpp"

namespace sagd::dp {

struct slow_path_counters {
    uint64_t punted_in = 0;
    uint64_t arp_in = 0;
    uint64_t arp_replies_sent = 0;
    uint64_t arp_requests_sent = 0;
    uint64_t held = 0;
    uint64_t held_sent = 0;
    uint64_t held_dropped_unresolved = 0;
    uint64_t held_dropped_full = 0;
    uint64_t icmp_errors_sent = 0;
    uint64_t icmp_errors_suppressed = 0; // rate-limited or not allowed (RFC 1812 4.3.2.7)
    uint64_t inject_full = 0;
    uint64_t dropped = 0; // ARP not for us, malformed ARP, no mbuf
    // IPv6 Neighbor Discovery (RFC 4861).
    uint64_t nd_in = 0;
    uint64_t nd_invalid = 0;    // failed the RFC 4861 7.1 checks (counted, dropped)
    uint64_t nd_not_for_us = 0; // NS for someone else's address
    uint64_t neighbor_adverts_sent = 0;
    uint64_t neighbor_solicits_sent = 0;
    uint64_t dad_defended = 0;      // a DAD probe (NS from ::) for one of our addresses
    uint64_t duplicate_address = 0; // an NA from someone else claiming one of our addresses
};

// Tx queue locks, used only on ports with fewer tx queues than workers.
struct tx_locks {
    static constexpr unsigned max_queues = 64;
    std::array<rte_spinlock_t, max_ports * max_queues> locks;
    rte_spinlock_t& at(uint8_t port, uint16_t queue) noexcept {
        return locks[port * max_queues + queue % max_queues];
    }
};

struct worker_context {
    unsigned index = 0;
    unsigned lcore = 0;
    rte_ring* handoff = nullptr; // handoff_msg, MP/SC
    rte_ring* inject = nullptr;  // inject_msg, SP/SC
    worker_counters counters;
    struct rx_queue {
        uint8_t port; // port index
        uint16_t queue;
    };
    std::vector<rx_queue> rx_queues;
    // BFD timers of the tunnels this worker owns: the snapshot generation last scanned and
    // the earliest wakeup among the sessions.
    uint64_t bfd_generation = UINT64_MAX;
    uint64_t bfd_next_ns = 0;
};

class gateway {
  public:
    static result<std::unique_ptr<gateway>> create(const config& cfg, rte_mempool* pool,
                                                   crypto::engine_kind engine,
                                                   const table_limits& limits = {});
    ~gateway();

    // Launches workers on the EAL worker lcores, then runs the control thread on the calling
    // (main) lcore until stop() (signal-safe) is called: the slow path, and `control` (the
    // runtime API, FPM; it returns true when it did work) between its passes. Returns after
    // every worker has exited, or at once with an error when EAL has too few lcores.
    status run(const std::function<bool(uint64_t now_ms)>& control = {});
    void stop() noexcept { stopping_.store(true, std::memory_order_relaxed); }
    bool stopping() const noexcept { return stopping_.load(std::memory_order_relaxed); }

    // The published tables. Control thread: always valid. Other threads (telemetry) hold
    // readers_mutex() shared while they look, so the snapshot is not retired under them.
    const tables& tbl() const noexcept { return *current_.load(std::memory_order_acquire); }
    std::shared_mutex& readers_mutex() const noexcept { return readers_mu_; }
    const table_writer& writer() const noexcept { return *writer_; }

    // Applies a change as one: builds the new tables (all or nothing), publishes them with one
    // pointer store, waits for every worker to pass a quiescent state, then frees what the old
    // tables alone used. Control thread only. Returns the failure, or nothing on success.
    std::optional<change_failure> apply(const change_set& changes);
    // Flushes dynamic neighbours (static ones stay). Control thread only.
    size_t flush_neighbours();
    uint64_t changes_applied() const noexcept { return changes_applied_; }
    const std::vector<std::unique_ptr<worker_context>>& workers() const noexcept {
        return workers_;
    }
    const fwd::neighbour_table& neighbours() const noexcept { return *neighbours_; }
    const fwd::neighbour6_table& neighbours6() const noexcept { return *neighbours6_; }
    const slow_path_counters& slow_path() const noexcept { return slow_; }
    // Tunnel health, link state and group failover as the control thread saw them last.
    // Control thread only.
    const health_monitor& health() const noexcept { return *health_; }

    // The data plane's clock (ns, monotonic; TSC based). Workers read it once per loop for
    // BFD timers and group hold-downs. Tests inject their own before stepping the pipeline.
    using clock_fn = uint64_t (*)() noexcept;
    uint64_t now_ns() const noexcept { return clock_.load(std::memory_order_relaxed)(); }
    void set_clock(clock_fn f) noexcept { clock_.store(f, std::memory_order_relaxed); }
    static uint64_t tsc_clock_ns() noexcept;
    rte_rcu_qsbr* qsbr() const noexcept { return qsbr_; }
    const rte_mempool* pool() const noexcept { return pool_; }

    // Worker entry (public for rte_eal_remote_launch's trampoline).
    int worker_main(worker_context& w) noexcept;

    // Synchronous stepping, for tests and benchmarks that drive the pipeline from one thread
    // instead of run(): one iteration of a worker, one pass of the slow path and its timers.
    void poll_worker(unsigned index) noexcept;
    void poll_slow_path(uint64_t now_ms);

  private:
    gateway() = default;
    bool slow_path_poll(uint64_t now_ms); // false when there was nothing to do
    void slow_path_timers(uint64_t now_ms);
    uint64_t last_age_ms_ = 0;
    void handle_arp(rte_mbuf* m, uint8_t port, uint64_t now_ms);
    void handle_resolve(const punt_msg& msg, uint64_t now_ms);
    void handle_icmp_error(const punt_msg& msg);
    void handle_nd(rte_mbuf* m, uint8_t port, uint64_t now_ms);
    void handle_resolve6(const punt_msg& msg, uint64_t now_ms);
    void handle_icmp6_error(const punt_msg& msg);
    void send_neighbor_solicit(uint8_t port, const ipv6_addr& target,
                               const fwd::mac_bytes* unicast = nullptr);
    void release_held6(uint8_t port, const ipv6_addr& addr, const rte_ether_addr& mac);
    void expire_held6(uint64_t now_ms);
    void send_arp_request(uint8_t port, ipv4_addr target);
    void release_held(uint8_t port, ipv4_addr addr, const rte_ether_addr& mac);
    void expire_held(uint64_t now_ms);
    bool inject(rte_mbuf* m, inject_kind kind, uint8_t port) noexcept;

    std::unique_ptr<table_writer> writer_;
    std::unique_ptr<tables> tables_;              // owns the published snapshot
    std::atomic<const tables*> current_{nullptr}; // what workers load once per iteration
    mutable std::shared_mutex readers_mu_;
    uint64_t changes_applied_ = 0;
    std::unique_ptr<fwd::neighbour_table> neighbours_;
    std::unique_ptr<health_monitor> health_;
    std::atomic<clock_fn> clock_{&gateway::tsc_clock_ns};
    std::unique_ptr<fwd::neighbour6_table> neighbours6_;
    std::vector<std::unique_ptr<worker_context>> workers_;
    rte_mempool* pool_ = nullptr;
    rte_ring* punt_ = nullptr;     // punt_msg, MP/SC
    rte_rcu_qsbr* qsbr_ = nullptr; // workers report quiescence once per loop
    tx_locks tx_locks_;
    std::atomic<bool> stopping_{false};
    slow_path_counters slow_;
    struct held_packet {
        rte_mbuf* m;
        uint8_t port;
        ipv4_addr addr;
        uint64_t since_ms;
    };
    std::vector<held_packet> held_; // bounded: packets waiting on ARP resolution
    struct held_packet6 {
        rte_mbuf* m;
        uint8_t port;
        ipv6_addr addr;
        uint64_t since_ms;
    };
    std::vector<held_packet6> held6_; // bounded like held_: packets waiting on ND
    fwd::rate_limiter icmp_limiter_;
    unsigned next_inject_worker_ = 0;
    uint16_t icmp_ip_id_ = 0;
};

} // namespace sagd::dp
