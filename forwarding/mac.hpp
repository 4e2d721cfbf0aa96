// Ethernet MAC address as six bytes in wire order.
#pragma once

#include <array>
#include <cstdint>

namespace sagd::fwd {
using mac_bytes = std::array<uint8_t, 6>;
inline constexpr mac_bytes broadcast_mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
// Group (multicast or broadcast) addresses have the I/G bit set (IEEE 802).
constexpr bool is_group_mac(const uint8_t* m) noexcept {
    return (m[0] & 1) != 0;
}
} // namespace sagd::fwd
