#include "forwarding/sla.hpp"

#include <algorithm>

namespace sagd::fwd {

sla_window::sla_window(const sla_window_config& cfg) noexcept : cfg_(cfg) {
    cfg_.max_probes = std::clamp<uint32_t>(cfg_.max_probes, 1, capacity);
}

uint32_t sla_window::on_sent(uint64_t now_ns) noexcept {
    uint32_t seq = next_seq_++;
    probe& p = ring_[seq % capacity];
    p = probe{seq, probe_state::pending, now_ns, 0};
    if (sent_ < capacity)
        ++sent_;
    return seq;
}

sla_window::probe* sla_window::find(uint32_t seq) noexcept {
    // Only the last max_probes sequence numbers are live (unsigned math handles wrap).
    uint32_t age = next_seq_ - 1 - seq;
    if (age >= std::min(cfg_.max_probes, sent_))
        return nullptr;
    probe& p = ring_[seq % capacity];
    return p.seq == seq && p.state != probe_state::empty ? &p : nullptr;
}

bool sla_window::on_received_delay(uint32_t seq, uint64_t delay_ns) noexcept {
    probe* p = find(seq);
    if (p == nullptr || p->state == probe_state::received) {
        ++unknown_;
        return false;
    }
    if (p->state == probe_state::lost) {
        ++late_;
        return false;
    }
    p->state = probe_state::received;
    p->delay_ns = delay_ns;
    return true;
}

bool sla_window::on_received(uint32_t seq, uint64_t now_ns) noexcept {
    probe* p = find(seq);
    uint64_t delay = p != nullptr && now_ns > p->sent_ns ? now_ns - p->sent_ns : 0;
    return on_received_delay(seq, delay);
}

bool sla_window::on_timeout(uint32_t seq) noexcept {
    probe* p = find(seq);
    if (p == nullptr || p->state != probe_state::pending)
        return false;
    p->state = probe_state::lost;
    return true;
}

uint32_t sla_window::expire(uint64_t now_ns) noexcept {
    uint32_t n = std::min(cfg_.max_probes, sent_);
    uint32_t expired = 0;
    for (uint32_t i = 0; i < n; ++i) {
        probe& p = ring_[(next_seq_ - 1 - i) % capacity];
        if (p.state == probe_state::pending && now_ns >= p.sent_ns + cfg_.probe_timeout_ns) {
            p.state = probe_state::lost;
            ++expired;
        }
    }
    return expired;
}

sla_stats sla_window::stats(uint64_t now_ns) const noexcept {
    sla_stats s;
    uint32_t n = std::min(cfg_.max_probes, sent_);
    uint64_t delay_sum = 0;
    uint64_t diff_sum = 0;
    uint32_t diffs = 0;
    bool have_prev = false;
    uint64_t prev = 0;
    // Oldest to newest, so consecutive differences follow send order.
    for (uint32_t i = n; i-- > 0;) {
        const probe& p = ring_[(next_seq_ - 1 - i) % capacity];
        if (cfg_.max_age_ns != 0 && now_ns > p.sent_ns && now_ns - p.sent_ns > cfg_.max_age_ns)
            continue;
        switch (p.state) {
        case probe_state::pending:
            ++s.pending;
            break;
        case probe_state::lost:
            ++s.lost;
            break;
        case probe_state::received:
            ++s.received;
            delay_sum += p.delay_ns;
            if (have_prev) {
                diff_sum += p.delay_ns > prev ? p.delay_ns - prev : prev - p.delay_ns;
                ++diffs;
            }
            prev = p.delay_ns;
            have_prev = true;
            break;
        case probe_state::empty:
            break;
        }
    }
    if (s.resolved() != 0)
        s.loss_percent = 100.0 * s.lost / s.resolved();
    if (s.received != 0)
        s.latency_ns = delay_sum / s.received;
    if (diffs != 0)
        s.jitter_ns = diff_sum / diffs;
    return s;
}

uint8_t sla_classifier::violations(const sla_stats& s) const noexcept {
    uint8_t v = sla_violation_none;
    if (s.loss_percent > cls_.max_loss_percent)
        v |= sla_violation_loss;
    // Delay figures need at least one answer; total loss is judged by the loss limit.
    if (s.received != 0 && cls_.max_latency_ns != 0 && s.latency_ns > cls_.max_latency_ns)
        v |= sla_violation_latency;
    if (s.received > 1 && cls_.max_jitter_ns != 0 && s.jitter_ns > cls_.max_jitter_ns)
        v |= sla_violation_jitter;
    return v;
}

bool sla_classifier::within_recovery(const sla_stats& s) const noexcept {
    uint64_t pct = cls_.recover_percent;
    if (s.loss_percent > cls_.max_loss_percent * static_cast<double>(pct) / 100.0)
        return false;
    if (cls_.max_latency_ns != 0 && s.latency_ns * 100 > cls_.max_latency_ns * pct)
        return false;
    if (cls_.max_jitter_ns != 0 && s.jitter_ns * 100 > cls_.max_jitter_ns * pct)
        return false;
    return true;
}

std::optional<sla_verdict_change> sla_classifier::update(const sla_stats& s) noexcept {
    if (s.resolved() < cls_.min_probes)
        return std::nullopt;
    if (ok_) {
        uint8_t v = violations(s);
        if (v == sla_violation_none)
            return std::nullopt;
        ok_ = false;
        return sla_verdict_change{false, v};
    }
    if (!within_recovery(s))
        return std::nullopt;
    ok_ = true;
    return sla_verdict_change{true, sla_violation_none};
}

} // namespace sagd::fwd
