#pragma once

#include <string>
#include <string_view>

namespace switchyard::util {

// Appends `s` as a JSON string literal (quotes included). `s` must be valid UTF-8, which holds
// for every string that came out of simdjson.
void append_json_string(std::string& out, std::string_view s);

}  // namespace switchyard::util
