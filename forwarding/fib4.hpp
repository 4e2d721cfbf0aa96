// IPv4 FIB: a control-side route table keeping every candidate route per prefix, and the
// winner of each prefix installed in a DPDK rte_fib (DIR24_8, 4-byte next hops) that workers
// read without locks. Addresses are in host byte order.
#pragma once

#include <rte_fib.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "forwarding/next_hop.hpp"
#include "forwarding/result.hpp"

namespace sagd::fwd {

enum class route_origin : uint8_t { connected, static_route, learned };

// Administrative distance defaults (lower wins on equal prefix).
constexpr uint8_t default_distance(route_origin o) noexcept {
    switch (o) {
    case route_origin::connected:
        return 0;
    case route_origin::static_route:
        return 1;
    case route_origin::learned:
        return 20;
    }
    return 255;
}
const char* to_string(route_origin o) noexcept;

struct fib4_config {
    std::string name = "fib4";      // made unique per instance internally
    uint32_t max_routes = 1u << 20; // distinct prefixes installed (1,048,576)
    // rte_fib reserves one tbl8 group (1 KiB at 4-byte next hops) per installed prefix longer
    // than /24, so this caps the number of such prefixes.
    uint32_t tbl8_groups = 1u << 15;
    int socket_id = -1; // SOCKET_ID_ANY
};

struct route4 {
    uint32_t prefix = 0; // host order, host bits zero
    uint8_t len = 0;
    route_origin origin = route_origin::static_route;
    uint8_t distance = 1;
    uint32_t next_hop_id = no_route_id;
};

class fib4 {
  public:
    static constexpr uint64_t no_route = no_route_id;

    static result<std::unique_ptr<fib4>> create(const fib4_config& cfg);
    ~fib4();
    fib4(const fib4&) = delete;
    fib4& operator=(const fib4&) = delete;

    // Control side (one thread). Adding an existing (prefix, len, origin) replaces it.
    // distance: default_distance(origin) when not given. next_hop_id must be nonzero.
    status add(uint32_t prefix, uint8_t len, route_origin origin, uint32_t next_hop_id,
               std::optional<uint8_t> distance = std::nullopt);
    // Removes the candidate; the runner-up (if any) is installed, else the prefix goes.
    status remove(uint32_t prefix, uint8_t len, route_origin origin);
    // The installed (winning) route of exactly this prefix.
    std::optional<route4> installed(uint32_t prefix, uint8_t len) const;
    std::vector<route4> candidates(uint32_t prefix, uint8_t len) const;
    size_t prefix_count() const noexcept { return table_.size(); }
    size_t route_count() const noexcept { return candidates_; }
    template <typename F> void for_each_installed(F&& f) const {
        for (const auto& [key, list] : table_)
            f(list.front());
    }

    // Worker side: lock-free, noexcept. Unrouted addresses give no_route.
    uint64_t lookup(uint32_t ip_host_order) const noexcept {
        uint64_t nh = no_route;
        rte_fib_lookup_bulk(fib_, &ip_host_order, &nh, 1);
        return nh;
    }
    void lookup_bulk(const uint32_t* ips_host_order, uint64_t* next_hops,
                     unsigned n) const noexcept {
        // rte_fib_lookup_bulk does not write ips; its prototype is just not const.
        rte_fib_lookup_bulk(fib_, const_cast<uint32_t*>(ips_host_order), next_hops,
                            static_cast<int>(n));
    }
    rte_fib* raw() const noexcept { return fib_; }
    const std::string& name() const noexcept { return name_; }

  private:
    fib4(rte_fib* f, std::string name, uint32_t max_routes)
        : fib_(f), name_(std::move(name)), max_routes_(max_routes) {}
    status install(const route4& r);
    int fib_add(uint32_t prefix, uint8_t len, uint64_t nh);
    int fib_delete(uint32_t prefix, uint8_t len);
    template <typename Op> int around_top_chain(uint32_t prefix, uint8_t len, Op op);

    rte_fib* fib_;
    std::string name_;
    uint32_t max_routes_;
    size_t candidates_ = 0;
    // (prefix, len) -> candidates, sorted so front() is the winner.
    std::map<uint64_t, std::vector<route4>> table_;
};

// "10.1.0.0/16"-style text, for messages.
std::string format_prefix(uint32_t prefix, uint8_t len);
std::string format_ipv4(uint32_t addr_host_order);

} // namespace sagd::fwd
