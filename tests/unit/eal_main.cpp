// GoogleTest main for unit tests that need mbufs or DPDK libraries: brings up a small EAL with
// no hugepages and no devices, then runs the tests. Each test binary gets its own file prefix so
// binaries can run in parallel.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <unistd.h>

#include <string>

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    std::string prefix = "sagd-unit-" + std::to_string(getpid());
    const char* eal_argv[] = {"sagd-unit",     "--no-huge",   "-m",          "1024", "--no-pci",
                              "--no-shconf",   "--log-level", "lib.*:error", "-l",   "0",
                              "--file-prefix", prefix.c_str()};
    int eal_argc = sizeof(eal_argv) / sizeof(eal_argv[0]);
    if (rte_eal_init(eal_argc, const_cast<char**>(eal_argv)) < 0) {
        fprintf(stderr, "cannot initialise EAL for unit tests\n");
        return 1;
    }
    int rc = RUN_ALL_TESTS();
    rte_eal_cleanup();
    return rc;
}
