// Helpers shared by the crypto unit tests: hex, a test mempool, mbufs from bytes.
#pragma once

#include <gtest/gtest.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace sagd::crypto::test {

using bytes = std::vector<uint8_t>;

inline bytes hex(const std::string& s) {
    bytes out;
    int hi = -1;
    for (char c : s) {
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            continue; // spaces and separators
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<uint8_t>(hi << 4 | v));
            hi = -1;
        }
    }
    return out;
}

inline bytes concat(bytes a, const bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// One pool for the whole test binary: 128 B headroom, room for 9000-byte packets + ESP.
inline rte_mempool* test_pool() {
    static rte_mempool* pool = rte_pktmbuf_pool_create("crypto_unit", 1023, 0, 0,
                                                       RTE_PKTMBUF_HEADROOM + 9600, SOCKET_ID_ANY);
    return pool;
}

inline rte_mbuf* mbuf_from(const bytes& b) {
    rte_mbuf* m = rte_pktmbuf_alloc(test_pool());
    if (m == nullptr)
        return nullptr;
    char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(b.size()));
    if (p == nullptr) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    if (!b.empty())
        std::memcpy(p, b.data(), b.size());
    return m;
}

inline bytes mbuf_bytes(const rte_mbuf* m) {
    const auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
    return bytes(p, p + m->data_len);
}

// RAII for mbufs in tests.
struct mbuf_ptr {
    rte_mbuf* m = nullptr;
    explicit mbuf_ptr(rte_mbuf* x = nullptr) : m(x) {}
    ~mbuf_ptr() {
        if (m != nullptr)
            rte_pktmbuf_free(m);
    }
    mbuf_ptr(const mbuf_ptr&) = delete;
    mbuf_ptr& operator=(const mbuf_ptr&) = delete;
    rte_mbuf* get() const { return m; }
};

inline void set_ipv4_checksum(uint8_t* ip) {
    ip[10] = ip[11] = 0;
    uint16_t c = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
    std::memcpy(ip + 10, &c, 2);
}

// A valid inner IPv4 packet of `len` bytes (>= 20) with a random payload.
inline bytes inner_ipv4(size_t len, std::mt19937& rng, uint8_t tos = 0) {
    bytes p(len);
    for (auto& b : p)
        b = static_cast<uint8_t>(rng());
    p[0] = 0x45;
    p[1] = tos;
    p[2] = static_cast<uint8_t>(len >> 8);
    p[3] = static_cast<uint8_t>(len);
    p[6] = p[7] = 0;
    p[8] = 64;
    p[9] = 17;
    set_ipv4_checksum(p.data());
    return p;
}

inline bytes inner_ipv6(size_t len, std::mt19937& rng) {
    bytes p(len);
    for (auto& b : p)
        b = static_cast<uint8_t>(rng());
    p[0] = 0x6b; // version 6, traffic class 0xb?
    p[1] = 0x80;
    const size_t pl = len - 40;
    p[4] = static_cast<uint8_t>(pl >> 8);
    p[5] = static_cast<uint8_t>(pl);
    return p;
}

// Outer IPv4 header (20 bytes) with a valid checksum.
inline bytes outer_ipv4(uint16_t total_len, uint8_t proto, uint32_t src, uint32_t dst) {
    bytes h(20, 0);
    h[0] = 0x45;
    h[2] = static_cast<uint8_t>(total_len >> 8);
    h[3] = static_cast<uint8_t>(total_len);
    h[8] = 64;
    h[9] = proto;
    for (int i = 0; i < 4; ++i) {
        h[12 + i] = static_cast<uint8_t>(src >> (24 - 8 * i));
        h[16 + i] = static_cast<uint8_t>(dst >> (24 - 8 * i));
    }
    set_ipv4_checksum(h.data());
    return h;
}

} // namespace sagd::crypto::test
