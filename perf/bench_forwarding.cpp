// forwarding/ micro-benchmarks: FIB burst lookup (32 random addresses per burst) with 1 route
// and with 1,000,000 routes, and neighbour lookups (single and burst).
// Run: build/perf/bench_forwarding [--benchmark_filter=...]. EAL comes up with --no-huge
// -m 2048 (table memory then sits on 4 KiB pages: numbers are conservative next to
// hugepages; pass --huge to use hugepages when reserved).
#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "forwarding/fib4.hpp"
#include "forwarding/neighbour.hpp"
#include "perf/bench_eal_main.hpp"

using namespace sagd::fwd;

namespace {

constexpr unsigned burst = 32;
constexpr size_t n_addrs = 1 << 20; // random destinations, walked in bursts

uint32_t mask_of(unsigned len) {
    return len == 0 ? 0 : ~uint32_t{0} << (32 - len);
}

const std::vector<uint32_t>& random_addresses() {
    static std::vector<uint32_t> a = [] {
        std::mt19937 rng(1);
        std::vector<uint32_t> v(n_addrs);
        for (auto& x : v)
            x = rng();
        return v;
    }();
    return a;
}

// Internet-like mix: 1 % /8../15, 30 % /16../23, 59 % /24, 10 % /25../32.
// Tables are built once per size and freed before rte_eal_cleanup (not by static destructors,
// which would run after EAL memory is gone).
std::map<unsigned, std::unique_ptr<fib4>> fib_cache;

fib4* fib_with(unsigned routes) {
    auto& slot = fib_cache[routes];
    if (slot)
        return slot.get();
    fib4_config c;
    c.name = "bench";
    c.max_routes = routes < 1024 ? 1024 : routes;
    c.tbl8_groups = routes / 8 + 1024;
    auto r = fib4::create(c);
    if (!r) {
        fprintf(stderr, "%s\n", r.err().message.c_str());
        return nullptr;
    }
    slot = std::move(r).value();
    std::mt19937_64 rng(2);
    if (routes == 1) {
        (void)slot->add(0, 0, route_origin::static_route, 1);
        return slot.get();
    }
    unsigned added = 0;
    while (added < routes) {
        unsigned pick = static_cast<unsigned>(rng() % 100);
        unsigned len = pick < 1    ? 8 + rng() % 8
                       : pick < 31 ? 16 + rng() % 8
                       : pick < 90 ? 24
                                   : 25 + rng() % 8;
        uint32_t p = static_cast<uint32_t>(rng()) & mask_of(len);
        if (slot->installed(p, static_cast<uint8_t>(len)))
            continue;
        auto s = slot->add(p, static_cast<uint8_t>(len), route_origin::learned,
                           1 + static_cast<uint32_t>(rng() % 65535));
        if (!s) {
            fprintf(stderr, "%s\n", s.err().message.c_str());
            break;
        }
        ++added;
    }
    return slot.get();
}

void BM_fib4_lookup_burst(benchmark::State& state) {
    fib4* f = fib_with(static_cast<unsigned>(state.range(0)));
    if (!f) {
        state.SkipWithError("fib create failed");
        return;
    }
    const auto& addrs = random_addresses();
    uint64_t nh[burst];
    size_t pos = 0;
    for (auto _ : state) {
        f->lookup_bulk(&addrs[pos], nh, burst);
        benchmark::DoNotOptimize(nh);
        pos = (pos + burst) & (n_addrs - 1);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * burst);
    state.counters["routes"] = static_cast<double>(f->prefix_count());
}
BENCHMARK(BM_fib4_lookup_burst)->Arg(1)->Arg(1'000'000)->Unit(benchmark::kNanosecond);

struct neighbour_fixture {
    std::unique_ptr<neighbour_table> table;
    std::vector<uint16_t> ports;
    std::vector<uint32_t> ips;
};

std::map<unsigned, neighbour_fixture> neighbour_cache;

neighbour_fixture& neighbours(unsigned n) {
    auto& fx = neighbour_cache[n];
    if (fx.table)
        return fx;
    fx.table = neighbour_table::create(65536).value();
    std::mt19937 rng(3);
    for (unsigned i = 0; i < n; ++i) {
        uint16_t port = static_cast<uint16_t>(i % 4);
        uint32_t a = 0x0a000000u | i;
        mac_bytes m{0x02, 0, 0, 0, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
        (void)fx.table->learn(port, a, m, 0, true);
    }
    fx.ports.resize(n_addrs);
    fx.ips.resize(n_addrs);
    for (size_t i = 0; i < n_addrs; ++i) {
        unsigned k = rng() % n;
        fx.ports[i] = static_cast<uint16_t>(k % 4);
        fx.ips[i] = 0x0a000000u | k;
    }
    return fx;
}

void BM_neighbour_lookup(benchmark::State& state) {
    auto& fx = neighbours(static_cast<unsigned>(state.range(0)));
    size_t pos = 0;
    for (auto _ : state) {
        const neighbour_entry* e = fx.table->lookup(fx.ports[pos], fx.ips[pos]);
        neighbour_view v = e->read();
        benchmark::DoNotOptimize(v);
        pos = (pos + 1) & (n_addrs - 1);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_neighbour_lookup)->Arg(16)->Arg(60'000);

void BM_neighbour_lookup_burst(benchmark::State& state) {
    auto& fx = neighbours(static_cast<unsigned>(state.range(0)));
    const neighbour_entry* out[burst];
    size_t pos = 0;
    for (auto _ : state) {
        fx.table->lookup_bulk(&fx.ports[pos], &fx.ips[pos], burst, out);
        uint64_t sum = 0;
        for (unsigned i = 0; i < burst; ++i)
            sum += out[i]->read().mac[5];
        benchmark::DoNotOptimize(sum);
        pos = (pos + burst) & (n_addrs - 1);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * burst);
}
BENCHMARK(BM_neighbour_lookup_burst)->Arg(16)->Arg(60'000);

} // namespace

int main(int argc, char** argv) {
    return bench_eal_main(argc, argv, "bench_forwarding", "2048", [] {
        fib_cache.clear();
        neighbour_cache.clear();
    });
}
