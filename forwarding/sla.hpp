// Path quality over a sliding window of probes (loss, mean delay, jitter) and a classifier
// that says whether a path meets an SLA class, with hysteresis so the verdict does not flap.
// Pure logic driven by an explicit `now` (nanoseconds); fixed-size storage, no allocation,
// every call noexcept. One owner per instance.
//
// Jitter here is the mean absolute difference of the delays of consecutive received probes,
// |D(i) - D(i-1)| averaged over the window (the unsmoothed form of RFC 3550 6.4.1's J, which
// smooths the same differences with gain 1/16). Lost probes are skipped: the pair is formed
// by the received probes on either side.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

namespace sagd::fwd {

struct sla_window_config {
    uint32_t max_probes = 100;                 // the last N probes sent (<= capacity)
    uint64_t max_age_ns = 0;                   // and only those sent in the last T; 0: no limit
    uint64_t probe_timeout_ns = 1'000'000'000; // expire(): pending longer than this -> lost
};

struct sla_stats {
    uint32_t received = 0;
    uint32_t lost = 0;
    uint32_t pending = 0;    // sent, neither answered nor timed out: not judged yet
    double loss_percent = 0; // lost / (received + lost) * 100
    uint64_t latency_ns = 0; // mean delay of received probes
    uint64_t jitter_ns = 0;  // mean |D(i) - D(i-1)| (see above)
    uint32_t resolved() const noexcept { return received + lost; }
};

class sla_window {
  public:
    static constexpr uint32_t capacity = 256;

    explicit sla_window(const sla_window_config& cfg = {}) noexcept;

    // Records a probe sent at now; returns the sequence number to carry in it.
    uint32_t on_sent(uint64_t now_ns) noexcept;
    // A reply: delay = now - sent time. False (ignored, counted) if the sequence number is
    // unknown, out of the window, already answered or already declared lost.
    bool on_received(uint32_t seq, uint64_t now_ns) noexcept;
    // As on_received, with a delay measured elsewhere (e.g. one-way from probe timestamps).
    bool on_received_delay(uint32_t seq, uint64_t delay_ns) noexcept;
    // Declares one pending probe lost. False if it is not pending.
    bool on_timeout(uint32_t seq) noexcept;
    // Declares every probe pending longer than probe_timeout_ns lost; returns how many.
    uint32_t expire(uint64_t now_ns) noexcept;

    // Figures over the last max_probes probes sent at or after now - max_age_ns.
    sla_stats stats(uint64_t now_ns) const noexcept;

    uint64_t late_replies() const noexcept { return late_; }       // after a timeout
    uint64_t unknown_replies() const noexcept { return unknown_; } // bad/old/duplicate seq

  private:
    enum class probe_state : uint8_t { empty, pending, received, lost };
    struct probe {
        uint32_t seq = 0;
        probe_state state = probe_state::empty;
        uint64_t sent_ns = 0;
        uint64_t delay_ns = 0;
    };
    probe* find(uint32_t seq) noexcept;

    sla_window_config cfg_;
    std::array<probe, capacity> ring_{};
    uint32_t next_seq_ = 1;
    uint32_t sent_ = 0; // saturates at capacity
    uint64_t late_ = 0;
    uint64_t unknown_ = 0;
};

// Limits of an SLA class. A path violates the class when any figure exceeds its limit and
// recovers only when every figure is at or below recover_percent of its limit (hysteresis).
struct sla_class {
    double max_loss_percent = 1.0;
    uint64_t max_latency_ns = 150'000'000; // 0: not checked
    uint64_t max_jitter_ns = 30'000'000;   // 0: not checked
    uint32_t recover_percent = 80;
    uint32_t min_probes = 10; // fewer resolved probes: keep the current verdict
};

enum sla_violation : uint8_t {
    sla_violation_none = 0,
    sla_violation_loss = 1,
    sla_violation_latency = 2,
    sla_violation_jitter = 4,
};

struct sla_verdict_change {
    bool ok = true;
    uint8_t violations = 0; // sla_violation bits over the limits (when !ok)
};

class sla_classifier {
  public:
    explicit sla_classifier(const sla_class& cls = {}) noexcept : cls_(cls) {}

    // Feeds the latest figures; returns the new verdict when it changes. Starts ok.
    std::optional<sla_verdict_change> update(const sla_stats& s) noexcept;
    bool ok() const noexcept { return ok_; }
    // Limits exceeded by s (sla_violation bits), and whether s clears the recovery band.
    uint8_t violations(const sla_stats& s) const noexcept;
    bool within_recovery(const sla_stats& s) const noexcept;
    const sla_class& cls() const noexcept { return cls_; }

  private:
    sla_class cls_;
    bool ok_ = true;
};

} // namespace sagd::fwd
