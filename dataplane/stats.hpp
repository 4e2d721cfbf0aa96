// Reading the per-worker counters: sums over workers, the balance check, per-tunnel figures.
// Safe while workers run (each counter has one writer; readers see a recent value).
#pragma once

#include <array>
#include <cstdint>

#include "dataplane/gateway.hpp"

namespace sagd::dp {

struct totals {
    uint64_t rx = 0, tx = 0, punted = 0, injected = 0, handoff_in = 0, handoff_out = 0;
    uint64_t drops = 0;
    std::array<uint64_t, n_drop_reasons> by_reason{};
    std::array<port_counters, max_ports> ports{};

    // rx + injected + handoff_in == tx + punted + handoff_out + drops (see counters.hpp).
    // Read while packets are in flight, the two sides may differ by the packets a worker is
    // processing right now; `in_flight()` says by how much.
    int64_t in_flight() const noexcept {
        return static_cast<int64_t>(rx + injected + handoff_in) -
               static_cast<int64_t>(tx + punted + handoff_out + drops);
    }
};

totals sum_counters(const gateway& gw) noexcept;

struct tunnel_stats {
    uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
    uint64_t encrypt_errors = 0, seq_exhausted = 0;
    uint64_t decrypt_errors = 0, icv_fail = 0, replay = 0, bad_padding = 0, bad_next_header = 0,
             malformed = 0;
    uint64_t outbound_seq = 0;
};

// A tunnel's figures: its live SAs plus (when given) the SAs it retired (rekey, replace).
tunnel_stats read_tunnel(const tunnel_runtime& t,
                         const retired_sa_counters* retired = nullptr) noexcept;

} // namespace sagd::dp
