// neighbour_table: RFC 826 merge, request rate limit, aging, static entries, capacity.
#include <gtest/gtest.h>

#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <thread>
#include <vector>

#include "forwarding/neighbour.hpp"

using namespace sagd::fwd;

namespace {

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return (a << 24) | (b << 16) | (c << 8) | d;
}
constexpr mac_bytes mac_a{0x02, 0, 0, 0, 0, 0xa};
constexpr mac_bytes mac_b{0x02, 0, 0, 0, 0, 0xb};

std::unique_ptr<neighbour_table> make_table(uint32_t capacity = 1024) {
    auto r = neighbour_table::create(capacity);
    if (!r)
        ADD_FAILURE() << r.err().message;
    return r ? std::move(r).value() : nullptr;
}

neighbour_state state_of(const neighbour_table& t, uint16_t port, uint32_t a) {
    const neighbour_entry* e = t.lookup(port, a);
    return e ? e->read().state : neighbour_state::none;
}

} // namespace

TEST(neighbour, learn_merge_rule) {
    auto t = make_table();
    const uint32_t a = ip(192, 168, 1, 10);
    // Not for us and unknown: RFC 826 does not create an entry.
    auto r = t->learn(0, a, mac_a, 0, false);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, learn_outcome::ignored);
    EXPECT_EQ(t->lookup(0, a), nullptr);
    // For us: create.
    r = t->learn(0, a, mac_a, 10, true);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, learn_outcome::created);
    const neighbour_entry* e = t->lookup(0, a);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->read().mac, mac_a);
    EXPECT_EQ(e->read().state, neighbour_state::reachable);
    EXPECT_TRUE(e->read().usable());
    EXPECT_EQ(e->port(), 0);
    EXPECT_EQ(e->ip(), a);
    // Existing entry: merged even when not for us.
    r = t->learn(0, a, mac_b, 20, false);
    EXPECT_EQ(*r, learn_outcome::updated);
    EXPECT_EQ(t->lookup(0, a)->read().mac, mac_b);
    r = t->learn(0, a, mac_b, 30, false);
    EXPECT_EQ(*r, learn_outcome::refreshed);
    // Same IP on another port is another neighbour.
    EXPECT_EQ(t->lookup(1, a), nullptr);
    EXPECT_EQ(t->size(), 1u);
}

TEST(neighbour, static_not_overwritten_nor_aged) {
    auto t = make_table();
    const uint32_t a = ip(10, 0, 0, 1);
    ASSERT_TRUE(t->add_static(2, a, mac_a));
    auto r = t->learn(2, a, mac_b, 5, true);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, learn_outcome::ignored);
    EXPECT_EQ(t->lookup(2, a)->read().mac, mac_a);
    EXPECT_EQ(t->lookup(2, a)->read().state, neighbour_state::permanent);
    EXPECT_FALSE(t->resolve_wanted(2, a, 10));
    int requests = 0;
    for (uint64_t now = 0; now < 1'000'000; now += 10'000)
        t->age(now, [&](const neighbour_entry&) { ++requests; });
    EXPECT_EQ(requests, 0);
    EXPECT_EQ(state_of(*t, 2, a), neighbour_state::permanent);
    // Static over an existing dynamic entry wins.
    const uint32_t b = ip(10, 0, 0, 2);
    ASSERT_TRUE(t->learn(2, b, mac_a, 0, true));
    ASSERT_TRUE(t->add_static(2, b, mac_b));
    EXPECT_EQ(t->lookup(2, b)->read().mac, mac_b);
    EXPECT_EQ(t->size(), 2u);
}

TEST(neighbour, incomplete_rate_limit_and_give_up) {
    auto t = make_table();
    const uint32_t a = ip(10, 1, 1, 1);
    EXPECT_TRUE(t->resolve_wanted(0, a, 1000)); // request 1
    EXPECT_EQ(state_of(*t, 0, a), neighbour_state::incomplete);
    EXPECT_FALSE(t->lookup(0, a)->read().usable());
    EXPECT_FALSE(t->resolve_wanted(0, a, 1001));
    EXPECT_FALSE(t->resolve_wanted(0, a, 1999));
    EXPECT_TRUE(t->resolve_wanted(0, a, 2000)); // request 2
    EXPECT_FALSE(t->resolve_wanted(0, a, 2500));
    EXPECT_TRUE(t->resolve_wanted(0, a, 3000));  // request 3
    EXPECT_FALSE(t->resolve_wanted(0, a, 4000)); // gives up
    EXPECT_EQ(state_of(*t, 0, a), neighbour_state::failed);
    EXPECT_FALSE(t->resolve_wanted(0, a, 10'000)); // held failed
    EXPECT_FALSE(t->resolve_wanted(0, a, 23'999));
    EXPECT_TRUE(t->resolve_wanted(0, a, 24'000)); // hold over: try again
    EXPECT_EQ(state_of(*t, 0, a), neighbour_state::incomplete);
    // The reply completes it (merge: the entry exists).
    auto r = t->learn(0, a, mac_a, 24'100, false);
    EXPECT_EQ(*r, learn_outcome::updated);
    EXPECT_EQ(state_of(*t, 0, a), neighbour_state::reachable);
    EXPECT_FALSE(t->resolve_wanted(0, a, 24'200));
}

TEST(neighbour, incomplete_retries_driven_by_age) {
    auto t = make_table();
    const uint32_t a = ip(10, 1, 1, 2);
    ASSERT_TRUE(t->resolve_wanted(0, a, 0));
    std::vector<uint64_t> sent;
    for (uint64_t now = 0; now <= 30'000; now += 250)
        t->age(now, [&](const neighbour_entry& e) {
            EXPECT_EQ(e.ip(), a);
            sent.push_back(now);
        });
    // Requests at 1 s and 2 s (the first was sent by resolve_wanted), then failed at 3 s and
    // removed after the failed hold (20 s).
    EXPECT_EQ(sent, (std::vector<uint64_t>{1000, 2000}));
    EXPECT_EQ(t->lookup(0, a), nullptr);
    EXPECT_EQ(t->size(), 0u);
}

TEST(neighbour, aging_reachable_stale_probe_failed) {
    auto t = make_table();
    const uint32_t a = ip(10, 2, 0, 1), b = ip(10, 2, 0, 2);
    ASSERT_TRUE(t->learn(1, a, mac_a, 0, true));
    ASSERT_TRUE(t->learn(1, b, mac_b, 0, true));
    int calls = 0;
    auto count = [&](const neighbour_entry&) { ++calls; };
    t->age(29'999, count);
    EXPECT_EQ(state_of(*t, 1, a), neighbour_state::reachable);
    t->age(30'000, count);
    EXPECT_EQ(state_of(*t, 1, a), neighbour_state::stale);
    EXPECT_TRUE(t->lookup(1, a)->read().usable()); // stale is still used
    EXPECT_EQ(calls, 0);
    // A worker forwards through a: re-request it. b stays unused.
    t->lookup(1, a)->mark_used();
    std::vector<uint32_t> asked;
    auto record = [&](const neighbour_entry& e) { asked.push_back(e.ip()); };
    t->age(30'001, record);
    EXPECT_EQ(asked, std::vector<uint32_t>{a});
    EXPECT_EQ(state_of(*t, 1, a), neighbour_state::probe);
    EXPECT_TRUE(t->lookup(1, a)->read().usable());
    t->age(30'500, record); // rate limit: nothing
    EXPECT_EQ(asked.size(), 1u);
    t->age(31'001, record);
    t->age(32'001, record);
    EXPECT_EQ(asked.size(), 3u);
    t->age(33'001, record); // no reply to 3 requests
    EXPECT_EQ(asked.size(), 3u);
    EXPECT_EQ(state_of(*t, 1, a), neighbour_state::failed);
    EXPECT_FALSE(t->lookup(1, a)->read().usable());
    // Unused stale b is garbage collected 60 s after going stale.
    t->age(89'999, record);
    EXPECT_NE(t->lookup(1, b), nullptr);
    t->age(90'000, record);
    EXPECT_EQ(t->lookup(1, b), nullptr);
    // Failed a is removed after its hold (20 s after 33'001).
    EXPECT_EQ(t->lookup(1, a), nullptr);
    EXPECT_EQ(t->size(), 0u);
}

TEST(neighbour, probe_answered_goes_reachable) {
    auto t = make_table();
    const uint32_t a = ip(10, 3, 0, 1);
    ASSERT_TRUE(t->learn(0, a, mac_a, 0, true));
    t->age(30'000, [](const neighbour_entry&) {});
    // resolve_wanted on a stale entry marks it used (no request yet: aging sends it).
    EXPECT_FALSE(t->resolve_wanted(0, a, 30'000));
    int calls = 0;
    t->age(30'100, [&](const neighbour_entry&) { ++calls; });
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(state_of(*t, 0, a), neighbour_state::probe);
    ASSERT_TRUE(t->learn(0, a, mac_b, 30'200, false));
    EXPECT_EQ(state_of(*t, 0, a), neighbour_state::reachable);
    EXPECT_EQ(t->lookup(0, a)->read().mac, mac_b);
    t->age(40'000, [&](const neighbour_entry&) { ++calls; });
    EXPECT_EQ(calls, 1);
}

TEST(neighbour, flush_and_remove) {
    auto t = make_table();
    for (uint32_t i = 1; i <= 10; ++i) {
        ASSERT_TRUE(t->learn(1, ip(10, 0, 1, i), mac_a, 0, true));
        ASSERT_TRUE(t->learn(2, ip(10, 0, 2, i), mac_b, 0, true));
    }
    ASSERT_TRUE(t->add_static(1, ip(10, 0, 1, 100), mac_b));
    EXPECT_EQ(t->size(), 21u);
    t->flush(1);
    EXPECT_EQ(t->size(), 11u);
    EXPECT_EQ(t->lookup(1, ip(10, 0, 1, 1)), nullptr);
    EXPECT_NE(t->lookup(1, ip(10, 0, 1, 100)), nullptr);
    EXPECT_NE(t->lookup(2, ip(10, 0, 2, 1)), nullptr);
    t->flush(1, true);
    EXPECT_EQ(t->lookup(1, ip(10, 0, 1, 100)), nullptr);
    ASSERT_TRUE(t->remove(2, ip(10, 0, 2, 1)));
    auto r = t->remove(2, ip(10, 0, 2, 1));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::not_found);
    EXPECT_NE(r.err().message.find("10.0.2.1"), std::string::npos) << r.err().message;
    unsigned listed = 0;
    t->for_each([&](const neighbour_entry& e) {
        EXPECT_EQ(e.port(), 2);
        ++listed;
    });
    EXPECT_EQ(listed, 9u);
}

TEST(neighbour, capacity_full_and_reuse) {
    auto t = make_table(8);
    for (uint32_t i = 0; i < 8; ++i)
        ASSERT_TRUE(t->learn(0, ip(10, 0, 0, i), mac_a, 0, true));
    auto r = t->learn(0, ip(10, 0, 0, 99), mac_a, 0, true);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::table_full);
    EXPECT_NE(r.err().message.find("10.0.0.99"), std::string::npos) << r.err().message;
    EXPECT_FALSE(t->add_static(0, ip(10, 0, 0, 98), mac_a));
    EXPECT_FALSE(t->resolve_wanted(0, ip(10, 0, 0, 97), 0));
    EXPECT_EQ(t->full_misses(), 1u);
    // A removed slot is not reused until readers are known to be done with it.
    ASSERT_TRUE(t->remove(0, ip(10, 0, 0, 3)));
    EXPECT_FALSE(t->learn(0, ip(10, 0, 0, 99), mac_a, 0, true));
    t->reclaim_all();
    ASSERT_TRUE(t->learn(0, ip(10, 0, 0, 99), mac_a, 0, true));
    EXPECT_EQ(t->lookup(0, ip(10, 0, 0, 99))->read().mac, mac_a);
    EXPECT_EQ(t->lookup(0, ip(10, 0, 0, 3)), nullptr);
    EXPECT_EQ(t->size(), 8u);
    // Many remove/insert rounds through the same slots keep the hash consistent.
    for (uint32_t round = 0; round < 1000; ++round) {
        uint32_t victim = ip(10, 1, 0, round % 8);
        t->flush(0);
        t->flush(1);
        t->reclaim_all();
        for (uint32_t i = 0; i < 8; ++i)
            ASSERT_TRUE(t->learn(1, ip(10, 1, 0, i), mac_b, round, true));
        ASSERT_NE(t->lookup(1, victim), nullptr);
    }
}

TEST(neighbour, qsbr_reclaim) {
    size_t sz = rte_rcu_qsbr_get_memsize(4);
    auto* v = static_cast<rte_rcu_qsbr*>(rte_zmalloc("test_qsbr", sz, RTE_CACHE_LINE_SIZE));
    ASSERT_NE(v, nullptr);
    ASSERT_EQ(rte_rcu_qsbr_init(v, 4), 0);
    auto t = make_table(8);
    t->attach_qsbr(v);
    ASSERT_EQ(rte_rcu_qsbr_thread_register(v, 0), 0);
    rte_rcu_qsbr_thread_online(v, 0);
    for (uint32_t i = 0; i < 8; ++i)
        ASSERT_TRUE(t->learn(0, ip(10, 0, 0, i), mac_a, 0, true));
    ASSERT_TRUE(t->remove(0, ip(10, 0, 0, 0)));
    // Reader 0 has not reported quiescence since the removal: slot not reusable.
    EXPECT_FALSE(t->learn(0, ip(10, 0, 0, 50), mac_a, 0, true));
    rte_rcu_qsbr_quiescent(v, 0);
    EXPECT_TRUE(t->learn(0, ip(10, 0, 0, 50), mac_a, 0, true));
    rte_rcu_qsbr_thread_offline(v, 0);
    rte_rcu_qsbr_thread_unregister(v, 0);
    t.reset();
    rte_free(v);
}

TEST(neighbour, bulk_lookup) {
    auto t = make_table();
    for (uint32_t i = 0; i < 100; i += 2)
        ASSERT_TRUE(t->learn(static_cast<uint16_t>(i % 3), ip(10, 0, 0, i), mac_a, 0, true));
    std::vector<uint16_t> ports;
    std::vector<uint32_t> ips;
    for (uint32_t i = 0; i < 100; ++i) {
        ports.push_back(static_cast<uint16_t>(i % 3));
        ips.push_back(ip(10, 0, 0, i));
    }
    std::vector<const neighbour_entry*> out(100, nullptr);
    t->lookup_bulk(ports.data(), ips.data(), 100, out.data());
    for (uint32_t i = 0; i < 100; ++i) {
        if (i % 2 == 0) {
            ASSERT_NE(out[i], nullptr) << i;
            EXPECT_EQ(out[i]->ip(), ips[i]);
            EXPECT_EQ(out[i]->port(), ports[i]);
        } else {
            EXPECT_EQ(out[i], nullptr) << i;
        }
    }
}

// One writer churning entries (remove + re-add through recycled slots, QSBR-protected) while
// a reader looks them up: the reader never sees a torn MAC (every MAC is self-consistent) or
// an entry for another address, and nothing crashes.
TEST(neighbour, concurrent_reader_with_qsbr) {
    size_t sz = rte_rcu_qsbr_get_memsize(2);
    auto* v = static_cast<rte_rcu_qsbr*>(rte_zmalloc("test_qsbr2", sz, RTE_CACHE_LINE_SIZE));
    ASSERT_NE(v, nullptr);
    ASSERT_EQ(rte_rcu_qsbr_init(v, 2), 0);
    auto t = make_table(128);
    t->attach_qsbr(v);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> torn{0}, wrong{0}, hits{0};
    auto mac_for = [](uint32_t i, uint32_t gen) {
        return mac_bytes{0x02,
                         static_cast<uint8_t>(gen),
                         static_cast<uint8_t>(i),
                         static_cast<uint8_t>(i),
                         static_cast<uint8_t>(i),
                         static_cast<uint8_t>(gen)};
    };
    ASSERT_EQ(rte_rcu_qsbr_thread_register(v, 1), 0);
    std::thread reader([&] {
        rte_rcu_qsbr_thread_online(v, 1);
        while (!stop.load(std::memory_order_relaxed)) {
            for (uint32_t i = 0; i < 64; ++i) {
                const neighbour_entry* e = t->lookup(0, ip(10, 0, 0, i));
                if (!e)
                    continue;
                neighbour_view nv = e->read();
                if (!nv.usable())
                    continue;
                ++hits;
                if (nv.mac[2] != nv.mac[3] || nv.mac[3] != nv.mac[4] || nv.mac[1] != nv.mac[5])
                    ++torn;
                if (nv.mac[2] != static_cast<uint8_t>(i))
                    ++wrong;
            }
            rte_rcu_qsbr_quiescent(v, 1);
        }
        rte_rcu_qsbr_thread_offline(v, 1);
    });
    for (uint32_t gen = 0; gen < 1000; ++gen) {
        for (uint32_t i = 0; i < 64; ++i) {
            // A full table means the reader has not passed a quiescent state yet: retry.
            while (!t->learn(0, ip(10, 0, 0, i), mac_for(i, gen), gen, true))
                std::this_thread::yield();
        }
        for (uint32_t i = gen % 2; i < 64; i += 2)
            ASSERT_TRUE(t->remove(0, ip(10, 0, 0, i)));
    }
    stop = true;
    reader.join();
    rte_rcu_qsbr_thread_unregister(v, 1);
    EXPECT_EQ(torn.load(), 0u);
    EXPECT_EQ(wrong.load(), 0u);
    EXPECT_GT(hits.load(), 0u);
    t.reset();
    rte_free(v);
}

// The IPv6 table (ND, RFC 4861) is the same template keyed by 16-byte addresses: the same
// merge rule (an NA for an unknown address creates nothing), solicitation limits and aging.
TEST(neighbour6, learn_resolve_and_age_like_arp) {
    auto r = neighbour6_table::create(64);
    ASSERT_TRUE(r) << r.err().message;
    auto& t = *r.value();
    const ipv6_bytes a{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    ipv6_bytes b = a;
    b[15] = 2;
    ipv6_bytes other_port = a; // same address, another port: another entry
    EXPECT_EQ(t.learn(1, a, mac_a, 0, false).value(), learn_outcome::ignored);
    EXPECT_EQ(t.lookup(1, a), nullptr);
    // A packet wants b: solicit now, then at most once a second, 3 times, then FAILED.
    EXPECT_TRUE(t.resolve_wanted(1, b, 0));
    EXPECT_FALSE(t.resolve_wanted(1, b, 500));
    EXPECT_TRUE(t.resolve_wanted(1, b, 1000));
    EXPECT_TRUE(t.resolve_wanted(1, b, 2000));
    EXPECT_FALSE(t.resolve_wanted(1, b, 3000));
    EXPECT_EQ(t.lookup(1, b)->read().state, neighbour_state::failed);
    // The answer for a solicited a (entry exists) makes it reachable; a different port is apart.
    EXPECT_TRUE(t.resolve_wanted(1, a, 0));
    EXPECT_EQ(t.learn(1, a, mac_b, 10, false).value(), learn_outcome::updated);
    EXPECT_EQ(t.lookup(1, a)->read().state, neighbour_state::reachable);
    EXPECT_EQ(t.lookup(1, a)->read().mac, mac_b);
    EXPECT_EQ(t.lookup(2, other_port), nullptr);
    EXPECT_EQ(t.lookup(1, a)->ip(), a);
    // REACHABLE -> STALE after 30 s; in use -> PROBE with a solicitation.
    std::vector<ipv6_bytes> asked;
    auto record = [&](const neighbour6_entry& e) { asked.push_back(e.ip()); };
    t.age(30'010, record);
    EXPECT_EQ(t.lookup(1, a)->read().state, neighbour_state::stale);
    t.lookup(1, a)->mark_used();
    t.age(30'011, record);
    EXPECT_EQ(t.lookup(1, a)->read().state, neighbour_state::probe);
    EXPECT_EQ(asked, std::vector<ipv6_bytes>{a});
    ASSERT_TRUE(t.remove(1, a));
    EXPECT_EQ(t.lookup(1, a), nullptr);
    auto missing = t.remove(1, a);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.err().message.find("2001:db8::1"), std::string::npos) << missing.err().message;
}
