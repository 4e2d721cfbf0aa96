// Security associations, split like VPP's ipsec_sa: a small cache-aligned hot struct per
// direction (what encap/decap touch per packet) and a cold record (configuration, for the
// control path, CLI and telemetry). Keys never leave aead_key and are wiped on free.
#pragma once

#include <rte_byteorder.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "crypto/aead.hpp"
#include "crypto/replay_window.hpp"

namespace sagd::crypto {

// Everything needed to create one SA. Addresses and ports are in host byte order.
struct sa_params {
    uint32_t spi = 0;
    cipher_kind cipher = cipher_kind::aes_gcm_128;
    std::span<const uint8_t> keymat; // AES key || 4-byte salt (RFC 4106 8.1)
    engine_kind engine = engine_kind::ipsec_mb;
    bool esn = false;                                     // RFC 4303 2.2.1
    uint32_t replay_window = replay_window::default_size; // inbound only; 0 = disabled
    uint32_t local_addr = 0;     // outbound: outer source; inbound: expected outer dst (0 = any)
    uint32_t peer_addr = 0;      // outbound: outer destination; inbound: expected outer src
    uint16_t local_udp_port = 0; // != 0: ESP in UDP (RFC 3948), usually 4500
    uint16_t peer_udp_port = 0;  // outbound UDP destination port (NAT may change it)
};

// Cold record: the configuration without the key.
struct sa_info {
    uint32_t spi;
    cipher_kind cipher;
    engine_kind engine;
    bool esn;
    uint32_t replay_window;
    uint32_t local_addr, peer_addr;
    uint16_t local_udp_port, peer_udp_port;
};

struct alignas(64) outbound_sa {
    // Line 0: read and written by every encap.
    aead_key key;
    uint64_t seq = 0;     // last sequence number used; the first packet gets 1 (RFC 4303 3.3.3)
    uint64_t seq_max = 0; // 2^32-1 without ESN, 2^64-1 with: the SA stops at the limit
    uint32_t spi = 0;
    rte_be32_t outer_src = 0, outer_dst = 0;
    rte_be16_t udp_src = 0, udp_dst = 0;
    uint16_t ip_id = 0;
    bool esn = false;
    bool udp = false;
    // One's-complement sum of the outer IPv4 header words that never change (TTL/protocol,
    // addresses): a packet adds TOS, length and id instead of summing the whole header.
    uint32_t ip_csum_base = 0;
    // Line 1: per-SA counters, flushed once per burst. bytes = inner (plaintext) bytes.
    alignas(64) uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t errors = 0;        // every failed packet, including seq_exhausted
    uint64_t seq_exhausted = 0; // packets refused because the sequence space is used up
    std::unique_ptr<const sa_info> info;
};
static_assert(sizeof(outbound_sa) == 128, "outbound_sa: one hot line + one counter line");

struct alignas(64) inbound_sa {
    // Line 0: read by every decap.
    aead_key key;
    uint32_t spi = 0;
    rte_be32_t expect_src = 0, expect_dst = 0; // 0 = not checked
    uint16_t udp_port = 0;                     // host order; used when udp is set
    bool esn = false;
    bool udp = false;
    uint32_t user = 0;   // the owner's tag: the dataplane keeps its tunnel index here
    uint64_t errors = 0; // every failed packet (sum of the reasons below and others)
    std::unique_ptr<const sa_info> info;
    // Line 1: per-SA counters, flushed once per burst. bytes = inner (plaintext) bytes.
    alignas(64) uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t icv_fail = 0;
    uint64_t replay_drops = 0;
    uint64_t bad_padding = 0;
    uint64_t bad_next_header = 0;
    uint64_t too_short = 0;
    uint64_t dummy = 0; // next header 59 (RFC 4303 2.6): dropped silently, but counted
    // Lines 2+: window state then bitmap.
    alignas(64) replay_window replay;
};
static_assert(sizeof(inbound_sa) % 64 == 0);
static_assert(sizeof(inbound_sa) <= 128 + sizeof(replay_window) + 64);

template <class T> struct sa_result {
    std::unique_ptr<T> sa; // null on error
    std::string error;     // what was wrong, for the user; never contains key material
    explicit operator bool() const noexcept { return sa != nullptr; }
};

// Control path: validate and build. Errors: SPI 0..255 (reserved, RFC 4303 2.1), keymat
// length not matching the cipher, window outside 64..4096 (and not 0), outbound without
// addresses, engine initialisation failure.
sa_result<outbound_sa> create_outbound_sa(const sa_params& p);
sa_result<inbound_sa> create_inbound_sa(const sa_params& p);

} // namespace sagd::crypto
