// RFC 4303 3.4.3 anti-replay window and Appendix A ESN inference.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "crypto/replay_window.hpp"

namespace sagd::crypto {
namespace {

// check() then update(): what decap does for a packet whose ICV passed.
replay_verdict accept(replay_window& w, uint32_t seq_low) {
    const replay_result r = w.check(seq_low);
    if (r.verdict == replay_verdict::ok && !w.update(r.seq))
        return replay_verdict::duplicate;
    return r.verdict;
}

TEST(replay_window, in_order_and_duplicates) {
    replay_window w(1024);
    EXPECT_EQ(w.size(), 1024u);
    for (uint32_t s = 1; s <= 3000; ++s)
        ASSERT_EQ(accept(w, s), replay_verdict::ok) << s;
    EXPECT_EQ(w.top(), 3000u);
    EXPECT_EQ(accept(w, 3000), replay_verdict::duplicate);
    EXPECT_EQ(accept(w, 2500), replay_verdict::duplicate);
    EXPECT_EQ(accept(w, 1977), replay_verdict::duplicate); // bottom edge: 3000-1024+1
    EXPECT_EQ(accept(w, 1976), replay_verdict::too_old);   // just left of the window
    EXPECT_EQ(accept(w, 1), replay_verdict::too_old);
}

TEST(replay_window, seq_zero_is_never_valid) {
    replay_window w(64);
    EXPECT_NE(w.check(0).verdict, replay_verdict::ok);
}

TEST(replay_window, out_of_order_within_window) {
    replay_window w(64);
    EXPECT_EQ(accept(w, 100), replay_verdict::ok);
    EXPECT_EQ(accept(w, 37), replay_verdict::ok); // 100-64+1 = 37: bottom edge
    EXPECT_EQ(accept(w, 36), replay_verdict::too_old);
    EXPECT_EQ(accept(w, 99), replay_verdict::ok);
    EXPECT_EQ(accept(w, 50), replay_verdict::ok);
    EXPECT_EQ(accept(w, 50), replay_verdict::duplicate);
    EXPECT_EQ(accept(w, 101), replay_verdict::ok);
    EXPECT_EQ(accept(w, 37), replay_verdict::too_old); // slid out
    EXPECT_EQ(accept(w, 99), replay_verdict::duplicate);
}

TEST(replay_window, big_jump_forward_clears_bitmap) {
    for (uint32_t size : {64u, 1024u, 4096u}) {
        replay_window w(size);
        for (uint32_t s = 1; s <= 200; ++s)
            ASSERT_EQ(accept(w, s), replay_verdict::ok);
        const uint32_t far = 1000000;
        EXPECT_EQ(accept(w, far), replay_verdict::ok);
        // Everything left of far inside the window is new, nothing aliases old bits.
        for (uint32_t s = far - size + 1; s < far; ++s)
            ASSERT_EQ(w.check(s).verdict, replay_verdict::ok) << size << " " << s;
        EXPECT_EQ(w.check(far - size).verdict, replay_verdict::too_old);
        EXPECT_EQ(w.check(far).verdict, replay_verdict::duplicate);
    }
}

TEST(replay_window, jumps_of_every_size_keep_bits_exact) {
    // Slide by steps of 1..200 with a 4096 window and compare with a naive model.
    replay_window w(4096);
    std::vector<uint64_t> seen;
    uint64_t top = 0;
    for (uint32_t step = 1; step < 200; ++step) {
        top += step;
        ASSERT_EQ(accept(w, static_cast<uint32_t>(top)), replay_verdict::ok);
        seen.push_back(top);
    }
    for (uint64_t s = top > 5000 ? top - 5000 : 1; s <= top; ++s) {
        const bool in_window = s + 4096 > top;
        const bool was_seen = std::find(seen.begin(), seen.end(), s) != seen.end();
        const replay_verdict want = !in_window ? replay_verdict::too_old
                                    : was_seen ? replay_verdict::duplicate
                                               : replay_verdict::ok;
        ASSERT_EQ(w.check(static_cast<uint32_t>(s)).verdict, want) << s;
    }
}

TEST(replay_window, sizes_round_up_and_clamp) {
    EXPECT_EQ(replay_window(64).size(), 64u);
    EXPECT_EQ(replay_window(100).size(), 128u);
    EXPECT_EQ(replay_window(4096).size(), 4096u);
    EXPECT_EQ(replay_window(0).size(), 0u);
    replay_window w(4096);
    EXPECT_EQ(accept(w, 5000), replay_verdict::ok);
    EXPECT_EQ(accept(w, 905), replay_verdict::ok);
    EXPECT_EQ(accept(w, 904), replay_verdict::too_old);
}

TEST(replay_window, disabled_accepts_everything) {
    replay_window w(0);
    EXPECT_EQ(accept(w, 5), replay_verdict::ok);
    EXPECT_EQ(accept(w, 5), replay_verdict::ok);
    EXPECT_EQ(accept(w, 1), replay_verdict::ok);
    EXPECT_EQ(w.top(), 5u);
}

TEST(replay_window, update_only_after_icv) {
    // A packet that fails the ICV is checked but never committed: the window must not move.
    replay_window w(64);
    EXPECT_EQ(accept(w, 10), replay_verdict::ok);
    const replay_result forged = w.check(100000);
    EXPECT_EQ(forged.verdict, replay_verdict::ok);
    // (ICV fails: no update)
    EXPECT_EQ(w.top(), 10u);
    EXPECT_EQ(accept(w, 11), replay_verdict::ok);
    EXPECT_EQ(accept(w, 9), replay_verdict::ok);
}

TEST(replay_window, duplicate_in_same_burst_caught_by_update) {
    replay_window w(64);
    const replay_result a = w.check(7), b = w.check(7);
    EXPECT_EQ(a.verdict, replay_verdict::ok);
    EXPECT_EQ(b.verdict, replay_verdict::ok);
    EXPECT_TRUE(w.update(a.seq));
    EXPECT_FALSE(w.update(b.seq));
}

TEST(replay_window, esn_wrap_increments_high) {
    replay_window w(1024, true);
    ASSERT_TRUE(w.update(0xFFFFFFF0ull));
    for (uint64_t s = 0xFFFFFFF1ull; s <= 0xFFFFFFFFull; ++s)
        ASSERT_EQ(accept(w, static_cast<uint32_t>(s)), replay_verdict::ok);
    // Low half wraps to 0: inferred as the next epoch.
    const replay_result r = w.check(0);
    EXPECT_EQ(r.verdict, replay_verdict::ok);
    EXPECT_EQ(r.seq, 0x100000000ull);
    ASSERT_TRUE(w.update(r.seq));
    EXPECT_EQ(accept(w, 1), replay_verdict::ok);
    EXPECT_EQ(w.top(), 0x100000001ull);
    // A packet from before the wrap, arriving after it: previous epoch, inside the window.
    const replay_result old = w.check(0xFFFFFFF0u - 5);
    EXPECT_EQ(old.seq, 0xFFFFFFEBull);
    EXPECT_EQ(old.verdict, replay_verdict::ok);
    EXPECT_EQ(w.check(0xFFFFFFF5u).verdict, replay_verdict::duplicate);
    EXPECT_EQ(w.check(0xFFFFFFF5u).seq, 0xFFFFFFF5ull);
}

TEST(replay_window, esn_appendix_a_case_tl_at_least_w_minus_1) {
    // Case A (Tl >= W - 1): window within one epoch.
    replay_window w(1024, true);
    const uint64_t top = (uint64_t{7} << 32) | 5000;
    ASSERT_TRUE(w.update(top));
    EXPECT_EQ(w.check(5001).seq, (uint64_t{7} << 32) | 5001); // ahead: same epoch
    EXPECT_EQ(w.check(3977).seq, (uint64_t{7} << 32) | 3977); // window bottom: same epoch
    EXPECT_EQ(w.check(3977).verdict, replay_verdict::ok);
    // Below the window bottom: assumed next epoch (RFC 4303 A.2), i.e. a jump forward.
    EXPECT_EQ(w.check(3976).seq, (uint64_t{8} << 32) | 3976);
    EXPECT_EQ(w.check(3976).verdict, replay_verdict::ok);
}

TEST(replay_window, esn_appendix_a_case_tl_below_w_minus_1) {
    // Case B (Tl < W - 1): window spans the wrap.
    replay_window w(1024, true);
    const uint64_t top = (uint64_t{7} << 32) | 100;
    ASSERT_TRUE(w.update(top));
    EXPECT_EQ(w.check(50).seq, (uint64_t{7} << 32) | 50);
    EXPECT_EQ(w.check(200000).seq, (uint64_t{7} << 32) | 200000); // ahead, same epoch
    // 100 - 1024 + 1 mod 2^32 = 0xFFFFFC65: at or above it is the previous epoch.
    EXPECT_EQ(w.check(0xFFFFFC65u).seq, (uint64_t{6} << 32) | 0xFFFFFC65u);
    EXPECT_EQ(w.check(0xFFFFFC65u).verdict, replay_verdict::ok);
    EXPECT_EQ(w.check(0xFFFFFFFFu).seq, (uint64_t{6} << 32) | 0xFFFFFFFFu);
    // Just below: not in the previous epoch's part of the window: same epoch, far ahead.
    EXPECT_EQ(w.check(0xFFFFFC64u).seq, (uint64_t{7} << 32) | 0xFFFFFC64u);
}

TEST(replay_window, esn_disabled_window_still_infers_high_bits) {
    replay_window w(0, true);
    ASSERT_TRUE(w.update(0x3FFFFFFF0ull));
    EXPECT_EQ(w.check(5).seq, 0x400000005ull);           // wrapped forward
    EXPECT_EQ(w.check(0xFFFFFF00u).seq, 0x3FFFFFF00ull); // slightly behind
    EXPECT_EQ(w.check(5).verdict, replay_verdict::ok);
}

TEST(replay_window, no_esn_uses_low_bits_only) {
    replay_window w(64, false);
    ASSERT_TRUE(w.update(0xFFFFFFF0ull));
    EXPECT_EQ(w.check(3).seq, 3u);
    EXPECT_EQ(w.check(3).verdict, replay_verdict::too_old);
}

} // namespace
} // namespace sagd::crypto
