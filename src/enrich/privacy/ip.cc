#include "enrich/privacy/ip.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>

namespace switchyard::enrich::privacy {

std::optional<ip_mode> ip_mode_from_string(std::string_view s) noexcept {
    if (s == "keep") return ip_mode::keep;
    if (s == "truncate") return ip_mode::truncate;
    if (s == "remove") return ip_mode::remove;
    return std::nullopt;
}

std::string_view to_string(ip_mode m) noexcept {
    switch (m) {
        case ip_mode::keep:
            return "keep";
        case ip_mode::truncate:
            return "truncate";
        case ip_mode::remove:
            return "remove";
    }
    return "unknown";
}

bool parse_ip(std::string_view text, ip_address& out) noexcept {
    // inet_pton wants a C string: copy into a bounded stack buffer. A NUL inside the view would
    // end the string early and let "1.2.3.4\0junk" through, so it is rejected first.
    if (text.empty() || text.size() > max_ip_text) return false;
    if (std::memchr(text.data(), '\0', text.size()) != nullptr) return false;
    char buf[max_ip_text + 1];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';

    if (text.find(':') == std::string_view::npos) {
        in_addr a4;
        if (::inet_pton(AF_INET, buf, &a4) != 1) return false;
        out.v6 = false;
        out.bytes = {};
        std::memcpy(out.bytes.data(), &a4, 4);
        return true;
    }
    in6_addr a6;
    if (::inet_pton(AF_INET6, buf, &a6) != 1) return false;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        out.v6 = false;
        out.bytes = {};
        std::memcpy(out.bytes.data(), &a6.s6_addr[12], 4);
        return true;
    }
    out.v6 = true;
    std::memcpy(out.bytes.data(), a6.s6_addr, 16);
    return true;
}

std::string truncate_ip(std::string_view ip) {
    ip_address a;
    if (!parse_ip(ip, a)) return {};
    char buf[INET6_ADDRSTRLEN];
    if (!a.v6) {
        // Keep the /24. Written by hand: inet_ntop formats with sprintf, several times slower.
        std::string out;
        out.reserve(15);
        for (int i = 0; i < 3; ++i) {
            unsigned v = a.bytes[i];
            if (v >= 100) out += static_cast<char>('0' + v / 100);
            if (v >= 10) out += static_cast<char>('0' + v / 10 % 10);
            out += static_cast<char>('0' + v % 10);
            out += '.';
        }
        out += '0';
        return out;
    }
    // Keep the /48, except 6to4 (2002::/16), whose bits 16-47 are the client's IPv4 address:
    // there keep /40, the embedded address's /24, as for plain IPv4.
    const bool six_to_four = a.bytes[0] == 0x20 && a.bytes[1] == 0x02;
    std::fill(a.bytes.begin() + (six_to_four ? 5 : 6), a.bytes.end(), std::uint8_t{0});
    if (::inet_ntop(AF_INET6, a.bytes.data(), buf, sizeof buf) == nullptr) return {};
    return buf;
}

}  // namespace switchyard::enrich::privacy
