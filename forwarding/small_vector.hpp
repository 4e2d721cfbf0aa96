// small_vector<T, N>: a vector of trivially copyable T that keeps up to N elements inline and
// moves to the heap beyond. For per-route lists that almost always hold one element (a
// route's gateways, its next hops): a million routes then cost no heap allocation each.
// The subset of std::vector the code uses: size, empty, data, begin/end, [], front, back,
// push_back, clear, ==, and construction from an initializer list or a std::vector.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>
#include <type_traits>
#include <vector>

namespace sagd::fwd {

template <typename T, size_t N> class small_vector {
    static_assert(std::is_trivially_copyable_v<T>, "elements are copied as bytes");
    static_assert(N >= 1);

  public:
    using value_type = T;
    using size_type = size_t;
    using iterator = T*;
    using const_iterator = const T*;
    using reference = T&;
    using const_reference = const T&;

    small_vector() noexcept {}
    small_vector(std::initializer_list<T> il) { assign(il.begin(), il.end()); }
    small_vector(const std::vector<T>& v) { assign(v.data(), v.data() + v.size()); } // NOLINT
    small_vector(const small_vector& o) { assign(o.begin(), o.end()); }
    small_vector(small_vector&& o) noexcept { take(o); }
    small_vector& operator=(const small_vector& o) {
        if (this != &o)
            assign(o.begin(), o.end());
        return *this;
    }
    small_vector& operator=(small_vector&& o) noexcept {
        if (this != &o) {
            release();
            take(o);
        }
        return *this;
    }
    small_vector& operator=(std::initializer_list<T> il) {
        assign(il.begin(), il.end());
        return *this;
    }
    ~small_vector() { release(); }

    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    T* data() noexcept { return on_heap() ? heap() : inline_data(); }
    const T* data() const noexcept {
        return on_heap() ? heap() : const_cast<small_vector*>(this)->inline_data();
    }
    T* begin() noexcept { return data(); }
    T* end() noexcept { return data() + size_; }
    const T* begin() const noexcept { return data(); }
    const T* end() const noexcept { return data() + size_; }
    T& operator[](size_t i) noexcept { return data()[i]; }
    const T& operator[](size_t i) const noexcept { return data()[i]; }
    T& front() noexcept { return data()[0]; }
    const T& front() const noexcept { return data()[0]; }
    T& back() noexcept { return data()[size_ - 1]; }
    const T& back() const noexcept { return data()[size_ - 1]; }

    void push_back(const T& v) {
        const T copy = v; // `v` may be one of ours, and grow() moves them
        if (size_ == cap_)
            grow(cap_ * 2);
        data()[size_++] = copy;
    }
    void clear() noexcept { size_ = 0; }
    std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

    friend bool operator==(const small_vector& a, const small_vector& b) {
        return std::equal(a.begin(), a.end(), b.begin(), b.end());
    }
    friend bool operator==(const small_vector& a, const std::vector<T>& b) {
        return std::equal(a.begin(), a.end(), b.begin(), b.end());
    }

  private:
    bool on_heap() const noexcept { return cap_ > N; }
    void grow(uint32_t cap) {
        T* p = static_cast<T*>(::operator new(sizeof(T) * cap));
        std::memcpy(static_cast<void*>(p), static_cast<const void*>(data()), sizeof(T) * size_);
        release();
        set_heap(p);
        cap_ = cap;
    }
    void assign(const T* first, const T* last) {
        const auto n = static_cast<uint32_t>(last - first);
        if (n > cap_) {
            release();
            size_ = 0;
            grow(n);
        }
        if (n != 0)
            std::memmove(static_cast<void*>(data()), static_cast<const void*>(first),
                         sizeof(T) * n);
        size_ = n;
    }
    void release() noexcept {
        if (on_heap())
            ::operator delete(heap());
        cap_ = N;
    }
    void take(small_vector& o) noexcept {
        size_ = o.size_;
        cap_ = o.cap_;
        if (o.on_heap())
            set_heap(o.heap());
        else if (o.size_ != 0)
            std::memcpy(buf_, o.buf_, sizeof(T) * o.size_);
        o.size_ = 0;
        o.cap_ = N;
    }

    // Inline elements, or (beyond N) the heap pointer, in the same bytes.
    T* inline_data() noexcept { return reinterpret_cast<T*>(buf_); }
    T* heap() const noexcept {
        T* p;
        std::memcpy(&p, buf_, sizeof p);
        return p;
    }
    void set_heap(T* p) noexcept { std::memcpy(buf_, &p, sizeof p); }

    uint32_t size_ = 0;
    uint32_t cap_ = N;
    alignas(T) alignas(
        T*) unsigned char buf_[sizeof(T) * N > sizeof(T*) ? sizeof(T) * N : sizeof(T*)];
};

} // namespace sagd::fwd
