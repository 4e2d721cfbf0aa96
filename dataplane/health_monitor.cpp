#include "dataplane/health_monitor.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <rte_ethdev.h>

namespace sagd::dp {

namespace {

constexpr uint64_t link_poll_ns = 10'000'000; // 10 ms: "at once" next to 50 ms BFD timers
constexpr uint64_t watch_ns = 2'000'000;

std::string bfd_detail(const tunnel_health& h) {
    auto diag = static_cast<fwd::bfd_diag>(h.bfd.view_diag.load(std::memory_order_relaxed));
    return std::string(" (") + fwd::to_string(diag) + ")";
}

std::string cause_text(const tunnel_runtime& t) {
    const tunnel_health& h = *t.health;
    std::string c = to_string(h.last_cause());
    if (h.last_cause() == health_cause::bfd_down)
        c += bfd_detail(h);
    return c;
}

std::string sla_text(const tunnel_health& h) {
    uint8_t v = h.check.violations.load(std::memory_order_relaxed);
    std::string s;
    auto add = [&](uint8_t bit, const char* what) {
        if ((v & bit) != 0)
            s += std::string(s.empty() ? "" : ", ") + what;
    };
    add(fwd::sla_violation_loss, "loss");
    add(fwd::sla_violation_latency, "latency");
    add(fwd::sla_violation_jitter, "jitter");
    return s.empty() ? "brown-out" : s;
}

} // namespace

uint32_t group_active_mask(const tables& t, const group_runtime& g, uint64_t now_ns) noexcept {
    return t.active_members(g, now_ns);
}

health_monitor::health_monitor(std::vector<std::string> port_ifaces)
    : ifaces_(std::move(port_ifaces)), link_(ifaces_.size(), 1) {
    for (const auto& i : ifaces_)
        if (!i.empty()) {
            ioctl_fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            break;
        }
}

health_monitor::~health_monitor() {
    if (ioctl_fd_ >= 0)
        ::close(ioctl_fd_);
}

bool health_monitor::kernel_carrier(size_t port_index) {
    if (port_index >= ifaces_.size() || ifaces_[port_index].empty() || ioctl_fd_ < 0)
        return true;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifaces_[port_index].c_str(), IFNAMSIZ - 1);
    if (::ioctl(ioctl_fd_, SIOCGIFFLAGS, &ifr) != 0)
        return false; // the interface is gone
    return (ifr.ifr_flags & IFF_UP) != 0 && (ifr.ifr_flags & IFF_RUNNING) != 0;
}

void health_monitor::poll(const tables& t, uint64_t now_ns) {
    if (now_ns >= next_link_ns_ || t.generation != links_generation_)
        poll_links(t, now_ns);
    if (now_ns >= next_watch_ns_) {
        next_watch_ns_ = now_ns + watch_ns;
        watch_tunnels(t, now_ns);
        watch_groups(t, now_ns);
    }
}

void health_monitor::poll_links(const tables& t, uint64_t now_ns) {
    next_link_ns_ = now_ns + link_poll_ns;
    bool changed = t.generation != links_generation_;
    links_generation_ = t.generation;
    if (link_.size() < t.ports.size())
        link_.resize(t.ports.size(), 1);
    for (size_t i = 0; i < t.ports.size(); ++i) {
        const port_runtime& p = t.ports[i];
        if (p.role != port_role::wan)
            continue;
        rte_eth_link link{};
        bool up = rte_eth_link_get_nowait(p.port_id, &link) == 0 &&
                  link.link_status == RTE_ETH_LINK_UP && kernel_carrier(i);
        if (up != (link_[i] != 0)) {
            link_[i] = up ? 1 : 0;
            changed = true;
            ++totals_.link_changes;
            std::fprintf(stderr, "sagd: port '%s': link %s\n", p.name.c_str(), up ? "up" : "down");
        }
    }
    if (!changed)
        return;
    for (const auto& tp : t.tunnels) {
        if (!tp || !tp->health)
            continue;
        if (link_[tp->port_index] != 0)
            tp->health->set_up(health_link, health_cause::link_up, now_ns);
        else
            tp->health->set_down(health_link, health_cause::link_down, now_ns);
    }
}

void health_monitor::watch_tunnels(const tables& t, uint64_t) {
    for (const auto& tp : t.tunnels) {
        if (!tp || !tp->health)
            continue;
        const tunnel_health& h = *tp->health;
        uint64_t n = h.downs() + h.ups();
        auto [it, fresh] = tunnels_.try_emplace(tp->id, seen_tunnel{&h, n});
        if (!fresh && it->second.health != &h) { // the id now belongs to another tunnel
            it->second = {&h, n};
            fresh = true;
        }
        if (fresh || it->second.transitions == n)
            continue;
        uint64_t missed = n - it->second.transitions - 1;
        it->second.transitions = n;
        if (h.up())
            ++totals_.tunnel_up;
        else
            ++totals_.tunnel_down;
        std::fprintf(stderr, "sagd: tunnel '%s': %s (%s)%s\n", tp->name.c_str(),
                     h.up() ? "up" : "down", cause_text(*tp).c_str(),
                     missed != 0 ? (" after " + std::to_string(missed) + " more changes").c_str()
                                 : "");
    }
    // Forget tunnels that are gone.
    for (auto it = tunnels_.begin(); it != tunnels_.end();) {
        const tunnel_runtime* tr = t.tunnel(it->first);
        if (tr == nullptr || tr->health.get() != it->second.health)
            it = tunnels_.erase(it);
        else
            ++it;
    }
}

void health_monitor::watch_groups(const tables& t, uint64_t now_ns) {
    std::map<std::string, group_status> next;
    for (const auto& gp : t.groups) {
        if (!gp || gp->name == "ecmp")
            continue;
        const group_runtime& g = *gp;
        uint32_t mask = group_active_mask(t, g, now_ns);
        auto old = groups_.find(g.name);
        group_status st = old != groups_.end() ? old->second : group_status{};
        auto names = [&](uint32_t m) {
            std::string s;
            for (size_t i = 0; i < g.members.size(); ++i) {
                if ((m & (1u << i)) == 0)
                    continue;
                const tunnel_runtime* tr = t.tunnel(g.members[i].hop.tunnel);
                if (!s.empty())
                    s += ",";
                s += tr != nullptr ? tr->name : "?";
            }
            return s;
        };
        if (old == groups_.end()) {
            st.active_mask = mask;
            st.active = names(mask);
            st.last_change_ns = now_ns;
            st.last_cause = "created";
        } else if (mask != st.active_mask || names(mask) != st.active) {
            // Why: an active member that left because it went down, else a member that joined
            // (hold-down over, first up), else a configuration change.
            std::string cause = "configuration change";
            bool failover = false, failback = false;
            for (size_t i = 0; i < g.members.size(); ++i) {
                if ((st.active_mask & (1u << i)) == 0 || (mask & (1u << i)) != 0)
                    continue;
                const tunnel_runtime* tr = t.tunnel(g.members[i].hop.tunnel);
                if (tr != nullptr && tr->health && !tr->health->up()) {
                    cause = "tunnel '" + tr->name + "' " + cause_text(*tr);
                    failover = true;
                    break;
                }
                if (tr != nullptr && tr->health && tr->health->browned_out()) {
                    cause = "tunnel '" + tr->name + "' below its SLA class (" +
                            sla_text(*tr->health) + ")";
                    failover = true;
                    break;
                }
            }
            if (!failover)
                for (size_t i = 0; i < g.members.size(); ++i) {
                    if ((mask & (1u << i)) == 0 || (st.active_mask & (1u << i)) != 0)
                        continue;
                    const tunnel_runtime* tr = t.tunnel(g.members[i].hop.tunnel);
                    if (tr == nullptr || !tr->health)
                        continue;
                    if (st.last_cause.find("'" + tr->name + "' below its SLA class") !=
                            std::string::npos &&
                        !tr->health->browned_out()) {
                        cause = "tunnel '" + tr->name + "' meets its SLA class again";
                        failback = true;
                    } else if (tr->health->up_since_ns() != 0 &&
                               tr->health->matured(now_ns, g.hold_down_ns)) {
                        cause = "tunnel '" + tr->name + "' up for the hold-down (" +
                                std::to_string(g.hold_down_ns / 1'000'000) + " ms)";
                        failback = true;
                    } else {
                        cause = "tunnel '" + tr->name + "' " + cause_text(*tr);
                    }
                    break;
                }
            std::string before = st.active.empty() ? "none" : st.active;
            st.active_mask = mask;
            st.active = names(mask);
            ++st.switches;
            st.failovers += failover;
            st.failbacks += failback;
            st.last_change_ns = now_ns;
            st.last_cause = cause;
            ++totals_.group_switches;
            std::fprintf(stderr, "sagd: group '%s': active %s -> %s (%s)\n", g.name.c_str(),
                         before.c_str(), st.active.empty() ? "none" : st.active.c_str(),
                         cause.c_str());
        }
        next.emplace(g.name, std::move(st));
    }
    groups_ = std::move(next);
}

} // namespace sagd::dp
