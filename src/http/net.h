#pragma once

#include <boost/asio/ip/address.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::http {

// An IPv4 or IPv6 network in CIDR form ("10.0.0.0/8", "::1/128", or a bare address).
struct cidr {
    boost::asio::ip::address base;
    unsigned prefix = 0;
    bool contains(const boost::asio::ip::address& a) const;
};

std::optional<cidr> parse_cidr(std::string_view s);

// The client address: the peer, or — only when the peer is a trusted proxy — the right-most
// X-Forwarded-For entry that is not itself a trusted proxy.
std::string client_ip(const boost::asio::ip::address& peer, std::string_view x_forwarded_for,
                      const std::vector<cidr>& trusted);

// Parses "host:port" / "[v6]:port". False when malformed.
bool split_host_port(std::string_view s, std::string& host, unsigned short& port);

}  // namespace switchyard::http
