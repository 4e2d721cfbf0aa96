// Thin rte_mbuf wrappers over forwarding/packet.hpp. They work on the first segment only
// (rte_pktmbuf_data_len): the frames they handle (ARP, ICMP, IPv4 headers) sit in it.
#pragma once

#include <rte_mbuf.h>

#include "forwarding/packet.hpp"

namespace sagd::fwd {

inline uint8_t* mbuf_bytes(rte_mbuf* m) noexcept {
    return rte_pktmbuf_mtod(m, uint8_t*);
}
inline const uint8_t* mbuf_bytes(const rte_mbuf* m) noexcept {
    return rte_pktmbuf_mtod(m, const uint8_t*);
}
inline size_t mbuf_len(const rte_mbuf* m) noexcept {
    return rte_pktmbuf_data_len(m);
}

inline parse_status parse_ethernet(const rte_mbuf* m, ethernet_info& out) noexcept {
    return parse_ethernet(mbuf_bytes(m), mbuf_len(m), out);
}

// Builds an ARP request into an empty mbuf (appends the frame). False when it does not fit.
inline bool build_arp_request(rte_mbuf* m, const mac_bytes& our_mac, uint32_t our_ip,
                              uint32_t target_ip, int vlan_tci = -1) noexcept {
    size_t n = build_arp_request(rte_pktmbuf_mtod_offset(m, uint8_t*, rte_pktmbuf_data_len(m)),
                                 rte_pktmbuf_tailroom(m), our_mac, our_ip, target_ip, vlan_tci);
    return n != 0 && rte_pktmbuf_append(m, static_cast<uint16_t>(n)) != nullptr;
}

inline bool arp_reply_in_place(rte_mbuf* m, const mac_bytes& our_mac, uint32_t our_ip) noexcept {
    return arp_reply_in_place(mbuf_bytes(m), mbuf_len(m), our_mac, our_ip);
}

inline icmp_status icmp_echo_reply_in_place(rte_mbuf* m) noexcept {
    return icmp_echo_reply_in_place(mbuf_bytes(m), mbuf_len(m));
}

// Writes IPv4 + ICMP error into an empty mbuf `out` (appends it; the caller prepends the
// Ethernet header once the neighbour is known). orig_l3_offset: where the original IPv4
// header starts in `orig` (e.g. ethernet_info::l3_offset).
inline icmp_build build_icmp_error(rte_mbuf* out, const rte_mbuf* orig, uint16_t orig_l3_offset,
                                   const icmp_error_params& p) noexcept {
    size_t len = mbuf_len(orig);
    if (orig_l3_offset > len)
        return {icmp_status::malformed, 0};
    icmp_build r = build_icmp_error(
        rte_pktmbuf_mtod_offset(out, uint8_t*, rte_pktmbuf_data_len(out)),
        rte_pktmbuf_tailroom(out), mbuf_bytes(orig) + orig_l3_offset, len - orig_l3_offset, p);
    if (r.status == icmp_status::ok && rte_pktmbuf_append(out, r.length) == nullptr)
        return {icmp_status::no_room, 0};
    return r;
}

} // namespace sagd::fwd
