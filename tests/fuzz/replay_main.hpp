// The replay program every fuzz harness becomes without libFuzzer: each file named, or found
// under a directory named, runs once through the harness's LLVMFuzzerTestOneInput. An empty
// corpus fails (a broken test, not a pass). Include from exactly one harness per executable,
// under its REPLAY_MAIN macro, after LLVMFuzzerTestOneInput; define SAGD_FUZZ_NAME first.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
    size_t files = 0;
    auto run_file = [&](const std::filesystem::path& p) {
        std::ifstream f(p, std::ios::binary);
        const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                         std::istreambuf_iterator<char>());
        LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
        ++files;
    };
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path p(argv[i]);
        if (std::filesystem::is_directory(p)) {
            for (const auto& e : std::filesystem::recursive_directory_iterator(p))
                if (e.is_regular_file())
                    run_file(e.path());
        } else {
            run_file(p);
        }
    }
    std::printf("%s replay: %zu inputs, no invariant broken\n", SAGD_FUZZ_NAME, files);
    return files == 0 ? 1 : 0;
}
