#include "forwarding/bfd.hpp"

#include <algorithm>

namespace sagd::fwd {

namespace {

inline uint32_t load_be32(const uint8_t* p) noexcept {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void store_be32(uint8_t* p, uint32_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

constexpr uint64_t ns_per_us = 1000;

} // namespace

const char* to_string(bfd_state s) noexcept {
    switch (s) {
    case bfd_state::admin_down:
        return "admin_down";
    case bfd_state::down:
        return "down";
    case bfd_state::init:
        return "init";
    case bfd_state::up:
        return "up";
    }
    return "?";
}

const char* to_string(bfd_diag d) noexcept {
    switch (d) {
    case bfd_diag::none:
        return "none";
    case bfd_diag::control_detection_expired:
        return "control_detection_expired";
    case bfd_diag::echo_failed:
        return "echo_failed";
    case bfd_diag::neighbor_signaled_down:
        return "neighbor_signaled_down";
    case bfd_diag::forwarding_plane_reset:
        return "forwarding_plane_reset";
    case bfd_diag::path_down:
        return "path_down";
    case bfd_diag::concatenated_path_down:
        return "concatenated_path_down";
    case bfd_diag::admin_down:
        return "admin_down";
    case bfd_diag::reverse_concatenated_path_down:
        return "reverse_concatenated_path_down";
    }
    return "?";
}

const char* to_string(bfd_status s) noexcept {
    switch (s) {
    case bfd_status::ok:
        return "ok";
    case bfd_status::truncated:
        return "truncated";
    case bfd_status::bad_version:
        return "bad_version";
    case bfd_status::bad_length:
        return "bad_length";
    case bfd_status::length_exceeds_buffer:
        return "length_exceeds_buffer";
    case bfd_status::zero_detect_mult:
        return "zero_detect_mult";
    case bfd_status::multipoint_set:
        return "multipoint_set";
    case bfd_status::zero_my_discriminator:
        return "zero_my_discriminator";
    case bfd_status::zero_your_discriminator:
        return "zero_your_discriminator";
    case bfd_status::auth_unsupported:
        return "auth_unsupported";
    }
    return "?";
}

// RFC 5880 4.1: |Vers(3)|Diag(5)|Sta(2)|P|F|C|A|D|M|Detect Mult|Length| then five 32-bit
// words: My Discr, Your Discr, Desired Min TX, Required Min RX, Required Min Echo RX.
bfd_status bfd_decode(const uint8_t* p, size_t len, bfd_packet& out) noexcept {
    if (len < bfd_header_len) [[unlikely]]
        return bfd_status::truncated;
    bfd_packet b;
    b.version = static_cast<uint8_t>(p[0] >> 5);
    b.diag = static_cast<bfd_diag>(p[0] & 0x1f);
    b.state = static_cast<bfd_state>(p[1] >> 6);
    b.poll = (p[1] & 0x20) != 0;
    b.final = (p[1] & 0x10) != 0;
    b.cpi = (p[1] & 0x08) != 0;
    b.auth = (p[1] & 0x04) != 0;
    b.demand = (p[1] & 0x02) != 0;
    b.multipoint = (p[1] & 0x01) != 0;
    b.detect_mult = p[2];
    b.length = p[3];
    b.my_discriminator = load_be32(p + 4);
    b.your_discriminator = load_be32(p + 8);
    b.desired_min_tx_us = load_be32(p + 12);
    b.required_min_rx_us = load_be32(p + 16);
    b.required_min_echo_rx_us = load_be32(p + 20);
    // RFC 5880 6.8.6, in order.
    if (b.version != bfd_version) [[unlikely]]
        return bfd_status::bad_version;
    if (b.length < bfd_header_len) [[unlikely]]
        return bfd_status::bad_length;
    if (b.length > len) [[unlikely]]
        return bfd_status::length_exceeds_buffer;
    if (b.detect_mult == 0) [[unlikely]]
        return bfd_status::zero_detect_mult;
    if (b.multipoint) [[unlikely]]
        return bfd_status::multipoint_set;
    if (b.my_discriminator == 0) [[unlikely]]
        return bfd_status::zero_my_discriminator;
    bool down = b.state == bfd_state::down || b.state == bfd_state::admin_down;
    if (b.your_discriminator == 0 && !down) [[unlikely]]
        return bfd_status::zero_your_discriminator;
    // 6.8.6: "A bit set and no authentication in use -> discard" (we support none).
    if (b.auth) [[unlikely]]
        return bfd_status::auth_unsupported;
    out = b;
    return bfd_status::ok;
}

size_t bfd_encode(const bfd_packet& b, uint8_t* out, size_t cap) noexcept {
    if (cap < bfd_header_len)
        return 0;
    out[0] = static_cast<uint8_t>((b.version << 5) | (static_cast<uint8_t>(b.diag) & 0x1f));
    out[1] = static_cast<uint8_t>((static_cast<uint8_t>(b.state) << 6) | (b.poll ? 0x20 : 0) |
                                  (b.final ? 0x10 : 0) | (b.cpi ? 0x08 : 0) | (b.auth ? 0x04 : 0) |
                                  (b.demand ? 0x02 : 0) | (b.multipoint ? 0x01 : 0));
    out[2] = b.detect_mult;
    out[3] = static_cast<uint8_t>(bfd_header_len);
    store_be32(out + 4, b.my_discriminator);
    store_be32(out + 8, b.your_discriminator);
    store_be32(out + 12, b.desired_min_tx_us);
    store_be32(out + 16, b.required_min_rx_us);
    store_be32(out + 20, b.required_min_echo_rx_us);
    return bfd_header_len;
}

uint64_t bfd_jittered_interval(uint64_t interval_ns, uint8_t detect_mult,
                               uint32_t random) noexcept {
    // 6.8.7: reduce by 0-25%; with Detect Mult 1, by 10-25% (never above 90%).
    double r = static_cast<double>(random) / 4294967296.0; // [0, 1)
    double cut = detect_mult == 1 ? 0.10 + 0.15 * r : 0.25 * r;
    auto reduce = static_cast<uint64_t>(static_cast<double>(interval_ns) * cut);
    return interval_ns - std::min(reduce, interval_ns);
}

// ---- session --------------------------------------------------------------------------------

bfd_session::bfd_session(const bfd_config& cfg, uint64_t now_ns) noexcept
    : local_disc_(cfg.local_discriminator), cfg_tx_us_(cfg.desired_min_tx_us),
      cfg_rx_us_(cfg.required_min_rx_us), detect_mult_(cfg.detect_mult == 0 ? 1 : cfg.detect_mult),
      adv_tx_us_(std::max<uint32_t>(cfg.desired_min_tx_us, slow_tx_us)),
      adv_rx_us_(cfg.required_min_rx_us), active_tx_us_(adv_tx_us_), active_rx_us_(adv_rx_us_),
      next_tx_(now_ns), rng_(cfg.jitter_seed) {
    if (cfg.start_admin_down) {
        state_ = bfd_state::admin_down;
        diag_ = bfd_diag::admin_down;
    }
}

uint32_t bfd_session::next_random() noexcept {
    // splitmix64: cheap, no state beyond one word, good enough for jitter.
    uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

uint64_t bfd_session::tx_interval_ns() const noexcept {
    return uint64_t{std::max(active_tx_us_, remote_min_rx_us_)} * ns_per_us;
}

uint64_t bfd_session::detection_time_ns() const noexcept {
    return uint64_t{remote_detect_mult_} * std::max(active_rx_us_, remote_desired_tx_us_) *
           ns_per_us;
}

void bfd_session::schedule_tx(uint64_t from_ns) noexcept {
    next_tx_ = from_ns + bfd_jittered_interval(tx_interval_ns(), detect_mult_, next_random());
}

bfd_packet bfd_session::make_packet() const noexcept {
    bfd_packet p;
    p.diag = diag_;
    p.state = state_;
    p.detect_mult = detect_mult_;
    p.my_discriminator = local_disc_;
    p.your_discriminator = remote_disc_;
    p.desired_min_tx_us = adv_tx_us_;
    p.required_min_rx_us = adv_rx_us_;
    p.required_min_echo_rx_us = 0; // no Echo function
    return p;
}

void bfd_session::refresh_advertised(uint64_t now_ns) noexcept {
    (void)now_ns;
    // 6.8.3: bfd.DesiredMinTxInterval >= 1 s while the session is not Up.
    uint32_t tx = state_ == bfd_state::up ? cfg_tx_us_ : std::max<uint32_t>(cfg_tx_us_, slow_tx_us);
    uint32_t rx = cfg_rx_us_;
    if (tx == adv_tx_us_ && rx == adv_rx_us_)
        return;
    adv_tx_us_ = tx;
    adv_rx_us_ = rx;
    if (state_ == bfd_state::up) {
        // 6.8.3: a Poll sequence announces the change; a TX decrease and an RX increase are
        // safe at once, a TX increase and an RX decrease wait for the Final.
        active_tx_us_ = std::min(active_tx_us_, tx);
        active_rx_us_ = std::max(active_rx_us_, rx);
        poll_active_ = true;
        tx_now_ = true;
    } else {
        active_tx_us_ = tx;
        active_rx_us_ = rx;
        poll_active_ = false;
    }
}

std::optional<bfd_state_change> bfd_session::set_state(bfd_state to, bfd_diag diag,
                                                       uint64_t now_ns) noexcept {
    if (to == state_)
        return std::nullopt;
    bfd_state_change c{state_, to, diag};
    if (to == bfd_state::up)
        ++counters_.up;
    if (state_ == bfd_state::up || state_ == bfd_state::init)
        ++counters_.down;
    state_ = to;
    diag_ = diag;
    tx_now_ = true; // tell the peer promptly
    refresh_advertised(now_ns);
    return c;
}

std::optional<bfd_state_change> bfd_session::on_receive(const bfd_packet& pkt,
                                                        uint64_t now_ns) noexcept {
    if (pkt.your_discriminator != 0 && pkt.your_discriminator != local_disc_) [[unlikely]] {
        ++counters_.rx_wrong_discriminator;
        return std::nullopt;
    }
    // 6.8.6: a Final ends our Poll sequence; the new timers now apply.
    if (pkt.final && poll_active_) {
        poll_active_ = false;
        active_tx_us_ = adv_tx_us_;
        active_rx_us_ = adv_rx_us_;
        ++counters_.poll_sequences_done;
    }
    remote_disc_ = pkt.my_discriminator;
    remote_state_ = pkt.state;
    remote_demand_ = pkt.demand;
    remote_min_rx_us_ = pkt.required_min_rx_us;
    remote_desired_tx_us_ = pkt.desired_min_tx_us;
    remote_detect_mult_ = pkt.detect_mult;
    if (state_ == bfd_state::admin_down) {
        ++counters_.rx_discarded_admin;
        return std::nullopt;
    }
    ++counters_.rx;
    last_rx_ = now_ns;
    have_rx_ = true;
    // 6.8.7: answer a Poll with a Final at once, regardless of the transmit timer.
    if (pkt.poll)
        final_pending_ = true;
    // A faster remote RX requirement may pull our next packet in.
    if (remote_min_rx_us_ != 0) {
        uint64_t latest = now_ns + tx_interval_ns();
        if (next_tx_ > latest)
            next_tx_ = latest;
    }

    std::optional<bfd_state_change> c;
    if (pkt.state == bfd_state::admin_down) {
        if (state_ != bfd_state::down)
            c = set_state(bfd_state::down, bfd_diag::neighbor_signaled_down, now_ns);
        return c;
    }
    switch (state_) { // 6.8.6 three-way handshake
    case bfd_state::down:
        if (pkt.state == bfd_state::down)
            c = set_state(bfd_state::init, bfd_diag::none, now_ns);
        else if (pkt.state == bfd_state::init)
            c = set_state(bfd_state::up, bfd_diag::none, now_ns);
        break;
    case bfd_state::init:
        if (pkt.state == bfd_state::init || pkt.state == bfd_state::up)
            c = set_state(bfd_state::up, bfd_diag::none, now_ns);
        break;
    case bfd_state::up:
        if (pkt.state == bfd_state::down)
            c = set_state(bfd_state::down, bfd_diag::neighbor_signaled_down, now_ns);
        break;
    case bfd_state::admin_down:
        break;
    }
    return c;
}

bfd_poll_result bfd_session::poll(uint64_t now_ns) noexcept {
    bfd_poll_result r;
    // 6.8.4: no packet for the Detection Time -> Down, diag 1; the remote is forgotten.
    bool timed = have_rx_ && remote_detect_mult_ != 0;
    uint64_t deadline = timed ? last_rx_ + detection_time_ns() : UINT64_MAX;
    if (timed && now_ns >= deadline) {
        if (state_ == bfd_state::init || state_ == bfd_state::up) {
            ++counters_.detection_expired;
            r.change = set_state(bfd_state::down, bfd_diag::control_detection_expired, now_ns);
        }
        remote_disc_ = 0; // 6.8.1
        remote_state_ = bfd_state::down;
        remote_min_rx_us_ = 1;
        remote_demand_ = false;
        have_rx_ = false;
        deadline = UINT64_MAX;
    }
    // 6.8.7: no periodic packets when the remote asked for none (min RX 0) or runs Demand mode
    // with both sides Up.
    bool periodic = remote_min_rx_us_ != 0 &&
                    !(remote_demand_ && state_ == bfd_state::up && remote_state_ == bfd_state::up);
    if (final_pending_) {
        bfd_packet p = make_packet();
        p.final = true; // 6.5: never P and F together; P rides on the next periodic packet
        final_pending_ = false;
        ++counters_.tx;
        ++counters_.tx_final;
        r.tx = p;
    } else if (periodic && (tx_now_ || now_ns >= next_tx_)) {
        bfd_packet p = make_packet();
        p.poll = poll_active_;
        counters_.tx_poll += poll_active_ ? 1 : 0;
        ++counters_.tx;
        tx_now_ = false;
        schedule_tx(now_ns);
        r.tx = p;
    }
    uint64_t wake = deadline;
    if (periodic)
        wake = std::min(wake, tx_now_ ? now_ns : next_tx_);
    if (final_pending_)
        wake = now_ns;
    if (wake == UINT64_MAX) // nothing scheduled: check back after a slow interval
        wake = now_ns + slow_tx_us * ns_per_us;
    r.next_wakeup_ns = wake;
    return r;
}

std::optional<bfd_state_change> bfd_session::admin_down(uint64_t now_ns) noexcept {
    poll_active_ = false;
    final_pending_ = false;
    return set_state(bfd_state::admin_down, bfd_diag::admin_down, now_ns);
}

std::optional<bfd_state_change> bfd_session::admin_up(uint64_t now_ns) noexcept {
    if (state_ != bfd_state::admin_down)
        return std::nullopt;
    have_rx_ = false; // start detection afresh
    return set_state(bfd_state::down, bfd_diag::none, now_ns);
}

void bfd_session::set_timers(uint32_t desired_min_tx_us, uint32_t required_min_rx_us,
                             uint8_t detect_mult, uint64_t now_ns) noexcept {
    cfg_tx_us_ = desired_min_tx_us;
    cfg_rx_us_ = required_min_rx_us;
    if (detect_mult != 0)
        detect_mult_ = detect_mult;
    refresh_advertised(now_ns);
}

} // namespace sagd::fwd
