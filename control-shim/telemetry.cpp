#include "control-shim/telemetry.hpp"

#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string>

#include <rte_mempool.h>
#include <rte_telemetry.h>

#include "control-shim/config_yaml.hpp"

namespace sagd::shim {

namespace {

// DPDK 22.11 telemetry callbacks carry no user pointer: one gateway per process. They run on
// DPDK's telemetry thread, so the pointer is guarded: shutdown clears it before the gateway
// goes away, and a query that comes later gets -EAGAIN instead of freed memory.
std::shared_mutex g_lock;
const dp::gateway* g_gw = nullptr;

using endpoint = int (*)(const dp::gateway&, const char* params, rte_tel_data*);

template <endpoint E> int guarded(const char*, const char* params, rte_tel_data* d) {
    std::shared_lock lock(g_lock);
    if (g_gw == nullptr)
        return -EAGAIN;
    std::shared_lock tables_lock(g_gw->readers_mutex()); // the snapshot stays while we look
    return E(*g_gw, params, d);
}

void add_u64(rte_tel_data* d, const char* name, uint64_t v) {
    rte_tel_data_add_dict_u64(d, name, v);
}

int stats_cb(const dp::gateway& gw, const char*, rte_tel_data* d) {
    auto t = dp::sum_counters(gw);
    const auto& s = gw.slow_path();
    rte_tel_data_start_dict(d);
    add_u64(d, "rx", t.rx);
    add_u64(d, "tx", t.tx);
    add_u64(d, "punted", t.punted);
    add_u64(d, "injected", t.injected);
    add_u64(d, "handoff_in", t.handoff_in);
    add_u64(d, "handoff_out", t.handoff_out);
    add_u64(d, "drops", t.drops);
    rte_tel_data_add_dict_int(d, "in_flight", static_cast<int>(t.in_flight()));
    // Pool occupancy: a leak shows as in-use mbufs that keep growing at a steady rate.
    add_u64(d, "mbufs_in_use", rte_mempool_in_use_count(gw.pool()));
    add_u64(d, "mbufs_available", rte_mempool_avail_count(gw.pool()));
    add_u64(d, "slow_punted_in", s.punted_in);
    add_u64(d, "slow_arp_in", s.arp_in);
    add_u64(d, "slow_arp_replies_sent", s.arp_replies_sent);
    add_u64(d, "slow_arp_requests_sent", s.arp_requests_sent);
    add_u64(d, "slow_held", s.held);
    add_u64(d, "slow_held_sent", s.held_sent);
    add_u64(d, "slow_held_dropped_unresolved", s.held_dropped_unresolved);
    add_u64(d, "slow_held_dropped_full", s.held_dropped_full);
    add_u64(d, "slow_icmp_errors_sent", s.icmp_errors_sent);
    add_u64(d, "slow_icmp_errors_suppressed", s.icmp_errors_suppressed);
    add_u64(d, "slow_inject_full", s.inject_full);
    add_u64(d, "slow_dropped", s.dropped);
    return 0;
}

int drops_cb(const dp::gateway& gw, const char*, rte_tel_data* d) {
    auto t = dp::sum_counters(gw);
    rte_tel_data_start_dict(d);
    for (unsigned i = 0; i < dp::n_drop_reasons; ++i)
        add_u64(d, dp::drop_infos[i].name, t.by_reason[i]);
    return 0;
}

void add_port(rte_tel_data* d, const dp::port_runtime& p, const dp::port_counters& c) {
    add_u64(d, "port_id", p.port_id);
    rte_tel_data_add_dict_string(d, "role", p.role == port_role::lan ? "lan" : "wan");
    rte_tel_data_add_dict_string(d, "address", format_ipv4(p.address).c_str());
    add_u64(d, "rx_packets", c.rx_packets);
    add_u64(d, "rx_bytes", c.rx_bytes);
    add_u64(d, "tx_packets", c.tx_packets);
    add_u64(d, "tx_bytes", c.tx_bytes);
}

int ports_cb(const dp::gateway& gw, const char* params, rte_tel_data* d) {
    auto t = dp::sum_counters(gw);
    const auto& ports = gw.tbl().ports;
    rte_tel_data_start_dict(d);
    for (size_t i = 0; i < ports.size(); ++i) {
        if (params != nullptr && *params != '\0') {
            if (ports[i].name == params) {
                add_port(d, ports[i], t.ports[i]);
                return 0;
            }
            continue;
        }
        rte_tel_data* c = rte_tel_data_alloc();
        if (c == nullptr)
            return -ENOMEM;
        rte_tel_data_start_dict(c);
        add_port(c, ports[i], t.ports[i]);
        rte_tel_data_add_dict_container(d, ports[i].name.c_str(), c, 0);
    }
    return params != nullptr && *params != '\0' ? -EINVAL : 0;
}

int tunnels_cb(const dp::gateway& gw, const char*, rte_tel_data* d) {
    rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
    for (const auto& t : gw.tbl().tunnels)
        if (t && rte_tel_data_add_array_string(d, t->name.c_str()) != 0)
            break; // more than RTE_TEL_MAX_ARRAY_ENTRIES: the list is truncated
    return 0;
}

int tunnel_cb(const dp::gateway& gw, const char* params, rte_tel_data* d) {
    if (params == nullptr)
        return -EINVAL;
    if (const dp::tunnel_runtime* tp = gw.tbl().find_tunnel(params)) {
        const auto& t = *tp;
        auto s = dp::read_tunnel(t, gw.writer().retired(t.name));
        rte_tel_data_start_dict(d);
        rte_tel_data_add_dict_string(d, "peer", format_ipv4(t.peer).c_str());
        rte_tel_data_add_dict_string(d, "encap", t.udp ? "esp-udp" : "esp");
        add_u64(d, "worker", t.owner);
        add_u64(d, "tx_packets", s.tx_packets);
        add_u64(d, "tx_bytes", s.tx_bytes);
        add_u64(d, "rx_packets", s.rx_packets);
        add_u64(d, "rx_bytes", s.rx_bytes);
        add_u64(d, "encrypt_errors", s.encrypt_errors);
        add_u64(d, "seq_exhausted", s.seq_exhausted);
        add_u64(d, "decrypt_errors", s.decrypt_errors);
        add_u64(d, "icv_fail", s.icv_fail);
        add_u64(d, "replay", s.replay);
        add_u64(d, "bad_padding", s.bad_padding);
        add_u64(d, "bad_next_header", s.bad_next_header);
        add_u64(d, "malformed", s.malformed);
        add_u64(d, "outbound_seq", s.outbound_seq);
        // Health (issue 5): in service or not, why, and how often it changed.
        if (t.health) {
            const dp::tunnel_health& h = *t.health;
            rte_tel_data_add_dict_string(d, "state", h.up() ? "up" : "down");
            std::string why;
            for (uint8_t bit = 1; bit != 0; bit = static_cast<uint8_t>(bit << 1))
                if ((h.down_reasons() & bit) != 0)
                    why += std::string(why.empty() ? "" : ",") + dp::health_reason_name(bit);
            rte_tel_data_add_dict_string(d, "down_reasons", why.c_str());
            rte_tel_data_add_dict_string(d, "last_cause", dp::to_string(h.last_cause()));
            add_u64(d, "downs", h.downs());
            add_u64(d, "ups", h.ups());
        }
        return 0;
    }
    return -EINVAL;
}

int workers_cb(const dp::gateway& gw, const char*, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    for (const auto& w : gw.workers()) {
        const auto& c = w->counters;
        rte_tel_data* x = rte_tel_data_alloc();
        if (x == nullptr)
            return -ENOMEM;
        rte_tel_data_start_dict(x);
        add_u64(x, "lcore", w->lcore);
        add_u64(x, "loops", c.loops);
        add_u64(x, "busy_loops", c.busy_loops);
        add_u64(x, "busy_permille", c.loops ? c.busy_loops * 1000 / c.loops : 0);
        add_u64(x, "cycles_per_packet", c.busy_packets ? c.busy_cycles / c.busy_packets : 0);
        add_u64(x, "busy_cycles", c.busy_cycles); // raw sums, for rates over a window
        add_u64(x, "busy_packets", c.busy_packets);
        add_u64(x, "rx", c.rx);
        add_u64(x, "tx", c.tx);
        std::string name = "worker" + std::to_string(w->index);
        rte_tel_data_add_dict_container(d, name.c_str(), x, 0);
    }
    return 0;
}

int neighbours_cb(const dp::gateway& gw, const char*, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    const auto& ports = gw.tbl().ports;
    unsigned n = 0;
    gw.neighbours().for_each([&](const fwd::neighbour_entry& e) {
        if (++n > RTE_TEL_MAX_DICT_ENTRIES)
            return;
        auto v = e.read();
        char mac[32];
        snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x %s", v.mac[0], v.mac[1], v.mac[2],
                 v.mac[3], v.mac[4], v.mac[5], fwd::to_string(v.state));
        std::string key =
            (e.port() < ports.size() ? ports[e.port()].name : "?") + "/" + format_ipv4(e.ip());
        rte_tel_data_add_dict_string(d, key.c_str(), mac);
    });
    gw.neighbours6().for_each([&](const fwd::neighbour6_entry& e) {
        if (++n > RTE_TEL_MAX_DICT_ENTRIES)
            return;
        auto v = e.read();
        char mac[32];
        snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x %s", v.mac[0], v.mac[1], v.mac[2],
                 v.mac[3], v.mac[4], v.mac[5], fwd::to_string(v.state));
        std::string key =
            (e.port() < ports.size() ? ports[e.port()].name : "?") + "/" + fwd::format_ipv6(e.ip());
        rte_tel_data_add_dict_string(d, key.c_str(), mac);
    });
    return 0;
}

} // namespace

void register_telemetry(const dp::gateway& gw) {
    {
        std::unique_lock lock(g_lock);
        g_gw = &gw;
    }
    rte_telemetry_register_cmd("/sagd/stats", guarded<stats_cb>,
                               "sagd totals, balance and slow-path counters. No parameters");
    rte_telemetry_register_cmd("/sagd/drops", guarded<drops_cb>,
                               "sagd drops per reason. No parameters");
    rte_telemetry_register_cmd("/sagd/ports", guarded<ports_cb>,
                               "sagd port counters. Parameter: port name (optional)");
    rte_telemetry_register_cmd("/sagd/tunnels", guarded<tunnels_cb>,
                               "sagd tunnel names. No parameters");
    rte_telemetry_register_cmd("/sagd/tunnel", guarded<tunnel_cb>,
                               "one tunnel's counters. Parameter: tunnel name");
    rte_telemetry_register_cmd("/sagd/workers", guarded<workers_cb>,
                               "sagd workers: busy ratio, cycles per packet. No parameters");
    rte_telemetry_register_cmd("/sagd/neighbours", guarded<neighbours_cb>,
                               "sagd ARP table (first 256 entries). No parameters");
}

void unregister_telemetry() {
    std::unique_lock lock(g_lock);
    g_gw = nullptr;
}

} // namespace sagd::shim
