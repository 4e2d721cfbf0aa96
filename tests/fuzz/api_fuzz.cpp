// Fuzz target: the runtime API's request bodies (everything after HTTP framing, which
// http_fuzz covers). The first byte picks the parser; the rest is the body:
//   0 text route batch (parse_route_batch)      1 tunnel object (parse_tunnel_body)
//   2 route object(s) (parse_routes_body)       3 neighbour object(s) (parse_neighbours_body)
//   4 a whole config (load_config_string), then diff_config against a fixed running config
// Every accepted result must keep the promises the table writer relies on; nothing may crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "control-shim/api_parse.hpp"
#include "control-shim/config_yaml.hpp"

namespace {

using namespace sagd;
using namespace sagd::shim;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "api_fuzz: broken promise: %s\n", what);
        std::abort();
    }
}

bool host_bits_clear(const ipv4_prefix& p) {
    return p.len <= 32 && (p.addr & ~ipv4_mask(p.len)) == 0;
}

const config& base() {
    static const config c = [] {
        auto r = load_config_string("ports:\n"
                                    "  - {name: lan0, role: lan, device: net_null0, address: "
                                    "10.1.0.1/24}\n"
                                    "  - {name: wan0, role: wan, device: net_null1, address: "
                                    "192.0.2.1/24, gateway: 192.0.2.254}\n"
                                    "tunnels:\n"
                                    "  - {name: t1, port: wan0, peer: 198.51.100.1, encap: esp,\n"
                                    "     outbound_sa: {spi: 0x1001, cipher: aes-gcm-128, key: "
                                    "0x2b7e151628aed2a6abf7158809cf4f3ccafebabe},\n"
                                    "     inbound_sas: [{spi: 0x2001, cipher: aes-gcm-128, key: "
                                    "0x603deb1015ca71be2b73aef0857d7781deadbeef}]}\n"
                                    "routes:\n"
                                    "  - {prefix: 10.2.0.0/16, tunnel: t1}\n",
                                    "base");
        check(r.ok(), "the base config loads");
        return r.value();
    }();
    return c;
}

void check_routes(const std::vector<route_config>& routes) {
    for (const auto& r : routes) {
        check(host_bits_clear(r.prefix), "route prefix host bits clear");
        check(r.distance >= 1, "route distance 1..255");
        check(r.via != route_via::tunnel || !r.tunnel.empty(), "route tunnel named");
    }
}

void run_one(const uint8_t* data, size_t size) {
    if (size == 0)
        return;
    const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 5) {
    case 0: {
        dp::change_set cs;
        if (!parse_route_batch(body, cs)) {
            check_routes(cs.put_routes);
            for (const auto& p : cs.delete_routes)
                check(host_bits_clear(p), "deleted prefix host bits clear");
        }
        break;
    }
    case 1:
        if (auto t = parse_tunnel_body(base(), body); t.ok()) {
            const auto& tc = t.value();
            check(!tc.name.empty() && tc.name.size() <= 31, "tunnel name 1..31");
            check(tc.port == "wan0", "tunnel on the WAN port");
            check(tc.inbound_sas.size() == 1 || tc.inbound_sas.size() == 2, "1-2 inbound SAs");
            for (const auto* sa : {&tc.outbound_sa, &tc.inbound_sas[0]})
                check(sa->spi >= 256 && (sa->keymat.size() == 20 || sa->keymat.size() == 36),
                      "SA spi and keymat length");
        } else {
            check(t.err().message.find("2b7e1516") == std::string::npos, "no key in errors");
        }
        break;
    case 2:
        if (auto r = parse_routes_body(base(), body); r.ok())
            check_routes(r.value());
        break;
    case 3:
        if (auto n = parse_neighbours_body(base(), body); n.ok())
            for (const auto& nb : n.value())
                check((nb.mac[0] & 1) == 0, "neighbour MAC unicast");
        break;
    case 4:
        if (auto target = load_config_string(body, "fuzz"); target.ok()) {
            dp::change_set cs;
            std::vector<std::string> summary;
            if (!diff_config(base(), target.value(), cs, summary)) {
                check(cs.size() == summary.size(), "one summary line per change");
                check_routes(cs.put_routes);
                // Applying the diff's own target again is a no-op.
                dp::change_set again;
                std::vector<std::string> none;
                check(!diff_config(target.value(), target.value(), again, none) && again.empty(),
                      "a config does not differ from itself");
            }
        }
        break;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    run_one(data, size);
    return 0;
}

#ifdef SAGD_API_REPLAY_MAIN
#define SAGD_FUZZ_NAME "api_fuzz"
#include "replay_main.hpp"
#endif
