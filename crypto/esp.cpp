// ESP tunnel-mode encap/decap: RFC 4303 (ESP), RFC 4106 (GCM in ESP), RFC 3948 (UDP encap).
#include "crypto/esp.hpp"

#include <rte_ip.h>
#include <rte_mbuf_ptype.h>
#include <rte_prefetch.h>

#include <cstring>

#include "crypto/esp_testing.hpp"

namespace sagd::crypto {

const char* esp_status_name(esp_status s) noexcept {
    static constexpr const char* names[esp_status_count] = {
        "ok",        "multi_segment", "bad_inner", "no_headroom",      "no_tailroom",
        "too_big",   "seq_exhausted", "truncated", "bad_outer_header", "fragment",
        "not_esp",   "nat_keepalive", "ike",       "spi_mismatch",     "addr_mismatch",
        "too_short", "replay",        "icv_fail",  "bad_padding",      "bad_next_header",
        "dummy",     "crypto_error",
    };
    const auto i = static_cast<unsigned>(s);
    return i < esp_status_count ? names[i] : "unknown";
}

namespace {

constexpr uint8_t ipproto_esp = detail::esp_ipproto_esp;
constexpr uint8_t ipproto_udp = detail::esp_ipproto_udp;
constexpr uint8_t next_header_ipv4 = 4;
constexpr uint8_t next_header_ipv6 = 41;
constexpr uint8_t next_header_none = 59;
constexpr uint16_t ipv4_hdr_len = detail::esp_ipv4_hdr_len;
constexpr uint16_t udp_hdr_len = detail::esp_udp_hdr_len;
constexpr uint8_t outer_ttl = 64; // also in outbound_sa::ip_csum_base (sa.cpp)
// Smallest ESP payload: header + IV + ICV + pad length + next header (RFC 4303 2).
constexpr uint32_t esp_min_len = esp_hdr_len + gcm_iv_len + gcm_icv_len + 2;

// Packet bytes are not aligned: load and store through memcpy.
inline uint16_t load_be16(const uint8_t* p) noexcept {
    return detail::esp_load_be16(p);
}
inline uint32_t load_be32(const uint8_t* p) noexcept {
    return detail::esp_load_be32(p);
}
inline void store_be16(uint8_t* p, uint16_t v) noexcept {
    v = rte_cpu_to_be_16(v);
    std::memcpy(p, &v, 2);
}
inline void store_be32(uint8_t* p, uint32_t v) noexcept {
    v = rte_cpu_to_be_32(v);
    std::memcpy(p, &v, 4);
}
inline void store_be64(uint8_t* p, uint64_t v) noexcept {
    v = rte_cpu_to_be_64(v);
    std::memcpy(p, &v, 8);
}

struct encap_totals {
    uint64_t packets = 0, bytes = 0, errors = 0, seq_exhausted = 0;
};

// iv == nullptr: IV = sequence number (the production path).
inline esp_status encap_one(outbound_sa& sa, rte_mbuf* m, const uint8_t* iv_override,
                            encap_totals& t) noexcept {
    if (m->nb_segs != 1) [[unlikely]]
        return esp_status::multi_segment;
    const uint32_t data_len = m->data_len;
    const uint8_t* inner = rte_pktmbuf_mtod(m, const uint8_t*);
    uint8_t next_header;
    uint8_t tos;
    uint32_t inner_len; // from the IP header: the frame may carry Ethernet padding after it
    if (data_len >= 20 && (inner[0] >> 4) == 4) {
        next_header = next_header_ipv4;
        tos = inner[1];
        inner_len = load_be16(inner + 2);
        if (inner_len < 20) [[unlikely]]
            return esp_status::bad_inner;
    } else if (data_len >= 40 && (inner[0] >> 4) == 6) {
        next_header = next_header_ipv6;
        tos = static_cast<uint8_t>(((inner[0] & 0x0f) << 4) | (inner[1] >> 4));
        inner_len = 40u + load_be16(inner + 4); // jumbograms (payload length 0) unsupported
    } else [[unlikely]] {
        return esp_status::bad_inner;
    }
    if (inner_len > data_len) [[unlikely]]
        return esp_status::bad_inner;
    // RFC 4303 2.4: pad so that payload + pad length + next header is a multiple of 4
    // (GCM itself needs no block alignment, RFC 4106 3.2).
    const uint32_t pad = (4 - ((inner_len + 2) & 3)) & 3;
    const uint32_t ct_len = inner_len + pad + 2;
    const uint32_t hdr_len = ipv4_hdr_len + (sa.udp ? udp_hdr_len : 0) + esp_hdr_len + gcm_iv_len;
    const uint32_t tail_len = pad + 2 + gcm_icv_len;
    const uint32_t total = hdr_len + ct_len + gcm_icv_len;
    if (total > UINT16_MAX) [[unlikely]]
        return esp_status::too_big;
    if (sa.seq >= sa.seq_max) [[unlikely]] {
        ++t.seq_exhausted;
        return esp_status::seq_exhausted;
    }
    if (rte_pktmbuf_tailroom(m) + (data_len - inner_len) < tail_len) [[unlikely]]
        return esp_status::no_tailroom;
    if (rte_pktmbuf_headroom(m) < hdr_len) [[unlikely]]
        return esp_status::no_headroom;

    const uint64_t seq = ++sa.seq;
    if (inner_len < data_len)
        rte_pktmbuf_trim(m, static_cast<uint16_t>(data_len - inner_len));
    auto* trailer =
        reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(tail_len)));
    for (uint32_t i = 0; i < pad; ++i)
        trailer[i] = static_cast<uint8_t>(i + 1); // 1, 2, 3...
    trailer[pad] = static_cast<uint8_t>(pad);
    trailer[pad + 1] = next_header;

    auto* outer =
        reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, static_cast<uint16_t>(hdr_len)));
    // Outer IPv4 (RFC 4301 5.1.2: TOS copied from the inner header; DF clear).
    outer[0] = 0x45;
    outer[1] = tos;
    store_be16(outer + 2, static_cast<uint16_t>(total));
    store_be16(outer + 4, sa.ip_id++);
    store_be16(outer + 6, 0);
    outer[8] = outer_ttl;
    outer[9] = sa.udp ? ipproto_udp : ipproto_esp;
    std::memcpy(outer + 12, &sa.outer_src, 4);
    std::memcpy(outer + 16, &sa.outer_dst, 4);
    // RFC 1071 sum: the SA's constant words plus this packet's TOS, length and id.
    uint32_t sum = sa.ip_csum_base + (0x4500u | tos) + total + load_be16(outer + 4);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    store_be16(outer + 10, static_cast<uint16_t>(~sum));
    uint8_t* esp = outer + ipv4_hdr_len;
    if (sa.udp) {
        // RFC 3948 2.1: UDP checksum 0, length covers the UDP header and the ESP packet.
        std::memcpy(esp, &sa.udp_src, 2);
        std::memcpy(esp + 2, &sa.udp_dst, 2);
        store_be16(esp + 4, static_cast<uint16_t>(total - ipv4_hdr_len));
        store_be16(esp + 6, 0);
        esp += udp_hdr_len;
    }
    store_be32(esp, sa.spi);
    store_be32(esp + 4, static_cast<uint32_t>(seq));
    uint8_t* iv = esp + esp_hdr_len;
    if (iv_override != nullptr)
        std::memcpy(iv, iv_override, gcm_iv_len);
    else
        store_be64(iv, seq); // RFC 4106 3.1: a counter is a valid IV

    // RFC 4106 5: AAD = SPI || seq (32-bit) or SPI || seq high || seq low (ESN).
    uint8_t aad[12];
    uint32_t aad_len;
    store_be32(aad, sa.spi);
    if (sa.esn) {
        store_be32(aad + 4, static_cast<uint32_t>(seq >> 32));
        store_be32(aad + 8, static_cast<uint32_t>(seq));
        aad_len = 12;
    } else {
        store_be32(aad + 4, static_cast<uint32_t>(seq));
        aad_len = 8;
    }
    uint8_t* payload = iv + gcm_iv_len;
    if (!sa.key.seal(iv, aad, aad_len, payload, payload, ct_len, payload + ct_len)) [[unlikely]]
        return esp_status::crypto_error;
    // The receive-side parse no longer describes this packet.
    m->packet_type = RTE_PTYPE_L3_IPV4 | RTE_PTYPE_TUNNEL_ESP;
    ++t.packets;
    t.bytes += inner_len;
    return esp_status::ok;
}

inline void flush(outbound_sa& sa, const encap_totals& t) noexcept {
    sa.packets += t.packets;
    sa.bytes += t.bytes;
    sa.errors += t.errors;
    sa.seq_exhausted += t.seq_exhausted;
}

struct decap_totals {
    uint64_t packets = 0, bytes = 0, errors = 0, icv_fail = 0, replay = 0, bad_padding = 0,
             bad_next_header = 0, too_short = 0, dummy = 0;
};

// `parsed`: the caller's esp_parse_outer result for this packet, or null to parse here.
inline esp_status decap_one(inbound_sa& sa, rte_mbuf* m, const esp_outer_info* parsed,
                            decap_totals& t) noexcept {
    if (m->nb_segs != 1) [[unlikely]]
        return esp_status::multi_segment;
    const esp_outer_info o =
        parsed != nullptr ? *parsed : esp_parse_outer(m, sa.udp ? sa.udp_port : 0);
    if (o.status != esp_status::ok) [[unlikely]] {
        if (o.status == esp_status::truncated)
            ++t.too_short;
        return o.status;
    }
    if (o.spi != sa.spi || o.udp != sa.udp) [[unlikely]]
        return esp_status::spi_mismatch;
    uint8_t* p = rte_pktmbuf_mtod(m, uint8_t*);
    // With UDP encap a NAT may rewrite the peer's source address, so only the
    // destination is checked then.
    if ((sa.expect_dst != 0 && std::memcmp(p + 16, &sa.expect_dst, 4) != 0) ||
        (sa.expect_src != 0 && !sa.udp && std::memcmp(p + 12, &sa.expect_src, 4) != 0)) [[unlikely]]
        return esp_status::addr_mismatch;
    if (o.esp_len < esp_min_len) [[unlikely]] {
        ++t.too_short;
        return esp_status::too_short;
    }
    uint8_t* esp = p + o.esp_offset;
    const uint32_t seq_low = load_be32(esp + 4);
    // RFC 4303 3.4.3: check the window before spending time on the ICV.
    const replay_result r = sa.replay.check(seq_low);
    if (r.verdict != replay_verdict::ok) [[unlikely]] {
        ++t.replay;
        return esp_status::replay;
    }
    uint8_t aad[12];
    uint32_t aad_len;
    std::memcpy(aad, esp, 4);
    if (sa.esn) {
        // RFC 4303 2.2.1: the high half is not sent but is authenticated.
        store_be32(aad + 4, static_cast<uint32_t>(r.seq >> 32));
        std::memcpy(aad + 8, esp + 4, 4);
        aad_len = 12;
    } else {
        std::memcpy(aad + 4, esp + 4, 4);
        aad_len = 8;
    }
    const uint32_t ct_len = o.esp_len - esp_hdr_len - gcm_iv_len - gcm_icv_len;
    uint8_t* iv = esp + esp_hdr_len;
    uint8_t* pt = iv + gcm_iv_len;
    if (!sa.key.open(iv, aad, aad_len, pt, pt, ct_len, pt + ct_len)) [[unlikely]] {
        ++t.icv_fail;
        return esp_status::icv_fail;
    }
    // RFC 4303 3.4.3: window slides only after ICV passes.
    if (!sa.replay.update(r.seq)) [[unlikely]] {
        ++t.replay;
        return esp_status::replay;
    }
    const uint8_t next_header = pt[ct_len - 1];
    const uint32_t pad_len = pt[ct_len - 2];
    if (pad_len > ct_len - 2) [[unlikely]] {
        ++t.bad_padding;
        return esp_status::bad_padding;
    }
    const uint32_t inner_len = ct_len - 2 - pad_len;
    // RFC 4303 2.4: default padding is 1, 2, 3, ...; the receiver checks it.
    for (uint32_t i = 0; i < pad_len; ++i) {
        if (pt[inner_len + i] != static_cast<uint8_t>(i + 1)) [[unlikely]] {
            ++t.bad_padding;
            return esp_status::bad_padding;
        }
    }
    if (next_header == next_header_none) [[unlikely]] {
        ++t.dummy;
        return esp_status::dummy;
    }
    if (next_header == next_header_ipv4) {
        if (inner_len < 20 || (pt[0] >> 4) != 4 || load_be16(pt + 2) != inner_len) [[unlikely]]
            return esp_status::bad_inner;
    } else if (next_header == next_header_ipv6) {
        if (inner_len < 40 || (pt[0] >> 4) != 6 || 40u + load_be16(pt + 4) != inner_len)
            [[unlikely]]
            return esp_status::bad_inner;
    } else [[unlikely]] {
        ++t.bad_next_header;
        return esp_status::bad_next_header;
    }
    rte_pktmbuf_adj(m, static_cast<uint16_t>(o.esp_offset + esp_hdr_len + gcm_iv_len));
    // Also drops anything after the IP total length (e.g. Ethernet minimum-size padding).
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->data_len - inner_len));
    m->packet_type = next_header == next_header_ipv4 ? RTE_PTYPE_L3_IPV4 : RTE_PTYPE_L3_IPV6;
    ++t.packets;
    t.bytes += inner_len;
    return esp_status::ok;
}

inline void flush(inbound_sa& sa, const decap_totals& t) noexcept {
    sa.packets += t.packets;
    sa.bytes += t.bytes;
    sa.errors += t.errors;
    sa.icv_fail += t.icv_fail;
    sa.replay_drops += t.replay;
    sa.bad_padding += t.bad_padding;
    sa.bad_next_header += t.bad_next_header;
    sa.too_short += t.too_short;
    sa.dummy += t.dummy;
}

constexpr size_t prefetch_ahead = 2;

} // namespace

uint16_t esp_encap_burst(outbound_sa& sa, std::span<rte_mbuf* const> pkts,
                         esp_status* status) noexcept {
    encap_totals t;
    const size_t n = pkts.size();
    for (size_t i = 0; i < n; ++i) {
        if (i + prefetch_ahead < n) {
            auto* next = rte_pktmbuf_mtod(pkts[i + prefetch_ahead], uint8_t*);
            rte_prefetch0(next);
            // The outer headers go into the headroom line just before the data, which
            // nothing has touched yet: fetch it for writing ahead of time.
            rte_prefetch0_write(next - 1);
        }
        status[i] = encap_one(sa, pkts[i], nullptr, t);
    }
    t.errors = n - t.packets;
    flush(sa, t);
    return static_cast<uint16_t>(t.packets);
}

esp_status esp_encap(outbound_sa& sa, rte_mbuf* m) noexcept {
    esp_status s;
    esp_encap_burst(sa, {&m, 1}, &s);
    return s;
}

uint16_t esp_decap_burst(inbound_sa& sa, std::span<rte_mbuf* const> pkts,
                         const esp_outer_info* outer, esp_status* status) noexcept {
    decap_totals t;
    const size_t n = pkts.size();
    for (size_t i = 0; i < n; ++i) {
        if (i + prefetch_ahead < n)
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + prefetch_ahead], void*));
        status[i] = decap_one(sa, pkts[i], outer != nullptr ? &outer[i] : nullptr, t);
    }
    t.errors = n - t.packets;
    flush(sa, t);
    return static_cast<uint16_t>(t.packets);
}

uint16_t esp_decap_burst(inbound_sa& sa, std::span<rte_mbuf* const> pkts,
                         esp_status* status) noexcept {
    return esp_decap_burst(sa, pkts, nullptr, status);
}

esp_status esp_decap(inbound_sa& sa, rte_mbuf* m) noexcept {
    esp_status s;
    esp_decap_burst(sa, {&m, 1}, &s);
    return s;
}

namespace testing {

esp_status esp_encap_with_iv(outbound_sa& sa, rte_mbuf* m, const uint8_t* iv) noexcept {
    encap_totals t;
    const esp_status s = encap_one(sa, m, iv, t);
    t.errors = s == esp_status::ok ? 0 : 1;
    flush(sa, t);
    return s;
}

} // namespace testing

} // namespace sagd::crypto
