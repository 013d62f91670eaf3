#pragma once

#include <cassert>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace switchyard {

// Domain error codes returned on the data path instead of exceptions.
enum class errc {
    ok = 0,
    log_full,          // the event log reached its byte capacity
    log_closed,        // the log is shutting down
    io_error,          // a filesystem call failed
    corrupt_record,    // a log record failed its CRC or length check
    invalid_argument,  // caller passed something the callee cannot use
    not_found,
    timed_out,
    unavailable,  // a remote log (Kafka) cannot confirm appends right now
};

const std::error_category& switchyard_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), switchyard_category()};
}

// A value or an error code. Small on purpose: the data path only needs has_value/value/error.
template <class T>
class result {
  public:
    result(T value) : v_(std::move(value)) {}            // NOLINT(google-explicit-constructor)
    result(std::error_code ec) : v_(ec) { assert(ec); }  // NOLINT(google-explicit-constructor)
    result(errc e) : v_(make_error_code(e)) {}           // NOLINT(google-explicit-constructor)

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    std::error_code error() const noexcept {
        return has_value() ? std::error_code{} : std::get<1>(v_);
    }

  private:
    std::variant<T, std::error_code> v_;
};

}  // namespace switchyard

template <>
struct std::is_error_code_enum<switchyard::errc> : std::true_type {};
