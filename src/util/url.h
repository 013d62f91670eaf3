#pragma once

#include <map>
#include <string>
#include <string_view>

namespace switchyard::util {

// Decodes application/x-www-form-urlencoded text ('+' is a space, %XX a byte). False on a
// malformed escape.
bool percent_decode(std::string_view in, std::string& out);

// Splits a query string into decoded name → value (a malformed escape keeps the text as sent;
// a repeated name keeps the last value).
std::map<std::string, std::string> parse_query(std::string_view q);

// Percent-encodes a query value (unreserved characters, ',' and ':' kept as they are).
std::string percent_encode(std::string_view s);

}  // namespace switchyard::util
