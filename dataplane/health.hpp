// A tunnel's health: whether it may carry traffic, why not, and since when it is up. Shared
// between table snapshots (like the SAs), so it survives every republication; written by the
// sources of truth (the owner worker's BFD session, the control thread's link monitor), read
// by every worker's group selection (tables::select) with one relaxed load per member.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "dataplane/config.hpp"
#include "forwarding/bfd.hpp"
#include "forwarding/sla.hpp"

namespace sagd::dp {

// Why a tunnel is out of service: any bit set = down. Each bit has one writer.
enum health_reason : uint8_t {
    health_bfd = 1,   // BFD session not Up (owner worker)
    health_link = 2,  // the tunnel's WAN port has no link (control thread)
    health_check = 4, // the ICMP health check fails (owner worker)
};
inline constexpr uint8_t health_reason_mask = 0x7f;
const char* health_reason_name(uint8_t bit) noexcept;

// What changed a tunnel's health last (for logs and the API).
enum class health_cause : uint8_t {
    none,
    created,
    bfd_down,
    bfd_up,
    link_down,
    link_up,
    check_down,
    check_up
};
const char* to_string(health_cause c) noexcept;

// The BFD session of a tunnel. Written only by the tunnel's owner worker; the view_* atomics are
// what everyone else reads.
struct bfd_link {
    // Owner worker only.
    std::optional<fwd::bfd_session> session;
    tunnel_bfd_config cfg; // what the session was built from
    uint64_t next_wakeup_ns = 0;
    uint16_t src_port = 49152; // RFC 5881 4: 49152..65535, fixed per session
    uint16_t ip_id = 0;

    // Published view (relaxed; each written by the owner after every event).
    std::atomic<uint8_t> view_state{static_cast<uint8_t>(fwd::bfd_state::admin_down)};
    std::atomic<uint8_t> view_remote_state{static_cast<uint8_t>(fwd::bfd_state::down)};
    std::atomic<uint8_t> view_diag{0};
    std::atomic<uint8_t> view_remote_diag{0};
    std::atomic<uint32_t> view_local_disc{0};
    std::atomic<uint32_t> view_remote_disc{0};
    std::atomic<uint64_t> view_tx_interval_ns{0};
    std::atomic<uint64_t> view_detection_ns{0};
    std::atomic<uint64_t> rx{0}, tx{0}, up_transitions{0}, down_transitions{0};
    std::atomic<uint64_t> rx_dropped{0}; // malformed, TTL, discriminator (by reason in drops)
    std::atomic<uint64_t> last_rx_ns{0};
};

// The ICMP health check of a tunnel and its SLA figures. Written only by the owner worker; the
// view atomics are for everyone else.
struct echo_check {
    // Owner worker only.
    std::optional<fwd::sla_window> window;
    std::optional<fwd::sla_classifier> classifier; // when the check has an SLA class
    tunnel_check_config cfg;
    uint64_t next_send_ns = 0;
    uint16_t ident = 0;
    uint32_t last_seq = 0;
    uint32_t failed_in_row = 0;
    uint32_t good_in_row = 0;

    // Published view.
    std::atomic<bool> active{false};
    std::atomic<uint64_t> sent{0}, replies{0}, timeouts{0}, slow{0};
    std::atomic<uint32_t> loss_permille{0};
    std::atomic<uint64_t> latency_ns{0}, jitter_ns{0}, last_rtt_ns{0};
    std::atomic<uint32_t> failed_in_row_view{0};
    // Up but not meeting its SLA class: groups prefer members that do ("brown-out").
    std::atomic<bool> browned_out{false};
    std::atomic<uint8_t> violations{0}; // fwd::sla_violation bits when browned out
    std::atomic<uint64_t> brownouts{0};
};

class tunnel_health {
  public:
    // A tunnel starts with `down` reasons set (BFD configured: down until the session is Up).
    explicit tunnel_health(uint8_t down = 0, uint64_t now_ns = 0) noexcept
        : word_(down), last_change_ns_(now_ns) {
        last_cause_.store(static_cast<uint8_t>(health_cause::created), std::memory_order_relaxed);
    }

    uint8_t down_reasons() const noexcept {
        return static_cast<uint8_t>(word_.load(std::memory_order_relaxed) & health_reason_mask);
    }
    bool up() const noexcept { return down_reasons() == 0; }
    bool browned_out() const noexcept { return check.browned_out.load(std::memory_order_relaxed); }
    // Up without a break for at least hold_down_ns at now_ns. A tunnel's first up counts as
    // matured at once (no failback to dampen: it never carried traffic and failed).
    bool matured(uint64_t now_ns, uint64_t hold_down_ns) const noexcept {
        uint64_t w = word_.load(std::memory_order_relaxed);
        if ((w & health_reason_mask) != 0)
            return false;
        uint64_t since = (w >> 8) << since_shift;
        return now_ns >= since && now_ns - since >= hold_down_ns;
    }
    // Set/clear one reason bit; returns true when the tunnel went down/up with this call.
    bool set_down(uint8_t reason, health_cause cause, uint64_t now_ns) noexcept;
    bool set_up(uint8_t reason, health_cause cause, uint64_t now_ns) noexcept;

    uint64_t downs() const noexcept { return downs_.load(std::memory_order_relaxed); }
    uint64_t ups() const noexcept { return ups_.load(std::memory_order_relaxed); }
    uint64_t last_change_ns() const noexcept {
        return last_change_ns_.load(std::memory_order_relaxed);
    }
    health_cause last_cause() const noexcept {
        return static_cast<health_cause>(last_cause_.load(std::memory_order_relaxed));
    }
    // Up since (ns); 0 for a first up.
    uint64_t up_since_ns() const noexcept {
        return (word_.load(std::memory_order_relaxed) >> 8) << since_shift;
    }

    bfd_link bfd;     // the tunnel's BFD session (owner worker)
    echo_check check; // the tunnel's ICMP health check (owner worker)

  private:
    // bits 0..6: down reasons; bit 7: has been up (a later up starts a hold-down);
    // bits 8..63: up since, in 2^since_shift ns units (0: first up, matured at once).
    static constexpr unsigned since_shift = 10;
    static constexpr uint64_t been_up = 0x80;
    std::atomic<uint64_t> word_;
    std::atomic<uint64_t> downs_{0}, ups_{0};
    std::atomic<uint64_t> last_change_ns_{0};
    std::atomic<uint8_t> last_cause_{0};
};

} // namespace sagd::dp
