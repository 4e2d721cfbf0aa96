#include <gtest/gtest.h>

#include "forwarding/sla.hpp"

using namespace sagd::fwd;

namespace {
constexpr uint64_t ms = 1'000'000;
constexpr uint64_t sec = 1000 * ms;
} // namespace

TEST(sla_window, figures_over_the_last_n_probes) {
    sla_window w({5, 0, 1 * sec});
    // One probe a second; delays 10, 30, lost, 20, 25 ms.
    uint32_t s1 = w.on_sent(0);
    uint32_t s2 = w.on_sent(1 * sec);
    uint32_t s3 = w.on_sent(2 * sec);
    uint32_t s4 = w.on_sent(3 * sec);
    uint32_t s5 = w.on_sent(4 * sec);
    EXPECT_TRUE(w.on_received(s1, 10 * ms));
    EXPECT_TRUE(w.on_received(s2, 1 * sec + 30 * ms));
    EXPECT_TRUE(w.on_timeout(s3));
    EXPECT_TRUE(w.on_received(s4, 3 * sec + 20 * ms));
    EXPECT_TRUE(w.on_received(s5, 4 * sec + 25 * ms));
    sla_stats s = w.stats(5 * sec);
    EXPECT_EQ(s.received, 4u);
    EXPECT_EQ(s.lost, 1u);
    EXPECT_EQ(s.pending, 0u);
    EXPECT_DOUBLE_EQ(s.loss_percent, 20.0);
    EXPECT_EQ(s.latency_ns, 21'250'000u); // (10 + 30 + 20 + 25) / 4
    // |30-10| + |20-30| + |25-20| = 35 over 3 pairs (the lost probe is skipped).
    EXPECT_EQ(s.jitter_ns, 11'666'666u);

    // The sixth probe pushes the first out of the window.
    uint32_t s6 = w.on_sent(5 * sec);
    EXPECT_TRUE(w.on_received(s6, 5 * sec + 15 * ms));
    s = w.stats(6 * sec);
    EXPECT_EQ(s.received, 4u);
    EXPECT_EQ(s.lost, 1u);
    EXPECT_EQ(s.latency_ns, 22'500'000u);     // (30 + 20 + 25 + 15) / 4
    EXPECT_EQ(s.jitter_ns, 8'333'333u);       // (10 + 5 + 10) / 3
    EXPECT_FALSE(w.on_received(s1, 6 * sec)); // out of the window now
    EXPECT_EQ(w.unknown_replies(), 1u);

    // A pending probe is not judged until answered or timed out.
    uint32_t s7 = w.on_sent(6 * sec);
    s = w.stats(6 * sec + 500 * ms);
    EXPECT_EQ(s.pending, 1u);
    EXPECT_EQ(s.received, 3u); // s3 (lost) .. s6, s7 pending
    EXPECT_DOUBLE_EQ(s.loss_percent, 25.0);
    EXPECT_EQ(s.latency_ns, 20'000'000u); // (20 + 25 + 15) / 3
    EXPECT_EQ(s.jitter_ns, 7'500'000u);   // (5 + 10) / 2
    EXPECT_EQ(w.expire(7 * sec - 1), 0u);
    EXPECT_EQ(w.expire(7 * sec), 1u);
    s = w.stats(7 * sec);
    EXPECT_EQ(s.pending, 0u);
    EXPECT_DOUBLE_EQ(s.loss_percent, 40.0);
    // Replies after the timeout and duplicates do not count.
    EXPECT_FALSE(w.on_received(s7, 7 * sec + 1));
    EXPECT_EQ(w.late_replies(), 1u);
    EXPECT_FALSE(w.on_received(s6, 7 * sec + 2));
    EXPECT_EQ(w.unknown_replies(), 2u);
    EXPECT_FALSE(w.on_timeout(s6)); // answered: not pending
    EXPECT_FALSE(w.on_received(12345, 7 * sec));
}

TEST(sla_window, time_window_and_external_delays) {
    sla_window w({100, 2500 * ms, 1 * sec});
    const uint64_t delay_ms[] = {100, 10, 20, 40, 10, 30};
    for (uint32_t i = 0; i < 6; ++i) {
        uint32_t seq = w.on_sent(i * sec);
        EXPECT_TRUE(w.on_received_delay(seq, delay_ms[i] * ms));
    }
    // At 5.5 s only probes sent at 3, 4 and 5 s are younger than 2.5 s: 40, 10, 30.
    sla_stats s = w.stats(5500 * ms);
    EXPECT_EQ(s.received, 3u);
    EXPECT_EQ(s.latency_ns, 26'666'666u); // 80 / 3
    EXPECT_EQ(s.jitter_ns, 25'000'000u);  // (30 + 20) / 2
    EXPECT_DOUBLE_EQ(s.loss_percent, 0.0);
    // Much later nothing is in the window.
    s = w.stats(100 * sec);
    EXPECT_EQ(s.resolved(), 0u);
    EXPECT_EQ(s.latency_ns, 0u);
}

TEST(sla_window, ring_wraps_beyond_capacity) {
    sla_window w({sla_window::capacity, 0, sec});
    uint64_t t = 0;
    for (uint32_t i = 0; i < 3 * sla_window::capacity + 7; ++i, t += ms) {
        uint32_t seq = w.on_sent(t);
        if (i % 4 == 0)
            EXPECT_TRUE(w.on_timeout(seq));
        else
            EXPECT_TRUE(w.on_received_delay(seq, 5 * ms));
    }
    sla_stats s = w.stats(t);
    EXPECT_EQ(s.resolved(), sla_window::capacity);
    EXPECT_DOUBLE_EQ(s.loss_percent, 25.0);
    EXPECT_EQ(s.latency_ns, 5 * ms);
    EXPECT_EQ(s.jitter_ns, 0u);
}

TEST(sla_classifier, limits_and_hysteresis) {
    sla_class cls;
    cls.max_loss_percent = 5;
    cls.max_latency_ns = 100 * ms;
    cls.max_jitter_ns = 20 * ms;
    cls.recover_percent = 80;
    cls.min_probes = 10;
    sla_classifier c(cls);
    auto stats = [](double loss, uint64_t lat_ms, uint64_t jit_ms, uint32_t n = 20) {
        sla_stats s;
        s.lost = static_cast<uint32_t>(n * loss / 100);
        s.received = n - s.lost;
        s.loss_percent = loss;
        s.latency_ns = lat_ms * ms;
        s.jitter_ns = jit_ms * ms;
        return s;
    };
    EXPECT_TRUE(c.ok());
    EXPECT_FALSE(c.update(stats(50, 500, 100, 9))); // too few probes to judge
    EXPECT_FALSE(c.update(stats(5, 100, 20)));      // at the limits is within
    auto v = c.update(stats(10, 100, 20));
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->violations, sla_violation_loss);
    EXPECT_FALSE(c.ok());
    EXPECT_FALSE(c.update(stats(4.5, 50, 5))); // inside the limit, not inside the band
    EXPECT_FALSE(c.update(stats(0, 81, 5)));
    EXPECT_FALSE(c.update(stats(0, 50, 17)));
    v = c.update(stats(4, 80, 16)); // every figure at 80% of its limit
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok);
    EXPECT_EQ(c.violations(stats(10, 101, 21)),
              sla_violation_loss | sla_violation_latency | sla_violation_jitter);
    v = c.update(stats(0, 101, 21));
    ASSERT_TRUE(v);
    EXPECT_EQ(v->violations, sla_violation_latency | sla_violation_jitter);

    // Unset delay limits are not checked; total loss is judged by loss alone.
    sla_class loose;
    loose.max_latency_ns = 0;
    loose.max_jitter_ns = 0;
    loose.min_probes = 1;
    sla_classifier l(loose);
    EXPECT_FALSE(l.update(stats(0, 10'000, 10'000)));
    sla_stats dead;
    dead.lost = 5;
    dead.loss_percent = 100;
    v = l.update(dead);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->violations, sla_violation_loss);
}
