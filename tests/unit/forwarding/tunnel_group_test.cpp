#include <gtest/gtest.h>

#include <array>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "forwarding/sla.hpp"
#include "forwarding/tunnel_group.hpp"

using namespace sagd::fwd;

namespace {

constexpr uint64_t ms = 1'000'000;
constexpr uint64_t sec = 1000 * ms;

uint32_t hash_of(uint32_t i) { // a well-mixed stand-in for an RSS hash
    uint32_t x = i * 0x9e3779b9u;
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    return x;
}

std::map<uint32_t, uint32_t> bucket_counts(const group_view& v) {
    std::map<uint32_t, uint32_t> n;
    for (uint32_t t : v.active)
        ++n[t];
    return n;
}

// Master (tunnel 10, priority 1) and backup (tunnel 20, priority 2), hold-down 30 s.
tunnel_group master_backup(bool sla = false) {
    tunnel_group g({30 * sec, sla});
    EXPECT_TRUE(g.add_member({10, 1, 1}).ok());
    EXPECT_TRUE(g.add_member({20, 2, 1}).ok());
    return g;
}

} // namespace

TEST(tunnel_group, config_validation) {
    tunnel_group g;
    EXPECT_EQ(g.add_member({1, 0, 0}).err().code, errc::invalid_argument);
    EXPECT_EQ(g.add_member({no_tunnel, 0, 1}).err().code, errc::invalid_argument);
    for (uint32_t t = 0; t < tunnel_group::max_members; ++t)
        ASSERT_TRUE(g.add_member({t, 0, 1}).ok());
    auto dup = g.add_member({3, 0, 1});
    EXPECT_EQ(dup.err().code, errc::conflict);
    EXPECT_NE(dup.err().message.find("tunnel 3"), std::string::npos);
    EXPECT_EQ(g.add_member({100, 0, 1}).err().code, errc::table_full);
    EXPECT_EQ(g.remove_member(100, 0).err().code, errc::not_found);
    // New members are down: nothing to pick, no version yet.
    EXPECT_EQ(g.view().pick(12345), no_tunnel);
    EXPECT_EQ(g.view().version, 0u);
    EXPECT_FALSE(g.set_member_up(999, true, 0)); // unknown tunnel: ignored
}

TEST(tunnel_group, failover_to_backup_and_back_only_after_hold_down) {
    tunnel_group g = master_backup();
    auto ev = g.set_member_up(20, true, 1 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::member_up);
    EXPECT_EQ(ev->primary_before, no_tunnel);
    EXPECT_EQ(ev->primary_after, 20u);
    ev = g.set_member_up(10, true, 2 * sec); // first up: no hold-down
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::member_up);
    EXPECT_EQ(ev->primary_after, 10u);
    for (uint32_t h = 0; h < 1000; ++h)
        ASSERT_EQ(g.view().pick(hash_of(h)), 10u);

    // Master fails: backup at once.
    uint32_t v = g.view().version;
    ev = g.set_member_up(10, false, 100 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::member_down);
    EXPECT_EQ(ev->tunnel, 10u);
    EXPECT_EQ(ev->primary_before, 10u);
    EXPECT_EQ(ev->primary_after, 20u);
    EXPECT_EQ(ev->version, v + 1);
    EXPECT_EQ(g.view().version, v + 1);
    EXPECT_EQ(bucket_counts(g.view()), (std::map<uint32_t, uint32_t>{{20, group_buckets}}));

    // Master recovers: stays on backup for the hold-down.
    EXPECT_FALSE(g.set_member_up(10, true, 200 * sec));
    EXPECT_EQ(g.next_wakeup(200 * sec), 230 * sec);
    EXPECT_FALSE(g.poll(215 * sec));
    EXPECT_FALSE(g.poll(230 * sec - 1));
    EXPECT_EQ(g.view().pick(7), 20u);
    ev = g.poll(230 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::member_up_after_hold_down);
    EXPECT_EQ(ev->tunnel, 10u);
    EXPECT_EQ(ev->primary_after, 10u);
    EXPECT_EQ(g.view().pick(7), 10u);
    EXPECT_EQ(g.next_wakeup(230 * sec), UINT64_MAX);

    const auto& c = g.counters();
    EXPECT_EQ(c.switches, 4u);
    EXPECT_EQ(c.by_cause[size_t(group_event_cause::member_up)], 2u);
    EXPECT_EQ(c.by_cause[size_t(group_event_cause::member_down)], 1u);
    EXPECT_EQ(c.by_cause[size_t(group_event_cause::member_up_after_hold_down)], 1u);
}

TEST(tunnel_group, flap_restarts_hold_down) {
    tunnel_group g = master_backup();
    (void)g.set_member_up(10, true, 0);
    (void)g.set_member_up(20, true, 0);
    ASSERT_TRUE(g.set_member_up(10, false, 100 * sec));
    EXPECT_FALSE(g.set_member_up(10, true, 200 * sec));
    EXPECT_FALSE(g.set_member_up(10, false, 210 * sec)); // not active: no switch
    EXPECT_FALSE(g.set_member_up(10, true, 220 * sec));
    EXPECT_FALSE(g.poll(230 * sec)); // would have been due without the flap
    EXPECT_FALSE(g.poll(250 * sec - 1));
    EXPECT_TRUE(g.is_active(20));
    auto ev = g.poll(250 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->primary_after, 10u);
}

TEST(tunnel_group, lower_priority_changes_do_not_touch_the_view) {
    tunnel_group g = master_backup();
    (void)g.set_member_up(10, true, 0);
    uint32_t v = g.view().version;
    EXPECT_FALSE(g.set_member_up(20, true, sec));
    EXPECT_FALSE(g.set_member_up(20, false, 2 * sec));
    EXPECT_FALSE(g.poll(100 * sec));
    EXPECT_EQ(g.view().version, v);
}

TEST(tunnel_group, all_down_then_first_recovery_is_taken_at_once) {
    tunnel_group g = master_backup();
    (void)g.set_member_up(10, true, 0);
    (void)g.set_member_up(20, true, 0);
    (void)g.set_member_up(10, false, 10 * sec);
    auto ev = g.set_member_up(20, false, 11 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->primary_after, no_tunnel);
    EXPECT_EQ(g.view().pick(1), no_tunnel);
    // Better a member inside its hold-down than none.
    ev = g.set_member_up(20, true, 12 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::member_up);
    EXPECT_EQ(ev->primary_after, 20u);
    // The master recovering a moment later still waits its hold-down (the backup is serving).
    EXPECT_FALSE(g.set_member_up(10, true, 13 * sec));
    EXPECT_TRUE(g.poll(43 * sec));
    EXPECT_TRUE(g.is_active(10));
}

TEST(tunnel_group, removing_the_active_member) {
    tunnel_group g = master_backup();
    (void)g.set_member_up(10, true, 0);
    (void)g.set_member_up(20, true, 0);
    auto r = g.remove_member(10, sec);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r.value());
    EXPECT_EQ(r.value()->cause, group_event_cause::config_change);
    EXPECT_EQ(g.view().pick(3), 20u);
    EXPECT_EQ(g.member(10), nullptr);
}

TEST(tunnel_group, weighted_spread_and_flow_stickiness) {
    tunnel_group g({10 * sec, false});
    ASSERT_TRUE(g.add_member({1, 5, 1}).ok());
    ASSERT_TRUE(g.add_member({2, 5, 2}).ok());
    ASSERT_TRUE(g.add_member({3, 5, 1}).ok());
    ASSERT_TRUE(g.add_member({9, 6, 1}).ok()); // backup tier
    for (uint32_t t : {1u, 2u, 3u, 9u})
        (void)g.set_member_up(t, true, 0);
    EXPECT_EQ(bucket_counts(g.view()), (std::map<uint32_t, uint32_t>{{1, 16}, {2, 32}, {3, 16}}));

    constexpr uint32_t flows = 200'000;
    std::map<uint32_t, uint32_t> hits;
    std::vector<uint32_t> first(flows);
    for (uint32_t i = 0; i < flows; ++i) {
        first[i] = g.view().pick(hash_of(i));
        ++hits[first[i]];
        ASSERT_EQ(g.view().pick(hash_of(i)), first[i]); // same hash, same member
    }
    EXPECT_NEAR(hits[1] / double(flows), 0.25, 0.01);
    EXPECT_NEAR(hits[2] / double(flows), 0.50, 0.01);
    EXPECT_NEAR(hits[3] / double(flows), 0.25, 0.01);
    EXPECT_EQ(hits.count(9), 0u);

    // Member 3 fails: its flows move, nobody else's do; 64 x 1/3 and 64 x 2/3 -> 21 / 43.
    auto ev = g.set_member_up(3, false, sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(bucket_counts(g.view()), (std::map<uint32_t, uint32_t>{{1, 21}, {2, 43}}));
    for (uint32_t i = 0; i < flows; ++i) {
        if (first[i] != 3) {
            ASSERT_EQ(g.view().pick(hash_of(i)), first[i]) << i;
        }
    }

    // It comes back after its hold-down: only 16 buckets move back to it.
    group_view before = g.view();
    EXPECT_FALSE(g.set_member_up(3, true, 2 * sec));
    ASSERT_TRUE(g.poll(12 * sec));
    EXPECT_EQ(bucket_counts(g.view()), (std::map<uint32_t, uint32_t>{{1, 16}, {2, 32}, {3, 16}}));
    uint32_t moved = 0;
    for (uint32_t b = 0; b < group_buckets; ++b) {
        if (g.view().active[b] != before.active[b]) {
            ++moved;
            EXPECT_EQ(g.view().active[b], 3u);
        }
    }
    EXPECT_EQ(moved, 16u);

    // The whole tier fails: backup takes every bucket.
    (void)g.set_member_up(1, false, 20 * sec);
    (void)g.set_member_up(2, false, 20 * sec);
    (void)g.set_member_up(3, false, 20 * sec);
    EXPECT_EQ(bucket_counts(g.view()), (std::map<uint32_t, uint32_t>{{9, group_buckets}}));
}

TEST(tunnel_group, uneven_weights_round_by_largest_remainder) {
    tunnel_group g;
    ASSERT_TRUE(g.add_member({1, 0, 3}).ok());
    ASSERT_TRUE(g.add_member({2, 0, 7}).ok());
    ASSERT_TRUE(g.add_member({3, 0, 90}).ok());
    for (uint32_t t : {1u, 2u, 3u})
        (void)g.set_member_up(t, true, 0);
    // 64 x (0.03, 0.07, 0.90) = 1.92, 4.48, 57.6 -> 1 + 4 + 57 = 62, remainders .92 and .6 win.
    EXPECT_EQ(bucket_counts(g.view()), (std::map<uint32_t, uint32_t>{{1, 2}, {2, 4}, {3, 58}}));
}

TEST(tunnel_group, sla_brownout_steers_to_backup_and_back) {
    tunnel_group g = master_backup(true);
    (void)g.set_member_up(10, true, 0);
    (void)g.set_member_up(20, true, 0);
    ASSERT_TRUE(g.is_active(10));
    auto ev = g.set_member_sla(10, false, 100 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::sla_violation);
    EXPECT_EQ(ev->primary_after, 20u);
    // SLA back on the master: failback waits the hold-down too.
    EXPECT_FALSE(g.set_member_sla(10, true, 200 * sec));
    EXPECT_EQ(g.next_wakeup(200 * sec), 230 * sec);
    EXPECT_FALSE(g.poll(230 * sec - 1));
    ev = g.poll(230 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::sla_recovered);
    EXPECT_EQ(ev->primary_after, 10u);

    // Both browned out: up members that miss the SLA beat nothing, by priority.
    (void)g.set_member_sla(10, false, 300 * sec);
    ASSERT_TRUE(g.is_active(20));
    ev = g.set_member_sla(20, false, 301 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::sla_violation);
    EXPECT_EQ(ev->primary_after, 10u);
    // The backup meets the SLA again (after hold-down): it wins over the browned-out master.
    EXPECT_FALSE(g.set_member_sla(20, true, 302 * sec));
    ev = g.poll(332 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::sla_recovered);
    EXPECT_EQ(ev->primary_after, 20u);
    // Down beats everything.
    ev = g.set_member_up(20, false, 400 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->cause, group_event_cause::member_down);
    EXPECT_EQ(ev->primary_after, 10u);
    ev = g.set_member_up(10, false, 401 * sec);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->primary_after, no_tunnel);
}

TEST(tunnel_group, sla_ignored_without_sla_class) {
    tunnel_group g = master_backup(false);
    (void)g.set_member_up(10, true, 0);
    (void)g.set_member_up(20, true, 0);
    EXPECT_FALSE(g.set_member_sla(10, false, sec));
    EXPECT_TRUE(g.is_active(10));
}

TEST(tunnel_group, classifier_hysteresis_keeps_the_group_from_flapping) {
    // Latency hovering around a 100 ms limit: one switch away, one back once it is clearly good.
    tunnel_group g = master_backup(true);
    (void)g.set_member_up(10, true, 0);
    (void)g.set_member_up(20, true, 0);
    sla_class cls;
    cls.max_loss_percent = 5;
    cls.max_latency_ns = 100 * ms;
    cls.max_jitter_ns = 0;
    cls.recover_percent = 80;
    cls.min_probes = 1;
    sla_classifier master(cls);
    const uint64_t latency_ms[] = {90, 101, 95, 99, 85, 102, 81, 79, 90, 99, 100};
    std::vector<std::pair<uint64_t, group_event_cause>> switches;
    uint64_t t = 1000 * sec;
    for (uint64_t l : latency_ms) {
        sla_stats s;
        s.received = 10;
        s.latency_ns = l * ms;
        if (auto v = master.update(s))
            if (auto ev = g.set_member_sla(10, v->ok, t))
                switches.emplace_back(l, ev->cause);
        t += 60 * sec; // longer than the hold-down between samples
        if (auto ev = g.poll(t))
            switches.emplace_back(l, ev->cause);
    }
    ASSERT_EQ(switches.size(), 2u);
    EXPECT_EQ(switches[0],
              (std::pair<uint64_t, group_event_cause>{101, group_event_cause::sla_violation}));
    EXPECT_EQ(switches[1],
              (std::pair<uint64_t, group_event_cause>{79, group_event_cause::sla_recovered}));
    EXPECT_TRUE(g.is_active(10));
}

TEST(tunnel_group, view_is_one_small_object) {
    EXPECT_LE(sizeof(group_view), 320u);
    EXPECT_EQ(alignof(group_view), 64u);
    group_view v;
    for (uint32_t h = 0; h < 256; ++h)
        EXPECT_EQ(v.pick(h), no_tunnel);
    std::set<std::string> names;
    for (size_t i = 0; i < group_event_cause_count; ++i)
        names.insert(to_string(static_cast<group_event_cause>(i)));
    EXPECT_EQ(names.size(), group_event_cause_count);
}
