#pragma once

#include <string>
#include <string_view>

namespace switchyard::util {

// Decodes application/x-www-form-urlencoded text ('+' is a space, %XX a byte). False on a
// malformed escape.
bool percent_decode(std::string_view in, std::string& out);

}  // namespace switchyard::util
