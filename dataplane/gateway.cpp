// Creating the data plane, launching workers, and the slow path that runs on the main lcore:
// ARP (RFC 826), packets waiting for a neighbour, and ICMP errors (rate-limited).
#include "dataplane/gateway.hpp"

#include <time.h>

#include <mutex>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "dataplane/rings.hpp"
#include "forwarding/packet.hpp"

namespace sagd::dp {

namespace {

constexpr unsigned punt_ring_size = 4096;
constexpr unsigned handoff_ring_size = 4096;
constexpr unsigned inject_ring_size = 1024;
constexpr size_t max_held_packets = 1024;
constexpr size_t max_held_per_neighbour = 16;
constexpr uint64_t held_timeout_ms = 3000;

uint64_t now_ms() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

rte_ring* make_ring(const std::string& name, unsigned size, unsigned flags) {
    return rte_ring_create_elem(name.c_str(), 16, size, static_cast<int>(rte_socket_id()), flags);
}

int worker_trampoline(void* arg) {
    auto* pair = static_cast<std::pair<gateway*, worker_context*>*>(arg);
    return pair->first->worker_main(*pair->second);
}

rte_ether_addr to_ether(const fwd::mac_bytes& b) {
    rte_ether_addr a;
    std::copy(b.begin(), b.end(), a.addr_bytes);
    return a;
}

fwd::mac_bytes to_bytes(const rte_ether_addr& a) {
    fwd::mac_bytes b;
    std::copy(std::begin(a.addr_bytes), std::end(a.addr_bytes), b.begin());
    return b;
}

} // namespace

result<std::unique_ptr<gateway>> gateway::create(const config& cfg, rte_mempool* pool,
                                                 crypto::engine_kind engine,
                                                 const table_limits& limits) {
    std::unique_ptr<gateway> gw(new gateway());
    gw->pool_ = pool;

    auto ports = start_ports(cfg.ports, cfg.workers, pool);
    if (!ports)
        return ports.err();
    auto writer = table_writer::create(cfg, ports.value(), engine, limits);
    if (!writer) {
        stop_ports(ports.value());
        return writer.err();
    }
    // From here on the destructor stops the ports and frees what was made.
    gw->writer_ = std::move(writer.value());
    gw->tables_ = gw->writer_->take_initial();
    gw->current_.store(gw->tables_.get(), std::memory_order_release);
    const tables& t = *gw->tables_;

    auto neigh = fwd::neighbour_table::create();
    if (!neigh)
        return error{"neighbours: " + neigh.err().message};
    gw->neighbours_ = std::move(neigh.value());
    auto neigh6 = fwd::neighbour6_table::create();
    if (!neigh6)
        return error{"neighbours (IPv6): " + neigh6.err().message};
    gw->neighbours6_ = std::move(neigh6.value());
    for (const auto& n : cfg.neighbours) {
        for (size_t i = 0; i < t.ports.size(); ++i) {
            if (t.ports[i].name != n.port)
                continue;
            auto st = gw->neighbours_->add_static(static_cast<uint16_t>(i), n.address, n.mac);
            if (!st)
                return error{"neighbours: " + st.err().message};
        }
    }

    std::vector<std::string> ifaces(t.ports.size());
    for (size_t i = 0; i < t.ports.size(); ++i)
        for (const auto& pc : cfg.ports) {
            if (pc.name != t.ports[i].name || pc.device.rfind("net_af_packet", 0) != 0)
                continue;
            auto at = pc.device.find("iface=");
            if (at != std::string::npos)
                ifaces[i] = pc.device.substr(at + 6, pc.device.find(',', at) - at - 6);
        }
    gw->health_ = std::make_unique<health_monitor>(std::move(ifaces));

    gw->punt_ = make_ring("sagd_punt", punt_ring_size, RING_F_SC_DEQ);
    if (gw->punt_ == nullptr)
        return error{"cannot create the slow-path ring: " + std::string(rte_strerror(rte_errno))};

    // Workers and their rx queues: queue q of every port goes to worker q; ports with fewer
    // queues than workers leave the last workers only SA hand-offs to do for that port.
    for (unsigned w = 0; w < cfg.workers; ++w) {
        auto ctx = std::make_unique<worker_context>();
        ctx->index = w;
        ctx->handoff =
            make_ring("sagd_handoff_" + std::to_string(w), handoff_ring_size, RING_F_SC_DEQ);
        ctx->inject = make_ring("sagd_inject_" + std::to_string(w), inject_ring_size,
                                RING_F_SP_ENQ | RING_F_SC_DEQ);
        bool rings_ok = ctx->handoff != nullptr && ctx->inject != nullptr;
        for (uint8_t p = 0; p < t.ports.size(); ++p)
            if (w < t.ports[p].n_rx_queues)
                ctx->rx_queues.push_back({p, static_cast<uint16_t>(w)});
        gw->workers_.push_back(std::move(ctx));
        if (!rings_ok)
            return error{"cannot create worker rings: " + std::string(rte_strerror(rte_errno))};
    }
    for (auto& l : gw->tx_locks_.locks)
        rte_spinlock_init(&l);

    size_t qsbr_size = rte_rcu_qsbr_get_memsize(cfg.workers);
    gw->qsbr_ =
        static_cast<rte_rcu_qsbr*>(rte_zmalloc("sagd_qsbr", qsbr_size, RTE_CACHE_LINE_SIZE));
    if (gw->qsbr_ == nullptr || rte_rcu_qsbr_init(gw->qsbr_, cfg.workers) != 0)
        return error{"cannot create the RCU state"};
    for (unsigned w = 0; w < cfg.workers; ++w)
        rte_rcu_qsbr_thread_register(gw->qsbr_, w);
    gw->neighbours_->attach_qsbr(gw->qsbr_);
    gw->neighbours6_->attach_qsbr(gw->qsbr_);
    gw->icmp_limiter_ = fwd::rate_limiter(100, 10, rte_get_tsc_hz());
    return gw;
}

gateway::~gateway() {
    if (tables_)
        stop_ports(tbl().ports);
    for (auto& w : workers_) {
        handoff_msg h;
        while (w->handoff != nullptr && rte_ring_dequeue_elem(w->handoff, &h, sizeof(h)) == 0)
            rte_pktmbuf_free(h.m);
        inject_msg i;
        while (w->inject != nullptr && rte_ring_dequeue_elem(w->inject, &i, sizeof(i)) == 0)
            rte_pktmbuf_free(i.m);
        rte_ring_free(w->handoff);
        rte_ring_free(w->inject);
    }
    if (punt_ != nullptr) {
        punt_msg p;
        while (rte_ring_dequeue_elem(punt_, &p, sizeof(p)) == 0)
            rte_pktmbuf_free(p.m);
        rte_ring_free(punt_);
    }
    for (auto& h : held_)
        rte_pktmbuf_free(h.m);
    for (auto& h : held6_)
        rte_pktmbuf_free(h.m);
    rte_free(qsbr_);
}

std::optional<change_failure> gateway::apply(const change_set& changes) {
    auto prepared = writer_->prepare(changes);
    if (auto* f = std::get_if<change_failure>(&prepared))
        return std::move(*f);
    std::unique_ptr<tables> next = std::move(std::get<table_writer::prepared>(prepared).snapshot);
    // Static neighbours first: they are needed by the new routes and harm nothing if the
    // publish below never happened (it cannot fail from here on).
    for (const auto& n : changes.delete_neighbours)
        for (size_t i = 0; i < next->ports.size(); ++i)
            if (next->ports[i].name == n.port)
                (void)neighbours_->remove(static_cast<uint16_t>(i), n.address);
    for (const auto& n : changes.put_neighbours)
        for (size_t i = 0; i < next->ports.size(); ++i)
            if (next->ports[i].name == n.port)
                (void)neighbours_->add_static(static_cast<uint16_t>(i), n.address, n.mac);
    writer_->publish_fib(*next);
    current_.store(next.get(), std::memory_order_release);
    writer_->set_current(next.get());
    // Every worker that could still hold the old snapshot reports quiescence once per loop
    // (a few microseconds); offline workers (stopped, or tests stepping them) do not count.
    rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
    std::unique_ptr<tables> old;
    {
        std::unique_lock lock(readers_mu_);
        old = std::move(tables_);
        tables_ = std::move(next);
        writer_->finish(*old);
        old.reset(); // frees tunnels and SAs only the old snapshot used
    }
    ++changes_applied_;
    return std::nullopt;
}

size_t gateway::flush_neighbours() {
    uint32_t before = neighbours_->size() + neighbours6_->size();
    for (size_t i = 0; i < tbl().ports.size(); ++i) {
        neighbours_->flush(static_cast<uint16_t>(i));
        neighbours6_->flush(static_cast<uint16_t>(i));
    }
    return before - neighbours_->size() - neighbours6_->size();
}

status gateway::run(const std::function<bool(uint64_t now_ms)>& control) {
    unsigned lcores = rte_lcore_count();
    if (workers_.size() + 1 > lcores)
        return error{"workers: " + std::to_string(workers_.size()) + " workers need " +
                     std::to_string(workers_.size() + 1) +
                     " lcores (one for the control thread), EAL has " + std::to_string(lcores) +
                     " (use -l 0-" + std::to_string(workers_.size()) + ")"};
    std::vector<std::pair<gateway*, worker_context*>> args;
    args.reserve(workers_.size());
    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    for (auto& w : workers_) {
        w->lcore = lcore;
        args.emplace_back(this, w.get());
        rte_eal_remote_launch(worker_trampoline, &args.back(), lcore);
        lcore = rte_get_next_lcore(lcore, 1, 0);
    }
    while (!stopping()) {
        uint64_t now = now_ms();
        bool busy = slow_path_poll(now);
        if (control)
            busy |= control(now);
        if (!busy) {
            timespec ts{0, 200'000}; // idle: 200 us keeps ARP and ICMP latency well below 1 ms
            nanosleep(&ts, nullptr);
        }
        slow_path_timers(now);
    }
    rte_eal_mp_wait_lcore();
    return ok();
}

void gateway::poll_slow_path(uint64_t now) {
    while (slow_path_poll(now)) {
    }
    slow_path_timers(now);
}

uint64_t gateway::tsc_clock_ns() noexcept {
    static const uint64_t hz = rte_get_tsc_hz();
    const uint64_t tsc = rte_rdtsc();
    return tsc / hz * 1'000'000'000 + tsc % hz * 1'000'000'000 / hz;
}

void gateway::slow_path_timers(uint64_t now) {
    health_->poll(tbl(), now_ns());
    if (now - last_age_ms_ < 100)
        return;
    last_age_ms_ = now;
    neighbours_->age(now, [this](const fwd::neighbour_entry& e) {
        send_arp_request(static_cast<uint8_t>(e.port()), e.ip());
    });
    neighbours_->reclaim();
    expire_held(now);
    neighbours6_->age(now, [this](const fwd::neighbour6_entry& e) {
        // RFC 4861 7.3.3: PROBE re-checks the cached address by unicast.
        const auto v = e.read();
        send_neighbor_solicit(static_cast<uint8_t>(e.port()), e.ip(),
                              v.state == fwd::neighbour_state::probe ? &v.mac : nullptr);
    });
    neighbours6_->reclaim();
    expire_held6(now);
}

bool gateway::slow_path_poll(uint64_t now) {
    std::array<punt_msg, 64> msgs;
    unsigned n = rte_ring_sc_dequeue_burst_elem(punt_, msgs.data(), sizeof(punt_msg),
                                                static_cast<unsigned>(msgs.size()), nullptr);
    if (n == 0)
        return false;
    for (unsigned i = 0; i < n; ++i) {
        const punt_msg& msg = msgs[i];
        switch (msg.reason) {
        case punt_reason::arp:
            ++slow_.punted_in;
            handle_arp(msg.m, msg.port, now);
            break;
        case punt_reason::resolve:
            ++slow_.punted_in;
            handle_resolve(msg, now);
            break;
        case punt_reason::nd:
            ++slow_.punted_in;
            handle_nd(msg.m, msg.port, now);
            break;
        case punt_reason::resolve6:
            ++slow_.punted_in;
            handle_resolve6(msg, now);
            break;
        case punt_reason::time_exceeded6:
        case punt_reason::no_route6:
        case punt_reason::packet_too_big6:
            handle_icmp6_error(msg);
            break;
        default:
            handle_icmp_error(msg);
            break;
        }
    }
    return true;
}

void gateway::handle_arp(rte_mbuf* m, uint8_t port, uint64_t now) {
    ++slow_.arp_in;
    const port_runtime& p = tbl().ports[port];
    auto* data = rte_pktmbuf_mtod(m, uint8_t*);
    fwd::arp_info arp;
    if (fwd::parse_arp(data + sizeof(rte_ether_hdr),
                       rte_pktmbuf_data_len(m) - sizeof(rte_ether_hdr),
                       arp) != fwd::parse_status::ok) {
        ++slow_.dropped;
        rte_pktmbuf_free(m);
        return;
    }
    bool for_us = arp.target_ip == p.address;
    auto learned = neighbours_->learn(port, arp.sender_ip, arp.sender_mac, now, for_us);
    if (learned && (learned.value() == fwd::learn_outcome::created ||
                    learned.value() == fwd::learn_outcome::updated ||
                    learned.value() == fwd::learn_outcome::refreshed)) {
        release_held(port, arp.sender_ip, to_ether(arp.sender_mac));
    }
    if (for_us && arp.op == fwd::arp_op_request &&
        fwd::arp_reply_in_place(data, rte_pktmbuf_data_len(m), to_bytes(p.mac), p.address)) {
        if (inject(m, inject_kind::tx, port))
            ++slow_.arp_replies_sent;
        return;
    }
    rte_pktmbuf_free(m);
}

void gateway::handle_resolve(const punt_msg& msg, uint64_t now) {
    // The neighbour may have resolved since the worker looked.
    if (const auto* e = neighbours_->lookup(msg.port, msg.addr); e != nullptr) {
        auto v = e->read();
        if (v.usable()) {
            held_.push_back({msg.m, msg.port, msg.addr, now});
            ++slow_.held;
            release_held(msg.port, msg.addr, to_ether(v.mac));
            return;
        }
    }
    size_t same = 0;
    for (const auto& h : held_)
        same += (h.port == msg.port && h.addr == msg.addr);
    if (held_.size() >= max_held_packets || same >= max_held_per_neighbour) {
        ++slow_.held_dropped_full;
        rte_pktmbuf_free(msg.m);
    } else {
        held_.push_back({msg.m, msg.port, msg.addr, now});
        ++slow_.held;
    }
    if (neighbours_->resolve_wanted(msg.port, msg.addr, now))
        send_arp_request(msg.port, msg.addr);
}

void gateway::release_held(uint8_t port, ipv4_addr addr, const rte_ether_addr& mac) {
    const port_runtime& p = tbl().ports[port];
    size_t kept = 0;
    for (auto& h : held_) {
        if (h.port != port || h.addr != addr) {
            held_[kept++] = h;
            continue;
        }
        auto* eh =
            reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(h.m, sizeof(rte_ether_hdr)));
        if (eh == nullptr) {
            ++slow_.dropped;
            rte_pktmbuf_free(h.m);
            continue;
        }
        eh->dst_addr = mac;
        eh->src_addr = p.mac;
        eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
        if (inject(h.m, inject_kind::tx, port))
            ++slow_.held_sent;
    }
    held_.resize(kept);
}

void gateway::expire_held(uint64_t now) {
    size_t kept = 0;
    for (auto& h : held_) {
        const auto* e = neighbours_->lookup(h.port, h.addr);
        bool failed = e == nullptr || e->read().state == fwd::neighbour_state::failed;
        if (now - h.since_ms > held_timeout_ms || (failed && now - h.since_ms > 100)) {
            ++slow_.held_dropped_unresolved;
            rte_pktmbuf_free(h.m);
            continue;
        }
        held_[kept++] = h;
    }
    held_.resize(kept);
}

void gateway::handle_icmp_error(const punt_msg& msg) {
    rte_mbuf* orig = msg.m;
    if (!icmp_limiter_.allow(rte_get_tsc_cycles())) {
        ++slow_.icmp_errors_suppressed;
        rte_pktmbuf_free(orig);
        return;
    }
    fwd::icmp_error_params params;
    params.kind = msg.reason == punt_reason::ttl_exceeded ? fwd::icmp_error_kind::time_exceeded
                  : msg.reason == punt_reason::frag_needed
                      ? fwd::icmp_error_kind::fragmentation_needed
                      : fwd::icmp_error_kind::net_unreachable;
    params.source = msg.addr;
    params.next_hop_mtu = msg.mtu;
    params.ip_id = icmp_ip_id_++;
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    auto* out = m == nullptr
                    ? nullptr
                    : reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, fwd::icmp_error_max_len));
    if (out == nullptr) {
        ++slow_.dropped;
        rte_pktmbuf_free(m);
        rte_pktmbuf_free(orig);
        return;
    }
    auto built =
        fwd::build_icmp_error(out, fwd::icmp_error_max_len, rte_pktmbuf_mtod(orig, const uint8_t*),
                              rte_pktmbuf_data_len(orig), params);
    rte_pktmbuf_free(orig);
    if (built.status != fwd::icmp_status::ok) {
        ++slow_.icmp_errors_suppressed;
        rte_pktmbuf_free(m);
        return;
    }
    rte_pktmbuf_trim(m, static_cast<uint16_t>(fwd::icmp_error_max_len - built.length));
    m->port = tbl().ports.empty() ? 0 : tbl().ports[0].port_id;
    if (inject(m, inject_kind::forward, 0))
        ++slow_.icmp_errors_sent;
}

void gateway::send_arp_request(uint8_t port, ipv4_addr target) {
    const port_runtime& p = tbl().ports[port];
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) {
        ++slow_.dropped;
        return;
    }
    auto* out = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, fwd::ethernet_min_frame_len));
    if (out == nullptr || fwd::build_arp_request(out, fwd::ethernet_min_frame_len, to_bytes(p.mac),
                                                 p.address, target) == 0) {
        ++slow_.dropped;
        rte_pktmbuf_free(m);
        return;
    }
    if (inject(m, inject_kind::tx, port))
        ++slow_.arp_requests_sent;
}

bool gateway::inject(rte_mbuf* m, inject_kind kind, uint8_t port) noexcept {
    inject_msg msg{m, kind, port, {}};
    for (size_t tries = 0; tries < workers_.size(); ++tries) {
        auto& w = workers_[next_inject_worker_];
        next_inject_worker_ = (next_inject_worker_ + 1) % static_cast<unsigned>(workers_.size());
        if (rte_ring_sp_enqueue_elem(w->inject, &msg, sizeof(msg)) == 0)
            return true;
    }
    ++slow_.inject_full;
    rte_pktmbuf_free(m);
    return false;
}

} // namespace sagd::dp
