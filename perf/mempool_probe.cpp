// Reads a running DPDK primary's mbuf pool occupancy as a secondary process (perf/soak.py).
// DPDK 22.11's /mempool/info telemetry has no in-use count, so the soak attaches here instead.
//   mempool_probe POOL INTERVAL_S COUNT [LEAK] -- EAL args (--proc-type=secondary --file-prefix P
//   ...)
// LEAK > 0 (self-test of the soak's leak detector): take LEAK mbufs from the pool every interval
// and never give them back, as a leaking data plane would.
// Prints one JSON line per interval: {"t":..,"in_use":..,"avail":..,"size":..}; COUNT 0 = forever
// (until SIGINT/SIGTERM or the primary goes away).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

namespace {
volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
    g_stop = 1;
}
} // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: mempool_probe POOL INTERVAL_S COUNT -- EAL args\n");
        return 2;
    }
    const char* pool_name = argv[1];
    double interval = atof(argv[2]);
    long count = atol(argv[3]);
    int first_eal = 4;
    unsigned leak = 0;
    if (argc > 5 && std::string(argv[4]) != "--") {
        leak = static_cast<unsigned>(atoi(argv[4]));
        first_eal = 5;
    }
    int eal_argc = argc - first_eal;
    char** eal_argv = argv + first_eal; // argv[first_eal] is "--": EAL takes it as its program name
    if (rte_eal_init(eal_argc, eal_argv) < 0) {
        fprintf(stderr,
                "mempool_probe: EAL init failed (is the primary running with hugepages?)\n");
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rte_mempool* mp = rte_mempool_lookup(pool_name);
    if (mp == nullptr) {
        fprintf(stderr, "mempool_probe: no pool '%s'\n", pool_name);
        rte_eal_cleanup();
        return 1;
    }
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; (count == 0 || i < count) && !g_stop; ++i) {
        double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        printf("{\"t\": %.3f, \"in_use\": %u, \"avail\": %u, \"size\": %u}\n", t,
               rte_mempool_in_use_count(mp), rte_mempool_avail_count(mp), mp->size);
        fflush(stdout);
        for (unsigned k = 0; k < leak; ++k)
            (void)rte_pktmbuf_alloc(mp); // deliberately never freed
        if (kill(getppid(), 0) != 0)
            break;
        usleep(static_cast<useconds_t>(interval * 1e6));
    }
    // No rte_eal_cleanup(): a secondary's cleanup also tears down its view of the primary's
    // vdevs (net_pcap), which was seen to slow the primary's workers by ~40% afterwards.
    _exit(0);
}
