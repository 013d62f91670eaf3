#include "app/admin_client.h"

#include "http/net.h"
#include "util/json.h"
#include "util/url.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include <iostream>

namespace switchyard::app {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

admin_reply admin_request(const config::config& cfg, const std::string& method,
                          const std::string& target, const std::string& body) {
    admin_reply out;
    std::string host;
    unsigned short port = 0;
    if (!http::split_host_port(cfg.admin.listen, host, port)) {
        out.error = "admin.listen is not host:port";
        return out;
    }
    if (host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    beast::error_code ec;
    asio::ip::tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec) {
        out.error = "cannot resolve " + host + ": " + ec.message();
        return out;
    }
    stream.expires_after(std::chrono::seconds(30));
    stream.connect(results, ec);
    if (ec) {
        out.error =
            fmt::format("cannot connect to the admin listener at {}: {} (is the daemon running?)",
                        cfg.admin.listen, ec.message());
        return out;
    }
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    req.set(bhttp::field::host, host);
    req.set(bhttp::field::authorization, "Bearer " + cfg.admin.token);
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    bhttp::write(stream, req, ec);
    if (ec) {
        out.error = "request failed: " + ec.message();
        return out;
    }
    beast::flat_buffer buf;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(256u << 20);
    bhttp::read(stream, buf, parser, ec);
    if (ec) {
        out.error = "reading the answer failed: " + ec.message();
        return out;
    }
    out.status = static_cast<int>(parser.get().result_int());
    out.body = parser.get().body();
    return out;
}

namespace {

int report_failure(const admin_reply& r) {
    if (r.status == 0) {
        std::cerr << r.error << '\n';
    } else {
        std::cerr << "HTTP " << r.status << ": " << r.body << '\n';
    }
    return 1;
}

}  // namespace

int cli_destinations(const config::config& cfg, bool json) {
    auto r = admin_request(cfg, "GET", "/v1/destinations");
    if (r.status != 200) return report_failure(r);
    if (json) {
        std::cout << r.body << '\n';
        return 0;
    }
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    if (p.parse(r.body).get(doc)) {
        std::cout << r.body << '\n';
        return 0;
    }
    std::cout << fmt::format("{:<20} {:<9} {:<13} {:>10} {:>9} {:>12} {:>9} {:>8}  {}\n", "NAME",
                             "TYPE", "STATE", "LAG", "LAG_S", "DELIVERED", "RETRIES", "DLQ",
                             "LAST ERROR");
    simdjson::dom::array arr;
    if (doc["destinations"].get(arr)) return 0;
    for (auto d : arr) {
        auto s = [&](const char* k) {
            std::string_view v;
            return d[k].get(v) ? std::string() : std::string(v);
        };
        auto n = [&](const char* k) {
            double v = 0;
            if (d[k].get(v)) {
                uint64_t u = 0;
                if (!d[k].get(u)) v = static_cast<double>(u);
            }
            return v;
        };
        std::cout << fmt::format("{:<20} {:<9} {:<13} {:>10} {:>9.1f} {:>12} {:>9} {:>8}  {}\n",
                                 s("name"), s("type"), s("state"), n("lag_events"),
                                 n("lag_seconds"), n("delivered"), n("retries"), n("dead_letters"),
                                 s("last_error"));
    }
    return 0;
}

int cli_dlq(const config::config& cfg, const std::string& action, const std::string& destination,
            const std::string& query, bool json) {
    std::string target = "/v1/destinations/" + destination + "/dead-letters";
    std::string method = "GET";
    if (action == "replay" || action == "discard") {
        target += "/" + action;
        method = "POST";
    } else if (action != "list") {
        std::cerr << "unknown dlq action '" << action << "' (list, replay, discard)\n";
        return 2;
    }
    if (!query.empty()) target += "?" + query;
    auto r = admin_request(cfg, method, target);
    if (r.status != 200) return report_failure(r);
    (void)json;
    std::cout << r.body << '\n';
    return 0;
}

int cli_quarantine(const config::config& cfg, const std::string& action, const std::string& query) {
    std::string target = "/v1/quarantine";
    std::string method = "GET";
    if (action == "replay") {
        target += "/replay";
        method = "POST";
    } else if (action != "list") {
        std::cerr << "unknown quarantine action '" << action << "' (list, replay)\n";
        return 2;
    }
    if (!query.empty()) target += "?" + query;
    auto r = admin_request(cfg, method, target);
    if (r.status != 200) return report_failure(r);
    std::cout << r.body << '\n';
    return 0;
}

int cli_identity(const config::config& cfg, const identity_cli_args& a) {
    std::string query, body = "{";
    int named = 0;
    for (const auto& [k, v] : a.ids) {
        if (v.empty()) continue;
        ++named;
        query += (query.empty() ? "" : "&") + k + "=" + util::percent_encode(v);
        if (body.size() > 1) body += ',';
        util::append_json_string(body, k);
        body += ':';
        util::append_json_string(body, v);
    }
    auto field = [&](std::string_view k, const std::string& v) {
        if (v.empty()) return;
        if (body.size() > 1) body += ',';
        util::append_json_string(body, k);
        body += ':';
        util::append_json_string(body, v);
    };
    field("requestedBy", a.requested_by);
    field("reason", a.reason);
    const bool needs_id = a.action == "person" || a.action == "suppress" ||
                          a.action == "unsuppress" || a.action == "delete";
    if (needs_id && named != 1) {
        std::cerr << "identity " << a.action
                  << ": name exactly one of --user-id, --anonymous-id, --device-id, --person-id\n";
        return 2;
    }
    admin_reply r;
    if (a.action == "person") {
        r = admin_request(cfg, "GET", "/v1/identity/persons?" + query);
    } else if (a.action == "suppressions") {
        r = admin_request(cfg, "GET", "/v1/identity/suppressions");
    } else if (a.action == "suppress") {
        r = admin_request(cfg, "POST", "/v1/identity/suppressions", body + "}");
    } else if (a.action == "unsuppress") {
        r = admin_request(cfg, "DELETE", "/v1/identity/suppressions?" + query);
    } else if (a.action == "delete") {
        if (a.requested_by.empty()) {
            std::cerr << "identity delete: --requested-by is required (the audit trail records "
                         "who asked)\n";
            return 2;
        }
        body += a.suppress ? ",\"suppress\":true}" : ",\"suppress\":false}";
        r = admin_request(cfg, "POST", "/v1/identity/deletions", body);
    } else if (a.action == "deletions") {
        r = admin_request(
            cfg, "GET",
            "/v1/identity/deletions" +
                (a.request_id.empty() ? std::string() : "/" + util::percent_encode(a.request_id)));
    } else {
        std::cerr << "unknown identity action '" << a.action
                  << "' (person, suppressions, suppress, unsuppress, delete, deletions)\n";
        return 2;
    }
    if (r.status < 200 || r.status >= 300) return report_failure(r);
    std::cout << r.body << '\n';
    return 0;
}

int cli_reload(const config::config& cfg) {
    auto r = admin_request(cfg, "POST", "/v1/reload");
    if (r.status != 200) return report_failure(r);
    std::cout << r.body << '\n';
    return 0;
}

}  // namespace switchyard::app
