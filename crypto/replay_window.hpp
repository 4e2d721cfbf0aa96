// RFC 4303 3.4.3 anti-replay window with extended sequence numbers (RFC 4303 2.2.1, App. A).
//
// Usage per inbound packet:  check(seq_low) -> verify ICV -> update(seq64).
// RFC 4303 3.4.3: the window slides only after the ICV passes, so check() never writes.
// update() re-checks, so two copies of one packet inside the same burst (both pass check()
// before either is committed) still count the second as a replay.
//
// Bitmap: a ring of 64-bit words indexed by seq / 64 (RFC 6479 style). Sliding forward
// clears whole words, so a jump costs at most (words) stores. The ring keeps one word more
// than the window so the partially used top word never aliases the bottom of the window.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

namespace sagd::crypto {

enum class replay_verdict : uint8_t {
    ok,        // new, or inside the window and not seen yet
    duplicate, // inside the window and already seen (or seq 0, which is never sent)
    too_old,   // left of the window
};

struct replay_result {
    replay_verdict verdict;
    uint64_t seq; // full 64-bit sequence number (ESN high bits inferred, RFC 4303 App. A)
};

class replay_window {
  public:
    static constexpr uint32_t min_size = 64;
    static constexpr uint32_t max_size = 4096;
    static constexpr uint32_t default_size = 1024;
    static constexpr uint32_t max_words = std::bit_ceil(max_size / 64 + 1);

    // size 0 disables anti-replay (ESN high bits are still inferred); otherwise size must be
    // in [min_size, max_size] (the caller validates) and is rounded up to a power of two.
    explicit replay_window(uint32_t size = default_size, bool esn = false) noexcept : esn_(esn) {
        if (size != 0) {
            size_ = std::bit_ceil(std::clamp(size, min_size, max_size));
            word_mask_ = std::bit_ceil(size_ / 64 + 1) - 1;
        }
        bits_[0] = 1; // seq 0 is never sent (RFC 4303 3.3.3): treat it as already seen
    }

    uint32_t size() const noexcept { return size_; }
    bool esn() const noexcept { return esn_; }
    uint64_t top() const noexcept { return top_; } // highest authenticated seq so far

    // Infers the 64-bit sequence number and tells whether the packet may be a replay.
    replay_result check(uint32_t seq_low) const noexcept {
        const uint64_t seq = infer(seq_low);
        if (size_ == 0)
            return {replay_verdict::ok, seq};
        if (seq > top_)
            return {replay_verdict::ok, seq};
        if (seq + size_ <= top_)
            return {replay_verdict::too_old, seq};
        return {seen(seq) ? replay_verdict::duplicate : replay_verdict::ok, seq};
    }

    // Commits an authenticated packet. Returns false (and changes nothing) if it became a
    // replay since check(), e.g. a duplicate earlier in the same burst.
    bool update(uint64_t seq) noexcept {
        if (size_ == 0) {
            top_ = std::max(top_, seq);
            return true;
        }
        if (seq > top_) {
            const uint64_t old_word = top_ >> 6;
            const uint64_t new_word = seq >> 6;
            if (new_word - old_word > word_mask_) {
                std::fill_n(bits_, word_mask_ + 1, uint64_t{0});
            } else {
                for (uint64_t w = old_word + 1; w <= new_word; ++w)
                    bits_[w & word_mask_] = 0;
            }
            top_ = seq;
        } else {
            if (seq + size_ <= top_ || seen(seq))
                return false;
        }
        bits_[(seq >> 6) & word_mask_] |= uint64_t{1} << (seq & 63);
        return true;
    }

  private:
    bool seen(uint64_t seq) const noexcept {
        return (bits_[(seq >> 6) & word_mask_] >> (seq & 63)) & 1;
    }

    // RFC 4303 Appendix A.2: pick the high half that puts seq inside or right of the window.
    uint64_t infer(uint32_t seq_low) const noexcept {
        if (!esn_)
            return seq_low;
        const uint32_t tl = static_cast<uint32_t>(top_);
        const uint32_t th = static_cast<uint32_t>(top_ >> 32);
        // With anti-replay off there is no window; infer around the nearest half-range.
        const uint32_t w = size_ != 0 ? size_ : 0x80000000u;
        uint32_t sh;
        if (tl >= w - 1) {
            // Case A: window within one epoch. Below the window bottom means next epoch.
            sh = seq_low >= tl - w + 1 ? th : th + 1;
        } else {
            // Case B: window spans the wrap. High values belong to the previous epoch.
            // In epoch 0 there is no previous epoch: treat it as a jump forward.
            sh = (seq_low >= tl - w + 1 && th != 0) ? th - 1 : th;
        }
        return (uint64_t{sh} << 32) | seq_low;
    }

    uint64_t top_ = 0;
    uint32_t size_ = 0; // window in packets (power of two), 0 = anti-replay disabled
    uint32_t word_mask_ = 0;
    bool esn_ = false;
    uint64_t bits_[max_words] = {};
};

} // namespace sagd::crypto
