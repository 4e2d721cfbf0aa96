#include "control-shim/metrics.hpp"

#include "control-shim/fpm_server.hpp"
#include "control-shim/prometheus.hpp"
#include "dataplane/stats.hpp"

#include <rte_mempool.h>

namespace sagd::shim {

std::string render_metrics(const dp::gateway& gw, const fpm_server* fpm) {
    prom_writer w(invalid_call::skip);
    auto s = dp::sum_counters(gw);
    const auto& t = gw.tbl();

    w.family("sagd_packets_total", prom_type::counter,
             "Packets by where they ended (rx, tx, punted to the slow path)");
    w.sample({{"kind", "rx"}}, s.rx);
    w.sample({{"kind", "tx"}}, s.tx);
    w.sample({{"kind", "punted"}}, s.punted);
    w.sample({{"kind", "dropped"}}, s.drops);
    w.family("sagd_drops_total", prom_type::counter, "Dropped packets by reason");
    for (unsigned i = 0; i < dp::n_drop_reasons; ++i)
        w.sample({{"reason", dp::drop_infos[i].name}}, s.by_reason[i]);

    w.family("sagd_port_packets_total", prom_type::counter, "Packets per port and direction");
    for (size_t i = 0; i < t.ports.size(); ++i) {
        w.sample({{"port", t.ports[i].name}, {"direction", "rx"}}, s.ports[i].rx_packets);
        w.sample({{"port", t.ports[i].name}, {"direction", "tx"}}, s.ports[i].tx_packets);
    }
    w.family("sagd_port_bytes_total", prom_type::counter, "Bytes per port and direction");
    for (size_t i = 0; i < t.ports.size(); ++i) {
        w.sample({{"port", t.ports[i].name}, {"direction", "rx"}}, s.ports[i].rx_bytes);
        w.sample({{"port", t.ports[i].name}, {"direction", "tx"}}, s.ports[i].tx_bytes);
    }

    std::vector<std::pair<std::string, dp::tunnel_stats>> tunnels;
    for (const auto& tun : t.tunnels)
        if (tun)
            tunnels.emplace_back(tun->name, dp::read_tunnel(*tun, gw.writer().retired(tun->name)));
    w.family("sagd_tunnel_packets_total", prom_type::counter,
             "Inner packets per tunnel: tx encrypted, rx decrypted and accepted");
    for (const auto& [name, ts] : tunnels) {
        w.sample({{"tunnel", name}, {"direction", "tx"}}, ts.tx_packets);
        w.sample({{"tunnel", name}, {"direction", "rx"}}, ts.rx_packets);
    }
    w.family("sagd_tunnel_bytes_total", prom_type::counter, "Inner bytes per tunnel");
    for (const auto& [name, ts] : tunnels) {
        w.sample({{"tunnel", name}, {"direction", "tx"}}, ts.tx_bytes);
        w.sample({{"tunnel", name}, {"direction", "rx"}}, ts.rx_bytes);
    }
    w.family("sagd_tunnel_errors_total", prom_type::counter, "ESP errors per tunnel and kind");
    for (const auto& [name, ts] : tunnels) {
        w.sample({{"tunnel", name}, {"kind", "icv_fail"}}, ts.icv_fail);
        w.sample({{"tunnel", name}, {"kind", "replay"}}, ts.replay);
        w.sample({{"tunnel", name}, {"kind", "decrypt"}}, ts.decrypt_errors);
        w.sample({{"tunnel", name}, {"kind", "encrypt"}}, ts.encrypt_errors);
        w.sample({{"tunnel", name}, {"kind", "seq_exhausted"}}, ts.seq_exhausted);
    }

    // Health and failover (issue 5).
    w.family("sagd_tunnel_up", prom_type::gauge,
             "1 when the tunnel may carry traffic (BFD Up, link up)");
    for (const auto& tun : t.tunnels)
        if (tun && tun->health)
            w.sample({{"tunnel", tun->name}}, uint64_t{tun->health->up() ? 1u : 0u});
    w.family("sagd_tunnel_health_transitions_total", prom_type::counter,
             "Tunnel health changes by direction");
    for (const auto& tun : t.tunnels)
        if (tun && tun->health) {
            w.sample({{"tunnel", tun->name}, {"to", "down"}}, tun->health->downs());
            w.sample({{"tunnel", tun->name}, {"to", "up"}}, tun->health->ups());
        }
    w.family("sagd_bfd_state", prom_type::gauge,
             "BFD session state per tunnel (RFC 5880: 0 AdminDown, 1 Down, 2 Init, 3 Up)");
    for (const auto& tun : t.tunnels)
        if (tun && tun->health && tun->bfd)
            w.sample({{"tunnel", tun->name}},
                     uint64_t{tun->health->bfd.view_state.load(std::memory_order_relaxed)});
    w.family("sagd_bfd_packets_total", prom_type::counter, "BFD control packets per tunnel");
    for (const auto& tun : t.tunnels)
        if (tun && tun->health && tun->bfd) {
            const auto& b = tun->health->bfd;
            w.sample({{"tunnel", tun->name}, {"direction", "tx"}},
                     b.tx.load(std::memory_order_relaxed));
            w.sample({{"tunnel", tun->name}, {"direction", "rx"}},
                     b.rx.load(std::memory_order_relaxed));
            w.sample({{"tunnel", tun->name}, {"direction", "rx_dropped"}},
                     b.rx_dropped.load(std::memory_order_relaxed));
        }
    w.family("sagd_bfd_transitions_total", prom_type::counter,
             "BFD session transitions to Up/Down");
    for (const auto& tun : t.tunnels)
        if (tun && tun->health && tun->bfd) {
            const auto& b = tun->health->bfd;
            w.sample({{"tunnel", tun->name}, {"to", "up"}},
                     b.up_transitions.load(std::memory_order_relaxed));
            w.sample({{"tunnel", tun->name}, {"to", "down"}},
                     b.down_transitions.load(std::memory_order_relaxed));
        }
    w.family("sagd_tunnel_sla_loss_ratio", prom_type::gauge,
             "Health-check probe loss over the last 100 probes (0..1)");
    for (const auto& tun : t.tunnels)
        if (tun && tun->health && tun->check)
            w.sample({{"tunnel", tun->name}},
                     tun->health->check.loss_permille.load(std::memory_order_relaxed) / 1000.0);
    w.family("sagd_tunnel_sla_latency_seconds", prom_type::gauge,
             "Mean health-check round-trip time over the last 100 probes");
    for (const auto& tun : t.tunnels)
        if (tun && tun->health && tun->check)
            w.sample({{"tunnel", tun->name}},
                     tun->health->check.latency_ns.load(std::memory_order_relaxed) / 1e9);
    w.family("sagd_tunnel_sla_jitter_seconds", prom_type::gauge,
             "Mean difference of consecutive health-check round-trip times");
    for (const auto& tun : t.tunnels)
        if (tun && tun->health && tun->check)
            w.sample({{"tunnel", tun->name}},
                     tun->health->check.jitter_ns.load(std::memory_order_relaxed) / 1e9);
    w.family("sagd_group_switches_total", prom_type::counter,
             "Changes of a group's active members by kind (failover: away from a failed member; "
             "failback: back after the hold-down)");
    for (const auto& g : t.groups)
        if (g && g->name != "ecmp")
            if (const auto* st = gw.health().group(g->name)) {
                w.sample({{"group", g->name}, {"kind", "failover"}}, st->failovers);
                w.sample({{"group", g->name}, {"kind", "failback"}}, st->failbacks);
                w.sample({{"group", g->name}, {"kind", "other"}},
                         st->switches - st->failovers - st->failbacks);
            }
    w.family("sagd_port_link_up", prom_type::gauge, "WAN port link state as sagd sees it");
    for (size_t i = 0; i < t.ports.size(); ++i)
        if (t.ports[i].role == port_role::wan)
            w.sample({{"port", t.ports[i].name}}, uint64_t{gw.health().port_link(i) ? 1u : 0u});
    w.family("sagd_worker_busy_ratio", prom_type::gauge,
             "Share of poll loops that found work, since start");
    for (const auto& wk : gw.workers()) {
        const auto& c = wk->counters;
        std::string idx = std::to_string(wk->index);
        w.sample({{"worker", idx}},
                 c.loops ? static_cast<double>(c.busy_loops) / static_cast<double>(c.loops) : 0.0);
    }
    w.family("sagd_worker_cycles_per_packet", prom_type::gauge,
             "TSC cycles per packet in busy loops, since start");
    for (const auto& wk : gw.workers()) {
        const auto& c = wk->counters;
        std::string idx = std::to_string(wk->index);
        w.sample({{"worker", idx}}, c.busy_packets ? c.busy_cycles / c.busy_packets : 0);
    }
    w.family("sagd_worker_busy_cycles_total", prom_type::counter,
             "TSC cycles spent in busy loops (rate() over a window gives recent load)");
    for (const auto& wk : gw.workers())
        w.sample({{"worker", std::to_string(wk->index)}}, wk->counters.busy_cycles);

    w.family("sagd_fib_routes", prom_type::gauge, "Installed IPv4 prefixes and candidates");
    w.sample({{"kind", "installed"}}, static_cast<uint64_t>(gw.writer().fib().prefix_count()));
    w.sample({{"kind", "candidates"}}, static_cast<uint64_t>(gw.writer().fib().route_count()));
    w.sample({{"kind", "learned"}}, static_cast<uint64_t>(gw.writer().learned_count()));
    w.family("sagd_fib6_routes", prom_type::gauge, "Installed IPv6 prefixes and candidates");
    w.sample({{"kind", "installed"}}, static_cast<uint64_t>(gw.writer().fib6().prefix_count()));
    w.sample({{"kind", "candidates"}}, static_cast<uint64_t>(gw.writer().fib6().route_count()));
    w.sample({{"kind", "learned"}}, static_cast<uint64_t>(gw.writer().learned6_count()));
    w.sample({{"kind", "limit"}}, uint64_t{gw.writer().limits().ipv6_routes});
    w.family("sagd_tunnels", prom_type::gauge, "Configured tunnels");
    w.sample({}, static_cast<uint64_t>(tunnels.size()));
    w.family("sagd_neighbours", prom_type::gauge, "Neighbour entries: ARP (ipv4), ND (ipv6)");
    w.sample({{"family", "ipv4"}}, static_cast<uint64_t>(gw.neighbours().size()));
    w.sample({{"family", "ipv6"}}, static_cast<uint64_t>(gw.neighbours6().size()));
    w.family("sagd_changes_applied_total", prom_type::counter, "Table changes published");
    w.sample({}, gw.changes_applied());
    w.family("sagd_mbufs_in_use", prom_type::gauge, "Packet buffers in use");
    w.sample({}, static_cast<uint64_t>(rte_mempool_in_use_count(gw.pool())));

    if (fpm != nullptr) {
        const auto& c = fpm->counters();
        w.family("sagd_fpm_session_up", prom_type::gauge, "1 while zebra is connected");
        w.sample({}, uint64_t{fpm->connected() ? 1u : 0u});
        w.family("sagd_fpm_learned_routes", prom_type::gauge,
                 "Routes learned from zebra, by family, and installed ones");
        const size_t v4 = fpm->store().size(ip_family::ipv4);
        const size_t v6 = fpm->store().size(ip_family::ipv6);
        w.sample({{"family", "ipv4"}}, static_cast<uint64_t>(v4));
        w.sample({{"family", "ipv6"}}, static_cast<uint64_t>(v6));
        w.sample({{"family", "ipv4_installed"}},
                 static_cast<uint64_t>(fpm->installed_count() - fpm->installed6_count()));
        w.sample({{"family", "ipv6_installed"}}, static_cast<uint64_t>(fpm->installed6_count()));
        w.family("sagd_fpm_messages_total", prom_type::counter, "FPM messages by outcome");
        w.sample({{"outcome", "received"}}, c.messages);
        w.sample({{"outcome", "decode_error"}}, c.decode_errors);
        w.sample({{"outcome", "framing_error"}}, c.framing_errors);
        w.family("sagd_fpm_sessions_total", prom_type::counter, "zebra sessions accepted");
        w.sample({}, c.sessions);
    }
    return w.take();
}

} // namespace sagd::shim
