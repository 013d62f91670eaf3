#pragma once

#include <boost/beast/http/fields.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace switchyard::http {

// Request-smuggling checks Beast 1.81 does not make on its own. Returns the reason a request
// header must be refused (400, connection closed), or nullopt when its framing is unambiguous:
// at most one Content-Length, made of digits only; at most one Transfer-Encoding, exactly
// "chunked"; never both.
std::optional<std::string> check_framing(const boost::beast::http::fields& f);

}  // namespace switchyard::http
