// Tunnel group: which member tunnel(s) carry a route's traffic. The lowest priority value
// among healthy members wins (master/backup); members of equal priority share flows by
// weight through a small bucket table indexed by a flow hash. With an SLA class, members that
// meet it are preferred over members that are up but browned out, and those over nothing.
// A member joins the active set only after hold_down of continuous health (failback
// dampening; a flap restarts the timer) unless the group would otherwise have no member.
//
// Control side: one owner drives tunnel_group with explicit `now` (ns) from BFD and SLA
// verdicts. Data plane: workers read only group_view, a small POD rebuilt on every change;
// publishing it (copy into an RCU-managed slot, or swap a pointer and reclaim after QSBR)
// is the owner's job, so a switch rewrites one small object and never touches routes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "forwarding/result.hpp"

namespace sagd::fwd {

inline constexpr uint32_t group_buckets = 64; // weight granularity 1/64
inline constexpr uint32_t no_tunnel = UINT32_MAX;

struct alignas(64) group_view {
    std::array<uint32_t, group_buckets> active; // tunnel index per bucket, no_tunnel if none
    uint32_t version = 0;                       // bumped on every content change

    group_view() noexcept { active.fill(no_tunnel); }
    // The same hash always lands on the same bucket; use a per-flow hash (e.g. the RSS hash).
    uint32_t pick(uint32_t flow_hash) const noexcept { return active[flow_hash % group_buckets]; }
};
static_assert(std::is_trivially_copyable_v<group_view>);
static_assert(sizeof(group_view) <= 320, "one small object: five cache lines");

struct group_member_config {
    uint32_t tunnel = 0;
    uint16_t priority = 0; // lower wins
    uint16_t weight = 1;   // share among equal priority, >= 1
};

struct tunnel_group_config {
    uint64_t hold_down_ns = 0;
    bool use_sla = false; // steer by member SLA verdicts
};

enum class group_event_cause : uint8_t {
    member_down,               // an active member went down (or was removed)
    member_up,                 // a member came up and was taken at once (first up / none active)
    member_up_after_hold_down, // a recovered member finished its hold-down
    sla_violation,             // an active member stopped meeting the SLA
    sla_recovered,             // a member meets the SLA again (after hold-down)
    config_change,             // member removed
};
inline constexpr size_t group_event_cause_count = 6;
const char* to_string(group_event_cause c) noexcept;

struct group_event {
    group_event_cause cause = group_event_cause::member_down;
    uint32_t tunnel = no_tunnel;         // the member whose change triggered the switch
    uint32_t primary_before = no_tunnel; // lowest-slot active member's tunnel, before/after
    uint32_t primary_after = no_tunnel;
    uint32_t active_before = 0; // member slot bitmasks
    uint32_t active_after = 0;
    uint32_t version = 0; // group_view version after the switch
    uint64_t at_ns = 0;
};

struct group_counters {
    uint64_t switches = 0;
    std::array<uint64_t, group_event_cause_count> by_cause{};
};

struct group_member_state {
    group_member_config cfg;
    bool in_use = false;
    bool up = false;
    bool sla_ok = true;
    bool ever_up = false;
    bool no_hold_down = false; // first up since added, until it first fails
    uint64_t up_since = 0;     // continuously up since
    uint64_t good_since = 0;   // continuously up and meeting the SLA since
};

class tunnel_group {
  public:
    static constexpr uint32_t max_members = 16;

    explicit tunnel_group(const tunnel_group_config& cfg = {}) noexcept : cfg_(cfg) {
        bucket_slot_.fill(no_slot);
    }

    // New members start down and take no traffic until set_member_up.
    status add_member(const group_member_config& m);
    result<std::optional<group_event>> remove_member(uint32_t tunnel, uint64_t now_ns);

    // BFD verdict (Up = true). A member's first up is not a recovery: no hold-down.
    std::optional<group_event> set_member_up(uint32_t tunnel, bool up, uint64_t now_ns) noexcept;
    // SLA classifier verdict; ignored for selection unless cfg.use_sla.
    std::optional<group_event> set_member_sla(uint32_t tunnel, bool ok, uint64_t now_ns) noexcept;
    // Hold-down expiries. Call at next_wakeup() (or periodically).
    std::optional<group_event> poll(uint64_t now_ns) noexcept;
    uint64_t next_wakeup(uint64_t now_ns) const noexcept; // UINT64_MAX: nothing pending

    const group_view& view() const noexcept { return view_; }
    uint32_t active_mask() const noexcept { return active_; }
    bool is_active(uint32_t tunnel) const noexcept;
    const group_member_state* member(uint32_t tunnel) const noexcept;
    const group_member_state& slot(uint32_t i) const noexcept { return members_[i]; }
    const group_counters& counters() const noexcept { return counters_; }
    const tunnel_group_config& config() const noexcept { return cfg_; }

  private:
    int find(uint32_t tunnel) const noexcept;
    bool matured(uint32_t i, uint64_t since, uint64_t now_ns) const noexcept;
    uint32_t select(uint64_t now_ns, bool honour_hold_down) const noexcept;
    std::optional<group_event> evaluate(uint64_t now_ns, group_event_cause cause, uint32_t tunnel,
                                        bool cause_from_new) noexcept;
    void rebuild(uint32_t mask) noexcept;
    uint32_t primary(uint32_t mask) const noexcept;

    tunnel_group_config cfg_;
    std::array<group_member_state, max_members> members_{};
    uint32_t active_ = 0;
    static constexpr uint8_t no_slot = 0xff;
    std::array<uint8_t, group_buckets> bucket_slot_{}; // member slot per bucket
    group_view view_;
    group_counters counters_;
};

} // namespace sagd::fwd
