// sagd: the gateway daemon. Loads and validates the config, brings up DPDK (EAL, ports,
// mbuf pool), builds the tables, registers telemetry and runs the workers until SIGINT/SIGTERM.
//
//   sagd -c sagd.yaml [--engine ipsec-mb|openssl] [--check] [--stats SECONDS] [-- EAL args]
#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pdump.h>

#include "control-shim/api.hpp"
#include "control-shim/config_yaml.hpp"
#include "control-shim/fpm_server.hpp"
#include "control-shim/http.hpp"
#include "control-shim/metrics.hpp"
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
    // The running config persisted by an earlier run (runtime API changes) wins over the file:
    // a restart comes back to the state it had.
    if (!check_only && !cfg->api.persist.empty() && access(cfg->api.persist.c_str(), F_OK) == 0) {
        auto saved = sagd::load_config_file(cfg->api.persist);
        if (!saved) {
            fprintf(stderr, "sagd: persisted running config: %s\n", saved.err().message.c_str());
            return 1;
        }
        fprintf(stderr, "sagd: restoring the running config from %s\n", cfg->api.persist.c_str());
        cfg = std::move(saved);
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
    // Lets dpdk-dumpcap (a secondary process) capture our ports. It attaches only when EAL runs
    // on hugepages (not --no-huge, --in-memory or --huge-unlink); a debugging aid, not required.
    if (rte_pdump_init() < 0)
        fprintf(stderr, "sagd: warning: packet capture (pdump) unavailable: %s\n",
                rte_strerror(rte_errno));

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
        sagd::dp::table_limits limits;
        limits.ipv4_routes = cfg->limits.ipv4_routes;
        limits.ipv6_routes = cfg->limits.ipv6_routes;
        limits.tunnels = cfg->limits.tunnels;
        auto gw = sagd::dp::gateway::create(cfg.value(), pool, engine, limits);
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
        // The control plane: runtime API, FPM, metrics. They run on the control thread with
        // the slow path (see gateway::run), so table changes need no locks against it.
        std::unique_ptr<sagd::shim::fpm_server> fpm;
        sagd::shim::api_options ao;
        ao.version = "sagd 0.4";
        ao.persist_path = cfg->api.persist;
        sagd::shim::api_hooks hooks;
        hooks.fpm_status = [&](sagd::shim::json_writer& j) {
            if (fpm)
                fpm->write_status(j);
            else
                j.null();
        };
        hooks.metrics = [&] { return sagd::shim::render_metrics(*g_running, fpm.get()); };
        sagd::shim::api api(*gw.value(), ao, hooks);
        std::unique_ptr<sagd::shim::http_server> http;
        if (!cfg->api.socket.empty() || cfg->api.tcp_port != 0) {
            sagd::shim::http_server_options ho;
            ho.unix_path = cfg->api.socket;
            if (!ho.unix_path.empty()) {
                std::string dir = ho.unix_path.substr(0, ho.unix_path.find_last_of('/'));
                if (!dir.empty())
                    (void)mkdir(dir.c_str(), 0700);
            }
            if (cfg->api.tcp_port != 0) {
                ho.tcp_address = cfg->api.tcp_address;
                ho.tcp_port = cfg->api.tcp_port;
                FILE* f = fopen(cfg->api.token_file.c_str(), "r");
                char buf[256] = {};
                if (f == nullptr || fgets(buf, sizeof buf, f) == nullptr) {
                    fprintf(stderr, "sagd: api: cannot read token_file %s: %s\n",
                            cfg->api.token_file.c_str(), strerror(errno));
                    rc = 1;
                }
                if (f != nullptr)
                    fclose(f);
                ho.bearer_token = buf;
                while (!ho.bearer_token.empty() &&
                       (ho.bearer_token.back() == '\n' || ho.bearer_token.back() == '\r'))
                    ho.bearer_token.pop_back();
                if (rc == 0 && ho.bearer_token.size() < 16) {
                    fprintf(stderr, "sagd: api: the token in %s is shorter than 16 characters\n",
                            cfg->api.token_file.c_str());
                    rc = 1;
                }
                ho.token_exempt_paths = {"/metrics"};
            }
            if (rc == 0) {
                auto h = sagd::shim::http_server::create(
                    ho, [&](const sagd::shim::http_request& r,
                            const sagd::shim::connection_info& i) { return api.handle(r, i); });
                if (!h) {
                    fprintf(stderr, "sagd: api: %s\n", h.err().message.c_str());
                    rc = 1;
                } else {
                    http = std::move(h.value());
                }
            }
        }
        if (rc == 0 && cfg->fpm.enabled) {
            sagd::shim::fpm_server_options fo;
            fo.address = cfg->fpm.address;
            fo.port = cfg->fpm.port;
            fo.grace_ms = uint64_t{cfg->fpm.grace_seconds} * 1000;
            auto f = sagd::shim::fpm_server::create(
                fo, *gw.value(), [&](const sagd::dp::change_set& cs) { return api.apply(cs); });
            if (!f) {
                fprintf(stderr, "sagd: %s\n", f.err().message.c_str());
                rc = 1;
            } else {
                fpm = std::move(f.value());
            }
        }
        if (rc == 0)
            if (std::string why = api.persist(); !why.empty())
                fprintf(stderr, "sagd: warning: running config not persisted: %s\n", why.c_str());
        printf("sagd: running: %zu ports, %zu tunnels, %zu routes, %u workers, engine %s\n",
               cfg->ports.size(), cfg->tunnels.size(), cfg->routes.size(), cfg->workers,
               engine_name.c_str());
        if (http)
            printf("sagd: api on %s%s%s\n", cfg->api.socket.c_str(),
                   cfg->api.tcp_port ? " and tcp " : "",
                   cfg->api.tcp_port
                       ? (cfg->api.tcp_address + ":" + std::to_string(cfg->api.tcp_port)).c_str()
                       : "");
        if (fpm)
            printf("sagd: fpm listening on port %u\n", fpm->port());
        fflush(stdout);
        auto control = [&](uint64_t now_ms) {
            bool busy = false;
            // Busy only while something happens: an idle keep-alive client (a monitoring
            // poller, sagctl) must not keep the control core spinning, which would starve
            // zebra and the other daemons that share it.
            if (http)
                busy |= http->poll_once(0);
            if (fpm)
                busy |= fpm->poll(now_ms);
            busy |= api.poll(now_ms);
            return busy;
        };
        if (rc != 0) {
            // start-up of the control plane failed: stop before launching workers
        } else if (auto st = gw.value()->run(control); !st) {
            fprintf(stderr, "sagd: %s\n", st.err().message.c_str());
            rc = 1;
        }
        api.flush();       // a debounced persist still pending
        g_running->stop(); // also ends the reporter when run() returned early
        if (reporter.joinable())
            reporter.join();
        print_stats_line(*g_running);
        g_running = nullptr;
        sagd::shim::unregister_telemetry();
        gw.value().reset();
        rte_mempool_free(pool);
    }
    rte_pdump_uninit();
    rte_eal_cleanup();
    printf("sagd: stopped\n");
    return rc;
}
