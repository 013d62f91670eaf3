#pragma once

#include "http/admin.h"
#include "util/json.h"

#include <string>
#include <string_view>

namespace switchyard::app {

// The operator API's error answer: {"error": code, "message": message}.
inline http::operator_backend::reply error_reply(unsigned status, std::string_view code,
                                                 std::string_view message) {
    std::string j = "{\"error\":";
    util::append_json_string(j, code);
    j += ",\"message\":";
    util::append_json_string(j, message);
    j += '}';
    return {status, std::move(j)};
}

}  // namespace switchyard::app
