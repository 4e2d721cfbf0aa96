// A change to the running tables, as the control shim asks for it (API request, declarative
// apply, FPM batch): plain values, validated and applied as one by table_writer.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "forwarding/small_vector.hpp"

#include "dataplane/config.hpp"

namespace sagd::dp {

struct port_update {
    std::string port;
    std::optional<ipv4_addr> address;
    std::optional<uint8_t> prefix_len;
    std::optional<std::optional<ipv4_addr>> gateway; // set, or cleared with nullopt inside
    std::optional<uint16_t> mtu;
};

// A learned (FRR) IPv4 route: LAN next hops (equal-cost, weighted), or a blackhole.
struct learned_route4 {
    ipv4_prefix prefix;
    fwd::small_vector<ipv4_addr, 1> gateways; // empty: blackhole; one: no allocation
    uint8_t distance = 20;
};

// A learned (FRR) IPv6 route: LAN routers (the first usable one serves: no IPv6 ECMP yet), or a
// blackhole.
struct learned_route6 {
    ipv6_prefix prefix;
    std::vector<ipv6_addr> gateways; // empty: blackhole
    uint8_t distance = 20;
};

// One request's worth of changes, applied as one change.
struct change_set {
    std::vector<port_update> ports;
    std::vector<tunnel_config> put_tunnels; // create, or replace the tunnel of that name
    std::vector<std::string> delete_tunnels;
    std::vector<group_config> put_groups; // create, or replace the group of that name
    std::vector<std::string> delete_groups;
    std::vector<route_config> put_routes;   // static: create, or replace that prefix's route
    std::vector<ipv4_prefix> delete_routes; // static routes
    std::vector<learned_route4> put_learned;
    std::vector<ipv4_prefix> delete_learned;
    std::vector<route6_config> put_routes6; // static IPv6 routes
    std::vector<ipv6_prefix> delete_routes6;
    std::vector<learned_route6> put_learned6;
    std::vector<ipv6_prefix> delete_learned6;
    std::vector<neighbour_config> put_neighbours;    // static neighbours (applied by the gateway)
    std::vector<neighbour_config> delete_neighbours; // by port and address
    bool empty() const noexcept {
        return ports.empty() && put_tunnels.empty() && delete_tunnels.empty() &&
               put_groups.empty() && delete_groups.empty() && put_routes.empty() &&
               delete_routes.empty() && put_learned.empty() && delete_learned.empty() &&
               put_neighbours.empty() && delete_neighbours.empty() && put_routes6.empty() &&
               delete_routes6.empty() && put_learned6.empty() && delete_learned6.empty();
    }
    size_t size() const noexcept {
        return ports.size() + put_tunnels.size() + delete_tunnels.size() + put_groups.size() +
               delete_groups.size() + put_routes.size() + delete_routes.size() +
               put_learned.size() + delete_learned.size() + put_neighbours.size() +
               delete_neighbours.size() + put_routes6.size() + delete_routes6.size() +
               put_learned6.size() + delete_learned6.size();
    }
};

// Error codes callers map to API statuses.
enum class change_error : uint8_t { invalid, not_found, conflict, full };

struct change_failure {
    change_error code = change_error::invalid;
    std::string message;
};

} // namespace sagd::dp
