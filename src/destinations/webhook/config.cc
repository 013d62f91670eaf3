#include "destinations/webhook/webhook_destination.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <unistd.h>

namespace switchyard::destinations {
namespace {

// Header names the destination writes itself, or that would break the HTTP framing.
const std::set<std::string, std::less<>> reserved_headers = {"host",
                                                             "content-length",
                                                             "transfer-encoding",
                                                             "connection",
                                                             "keep-alive",
                                                             "te",
                                                             "trailer",
                                                             "upgrade",
                                                             "expect",
                                                             "content-type",
                                                             "content-encoding",
                                                             "user-agent",
                                                             "x-switchyard-signature",
                                                             "x-switchyard-batch-id"};

// RFC 9110 token characters.
bool is_token(std::string_view s) {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
}

bool is_field_value(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && u != '\t') || u == 0x7f;
    });
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::unique_ptr<destination> make_webhook_destination(config::map_reader& settings,
                                                      const destination_context& ctx) {
    const std::size_t errors_before = settings.errs().list().size();
    auto& errs = settings.errs();
    const bool check = !settings.describing();
    webhook_destination_options o;

    std::string url;
    settings.require("url", url,
                     "Endpoint every batch is POSTed to: http://host[:port]/path or https://...");
    std::string format = "batch_object";
    settings.get("format", format,
                 "Request body layout: batch_object ({\"batch\":[...],\"sentAt\":...}), ndjson "
                 "(one event per line, application/x-ndjson) or array ([...]).");
    settings.get("gzip", o.gzip, "Compress request bodies with gzip (Content-Encoding: gzip).");

    auto headers = settings.child(
        "headers",
        "Extra request headers, name: value (values may use ${VAR}). Host, Content-Type, "
        "Content-Length, Content-Encoding, User-Agent, Connection and the X-Switchyard-* headers "
        "are set by the destination and cannot be given here.");
    bool authorization_header = false;
    if (const YAML::Node hn = headers.node(); hn && hn.IsMap()) {
        for (const auto& kv : hn) {
            const std::string name = kv.first.as<std::string>("");
            headers.consume(name);
            const std::string where = headers.key_path(name);
            std::string value, err;
            if (!config::parse_scalar(kv.second, value, err)) {
                errs.add(kv.second.Mark(), where + ": " + err);
                continue;
            }
            if (!is_token(name)) {
                errs.add(kv.first.Mark(), where + ": not a valid header name");
            } else if (reserved_headers.contains(lower(name))) {
                errs.add(kv.first.Mark(),
                         where + ": set by the destination itself; it cannot be overridden");
            } else if (!is_field_value(value)) {
                errs.add(kv.second.Mark(), where +
                                               ": header values cannot contain line breaks "
                                               "or control characters");
            } else {
                authorization_header |= lower(name) == "authorization";
                o.headers.emplace_back(name, std::move(value));
            }
        }
    }
    headers.finish();

    auto auth = settings.child("auth",
                               "Authorization sent with every request; at most one of "
                               "bearer or username/password.");
    auth.get("bearer", o.bearer_token, "Token for Authorization: Bearer <token>.");
    auth.get("username", o.username, "User for HTTP Basic authorization.");
    auth.get("password", o.password, "Password for HTTP Basic authorization.");
    auth.finish();

    settings.get("signing_secret", o.signing_secret,
                 "When set, each request carries X-Switchyard-Signature: t=<unix seconds>,v1=<hex "
                 "HMAC-SHA256(secret, \"<t>.<body>\")> (see docs/destinations/webhook.md).");
    config::duration connect_timeout = o.connect_timeout;
    settings.get("connect_timeout", connect_timeout,
                 "Limit on resolving the host, connecting and the TLS handshake.");
    config::duration request_timeout = o.request_timeout;
    settings.get("request_timeout", request_timeout,
                 "Limit on sending one request and reading its whole response; past it the batch "
                 "is retried on a new connection.");
    config::duration max_retry_after = o.max_retry_after;
    settings.get("max_retry_after", max_retry_after,
                 "Cap on the wait a 429/503 Retry-After header can impose before the next try.");
    config::byte_size max_response_bytes{o.max_response_bytes};
    settings.get("max_response_bytes", max_response_bytes,
                 "Response body bytes read and kept (the rejection reason quotes the first 200 "
                 "characters); a longer body closes the connection.");

    auto tls = settings.child("tls", "TLS settings for https:// URLs.");
    tls.get("ca_file", o.tls.ca_file,
            "PEM file of CA certificates to trust instead of the system trust store.");
    tls.get("insecure_skip_verify", o.tls.insecure_skip_verify,
            "Do not verify the server certificate or host name. For tests only; logs a warning "
            "at start.");
    tls.get("client_cert", o.tls.client_cert,
            "PEM certificate chain presented for mutual TLS; needs client_key.");
    tls.get("client_key", o.tls.client_key, "PEM private key of client_cert.");
    tls.finish();

    if (check) {
        webhook_url parsed;
        std::string err;
        if (!url.empty() && !parse_webhook_url(url, parsed, err)) {
            errs.add(settings.mark_of("url"), settings.key_path("url") + ": " + err);
        }
        if (format == "batch_object") {
            o.format = webhook_format::batch_object;
        } else if (format == "ndjson") {
            o.format = webhook_format::ndjson;
        } else if (format == "array") {
            o.format = webhook_format::array;
        } else {
            errs.add(settings.mark_of("format"),
                     fmt::format("{}: must be batch_object, ndjson or array, got '{}'",
                                 settings.key_path("format"), format));
        }
        if (!o.bearer_token.empty() && (!o.username.empty() || !o.password.empty())) {
            errs.add(auth.mark(), settings.key_path("auth") +
                                      ": give either bearer or username/password, not both");
        } else if (o.username.empty() && !o.password.empty()) {
            errs.add(auth.mark_of("password"), auth.key_path("password") + ": needs auth.username");
        }
        if (authorization_header && (!o.bearer_token.empty() || !o.username.empty())) {
            errs.add(headers.mark(), settings.key_path("headers") +
                                         ": an Authorization header and auth cannot both be set");
        }
        for (auto [key, d] : {std::pair{"connect_timeout", connect_timeout},
                              std::pair{"request_timeout", request_timeout}}) {
            if (d.count() <= 0) {
                errs.add(settings.mark_of(key), settings.key_path(key) + ": must be positive");
            }
        }
        if (max_retry_after.count() < 0) {
            errs.add(settings.mark_of("max_retry_after"),
                     settings.key_path("max_retry_after") + ": must not be negative");
        }
        if (max_response_bytes.bytes == 0 || max_response_bytes.bytes > (std::uint64_t{1} << 30)) {
            errs.add(settings.mark_of("max_response_bytes"),
                     settings.key_path("max_response_bytes") + ": must be between 1 and 1GiB");
        }
        const bool any_tls = !o.tls.ca_file.empty() || o.tls.insecure_skip_verify ||
                             !o.tls.client_cert.empty() || !o.tls.client_key.empty();
        if (any_tls && !parsed.host.empty() && !parsed.tls) {
            errs.add(tls.mark(), settings.key_path("tls") + ": only applies to https:// URLs");
        }
        if (o.tls.client_cert.empty() != o.tls.client_key.empty()) {
            errs.add(tls.mark(),
                     settings.key_path("tls") + ": client_cert and client_key go together");
        }
        for (auto [key, file] :
             {std::pair{"ca_file", &o.tls.ca_file}, std::pair{"client_cert", &o.tls.client_cert},
              std::pair{"client_key", &o.tls.client_key}}) {
            if (!file->empty() && ::access(file->c_str(), R_OK) != 0) {
                errs.add(tls.mark_of(key),
                         fmt::format("{}: cannot read {}", tls.key_path(key), *file));
            }
        }
    }
    settings.finish();
    if (settings.describing() || errs.list().size() != errors_before) return nullptr;

    o.url = std::move(url);
    o.connect_timeout = connect_timeout;
    o.request_timeout = request_timeout;
    o.max_retry_after = max_retry_after;
    o.max_response_bytes = static_cast<std::size_t>(max_response_bytes.bytes);
    std::string err;
    auto d = webhook_destination::create(std::move(o), err);
    if (!d) {
        errs.add(settings.mark(), fmt::format("{} ({}): {}", settings.path(), ctx.name, err));
        return nullptr;
    }
    return d;
}

}  // namespace switchyard::destinations
