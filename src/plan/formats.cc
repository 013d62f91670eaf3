// Type names and the `format` checks. The format checkers are hand-written rather than regexes:
// they run on the ingest path and each is a single pass without allocation.
#include "plan/schema.h"

#include <array>

namespace switchyard::plan::detail {

namespace {

constexpr std::array<std::pair<std::uint8_t, std::string_view>, 7> type_names = {{
    {t_string, "string"},
    {t_number, "number"},
    {t_integer, "integer"},
    {t_boolean, "boolean"},
    {t_object, "object"},
    {t_array, "array"},
    {t_null, "null"},
}};

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_hex(char c) noexcept {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Reads `n` digits at s[i..]; false if any is not a digit.
bool digits(std::string_view s, std::size_t i, std::size_t n, int& out) noexcept {
    if (i + n > s.size()) return false;
    out = 0;
    for (std::size_t k = 0; k < n; ++k) {
        if (!is_digit(s[i + k])) return false;
        out = out * 10 + (s[i + k] - '0');
    }
    return true;
}

// RFC 3339 `date-time`: full-date "T" full-time, with a mandatory offset ("Z" or +hh:mm).
bool is_date_time(std::string_view s) noexcept {
    int year, month, day, hour, minute, second;
    if (!digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, month) ||
        s[7] != '-' || !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s, 11, 2, hour) || s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' ||
        !digits(s, 17, 2, second)) {
        return false;
    }
    static constexpr int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1 || day > month_days[month - 1]) return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap) return false;
    if (hour > 23 || minute > 59 || second > 60) return false;  // 60: leap second
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        std::size_t start = ++i;
        while (i < s.size() && is_digit(s[i])) ++i;
        if (i == start) return false;
    }
    if (i >= s.size()) return false;
    if (s[i] == 'Z' || s[i] == 'z') return i + 1 == s.size();
    if (s[i] != '+' && s[i] != '-') return false;
    int oh, om;
    return i + 6 == s.size() && digits(s, i + 1, 2, oh) && s[i + 3] == ':' &&
           digits(s, i + 4, 2, om) && oh <= 23 && om <= 59;
}

// A practical address check (RFC 5321 dot-atom, UTF-8 allowed as in RFC 6531): local@domain,
// the domain with at least two labels. Quoted local parts and IP literals are refused; they do
// not occur in clickstream data except as mistakes.
bool is_email(std::string_view s) noexcept {
    auto at = s.find('@');
    if (at == std::string_view::npos || s.find('@', at + 1) != std::string_view::npos) {
        return false;
    }
    std::string_view local = s.substr(0, at), domain = s.substr(at + 1);
    if (local.empty() || local.size() > 64 || domain.empty() || domain.size() > 253) return false;
    if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
        return false;
    }
    static constexpr std::string_view atext_special = "!#$%&'*+-/=?^_`{|}~.";
    for (char c : local) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x80 && !is_alpha(c) && !is_digit(c) &&
            atext_special.find(c) == std::string_view::npos) {
            return false;
        }
    }
    std::size_t labels = 0, label_len = 0;
    char prev = '.';
    for (char c : domain) {
        auto u = static_cast<unsigned char>(c);
        if (c == '.') {
            if (label_len == 0 || prev == '-') return false;
            ++labels;
            label_len = 0;
        } else if (u >= 0x80 || is_alpha(c) || is_digit(c) || c == '-') {
            if (label_len == 0 && c == '-') return false;
            if (++label_len > 63) return false;
        } else {
            return false;
        }
        prev = c;
    }
    if (label_len == 0 || prev == '-') return false;
    return labels + 1 >= 2;
}

// RFC 3986 absolute URI: a scheme, ':', then only URI characters with valid %-escapes.
bool is_uri(std::string_view s) noexcept {
    if (s.empty() || !is_alpha(s[0])) return false;
    std::size_t i = 1;
    while (i < s.size() &&
           (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')) {
        ++i;
    }
    if (i >= s.size() || s[i] != ':') return false;
    static constexpr std::string_view allowed = "-._~:/?#[]@!$&'()*+,;=";
    for (++i; i < s.size(); ++i) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
            i += 2;
        } else if (!is_alpha(c) && !is_digit(c) && allowed.find(c) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

bool is_uuid(std::string_view s) noexcept {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i])) return false;
    }
    return true;
}

}  // namespace

std::string_view type_name(std::uint8_t bit) noexcept {
    for (const auto& [b, n] : type_names) {
        if (b == bit) return n;
    }
    return "unknown";
}

std::optional<std::uint8_t> type_from_name(std::string_view s) noexcept {
    for (const auto& [b, n] : type_names) {
        if (n == s) return b;
    }
    return std::nullopt;
}

std::string describe_types(std::uint8_t mask) {
    std::vector<std::string_view> names;
    for (const auto& [b, n] : type_names) {
        if ((mask & b) != 0) names.push_back(n);
    }
    if (names.empty()) return "any";
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
        out += names[i];
    }
    return out;
}

std::string_view format_name(string_format f) noexcept {
    switch (f) {
        case string_format::date_time:
            return "date-time";
        case string_format::email:
            return "email";
        case string_format::uri:
            return "uri";
        case string_format::uuid:
            return "uuid";
        case string_format::none:
            break;
    }
    return "none";
}

std::optional<string_format> format_from_name(std::string_view s) noexcept {
    if (s == "date-time") return string_format::date_time;
    if (s == "email") return string_format::email;
    if (s == "uri") return string_format::uri;
    if (s == "uuid") return string_format::uuid;
    return std::nullopt;
}

bool check_format(string_format f, std::string_view s) noexcept {
    switch (f) {
        case string_format::date_time:
            return is_date_time(s);
        case string_format::email:
            return is_email(s);
        case string_format::uri:
            return is_uri(s);
        case string_format::uuid:
            return is_uuid(s);
        case string_format::none:
            break;
    }
    return true;
}

}  // namespace switchyard::plan::detail
