// fib6: longest prefix match over rte_fib6 TRIE, distance, double buffering, against a naive
// reference with random prefixes (/0 and /128 included, overlaps and deletes).
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "forwarding/fib6.hpp"

using namespace sagd::fwd;

namespace {

ipv6_bytes a6(const char* text) {
    ipv6_bytes a{};
    if (inet_pton(AF_INET6, text, a.data()) != 1)
        ADD_FAILURE() << "bad address " << text;
    return a;
}

std::unique_ptr<fib6> make_fib(uint32_t max_routes = 1024, uint32_t tbl8 = 1024,
                               bool dbl = false) {
    fib6_config c;
    c.name = "t6";
    c.max_routes = max_routes;
    c.tbl8_groups = tbl8;
    c.double_buffered = dbl;
    auto r = fib6::create(c);
    if (!r)
        ADD_FAILURE() << r.err().message;
    return r ? std::move(r).value() : nullptr;
}

// Reference LPM: one map per prefix length, probed from /128 down.
struct reference_lpm {
    std::map<ipv6_bytes, uint32_t> by_len[129];
    uint64_t lookup(const ipv6_bytes& a) const {
        for (int len = 128; len >= 0; --len) {
            auto it = by_len[len].find(ipv6_mask(a, static_cast<uint8_t>(len)));
            if (it != by_len[len].end())
                return it->second;
        }
        return fib6::no_route;
    }
};

std::vector<uint64_t> probe(rte_fib6* f, const std::vector<ipv6_bytes>& addrs) {
    std::vector<uint64_t> out(addrs.size());
    std::vector<std::array<uint8_t, 16>> a(addrs.begin(), addrs.end());
    rte_fib6_lookup_bulk(f, reinterpret_cast<uint8_t(*)[16]>(a.data()), out.data(),
                         static_cast<int>(a.size()));
    return out;
}

} // namespace

TEST(fib6, format_and_mask) {
    EXPECT_EQ(format_ipv6(a6("2001:db8:0:0:0:0:0:1")), "2001:db8::1");
    EXPECT_EQ(format_prefix6(a6("2001:db8::"), 32), "2001:db8::/32");
    EXPECT_EQ(ipv6_mask(a6("2001:db8:ffff::1"), 36), a6("2001:db8:f000::"));
    EXPECT_EQ(ipv6_mask(a6("ffff::1"), 0), ipv6_bytes{});
    EXPECT_TRUE(ipv6_in_prefix(a6("2001:db8::5"), a6("2001:db8::"), 64));
    EXPECT_FALSE(ipv6_in_prefix(a6("2001:db9::5"), a6("2001:db8::"), 32));
}

TEST(fib6, longest_prefix_match_default_and_host_routes) {
    auto f = make_fib();
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->add(ipv6_bytes{}, 0, route_origin::static_route, 1));
    ASSERT_TRUE(f->add(a6("2001:db8::"), 32, route_origin::static_route, 2));
    ASSERT_TRUE(f->add(a6("2001:db8:1::"), 48, route_origin::static_route, 3));
    ASSERT_TRUE(f->add(a6("2001:db8:1:2::"), 64, route_origin::static_route, 4));
    ASSERT_TRUE(f->add(a6("2001:db8:1:2::3"), 128, route_origin::static_route, 5));
    ASSERT_TRUE(f->add(a6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 128,
                       route_origin::static_route, 6));
    EXPECT_EQ(f->lookup(a6("2002::1")), 1u);
    EXPECT_EQ(f->lookup(a6("2001:db8:9::1")), 2u);
    EXPECT_EQ(f->lookup(a6("2001:db8:1:9::1")), 3u);
    EXPECT_EQ(f->lookup(a6("2001:db8:1:2::4")), 4u);
    EXPECT_EQ(f->lookup(a6("2001:db8:1:2::3")), 5u);
    EXPECT_EQ(f->lookup(a6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), 6u);
    EXPECT_EQ(f->lookup(a6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")), 1u);
    ASSERT_TRUE(f->remove(ipv6_bytes{}, 0, route_origin::static_route));
    EXPECT_EQ(f->lookup(a6("2002::1")), fib6::no_route);
    EXPECT_EQ(f->lookup(a6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), 6u);
    ASSERT_TRUE(f->remove(a6("2001:db8:1:2::"), 64, route_origin::static_route));
    EXPECT_EQ(f->lookup(a6("2001:db8:1:2::4")), 3u);
    EXPECT_EQ(f->lookup(a6("2001:db8:1:2::3")), 5u);
    EXPECT_FALSE(f->remove(a6("2001:db8:1:2::"), 64, route_origin::static_route));
    EXPECT_EQ(f->prefix_count(), 4u);
    std::vector<std::string> within;
    f->for_each_installed_within(a6("2001:db8::"), 32, [&](const route6& r) {
        within.push_back(format_prefix6(r.prefix, r.len));
    });
    EXPECT_EQ(within, (std::vector<std::string>{"2001:db8::/32", "2001:db8:1::/48",
                                                "2001:db8:1:2::3/128"}));
}

TEST(fib6, invalid_prefixes_and_distance) {
    auto f = make_fib();
    ASSERT_TRUE(f);
    auto r = f->add(a6("2001:db8::1"), 64, route_origin::static_route, 1);
    ASSERT_FALSE(r);
    EXPECT_NE(r.err().message.find("host bits set (network is 2001:db8::/64)"), std::string::npos)
        << r.err().message;
    EXPECT_FALSE(f->add(a6("2001:db8::"), 129, route_origin::static_route, 1));
    EXPECT_FALSE(f->add(a6("2001:db8::"), 32, route_origin::static_route, 0));
    EXPECT_EQ(f->prefix_count(), 0u);
    // Static (1) beats learned (20); a learned route with distance 0 beats static.
    ASSERT_TRUE(f->add(a6("2001:db8::"), 32, route_origin::learned, 7));
    ASSERT_TRUE(f->add(a6("2001:db8::"), 32, route_origin::static_route, 8));
    EXPECT_EQ(f->lookup(a6("2001:db8::1")), 8u);
    ASSERT_TRUE(f->remove(a6("2001:db8::"), 32, route_origin::static_route));
    EXPECT_EQ(f->lookup(a6("2001:db8::1")), 7u);
    ASSERT_TRUE(f->add(a6("2001:db8::"), 32, route_origin::static_route, 8, 30));
    EXPECT_EQ(f->lookup(a6("2001:db8::1")), 7u);
    EXPECT_EQ(f->route_count(), 2u);
}

TEST(fib6, table_full) {
    auto f = make_fib(4);
    ASSERT_TRUE(f);
    for (unsigned i = 0; i < 4; ++i) {
        auto p = a6("2001:db8::");
        p[3] = static_cast<uint8_t>(i);
        ASSERT_TRUE(f->add(p, 32, route_origin::static_route, 1 + i));
    }
    auto r = f->add(a6("2001:db9::"), 32, route_origin::static_route, 9);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::table_full);
}

TEST(fib6, random_routes_match_reference) {
    // Random /65../128 prefixes share few tbl8 groups (up to 13 each): size for the worst case.
    constexpr unsigned n_routes = 6'000;
    auto f = make_fib(n_routes, 48'000);
    ASSERT_TRUE(f);
    std::mt19937_64 rng(6);
    reference_lpm ref;
    std::vector<std::pair<ipv6_bytes, uint8_t>> routes;
    // Addresses share a few top bits so that prefixes overlap and nest.
    auto random_addr = [&] {
        ipv6_bytes a{};
        for (auto& b : a)
            b = static_cast<uint8_t>(rng());
        a[0] = 0x20;
        a[1] = static_cast<uint8_t>(rng() % 4);
        return a;
    };
    for (unsigned i = 0; i < n_routes; ++i) {
        unsigned pick = static_cast<unsigned>(rng() % 100);
        uint8_t len = static_cast<uint8_t>(pick < 1    ? rng() % 17
                                           : pick < 30 ? 17 + rng() % 32
                                           : pick < 80 ? 48 + rng() % 17
                                           : pick < 95 ? 65 + rng() % 63
                                                       : 128);
        if (i == 0)
            len = 0;
        ipv6_bytes p = ipv6_mask(random_addr(), len);
        uint32_t nh = 1 + static_cast<uint32_t>(rng() % 100'000);
        auto r = f->add(p, len, route_origin::learned, nh);
        ASSERT_TRUE(r) << r.err().message << " after " << i << " routes";
        if (ref.by_len[len].insert_or_assign(p, nh).second)
            routes.emplace_back(p, len);
    }
    EXPECT_EQ(f->prefix_count(), routes.size());
    auto check = [&](unsigned samples) {
        unsigned bad = 0;
        std::vector<ipv6_bytes> addrs;
        for (unsigned i = 0; i < samples; ++i) {
            ipv6_bytes a = random_addr();
            if (i % 2 == 1) { // inside a random route, to reach the long prefixes
                auto [p, len] = routes[rng() % routes.size()];
                ipv6_bytes m = ipv6_mask(a, len);
                for (unsigned k = 0; k < 16; ++k)
                    a[k] = static_cast<uint8_t>(p[k] | (a[k] ^ m[k]));
            }
            addrs.push_back(a);
        }
        auto got = probe(f->active(), addrs);
        for (unsigned i = 0; i < samples && bad < 10; ++i) {
            uint64_t want = ref.lookup(addrs[i]);
            if (got[i] != want) {
                ++bad;
                ADD_FAILURE() << "address " << format_ipv6(addrs[i]) << ": fib " << got[i]
                              << ", reference " << want;
            }
        }
        EXPECT_EQ(bad, 0u);
    };
    check(50'000);
    std::shuffle(routes.begin(), routes.end(), rng);
    size_t half = routes.size() / 2;
    for (size_t i = 0; i < half; ++i) {
        auto [p, len] = routes[i];
        auto r = f->remove(p, len, route_origin::learned);
        ASSERT_TRUE(r) << r.err().message;
        ref.by_len[len].erase(p);
    }
    routes.erase(routes.begin(), routes.begin() + static_cast<long>(half));
    EXPECT_EQ(f->prefix_count(), routes.size());
    check(50'000);
}

TEST(fib6_double_buffered, batch_invisible_until_published_then_copies_agree_and_rollback) {
    auto f = make_fib(4096, 1024, true);
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->add(a6("2001:db8::"), 32, route_origin::static_route, 1));
    rte_fib6* first = f->publish();
    f->sync();
    const std::vector<ipv6_bytes> addrs{a6("2001:db8:1::1"), a6("2001:db8:1::ff"),
                                        a6("2001:db9::1")};
    EXPECT_EQ(probe(first, addrs), (std::vector<uint64_t>{1, 1, fib6::no_route}));
    ASSERT_TRUE(f->add(a6("2001:db8:1::"), 64, route_origin::static_route, 2));
    ASSERT_TRUE(f->add(a6("2001:db8:1::ff"), 128, route_origin::static_route, 3));
    ASSERT_TRUE(f->add(a6("2001:db9::"), 32, route_origin::learned, 4));
    EXPECT_EQ(probe(first, addrs), (std::vector<uint64_t>{1, 1, fib6::no_route}));
    rte_fib6* second = f->publish();
    EXPECT_NE(second, first);
    EXPECT_FALSE(f->add(a6("2001:dba::"), 32, route_origin::static_route, 5)); // before sync
    EXPECT_EQ(probe(second, addrs), (std::vector<uint64_t>{2, 3, 4}));
    EXPECT_EQ(probe(first, addrs), (std::vector<uint64_t>{1, 1, fib6::no_route}));
    f->sync();
    EXPECT_EQ(probe(first, addrs), (std::vector<uint64_t>{2, 3, 4}));
    // An abandoned batch: add, replace, remove; rollback leaves both copies and the table as
    // they were.
    ASSERT_TRUE(f->add(a6("2001:db8:1::"), 64, route_origin::static_route, 9));
    ASSERT_TRUE(f->remove(a6("2001:db9::"), 32, route_origin::learned));
    ASSERT_TRUE(f->add(a6("2001:dbb::"), 48, route_origin::static_route, 10));
    EXPECT_TRUE(f->dirty());
    f->rollback();
    EXPECT_FALSE(f->dirty());
    EXPECT_EQ(f->prefix_count(), 4u);
    EXPECT_FALSE(f->installed(a6("2001:dbb::"), 48));
    ASSERT_TRUE(f->add(a6("2001:dbc::"), 48, route_origin::static_route, 11));
    rte_fib6* third = f->publish();
    EXPECT_EQ(probe(third, addrs), (std::vector<uint64_t>{2, 3, 4}));
    f->sync();
    EXPECT_EQ(probe(second, addrs), (std::vector<uint64_t>{2, 3, 4}));
}
