#include "dataplane/stats.hpp"

namespace sagd::dp {

totals sum_counters(const gateway& gw) noexcept {
    totals t;
    for (const auto& w : gw.workers()) {
        const worker_counters& c = w->counters;
        t.rx += c.rx;
        t.tx += c.tx;
        t.punted += c.punted;
        t.injected += c.injected;
        t.handoff_in += c.handoff_in;
        t.handoff_out += c.handoff_out;
        for (unsigned i = 0; i < n_drop_reasons; ++i) {
            t.by_reason[i] += c.drops[i];
            t.drops += c.drops[i];
        }
        for (unsigned p = 0; p < max_ports; ++p) {
            t.ports[p].rx_packets += c.ports[p].rx_packets;
            t.ports[p].rx_bytes += c.ports[p].rx_bytes;
            t.ports[p].tx_packets += c.ports[p].tx_packets;
            t.ports[p].tx_bytes += c.ports[p].tx_bytes;
        }
    }
    return t;
}

tunnel_stats read_tunnel(const tunnel_runtime& t, const retired_sa_counters* retired) noexcept {
    tunnel_stats s;
    if (retired != nullptr) {
        s.tx_packets = retired->tx_packets;
        s.tx_bytes = retired->tx_bytes;
        s.encrypt_errors = retired->encrypt_errors;
        s.seq_exhausted = retired->seq_exhausted;
        s.rx_packets = retired->rx_packets;
        s.rx_bytes = retired->rx_bytes;
        s.decrypt_errors = retired->decrypt_errors;
        s.icv_fail = retired->icv_fail;
        s.replay = retired->replay;
        s.bad_padding = retired->bad_padding;
        s.bad_next_header = retired->bad_next_header;
        s.malformed = retired->malformed;
    }
    if (t.outbound) {
        s.tx_packets += t.outbound->packets;
        s.tx_bytes += t.outbound->bytes;
        s.encrypt_errors += t.outbound->errors;
        s.seq_exhausted += t.outbound->seq_exhausted;
        s.outbound_seq = t.outbound->seq;
    }
    for (const auto& in : t.inbound) {
        s.rx_packets += in->packets;
        s.rx_bytes += in->bytes;
        s.decrypt_errors += in->errors;
        s.icv_fail += in->icv_fail;
        s.replay += in->replay_drops;
        s.bad_padding += in->bad_padding;
        s.bad_next_header += in->bad_next_header;
        s.malformed += in->too_short;
    }
    return s;
}

} // namespace sagd::dp
