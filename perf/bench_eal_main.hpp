// main() of the EAL-backed Google Benchmark programs: EAL on --no-huge -m 4096 (or hugepages with
// --huge), a file prefix of its own, then the benchmarks, then `cleanup` (tables made on EAL
// memory must go before rte_eal_cleanup), then EAL cleanup.
#pragma once

#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

template <typename Cleanup>
int bench_eal_main(int argc, char** argv, const char* name, const char* memory_mb,
                   Cleanup cleanup) {
    bool huge = false;
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--huge") == 0)
            huge = true;
        else
            args.push_back(argv[i]);
    }
    std::string prefix = std::string("sagd-") + name + "-" + std::to_string(getpid());
    std::vector<const char*> eal = {
        name, "-m",          memory_mb,     "--no-pci",      "--no-shconf", "-l",
        "0",  "--log-level", "lib.*:error", "--file-prefix", prefix.c_str()};
    if (!huge)
        eal.insert(eal.begin() + 1, "--no-huge");
    if (rte_eal_init(static_cast<int>(eal.size()), const_cast<char**>(eal.data())) < 0) {
        std::fprintf(stderr, "cannot initialise EAL\n");
        return 1;
    }
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    cleanup();
    rte_eal_cleanup();
    return 0;
}
