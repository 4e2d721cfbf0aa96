// The control side of the tables: the running config, the FIB (double-buffered), next hops,
// tunnel objects and their SAs. It turns a change_set into a new tables snapshot, all or
// nothing: every change of a request is validated and built before anything is visible, and a
// failure undoes what was built (the FIB's shadow copy is rolled back; readers never saw it).
// One thread at a time (the gateway's control thread); never used by workers.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "dataplane/change.hpp"
#include "dataplane/config.hpp"
#include "dataplane/result.hpp"
#include "dataplane/tables.hpp"
#include "forwarding/fib4.hpp"
#include "forwarding/fib6.hpp"
#include "forwarding/next_hop.hpp"

namespace sagd::dp {

// Table limits, fixed at start (they size the FIB copies).
struct table_limits {
    uint32_t ipv4_routes = 65536;
    uint32_t ipv6_routes = 16384;
    uint32_t tunnels = 4096;
};

// Counters of SAs that were retired (rekey, replace), kept per tunnel name so the tunnel's
// figures stay monotonic.
struct retired_sa_counters {
    uint64_t tx_packets = 0, tx_bytes = 0, encrypt_errors = 0, seq_exhausted = 0;
    uint64_t rx_packets = 0, rx_bytes = 0, decrypt_errors = 0, icv_fail = 0, replay = 0,
             bad_padding = 0, bad_next_header = 0, malformed = 0;
};

class table_writer {
  public:
    // Validates `cfg` against the started ports and builds the first snapshot.
    static result<std::unique_ptr<table_writer>> create(const config& cfg,
                                                        std::vector<port_runtime> ports,
                                                        crypto::engine_kind engine,
                                                        const table_limits& limits = {});
    ~table_writer();

    // Builds the snapshot that `changes` lead to. On success the FIB's shadow copy holds the
    // new routes and the returned snapshot points at it; the caller publishes it and then calls
    // commit(). On failure everything is as before.
    struct prepared {
        std::unique_ptr<tables> snapshot;
    };
    std::variant<prepared, change_failure> prepare(const change_set& changes);
    // After prepare() succeeded: makes the FIB copy the snapshot names the active one. Returns
    // nothing to wait for; the caller must wait for a grace period before finish().
    void publish_fib(tables& snapshot) noexcept;
    // After the grace period: brings the other FIB copy up to date, frees parked next-hop ids
    // and tunnel ids, and folds the counters of SAs no snapshot references any more.
    void finish(const tables& retired);
    // After prepare() succeeded but the caller decided not to publish.
    void abandon();

    // The running config, static routes included (for GET /v1/config and persistence).
    config running() const;
    // f(const route_config&) for every static route, in address order.
    template <typename F> void for_each_static(F&& f) const {
        static_routes_.for_each_sorted(
            [](uint64_t, const route_entry&) { return true; },
            [&](uint64_t key, const route_entry& e) { f(config_of(key, e)); });
    }
    template <typename F> void for_each_static6(F&& f) const {
        for (const auto& [key, e] : static_routes6_)
            f(e.config);
    }
    const config& running_without_routes() const noexcept { return running_; }
    const fwd::fib6& fib6() const noexcept { return *fib6_; }
    const fwd::next_hop6_table& next_hops6() const noexcept { return *next_hops6_; }
    size_t learned6_count() const noexcept { return learned6_.size(); }
    size_t static_route6_count() const noexcept { return static_routes6_.size(); }
    const std::map<fwd::prefix6_key, learned_route6>& learned6() const noexcept {
        return learned6_;
    }
    const fwd::fib4& fib() const noexcept { return *fib_; }
    const fwd::next_hop_table& next_hops() const noexcept { return *next_hops_; }
    const table_limits& limits() const noexcept { return limits_; }
    size_t learned_count() const noexcept { return learned_.size(); }
    size_t static_route_count() const noexcept { return static_routes_.size(); }
    // The learned route of exactly this prefix, if any.
    const learned_route4* find_learned(const ipv4_prefix& p) const {
        const auto* e = learned_.find((uint64_t{p.addr} << 8) | p.len);
        return e == nullptr ? nullptr : &e->route;
    }
    void prefetch_learned(const ipv4_prefix& p) const noexcept {
        learned_.prefetch((uint64_t{p.addr} << 8) | p.len);
    }
    // f(const learned_route4&) for every learned route, in no particular order.
    template <typename F> void for_each_learned(F&& f) const {
        learned_.for_each([&](uint64_t, const learned_entry& e) { f(e.route); });
    }
    // Counters of retired SAs by tunnel name.
    const retired_sa_counters* retired(const std::string& tunnel) const;
    const tables& current() const noexcept { return *current_; }
    // The first snapshot (built by create()), for the gateway to publish.
    std::unique_ptr<tables> take_initial() noexcept;
    // The gateway hands the published snapshot back here (the writer keeps the last one to
    // copy the next from).
    void set_current(const tables* t) noexcept { current_ = t; }

  private:
    table_writer() = default;

    std::optional<change_failure> stage_routes(const change_set& cs,
                                               const std::vector<port_runtime>& old_ports,
                                               const std::vector<port_runtime>& ports,
                                               const std::map<std::string, uint32_t>& ids);
    // IPv6: connected prefixes at create(), static and learned routes per change (after the
    // IPv4 routes, in the same change; a failure rolls both back).
    status create_ipv6(const std::vector<port_runtime>& ports);
    std::optional<change_failure> stage_routes6(const change_set& cs,
                                                const std::vector<port_runtime>& ports,
                                                const std::map<std::string, uint32_t>& ids);
    result<uint32_t> acquire6(const fwd::next_hop6& nh);
    void rollback6();
    std::optional<change_failure> fail(change_error code, std::string message);
    result<uint32_t> acquire(const fwd::next_hop& nh);
    void rollback();

    config running_; // without routes (static_routes_ holds them)
    crypto::engine_kind engine_ = crypto::engine_kind::ipsec_mb;
    table_limits limits_;
    std::unique_ptr<fwd::fib4> fib_;
    std::unique_ptr<fwd::next_hop_table> next_hops_;
    const tables* current_ = nullptr;
    std::unique_ptr<tables> initial_;
    std::map<std::string, uint32_t> tunnel_ids_; // name -> id
    std::deque<uint32_t> free_ids_;              // FIFO: an id is reused as late as possible
    uint32_t next_fresh_id_ = 0;
    // A static route, compact (a table may hold a million): the tunnel or group name is an
    // index into names_.
    struct route_entry {
        uint32_t next_hop_id = 0;
        ipv4_addr gateway = 0; // via == lan_gateway
        uint32_t name = 0;     // via == tunnel or group: names_[name]
        route_via via = route_via::tunnel;
        uint8_t distance = 1;
    };
    route_entry entry_of(const route_config& r, uint32_t next_hop_id);
    route_config config_of(uint64_t key, const route_entry& e) const;
    // Keys are prefix << 8 | len.
    fwd::u64_map<route_entry> static_routes_;
    std::vector<std::string> names_{""};                   // tunnel and group names, interned
    std::unordered_map<std::string, uint32_t> name_index_; // name -> index in names_
    std::map<uint64_t, uint32_t> connected_; // connected subnets and local /32s -> next hop id
    // Learned routes (up to millions, from FPM): hashed, the next hop id held inline.
    struct learned_entry {
        learned_route4 route;
        uint32_t next_hop_id = 0;
    };
    fwd::u64_map<learned_entry> learned_;
    std::vector<uint32_t> static_refs_; // by tunnel id: static routes through the tunnel
    std::map<std::string, retired_sa_counters> retired_;
    // IPv6: own FIB and next-hop id space; static routes by prefix (one per prefix, like
    // IPv4), learned routes and their next-hop ids.
    std::unique_ptr<fwd::fib6> fib6_;
    std::unique_ptr<fwd::next_hop6_table> next_hops6_;
    struct route6_entry {
        route6_config config;
        uint32_t next_hop_id = 0;
    };
    std::map<fwd::prefix6_key, route6_entry> static_routes6_;
    std::map<fwd::prefix6_key, learned_route6> learned6_;
    std::map<fwd::prefix6_key, uint32_t> learned6_nh_;
    struct pending6 {
        std::vector<uint32_t> acquired;
        std::vector<uint32_t> to_release;
        // Typed journals: prefix and the entry before the change (none: absent), newest last.
        std::vector<std::pair<fwd::prefix6_key, std::optional<route6_entry>>> route_undo;
        std::vector<std::pair<fwd::prefix6_key, std::optional<std::pair<learned_route6, uint32_t>>>>
            learned_undo;
    } pending6_;
    // Groups: configured tunnel groups and the equal-cost groups learned routes need, one id
    // space. An id is reused oldest-freed first, after a grace period (like tunnel ids).
    struct group_ids {
        std::map<std::string, uint32_t> by_name; // configured groups
        struct ecmp_group {
            uint32_t id;
            uint32_t refs;
        };
        std::map<std::vector<ipv4_addr>, ecmp_group> ecmp; // sorted LAN gateways -> group
        std::deque<uint32_t> free;
        uint32_t next_fresh = 0;
    } groups_;
    static constexpr uint32_t max_groups = 65536;
    std::optional<uint32_t> take_group_id(group_ids& g);
    // The change between prepare() and finish()/abandon().
    struct pending {
        bool active = false;
        config next;
        std::map<std::string, uint32_t> ids;
        std::vector<uint32_t> acquired;          // next-hop references taken (undo: release)
        std::vector<uint32_t> to_release;        // references to drop once readers moved on
        std::vector<uint32_t> freed_ids;         // tunnel ids of deleted tunnels
        std::vector<std::function<void()>> undo; // control-side maps, newest last
        // Static routes (the bulk of big changes) get a typed journal: prefix key and the
        // entry before the change (none: absent), newest last.
        std::vector<std::pair<uint64_t, std::optional<route_entry>>> route_undo;
        // The same for learned routes.
        std::vector<std::pair<uint64_t, std::optional<learned_entry>>> learned_undo;
        std::vector<uint32_t> static_refs; // static_refs_ before the change
        std::vector<std::string> deleted_names;
        std::vector<uint32_t> freed_group_ids;
    } pending_;
};

} // namespace sagd::dp
