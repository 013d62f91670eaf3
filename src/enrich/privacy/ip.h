#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::enrich::privacy {

// What happens to an event's IP address before it is stored: kept as received, truncated to its
// network (truncate_ip), or removed.
enum class ip_mode { keep, truncate, remove };

// "keep", "truncate", "remove" (exact, lowercase); nullopt for anything else.
std::optional<ip_mode> ip_mode_from_string(std::string_view s) noexcept;
std::string_view to_string(ip_mode m) noexcept;

// The longest text truncate_ip accepts: a full IPv6 address with an embedded IPv4 address
// ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").
inline constexpr std::size_t max_ip_text = 45;

// A parsed address in network byte order: 4 bytes for IPv4, 16 for IPv6.
struct ip_address {
    bool v6 = false;
    std::array<std::uint8_t, 16> bytes{};
};

// Parses exactly one address with inet_pton's rules (no leading zeros in IPv4, no whitespace, no
// zone id, no port). IPv4-mapped IPv6 ("::ffff:203.0.113.77") comes back as IPv4. False for
// anything else, including embedded NULs and text longer than max_ip_text.
bool parse_ip(std::string_view text, ip_address& out) noexcept;

// The address with its host part zeroed, in canonical form (inet_ntop):
//  - IPv4 keeps its /24: "203.0.113.77" → "203.0.113.0";
//  - IPv6 keeps its /48: "2001:db8:abcd:12::1" → "2001:db8:abcd::";
//  - IPv4-mapped IPv6 ("::ffff:203.0.113.77") is an IPv4 client seen through a dual-stack
//    socket: truncated as IPv4 and returned as plain IPv4 ("203.0.113.0"), so one client gives
//    the same value whichever listener it came through;
//  - 6to4 (2002::/16) carries the client's whole IPv4 address in bits 16-47, so it keeps only
//    /40 (the embedded address's /24): "2002:cb00:714d::1" → "2002:cb00:7100::".
// Returns "" for text that is not exactly one address: surrounding whitespace, zone ids
// ("fe80::1%eth0"), ports, CIDR suffixes, embedded NULs, more than max_ip_text bytes. The caller
// then drops the address. Parses on the stack; allocates only the result.
std::string truncate_ip(std::string_view ip);

}  // namespace switchyard::enrich::privacy
