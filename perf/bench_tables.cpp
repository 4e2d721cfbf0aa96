// Table changes, control side: how fast the table writer installs and removes a batch of
// static routes (what POST /v1/routes and the FPM server end in), the whole change included:
// candidate lists, next-hop references, both FIB copies, undo journal, snapshot publish.
// Run: build/perf/bench_tables [--benchmark_filter=...] [--huge]. items_per_second = routes/s.
// No workers run here, so the RCU grace period costs nothing (a running sagd adds a few us
// per change, not per route). End to end through the API and FPM: perf/route_scale.py.
#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <unistd.h>

#include <cstring>
#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/table_writer.hpp"
#include "perf/bench_eal_main.hpp"

using namespace sagd;

namespace {

std::unique_ptr<dp::table_writer> make_writer(uint32_t max_routes) {
    config cfg;
    port_config lan{"lan0", port_role::lan, "x", 0x0a010001, 24, std::nullopt, 1500, std::nullopt, 64};
    port_config wan{"wan0", port_role::wan, "y", 0xc0000201, 24, 0xc00002fe, 1500, std::nullopt, 64};
    cfg.ports = {lan, wan};
    tunnel_config t;
    t.name = "edge";
    t.port = "wan0";
    t.peer = 0xc6336401;
    t.outbound_sa.spi = 0x1001;
    t.outbound_sa.keymat.assign(20, 7);
    sa_config in;
    in.spi = 0x2001;
    in.keymat.assign(20, 9);
    t.inbound_sas.push_back(in);
    cfg.tunnels.push_back(t);
    std::vector<dp::port_runtime> ports(2);
    ports[0].name = "lan0";
    ports[0].role = port_role::lan;
    ports[0].address = lan.address;
    ports[0].port_id = 0;
    ports[1].name = "wan0";
    ports[1].role = port_role::wan;
    ports[1].address = wan.address;
    ports[1].port_id = 1;
    dp::table_limits limits;
    limits.ipv4_routes = max_routes;
    auto w = dp::table_writer::create(cfg, ports, crypto::engine_kind::openssl, limits);
    if (!w) {
        fprintf(stderr, "%s\n", w.err().message.c_str());
        return nullptr;
    }
    return std::move(w.value());
}

// What gateway::apply does, minus the grace period (no readers).
struct applier {
    std::unique_ptr<dp::table_writer> w;
    std::unique_ptr<dp::tables> cur;
    explicit applier(std::unique_ptr<dp::table_writer> wr) : w(std::move(wr)) {
        cur = w->take_initial();
    }
    bool apply(const dp::change_set& cs) {
        auto r = w->prepare(cs);
        if (auto* f = std::get_if<dp::change_failure>(&r)) {
            fprintf(stderr, "%s\n", f->message.c_str());
            return false;
        }
        auto next = std::move(std::get<dp::table_writer::prepared>(r).snapshot);
        w->publish_fib(*next);
        w->set_current(next.get());
        std::swap(cur, next);
        w->finish(*next);
        return true;
    }
};

// Consecutive /24s from 11.0.0.0 up (n up to 4M), like a large learned table.
ipv4_prefix nth_prefix(uint32_t i) {
    return {(0x0b000000u + (i << 8)), 24};
}

// The timed part: every add batch, then every delete batch; items = routes added + deleted.
void run_add_then_delete(benchmark::State& state, applier& a,
                         const std::vector<dp::change_set>& adds,
                         const std::vector<dp::change_set>& dels, uint32_t n, uint32_t batch) {
    for (auto _ : state) {
        for (const auto& cs : adds)
            if (!a.apply(cs)) {
                state.SkipWithError("add failed");
                return;
            }
        for (const auto& cs : dels)
            if (!a.apply(cs)) {
                state.SkipWithError("delete failed");
                return;
            }
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n * 2);
    state.counters["routes"] = n;
    state.counters["batch"] = batch;
}

void BM_routes_add_then_delete(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    const auto batch = static_cast<uint32_t>(state.range(1));
    applier a(make_writer(n + 1024));
    if (!a.w) {
        state.SkipWithError("cannot create the table writer");
        return;
    }
    std::vector<dp::change_set> adds, dels;
    for (uint32_t start = 0; start < n; start += batch) {
        dp::change_set add, del;
        for (uint32_t i = start; i < std::min(n, start + batch); ++i) {
            route_config r;
            r.prefix = nth_prefix(i);
            r.tunnel = "edge";
            add.put_routes.push_back(r);
            del.delete_routes.push_back(r.prefix);
        }
        adds.push_back(std::move(add));
        dels.push_back(std::move(del));
    }
    run_add_then_delete(state, a, adds, dels, n, batch);
}
BENCHMARK(BM_routes_add_then_delete)
    ->Args({100'000, 10'000})
    ->Args({1'000'000, 100'000})
    ->Args({1'000'000, 1'000'000})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// Learned routes as FPM installs them: n /24s from 11.0.0.0 up (route_scale.py's prefixes),
// shuffled (zebra sends a BGP table in no address order), in batches, then withdrawn.
void BM_learned_random_add_then_delete(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    const auto batch = static_cast<uint32_t>(state.range(1));
    applier a(make_writer(n + 1024));
    if (!a.w) {
        state.SkipWithError("cannot create the table writer");
        return;
    }
    std::vector<uint32_t> order(n);
    for (uint32_t i = 0; i < n; ++i)
        order[i] = i;
    std::mt19937 rng(7);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<dp::change_set> adds, dels;
    for (uint32_t start = 0; start < n; start += batch) {
        dp::change_set add, del;
        for (uint32_t i = start; i < std::min(n, start + batch); ++i) {
            dp::learned_route4 l;
            l.prefix = nth_prefix(order[i]);
            l.gateways = {0x0a0100fe}; // 10.1.0.254, on lan0
            add.put_learned.push_back(l);
            del.delete_learned.push_back(l.prefix);
        }
        adds.push_back(std::move(add));
        dels.push_back(std::move(del));
    }
    run_add_then_delete(state, a, adds, dels, n, batch);
}
BENCHMARK(BM_learned_random_add_then_delete)
    ->Args({1'000'000, 100'000})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

} // namespace

int main(int argc, char** argv) {
    return bench_eal_main(argc, argv, "bench_tables", "4096", [] {});
}
