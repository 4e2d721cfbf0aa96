#include "forwarding/tunnel_group.hpp"

#include <bit>
#include <string>

namespace sagd::fwd {

const char* to_string(group_event_cause c) noexcept {
    switch (c) {
    case group_event_cause::member_down:
        return "member_down";
    case group_event_cause::member_up:
        return "member_up";
    case group_event_cause::member_up_after_hold_down:
        return "member_up_after_hold_down";
    case group_event_cause::sla_violation:
        return "sla_violation";
    case group_event_cause::sla_recovered:
        return "sla_recovered";
    case group_event_cause::config_change:
        return "config_change";
    }
    return "?";
}

int tunnel_group::find(uint32_t tunnel) const noexcept {
    for (uint32_t i = 0; i < max_members; ++i)
        if (members_[i].in_use && members_[i].cfg.tunnel == tunnel)
            return static_cast<int>(i);
    return -1;
}

const group_member_state* tunnel_group::member(uint32_t tunnel) const noexcept {
    int i = find(tunnel);
    return i < 0 ? nullptr : &members_[static_cast<uint32_t>(i)];
}

bool tunnel_group::is_active(uint32_t tunnel) const noexcept {
    int i = find(tunnel);
    return i >= 0 && (active_ & (1u << i)) != 0;
}

status tunnel_group::add_member(const group_member_config& m) {
    if (m.tunnel == no_tunnel)
        return error(errc::invalid_argument,
                     "tunnel group: tunnel index " + std::to_string(m.tunnel) + " is reserved");
    if (m.weight == 0)
        return error(errc::invalid_argument, "tunnel group: member tunnel " +
                                                 std::to_string(m.tunnel) +
                                                 ": weight must be at least 1");
    if (find(m.tunnel) >= 0)
        return error(errc::conflict,
                     "tunnel group: tunnel " + std::to_string(m.tunnel) + " is already a member");
    for (auto& s : members_) {
        if (s.in_use)
            continue;
        s = group_member_state{};
        s.cfg = m;
        s.in_use = true;
        return ok();
    }
    return error(errc::table_full, "tunnel group: already " + std::to_string(max_members) +
                                       " members, cannot add tunnel " + std::to_string(m.tunnel));
}

result<std::optional<group_event>> tunnel_group::remove_member(uint32_t tunnel, uint64_t now_ns) {
    int i = find(tunnel);
    if (i < 0)
        return error(errc::not_found,
                     "tunnel group: tunnel " + std::to_string(tunnel) + " is not a member");
    members_[static_cast<uint32_t>(i)] = group_member_state{};
    return evaluate(now_ns, group_event_cause::config_change, tunnel, false);
}

std::optional<group_event> tunnel_group::set_member_up(uint32_t tunnel, bool up,
                                                       uint64_t now_ns) noexcept {
    int i = find(tunnel);
    if (i < 0)
        return std::nullopt;
    auto& m = members_[static_cast<uint32_t>(i)];
    if (m.up == up)
        return std::nullopt;
    m.up = up;
    if (up) {
        // A first up is not a recovery: no hold-down until the member first fails.
        m.no_hold_down = !m.ever_up;
        m.ever_up = true;
        m.up_since = now_ns;
        m.good_since = now_ns;
        return evaluate(now_ns, group_event_cause::member_up, tunnel, false);
    }
    m.no_hold_down = false;
    return evaluate(now_ns, group_event_cause::member_down, tunnel, false);
}

std::optional<group_event> tunnel_group::set_member_sla(uint32_t tunnel, bool ok,
                                                        uint64_t now_ns) noexcept {
    int i = find(tunnel);
    if (i < 0)
        return std::nullopt;
    auto& m = members_[static_cast<uint32_t>(i)];
    if (m.sla_ok == ok)
        return std::nullopt;
    m.sla_ok = ok;
    if (ok)
        m.good_since = now_ns;
    else
        m.no_hold_down = false;
    return evaluate(now_ns,
                    ok ? group_event_cause::sla_recovered : group_event_cause::sla_violation,
                    tunnel, false);
}

std::optional<group_event> tunnel_group::poll(uint64_t now_ns) noexcept {
    return evaluate(now_ns, group_event_cause::member_up_after_hold_down, no_tunnel, true);
}

bool tunnel_group::matured(uint32_t i, uint64_t since, uint64_t now_ns) const noexcept {
    // Members already carrying traffic are never held down; newcomers wait.
    if ((active_ & (1u << i)) != 0 || members_[i].no_hold_down)
        return true;
    return now_ns >= since && now_ns - since >= cfg_.hold_down_ns;
}

uint32_t tunnel_group::select(uint64_t now_ns, bool honour_hold_down) const noexcept {
    // Level 2: up and meeting the SLA; level 1: up. Within a level, the lowest priority value.
    for (int level = cfg_.use_sla ? 2 : 1; level >= 1; --level) {
        uint32_t mask = 0;
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < max_members; ++i) {
            const auto& m = members_[i];
            if (!m.in_use || !m.up)
                continue;
            if (level == 2 && !m.sla_ok)
                continue;
            uint64_t since = level == 2 ? m.good_since : m.up_since;
            if (honour_hold_down && !matured(i, since, now_ns))
                continue;
            if (m.cfg.priority < best) {
                best = m.cfg.priority;
                mask = 0;
            }
            if (m.cfg.priority == best)
                mask |= 1u << i;
        }
        if (mask != 0)
            return mask;
    }
    return 0;
}

uint32_t tunnel_group::primary(uint32_t mask) const noexcept {
    return mask == 0 ? no_tunnel : members_[std::countr_zero(mask)].cfg.tunnel;
}

uint64_t tunnel_group::next_wakeup(uint64_t now_ns) const noexcept {
    uint64_t wake = UINT64_MAX;
    for (uint32_t i = 0; i < max_members; ++i) {
        const auto& m = members_[i];
        if (!m.in_use || !m.up || m.no_hold_down || (active_ & (1u << i)) != 0)
            continue;
        uint64_t at = m.up_since + cfg_.hold_down_ns;
        if (cfg_.use_sla && m.sla_ok)
            at = std::max(at, m.good_since + cfg_.hold_down_ns);
        if (at > now_ns && at < wake)
            wake = at;
    }
    return wake;
}

std::optional<group_event> tunnel_group::evaluate(uint64_t now_ns, group_event_cause cause,
                                                  uint32_t tunnel, bool cause_from_new) noexcept {
    uint32_t mask = select(now_ns, true);
    if (mask == 0)
        mask = select(now_ns, false); // better a fresh member than no member at all
    if (mask == active_)
        return std::nullopt;
    group_event ev;
    ev.at_ns = now_ns;
    ev.active_before = active_;
    ev.active_after = mask;
    ev.primary_before = primary(active_);
    ev.primary_after = primary(mask);
    if (cause_from_new) {
        // A hold-down expiry: name the newcomer and whether it was its SLA that recovered.
        uint32_t added = mask & ~active_;
        if (added != 0) {
            const auto& m = members_[std::countr_zero(added)];
            tunnel = m.cfg.tunnel;
            cause = cfg_.use_sla && m.sla_ok && m.good_since > m.up_since
                        ? group_event_cause::sla_recovered
                        : group_event_cause::member_up_after_hold_down;
        }
    }
    ev.cause = cause;
    ev.tunnel = tunnel;
    active_ = mask;
    rebuild(mask);
    ev.version = view_.version;
    ++counters_.switches;
    ++counters_.by_cause[static_cast<size_t>(cause)];
    return ev;
}

// Bucket fill by weight (largest remainder), disturbing as few buckets as possible: a bucket
// keeps its member while that member stays active and under its quota, so flows on surviving
// members do not move when another member leaves or joins.
void tunnel_group::rebuild(uint32_t mask) noexcept {
    std::array<uint32_t, max_members> quota{};
    std::array<uint64_t, max_members> rem{};
    uint64_t total = 0;
    for (uint32_t i = 0; i < max_members; ++i)
        if ((mask & (1u << i)) != 0)
            total += members_[i].cfg.weight;
    if (total != 0) {
        uint32_t given = 0;
        for (uint32_t i = 0; i < max_members; ++i) {
            if ((mask & (1u << i)) == 0)
                continue;
            uint64_t share = uint64_t{group_buckets} * members_[i].cfg.weight;
            quota[i] = static_cast<uint32_t>(share / total);
            rem[i] = share % total;
            given += quota[i];
        }
        for (; given < group_buckets; ++given) { // largest remainder, lower slot on ties
            uint32_t pick = 0;
            bool found = false;
            for (uint32_t i = 0; i < max_members; ++i)
                if ((mask & (1u << i)) != 0 && (!found || rem[i] > rem[pick])) {
                    pick = i;
                    found = true;
                }
            ++quota[pick];
            rem[pick] = 0;
        }
    }
    std::array<uint32_t, max_members> count{};
    for (auto& s : bucket_slot_) {
        if (s != no_slot && (mask & (1u << s)) != 0 && count[s] < quota[s])
            ++count[s];
        else
            s = no_slot;
    }
    uint32_t next = 0; // round-robin over members short of quota, to interleave buckets
    for (auto& s : bucket_slot_) {
        if (s != no_slot || total == 0)
            continue;
        for (uint32_t k = 0; k < max_members; ++k) {
            uint32_t i = (next + k) % max_members;
            if (count[i] < quota[i]) {
                s = static_cast<uint8_t>(i);
                ++count[i];
                next = i + 1;
                break;
            }
        }
    }
    group_view v;
    for (uint32_t b = 0; b < group_buckets; ++b)
        v.active[b] = bucket_slot_[b] == no_slot ? no_tunnel : members_[bucket_slot_[b]].cfg.tunnel;
    v.version = view_.version;
    if (v.active != view_.active)
        ++v.version;
    view_ = v;
}

} // namespace sagd::fwd
