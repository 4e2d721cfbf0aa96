// fib4: longest prefix match, administrative distance, limits, against a naive reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <unordered_map>
#include <vector>

#include "forwarding/fib4.hpp"

using namespace sagd::fwd;

namespace {

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return (a << 24) | (b << 16) | (c << 8) | d;
}

std::unique_ptr<fib4> make_fib(uint32_t max_routes = 1024, uint32_t tbl8 = 256) {
    fib4_config c;
    c.name = "test";
    c.max_routes = max_routes;
    c.tbl8_groups = tbl8;
    auto r = fib4::create(c);
    if (!r)
        ADD_FAILURE() << r.err().message;
    return r ? std::move(r).value() : nullptr;
}

uint32_t mask_of(uint8_t len) {
    return len == 0 ? 0 : ~uint32_t{0} << (32 - len);
}

// Reference LPM: one hash map per prefix length, probed from /32 down.
struct reference_lpm {
    std::unordered_map<uint32_t, uint32_t> by_len[33];
    uint64_t lookup(uint32_t a) const {
        for (int len = 32; len >= 0; --len) {
            auto it = by_len[len].find(a & mask_of(static_cast<uint8_t>(len)));
            if (it != by_len[len].end())
                return it->second;
        }
        return fib4::no_route;
    }
};

} // namespace

TEST(fib4, longest_prefix_match_and_fallback) {
    auto f = make_fib();
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->add(0, 0, route_origin::static_route, 1));
    ASSERT_TRUE(f->add(ip(10, 0, 0, 0), 8, route_origin::static_route, 2));
    ASSERT_TRUE(f->add(ip(10, 1, 0, 0), 16, route_origin::static_route, 3));
    ASSERT_TRUE(f->add(ip(10, 1, 2, 0), 24, route_origin::static_route, 4));
    ASSERT_TRUE(f->add(ip(10, 1, 2, 3), 32, route_origin::static_route, 5));
    EXPECT_EQ(f->prefix_count(), 5u);

    EXPECT_EQ(f->lookup(ip(11, 0, 0, 1)), 1u);
    EXPECT_EQ(f->lookup(ip(10, 9, 9, 9)), 2u);
    EXPECT_EQ(f->lookup(ip(10, 1, 9, 9)), 3u);
    EXPECT_EQ(f->lookup(ip(10, 1, 2, 4)), 4u);
    EXPECT_EQ(f->lookup(ip(10, 1, 2, 3)), 5u);

    ASSERT_TRUE(f->remove(ip(10, 1, 2, 0), 24, route_origin::static_route));
    EXPECT_EQ(f->lookup(ip(10, 1, 2, 4)), 3u);
    EXPECT_EQ(f->lookup(ip(10, 1, 2, 3)), 5u);
    ASSERT_TRUE(f->remove(ip(10, 1, 2, 3), 32, route_origin::static_route));
    EXPECT_EQ(f->lookup(ip(10, 1, 2, 3)), 3u);
    ASSERT_TRUE(f->remove(ip(10, 1, 0, 0), 16, route_origin::static_route));
    EXPECT_EQ(f->lookup(ip(10, 1, 2, 3)), 2u);
    ASSERT_TRUE(f->remove(0, 0, route_origin::static_route));
    EXPECT_EQ(f->lookup(ip(11, 0, 0, 1)), fib4::no_route);
    EXPECT_EQ(f->lookup(ip(10, 1, 2, 3)), 2u);
    ASSERT_TRUE(f->remove(ip(10, 0, 0, 0), 8, route_origin::static_route));
    EXPECT_EQ(f->lookup(ip(10, 1, 2, 3)), fib4::no_route);
    EXPECT_EQ(f->prefix_count(), 0u);

    auto r = f->remove(ip(10, 0, 0, 0), 8, route_origin::static_route);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::not_found);
    EXPECT_NE(r.err().message.find("10.0.0.0/8"), std::string::npos) << r.err().message;
}

TEST(fib4, replace_same_origin) {
    auto f = make_fib();
    ASSERT_TRUE(f->add(ip(192, 168, 0, 0), 16, route_origin::static_route, 7));
    ASSERT_TRUE(f->add(ip(192, 168, 0, 0), 16, route_origin::static_route, 8));
    EXPECT_EQ(f->lookup(ip(192, 168, 3, 4)), 8u);
    EXPECT_EQ(f->route_count(), 1u);
}

TEST(fib4, administrative_distance) {
    auto f = make_fib();
    const uint32_t p = ip(172, 16, 0, 0);
    // Learned first, then static: static (distance 1) beats learned (20).
    ASSERT_TRUE(f->add(p, 12, route_origin::learned, 20));
    EXPECT_EQ(f->lookup(ip(172, 16, 1, 1)), 20u);
    ASSERT_TRUE(f->add(p, 12, route_origin::static_route, 10));
    EXPECT_EQ(f->lookup(ip(172, 16, 1, 1)), 10u);
    EXPECT_EQ(f->route_count(), 2u);
    EXPECT_EQ(f->prefix_count(), 1u);
    auto inst = f->installed(p, 12);
    ASSERT_TRUE(inst);
    EXPECT_EQ(inst->origin, route_origin::static_route);
    EXPECT_EQ(inst->distance, 1);
    // Updating the loser does not disturb the winner.
    ASSERT_TRUE(f->add(p, 12, route_origin::learned, 21));
    EXPECT_EQ(f->lookup(ip(172, 16, 1, 1)), 10u);
    // Deleting the winner reinstalls the runner-up.
    ASSERT_TRUE(f->remove(p, 12, route_origin::static_route));
    EXPECT_EQ(f->lookup(ip(172, 16, 1, 1)), 21u);
    EXPECT_EQ(f->installed(p, 12)->origin, route_origin::learned);
    // A learned route configured with a lower distance wins over static.
    ASSERT_TRUE(f->add(p, 12, route_origin::static_route, 10));
    EXPECT_EQ(f->lookup(ip(172, 16, 1, 1)), 10u);
    ASSERT_TRUE(f->add(p, 12, route_origin::learned, 21, uint8_t{0}));
    EXPECT_EQ(f->lookup(ip(172, 16, 1, 1)), 21u);
    // Removing the loser keeps the winner.
    ASSERT_TRUE(f->remove(p, 12, route_origin::static_route));
    EXPECT_EQ(f->lookup(ip(172, 16, 1, 1)), 21u);
    ASSERT_TRUE(f->remove(p, 12, route_origin::learned));
    EXPECT_EQ(f->lookup(ip(172, 16, 1, 1)), fib4::no_route);
    EXPECT_EQ(f->route_count(), 0u);
}

TEST(fib4, invalid_prefixes_rejected) {
    auto f = make_fib();
    auto r = f->add(ip(10, 0, 0, 1), 8, route_origin::static_route, 1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::invalid_argument);
    EXPECT_NE(r.err().message.find("10.0.0.1/8"), std::string::npos) << r.err().message;
    EXPECT_NE(r.err().message.find("host bits"), std::string::npos) << r.err().message;
    r = f->add(ip(10, 0, 0, 0), 33, route_origin::static_route, 1);
    ASSERT_FALSE(r);
    EXPECT_NE(r.err().message.find("above 32"), std::string::npos) << r.err().message;
    r = f->add(ip(10, 0, 0, 0), 8, route_origin::static_route, no_route_id);
    ASSERT_FALSE(r);
    EXPECT_NE(r.err().message.find("next hop"), std::string::npos) << r.err().message;
    r = f->remove(ip(10, 0, 0, 1), 8, route_origin::static_route);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::invalid_argument);
    EXPECT_EQ(f->prefix_count(), 0u);
    EXPECT_EQ(f->lookup(ip(10, 0, 0, 1)), fib4::no_route);
    // /32 host routes and /0 are fine.
    EXPECT_TRUE(f->add(ip(10, 0, 0, 1), 32, route_origin::static_route, 1));
    EXPECT_TRUE(f->add(0, 0, route_origin::learned, 2));
}

TEST(fib4, table_full) {
    auto f = make_fib(4, 2);
    for (uint32_t i = 0; i < 4; ++i)
        ASSERT_TRUE(f->add(ip(10, i, 0, 0), 16, route_origin::static_route, 1 + i));
    // Another candidate on an existing prefix needs no new slot.
    EXPECT_TRUE(f->add(ip(10, 0, 0, 0), 16, route_origin::learned, 9));
    auto r = f->add(ip(10, 9, 0, 0), 16, route_origin::static_route, 1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::table_full);
    EXPECT_NE(r.err().message.find("10.9.0.0/16"), std::string::npos) << r.err().message;
    EXPECT_EQ(f->lookup(ip(10, 9, 0, 1)), fib4::no_route);

    // tbl8 exhaustion: each /24 holding a longer prefix takes a tbl8 group.
    auto g = make_fib(200, 64);
    uint32_t added = 0;
    for (; added < 100; ++added) {
        r = g->add(ip(10, 0, added, 0), 25, route_origin::static_route, 1 + added);
        if (!r)
            break;
    }
    ASSERT_FALSE(r);
    EXPECT_EQ(added, 64u);
    // Another long prefix in an already split /24 needs no new group.
    EXPECT_TRUE(g->add(ip(10, 0, 0, 128), 25, route_origin::static_route, 500));
    EXPECT_TRUE(g->remove(ip(10, 0, 0, 128), 25, route_origin::static_route));
    EXPECT_EQ(r.err().code, errc::table_full);
    EXPECT_NE(r.err().message.find("table full"), std::string::npos) << r.err().message;
    // The failed add changed nothing; the others still route; short prefixes still fit.
    EXPECT_EQ(g->prefix_count(), added);
    EXPECT_EQ(g->lookup(ip(10, 0, added, 1)), fib4::no_route);
    EXPECT_EQ(g->lookup(ip(10, 0, added - 1, 1)), added);
    EXPECT_TRUE(g->add(ip(10, 0, 0, 0), 16, route_origin::static_route, 99));
    EXPECT_EQ(g->lookup(ip(10, 0, added, 1)), 99u);
}

TEST(fib4, create_rejects_bad_config) {
    fib4_config c;
    c.max_routes = 0;
    auto r = fib4::create(c);
    ASSERT_FALSE(r);
    EXPECT_NE(r.err().message.find("max_routes"), std::string::npos);
}

TEST(fib4, bulk_lookup) {
    auto f = make_fib();
    ASSERT_TRUE(f->add(ip(10, 0, 0, 0), 8, route_origin::static_route, 1));
    ASSERT_TRUE(f->add(ip(10, 2, 0, 0), 16, route_origin::static_route, 2));
    std::vector<uint32_t> ips;
    std::vector<uint64_t> want;
    for (uint32_t i = 0; i < 100; ++i) {
        uint32_t a = ip(static_cast<uint32_t>(9 + i % 3), i % 4, i, 1);
        ips.push_back(a);
        want.push_back((a >> 24) != 10 ? fib4::no_route : ((a >> 16) & 0xff) == 2 ? 2 : 1);
    }
    std::vector<uint64_t> got(ips.size(), 12345);
    f->lookup_bulk(ips.data(), got.data(), static_cast<unsigned>(ips.size()));
    EXPECT_EQ(got, want);
}

TEST(fib4, random_routes_match_reference) {
    constexpr unsigned n_routes = 100'000;
    auto f = make_fib(n_routes, 25'000);
    ASSERT_TRUE(f);
    std::mt19937_64 rng(12345);
    reference_lpm ref;
    std::vector<std::pair<uint32_t, uint8_t>> routes;
    for (unsigned i = 0; i < n_routes; ++i) {
        // Internet-like mix: few short prefixes (each rewrites a large tbl24 range), mostly
        // /16../24, and 20 % longer than /24 (one tbl8 group each).
        unsigned pick = static_cast<unsigned>(rng() % 100);
        uint8_t len = static_cast<uint8_t>(pick < 3    ? rng() % 16
                                           : pick < 25 ? 16 + rng() % 8
                                           : pick < 80 ? 24
                                                       : 25 + rng() % 8);
        uint32_t p = static_cast<uint32_t>(rng()) & mask_of(len);
        uint32_t nh = 1 + static_cast<uint32_t>(rng() % 100'000);
        auto r = f->add(p, len, route_origin::learned, nh);
        ASSERT_TRUE(r) << r.err().message << " after " << i << " routes";
        if (ref.by_len[len].insert_or_assign(p, nh).second)
            routes.emplace_back(p, len);
    }
    EXPECT_EQ(f->prefix_count(), routes.size());

    auto check = [&](unsigned samples) {
        std::vector<uint32_t> ips(samples);
        for (unsigned i = 0; i < samples; ++i) {
            if (i % 2 == 0) {
                ips[i] = static_cast<uint32_t>(rng());
            } else { // an address inside a random route, to reach the long prefixes
                auto [p, len] = routes[rng() % routes.size()];
                ips[i] = p | (static_cast<uint32_t>(rng()) & ~mask_of(len));
            }
        }
        std::vector<uint64_t> got(samples);
        f->lookup_bulk(ips.data(), got.data(), samples);
        unsigned bad = 0;
        for (unsigned i = 0; i < samples && bad < 10; ++i) {
            uint64_t want = ref.lookup(ips[i]);
            if (got[i] != want) {
                ++bad;
                ADD_FAILURE() << "address " << format_ipv4(ips[i]) << ": fib " << got[i]
                              << ", reference " << want;
            }
            if (f->lookup(ips[i]) != got[i])
                ++bad;
        }
        EXPECT_EQ(bad, 0u);
    };
    check(200'000);

    // Delete half the routes; the rest must still match.
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
    check(200'000);
}

// Regression for DPDK 22.11 dir24_8: changing a prefix that ends at 255.255.255.255 whose
// more-specific routes tile it up to the top (e.g. /0 over 0/1 + 128/1) rewrote the whole
// table with the new next hop (see fib4.cpp).
TEST(fib4, top_of_address_space_chain) {
    auto f = make_fib();
    ASSERT_TRUE(f->add(ip(10, 0, 0, 0), 8, route_origin::static_route, 1));
    ASSERT_TRUE(f->add(ip(254, 0, 0, 0), 8, route_origin::static_route, 2));
    ASSERT_TRUE(f->add(ip(255, 0, 0, 0), 8, route_origin::static_route, 3));
    ASSERT_TRUE(f->add(ip(254, 0, 0, 0), 7, route_origin::static_route, 4));
    EXPECT_EQ(f->lookup(ip(10, 1, 1, 1)), 1u);
    EXPECT_EQ(f->lookup(ip(11, 1, 1, 1)), fib4::no_route);
    ASSERT_TRUE(f->add(ip(128, 0, 0, 0), 2, route_origin::static_route, 5));
    ASSERT_TRUE(f->add(ip(192, 0, 0, 0), 2, route_origin::static_route, 6));
    ASSERT_TRUE(f->add(ip(128, 0, 0, 0), 1, route_origin::static_route, 7));
    ASSERT_TRUE(f->add(ip(0, 0, 0, 0), 1, route_origin::static_route, 8));
    ASSERT_TRUE(f->add(0, 0, route_origin::static_route, 9));
    ASSERT_TRUE(f->add(ip(255, 255, 255, 255), 32, route_origin::static_route, 10));
    ASSERT_TRUE(f->add(ip(255, 255, 255, 254), 31, route_origin::static_route, 11));
    ASSERT_TRUE(f->add(ip(255, 255, 255, 0), 24, route_origin::static_route, 12));
    auto expect_all = [&](uint64_t zero_one, uint64_t seven, uint64_t eight, uint64_t host) {
        EXPECT_EQ(f->lookup(ip(10, 1, 1, 1)), 1u);
        EXPECT_EQ(f->lookup(ip(11, 1, 1, 1)), zero_one);
        EXPECT_EQ(f->lookup(ip(130, 1, 1, 1)), 5u);
        EXPECT_EQ(f->lookup(ip(200, 1, 1, 1)), 6u);
        EXPECT_EQ(f->lookup(ip(254, 1, 1, 1)), seven);
        EXPECT_EQ(f->lookup(ip(255, 1, 1, 1)), eight);
        EXPECT_EQ(f->lookup(ip(255, 255, 255, 1)), 12u);
        EXPECT_EQ(f->lookup(ip(255, 255, 255, 254)), 11u);
        EXPECT_EQ(f->lookup(ip(255, 255, 255, 255)), host);
    };
    expect_all(8, 2, 3, 10);
    ASSERT_TRUE(f->add(0, 0, route_origin::static_route, 19));
    ASSERT_TRUE(f->add(ip(128, 0, 0, 0), 1, route_origin::static_route, 17));
    ASSERT_TRUE(f->add(ip(254, 0, 0, 0), 7, route_origin::static_route, 14));
    ASSERT_TRUE(f->add(ip(255, 255, 255, 254), 31, route_origin::static_route, 11));
    expect_all(8, 2, 3, 10);
    ASSERT_TRUE(f->remove(ip(254, 0, 0, 0), 8, route_origin::static_route));
    expect_all(8, 14, 3, 10);
    ASSERT_TRUE(f->remove(ip(255, 0, 0, 0), 8, route_origin::static_route));
    expect_all(8, 14, 14, 10);
    ASSERT_TRUE(f->remove(ip(0, 0, 0, 0), 1, route_origin::static_route));
    expect_all(19, 14, 14, 10);
    ASSERT_TRUE(f->remove(ip(255, 255, 255, 255), 32, route_origin::static_route));
    expect_all(19, 14, 14, 11);
    ASSERT_TRUE(f->remove(0, 0, route_origin::static_route));
    expect_all(fib4::no_route, 14, 14, 11);
}

namespace {
std::unique_ptr<fib4> make_double_fib() {
    fib4_config c;
    c.name = "dbl";
    c.max_routes = 4096;
    c.tbl8_groups = 512;
    c.double_buffered = true;
    auto r = fib4::create(c);
    if (!r)
        ADD_FAILURE() << r.err().message;
    return r ? std::move(r).value() : nullptr;
}

// What a reader of `f` (a published copy) sees for a few probe addresses.
std::vector<uint64_t> probe(const fib4_table* f, const std::vector<uint32_t>& addrs) {
    std::vector<uint64_t> out(addrs.size());
    fib4_lookup_bulk(f, addrs.data(), out.data(), static_cast<unsigned>(addrs.size()));
    return out;
}
} // namespace

TEST(fib4_double_buffered, changes_are_invisible_until_published_then_both_copies_agree) {
    auto f = make_double_fib();
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->add(ip(10, 0, 0, 0), 8, route_origin::static_route, 1));
    const fib4_table* first = f->publish();
    f->sync();
    const std::vector<uint32_t> addrs{ip(10, 1, 2, 3), ip(10, 1, 2, 200), ip(11, 0, 0, 1)};
    EXPECT_EQ(probe(first, addrs), (std::vector<uint64_t>{1, 1, fib4::no_route}));
    // A batch: more specifics, a replaced winner, a delete. Readers of `first` see none of it.
    ASSERT_TRUE(f->add(ip(10, 1, 2, 0), 24, route_origin::static_route, 2));
    ASSERT_TRUE(f->add(ip(10, 1, 2, 128), 25, route_origin::static_route, 3)); // tbl8 group
    ASSERT_TRUE(f->add(ip(11, 0, 0, 0), 8, route_origin::learned, 4));
    EXPECT_EQ(f->lookup(ip(10, 1, 2, 3)), 1u); // lookup() reads the published copy
    EXPECT_EQ(probe(first, addrs), (std::vector<uint64_t>{1, 1, fib4::no_route}));
    // A change before sync() is refused: the other copy may still have readers.
    const fib4_table* second = f->publish();
    EXPECT_NE(second, first);
    EXPECT_FALSE(f->add(ip(12, 0, 0, 0), 8, route_origin::static_route, 5));
    EXPECT_EQ(probe(second, addrs), (std::vector<uint64_t>{2, 3, 4}));
    EXPECT_EQ(probe(first, addrs), (std::vector<uint64_t>{1, 1, fib4::no_route}));
    f->sync(); // the grace period passed: the old copy catches up
    EXPECT_EQ(probe(first, addrs), (std::vector<uint64_t>{2, 3, 4}));
    // Deletes too, including the tbl8 group going away.
    ASSERT_TRUE(f->remove(ip(10, 1, 2, 128), 25, route_origin::static_route));
    ASSERT_TRUE(f->remove(ip(10, 1, 2, 0), 24, route_origin::static_route));
    const fib4_table* third = f->publish();
    EXPECT_EQ(third, first);
    EXPECT_EQ(probe(second, addrs), (std::vector<uint64_t>{2, 3, 4}));
    f->sync();
    EXPECT_EQ(probe(first, addrs), (std::vector<uint64_t>{1, 1, 4}));
    EXPECT_EQ(probe(second, addrs), (std::vector<uint64_t>{1, 1, 4}));
}

TEST(fib4_double_buffered, rollback_restores_candidates_and_the_shadow_copy) {
    auto f = make_double_fib();
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->add(ip(10, 0, 0, 0), 8, route_origin::static_route, 1));
    ASSERT_TRUE(f->add(ip(10, 2, 0, 0), 16, route_origin::learned, 7));
    f->publish();
    f->sync();
    // Touch the same prefix several times, add, replace, remove; then give up.
    ASSERT_TRUE(f->add(ip(10, 2, 0, 0), 16, route_origin::static_route, 8));
    ASSERT_TRUE(f->add(ip(10, 2, 0, 0), 16, route_origin::static_route, 9));
    ASSERT_TRUE(f->remove(ip(10, 2, 0, 0), 16, route_origin::learned));
    ASSERT_TRUE(f->add(ip(10, 3, 3, 0), 24, route_origin::static_route, 10));
    ASSERT_TRUE(f->remove(ip(10, 0, 0, 0), 8, route_origin::static_route));
    EXPECT_TRUE(f->dirty());
    f->rollback();
    EXPECT_FALSE(f->dirty());
    EXPECT_EQ(f->prefix_count(), 2u);
    EXPECT_EQ(f->route_count(), 2u);
    ASSERT_EQ(f->candidates(ip(10, 2, 0, 0), 16).size(), 1u);
    EXPECT_EQ(f->candidates(ip(10, 2, 0, 0), 16)[0].origin, route_origin::learned);
    EXPECT_FALSE(f->installed(ip(10, 3, 3, 0), 24));
    // The shadow copy is as before too: publishing now shows the old state.
    const fib4_table* p = f->publish(); // nothing to publish: still the active copy
    const std::vector<uint32_t> addrs{ip(10, 2, 1, 1), ip(10, 3, 3, 3), ip(10, 9, 9, 9)};
    EXPECT_EQ(probe(p, addrs), (std::vector<uint64_t>{7, 1, 1}));
    ASSERT_TRUE(f->add(ip(10, 4, 0, 0), 16, route_origin::static_route, 11));
    const fib4_table* q = f->publish();
    EXPECT_EQ(probe(q, addrs), (std::vector<uint64_t>{7, 1, 1}));
    f->sync();
}

// Random batches of adds, replacements and deletes in a crowded /16 (short and long prefixes
// over each other, tbl8 groups split and merged, groups running out), each published or
// rolled back as a whole: the published copy matches a reference LPM of the committed state
// after every batch. Copies alternate, so each is checked after being synced and changed.
TEST(fib4_double_buffered, random_batches_match_reference) {
    fib4_config c;
    c.name = "rnd";
    c.max_routes = 4096;
    c.tbl8_groups = 24; // fewer than the /24s that get longer prefixes: adds fail sometimes
    c.double_buffered = true;
    auto made = fib4::create(c);
    ASSERT_TRUE(made) << made.err().message;
    auto& f = made.value();
    std::mt19937_64 rng(99);
    reference_lpm committed;
    const uint32_t base = ip(10, 20, 0, 0);
    auto random_prefix = [&]() -> std::pair<uint32_t, uint8_t> {
        auto len = static_cast<uint8_t>(12 + rng() % 21);             // /12 .. /32
        uint32_t a = base | (static_cast<uint32_t>(rng()) & 0x3fffu); // 10.20.0.0/18
        return {a & mask_of(len), len};
    };
    std::vector<uint32_t> addrs;
    for (uint32_t i = 0; i < 64 * 256; ++i)
        addrs.push_back(base | (i << 2) | static_cast<uint32_t>(rng() % 4));
    addrs.push_back(ip(10, 19, 255, 255));
    addrs.push_back(ip(10, 31, 0, 0));
    auto expect_matches = [&](const fib4_table* t, const char* which, int batch) {
        auto got = probe(t, addrs);
        unsigned bad = 0;
        for (size_t i = 0; i < addrs.size() && bad < 5; ++i)
            if (got[i] != committed.lookup(addrs[i])) {
                ++bad;
                ADD_FAILURE() << which << " copy, batch " << batch << ", " << format_ipv4(addrs[i])
                              << ": fib " << got[i] << ", reference " << committed.lookup(addrs[i]);
            }
        return bad == 0;
    };
    unsigned published = 0, rolled_back = 0, failed_adds = 0;
    for (int batch = 0; batch < 300; ++batch) {
        reference_lpm next = committed;
        bool give_up = rng() % 5 == 0;
        for (int op = 0; op < 12; ++op) {
            auto [p, len] = random_prefix();
            if (rng() % 3 == 0) {
                bool present = next.by_len[len].count(p) != 0;
                auto r = f->remove(p, len, route_origin::learned);
                ASSERT_EQ(static_cast<bool>(r), present) << format_prefix(p, len);
                next.by_len[len].erase(p);
            } else {
                auto nh = static_cast<uint32_t>(1 + rng() % 1000);
                auto r = f->add(p, len, route_origin::learned, nh);
                if (!r) {
                    ASSERT_EQ(r.err().code, errc::table_full) << r.err().message;
                    ++failed_adds; // a failed add changes nothing
                    continue;
                }
                next.by_len[len][p] = nh;
            }
        }
        if (give_up) {
            f->rollback();
            ++rolled_back;
        } else {
            committed = next;
            ++published;
        }
        const fib4_table* now = f->publish();
        ASSERT_TRUE(expect_matches(now, "published", batch));
        f->sync(); // the next batch is built on the other copy: the next check covers it
        size_t prefixes = 0;
        for (const auto& m : committed.by_len)
            prefixes += m.size();
        ASSERT_EQ(f->prefix_count(), prefixes);
    }
    EXPECT_GT(published, 200u);
    EXPECT_GT(rolled_back, 30u);
    EXPECT_GT(failed_adds, 0u); // the group limit was reached and handled
    // Removing everything gives every tbl8 group back, in both copies.
    for (uint8_t len = 0; len <= 32; ++len)
        for (const auto& [p, nh] : committed.by_len[len])
            ASSERT_TRUE(f->remove(p, len, route_origin::learned));
    f->publish();
    f->sync();
    EXPECT_EQ(f->prefix_count(), 0u);
    for (int round = 0; round < 2; ++round) {
        for (uint32_t i = 0; i < c.tbl8_groups; ++i)
            ASSERT_TRUE(
                f->add(ip(10, 30, static_cast<uint8_t>(i), 128), 25, route_origin::learned, 1 + i))
                << "group " << i << " of " << c.tbl8_groups << ", round " << round;
        EXPECT_EQ(probe(f->publish(), {ip(10, 30, 5, 200)}), std::vector<uint64_t>{6});
        f->sync();
        for (uint32_t i = 0; i < c.tbl8_groups; ++i)
            ASSERT_TRUE(
                f->remove(ip(10, 30, static_cast<uint8_t>(i), 128), 25, route_origin::learned));
        EXPECT_EQ(probe(f->publish(), {ip(10, 30, 5, 200)}), std::vector<uint64_t>{fib4::no_route});
        f->sync();
    }
}
