// A separate generator process for perf/bench.py: sends a prepared pcap into sagd over one
// net_memif port and receives what sagd forwards on another, so generator and gateway run
// apart (own process, own core). Two uses:
//   - max rate (--rate 0): how fast sagd forwards when the generator is not inside it;
//   - latency (--rate PPS): per-packet latency through sagd, p50/p99/p99.9.
// Latency matching is by order: one sagd worker keeps a flow's order, so the i-th packet out is
// the i-th packet in, as long as nothing is lost (checked: the result says "matched": false
// otherwise). Every packet of a tx burst carries the same TSC stamp, taken right before
// rte_eth_tx_burst; the rx stamp is taken right after rte_eth_rx_burst returns.
//
//   pktgen_memif --pcap F --tx-port NAME --rx-port NAME [--rate PPS] [--burst N]
//                [--warmup S] [--seconds S] -- EAL args
// Prints one JSON line.
#include <getopt.h>
#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
    g_stop = 1;
}

std::vector<std::vector<uint8_t>> read_pcap(const char* path) {
    std::vector<std::vector<uint8_t>> out;
    FILE* f = fopen(path, "rb");
    if (f == nullptr)
        return out;
    uint8_t gh[24];
    if (fread(gh, 1, sizeof(gh), f) != sizeof(gh)) {
        fclose(f);
        return out;
    }
    for (;;) {
        uint32_t rh[4];
        if (fread(rh, 1, sizeof(rh), f) != sizeof(rh))
            break;
        std::vector<uint8_t> p(rh[2]);
        if (fread(p.data(), 1, p.size(), f) != p.size())
            break;
        out.push_back(std::move(p));
    }
    fclose(f);
    return out;
}

int setup_port(uint16_t port, rte_mempool* pool) {
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(port, 1, 1, &conf) != 0)
        return -1;
    if (rte_eth_rx_queue_setup(port, 0, 1024, rte_eth_dev_socket_id(port), nullptr, pool) != 0)
        return -1;
    if (rte_eth_tx_queue_setup(port, 0, 1024, rte_eth_dev_socket_id(port), nullptr) != 0)
        return -1;
    return rte_eth_dev_start(port);
}

} // namespace

int main(int argc, char** argv) {
    int eal_n = rte_eal_init(argc, argv);
    if (eal_n < 0) {
        fprintf(stderr, "pktgen_memif: EAL init failed\n");
        return 1;
    }
    argc -= eal_n;
    argv += eal_n;
    std::string pcap, txname, rxname;
    double rate = 0, warmup = 1, seconds = 3, link_timeout = 10;
    unsigned burst = 32;
    static const option opts[] = {
        {"pcap", required_argument, nullptr, 'p'},    {"tx-port", required_argument, nullptr, 't'},
        {"rx-port", required_argument, nullptr, 'r'}, {"rate", required_argument, nullptr, 'R'},
        {"burst", required_argument, nullptr, 'b'},   {"warmup", required_argument, nullptr, 'w'},
        {"seconds", required_argument, nullptr, 's'}, {nullptr, 0, nullptr, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
        switch (o) {
        case 'p':
            pcap = optarg;
            break;
        case 't':
            txname = optarg;
            break;
        case 'r':
            rxname = optarg;
            break;
        case 'R':
            rate = atof(optarg);
            break;
        case 'b':
            burst = static_cast<unsigned>(atoi(optarg));
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 's':
            seconds = atof(optarg);
            break;
        default:
            return 2;
        }
    }
    burst = std::clamp(burst, 1u, 64u);
    auto frames = read_pcap(pcap.c_str());
    uint16_t txp, rxp;
    if (frames.empty() || rte_eth_dev_get_port_by_name(txname.c_str(), &txp) != 0 ||
        rte_eth_dev_get_port_by_name(rxname.c_str(), &rxp) != 0) {
        fprintf(stderr, "pktgen_memif: need --pcap with frames and existing --tx-port/--rx-port\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rte_mempool* pool = rte_pktmbuf_pool_create("gen_mbufs", 16383, 256, 0,
                                                RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
    if (pool == nullptr || setup_port(txp, pool) != 0 || setup_port(rxp, pool) != 0) {
        fprintf(stderr, "pktgen_memif: port setup failed\n");
        return 1;
    }
    const uint64_t hz = rte_get_tsc_hz();
    // wait for both memif links (sagd is the server)
    uint64_t deadline = rte_rdtsc() + static_cast<uint64_t>(link_timeout * hz);
    for (;;) {
        rte_eth_link a{}, b{};
        rte_eth_link_get_nowait(txp, &a);
        rte_eth_link_get_nowait(rxp, &b);
        if (a.link_status && b.link_status)
            break;
        if (rte_rdtsc() > deadline || g_stop) {
            fprintf(stderr, "pktgen_memif: memif links not up\n");
            return 1;
        }
        rte_delay_ms(10);
    }

    const uint64_t t_start = rte_rdtsc();
    const uint64_t t_meas = t_start + static_cast<uint64_t>(warmup * hz);
    const uint64_t t_end = t_meas + static_cast<uint64_t>(seconds * hz);
    const uint64_t gap = rate > 0 ? static_cast<uint64_t>(hz * burst / rate) : 0;
    const size_t max_stamps = rate > 0 ? static_cast<size_t>(rate * seconds * 1.2) + 1024 : 0;
    std::vector<uint64_t> tx_stamp; // per sent packet in the measured phase
    tx_stamp.reserve(max_stamps);
    std::vector<uint32_t> lat; // cycles
    lat.reserve(max_stamps);
    uint64_t sent = 0, sent_warm = 0, recv = 0, tx_full = 0, alloc_fail = 0;
    uint64_t rx_meas0 = 0, rx_meas1 = 0, sent_meas_end = 0;
    bool measuring = false, sending = true;
    uint64_t next_tx = t_start;
    size_t fi = 0;
    rte_mbuf* pend[64];
    unsigned npend = 0;
    uint64_t drain_until = 0;
    while (!g_stop) {
        // receive
        rte_mbuf* rx[64];
        uint16_t n = rte_eth_rx_burst(rxp, 0, rx, 64);
        if (n) {
            uint64_t now = rte_rdtsc();
            for (uint16_t i = 0; i < n; ++i) {
                uint64_t idx = recv + i;
                if (rate > 0 && idx >= sent_warm && idx - sent_warm < tx_stamp.size())
                    lat.push_back(static_cast<uint32_t>(
                        std::min<uint64_t>(now - tx_stamp[idx - sent_warm], UINT32_MAX)));
            }
            recv += n;
            rte_pktmbuf_free_bulk(rx, n);
        }
        uint64_t now = rte_rdtsc();
        if (!measuring && now >= t_meas && sending) {
            measuring = true;
            sent_warm = sent; // packets still pending are stamped when they go out
            rx_meas0 = recv;
        }
        if (sending && now >= t_end) {
            sending = false;
            sent_meas_end = sent;
            rx_meas1 = recv;
            drain_until = now + hz / 5; // 200 ms to collect what is still in flight
        }
        if (!sending) {
            if (now >= drain_until)
                break;
            continue;
        }
        if (npend == 0 && (gap == 0 || now >= next_tx)) {
            if (rte_pktmbuf_alloc_bulk(pool, pend, burst) != 0) {
                ++alloc_fail;
                continue;
            }
            for (unsigned i = 0; i < burst; ++i) {
                const auto& f = frames[fi];
                fi = fi + 1 == frames.size() ? 0 : fi + 1;
                char* d = rte_pktmbuf_append(pend[i], static_cast<uint16_t>(f.size()));
                memcpy(d, f.data(), f.size());
            }
            npend = burst;
            next_tx = gap ? std::max(next_tx + gap, now - 4 * gap) : now;
        }
        if (npend) {
            uint64_t ts = rte_rdtsc();
            uint16_t k = rte_eth_tx_burst(txp, 0, pend, static_cast<uint16_t>(npend));
            if (measuring && rate > 0)
                for (uint16_t i = 0; i < k && tx_stamp.size() < max_stamps; ++i)
                    tx_stamp.push_back(ts);
            sent += k;
            if (k < npend) {
                ++tx_full;
                memmove(pend, pend + k, (npend - k) * sizeof(pend[0]));
            }
            npend -= k;
        }
    }
    if (npend)
        rte_pktmbuf_free_bulk(pend, npend);
    double meas_s = seconds;
    uint64_t sent_meas = sent_meas_end - sent_warm;
    bool matched = recv == sent;
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) -> double {
        if (lat.empty())
            return 0;
        size_t i = std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()));
        return lat[i] * 1e9 / hz;
    };
    printf("{\"rate_target_pps\": %.0f, \"sent\": %lu, \"received\": %lu, \"lost\": %ld, "
           "\"mpps_tx\": %.3f, \"mpps_rx\": %.3f, \"tx_full\": %lu, \"alloc_fail\": %lu, "
           "\"matched\": %s, \"lat_samples\": %zu, \"lat_ns\": {\"p50\": %.0f, \"p90\": %.0f, "
           "\"p99\": %.0f, \"p999\": %.0f, \"max\": %.0f}, \"burst\": %u}\n",
           rate, sent, recv, static_cast<long>(sent - recv), sent_meas / meas_s / 1e6,
           (rx_meas1 - rx_meas0) / meas_s / 1e6, tx_full, alloc_fail, matched ? "true" : "false",
           lat.size(), pct(0.5), pct(0.9), pct(0.99), pct(0.999), pct(1.0), burst);
    fflush(stdout);
    rte_eth_dev_stop(txp);
    rte_eth_dev_stop(rxp);
    rte_eal_cleanup();
    return 0;
}
