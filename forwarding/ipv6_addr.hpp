// IPv6 addresses and prefixes as 16 bytes in network order: masks, membership, RFC 5952 text,
// and the prefix key the IPv6 tables sort by. Plain C++ (no DPDK), so the config loader and the
// API parsers (and their fuzz targets) can use it.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>

namespace sagd::fwd {

using ipv6_bytes = std::array<uint8_t, 16>;

// Map key: address then length (so a prefix's more-specifics follow it in address order).
struct prefix6_key {
    ipv6_bytes addr{};
    uint8_t len = 0;
    auto operator<=>(const prefix6_key&) const = default;
};

// The network of `a` at `len` (host bits cleared).
ipv6_bytes ipv6_mask(const ipv6_bytes& a, uint8_t len) noexcept;
bool ipv6_in_prefix(const ipv6_bytes& a, const ipv6_bytes& net, uint8_t len) noexcept;
// RFC 5952 text ("2001:db8::1"), and "2001:db8::/32".
std::string format_ipv6(const ipv6_bytes& a);
std::string format_prefix6(const ipv6_bytes& prefix, uint8_t len);

} // namespace sagd::fwd
