// Small pieces of the worker pipeline that are worth reading (and testing) on their own:
// mapping crypto statuses to drop reasons, and finding a received ESP packet's inbound SA.
#pragma once

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "crypto/esp.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/tables.hpp"

namespace sagd::dp {

constexpr drop drop_for(crypto::esp_status s) noexcept {
    using crypto::esp_status;
    switch (s) {
    case esp_status::seq_exhausted:
        return drop::esp_seq_exhausted;
    case esp_status::truncated:
    case esp_status::bad_outer_header:
    case esp_status::too_short:
        return drop::esp_malformed;
    case esp_status::fragment:
        return drop::fragment_to_us;
    case esp_status::not_esp:
        return drop::local_unhandled;
    case esp_status::nat_keepalive:
        return drop::natt_keepalive;
    case esp_status::ike:
        return drop::ike_on_natt_port;
    case esp_status::spi_mismatch:
        return drop::esp_unknown_spi;
    case esp_status::addr_mismatch:
        return drop::esp_wrong_peer;
    case esp_status::replay:
        return drop::esp_replay;
    case esp_status::icv_fail:
        return drop::esp_icv_fail;
    case esp_status::bad_padding:
        return drop::esp_bad_padding;
    case esp_status::bad_next_header:
        return drop::esp_bad_next_header;
    case esp_status::dummy:
        return drop::esp_dummy;
    case esp_status::crypto_error:
        return drop::crypto_error;
    case esp_status::ok:
    case esp_status::multi_segment:
    case esp_status::bad_inner:
    case esp_status::no_headroom:
    case esp_status::no_tailroom:
    case esp_status::too_big:
        break;
    }
    return drop::esp_encap_error;
}

// Finds the inbound SA of a packet whose data starts at an outer IPv4 header addressed to one
// of our WAN addresses (ESP, or UDP to a NAT-T port). False with `why` set when it has none.
// `outer` is the parsed outer header, for crypto::esp_decap_burst (so it is parsed once).
inline bool lookup_inbound(const tables& t, const rte_mbuf* m, crypto::inbound_sa*& sa,
                           crypto::esp_outer_info& outer, drop& why) noexcept {
    const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
    uint16_t natt_port = 0;
    if (ip->next_proto_id == IPPROTO_UDP) {
        uint16_t ihl = static_cast<uint16_t>((ip->version_ihl & 0x0f) * 4);
        uint16_t total = rte_be_to_cpu_16(ip->total_length);
        if (rte_pktmbuf_data_len(m) < ihl + sizeof(rte_udp_hdr)) {
            why = drop::esp_malformed;
            return false;
        }
        const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, ihl);
        // RFC 768: the UDP length covers header + data; anything else is forged or truncated.
        if (rte_be_to_cpu_16(udp->dgram_len) != total - ihl) {
            why = drop::esp_bad_udp_length;
            return false;
        }
        natt_port = rte_be_to_cpu_16(udp->dst_port);
    }
    outer = crypto::esp_parse_outer(m, natt_port);
    if (outer.status != crypto::esp_status::ok) {
        why = drop_for(outer.status);
        return false;
    }
    sa = t.sa_map->find(outer.spi);
    if (sa == nullptr || sa->udp != outer.udp) {
        why = drop::esp_unknown_spi;
        return false;
    }
    return true;
}

} // namespace sagd::dp
