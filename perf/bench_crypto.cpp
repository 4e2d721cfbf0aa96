// Micro-benchmarks for crypto/: ESP encap/decap per engine and size (bursts of 32), the raw
// ipsec-mb AES-128-GCM seal (the ceiling), the replay window and SPI lookup.
//
// Run: build-crypto/perf/bench_crypto [--benchmark_filter=...]
// Decap needs fresh ciphertext per run: each iteration first restores the 32 packets with a
// memcpy; BM_decap_restore_only measures that restore alone, subtract it.
#include <benchmark/benchmark.h>
#include <intel-ipsec-mb.h>
#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "crypto/esp.hpp"
#include "crypto/sa_map.hpp"

namespace {

using namespace sagd::crypto;

constexpr size_t burst = 32;
rte_mempool* pool = nullptr;

std::vector<uint8_t> keymat(cipher_kind c) {
    std::vector<uint8_t> k(keymat_len(c));
    for (size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<uint8_t>(i * 37 + 11);
    return k;
}

sa_params params(engine_kind e, const std::vector<uint8_t>& km, uint32_t window) {
    sa_params p;
    p.spi = 0x1234;
    p.keymat = km;
    p.engine = e;
    p.replay_window = window;
    p.local_addr = 0x0a000001;
    p.peer_addr = 0x0a000002;
    return p;
}

void fill_inner(uint8_t* p, size_t len) {
    std::memset(p, 0x5a, len);
    p[0] = 0x45;
    p[1] = 0;
    p[2] = static_cast<uint8_t>(len >> 8);
    p[3] = static_cast<uint8_t>(len);
    p[6] = p[7] = 0;
}

struct mbuf_burst {
    rte_mbuf* m[burst];
    explicit mbuf_burst(size_t len) {
        for (auto& x : m) {
            x = rte_pktmbuf_alloc(pool);
            fill_inner(
                reinterpret_cast<uint8_t*>(rte_pktmbuf_append(x, static_cast<uint16_t>(len))), len);
        }
    }
    ~mbuf_burst() {
        for (auto* x : m)
            rte_pktmbuf_free(x);
    }
};

void BM_esp_encap(benchmark::State& st, engine_kind e) {
    const size_t len = static_cast<size_t>(st.range(0));
    const auto km = keymat(cipher_kind::aes_gcm_128);
    auto sa = create_outbound_sa(params(e, km, 0)).sa;
    mbuf_burst b(len);
    esp_status status[burst];
    const uint16_t pad = static_cast<uint16_t>((4 - ((len + 2) & 3)) & 3);
    for (auto _ : st) {
        uint16_t ok = esp_encap_burst(*sa, {b.m, burst}, status);
        if (ok != burst)
            st.SkipWithError("encap failed");
        benchmark::DoNotOptimize(ok);
        // Undo the encapsulation cheaply: strip headers/trailer, rewrite the IPv4 version and
        // length the encryption scrambled (the rest of the inner content does not matter).
        for (auto* m : b.m) {
            rte_pktmbuf_adj(m, 20 + 8 + 8);
            rte_pktmbuf_trim(m, static_cast<uint16_t>(pad + 2 + 16));
            auto* p = rte_pktmbuf_mtod(m, uint8_t*);
            p[0] = 0x45;
            p[2] = static_cast<uint8_t>(len >> 8);
            p[3] = static_cast<uint8_t>(len);
        }
    }
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * burst));
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * burst * len));
}

struct decap_setup {
    std::unique_ptr<inbound_sa> in;
    std::vector<std::vector<uint8_t>> wire;
    decap_setup(engine_kind e, size_t len) {
        const auto km = keymat(cipher_kind::aes_gcm_128);
        auto out = create_outbound_sa(params(e, km, 0)).sa;
        sa_params p = params(e, km, 0); // anti-replay off: the same packets repeat
        std::swap(p.local_addr, p.peer_addr);
        in = create_inbound_sa(p).sa;
        mbuf_burst b(len);
        esp_status status[burst];
        esp_encap_burst(*out, {b.m, burst}, status);
        for (auto* m : b.m) {
            const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
            wire.emplace_back(d, d + m->data_len);
        }
    }
    void restore(rte_mbuf** m) const {
        for (size_t i = 0; i < burst; ++i) {
            m[i]->data_off = RTE_PKTMBUF_HEADROOM;
            m[i]->data_len = static_cast<uint16_t>(wire[i].size());
            m[i]->pkt_len = m[i]->data_len;
            std::memcpy(rte_pktmbuf_mtod(m[i], void*), wire[i].data(), wire[i].size());
        }
    }
};

void BM_esp_decap(benchmark::State& st, engine_kind e) {
    const size_t len = static_cast<size_t>(st.range(0));
    decap_setup s(e, len);
    mbuf_burst b(len);
    esp_status status[burst];
    for (auto _ : st) {
        s.restore(b.m);
        uint16_t ok = esp_decap_burst(*s.in, {b.m, burst}, status);
        if (ok != burst)
            st.SkipWithError("decap failed");
        benchmark::DoNotOptimize(ok);
    }
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * burst));
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * burst * len));
}

void BM_decap_restore_only(benchmark::State& st) {
    const size_t len = static_cast<size_t>(st.range(0));
    decap_setup s(engine_kind::ipsec_mb, len);
    mbuf_burst b(len);
    for (auto _ : st) {
        s.restore(b.m);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * burst));
}

// The ceiling: ipsec-mb AES-128-GCM on a flat buffer, same payload size as ESP would seal.
void BM_raw_ipsec_mb_gcm128_seal(benchmark::State& st) {
    const size_t len = static_cast<size_t>(st.range(0));
    IMB_MGR* mgr = alloc_mb_mgr(0);
    init_mb_mgr_auto(mgr, nullptr);
    alignas(64) gcm_key_data key;
    const auto km = keymat(cipher_kind::aes_gcm_128);
    IMB_AES128_GCM_PRE(mgr, km.data(), &key);
    std::vector<uint8_t> buf(len + 64, 0x5a);
    uint8_t iv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint8_t aad[8] = {0, 0, 0x12, 0x34, 0, 0, 0, 1};
    uint8_t tag[16];
    gcm_context_data ctx;
    for (auto _ : st) {
        IMB_AES128_GCM_ENC(mgr, &key, &ctx, buf.data(), buf.data(), len, iv, aad, 8, tag, 16);
        benchmark::DoNotOptimize(tag);
        ++iv[11];
    }
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations()));
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * len));
    free_mb_mgr(mgr);
}

void BM_replay_check_update(benchmark::State& st) {
    replay_window w(static_cast<uint32_t>(st.range(0)), true);
    uint32_t seq = 1;
    std::mt19937 rng(1);
    for (auto _ : st) {
        // Mostly in order with some reordering, as after multi-queue transit.
        const uint32_t s = seq + (rng() & 7);
        const replay_result r = w.check(s);
        if (r.verdict == replay_verdict::ok)
            w.update(r.seq);
        benchmark::DoNotOptimize(r);
        seq += 4;
    }
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations()));
}

void BM_sa_lookup_bulk(benchmark::State& st) {
    constexpr size_t n_sas = 2000;
    const auto km = keymat(cipher_kind::aes_gcm_128);
    std::vector<std::unique_ptr<inbound_sa>> sas;
    inbound_sa_map map(n_sas);
    for (size_t i = 0; i < n_sas; ++i) {
        sa_params p = params(engine_kind::openssl, km, 64);
        p.spi = 0x10000 + static_cast<uint32_t>(i) * 2;
        sas.push_back(create_inbound_sa(p).sa);
        map.insert(sas.back().get());
    }
    std::mt19937 rng(2);
    std::vector<uint32_t> spis(4096);
    for (auto& s : spis)
        s = 0x10000 + static_cast<uint32_t>(rng() % n_sas) * 2;
    inbound_sa* out[burst];
    size_t pos = 0;
    for (auto _ : st) {
        map.find_bulk(&spis[pos], burst, out);
        benchmark::DoNotOptimize(out);
        pos = (pos + burst) & 4095;
    }
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * burst));
}

#define SIZES Arg(64)->Arg(128)->Arg(256)->Arg(512)->Arg(1024)->Arg(1420)
BENCHMARK_CAPTURE(BM_esp_encap, ipsec_mb, engine_kind::ipsec_mb)->SIZES;
BENCHMARK_CAPTURE(BM_esp_encap, openssl, engine_kind::openssl)->SIZES;
BENCHMARK_CAPTURE(BM_esp_decap, ipsec_mb, engine_kind::ipsec_mb)->SIZES;
BENCHMARK_CAPTURE(BM_esp_decap, openssl, engine_kind::openssl)->SIZES;
BENCHMARK(BM_decap_restore_only)->SIZES;
BENCHMARK(BM_raw_ipsec_mb_gcm128_seal)->SIZES;
BENCHMARK(BM_replay_check_update)->Arg(64)->Arg(1024)->Arg(4096);
BENCHMARK(BM_sa_lookup_bulk);

} // namespace

int main(int argc, char** argv) {
    std::string prefix = "sagd-bench-crypto-" + std::to_string(getpid());
    const char* eal_argv[] = {"bench_crypto",  "--no-huge",   "-m",          "256", "--no-pci",
                              "--no-shconf",   "--log-level", "lib.*:error", "-l",  "0",
                              "--file-prefix", prefix.c_str()};
    if (rte_eal_init(static_cast<int>(std::size(eal_argv)), const_cast<char**>(eal_argv)) < 0) {
        fprintf(stderr, "cannot initialise EAL\n");
        return 1;
    }
    pool = rte_pktmbuf_pool_create("bench_crypto", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   SOCKET_ID_ANY);
    if (pool == nullptr || !worker_thread_init()) {
        fprintf(stderr, "cannot create the mbuf pool or the ipsec-mb manager\n");
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    rte_eal_cleanup();
    return 0;
}
