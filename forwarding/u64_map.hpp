// u64_map: an open-addressing hash map from uint64_t keys to values, for the control side's
// big tables (a million routes). One array of slots, linear probing, backward-shift deletion
// (no tombstones), grown x2 at 3/4 load: an insert or lookup costs one or two cache lines and
// no allocation of its own, where std::map walks ~20 nodes and std::unordered_map allocates
// a node per entry. Key ~0 is reserved (it marks an empty slot). Any insert may move every
// value: pointers returned by find() and try_emplace() last until the next insert or erase.
// Not thread-safe (the control thread owns it). Iteration order is unspecified.
//
// Slot arrays of 2 MiB and more are mapped on their own and advised to transparent huge
// pages: at a million entries every access is a cache miss anyway, and with 4 KiB pages it
// is a TLB miss too (a two-level page walk in a VM). Tables with a configured limit reserve()
// it up front: growing a million-entry table means allocating, touching and rehashing into
// twice the memory in the middle of a route load.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace sagd::fwd {

template <typename V> class u64_map {
  public:
    static constexpr uint64_t empty_key = ~uint64_t{0};

    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    size_t capacity() const noexcept { return cap_; }

    u64_map() = default;
    ~u64_map() { release(slots_, cap_); }
    u64_map(const u64_map&) = delete;
    u64_map& operator=(const u64_map&) = delete;
    u64_map(u64_map&& o) noexcept { swap(o); }
    u64_map& operator=(u64_map&& o) noexcept {
        if (this != &o) {
            clear();
            swap(o);
        }
        return *this;
    }
    void swap(u64_map& o) noexcept {
        std::swap(slots_, o.slots_);
        std::swap(cap_, o.cap_);
        std::swap(mask_, o.mask_);
        std::swap(size_, o.size_);
    }

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
    // Starts loading the slot `key` hashes to: a loop over many keys prefetches a few ahead,
    // so the cache misses of consecutive lookups overlap.
    void prefetch(uint64_t key) const noexcept {
        if (cap_ != 0)
            __builtin_prefetch(&slots_[home(key)]);
    }

    // The value of `key`, default-constructed if new; second is true when it was inserted.
    std::pair<V*, bool> try_emplace(uint64_t key) {
        if ((size_ + 1) * 4 > cap_ * 3)
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
        release(slots_, cap_);
        slots_ = nullptr;
        cap_ = mask_ = size_ = 0;
    }
    // Room for n entries without growing: one allocation, made (and touched) now.
    void reserve(size_t n) {
        size_t want = cap_ == 0 ? 16 : cap_;
        while (n * 4 > want * 3)
            want *= 2;
        if (want != cap_)
            rehash_into(want);
    }

    template <typename F> void for_each(F&& f) const {
        for (size_t i = 0; i < cap_; ++i)
            if (slots_[i].key != empty_key)
                f(slots_[i].key, slots_[i].value);
    }
    // f(key, value) in key order for the entries where keep(key, value) holds: one pass to
    // collect, a sort, no second lookup. For listings (O(n log n)); must not change the map.
    template <typename Keep, typename F> void for_each_sorted(Keep&& keep, F&& f) const {
        std::vector<std::pair<uint64_t, const V*>> picked;
        for_each([&](uint64_t k, const V& v) {
            if (keep(k, v))
                picked.emplace_back(k, &v);
        });
        std::sort(picked.begin(), picked.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        for (const auto& [k, v] : picked)
            f(k, *v);
    }
    template <typename F> void for_each(F&& f) {
        for (size_t i = 0; i < cap_; ++i)
            if (slots_[i].key != empty_key)
                f(slots_[i].key, slots_[i].value);
    }

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
    static constexpr size_t huge = size_t{2} << 20;
    static size_t mapped_bytes(size_t n) { return (n * sizeof(slot) + huge - 1) & ~(huge - 1); }
    static slot* allocate(size_t n) {
        void* p = nullptr;
        if (n * sizeof(slot) < huge) {
            p = ::operator new (n * sizeof(slot), std::align_val_t{alignof(slot)});
        } else {
            p = ::mmap(nullptr, mapped_bytes(n), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                throw std::bad_alloc();
            (void)::madvise(p, mapped_bytes(n), MADV_HUGEPAGE); // a hint: fine if refused
        }
        auto* s = static_cast<slot*>(p);
        for (size_t i = 0; i < n; ++i)
            new (&s[i]) slot();
        return s;
    }
    static void release(slot* s, size_t n) noexcept {
        if (s == nullptr)
            return;
        for (size_t i = 0; i < n; ++i)
            s[i].~slot();
        if (n * sizeof(slot) < huge)
            ::operator delete (s, std::align_val_t{alignof(slot)});
        else
            (void)::munmap(s, mapped_bytes(n));
    }
    void grow() { rehash_into(cap_ == 0 ? 16 : cap_ * 2); }
    void rehash_into(size_t n) {
        slot* fresh = allocate(n);
        const size_t mask = n - 1;
        for (size_t j = 0; j < cap_; ++j) {
            slot& s = slots_[j];
            if (s.key == empty_key)
                continue;
            size_t i = static_cast<size_t>(mix(s.key)) & mask;
            while (fresh[i].key != empty_key)
                i = (i + 1) & mask;
            fresh[i].key = s.key;
            fresh[i].value = std::move(s.value);
        }
        release(slots_, cap_);
        slots_ = fresh;
        cap_ = n;
        mask_ = mask;
    }

    slot* slots_ = nullptr;
    size_t cap_ = 0;
    size_t mask_ = 0;
    size_t size_ = 0;
};

} // namespace sagd::fwd
