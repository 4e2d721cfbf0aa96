#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "forwarding/bfd.hpp"

using namespace sagd::fwd;

namespace {

constexpr uint64_t ms = 1'000'000;

bfd_packet sample() {
    bfd_packet p;
    p.diag = bfd_diag::neighbor_signaled_down;
    p.state = bfd_state::up;
    p.poll = true;
    p.cpi = true;
    p.detect_mult = 3;
    p.my_discriminator = 0x01020304;
    p.your_discriminator = 0xa0b0c0d0;
    p.desired_min_tx_us = 50'000;
    p.required_min_rx_us = 100'000;
    p.required_min_echo_rx_us = 7;
    return p;
}

bfd_config cfg(uint32_t disc, uint32_t tx_ms = 100, uint32_t rx_ms = 100, uint8_t mult = 3) {
    bfd_config c;
    c.local_discriminator = disc;
    c.desired_min_tx_us = tx_ms * 1000;
    c.required_min_rx_us = rx_ms * 1000;
    c.detect_mult = mult;
    c.jitter_seed = disc;
    return c;
}

// What a remote peer would send.
bfd_packet remote(bfd_state st, uint32_t my, uint32_t your, uint32_t tx_ms = 100,
                  uint32_t rx_ms = 100, uint8_t mult = 3) {
    bfd_packet p;
    p.state = st;
    p.my_discriminator = my;
    p.your_discriminator = your;
    p.desired_min_tx_us = tx_ms * 1000;
    p.required_min_rx_us = rx_ms * 1000;
    p.detect_mult = mult;
    return p;
}

// Two sessions joined by a lossless zero-delay link through the codec, stepped every 1 ms.
struct link_sim {
    link_sim(bfd_session& x, bfd_session& y) : a(x), b(y) {}
    bfd_session& a;
    bfd_session& b;
    bool connected = true;
    std::vector<bfd_state_change> a_changes, b_changes;
    std::vector<uint64_t> a_change_at, b_change_at;

    void deliver(const bfd_packet& p, bfd_session& to, std::vector<bfd_state_change>& log,
                 std::vector<uint64_t>& at, uint64_t now) {
        uint8_t buf[64];
        size_t n = bfd_encode(p, buf, sizeof buf);
        ASSERT_EQ(n, bfd_header_len);
        bfd_packet q;
        ASSERT_EQ(bfd_decode(buf, n, q), bfd_status::ok);
        if (auto c = to.on_receive(q, now)) {
            log.push_back(*c);
            at.push_back(now);
        }
    }
    void step(uint64_t now) {
        auto ra = a.poll(now);
        if (ra.change) {
            a_changes.push_back(*ra.change);
            a_change_at.push_back(now);
        }
        auto rb = b.poll(now);
        if (rb.change) {
            b_changes.push_back(*rb.change);
            b_change_at.push_back(now);
        }
        if (connected && ra.tx)
            deliver(*ra.tx, b, b_changes, b_change_at, now);
        if (connected && rb.tx)
            deliver(*rb.tx, a, a_changes, a_change_at, now);
    }
    void run(uint64_t from, uint64_t to) {
        for (uint64_t t = from; t < to; t += ms)
            step(t);
    }
};

} // namespace

// ---- codec ----------------------------------------------------------------------------------

TEST(bfd_codec, round_trip_and_wire_layout) {
    bfd_packet p = sample();
    uint8_t buf[32];
    ASSERT_EQ(bfd_encode(p, buf, sizeof buf), 24u);
    EXPECT_EQ(buf[0], (1 << 5) | 3);           // version 1, diag 3
    EXPECT_EQ(buf[1], (3 << 6) | 0x20 | 0x08); // Up, P, C
    EXPECT_EQ(buf[2], 3);
    EXPECT_EQ(buf[3], 24);
    const uint8_t disc[] = {1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0};
    EXPECT_EQ(std::memcmp(buf + 4, disc, 8), 0);
    const uint8_t tx[] = {0, 0, 0xc3, 0x50}; // 50000
    EXPECT_EQ(std::memcmp(buf + 12, tx, 4), 0);
    bfd_packet q;
    ASSERT_EQ(bfd_decode(buf, 24, q), bfd_status::ok);
    EXPECT_EQ(q, p);

    // Every flag on its own bit.
    p.poll = false;
    p.cpi = false;
    p.final = true;
    p.demand = true;
    ASSERT_EQ(bfd_encode(p, buf, sizeof buf), 24u);
    EXPECT_EQ(buf[1], (3 << 6) | 0x10 | 0x02);
    ASSERT_EQ(bfd_decode(buf, 24, q), bfd_status::ok);
    EXPECT_EQ(q, p);
    EXPECT_EQ(bfd_encode(p, buf, 23), 0u);
    // A longer buffer and a longer length field (future sections) are accepted.
    uint8_t big[40] = {};
    ASSERT_EQ(bfd_encode(p, big, sizeof big), 24u);
    big[3] = 40;
    EXPECT_EQ(bfd_decode(big, sizeof big, q), bfd_status::ok);
}

TEST(bfd_codec, every_reception_rule_has_its_own_status) {
    uint8_t buf[24];
    bfd_packet out;
    auto with = [&](auto mutate) {
        bfd_packet p = sample();
        mutate(p);
        EXPECT_EQ(bfd_encode(p, buf, sizeof buf), 24u);
    };
    with([](bfd_packet&) {});
    EXPECT_EQ(bfd_decode(buf, 23, out), bfd_status::truncated);
    EXPECT_EQ(bfd_decode(buf, 0, out), bfd_status::truncated);

    with([](bfd_packet& p) { p.version = 2; });
    EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::bad_version);
    with([](bfd_packet& p) { p.version = 0; });
    EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::bad_version);

    with([](bfd_packet&) {});
    buf[3] = 23;
    EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::bad_length);
    buf[3] = 25;
    EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::length_exceeds_buffer);

    with([](bfd_packet& p) { p.detect_mult = 0; });
    EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::zero_detect_mult);
    with([](bfd_packet& p) { p.multipoint = true; });
    EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::multipoint_set);
    with([](bfd_packet& p) { p.my_discriminator = 0; });
    EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::zero_my_discriminator);

    for (auto st : {bfd_state::up, bfd_state::init}) {
        with([st](bfd_packet& p) {
            p.state = st;
            p.your_discriminator = 0;
        });
        EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::zero_your_discriminator);
    }
    for (auto st : {bfd_state::down, bfd_state::admin_down}) {
        with([st](bfd_packet& p) {
            p.state = st;
            p.your_discriminator = 0;
        });
        EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::ok) << to_string(st);
    }
    with([](bfd_packet& p) { p.auth = true; });
    EXPECT_EQ(bfd_decode(buf, 24, out), bfd_status::auth_unsupported);

    // A failed decode leaves out untouched.
    bfd_packet keep = sample();
    keep.my_discriminator = 99;
    out = keep;
    with([](bfd_packet& p) { p.detect_mult = 0; });
    (void)bfd_decode(buf, 24, out);
    EXPECT_EQ(out, keep);

    std::set<std::string> names;
    for (size_t i = 0; i < bfd_status_count; ++i)
        names.insert(to_string(static_cast<bfd_status>(i)));
    EXPECT_EQ(names.size(), bfd_status_count);
    EXPECT_EQ(names.count("?"), 0u);
}

TEST(bfd_codec, jitter_bounds) {
    // RFC 5880 6.8.7: 75-100% of the interval, 75-90% with detect mult 1.
    EXPECT_EQ(bfd_jittered_interval(100 * ms, 3, 0), 100 * ms);
    EXPECT_GE(bfd_jittered_interval(100 * ms, 3, UINT32_MAX), 75 * ms);
    EXPECT_LT(bfd_jittered_interval(100 * ms, 3, UINT32_MAX), 75 * ms + 10);
    EXPECT_EQ(bfd_jittered_interval(100 * ms, 3, 0x80000000u), 87'500'000u);
    EXPECT_EQ(bfd_jittered_interval(100 * ms, 1, 0), 90 * ms);
    EXPECT_GE(bfd_jittered_interval(100 * ms, 1, UINT32_MAX), 75 * ms);
    EXPECT_LT(bfd_jittered_interval(100 * ms, 1, UINT32_MAX), 75 * ms + 10);
}

// ---- session --------------------------------------------------------------------------------

TEST(bfd_session, starts_down_and_transmits_slowly) {
    bfd_session s(cfg(11), 0);
    EXPECT_EQ(s.state(), bfd_state::down);
    std::vector<uint64_t> sent;
    for (uint64_t t = 0; t < 20'000 * ms; t += ms) {
        auto r = s.poll(t);
        EXPECT_GE(r.next_wakeup_ns, t);
        if (!r.tx)
            continue;
        sent.push_back(t);
        EXPECT_EQ(r.tx->state, bfd_state::down);
        EXPECT_EQ(r.tx->your_discriminator, 0u);
        EXPECT_EQ(r.tx->my_discriminator, 11u);
        EXPECT_EQ(r.tx->desired_min_tx_us, 1'000'000u); // 6.8.3: >= 1 s while not Up
        EXPECT_EQ(r.tx->required_min_rx_us, 100'000u);
        EXPECT_FALSE(r.tx->poll);
    }
    ASSERT_GE(sent.size(), 20u);
    EXPECT_EQ(sent[0], 0u); // at once
    for (size_t i = 1; i < sent.size(); ++i) {
        EXPECT_GE(sent[i] - sent[i - 1], 750 * ms);
        EXPECT_LE(sent[i] - sent[i - 1], 1000 * ms);
    }
}

TEST(bfd_session, handshake_when_we_see_down_first) {
    bfd_session s(cfg(1), 0);
    auto c = s.on_receive(remote(bfd_state::down, 2, 0), 10 * ms);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, (bfd_state_change{bfd_state::down, bfd_state::init, bfd_diag::none}));
    EXPECT_EQ(s.remote_discriminator(), 2u);
    auto r = s.poll(10 * ms); // tells the peer at once
    ASSERT_TRUE(r.tx);
    EXPECT_EQ(r.tx->state, bfd_state::init);
    EXPECT_EQ(r.tx->your_discriminator, 2u);
    // Still Down on the remote side: stay in Init.
    EXPECT_FALSE(s.on_receive(remote(bfd_state::down, 2, 1), 20 * ms));
    c = s.on_receive(remote(bfd_state::up, 2, 1), 30 * ms);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, (bfd_state_change{bfd_state::init, bfd_state::up, bfd_diag::none}));
    EXPECT_EQ(s.counters().up, 1u);
}

TEST(bfd_session, handshake_when_we_see_init_first) {
    bfd_session s(cfg(1), 0);
    auto c = s.on_receive(remote(bfd_state::init, 2, 1), 10 * ms);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, (bfd_state_change{bfd_state::down, bfd_state::up, bfd_diag::none}));
    // Up does not move Down -> anything (6.8.6: only Down and Init do).
    bfd_session t(cfg(3), 0);
    EXPECT_FALSE(t.on_receive(remote(bfd_state::up, 2, 3), 10 * ms));
    EXPECT_EQ(t.state(), bfd_state::down);
}

TEST(bfd_session, two_sessions_come_up_both_orders) {
    for (int order = 0; order < 2; ++order) {
        bfd_session a(cfg(1), 0);
        bfd_session b(cfg(2), 0);
        // The first sender's Down reaches the other side before that side sends anything.
        link_sim sim{order == 0 ? a : b, order == 0 ? b : a};
        auto first = sim.a.poll(0);
        ASSERT_TRUE(first.tx);
        sim.deliver(*first.tx, sim.b, sim.b_changes, sim.b_change_at, 0);
        sim.run(ms, 3000 * ms);
        EXPECT_EQ(a.state(), bfd_state::up);
        EXPECT_EQ(b.state(), bfd_state::up);
        // The first sender goes Down -> Up, the first receiver Down -> Init -> Up.
        ASSERT_EQ(sim.a_changes.size(), 1u) << order;
        EXPECT_EQ(sim.a_changes[0].to, bfd_state::up);
        ASSERT_EQ(sim.b_changes.size(), 2u) << order;
        EXPECT_EQ(sim.b_changes[0].to, bfd_state::init);
        EXPECT_EQ(sim.b_changes[1].to, bfd_state::up);
        // Going Up announced the fast timers with a Poll sequence, which has completed.
        EXPECT_FALSE(a.poll_in_progress());
        EXPECT_FALSE(b.poll_in_progress());
        EXPECT_GE(a.counters().poll_sequences_done, 1u);
        EXPECT_EQ(a.tx_interval_ns(), 100 * ms);
        EXPECT_EQ(a.detection_time_ns(), 300 * ms);
    }
}

TEST(bfd_session, simultaneous_start_goes_through_init_on_both_sides) {
    bfd_session a(cfg(1), 0);
    bfd_session b(cfg(2), 0);
    link_sim sim{a, b};
    sim.run(0, 3000 * ms);
    ASSERT_EQ(sim.a_changes.size(), 2u);
    ASSERT_EQ(sim.b_changes.size(), 2u);
    EXPECT_EQ(sim.a_changes[0].to, bfd_state::init);
    EXPECT_EQ(sim.a_changes[1].to, bfd_state::up);
    EXPECT_EQ(sim.b_changes[1].to, bfd_state::up);
}

namespace {
// A session brought Up by a scripted remote (disc 2) at 100 ms x 3, Poll sequence done.
bfd_session up_session(uint64_t& now) {
    bfd_session s(cfg(1), 0);
    now = 10 * ms;
    (void)s.on_receive(remote(bfd_state::init, 2, 1), now);
    EXPECT_EQ(s.state(), bfd_state::up);
    auto r = s.poll(now);
    EXPECT_TRUE(r.tx && r.tx->poll); // Up changed our desired TX: Poll
    auto fin = remote(bfd_state::up, 2, 1);
    fin.final = true;
    (void)s.on_receive(fin, now);
    EXPECT_FALSE(s.poll_in_progress());
    return s;
}
} // namespace

TEST(bfd_session, detection_time_is_exact) {
    uint64_t now = 0;
    bfd_session s = up_session(now);
    ASSERT_EQ(s.detection_time_ns(), 300 * ms); // 3 x max(100 ms, 100 ms)
    uint64_t last = now + 40 * ms;
    EXPECT_FALSE(s.on_receive(remote(bfd_state::up, 2, 1), last));
    for (uint64_t t = last; t < last + 300 * ms; t += ms / 4)
        EXPECT_FALSE(s.poll(t).change) << (t - last);
    EXPECT_FALSE(s.poll(last + 300 * ms - 1).change);
    auto r = s.poll(last + 300 * ms);
    ASSERT_TRUE(r.change);
    EXPECT_EQ(*r.change, (bfd_state_change{bfd_state::up, bfd_state::down,
                                           bfd_diag::control_detection_expired}));
    EXPECT_EQ(s.remote_discriminator(), 0u); // 6.8.1: forgotten
    EXPECT_EQ(s.counters().detection_expired, 1u);
    ASSERT_TRUE(r.tx);
    EXPECT_EQ(r.tx->state, bfd_state::down);
    EXPECT_EQ(r.tx->diag, bfd_diag::control_detection_expired);
    EXPECT_EQ(r.tx->your_discriminator, 0u);
    EXPECT_EQ(r.tx->desired_min_tx_us, 1'000'000u); // back to slow
}

TEST(bfd_session, detection_uses_the_slower_of_our_rx_and_their_tx) {
    uint64_t now = 0;
    bfd_session s = up_session(now);
    (void)s.on_receive(remote(bfd_state::up, 2, 1, 200, 100, 5), now);
    EXPECT_EQ(s.detection_time_ns(), 1000 * ms); // 5 x max(100, 200)
    EXPECT_FALSE(s.poll(now + 1000 * ms - 1).change);
    EXPECT_TRUE(s.poll(now + 1000 * ms).change);
}

TEST(bfd_session, link_cut_goes_down_within_detection_plus_one_interval) {
    bfd_session a(cfg(1), 0);
    bfd_session b(cfg(2), 0);
    link_sim sim{a, b};
    sim.run(0, 5000 * ms);
    ASSERT_EQ(a.state(), bfd_state::up);
    ASSERT_EQ(b.state(), bfd_state::up);
    size_t before = sim.a_changes.size();
    uint64_t cut = 5000 * ms;
    sim.connected = false;
    uint64_t last_rx = a.last_rx_ns();
    sim.run(cut, cut + 1000 * ms);
    ASSERT_EQ(sim.a_changes.size(), before + 1);
    uint64_t down_at = sim.a_change_at.back();
    EXPECT_EQ(sim.a_changes.back().diag, bfd_diag::control_detection_expired);
    EXPECT_EQ(down_at, last_rx + 300 * ms);        // exactly the detection time
    EXPECT_GE(down_at, cut + 200 * ms);            // last packet came < one interval before the cut
    EXPECT_LE(down_at, cut + 300 * ms + 100 * ms); // by detection time + one interval
}

TEST(bfd_session, fifty_ms_times_three_stays_up_and_detects_in_150ms) {
    bfd_session a(cfg(1, 50, 50, 3), 0);
    bfd_session b(cfg(2, 50, 50, 3), 0);
    link_sim sim{a, b};
    sim.run(0, 3000 * ms);
    ASSERT_EQ(a.state(), bfd_state::up);
    EXPECT_EQ(a.tx_interval_ns(), 50 * ms);
    EXPECT_EQ(a.detection_time_ns(), 150 * ms);
    size_t changes = sim.a_changes.size() + sim.b_changes.size();
    sim.run(3000 * ms, 13'000 * ms); // 10 s with jitter: no false detection
    EXPECT_EQ(sim.a_changes.size() + sim.b_changes.size(), changes);
    uint64_t last_rx = b.last_rx_ns();
    sim.connected = false;
    sim.run(13'000 * ms, 13'500 * ms);
    ASSERT_EQ(b.state(), bfd_state::down);
    EXPECT_EQ(sim.b_change_at.back(), last_rx + 150 * ms);
}

TEST(bfd_session, periodic_jitter_stays_within_75_to_100_percent) {
    uint64_t now = 0;
    bfd_session s = up_session(now);
    std::vector<uint64_t> sent;
    for (uint64_t t = now; t < now + 60'000 * ms; t += ms / 10) {
        if (t % (50 * ms) == 0) // keep the session up
            (void)s.on_receive(remote(bfd_state::up, 2, 1), t);
        if (s.poll(t).tx)
            sent.push_back(t);
    }
    ASSERT_GT(sent.size(), 600u);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 2; i < sent.size(); ++i) {
        uint64_t d = sent[i] - sent[i - 1];
        lo = std::min(lo, d);
        hi = std::max(hi, d);
    }
    EXPECT_GE(lo, 75 * ms);
    EXPECT_LE(hi, 100 * ms + ms / 10); // poll granularity
    EXPECT_LT(lo, 77 * ms);            // really spread over the range
    EXPECT_GT(hi, 98 * ms);
}

TEST(bfd_session, remote_signals_down) {
    uint64_t now = 0;
    bfd_session s = up_session(now);
    auto c = s.on_receive(remote(bfd_state::down, 2, 1), now + ms);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c,
              (bfd_state_change{bfd_state::up, bfd_state::down, bfd_diag::neighbor_signaled_down}));
    // And AdminDown from the remote moves Init/Up to Down with diag 3 as well.
    bfd_session t = up_session(now);
    c = t.on_receive(remote(bfd_state::admin_down, 2, 1), now + ms);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->to, bfd_state::down);
    EXPECT_EQ(c->diag, bfd_diag::neighbor_signaled_down);
    // Remote AdminDown while we are Down: nothing (no Init either).
    EXPECT_FALSE(t.on_receive(remote(bfd_state::admin_down, 2, 1), now + 2 * ms));
    EXPECT_EQ(t.state(), bfd_state::down);
}

TEST(bfd_session, admin_down_and_up) {
    uint64_t now = 0;
    bfd_session s = up_session(now);
    auto c = s.admin_down(now);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, (bfd_state_change{bfd_state::up, bfd_state::admin_down, bfd_diag::admin_down}));
    auto r = s.poll(now);
    ASSERT_TRUE(r.tx);
    EXPECT_EQ(r.tx->state, bfd_state::admin_down);
    EXPECT_EQ(r.tx->diag, bfd_diag::admin_down);
    // 6.8.6: everything received in AdminDown is discarded; no detection either.
    EXPECT_FALSE(s.on_receive(remote(bfd_state::init, 2, 1), now + ms));
    EXPECT_EQ(s.state(), bfd_state::admin_down);
    EXPECT_EQ(s.counters().rx_discarded_admin, 1u);
    EXPECT_FALSE(s.poll(now + 10'000 * ms).change);
    c = s.admin_up(now + 10'000 * ms);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->to, bfd_state::down);
    EXPECT_FALSE(s.admin_up(now + 10'000 * ms)); // not AdminDown: nothing to do
    // The session can come up again.
    EXPECT_TRUE(s.on_receive(remote(bfd_state::init, 2, 1), now + 10'001 * ms));
    EXPECT_EQ(s.state(), bfd_state::up);

    bfd_config c2 = cfg(5);
    c2.start_admin_down = true;
    bfd_session t(c2, 0);
    EXPECT_EQ(t.state(), bfd_state::admin_down);
    EXPECT_EQ(t.local_diag(), bfd_diag::admin_down);
}

TEST(bfd_session, wrong_your_discriminator_is_counted_and_ignored) {
    bfd_session s(cfg(1), 0);
    EXPECT_FALSE(s.on_receive(remote(bfd_state::init, 2, 77), ms));
    EXPECT_EQ(s.state(), bfd_state::down);
    EXPECT_EQ(s.counters().rx_wrong_discriminator, 1u);
    EXPECT_EQ(s.counters().rx, 0u);
}

TEST(bfd_session, answers_poll_with_final_at_once) {
    uint64_t now = 0;
    bfd_session s = up_session(now);
    uint64_t t = now + ms;
    // Drain the periodic packet due now so the next one is far away.
    (void)s.poll(t);
    auto p = remote(bfd_state::up, 2, 1, 50, 50);
    p.poll = true;
    (void)s.on_receive(p, t + ms);
    auto r = s.poll(t + ms);
    ASSERT_TRUE(r.tx);
    EXPECT_TRUE(r.tx->final);
    EXPECT_FALSE(r.tx->poll);
    EXPECT_EQ(s.counters().tx_final, 1u);
    // The remote's new RX requirement is honoured: our interval is max(100, 50) = 100 ms.
    EXPECT_EQ(s.tx_interval_ns(), 100 * ms);
    EXPECT_FALSE(s.poll(t + 2 * ms).tx);
}

TEST(bfd_session, poll_sequence_on_timer_change) {
    uint64_t now = 0;
    bfd_session s = up_session(now);
    uint64_t t = now + ms;
    (void)s.poll(t);
    // Faster: a TX decrease applies at once, announced with P until the Final.
    s.set_timers(50'000, 50'000, 3, t);
    EXPECT_TRUE(s.poll_in_progress());
    auto r = s.poll(t);
    ASSERT_TRUE(r.tx);
    EXPECT_TRUE(r.tx->poll);
    EXPECT_EQ(r.tx->desired_min_tx_us, 50'000u);
    EXPECT_EQ(r.tx->required_min_rx_us, 50'000u);
    // RX decrease waits for the Final: detection still uses 100 ms.
    EXPECT_EQ(s.detection_time_ns(), 300 * ms);
    // Until the Final, every periodic packet carries P.
    uint64_t u = t + ms;
    for (; !(r = s.poll(u)).tx; u += ms) {
    }
    EXPECT_TRUE(r.tx->poll);
    auto fin = remote(bfd_state::up, 2, 1, 50, 50);
    fin.final = true;
    (void)s.on_receive(fin, u);
    EXPECT_FALSE(s.poll_in_progress());
    EXPECT_EQ(s.tx_interval_ns(), 50 * ms);
    EXPECT_EQ(s.detection_time_ns(), 150 * ms);
    for (u += ms; !(r = s.poll(u)).tx; u += ms) {
    }
    EXPECT_FALSE(r.tx->poll);

    // Slower: the TX increase waits for the Final (6.8.3).
    s.set_timers(500'000, 50'000, 3, u);
    EXPECT_TRUE(s.poll_in_progress());
    EXPECT_EQ(s.tx_interval_ns(), 50 * ms);
    (void)s.on_receive(fin, u + ms);
    EXPECT_EQ(s.tx_interval_ns(), 500 * ms);
    EXPECT_EQ(s.counters().poll_sequences_done, 3u); // going Up, faster, slower
}
