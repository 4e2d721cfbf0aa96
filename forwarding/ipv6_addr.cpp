#include "forwarding/ipv6_addr.hpp"

#include <arpa/inet.h>

namespace sagd::fwd {

ipv6_bytes ipv6_mask(const ipv6_bytes& a, uint8_t len) noexcept {
    ipv6_bytes r{};
    for (unsigned i = 0; i < 16; ++i) {
        unsigned bits = len >= (i + 1) * 8 ? 8 : (len > i * 8 ? len - i * 8 : 0);
        r[i] = static_cast<uint8_t>(a[i] & static_cast<uint8_t>(0xff00u >> bits));
    }
    return r;
}

bool ipv6_in_prefix(const ipv6_bytes& a, const ipv6_bytes& net, uint8_t len) noexcept {
    return ipv6_mask(a, len) == ipv6_mask(net, len);
}

std::string format_ipv6(const ipv6_bytes& a) {
    char buf[INET6_ADDRSTRLEN];
    if (::inet_ntop(AF_INET6, a.data(), buf, sizeof buf) == nullptr)
        return "?";
    return buf;
}

std::string format_prefix6(const ipv6_bytes& prefix, uint8_t len) {
    return format_ipv6(prefix) + "/" + std::to_string(len);
}

} // namespace sagd::fwd
