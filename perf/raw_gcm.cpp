// The ceiling for perf/bench.py: raw Intel ipsec-mb AES-128-GCM seal and open on one core, on a
// flat buffer of exactly the ESP payload length a given frame size produces (inner IP packet +
// ESP trailer, padded to 4). No DPDK, no mbufs, no ESP headers: what the cipher alone can do.
//   raw_gcm SECONDS LEN [LEN...]   -> one JSON line per LEN:
//   {"len":..,"seal_mops":..,"open_mops":..,"cycles_seal":..}
#include <intel-ipsec-mb.h>
#include <x86intrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {
double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: raw_gcm SECONDS LEN [LEN...]\n");
        return 2;
    }
    double secs = atof(argv[1]);
    IMB_MGR* mgr = alloc_mb_mgr(0);
    init_mb_mgr_auto(mgr, nullptr);
    alignas(64) gcm_key_data key;
    const uint8_t k[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                           0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
    IMB_AES128_GCM_PRE(mgr, k, &key);
    for (int a = 2; a < argc; ++a) {
        size_t len = strtoul(argv[a], nullptr, 10);
        std::vector<uint8_t> buf(len + 64, 0x5a);
        uint8_t iv[12] = {0xca, 0xfe, 0xba, 0xbe, 5, 6, 7, 8, 9, 10, 11, 12};
        uint8_t aad[8] = {0, 0, 0x10, 0x01, 0, 0, 0, 1};
        uint8_t tag[16];
        gcm_context_data ctx;
        double res[2];
        double cyc_seal = 0;
        for (int dir = 0; dir < 2; ++dir) {
            uint64_t n = 0;
            double t0 = now(), t1;
            uint64_t c0 = __rdtsc();
            do {
                for (int i = 0; i < 1024; ++i) {
                    if (dir == 0)
                        IMB_AES128_GCM_ENC(mgr, &key, &ctx, buf.data(), buf.data(), len, iv, aad, 8,
                                           tag, 16);
                    else
                        IMB_AES128_GCM_DEC(mgr, &key, &ctx, buf.data(), buf.data(), len, iv, aad, 8,
                                           tag, 16);
                    ++iv[11];
                }
                n += 1024;
                t1 = now();
            } while (t1 - t0 < secs);
            if (dir == 0)
                cyc_seal = double(__rdtsc() - c0) / double(n);
            res[dir] = double(n) / (t1 - t0) / 1e6;
        }
        printf("{\"len\": %zu, \"seal_mops\": %.3f, \"open_mops\": %.3f, \"cycles_seal\": %.1f}\n",
               len, res[0], res[1], cyc_seal);
        fflush(stdout);
    }
    free_mb_mgr(mgr);
    return 0;
}
