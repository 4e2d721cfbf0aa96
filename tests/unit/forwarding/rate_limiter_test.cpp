#include <gtest/gtest.h>

#include "forwarding/rate_limiter.hpp"

using sagd::fwd::rate_limiter;

TEST(rate_limiter, burst_then_rate) {
    constexpr uint64_t ns = 1'000'000'000;
    rate_limiter rl(100, 10, ns);
    uint64_t t0 = 5 * ns;
    int allowed = 0;
    for (int i = 0; i < 50; ++i)
        allowed += rl.allow(t0);
    EXPECT_EQ(allowed, 10);                 // burst
    EXPECT_FALSE(rl.allow(t0 + 9'999'999)); // 1 token per 10 ms
    EXPECT_TRUE(rl.allow(t0 + 10'000'000));
    EXPECT_FALSE(rl.allow(t0 + 10'000'001));
    // One second later the bucket is full again, but never beyond the burst.
    allowed = 0;
    for (int i = 0; i < 50; ++i)
        allowed += rl.allow(t0 + 2 * ns);
    EXPECT_EQ(allowed, 10);
    // Steady state: over 10 s at 1 kHz attempts, about 100/s pass.
    allowed = 0;
    for (uint64_t t = t0 + 3 * ns; t < t0 + 13 * ns; t += 1'000'000)
        allowed += rl.allow(t);
    EXPECT_GE(allowed, 1000);
    EXPECT_LE(allowed, 1010);
}

TEST(rate_limiter, tsc_scale_and_time_going_backwards) {
    constexpr uint64_t hz = 3'000'000'000ULL; // 3 GHz TSC
    rate_limiter rl(100, 10, hz);
    for (int i = 0; i < 10; ++i)
        EXPECT_TRUE(rl.allow(1000));
    EXPECT_FALSE(rl.allow(999)); // earlier time: no credit, no crash
    EXPECT_TRUE(rl.allow(1000 + hz / 100));
    EXPECT_EQ(rl.tokens(1000 + hz * 3600), 10u); // an hour later: full, no overflow
}
