// BFD (RFC 5880) asynchronous mode: the control packet codec and one session's state machine.
// Pure logic driven by an explicit `now` in nanoseconds (a worker converts TSC ticks once per
// loop): no threads, no allocation, no DPDK calls, every call noexcept. One owner per session
// (the worker the session is pinned to). RFC 5881 single-hop framing (UDP 3784, TTL 255,
// source port 49152-65535) is the caller's job; this file sees only the BFD control packet.
// Not supported: authentication (A bit -> dropped), Demand mode (we never ask for it), Echo.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>

namespace sagd::fwd {

inline constexpr uint16_t bfd_udp_port = 3784; // RFC 5881 4: single-hop control
inline constexpr size_t bfd_header_len = 24;   // RFC 5880 4.1 mandatory section
inline constexpr uint8_t bfd_version = 1;

enum class bfd_state : uint8_t { admin_down = 0, down = 1, init = 2, up = 3 };
const char* to_string(bfd_state s) noexcept;

// RFC 5880 4.1 diagnostic codes.
enum class bfd_diag : uint8_t {
    none = 0,
    control_detection_expired = 1,
    echo_failed = 2,
    neighbor_signaled_down = 3,
    forwarding_plane_reset = 4,
    path_down = 5,
    concatenated_path_down = 6,
    admin_down = 7,
    reverse_concatenated_path_down = 8,
};
const char* to_string(bfd_diag d) noexcept;

// The mandatory section, host byte order; intervals in microseconds as on the wire.
struct bfd_packet {
    uint8_t version = bfd_version;
    bfd_diag diag = bfd_diag::none; // 5 bits on the wire
    bfd_state state = bfd_state::down;
    bool poll = false;       // P
    bool final = false;      // F
    bool cpi = false;        // C: control plane independent
    bool auth = false;       // A
    bool demand = false;     // D
    bool multipoint = false; // M
    uint8_t detect_mult = 0;
    uint8_t length = bfd_header_len;
    uint32_t my_discriminator = 0;
    uint32_t your_discriminator = 0;
    uint32_t desired_min_tx_us = 0;
    uint32_t required_min_rx_us = 0;
    uint32_t required_min_echo_rx_us = 0;
    bool operator==(const bfd_packet&) const = default;
};
static_assert(std::is_trivially_copyable_v<bfd_packet>);

// Reception checks of RFC 5880 6.8.6 that need no session, in the RFC's order; one status per
// rule so the data plane can count drops by reason.
enum class bfd_status : uint8_t {
    ok,
    truncated,               // buffer shorter than 24 bytes
    bad_version,             // version != 1
    bad_length,              // length field < 24
    length_exceeds_buffer,   // length field > bytes received
    zero_detect_mult,        // Detect Mult == 0
    multipoint_set,          // M bit set
    zero_my_discriminator,   // My Discriminator == 0
    zero_your_discriminator, // Your Discriminator == 0 while state is not Down/AdminDown
    auth_unsupported,        // A bit set: no authentication is configured here
};
inline constexpr size_t bfd_status_count = 10;
const char* to_string(bfd_status s) noexcept;

// Parses and validates; `out` is filled only when the result is ok.
bfd_status bfd_decode(const uint8_t* p, size_t len, bfd_packet& out) noexcept;
// Writes 24 bytes (length field forced to 24, A bit as given). Returns 24, or 0 if cap < 24.
size_t bfd_encode(const bfd_packet& pkt, uint8_t* out, size_t cap) noexcept;

// RFC 5880 6.8.7: a periodic interval reduced by a random 0-25% (to 75-90% when the detect
// multiplier is 1). `random` is any uniformly distributed 32-bit value.
uint64_t bfd_jittered_interval(uint64_t interval_ns, uint8_t detect_mult, uint32_t random) noexcept;

struct bfd_config {
    uint32_t local_discriminator = 0; // nonzero, unique within the gateway (the demux key)
    uint32_t desired_min_tx_us = 300'000;
    uint32_t required_min_rx_us = 300'000;
    uint8_t detect_mult = 3;
    bool start_admin_down = false;
    uint64_t jitter_seed = 1; // deterministic tests; use something per-session in production
};

struct bfd_state_change {
    bfd_state from = bfd_state::down;
    bfd_state to = bfd_state::down;
    bfd_diag diag = bfd_diag::none; // bfd.LocalDiag after the change
    bool operator==(const bfd_state_change&) const = default;
};

struct bfd_poll_result {
    std::optional<bfd_packet> tx;           // send this now (UDP 3784, TTL 255)
    std::optional<bfd_state_change> change; // detection time expired
    uint64_t next_wakeup_ns = 0;            // call poll() again no later than this
};

struct bfd_counters {
    uint64_t rx = 0;                     // packets accepted by on_receive
    uint64_t rx_discarded_admin = 0;     // 6.8.6: we are AdminDown
    uint64_t rx_wrong_discriminator = 0; // your_discriminator is neither 0 nor ours
    uint64_t tx = 0;
    uint64_t tx_poll = 0;
    uint64_t tx_final = 0;
    uint64_t up = 0;   // transitions to Up
    uint64_t down = 0; // transitions from Up/Init to Down
    uint64_t detection_expired = 0;
    uint64_t poll_sequences_done = 0;
};

class bfd_session {
  public:
    static constexpr uint64_t slow_tx_us = 1'000'000; // 6.8.3: while not Up

    bfd_session(const bfd_config& cfg, uint64_t now_ns) noexcept;

    // A packet that passed bfd_decode and was demultiplexed to this session (by
    // your_discriminator, or by source address/interface when it is 0: RFC 5881 3).
    std::optional<bfd_state_change> on_receive(const bfd_packet& pkt, uint64_t now_ns) noexcept;
    // Timers: detection expiry and transmission. At most one packet per call; when more is due
    // (a Final and a periodic packet), next_wakeup_ns is now_ns.
    bfd_poll_result poll(uint64_t now_ns) noexcept;

    std::optional<bfd_state_change> admin_down(uint64_t now_ns) noexcept; // diag 7
    std::optional<bfd_state_change> admin_up(uint64_t now_ns) noexcept;   // -> Down
    // New local timers; while Up they take effect through a Poll sequence (6.8.3).
    void set_timers(uint32_t desired_min_tx_us, uint32_t required_min_rx_us, uint8_t detect_mult,
                    uint64_t now_ns) noexcept;

    bfd_state state() const noexcept { return state_; }
    bfd_state remote_state() const noexcept { return remote_state_; }
    bfd_diag local_diag() const noexcept { return diag_; }
    uint32_t local_discriminator() const noexcept { return local_disc_; }
    uint32_t remote_discriminator() const noexcept { return remote_disc_; }
    bool poll_in_progress() const noexcept { return poll_active_; }
    // Negotiated periodic interval before jitter: max(our desired min TX, remote min RX).
    uint64_t tx_interval_ns() const noexcept;
    // 6.8.4: remote detect mult x max(our required min RX, remote desired min TX).
    uint64_t detection_time_ns() const noexcept;
    uint64_t last_rx_ns() const noexcept { return last_rx_; }
    const bfd_counters& counters() const noexcept { return counters_; }

  private:
    bfd_packet make_packet() const noexcept;
    std::optional<bfd_state_change> set_state(bfd_state to, bfd_diag diag,
                                              uint64_t now_ns) noexcept;
    void refresh_advertised(uint64_t now_ns) noexcept;
    void schedule_tx(uint64_t from_ns) noexcept;
    uint32_t next_random() noexcept;

    bfd_state state_ = bfd_state::down;
    bfd_state remote_state_ = bfd_state::down;
    bfd_diag diag_ = bfd_diag::none;
    uint32_t local_disc_;
    uint32_t remote_disc_ = 0;
    // Configured values, and what we advertise (bfd.DesiredMinTxInterval is >= 1 s while not
    // Up). The "active" ones drive our timers; they lag the advertised ones while a Poll
    // sequence is running (6.8.3: a TX increase / RX decrease waits for the Final).
    uint32_t cfg_tx_us_;
    uint32_t cfg_rx_us_;
    uint8_t detect_mult_;
    uint32_t adv_tx_us_;
    uint32_t adv_rx_us_;
    uint32_t active_tx_us_;
    uint32_t active_rx_us_;
    // From the last packet received.
    uint32_t remote_min_rx_us_ = 1; // 6.8.1 initial value
    uint32_t remote_desired_tx_us_ = 0;
    uint8_t remote_detect_mult_ = 0;
    bool remote_demand_ = false;

    bool poll_active_ = false;
    bool final_pending_ = false;
    bool tx_now_ = true; // send promptly after a state change or at start
    uint64_t next_tx_ = 0;
    uint64_t last_rx_ = 0;
    bool have_rx_ = false;
    uint64_t rng_;
    bfd_counters counters_;
};

} // namespace sagd::fwd
