#include <gtest/gtest.h>

#include "forwarding/next_hop.hpp"

using namespace sagd::fwd;

TEST(next_hop_table, dedup_and_ids) {
    next_hop_table t(8);
    next_hop gw{next_hop_kind::gateway, 1, 0x0a000001, 0};
    next_hop tun{next_hop_kind::tunnel, 0, 0, 3};
    auto a = t.acquire(gw);
    auto b = t.acquire(tun);
    auto c = t.acquire(gw);
    ASSERT_TRUE(a && b && c);
    EXPECT_NE(*a, no_route_id);
    EXPECT_NE(*a, *b);
    EXPECT_EQ(*a, *c);
    EXPECT_EQ(t.refcount(*a), 2u);
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(t.get(*a), gw);
    EXPECT_EQ(t.get(*b), tun);
    EXPECT_EQ(t.get(no_route_id).kind, next_hop_kind::drop);
    EXPECT_EQ(t.get(12345).kind, next_hop_kind::drop);
}

TEST(next_hop_table, release_park_reclaim_and_full) {
    next_hop_table t(4); // ids 1..3
    uint32_t ids[3];
    for (uint32_t i = 0; i < 3; ++i) {
        auto r = t.acquire({next_hop_kind::connected, static_cast<uint16_t>(i), 0, 0});
        ASSERT_TRUE(r);
        ids[i] = *r;
    }
    auto full = t.acquire({next_hop_kind::local, 0, 0, 0});
    ASSERT_FALSE(full);
    EXPECT_EQ(full.err().code, errc::table_full);
    ASSERT_TRUE(t.release(ids[1]));
    EXPECT_FALSE(t.release(ids[1]));
    // Parked until reclaim (readers may still hold the id).
    EXPECT_FALSE(t.acquire({next_hop_kind::local, 0, 0, 0}));
    t.reclaim();
    auto r = t.acquire({next_hop_kind::local, 0, 0, 0});
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, ids[1]);
    EXPECT_EQ(t.get(*r).kind, next_hop_kind::local);
}
