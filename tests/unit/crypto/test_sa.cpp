// SA creation (validation, error messages) and the SPI -> inbound SA map.
#include <gtest/gtest.h>

#include <vector>

#include "crypto/sa.hpp"
#include "crypto/sa_map.hpp"
#include "test_util.hpp"

namespace sagd::crypto::test {
namespace {

sa_params base(const bytes& km) {
    sa_params p;
    p.spi = 0x1002;
    p.keymat = km;
    p.local_addr = 0x0a000001;
    p.peer_addr = 0x0a000002;
    return p;
}

bool contains(const std::string& s, const char* what) {
    return s.find(what) != std::string::npos;
}

TEST(sa_create, accepts_valid_params) {
    const bytes km128(20, 7), km256(36, 7);
    for (engine_kind e : {engine_kind::ipsec_mb, engine_kind::openssl}) {
        sa_params p = base(km128);
        p.engine = e;
        auto o = create_outbound_sa(p);
        ASSERT_TRUE(o) << o.error;
        EXPECT_EQ(o.sa->seq, 0u);
        EXPECT_EQ(o.sa->seq_max, UINT32_MAX);
        EXPECT_EQ(o.sa->info->spi, 0x1002u);
        p.cipher = cipher_kind::aes_gcm_256;
        p.keymat = km256;
        p.esn = true;
        p.replay_window = 4096;
        auto i = create_inbound_sa(p);
        ASSERT_TRUE(i) << i.error;
        EXPECT_EQ(i.sa->replay.size(), 4096u);
        EXPECT_TRUE(i.sa->replay.esn());
        EXPECT_EQ(i.sa->key.engine(), e);
        auto o2 = create_outbound_sa(p);
        ASSERT_TRUE(o2);
        EXPECT_EQ(o2.sa->seq_max, UINT64_MAX);
    }
}

TEST(sa_create, rejects_wrong_keymat_length) {
    const bytes km16(16, 1), km20(20, 1), km32(32, 1);
    sa_params p = base(km16);
    auto r = create_outbound_sa(p);
    EXPECT_FALSE(r);
    EXPECT_TRUE(contains(r.error, "SPI 0x1002")) << r.error;
    EXPECT_TRUE(contains(r.error, "must be 20 bytes")) << r.error;
    EXPECT_TRUE(contains(r.error, "got 16")) << r.error;
    p.cipher = cipher_kind::aes_gcm_256;
    p.keymat = km20;
    auto r2 = create_inbound_sa(p);
    EXPECT_FALSE(r2);
    EXPECT_TRUE(contains(r2.error, "aes-gcm-256 must be 36 bytes")) << r2.error;
    p.keymat = km32; // a bare AES-256 key without the salt
    EXPECT_FALSE(create_inbound_sa(p));
}

TEST(sa_create, rejects_bad_window) {
    const bytes km(20, 1);
    sa_params p = base(km);
    for (uint32_t w : {1u, 32u, 63u, 4097u, 65536u}) {
        p.replay_window = w;
        auto r = create_inbound_sa(p);
        EXPECT_FALSE(r) << w;
        EXPECT_TRUE(contains(r.error, "replay window")) << r.error;
        EXPECT_TRUE(contains(r.error, "64..4096")) << r.error;
    }
    for (uint32_t w : {0u, 64u, 100u, 1024u, 4096u}) {
        p.replay_window = w;
        EXPECT_TRUE(create_inbound_sa(p)) << w;
    }
}

TEST(sa_create, rejects_reserved_spi_and_missing_addresses) {
    const bytes km(20, 1);
    sa_params p = base(km);
    p.spi = 0;
    EXPECT_TRUE(contains(create_inbound_sa(p).error, "reserved"));
    p.spi = 255;
    EXPECT_FALSE(create_outbound_sa(p));
    p.spi = 256;
    EXPECT_TRUE(create_outbound_sa(p));
    p.peer_addr = 0;
    EXPECT_TRUE(contains(create_outbound_sa(p).error, "outer addresses"));
    p.peer_addr = 1;
    p.local_udp_port = 4500;
    EXPECT_TRUE(contains(create_outbound_sa(p).error, "peer UDP port"));
}

TEST(sa_create, error_never_contains_key_bytes) {
    bytes km(19, 0xAB); // would show up as "ab" or "171" if printed
    sa_params p = base(km);
    auto r = create_outbound_sa(p);
    EXPECT_FALSE(r);
    EXPECT_FALSE(contains(r.error, "ab") || contains(r.error, "AB") || contains(r.error, "171"));
}

std::vector<std::unique_ptr<inbound_sa>> make_inbound(size_t n, uint32_t first_spi) {
    const bytes km(20, 3);
    std::vector<std::unique_ptr<inbound_sa>> v;
    for (size_t i = 0; i < n; ++i) {
        sa_params p = base(km);
        p.spi = first_spi + static_cast<uint32_t>(i) * 7919u;
        p.engine = engine_kind::openssl;
        auto r = create_inbound_sa(p);
        EXPECT_TRUE(r) << r.error;
        v.push_back(std::move(r.sa));
    }
    return v;
}

TEST(inbound_sa_map, holds_2000_sas_and_finds_them) {
    auto sas = make_inbound(2500, 0x1000);
    inbound_sa_map map(2500);
    for (auto& sa : sas)
        ASSERT_EQ(map.insert(sa.get()), "");
    EXPECT_EQ(map.size(), 2500u);
    for (auto& sa : sas)
        ASSERT_EQ(map.find(sa->spi), sa.get());
    EXPECT_EQ(map.find(0), nullptr);
    EXPECT_EQ(map.find(0x1001), nullptr);
    EXPECT_EQ(map.find(0xFFFFFFFF), nullptr);

    std::vector<uint32_t> spis;
    for (size_t i = 0; i < 32; ++i)
        spis.push_back(sas[i * 70]->spi);
    spis[5] = 12345; // unknown
    inbound_sa* out[32];
    map.find_bulk(spis.data(), spis.size(), out);
    for (size_t i = 0; i < 32; ++i)
        EXPECT_EQ(out[i], i == 5 ? nullptr : sas[i * 70].get());
}

TEST(inbound_sa_map, duplicate_spi_and_full_table_are_errors) {
    auto sas = make_inbound(3, 0x2000);
    inbound_sa_map map(2);
    EXPECT_EQ(map.insert(sas[0].get()), "");
    const std::string dup = map.insert(sas[0].get());
    EXPECT_TRUE(contains(dup, "0x2000")) << dup;
    EXPECT_TRUE(contains(dup, "already used")) << dup;
    EXPECT_EQ(map.insert(sas[1].get()), "");
    EXPECT_TRUE(contains(map.insert(sas[2].get()), "full"));
    EXPECT_EQ(map.size(), 2u);
    EXPECT_FALSE(map.insert(nullptr).empty());
}

TEST(sa_layout, hot_structs_are_cache_aligned) {
    static_assert(alignof(outbound_sa) == 64);
    static_assert(alignof(inbound_sa) == 64);
    auto sas = make_inbound(1, 0x3000);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(sas[0].get()) % 64, 0u);
}

} // namespace
} // namespace sagd::crypto::test
