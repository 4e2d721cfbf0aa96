// u64_map: an open-addressing hash map from uint64_t keys to values, for the control side's
// big tables (a million routes). One array of slots, linear probing, backward-shift deletion
// (no tombstones), grown x2 at 3/4 load: an insert or lookup costs one or two cache lines and
// no allocation of its own, where std::map walks ~20 nodes and std::unordered_map allocates
// a node per entry. Key ~0 is reserved (it marks an empty slot). Any insert may move every
// value: pointers returned by find() and try_emplace() last until the next insert or erase.
// Not thread-safe (the control thread owns it). Iteration order is unspecified.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace sagd::fwd {

template <typename V> class u64_map {
  public:
    static constexpr uint64_t empty_key = ~uint64_t{0};

    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    size_t capacity() const noexcept { return slots_.size(); }

    V* find(uint64_t key) noexcept {
        if (size_ == 0)
            return nullptr;
        for (size_t i = home(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == key)
                return &slots_[i].value;
            if (slots_[i].key == empty_key)
                return nullptr;
        }
    }
    const V* find(uint64_t key) const noexcept { return const_cast<u64_map*>(this)->find(key); }
    bool contains(uint64_t key) const noexcept { return find(key) != nullptr; }

    // The value of `key`, default-constructed if new; second is true when it was inserted.
    std::pair<V*, bool> try_emplace(uint64_t key) {
        if ((size_ + 1) * 4 > slots_.size() * 3)
            grow();
        for (size_t i = home(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == key)
                return {&slots_[i].value, false};
            if (slots_[i].key == empty_key) {
                slots_[i].key = key;
                ++size_;
                return {&slots_[i].value, true};
            }
        }
    }
    V& operator[](uint64_t key) { return *try_emplace(key).first; }

    bool erase(uint64_t key) {
        if (size_ == 0)
            return false;
        size_t i = home(key);
        for (;; i = (i + 1) & mask_) {
            if (slots_[i].key == key)
                break;
            if (slots_[i].key == empty_key)
                return false;
        }
        // Backward shift: move later members of the probe run into the hole when the hole
        // lies between their home slot and where they sit.
        for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
            if (slots_[j].key == empty_key)
                break;
            size_t h = home(slots_[j].key);
            if (((j - h) & mask_) >= ((j - i) & mask_)) {
                slots_[i].key = slots_[j].key;
                slots_[i].value = std::move(slots_[j].value);
                i = j;
            }
        }
        slots_[i].key = empty_key;
        slots_[i].value = V{};
        --size_;
        return true;
    }

    void clear() {
        slots_.clear();
        mask_ = 0;
        size_ = 0;
    }
    void reserve(size_t n) {
        while (n * 4 > slots_.size() * 3)
            grow();
    }

    template <typename F> void for_each(F&& f) const {
        for (const auto& s : slots_)
            if (s.key != empty_key)
                f(s.key, s.value);
    }
    template <typename F> void for_each(F&& f) {
        for (auto& s : slots_)
            if (s.key != empty_key)
                f(s.key, s.value);
    }
    // Heap bytes held (for memory-per-entry figures).
    size_t memory_bytes() const noexcept { return slots_.capacity() * sizeof(slot); }

  private:
    struct slot {
        uint64_t key = empty_key;
        V value{};
    };
    static uint64_t mix(uint64_t k) noexcept { // murmur3 fmix64
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdULL;
        k ^= k >> 33;
        k *= 0xc4ceb9fe1a85ec53ULL;
        k ^= k >> 33;
        return k;
    }
    size_t home(uint64_t key) const noexcept { return static_cast<size_t>(mix(key)) & mask_; }
    void grow() {
        std::vector<slot> old;
        old.swap(slots_);
        slots_.resize(old.empty() ? 16 : old.size() * 2);
        mask_ = slots_.size() - 1;
        for (auto& s : old) {
            if (s.key == empty_key)
                continue;
            size_t i = home(s.key);
            while (slots_[i].key != empty_key)
                i = (i + 1) & mask_;
            slots_[i].key = s.key;
            slots_[i].value = std::move(s.value);
        }
    }

    std::vector<slot> slots_;
    size_t mask_ = 0;
    size_t size_ = 0;
};

} // namespace sagd::fwd
