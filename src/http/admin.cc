#include "http/admin.h"

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>

namespace switchyard::http {

namespace bhttp = boost::beast::http;

namespace {

response json_response(unsigned status, std::string body) {
    response res{static_cast<bhttp::status>(status), 11};
    res.set(bhttp::field::content_type, "application/json");
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

}  // namespace

bool token_equals(std::string_view presented, std::string_view expected) noexcept {
    unsigned char diff = presented.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < presented.size(); ++i) {
        diff |= static_cast<unsigned char>(presented[i] ^
                                           expected[i % (expected.empty() ? 1 : expected.size())]);
    }
    return diff == 0 && !expected.empty();
}

admin_handler::admin_handler(telemetry::metrics& m, std::function<bool()> ready, std::string token,
                             operator_backend* backend)
    : metrics_(m),
      ready_(std::move(ready)),
      token_(std::move(token)),
      backend_(backend),
      ops_(std::make_unique<boost::asio::thread_pool>(1)) {}

admin_handler::~admin_handler() { ops_->join(); }

void admin_handler::handle(request& req, const boost::asio::ip::address&, responder respond) {
    std::string_view target = req.target();
    auto q = target.find('?');
    std::string_view path = target.substr(0, q);
    std::string_view query =
        q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);

    if (path.substr(0, 4) == "/v1/") {
        if (backend_ == nullptr || token_.empty()) {
            respond(json_response(
                403,
                R"({"error":"operator_api_disabled","message":"set admin.token to enable the operator API"})"));
            return;
        }
        std::string_view auth = req[bhttp::field::authorization];
        std::string_view presented;
        if (auth.size() > 7 && boost::beast::iequals(auth.substr(0, 7), "Bearer "))
            presented = auth.substr(7);
        if (!token_equals(presented, token_)) {
            auto res = json_response(
                401, R"({"error":"unauthorized","message":"missing or wrong bearer token"})");
            res.set(bhttp::field::www_authenticate, "Bearer");
            respond(std::move(res));
            return;
        }
        boost::asio::post(*ops_,
                          [this, method = std::string(req.method_string()), p = std::string(path),
                           qs = std::string(query), body = req.body(), respond]() {
                              auto r = backend_->call(method, p, qs, body);
                              respond(json_response(r.status, std::move(r.json)));
                          });
        return;
    }

    response res{bhttp::status::ok, 11};
    if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
        res.result(bhttp::status::method_not_allowed);
        res.set(bhttp::field::allow, "GET, HEAD");
        res.set(bhttp::field::content_type, "application/json");
        res.body() = R"({"error":"method_not_allowed","message":"use GET or HEAD"})";
    } else if (path == "/healthz") {
        res.set(bhttp::field::content_type, "application/json");
        res.body() = R"({"status":"ok"})";
    } else if (path == "/readyz") {
        bool ready = ready_();
        res.result(ready ? bhttp::status::ok : bhttp::status::service_unavailable);
        res.set(bhttp::field::content_type, "application/json");
        res.body() = ready ? R"({"status":"ready"})" : R"({"status":"not ready"})";
    } else if (path == "/metrics") {
        res.set(bhttp::field::content_type, "text/plain; version=0.0.4");
        res.body() = metrics_.render();
    } else {
        res.result(bhttp::status::not_found);
        res.set(bhttp::field::content_type, "application/json");
        res.body() =
            R"({"error":"not_found","message":"admin paths are /healthz, /readyz, /metrics and /v1/*"})";
    }
    res.prepare_payload();
    if (req.method() == bhttp::verb::head) {
        // Same headers (including Content-Length) as GET, no body: anything after the head
        // would be read as the start of the next response on a keep-alive connection.
        res.body().clear();
    }
    respond(std::move(res));
}

}  // namespace switchyard::http
