#include "http/cors.h"

namespace switchyard::http {

namespace bhttp = boost::beast::http;

cors_policy::cors_policy(const std::vector<std::string>& origins) {
    for (const auto& o : origins) {
        if (o == "*") {
            any_ = true;
        } else {
            origins_.push_back(o);
        }
    }
}

bool cors_policy::allows(std::string_view origin) const {
    if (origin.empty()) return false;
    for (const auto& o : origins_) {
        if (o == origin) return true;
    }
    return any_;
}

void cors_policy::apply(response& res, std::string_view origin) const {
    if (origin.empty()) return;
    res.set(bhttp::field::vary, "Origin");
    for (const auto& o : origins_) {
        if (o == origin) {
            res.set(bhttp::field::access_control_allow_origin, origin);
            res.set(bhttp::field::access_control_allow_credentials, "true");
            res.set(bhttp::field::access_control_expose_headers, "Retry-After");
            return;
        }
    }
    if (any_) {
        res.set(bhttp::field::access_control_allow_origin, "*");
        res.set(bhttp::field::access_control_expose_headers, "Retry-After");
    }
}

}  // namespace switchyard::http
