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

}  // namespace switchyard::util
