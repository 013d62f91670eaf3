#include "http/net.h"

#include <charconv>

namespace switchyard::http {

namespace asio = boost::asio;

namespace {

asio::ip::address normalize(const asio::ip::address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
        return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    }
    return a;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

bool cidr::contains(const asio::ip::address& raw) const {
    auto a = normalize(raw);
    if (a.is_v4() != base.is_v4()) return false;
    if (a.is_v4()) {
        auto x = a.to_v4().to_uint();
        auto b = base.to_v4().to_uint();
        std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
        return (x & mask) == (b & mask);
    }
    auto x = a.to_v6().to_bytes();
    auto b = base.to_v6().to_bytes();
    unsigned bits = prefix;
    for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
        unsigned take = bits >= 8 ? 8 : bits;
        auto mask = static_cast<unsigned char>(0xFF << (8 - take));
        if ((x[i] & mask) != (b[i] & mask)) return false;
        bits -= take;
    }
    return true;
}

std::optional<cidr> parse_cidr(std::string_view s) {
    s = trim(s);
    std::string_view addr = s;
    std::optional<unsigned> prefix;
    if (auto slash = s.find('/'); slash != std::string_view::npos) {
        addr = s.substr(0, slash);
        unsigned p = 0;
        auto tail = s.substr(slash + 1);
        auto [ptr, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), p);
        if (ec != std::errc() || ptr != tail.data() + tail.size()) return std::nullopt;
        prefix = p;
    }
    boost::system::error_code ec;
    auto a = asio::ip::make_address(std::string(addr), ec);
    if (ec) return std::nullopt;
    a = normalize(a);
    unsigned max = a.is_v4() ? 32 : 128;
    if (prefix && *prefix > max) return std::nullopt;
    return cidr{a, prefix.value_or(max)};
}

std::string client_ip(const asio::ip::address& peer_raw, std::string_view xff,
                      const std::vector<cidr>& trusted) {
    auto peer = normalize(peer_raw);
    auto is_trusted = [&](const asio::ip::address& a) {
        for (const auto& c : trusted) {
            if (c.contains(a)) return true;
        }
        return false;
    };
    if (xff.empty() || !is_trusted(peer)) return peer.to_string();
    std::string_view rest = xff;
    std::string candidate = peer.to_string();
    while (!rest.empty()) {
        auto comma = rest.rfind(',');
        std::string_view item =
            trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
        boost::system::error_code ec;
        auto a = asio::ip::make_address(std::string(item), ec);
        if (ec) break;  // garbage from an untrusted hop: stop at the last good address
        a = normalize(a);
        candidate = a.to_string();
        if (!is_trusted(a)) break;
    }
    return candidate;
}

bool split_host_port(std::string_view s, std::string& host, unsigned short& port) {
    std::string_view h, p;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
            return false;
        }
        h = s.substr(1, close - 1);
        p = s.substr(close + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string_view::npos) return false;
        h = s.substr(0, colon);
        p = s.substr(colon + 1);
    }
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc() || ptr != p.data() + p.size() || v > 65535) return false;
    host = h.empty() ? "0.0.0.0" : std::string(h);
    port = static_cast<unsigned short>(v);
    return true;
}

}  // namespace switchyard::http
