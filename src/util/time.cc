#include "util/time.h"

#include <chrono>

namespace switchyard::util {

bool parse_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) noexcept {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

void civil_from_days(std::int64_t z, int& y, unsigned& m, unsigned& d) noexcept {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t yy = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y = static_cast<int>(yy + (m <= 2));
}

std::optional<std::int64_t> parse_iso8601_ms(std::string_view s) noexcept {
    int y, mo, d, h, mi, se;
    if (!parse_digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !parse_digits(s, 5, 2, mo) ||
        s[7] != '-' || !parse_digits(s, 8, 2, d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !parse_digits(s, 11, 2, h) ||
        s[13] != ':' || !parse_digits(s, 14, 2, mi) || s[16] != ':' ||
        !parse_digits(s, 17, 2, se)) {
        return std::nullopt;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
    std::size_t pos = 19;
    int ms = 0;
    if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        ++pos;
        int n = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (n < 3) ms = ms * 10 + (s[pos] - '0');
            ++n;
            ++pos;
        }
        if (n == 0) return std::nullopt;
        for (int i = n; i < 3; ++i) ms *= 10;
    }
    int offset_min = 0;
    if (pos < s.size()) {
        char c = s[pos];
        if (c == 'Z' || c == 'z') {
            ++pos;
        } else if (c == '+' || c == '-') {
            int oh, om;
            if (!parse_digits(s, pos + 1, 2, oh)) return std::nullopt;
            std::size_t p2 = pos + 3;
            if (p2 < s.size() && s[p2] == ':') ++p2;
            if (!parse_digits(s, p2, 2, om)) return std::nullopt;
            offset_min = (oh * 60 + om) * (c == '-' ? -1 : 1);
            pos = p2 + 2;
        } else {
            return std::nullopt;
        }
    }
    if (pos != s.size()) return std::nullopt;
    std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset_min * 60;
    return secs * 1000 + ms;
}

void append_iso8601_ms(std::string& out, std::int64_t epoch_ms) {
    std::int64_t ms = epoch_ms % 1000;
    std::int64_t secs = epoch_ms / 1000;
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    std::int64_t days = secs / 86400;
    std::int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int yi;
    unsigned m, d;
    civil_from_days(days, yi, m, d);
    std::int64_t y = yi;
    char buf[32];
    auto put = [&](int pos, std::int64_t v, int width) {
        for (int i = width - 1; i >= 0; --i) {
            buf[pos + i] = static_cast<char>('0' + v % 10);
            v /= 10;
        }
    };
    if (y < 0 || y > 9999) y = 0;
    put(0, y, 4);
    buf[4] = '-';
    put(5, m, 2);
    buf[7] = '-';
    put(8, d, 2);
    buf[10] = 'T';
    put(11, rem / 3600, 2);
    buf[13] = ':';
    put(14, (rem / 60) % 60, 2);
    buf[16] = ':';
    put(17, rem % 60, 2);
    buf[19] = '.';
    put(20, ms, 3);
    buf[23] = 'Z';
    out.append(buf, 24);
}

std::string format_iso8601_ms(std::int64_t epoch_ms) {
    std::string s;
    append_iso8601_ms(s, epoch_ms);
    return s;
}

std::int64_t now_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace switchyard::util
