#include "http/admin.h"

namespace switchyard::http {

namespace bhttp = boost::beast::http;

void admin_handler::handle(request& req, const boost::asio::ip::address&, responder respond) {
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
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
            R"({"error":"not_found","message":"admin paths are /healthz, /readyz and /metrics"})";
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
