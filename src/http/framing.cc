#include "http/framing.h"

#include <boost/beast/core/string.hpp>

namespace switchyard::http {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

std::optional<std::string> check_framing(const boost::beast::http::fields& f) {
    namespace http = boost::beast::http;
    std::size_t cl_count = 0;
    std::size_t te_count = 0;
    std::string_view cl_value;
    std::string_view te_value;
    for (const auto& field : f) {
        if (field.name() == http::field::content_length) {
            ++cl_count;
            cl_value = field.value();
        } else if (field.name() == http::field::transfer_encoding) {
            ++te_count;
            te_value = field.value();
        }
    }
    if (cl_count > 1) return "repeated Content-Length header";
    if (te_count > 1) return "repeated Transfer-Encoding header";
    if (cl_count == 1 && te_count == 1) return "Transfer-Encoding together with Content-Length";
    if (cl_count == 1) {
        std::string_view v = trim(cl_value);
        if (v.empty() || v.size() > 18) return "malformed Content-Length header";
        for (char c : v) {
            if (c < '0' || c > '9') return "malformed Content-Length header";
        }
    }
    if (te_count == 1 && !boost::beast::iequals(trim(te_value), "chunked")) {
        return "unsupported transfer coding (only 'chunked' is accepted)";
    }
    return std::nullopt;
}

}  // namespace switchyard::http
