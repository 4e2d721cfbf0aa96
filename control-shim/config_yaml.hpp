// The declarative config file (YAML) -> sagd::config, fully validated. Also the strict IPv4/MAC
// text helpers the rest of the shim uses. Control path only; exceptions never leave this unit.
#pragma once

#include "dataplane/config.hpp"
#include "dataplane/result.hpp"

#include <string>
#include <string_view>

namespace sagd {

// Loads and validates a config file. Errors read "<path>:<line>:<column>: <object>: <field>
// <reason>", e.g. "sagd.yaml:23:14: tunnels[1] 'ccn-edge-2': inbound_sas[0].spi 0x2001 already
// used by tunnel 'ccn-edge-1'". Key material never appears in an error.
result<config> load_config_file(const std::string& path);

// Same, from text already in memory; `source` names it in error messages.
result<config> load_config_string(const std::string& yaml, std::string_view source = "<string>");

// Dotted quad, strict: four decimal octets 0..255, no leading zeros ("010" is refused because
// inet_aton reads it as octal), no sign, no spaces, nothing after.
result<ipv4_addr> parse_ipv4(std::string_view text);

// "a.b.c.d/len", len 0..32, host bits must be zero (the error names the right prefix).
result<ipv4_prefix> parse_ipv4_prefix(std::string_view text);

// An interface address with its connected prefix length ("10.1.0.1/24"): host bits allowed.
struct ipv4_cidr {
    ipv4_addr addr = 0;
    uint8_t len = 0;
};
result<ipv4_cidr> parse_ipv4_cidr(std::string_view text);

// IPv6 text (RFC 4291 2.2; no zone index), and "addr/len" with host bits zero (0..128).
result<ipv6_addr> parse_ipv6(std::string_view text);
result<ipv6_prefix> parse_ipv6_prefix(std::string_view text);
std::string format_ipv6(const ipv6_addr& addr);
std::string format_ipv6_prefix(const ipv6_prefix& prefix);

// "02:00:00:00:00:01" (six hex pairs separated by ':').
result<mac_addr> parse_mac(std::string_view text);

// Writes a config in the file format; load_config_string() reads it back to an equal config.
// Without keys, every SA key reads "redacted" (for display; such text does not load).
std::string dump_config(const config& cfg, bool with_keys);

// Runtime API bodies (JSON, or YAML): one object of a config section, validated by exactly the
// rules of the file, with `base`'s ports as context. A body may be one object or a list (routes,
// neighbours). References to tunnels are not checked here (the table writer checks them
// against the running state). Errors name the object, the field and the reason.
result<tunnel_config> parse_tunnel_body(const config& base, const std::string& body);
result<group_config> parse_group_body(const config& base, const std::string& body);
result<std::vector<route_config>> parse_routes_body(const config& base, const std::string& body);
// A routes body may mix IPv4 and IPv6 prefixes.
struct routes_body {
    std::vector<route_config> routes;
    std::vector<route6_config> routes6;
};
result<routes_body> parse_routes_body_any(const config& base, const std::string& body);
result<std::vector<neighbour_config>> parse_neighbours_body(const config& base,
                                                            const std::string& body);

std::string format_ipv4(ipv4_addr addr);
std::string format_ipv4_prefix(const ipv4_prefix& prefix);
std::string format_mac(const mac_addr& mac);

// Network mask for a prefix length (0..32) in host byte order.
constexpr ipv4_addr ipv4_mask(uint8_t len) noexcept {
    return len == 0 ? 0 : len >= 32 ? 0xffffffffu : ~((ipv4_addr{1} << (32 - len)) - 1);
}

} // namespace sagd
