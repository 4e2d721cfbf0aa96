// Control-path results: a value or an error a user can act on. Never used per packet.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace sagd {

struct error {
    std::string message; // names the object, the field and the reason
};

template <typename T> class [[nodiscard]] result {
  public:
    result(T value) : v_(std::move(value)) {}
    result(error e) : v_(std::move(e)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    T& operator*() & { return value(); }
    const error& err() const { return std::get<1>(v_); }

  private:
    std::variant<T, error> v_;
};

struct ok_t {};
using status = result<ok_t>;
inline status ok() {
    return ok_t{};
}

} // namespace sagd
