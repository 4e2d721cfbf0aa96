// sagd: the gateway daemon. Loads and validates the config, brings up DPDK (EAL, ports,
// mbuf pool), builds the tables, registers telemetry and runs the workers until SIGINT/SIGTERM.
//
//   sagd -c sagd.yaml [--engine ipsec-mb|openssl] [--check] [--stats SECONDS] [-- EAL args]
#include <getopt.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "control-shim/config_yaml.hpp"
#include "control-shim/telemetry.hpp"
#include "dataplane/gateway.hpp"
#include "dataplane/port.hpp"
#include "dataplane/stats.hpp"

namespace {

sagd::dp::gateway* g_running = nullptr;

void on_signal(int) {
    if (g_running != nullptr)
        g_running->stop();
}

void usage(FILE* out) {
    fprintf(out, "usage: sagd -c CONFIG [--engine ipsec-mb|openssl] [--check] [--stats SECONDS]\n"
                 "            [-- EAL arguments]\n"
                 "  -c, --config FILE   declarative config (YAML): ports, tunnels, routes\n"
                 "  --engine NAME       crypto engine: ipsec-mb (default) or openssl\n"
                 "  --check             validate the config and exit\n"
                 "  --stats SECONDS     print a counters line every SECONDS (0: never, default)\n"
                 "EAL arguments after '--' come before the config's 'eal' list. Devices come from\n"
                 "the config; -l defaults to 0-<workers>, --file-prefix to 'sagd'.\n");
}

bool has_arg(const std::vector<std::string>& args, const char* a, const char* b = nullptr) {
    for (const auto& s : args)
        if (s == a || (b != nullptr && s == b) ||
            (s.size() > strlen(a) && s.compare(0, strlen(a), a) == 0 && s[strlen(a)] == '='))
            return true;
    return false;
}

void print_stats_line(const sagd::dp::gateway& gw) {
    auto t = sagd::dp::sum_counters(gw);
    printf("sagd: rx %lu tx %lu punted %lu drops %lu", t.rx, t.tx, t.punted, t.drops);
    for (unsigned i = 0; i < sagd::dp::n_drop_reasons; ++i)
        if (t.by_reason[i] != 0)
            printf(" %s=%lu", sagd::dp::drop_infos[i].name, t.by_reason[i]);
    printf("\n");
    fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path;
    std::string engine_name = "ipsec-mb";
    bool check_only = false;
    unsigned stats_every = 0;
    static const option opts[] = {
        {"config", required_argument, nullptr, 'c'}, {"engine", required_argument, nullptr, 'e'},
        {"check", no_argument, nullptr, 'k'},        {"stats", required_argument, nullptr, 's'},
        {"help", no_argument, nullptr, 'h'},         {nullptr, 0, nullptr, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", opts, nullptr)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'e':
            engine_name = optarg;
            break;
        case 'k':
            check_only = true;
            break;
        case 's':
            stats_every = static_cast<unsigned>(std::stoul(optarg));
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (config_path.empty()) {
        usage(stderr);
        return 2;
    }
    sagd::crypto::engine_kind engine;
    if (engine_name == "ipsec-mb")
        engine = sagd::crypto::engine_kind::ipsec_mb;
    else if (engine_name == "openssl")
        engine = sagd::crypto::engine_kind::openssl;
    else {
        fprintf(stderr, "sagd: --engine: unknown engine '%s' (ipsec-mb or openssl)\n",
                engine_name.c_str());
        return 2;
    }

    auto cfg = sagd::load_config_file(config_path);
    if (!cfg) {
        fprintf(stderr, "sagd: %s\n", cfg.err().message.c_str());
        return 1;
    }
    if (check_only) {
        printf("sagd: %s: ok (%zu ports, %zu tunnels, %zu routes)\n", config_path.c_str(),
               cfg->ports.size(), cfg->tunnels.size(), cfg->routes.size());
        return 0;
    }

    // EAL arguments: ours after '--', then the config's, then the devices.
    std::vector<std::string> eal{"sagd"};
    for (int i = optind; i < argc; ++i)
        eal.emplace_back(argv[i]);
    for (const auto& a : cfg->eal_args)
        eal.push_back(a);
    if (!has_arg(eal, "-l") && !has_arg(eal, "--lcores") && !has_arg(eal, "-c"))
        eal.insert(eal.end(), {"-l", "0-" + std::to_string(cfg->workers)});
    if (!has_arg(eal, "--file-prefix"))
        eal.insert(eal.end(), {"--file-prefix", "sagd"});
    bool any_pci = false;
    for (const auto& p : cfg->ports) {
        if (sagd::dp::is_pci_device(p.device)) {
            any_pci = true;
            eal.insert(eal.end(), {"-a", p.device});
        } else {
            eal.insert(eal.end(), {"--vdev", p.device});
        }
    }
    if (!any_pci && !has_arg(eal, "--no-pci"))
        eal.emplace_back("--no-pci");
    std::vector<char*> eal_argv;
    for (auto& s : eal)
        eal_argv.push_back(s.data());
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
        fprintf(stderr, "sagd: cannot initialise DPDK EAL: %s\n", rte_strerror(rte_errno));
        return 1;
    }

    int rc = 0;
    {
        unsigned n_mbufs = 8191 + static_cast<unsigned>(cfg->ports.size()) * 4096u * cfg->workers;
        // Packets stay in one segment: room for the largest frame any port accepts, plus what
        // ESP adds in the headroom (outer headers) and at the tail (padding, trailer, ICV).
        uint16_t max_mtu = 1500;
        for (const auto& p : cfg->ports)
            max_mtu = std::max(max_mtu, p.mtu);
        uint32_t room = std::max<uint32_t>(RTE_MBUF_DEFAULT_DATAROOM, max_mtu + 18u + 64u);
        rte_mempool* pool = rte_pktmbuf_pool_create(
            "sagd_mbufs", n_mbufs, 256, 0, static_cast<uint16_t>(RTE_PKTMBUF_HEADROOM + room),
            static_cast<int>(rte_socket_id()));
        if (pool == nullptr) {
            fprintf(stderr,
                    "sagd: cannot create the mbuf pool (%u mbufs): %s (give EAL more "
                    "memory with -m, or reserve hugepages)\n",
                    n_mbufs, rte_strerror(rte_errno));
            rte_eal_cleanup();
            return 1;
        }
        auto gw = sagd::dp::gateway::create(cfg.value(), pool, engine);
        if (!gw) {
            fprintf(stderr, "sagd: %s\n", gw.err().message.c_str());
            rte_mempool_free(pool);
            rte_eal_cleanup();
            return 1;
        }
        sagd::shim::register_telemetry(*gw.value());
        g_running = gw.value().get();
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);

        std::thread reporter;
        if (stats_every != 0) {
            reporter = std::thread([&] {
                while (!g_running->stopping()) {
                    for (unsigned i = 0; i < stats_every * 10 && !g_running->stopping(); ++i)
                        usleep(100'000);
                    print_stats_line(*g_running);
                }
            });
        }
        printf("sagd: running: %zu ports, %zu tunnels, %zu routes, %u workers, engine %s\n",
               cfg->ports.size(), cfg->tunnels.size(), cfg->routes.size(), cfg->workers,
               engine_name.c_str());
        fflush(stdout);
        if (auto st = gw.value()->run(); !st) {
            fprintf(stderr, "sagd: %s\n", st.err().message.c_str());
            rc = 1;
        }
        g_running->stop(); // also ends the reporter when run() returned early
        if (reporter.joinable())
            reporter.join();
        print_stats_line(*g_running);
        g_running = nullptr;
        sagd::shim::unregister_telemetry();
        gw.value().reset();
        rte_mempool_free(pool);
    }
    rte_eal_cleanup();
    printf("sagd: stopped\n");
    return rc;
}
