#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::util {

// Parses an ISO-8601 / RFC 3339 date-time ("2024-05-01T12:00:00Z", with optional fraction and
// "+hh:mm"/"-hh:mm"/"Z" offset; a missing offset means UTC) into Unix epoch milliseconds.
std::optional<std::int64_t> parse_iso8601_ms(std::string_view s) noexcept;

// Appends "YYYY-MM-DDTHH:MM:SS.mmmZ".
void append_iso8601_ms(std::string& out, std::int64_t epoch_ms);
std::string format_iso8601_ms(std::int64_t epoch_ms);

std::int64_t now_ms() noexcept;

// Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard Hinnant's algorithms).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}
void civil_from_days(std::int64_t days, int& y, unsigned& m, unsigned& d) noexcept;

// Reads exactly `n` ASCII digits of `s` at `pos`; false if any is missing or not a digit.
bool parse_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) noexcept;

}  // namespace switchyard::util
