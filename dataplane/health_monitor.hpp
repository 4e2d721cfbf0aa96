// The control thread's view of tunnel health and group failover: it drives WAN link state into
// the tunnels' health (link down takes a port's tunnels out of service at once), and watches
// what the data plane decided (BFD transitions, active group members) to log every change with
// its cause and count it. It never decides a failover itself: workers switch the active member
// on their own (tables::select reads the health words), so a slow control thread cannot delay
// a failover.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataplane/tables.hpp"

namespace sagd::dp {

// A group's active members (bit i = members[i]) at now_ns, as workers pick them.
uint32_t group_active_mask(const tables& t, const group_runtime& g, uint64_t now_ns) noexcept;

struct group_status {
    uint32_t active_mask = 0;
    std::string active;     // names of the active members, comma-separated ("" = none up)
    uint64_t switches = 0;  // changes of the active set (failovers and failbacks)
    uint64_t failovers = 0; // ... of those, away from a member that went down
    uint64_t failbacks = 0; // ... to a recovered member after its hold-down
    uint64_t last_change_ns = 0;
    std::string last_cause;
};

struct health_totals {
    uint64_t tunnel_down = 0, tunnel_up = 0, group_switches = 0, link_changes = 0;
};

class health_monitor {
  public:
    // port_ifaces: per port index, the kernel interface behind a net_af_packet port ("" else):
    // af_packet keeps reporting link up whatever its interface does, so the kernel's carrier
    // is asked as well.
    explicit health_monitor(std::vector<std::string> port_ifaces);
    ~health_monitor();
    health_monitor(const health_monitor&) = delete;
    health_monitor& operator=(const health_monitor&) = delete;

    // Control thread, every pass (cheap when nothing changed).
    void poll(const tables& t, uint64_t now_ns);

    const group_status* group(const std::string& name) const {
        auto it = groups_.find(name);
        return it == groups_.end() ? nullptr : &it->second;
    }
    bool port_link(size_t port_index) const {
        return port_index < link_.size() ? link_[port_index] != 0 : true;
    }
    const health_totals& totals() const noexcept { return totals_; }

  private:
    void poll_links(const tables& t, uint64_t now_ns);
    void watch_tunnels(const tables& t, uint64_t now_ns);
    void watch_groups(const tables& t, uint64_t now_ns);
    bool kernel_carrier(size_t port_index);

    std::vector<std::string> ifaces_;
    int ioctl_fd_ = -1;
    std::vector<uint8_t> link_; // per port index: 1 up, 0 down
    uint64_t links_generation_ = UINT64_MAX;
    uint64_t next_link_ns_ = 0;
    uint64_t next_watch_ns_ = 0;
    struct seen_tunnel {
        const tunnel_health* health = nullptr;
        uint64_t transitions = 0;
    };
    std::unordered_map<uint32_t, seen_tunnel> tunnels_; // by tunnel id
    std::map<std::string, group_status> groups_;
    health_totals totals_;
};

} // namespace sagd::dp
