// Control-path results: a value or an error a user can act on (its code says what kind, for
// callers that map errors, e.g. to API statuses). Never used per packet. forwarding/ is the
// lowest layer that needs it; dataplane/result.hpp re-exports it as sagd::result.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace sagd::fwd {

enum class errc : uint8_t {
    invalid_argument, // e.g. prefix length > 32, host bits set
    table_full,       // a fixed capacity is reached
    not_found,
    conflict,   // e.g. a static entry refuses a dynamic update
    dpdk_error, // a DPDK call failed (message carries rte_errno text)
};

struct error {
    error(std::string msg) : message(std::move(msg)) {}
    error(errc c, std::string msg) : code(c), message(std::move(msg)) {}
    errc code = errc::invalid_argument;
    std::string message; // names the object and the reason
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

} // namespace sagd::fwd
