// FPM framing and netlink route decoding (see fpm.hpp). Layouts come from the kernel UAPI
// headers; every read goes through read_pod() after a bounds check, so no field is read from
// outside the caller's buffer and no misaligned pointer is formed.
#include "control-shim/fpm.hpp"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace sagd::shim {

namespace {

using fwd::error;
using fwd::result;
using fwd::status;

template <typename T> T read_pod(std::span<const uint8_t> bytes, size_t offset) noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    T v{};
    std::memcpy(&v, bytes.data() + offset, sizeof(T)); // callers checked offset + sizeof(T)
    return v;
}

constexpr size_t nl_align(size_t n) noexcept {
    return NLMSG_ALIGN(n);
}
constexpr size_t rta_align(size_t n) noexcept {
    return RTA_ALIGN(n);
}
constexpr size_t rtnh_align(size_t n) noexcept {
    return RTNH_ALIGN(n);
}

const char* nlmsg_type_name(uint16_t t) noexcept {
    switch (t) {
    case RTM_NEWROUTE:
        return "RTM_NEWROUTE";
    case RTM_DELROUTE:
        return "RTM_DELROUTE";
    case RTM_NEWNEXTHOP:
        return "RTM_NEWNEXTHOP";
    case RTM_DELNEXTHOP:
        return "RTM_DELNEXTHOP";
    case RTM_NEWNEIGH:
        return "RTM_NEWNEIGH";
    case RTM_DELNEIGH:
        return "RTM_DELNEIGH";
    case RTM_NEWLINK:
        return "RTM_NEWLINK";
    case RTM_DELLINK:
        return "RTM_DELLINK";
    case RTM_NEWADDR:
        return "RTM_NEWADDR";
    case RTM_DELADDR:
        return "RTM_DELADDR";
    case RTM_NEWRULE:
        return "RTM_NEWRULE";
    case RTM_DELRULE:
        return "RTM_DELRULE";
    default:
        return "rtnetlink message";
    }
}

const char* rta_name(uint16_t t) noexcept {
    switch (t) {
    case RTA_DST:
        return "RTA_DST";
    case RTA_GATEWAY:
        return "RTA_GATEWAY";
    case RTA_OIF:
        return "RTA_OIF";
    case RTA_PRIORITY:
        return "RTA_PRIORITY";
    case RTA_TABLE:
        return "RTA_TABLE";
    case RTA_MULTIPATH:
        return "RTA_MULTIPATH";
    case RTA_NH_ID:
        return "RTA_NH_ID";
    case RTA_VIA:
        return "RTA_VIA";
    default:
        return "attribute";
    }
}

const char* family_name(ip_family f) noexcept {
    return f == ip_family::ipv4 ? "AF_INET" : "AF_INET6";
}

// Where in an FPM message: netlink message `index` (0-based) and, inside RTA_MULTIPATH, next
// hop `hop`. Formatted only when a message is made (errors and notes): decoding a million
// routes must not build a million strings.
struct where {
    size_t index;
    uint16_t type;
    long hop = -1;
    std::string str() const {
        std::string s =
            "FPM netlink message " + std::to_string(index) + " (" + nlmsg_type_name(type) + ")";
        if (hop >= 0)
            s += ": RTA_MULTIPATH next hop " + std::to_string(hop);
        return s;
    }
};
std::string operator+(const where& w, const char* tail) {
    return w.str() + tail;
}

// One attribute: type (nested/byte-order flags stripped) and its payload.
struct attr {
    uint16_t type;
    std::span<const uint8_t> payload;
};

// Walks a run of rtattrs (rtnetlink(7)); stops with an error on any length that does not fit.
// The last attribute's alignment padding may be absent (RTA_OK tolerates that too).
template <typename F>
status walk_attrs(std::span<const uint8_t> bytes, const where& ctx, F&& on_attr) {
    size_t off = 0;
    while (off < bytes.size()) {
        const size_t left = bytes.size() - off;
        if (left < sizeof(rtattr))
            return error(ctx + ": " + std::to_string(left) +
                         " trailing bytes, too short for an rtattr header (4)");
        const auto a = read_pod<rtattr>(bytes, off);
        const uint16_t type = a.rta_type & NLA_TYPE_MASK;
        if (a.rta_len < sizeof(rtattr))
            return error(ctx + ": " + rta_name(type) + " (type " + std::to_string(type) +
                         ") rta_len " + std::to_string(a.rta_len) + " is below 4");
        if (a.rta_len > left)
            return error(ctx + ": " + rta_name(type) + " (type " + std::to_string(type) +
                         ") rta_len " + std::to_string(a.rta_len) + " overruns the message (" +
                         std::to_string(left) + " bytes left)");
        if (auto s =
                on_attr(attr{type, bytes.subspan(off + RTA_LENGTH(0), a.rta_len - RTA_LENGTH(0))});
            !s)
            return s;
        off += std::min(rta_align(a.rta_len), left);
    }
    return fwd::ok();
}

status read_address(const attr& a, ip_family f, ip_bytes& out, const where& ctx) {
    if (a.payload.size() != address_size(f))
        return error(ctx + ": " + rta_name(a.type) + " is " + std::to_string(a.payload.size()) +
                     " bytes, expected " + std::to_string(address_size(f)) + " for " +
                     family_name(f));
    out = {};
    std::memcpy(out.data(), a.payload.data(), a.payload.size());
    return fwd::ok();
}

status read_u32(const attr& a, uint32_t& out, const where& ctx) {
    if (a.payload.size() != sizeof(uint32_t))
        return error(ctx + ": " + rta_name(a.type) + " is " + std::to_string(a.payload.size()) +
                     " bytes, expected 4");
    out = read_pod<uint32_t>(a.payload, 0);
    return fwd::ok();
}

bool host_bits_clear(const ip_bytes& p, uint8_t len) noexcept {
    for (size_t bit = len; bit < 128; ++bit)
        if (p[bit / 8] & (0x80u >> (bit % 8)))
            return false;
    return true;
}

// RTA_MULTIPATH: a list of struct rtnexthop, each followed by its own rtattrs (RTA_GATEWAY).
status read_multipath(std::span<const uint8_t> bytes, ip_family f, std::vector<fpm_next_hop>& out,
                      bool& via, const where& ctx) {
    size_t off = 0;
    size_t n = 0;
    while (off < bytes.size()) {
        const size_t left = bytes.size() - off;
        const where hop_ctx{ctx.index, ctx.type, static_cast<long>(n)};
        if (left < sizeof(rtnexthop))
            return error(hop_ctx + ": " + std::to_string(left) +
                         " bytes left, too short for struct rtnexthop (8)");
        const auto h = read_pod<rtnexthop>(bytes, off);
        if (h.rtnh_len < sizeof(rtnexthop))
            return error(hop_ctx + ": rtnh_len " + std::to_string(h.rtnh_len) + " is below 8");
        if (h.rtnh_len > left)
            return error(hop_ctx + ": rtnh_len " + std::to_string(h.rtnh_len) +
                         " overruns RTA_MULTIPATH (" + std::to_string(left) + " bytes left)");
        if (h.rtnh_ifindex < 0)
            return error(hop_ctx + ": rtnh_ifindex " + std::to_string(h.rtnh_ifindex) +
                         " is negative");
        fpm_next_hop hop;
        hop.ifindex = static_cast<uint32_t>(h.rtnh_ifindex);
        hop.weight = static_cast<uint16_t>(h.rtnh_hops + 1); // rtnetlink: rtnh_hops = weight - 1
        bool have_gw = false;
        auto s = walk_attrs(bytes.subspan(off + sizeof(rtnexthop), h.rtnh_len - sizeof(rtnexthop)),
                            hop_ctx, [&](const attr& a) -> status {
                                if (a.type == RTA_GATEWAY) {
                                    if (have_gw)
                                        return error(hop_ctx + ": duplicate RTA_GATEWAY");
                                    have_gw = true;
                                    hop.has_gateway = true;
                                    return read_address(a, f, hop.gateway, hop_ctx);
                                }
                                if (a.type == RTA_VIA)
                                    via = true;
                                return fwd::ok(); // RTA_ENCAP, RTA_FLOW, ...: not ours
                            });
        if (!s)
            return s;
        out.push_back(hop);
        off += std::min(rtnh_align(h.rtnh_len), left);
        ++n;
    }
    if (n == 0)
        return error(ctx + ": RTA_MULTIPATH holds no next hop");
    return fwd::ok();
}

bool is_drop_type(uint8_t t) noexcept {
    return t == RTN_BLACKHOLE || t == RTN_UNREACHABLE || t == RTN_PROHIBIT;
}

// One RTM_NEWROUTE / RTM_DELROUTE (rtnetlink(7): nlmsghdr, rtmsg, rtattrs).
result<fpm_item> decode_route(std::span<const uint8_t> msg, uint16_t type, size_t index,
                              const fpm_decode_options& options) {
    const where ctx{index, type};
    fpm_item item;
    item.nlmsg_type = type;
    const size_t rtm_off = NLMSG_HDRLEN;
    if (msg.size() < rtm_off + sizeof(rtmsg))
        return error(ctx + ": nlmsg_len " + std::to_string(msg.size()) +
                     " is too short for struct rtmsg (needs " +
                     std::to_string(rtm_off + sizeof(rtmsg)) + ")");
    const auto rtm = read_pod<rtmsg>(msg, rtm_off);

    ip_family f;
    if (rtm.rtm_family == AF_INET) {
        f = ip_family::ipv4;
    } else if (rtm.rtm_family == AF_INET6) {
        f = ip_family::ipv6;
    } else if (rtm.rtm_family == AF_MPLS || rtm.rtm_family == RTNL_FAMILY_IPMR ||
               rtm.rtm_family == RTNL_FAMILY_IP6MR) {
        item.kind = fpm_item_kind::unsupported;
        item.note = ctx + ": rtm_family " + std::to_string(rtm.rtm_family) +
                    " (MPLS / multicast) is not supported";
        return item;
    } else {
        return error(ctx + ": rtm_family " + std::to_string(rtm.rtm_family) +
                     " is not AF_INET or AF_INET6");
    }

    fpm_route_update& u = item.route;
    u.add = type == RTM_NEWROUTE;
    u.family = f;
    u.prefix_len = rtm.rtm_dst_len;
    u.table = rtm.rtm_table;
    u.protocol = rtm.rtm_protocol;
    u.route_type = rtm.rtm_type;
    u.blackhole = is_drop_type(rtm.rtm_type);
    if (rtm.rtm_dst_len > max_prefix_len(f))
        return error(ctx + ": rtm_dst_len " + std::to_string(rtm.rtm_dst_len) + " exceeds " +
                     std::to_string(max_prefix_len(f)) + " for " + family_name(f));

    bool have_dst = false, have_gw = false, have_oif = false, have_mp = false;
    bool have_prio = false, have_table = false, have_nh_id = false, via = false;
    fpm_next_hop single;
    std::vector<fpm_next_hop> multi;
    auto dup = [&](const attr& a) { return error(ctx + ": duplicate " + rta_name(a.type)); };
    const size_t attrs_off = NLMSG_SPACE(sizeof(rtmsg));
    const auto attrs = msg.subspan(std::min(attrs_off, msg.size()));
    auto s = walk_attrs(attrs, ctx, [&](const attr& a) -> status {
        switch (a.type) {
        case RTA_DST:
            if (have_dst)
                return dup(a);
            have_dst = true;
            return read_address(a, f, u.prefix, ctx);
        case RTA_GATEWAY:
            if (have_gw)
                return dup(a);
            have_gw = true;
            single.has_gateway = true;
            return read_address(a, f, single.gateway, ctx);
        case RTA_OIF:
            if (have_oif)
                return dup(a);
            have_oif = true;
            return read_u32(a, single.ifindex, ctx);
        case RTA_PRIORITY:
            if (have_prio)
                return dup(a);
            have_prio = true;
            return read_u32(a, u.metric, ctx);
        case RTA_TABLE: // tables >= 256 do not fit rtm_table (rtnetlink(7))
            if (have_table)
                return dup(a);
            have_table = true;
            return read_u32(a, u.table, ctx);
        case RTA_NH_ID:
            if (have_nh_id)
                return dup(a);
            have_nh_id = true;
            return read_u32(a, u.nhg_id, ctx);
        case RTA_MULTIPATH:
            if (have_mp)
                return dup(a);
            have_mp = true;
            return read_multipath(a.payload, f, multi, via, ctx);
        case RTA_VIA: // RFC 5549 IPv4 over IPv6 next hop: struct rtvia, not decoded here
            via = true;
            return fwd::ok();
        default: // RTA_ENCAP, RTA_ENCAP_TYPE, RTA_PREFSRC, RTA_METRICS, ...: skip
            return fwd::ok();
        }
    });
    if (!s)
        return s.err();

    if (!have_dst && u.prefix_len != 0)
        return error(ctx + ": RTA_DST missing for a /" + std::to_string(u.prefix_len) + " route");
    if (!host_bits_clear(u.prefix, u.prefix_len))
        return error(ctx + ": RTA_DST " + format_prefix(f, u.prefix, u.prefix_len) +
                     " has host bits set");
    if (have_mp && (have_gw || have_oif))
        return error(ctx + ": both RTA_MULTIPATH and RTA_GATEWAY/RTA_OIF given");
    if (have_mp)
        u.next_hops = std::move(multi);
    else if (have_gw || have_oif)
        u.next_hops.push_back(single);

    auto what = [&] { return format_prefix(f, u.prefix, u.prefix_len); };
    // Checked before the table filter so that what the decoder hands out, whatever the table,
    // keeps its promises (found by fpm_fuzz).
    if (u.add && u.blackhole && !u.next_hops.empty())
        return error(ctx + ": " + what() + " is rtm_type " + std::to_string(u.route_type) +
                     " (blackhole) but carries next hops");
    if (u.table != options.table) {
        item.kind = fpm_item_kind::other_table;
        item.note = ctx + ": " + what() + " is in table " + std::to_string(u.table) +
                    ", only table " + std::to_string(options.table) + " is learned";
        return item;
    }
    if (rtm.rtm_src_len != 0) {
        item.kind = fpm_item_kind::unsupported;
        item.note = ctx + ": " + what() + " is source-specific (rtm_src_len " +
                    std::to_string(rtm.rtm_src_len) + "), not supported";
        return item;
    }
    // A delete is by key; zebra sends it with rtm_type RTN_UNSPEC and maybe no next hops.
    if (!u.add || u.blackhole)
        return item;
    if (u.route_type != RTN_UNICAST) {
        item.kind = fpm_item_kind::unsupported;
        item.note = ctx + ": " + what() + " has rtm_type " + std::to_string(u.route_type) +
                    ", only RTN_UNICAST and blackhole routes are installed";
        return item;
    }
    if (via) {
        item.kind = fpm_item_kind::unsupported;
        item.note =
            ctx + ": " + what() + " uses RTA_VIA (next hop of another family), not supported";
        return item;
    }
    if (u.next_hops.empty()) {
        if (u.nhg_id != 0) {
            // zebra's default "fpm use-next-hop-groups" sends the next hops as separate
            // RTM_NEWNEXTHOP objects and only their id here.
            item.kind = fpm_item_kind::unsupported;
            item.note = ctx + ": " + what() + " names next-hop group " + std::to_string(u.nhg_id) +
                        " only (RTA_NH_ID); configure zebra with 'no fpm use-next-hop-groups'";
            return item;
        }
        return error(ctx + ": " + what() +
                     " is RTN_UNICAST without a next hop (no RTA_GATEWAY, RTA_OIF or "
                     "RTA_MULTIPATH)");
    }
    return item;
}

} // namespace

const char* to_string(fpm_item_kind k) noexcept {
    switch (k) {
    case fpm_item_kind::route:
        return "route";
    case fpm_item_kind::other_table:
        return "other-table";
    case fpm_item_kind::unsupported:
        return "unsupported";
    }
    return "?";
}

namespace {

status decode_fpm_message_into(std::span<const uint8_t> message, const fpm_decode_options& options,
                               std::vector<fpm_item>& items) {
    if (message.size() < fpm_header_size)
        return error("FPM header: " + std::to_string(message.size()) +
                     " bytes, too short for the 4-byte header");
    if (message[0] != fpm_protocol_version)
        return error("FPM header: version " + std::to_string(message[0]) + ", expected 1");
    if (message[1] != fpm_msg_type_netlink)
        return error("FPM header: message type " + std::to_string(message[1]) +
                     ", expected 1 (netlink)");
    const size_t fpm_len = (size_t{message[2]} << 8) | message[3]; // network byte order
    if (fpm_len != message.size())
        return error("FPM header: length " + std::to_string(fpm_len) + " but the message is " +
                     std::to_string(message.size()) + " bytes");
    const auto payload = message.subspan(fpm_header_size);
    if (payload.empty())
        return error("FPM message carries no netlink message");

    size_t off = 0;
    for (size_t index = 0; off < payload.size(); ++index) {
        const size_t left = payload.size() - off;
        if (left < sizeof(nlmsghdr))
            return error("FPM netlink message " + std::to_string(index) + ": " +
                         std::to_string(left) +
                         " trailing bytes, too short for struct nlmsghdr (16)");
        const auto nh = read_pod<nlmsghdr>(payload, off);
        const where ctx{index, nh.nlmsg_type};
        if (nh.nlmsg_len < sizeof(nlmsghdr))
            return error(ctx + ": nlmsg_len " + std::to_string(nh.nlmsg_len) + " is below 16");
        if (nh.nlmsg_len > left)
            return error(ctx + ": nlmsg_len " + std::to_string(nh.nlmsg_len) +
                         " overruns the FPM message (" + std::to_string(left) + " bytes left)");
        const auto msg = payload.subspan(off, nh.nlmsg_len);
        if (nh.nlmsg_type == RTM_NEWROUTE || nh.nlmsg_type == RTM_DELROUTE) {
            auto item = decode_route(msg, nh.nlmsg_type, index, options);
            if (!item)
                return item.err();
            items.push_back(std::move(item.value()));
        } else if (nh.nlmsg_type >= RTM_BASE && nh.nlmsg_type <= RTM_MAX) {
            // zebra also sends next-hop objects, EVPN MACs/neighbours, ... over FPM.
            fpm_item item;
            item.kind = fpm_item_kind::unsupported;
            item.nlmsg_type = nh.nlmsg_type;
            item.note = ctx + ": netlink type " + std::to_string(nh.nlmsg_type) + " not supported";
            items.push_back(std::move(item));
        } else {
            return error(ctx + ": nlmsg_type " + std::to_string(nh.nlmsg_type) +
                         " is not an rtnetlink message");
        }
        off += std::min(nl_align(nh.nlmsg_len), left);
    }
    return ok();
}

} // namespace

result<std::vector<fpm_item>> decode_fpm_message(std::span<const uint8_t> message,
                                                 const fpm_decode_options& options) {
    std::vector<fpm_item> items;
    if (auto st = decode_fpm_message(message, options, items); !st)
        return st.err();
    return items;
}

status decode_fpm_message(std::span<const uint8_t> message, const fpm_decode_options& options,
                          std::vector<fpm_item>& items) {
    const size_t had = items.size();
    auto st = decode_fpm_message_into(message, options, items);
    if (!st)
        items.resize(had); // all or nothing
    return st;
}

// ---- framer

status fpm_framer::feed(std::span<const uint8_t> bytes) {
    if (poisoned_)
        return error(*poisoned_);
    if (head_ > 0) { // drop consumed bytes before growing, so the buffer stays bounded
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
    }
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    return fwd::ok();
}

result<std::optional<std::span<const uint8_t>>> fpm_framer::next() {
    if (poisoned_)
        return error(*poisoned_);
    const std::span<const uint8_t> avail(buf_.data() + head_, buf_.size() - head_);
    // Check the header bytes as soon as they arrive: garbage should end the session early
    // rather than wait for up to 64 KiB that will never make sense.
    if (!avail.empty() && avail[0] != fpm_protocol_version)
        poisoned_ = "FPM stream: header version " + std::to_string(avail[0]) +
                    ", expected 1; stream out of sync";
    else if (avail.size() >= 2 && avail[1] != fpm_msg_type_netlink)
        poisoned_ = "FPM stream: header message type " + std::to_string(avail[1]) +
                    ", expected 1 (netlink); stream out of sync";
    if (poisoned_)
        return error(*poisoned_);
    if (avail.size() < fpm_header_size)
        return std::optional<std::span<const uint8_t>>{};
    const size_t len = (size_t{avail[2]} << 8) | avail[3];
    if (len < fpm_header_size + sizeof(nlmsghdr) || len > max_) {
        poisoned_ = "FPM stream: header length " + std::to_string(len) + " outside " +
                    std::to_string(fpm_header_size + sizeof(nlmsghdr)) + ".." +
                    std::to_string(max_) + "; stream out of sync";
        return error(*poisoned_);
    }
    if (avail.size() < len)
        return std::optional<std::span<const uint8_t>>{};
    head_ += len;
    return std::optional<std::span<const uint8_t>>{avail.first(len)};
}

void fpm_framer::reset() noexcept {
    buf_.clear();
    head_ = 0;
    poisoned_.reset();
}

// ---- learned routes

route_key key_of(const fpm_route_update& u) noexcept {
    return route_key{u.family, u.prefix, u.prefix_len};
}

status learned_routes::apply_message(std::span<const uint8_t> message) {
    auto items = decode_fpm_message(message, options_);
    if (!items) {
        ++counters_.errors;
        return items.err();
    }
    apply(items.value());
    return fwd::ok();
}

void learned_routes::apply(std::vector<fpm_item>& items) {
    for (size_t i = 0; i < items.size(); ++i) {
        if (i + 8 < items.size() && items[i + 8].kind == fpm_item_kind::route)
            prefetch(key_of(items[i + 8].route)); // overlap the table's cache misses
        auto& item = items[i];
        switch (item.kind) {
        case fpm_item_kind::route:
            apply(std::move(item.route));
            break;
        case fpm_item_kind::other_table:
            ++counters_.other_table;
            break;
        case fpm_item_kind::unsupported:
            ++counters_.unsupported;
            break;
        }
    }
}

namespace {
uint64_t key4(const ip_bytes& prefix, uint8_t len) noexcept {
    return (uint64_t{(uint32_t{prefix[0]} << 24) | (uint32_t{prefix[1]} << 16) |
                     (uint32_t{prefix[2]} << 8) | prefix[3]}
            << 8) |
           len;
}
} // namespace

void learned_routes::add(learned_route& slot, bool fresh, ip_family family,
                         fpm_route_update&& update) {
    if (fresh)
        ++by_family_[static_cast<size_t>(family)];
    else if (slot.stale)
        --stale_;
    slot.route = std::move(update);
    slot.stale = false;
    ++counters_.adds;
    ++generation_;
}

template <typename Erase>
void learned_routes::remove(learned_route* r, ip_family family, Erase&& erase) {
    if (r == nullptr) {
        ++counters_.delete_misses;
        return;
    }
    if (r->stale)
        --stale_;
    --by_family_[static_cast<size_t>(family)];
    erase();
    ++counters_.deletes;
    ++generation_;
}

void learned_routes::apply(fpm_route_update&& update) {
    const ip_family family = update.family;
    if (family == ip_family::ipv4) {
        const uint64_t k = key4(update.prefix, update.prefix_len);
        if (update.add) {
            auto [slot, fresh] = routes4_.try_emplace(k);
            add(*slot, fresh, family, std::move(update));
        } else {
            remove(routes4_.find(k), family, [&] { routes4_.erase(k); });
        }
        return;
    }
    const auto key = key_of(update);
    if (update.add) {
        auto [it, fresh] = routes6_.try_emplace(key);
        add(it->second, fresh, family, std::move(update));
        return;
    }
    auto it = routes6_.find(key);
    remove(it == routes6_.end() ? nullptr : &it->second, family, [&] { routes6_.erase(it); });
}

void learned_routes::session_lost() {
    routes4_.for_each([](uint64_t, learned_route& r) { r.stale = true; });
    for (auto& [key, r] : routes6_)
        r.stale = true;
    stale_ = size();
    ++counters_.session_losses;
}

size_t learned_routes::sweep_stale() {
    std::vector<uint64_t> gone;
    routes4_.for_each([&](uint64_t k, const learned_route& r) {
        if (r.stale)
            gone.push_back(k);
    });
    for (uint64_t k : gone)
        routes4_.erase(k);
    by_family_[static_cast<size_t>(ip_family::ipv4)] -= gone.size();
    const size_t n6 = std::erase_if(routes6_, [](const auto& kv) { return kv.second.stale; });
    by_family_[static_cast<size_t>(ip_family::ipv6)] -= n6;
    const size_t n = gone.size() + n6;
    stale_ = 0;
    if (n != 0)
        ++generation_;
    counters_.swept += n;
    return n;
}

void learned_routes::prefetch(const route_key& key) const noexcept {
    if (key.family == ip_family::ipv4)
        routes4_.prefetch(key4(key.prefix, key.prefix_len));
}

const learned_route* learned_routes::find(const route_key& key) const {
    if (key.family == ip_family::ipv4)
        return routes4_.find(key4(key.prefix, key.prefix_len));
    const auto it = routes6_.find(key);
    return it == routes6_.end() ? nullptr : &it->second;
}

// ---- formatting

std::string format_address(ip_family f, const ip_bytes& addr) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(f == ip_family::ipv4 ? AF_INET : AF_INET6, addr.data(), text, sizeof(text));
    return text;
}

std::string format_prefix(ip_family f, const ip_bytes& prefix, uint8_t len) {
    return format_address(f, prefix) + "/" + std::to_string(len);
}

std::string format_update(const fpm_route_update& u) {
    std::string s = (u.add ? "add " : "delete ") + format_prefix(u.family, u.prefix, u.prefix_len) +
                    " table " + std::to_string(u.table) + " proto " + std::to_string(u.protocol) +
                    " metric " + std::to_string(u.metric);
    if (u.blackhole)
        s += " blackhole";
    for (const auto& h : u.next_hops) {
        if (h.has_gateway)
            s += " via " + format_address(u.family, h.gateway);
        if (h.ifindex != 0)
            s += " dev " + std::to_string(h.ifindex);
        s += " weight " + std::to_string(h.weight);
    }
    return s;
}

} // namespace sagd::shim
