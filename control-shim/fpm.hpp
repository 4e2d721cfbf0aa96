// Learned routes from FRR zebra over FPM (FRR doc/developer/fpm.rst, zebra/dplane_fpm_nl.c):
// a TCP stream of FPM messages, each a 4-byte header followed by netlink route messages
// (rtnetlink(7)). Three pieces, all control side, single thread, independent of DPDK:
//   fpm_framer         TCP byte chunks -> whole FPM messages (or a poisoned stream),
//   decode_fpm_message one FPM message -> validated route updates (or an error),
//   learned_routes     the learned route table the FIB installer reads (stale/sweep on resync).
// Every byte here comes from another process: nothing is trusted, nothing may crash.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataplane/result.hpp"
#include "forwarding/small_vector.hpp"
#include "forwarding/u64_map.hpp"

namespace sagd::shim {

// fpm.rst "FPM message format": version (1 byte), type (1 byte), total length (2 bytes,
// network order, header included). Version 1; type 1 = netlink, 2 = protobuf (not produced
// by dplane_fpm_nl, refused here).
inline constexpr size_t fpm_header_size = 4;
inline constexpr uint8_t fpm_protocol_version = 1;
inline constexpr uint8_t fpm_msg_type_netlink = 1;
inline constexpr size_t fpm_max_message_size = 65535; // the length field is 16 bits
inline constexpr uint16_t fpm_default_port = 2620;    // zebra connects to 127.0.0.1:2620
inline constexpr uint32_t rt_table_main = 254;        // RT_TABLE_MAIN

enum class ip_family : uint8_t { ipv4, ipv6 };
constexpr size_t address_size(ip_family f) noexcept {
    return f == ip_family::ipv4 ? 4 : 16;
}
constexpr uint8_t max_prefix_len(ip_family f) noexcept {
    return f == ip_family::ipv4 ? 32 : 128;
}

// Addresses are raw network-order bytes; IPv4 uses the first 4, the rest stay zero.
using ip_bytes = std::array<uint8_t, 16>;

struct fpm_next_hop {
    bool has_gateway = false; // false: directly connected through ifindex
    ip_bytes gateway{};
    uint32_t ifindex = 0; // RTA_OIF / rtnh_ifindex; 0 when not given
    uint16_t weight = 1;  // rtnh_hops + 1 (rtnetlink: hops is weight - 1); 1 for single path
    bool operator==(const fpm_next_hop&) const = default;
};

struct fpm_route_update {
    bool add = false; // RTM_NEWROUTE (add or replace) / RTM_DELROUTE
    ip_family family = ip_family::ipv4;
    ip_bytes prefix{}; // host bits zero (checked)
    uint8_t prefix_len = 0;
    uint32_t table = rt_table_main; // RTA_TABLE when present, else rtm_table
    uint8_t protocol = 0;           // rtm_protocol: FRR puts its RTPROT_* here (e.g. 196 static)
    uint8_t route_type = 1;         // rtm_type (RTN_UNICAST = 1)
    bool blackhole = false;         // RTN_BLACKHOLE / RTN_UNREACHABLE / RTN_PROHIBIT: drop
    uint32_t metric = 0;            // RTA_PRIORITY
    // RTA_NH_ID. With zebra's default "fpm use-next-hop-groups" a route names only this id and
    // its next hops travel as RTM_NEWNEXTHOP objects (not decoded: such routes come back as
    // unsupported); with "no fpm use-next-hop-groups" they are inline.
    uint32_t nhg_id = 0;
    // Empty for blackholes and (possibly) deletes; one (the usual case) is held inline.
    fwd::small_vector<fpm_next_hop, 1> next_hops;
    bool operator==(const fpm_route_update&) const = default;
};

// What one netlink message inside an FPM message turned out to be.
enum class fpm_item_kind : uint8_t {
    route,       // a route update for the accepted table
    other_table, // a valid route update for a table we do not take (route is filled in)
    unsupported, // valid netlink we do not handle (RTM_NEWNEXTHOP, RTM_NEWNEIGH, MPLS, ...)
};
const char* to_string(fpm_item_kind k) noexcept;

struct fpm_item {
    fpm_item_kind kind = fpm_item_kind::route;
    uint16_t nlmsg_type = 0;
    fpm_route_update route; // meaningful for route and other_table
    std::string note;       // why, for other_table and unsupported
};

struct fpm_decode_options {
    uint32_t table = rt_table_main; // the one kernel table whose routes we learn
};

// Decodes one whole FPM message (header included), e.g. from fpm_framer::next(). zebra may put
// several netlink messages in one FPM message (a route update is RTM_DELROUTE + RTM_NEWROUTE);
// the items come back in order. All or nothing: any invalid part makes the whole message an
// error naming the message index and field, and nothing of it should be applied.
fwd::result<std::vector<fpm_item>> decode_fpm_message(std::span<const uint8_t> message,
                                                      const fpm_decode_options& options = {});
// The same, appending to `items` (no vector per message on the server's hot path); on error
// `items` is left as it was.
fwd::status decode_fpm_message(std::span<const uint8_t> message, const fpm_decode_options& options,
                               std::vector<fpm_item>& items);

// Splits a TCP byte stream into FPM messages. Bytes arrive in any chunking (a message split
// across reads, several per read). The header is the only way to stay in sync, so a bad
// header (version, type, length below a header plus nlmsghdr (20) or above the maximum) poisons the
// stream: every later call returns the same error and the caller must drop the session (zebra
// reconnects and re-sends everything).
class fpm_framer {
  public:
    explicit fpm_framer(size_t max_message_size = fpm_max_message_size) noexcept
        : max_(max_message_size < fpm_header_size        ? fpm_header_size
               : max_message_size > fpm_max_message_size ? fpm_max_message_size
                                                         : max_message_size) {}

    // Appends bytes read from the socket. Invalidates spans returned by next().
    fwd::status feed(std::span<const uint8_t> bytes);
    // The next complete message (header included), or nullopt when more bytes are needed.
    // The span stays valid until the next feed() or reset().
    fwd::result<std::optional<std::span<const uint8_t>>> next();

    bool poisoned() const noexcept { return poisoned_.has_value(); }
    size_t buffered() const noexcept { return buf_.size() - head_; }
    size_t max_message_size() const noexcept { return max_; }
    void reset() noexcept; // new session

  private:
    size_t max_;
    std::vector<uint8_t> buf_;
    size_t head_ = 0; // start of the first unconsumed byte
    std::optional<std::string> poisoned_;
};

struct route_key {
    ip_family family = ip_family::ipv4;
    ip_bytes prefix{};
    uint8_t prefix_len = 0;
    auto operator<=>(const route_key&) const = default;
};

struct route_key_hash {
    size_t operator()(const route_key& k) const noexcept {
        uint64_t a, b;
        std::memcpy(&a, k.prefix.data(), 8);
        std::memcpy(&b, k.prefix.data() + 8, 8);
        uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) + (uint64_t{k.prefix_len} << 1) +
                     static_cast<uint64_t>(k.family);
        h ^= h >> 33; // murmur3 finaliser
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ull;
        return static_cast<size_t>(h ^ (h >> 33));
    }
};

route_key key_of(const fpm_route_update& u) noexcept;

struct learned_route {
    fpm_route_update route; // as last received (add == true)
    bool stale = false;     // not re-sent since the session was lost
};

struct learned_counters {
    uint64_t adds = 0;          // route updates applied (new or replacing)
    uint64_t deletes = 0;       // deletes that removed a route
    uint64_t delete_misses = 0; // deletes of a route we did not have
    uint64_t errors = 0;        // FPM messages refused by the decoder (nothing applied)
    uint64_t unsupported = 0;   // netlink messages skipped as unsupported
    uint64_t other_table = 0;   // route updates for tables we do not take
    uint64_t swept = 0;         // stale routes removed by sweep_stale()
    uint64_t session_losses = 0;
};

// The learned (FRR) routes, keyed by (family, prefix, length): zebra sends its selected route
// per prefix of the table, so one entry per key. Graceful resync: on session loss mark
// everything stale; zebra re-sends its whole table on reconnect, which un-stales what is still
// there; after the grace time the caller calls sweep_stale() for the rest.
class learned_routes {
  public:
    explicit learned_routes(fpm_decode_options options = {}) : options_(options) {}

    // Decodes and applies one FPM message; a decode error is counted and changes nothing.
    fwd::status apply_message(std::span<const uint8_t> message);
    // Applies items already decoded (counts other_table / unsupported, applies routes); the
    // routes are moved out of `items`.
    void apply(std::vector<fpm_item>& items);
    // Add replaces, delete removes (a delete's next hops are not compared).
    void apply(fpm_route_update&& update);
    void count_error() noexcept { ++counters_.errors; }

    // Room for n IPv4 routes without growing (the FIB's route limit).
    void reserve_ipv4(size_t n) { routes4_.reserve(n); }
    void session_lost();  // marks every route stale
    size_t sweep_stale(); // removes stale routes; returns how many
    size_t stale_count() const noexcept { return stale_; }

    const learned_route* find(const route_key& key) const;
    void prefetch(const route_key& key) const noexcept; // see fwd::u64_map::prefetch
    size_t size() const noexcept { return routes4_.size() + routes6_.size(); }
    size_t size(ip_family f) const noexcept { return by_family_[static_cast<size_t>(f)]; }
    // Bumped on every change of the table, so an installer can tell whether to re-read it.
    uint64_t generation() const noexcept { return generation_; }
    const learned_counters& counters() const noexcept { return counters_; }
    const fpm_decode_options& options() const noexcept { return options_; }

    // f(const route_key&, const learned_route&), in no particular order.
    template <typename F> void for_each(F&& f) const {
        routes4_.for_each([&](uint64_t, const learned_route& r) { f(key_of(r.route), r); });
        for (const auto& [key, route] : routes6_)
            f(key, route);
    }

  private:
    void add(learned_route& slot, bool fresh, ip_family family, fpm_route_update&& update);
    template <typename Erase> void remove(learned_route* r, ip_family family, Erase&& erase);

    fpm_decode_options options_;
    // Hashed: a full table is a million routes, and zebra sends them in no useful order.
    // IPv4 in a flat table keyed by prefix << 8 | length (one probe, no node per route).
    fwd::u64_map<learned_route> routes4_;
    std::unordered_map<route_key, learned_route, route_key_hash> routes6_;
    size_t by_family_[2] = {0, 0};
    size_t stale_ = 0;
    learned_counters counters_;
    uint64_t generation_ = 0;
};

// "10.1.0.0/16", "2001:db8::/32", and a one-line description of an update for logs/CLI:
// "add 10.1.0.0/16 table 254 proto 196 metric 20 via 192.0.2.1 dev 3 weight 1".
std::string format_prefix(ip_family f, const ip_bytes& prefix, uint8_t len);
std::string format_address(ip_family f, const ip_bytes& addr);
std::string format_update(const fpm_route_update& u);

} // namespace sagd::shim
