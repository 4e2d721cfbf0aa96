// u64_map and small_vector against the standard containers they stand in for.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "forwarding/small_vector.hpp"
#include "forwarding/u64_map.hpp"

using namespace sagd::fwd;

// Random inserts, overwrites and erases (keys from a small range, so probe runs collide and
// erases shift members back) against std::unordered_map, through several growths.
TEST(u64_map, random_operations_match_unordered_map) {
    u64_map<std::string> m;
    std::unordered_map<uint64_t, std::string> ref;
    std::mt19937_64 rng(5);
    for (int i = 0; i < 200'000; ++i) {
        const uint64_t k = rng() % 5000 + (i % 7 == 0 ? (uint64_t{1} << 40) : 0);
        switch (rng() % 4) {
        case 0:
        case 1: {
            auto [v, fresh] = m.try_emplace(k);
            EXPECT_EQ(fresh, ref.count(k) == 0) << k;
            *v = std::to_string(i);
            ref[k] = std::to_string(i);
            break;
        }
        case 2:
            EXPECT_EQ(m.erase(k), ref.erase(k) == 1) << k;
            break;
        default: {
            const std::string* v = m.find(k);
            auto it = ref.find(k);
            ASSERT_EQ(v != nullptr, it != ref.end()) << k;
            if (v != nullptr) {
                EXPECT_EQ(*v, it->second);
            }
        }
        }
        ASSERT_EQ(m.size(), ref.size());
    }
    size_t seen = 0;
    m.for_each([&](uint64_t k, const std::string& v) {
        ++seen;
        EXPECT_EQ(ref.at(k), v);
    });
    EXPECT_EQ(seen, ref.size());
    // Every key still reachable after the churn (a broken backward shift strands keys).
    for (const auto& [k, v] : ref)
        ASSERT_NE(m.find(k), nullptr) << k;
}

TEST(u64_map, reserve_allocates_once_and_large_tables_work) {
    u64_map<uint32_t> m;
    m.reserve(1'000'000); // 2^21 slots, mapped on their own (2 MiB and more)
    const size_t cap = m.capacity();
    EXPECT_GE(cap * 3, 1'000'000u * 4);
    for (uint32_t i = 0; i < 1'000'000; ++i)
        *m.try_emplace((uint64_t{i} << 8) | 24).first = i;
    EXPECT_EQ(m.capacity(), cap); // no growth below the reserved count
    for (uint32_t i = 0; i < 1'000'000; i += 997)
        ASSERT_EQ(*m.find((uint64_t{i} << 8) | 24), i);
    u64_map<uint32_t> moved = std::move(m);
    EXPECT_EQ(moved.size(), 1'000'000u);
    EXPECT_EQ(m.size(), 0u);
    EXPECT_EQ(m.find(24), nullptr);
    moved.clear();
    EXPECT_TRUE(moved.empty());
    EXPECT_EQ(moved.find(24), nullptr);
}

TEST(small_vector, inline_then_heap_copy_move_and_compare) {
    small_vector<uint32_t, 1> v;
    EXPECT_TRUE(v.empty());
    v.push_back(7);
    EXPECT_EQ(v.size(), 1u);
    EXPECT_EQ(v, (std::vector<uint32_t>{7}));
    for (uint32_t i = 0; i < 100; ++i)
        v.push_back(i); // spills to the heap, grows
    ASSERT_EQ(v.size(), 101u);
    EXPECT_EQ(v.front(), 7u);
    EXPECT_EQ(v.back(), 99u);
    EXPECT_EQ(v[50], 49u);
    small_vector<uint32_t, 1> c = v; // deep copy
    c[0] = 8;
    EXPECT_EQ(v[0], 7u);
    small_vector<uint32_t, 1> m = std::move(v); // takes the heap block
    EXPECT_EQ(m.size(), 101u);
    EXPECT_TRUE(v.empty());
    v = {1, 2}; // reusable after a move
    EXPECT_EQ(v, (std::vector<uint32_t>{1, 2}));
    m = v;
    EXPECT_EQ(m, v);
    small_vector<uint32_t, 1> one{3};
    small_vector<uint32_t, 1> moved_inline = std::move(one);
    EXPECT_EQ(moved_inline, (std::vector<uint32_t>{3}));
    EXPECT_FALSE(moved_inline == v);
    small_vector<uint32_t, 1> from_vec(std::vector<uint32_t>{4, 5, 6});
    EXPECT_EQ(from_vec.to_vector(), (std::vector<uint32_t>{4, 5, 6}));
    from_vec.clear();
    EXPECT_TRUE(from_vec.empty());
}
