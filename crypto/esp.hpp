// ESP tunnel mode (RFC 4303) with AES-GCM (RFC 4106), optionally in UDP (RFC 3948).
// Outer IPv4 only. Single-segment mbufs only: a chained mbuf gets esp_status::multi_segment
// (jumbo frames need a data room that holds them, which the port config ensures).
//
// The caller groups consecutive packets of one SA into a burst; each packet gets a status
// in `status[i]`, the SA counters are updated once per burst, and the function returns the
// number of packets with status ok. Failed packets are left for the caller to drop (their
// content is unspecified); the dataplane maps statuses to drop counters.
#pragma once

#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstdint>
#include <cstring>
#include <span>

#include "crypto/sa.hpp"

namespace sagd::crypto {

enum class esp_status : uint8_t {
    ok,
    // encap
    multi_segment, // chained mbuf (not supported)
    bad_inner,     // inner packet is not IPv4/IPv6, or its IP length exceeds the mbuf
    no_headroom,   // cannot prepend the outer headers
    no_tailroom,   // cannot append padding + ICV
    too_big,       // outer packet would exceed 65535 bytes
    seq_exhausted, // RFC 4303 3.3.3: sequence space used up, SA must be rekeyed
    // outer header parsing
    truncated,        // shorter than its headers / length fields claim
    bad_outer_header, // not IPv4, bad IHL, bad checksum, UDP length mismatch
    fragment,         // outer IPv4 fragment (no reassembly here)
    not_esp,          // neither protocol 50 nor UDP to the NAT-T port
    nat_keepalive,    // RFC 3948 2.3: one 0xFF byte: drop silently
    ike,              // RFC 3948 2.2: non-ESP marker: IKE, for the exception path
    // decap
    spi_mismatch,    // packet SPI or encapsulation differs from the SA it was handed with
    addr_mismatch,   // outer addresses differ from the SA's tunnel endpoints
    too_short,       // ESP payload shorter than header + IV + ICV + 2 trailer bytes
    replay,          // RFC 4303 3.4.3: duplicate or left of the window
    icv_fail,        // authentication failed
    bad_padding,     // pad length too large or padding bytes not 1, 2, 3, ...
    bad_next_header, // not 4 (IPv4) or 41 (IPv6)
    dummy,           // next header 59 (RFC 4303 2.6): drop silently
    crypto_error,    // engine failure (e.g. no ipsec-mb manager on this thread)
};
inline constexpr unsigned esp_status_count = static_cast<unsigned>(esp_status::crypto_error) + 1;

const char* esp_status_name(esp_status s) noexcept;

// Outer IPv4 header + UDP + ESP header + IV, and trailer + ICV sizes.
inline constexpr uint16_t esp_hdr_len = 8; // SPI + sequence number (low 32 bits)
inline constexpr uint16_t esp_encap_overhead_max = 20 + 8 + esp_hdr_len + 8 + 3 + 2 + 16;

// Encapsulation. Input: data starts at the inner IPv4 or IPv6 header. Output: data starts
// at the new outer IPv4 header (packet_type = IPv4 + ESP tunnel; ol_flags untouched).
// IV = the 64-bit sequence number (RFC 4106 3.1 allows a
// counter; it is unique per key since the SA stops before the counter wraps).
uint16_t esp_encap_burst(outbound_sa& sa, std::span<rte_mbuf* const> pkts,
                         esp_status* status) noexcept;
esp_status esp_encap(outbound_sa& sa, rte_mbuf* m) noexcept;

// What the receive path needs to pick the SA: the SPI, and whether it came in UDP.
struct esp_outer_info {
    esp_status status;   // ok, truncated, bad_outer_header, fragment, not_esp,
                         // nat_keepalive or ike
    bool udp;            // ESP in UDP (RFC 3948)
    uint32_t spi;        // host order
    uint16_t esp_offset; // from the start of the data to the ESP header
    uint16_t esp_len;    // ESP header to the end of the ICV (from the IP total length)
};

// Parses the outer IPv4 header at the start of the data. The header checksum is skipped when
// the mbuf says it was verified (RTE_MBUF_F_RX_IP_CKSUM_GOOD, set by a NIC or an earlier stage).
// UDP to `nat_t_port` (host order; 0 = plain ESP only) is ESP in UDP unless it is a NAT keepalive
// or carries IKE. Always inlined: it runs per received packet, and returned out of line the
// small struct went through the stack in pieces (a store-forwarding stall, ~9% of inbound cycles).
[[gnu::always_inline]] inline esp_outer_info esp_parse_outer(const rte_mbuf* m,
                                                             uint16_t nat_t_port = 4500) noexcept;

// Decapsulation. Input: data starts at the outer IPv4 header, the SA already looked up from
// the SPI. Output: data starts at the inner IP header, length = inner packet length,
// packet_type = RTE_PTYPE_L3_IPV4 or RTE_PTYPE_L3_IPV6.
// Order per RFC 4303 3.4: replay check -> ICV -> window update -> trailer checks.
uint16_t esp_decap_burst(inbound_sa& sa, std::span<rte_mbuf* const> pkts,
                         esp_status* status) noexcept;
// The same, for packets whose outer headers the caller already parsed with esp_parse_outer
// (outer[i] describes pkts[i], status ok) to find the SA: they are not parsed again.
uint16_t esp_decap_burst(inbound_sa& sa, std::span<rte_mbuf* const> pkts,
                         const esp_outer_info* outer, esp_status* status) noexcept;
esp_status esp_decap(inbound_sa& sa, rte_mbuf* m) noexcept;

namespace detail {
inline constexpr uint8_t esp_ipproto_esp = 50;
inline constexpr uint8_t esp_ipproto_udp = 17;
inline constexpr uint16_t esp_ipv4_hdr_len = 20;
inline constexpr uint16_t esp_udp_hdr_len = 8;
// Packet bytes are not aligned: load through memcpy.
inline uint16_t esp_load_be16(const uint8_t* p) noexcept {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return rte_be_to_cpu_16(v);
}
inline uint32_t esp_load_be32(const uint8_t* p) noexcept {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return rte_be_to_cpu_32(v);
}
} // namespace detail

[[gnu::always_inline]] inline esp_outer_info esp_parse_outer(const rte_mbuf* m,
                                                             uint16_t nat_t_port) noexcept {
    esp_outer_info o{esp_status::truncated, false, 0, 0, 0};
    if (m->nb_segs != 1) [[unlikely]] {
        o.status = esp_status::multi_segment;
        return o;
    }
    const uint32_t len = m->data_len;
    const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
    if (len < detail::esp_ipv4_hdr_len)
        return o;
    const uint32_t ihl = (p[0] & 0x0fu) * 4u;
    if ((p[0] >> 4) != 4 || ihl < detail::esp_ipv4_hdr_len) {
        o.status = esp_status::bad_outer_header;
        return o;
    }
    if (ihl > len)
        return o;
    const uint32_t total = detail::esp_load_be16(p + 2);
    if (total < ihl) {
        o.status = esp_status::bad_outer_header;
        return o;
    }
    if (total > len)
        return o;
    // A checksum the NIC or an earlier stage already verified is not summed again.
    const bool verified =
        (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
    if (!verified && rte_raw_cksum(p, ihl) != 0xffff) {
        o.status = esp_status::bad_outer_header;
        return o;
    }
    if ((detail::esp_load_be16(p + 6) & 0x3fff) != 0) { // MF set or a non-zero fragment offset
        o.status = esp_status::fragment;
        return o;
    }
    const uint32_t l4_len = total - ihl;
    const uint8_t* l4 = p + ihl;
    if (p[9] == detail::esp_ipproto_esp) {
        if (l4_len < esp_hdr_len)
            return o;
        o.spi = detail::esp_load_be32(l4);
        o.esp_offset = static_cast<uint16_t>(ihl);
        o.esp_len = static_cast<uint16_t>(l4_len);
        o.status = o.spi != 0 ? esp_status::ok : esp_status::bad_outer_header;
        return o;
    }
    if (p[9] != detail::esp_ipproto_udp || nat_t_port == 0) {
        o.status = esp_status::not_esp;
        return o;
    }
    if (l4_len < detail::esp_udp_hdr_len)
        return o;
    if (detail::esp_load_be16(l4 + 2) != nat_t_port) {
        o.status = esp_status::not_esp;
        return o;
    }
    if (detail::esp_load_be16(l4 + 4) != l4_len) { // UDP length must match the IP total length
        o.status = esp_status::bad_outer_header;
        return o;
    }
    const uint32_t payload_len = l4_len - detail::esp_udp_hdr_len;
    const uint8_t* payload = l4 + detail::esp_udp_hdr_len;
    if (payload_len == 1 && payload[0] == 0xff) { // RFC 3948 2.3 NAT keepalive
        o.status = esp_status::nat_keepalive;
        return o;
    }
    if (payload_len >= 4 && detail::esp_load_be32(payload) == 0) { // RFC 3948 2.2 non-ESP marker
        o.status = esp_status::ike;
        return o;
    }
    if (payload_len < esp_hdr_len)
        return o;
    o.udp = true;
    o.spi = detail::esp_load_be32(payload);
    o.esp_offset = static_cast<uint16_t>(ihl + detail::esp_udp_hdr_len);
    o.esp_len = static_cast<uint16_t>(payload_len);
    o.status = esp_status::ok;
    return o;
}

} // namespace sagd::crypto
