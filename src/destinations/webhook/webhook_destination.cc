#include "destinations/webhook/webhook_destination.h"

#include "util/ids.h"
#include "util/time.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <limits>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <optional>

#ifndef SWITCHYARD_VERSION
#define SWITCHYARD_VERSION "dev"
#endif

namespace switchyard::destinations {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr std::string_view user_agent = "switchyard/" SWITCHYARD_VERSION;
// A rejection reason quotes this many characters of the response body.
constexpr std::size_t reason_body_chars = 200;
// Response headers larger than this are a broken or hostile target, not a reply to keep.
constexpr std::uint32_t response_header_limit = 16 << 10;
constexpr std::size_t body_chunk_bytes = 16 << 10;
// gzip windowBits: 15-bit window plus 16 for a gzip (not zlib) wrapper.
constexpr int gzip_window_bits = 15 + 16;

// Runs the private io_context until the operation started by `start` completes, and returns its
// error. The tcp_stream timers guarantee completion, so this never waits past its deadline.
template <class Start>
beast::error_code run_op(asio::io_context& ioc, Start&& start) {
    std::optional<beast::error_code> result;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    while (!result) {
        if (ioc.run_one() == 0) break;  // out of work: cannot happen while the operation is pending
    }
    return result.value_or(asio::error::operation_aborted);
}

// Up to `max_chars` characters of `s` for a log line or a dead-letter reason: valid UTF-8 kept,
// control characters turned into spaces, invalid bytes into '?'.
std::string printable_prefix(std::string_view s, std::size_t max_chars) {
    std::string out;
    std::size_t chars = 0;
    std::size_t i = 0;
    while (i < s.size() && chars < max_chars) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = c < 0x80           ? 1
                          : (c >> 5) == 0x6  ? 2
                          : (c >> 4) == 0xe  ? 3
                          : (c >> 3) == 0x1e ? 4
                                             : 0;
        bool valid = len > 0 && i + len <= s.size();
        for (std::size_t k = 1; valid && k < len; ++k) {
            valid = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
        }
        if (!valid) {
            out.push_back('?');
            ++i;
        } else if (len == 1) {
            out.push_back(c < 0x20 || c == 0x7f ? ' ' : static_cast<char>(c));
            ++i;
        } else {
            out.append(s.substr(i, len));
            i += len;
        }
        ++chars;
    }
    if (i < s.size()) out += "…";
    return out;
}

std::string hex(const unsigned char* p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(digits[p[i] >> 4]);
        out.push_back(digits[p[i] & 0xf]);
    }
    return out;
}

bool is_ip_literal(const std::string& host) {
    beast::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

// Errors that mean the peer closed the connection before it answered anything: on a reused
// keep-alive connection this is the server's idle timeout racing our request.
bool closed_before_answer(const beast::error_code& ec) {
    return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == ssl::error::stream_truncated;
}

std::string millis(std::chrono::milliseconds d) { return fmt::format("{}ms", d.count()); }

}  // namespace

bool parse_webhook_url(std::string_view url, webhook_url& out, std::string& err) {
    out = {};
    std::string_view rest;
    if (url.starts_with("http://")) {
        rest = url.substr(7);
    } else if (url.starts_with("https://")) {
        out.tls = true;
        rest = url.substr(8);
    } else {
        err = "must start with http:// or https://";
        return false;
    }
    if (rest.find('#') != std::string_view::npos) {
        err = "must not contain a fragment (#)";
        return false;
    }
    auto slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    std::string_view target = slash == std::string_view::npos ? "/" : rest.substr(slash);
    if (authority.find('@') != std::string_view::npos) {
        err = "must not contain user information; use auth.username and auth.password";
        return false;
    }
    std::string_view host = authority, port;
    bool v6 = false;
    if (authority.starts_with('[')) {
        auto close = authority.find(']');
        if (close == std::string_view::npos) {
            err = "has an unterminated IPv6 address";
            return false;
        }
        host = authority.substr(1, close - 1);
        v6 = true;
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') {
                err = "has junk after the IPv6 address";
                return false;
            }
            port = after.substr(1);
        }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty()) {
        err = "has no host";
        return false;
    }
    std::string_view default_port = out.tls ? "443" : "80";
    if (port.empty()) {
        port = default_port;
    } else {
        unsigned n = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
        if (ec != std::errc() || p != port.data() + port.size() || n == 0 || n > 65535) {
            err = fmt::format("has an invalid port '{}'", port);
            return false;
        }
    }
    if (target.starts_with('?')) {
        out.target = "/" + std::string(target);
    } else {
        out.target = std::string(target);
    }
    for (char c : out.target) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
            err = "has spaces or control characters in its path";
            return false;
        }
    }
    out.host = std::string(host);
    out.port = std::string(port);
    out.host_header = v6 ? "[" + out.host + "]" : out.host;
    if (port != default_port) out.host_header += ":" + out.port;
    return true;
}

void render_webhook_body(webhook_format format, std::span<const delivery_item> batch,
                         std::int64_t sent_at_ms, std::string& out) {
    out.clear();
    std::size_t total = 32;
    for (const auto& item : batch) total += item.event.json.size() + 1;
    out.reserve(total);
    switch (format) {
        case webhook_format::batch_object:
        case webhook_format::array: {
            const bool object = format == webhook_format::batch_object;
            out += object ? "{\"batch\":[" : "[";
            for (std::size_t i = 0; i < batch.size(); ++i) {
                if (i > 0) out.push_back(',');
                out += batch[i].event.json;
            }
            out.push_back(']');
            if (object) {
                out += ",\"sentAt\":\"";
                util::append_iso8601_ms(out, sent_at_ms);
                out += "\"}";
            }
            break;
        }
        case webhook_format::ndjson:
            for (const auto& item : batch) {
                std::size_t start = out.size();
                out += item.event.json;
                // A raw newline is only legal between JSON tokens, where a space means the same;
                // this keeps one event per line whatever the serializer did.
                std::replace(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(), '\n',
                             ' ');
                out.push_back('\n');
            }
            break;
    }
}

std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds,
                              std::string_view body) {
    const std::string t = std::to_string(unix_seconds);
    unsigned char mac[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    bool ok = false;
    EVP_MAC* alg = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MAC_CTX* ctx = alg != nullptr ? EVP_MAC_CTX_new(alg) : nullptr;
    if (ctx != nullptr) {
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
        ok = EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                          params) == 1 &&
             EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(t.data()), t.size()) == 1 &&
             EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>("."), 1) == 1 &&
             EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(body.data()),
                            body.size()) == 1 &&
             EVP_MAC_final(ctx, mac, &len, sizeof mac) == 1;
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    // Only an OpenSSL without HMAC-SHA256 gets here; a missing signature makes the receiver
    // refuse the batch, which is the right outcome.
    if (!ok) return {};
    return "t=" + t + ",v1=" + hex(mac, len);
}

std::chrono::milliseconds parse_retry_after(std::string_view value,
                                            std::chrono::system_clock::time_point now) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.empty()) return {};
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        std::uint64_t secs = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), secs);
        // Anything past a year is as good as "very long"; the caller caps it anyway.
        constexpr std::uint64_t year = 365ull * 24 * 3600;
        if (ec == std::errc::result_out_of_range || secs > year) secs = year;
        return std::chrono::seconds(secs);
    }
    // HTTP-date (RFC 9110 5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms that
    // recipients must still accept.
    static constexpr const char* formats[] = {"%a, %d %b %Y %H:%M:%S GMT",
                                              "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
    std::string s(value);
    for (const char* f : formats) {
        std::tm tm{};
        const char* end = ::strptime(s.c_str(), f, &tm);
        if (end == nullptr || *end != '\0') continue;
        auto at = std::chrono::system_clock::from_time_t(::timegm(&tm));
        if (at <= now) return {};
        return std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
    }
    return {};
}

// The network half of the destination: the io_context, the TLS context and the one connection.
// Owned by the destination and used only from its worker thread.
struct webhook_destination::transport {
    // What one request/response exchange produced.
    struct exchange_result {
        beast::error_code ec;  // set when no complete response header arrived
        std::string error;     // what failed, for the reason; empty on success
        bool stale = false;    // the peer closed the connection before answering
        unsigned status = 0;
        std::string retry_after;
        std::string location;
        bool keep_alive = false;
    };

    transport(const webhook_destination_options& o, const webhook_url& u) : opts(o), url(u) {}

    bool init_tls(std::string& err) {
        tls_ctx.emplace(ssl::context::tls_client);
        SSL_CTX_set_min_proto_version(tls_ctx->native_handle(), TLS1_2_VERSION);
        beast::error_code ec;
        const auto& t = opts.tls;
        if (t.insecure_skip_verify) {
            tls_ctx->set_verify_mode(ssl::verify_none, ec);
        } else {
            tls_ctx->set_verify_mode(ssl::verify_peer, ec);
            if (!ec) {
                if (t.ca_file.empty()) {
                    tls_ctx->set_default_verify_paths(ec);
                    if (ec) err = "cannot load the system trust store: " + ec.message();
                } else {
                    tls_ctx->load_verify_file(t.ca_file, ec);
                    if (ec) err = "cannot load tls.ca_file " + t.ca_file + ": " + ec.message();
                }
                if (ec) return false;
            }
        }
        if (!t.client_cert.empty()) {
            tls_ctx->use_certificate_chain_file(t.client_cert, ec);
            if (ec) {
                err = "cannot load tls.client_cert " + t.client_cert + ": " + ec.message();
                return false;
            }
            tls_ctx->use_private_key_file(t.client_key, ssl::context::pem, ec);
            if (ec) {
                err = "cannot load tls.client_key " + t.client_key + ": " + ec.message();
                return false;
            }
            if (SSL_CTX_check_private_key(tls_ctx->native_handle()) != 1) {
                err = "tls.client_key does not match tls.client_cert";
                return false;
            }
        }
        if (ec) {
            err = "cannot set up TLS: " + ec.message();
            return false;
        }
        return true;
    }

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

    void disconnect() {
        connected = false;
        if (!plain && !tls) return;
        // No TLS close_notify: waiting for the peer's answer would block the worker for nothing,
        // and a request is never in flight here.
        beast::error_code ec;
        lowest().socket().close(ec);
        plain.reset();
        tls.reset();
        buffer.clear();
        connected = false;
    }

    // Resolves, connects and (https) handshakes within connect_timeout. Empty on success, else
    // the reason.
    std::string connect() {
        disconnect();
        const auto deadline = std::chrono::steady_clock::now() + opts.connect_timeout;
        const std::string where = url.host + ":" + url.port;

        // The resolver runs getaddrinfo on a helper thread, which cannot be interrupted: on a
        // timeout the operation is cancelled and left to finish on its own; its handler only
        // touches the shared state.
        struct resolve_state {
            bool done = false;
            beast::error_code ec;
            tcp::resolver::results_type results;
        };
        auto rs = std::make_shared<resolve_state>();
        resolver.async_resolve(url.host, url.port,
                               [rs](beast::error_code ec, tcp::resolver::results_type r) {
                                   rs->done = true;
                                   rs->ec = ec;
                                   rs->results = std::move(r);
                               });
        ioc.restart();
        while (!rs->done && ioc.run_one_until(deadline) > 0) {
        }
        if (!rs->done) {
            resolver.cancel();
            return fmt::format("resolving {} timed out after {}", url.host,
                               millis(opts.connect_timeout));
        }
        if (rs->ec) return fmt::format("cannot resolve {}: {}", url.host, rs->ec.message());

        if (url.tls) {
            tls.emplace(ioc, *tls_ctx);
        } else {
            plain.emplace(ioc);
        }
        auto& low = lowest();
        low.expires_at(deadline);
        auto ec = run_op(ioc, [&](auto h) { low.async_connect(rs->results, std::move(h)); });
        if (ec == beast::error::timeout) {
            disconnect();
            return fmt::format("connecting to {} timed out after {}", where,
                               millis(opts.connect_timeout));
        }
        if (ec) {
            disconnect();
            return fmt::format("cannot connect to {}: {}", where, ec.message());
        }
        if (url.tls) {
            SSL* s = tls->native_handle();
            // Host name checking by OpenSSL itself (what ssl::host_name_verification does, but
            // failures come back as X509_V_ERR_HOSTNAME_MISMATCH / IP_ADDRESS_MISMATCH with a
            // readable message instead of a bare "certificate verify failed").
            if (is_ip_literal(url.host)) {
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), url.host.c_str());
            } else {
                SSL_set_tlsext_host_name(s, url.host.c_str());  // SNI is for names only
                SSL_set1_host(s, url.host.c_str());
            }
            ec = run_op(
                ioc, [&](auto h) { tls->async_handshake(ssl::stream_base::client, std::move(h)); });
            if (ec) {
                long verify = SSL_get_verify_result(s);
                disconnect();
                if (verify != X509_V_OK) {
                    return fmt::format("TLS certificate verification failed for {}: {}", where,
                                       X509_verify_cert_error_string(verify));
                }
                if (ec == beast::error::timeout) {
                    return fmt::format("TLS handshake with {} timed out after {}", where,
                                       millis(opts.connect_timeout));
                }
                return fmt::format("TLS handshake with {} failed: {}", where, ec.message());
            }
        }
        connected = true;
        spdlog::debug("Webhook destination connected to {}.", where);
        return {};
    }

    exchange_result exchange(std::string& body) {
        return tls ? exchange_on(*tls, body) : exchange_on(*plain, body);
    }

    // Writes `req` and reads the response; keeps the first max_response_bytes of its body.
    template <class Stream>
    exchange_result exchange_on(Stream& stream, std::string& body) {
        exchange_result r;
        const std::string where = url.host + ":" + url.port;
        auto failed = [&](beast::error_code ec, std::string_view doing) {
            r.ec = ec;
            if (ec == beast::error::timeout) {
                r.error = fmt::format("request to {} timed out after {}", where,
                                      millis(opts.request_timeout));
            } else if (closed_before_answer(ec)) {
                r.stale = true;
                r.error = fmt::format("{} closed the connection before answering", where);
            } else {
                r.error = fmt::format("{} {} failed: {}", doing, where, ec.message());
            }
            return r;
        };

        lowest().expires_after(opts.request_timeout);  // covers the whole exchange
        auto ec = run_op(ioc, [&](auto h) { bhttp::async_write(stream, req, std::move(h)); });
        if (ec) return failed(ec, "sending to");

        std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
        do {  // skip interim 1xx responses (a server may send 100 Continue unasked)
            parser.emplace();
            parser->header_limit(response_header_limit);
            parser->body_limit(boost::none);  // the loop below keeps its own cap
            ec = run_op(ioc, [&](auto h) {
                bhttp::async_read_header(stream, buffer, *parser, std::move(h));
            });
            if (ec) return failed(ec, "reading the response from");
        } while (parser->get().result_int() / 100 == 1 && parser->get().result_int() != 101);

        auto& res = parser->get();
        r.status = res.result_int();
        r.retry_after = std::string(res[bhttp::field::retry_after]);
        r.location = std::string(res[bhttp::field::location]);
        r.keep_alive = res.keep_alive() && r.status != 101;

        body.clear();
        char chunk[body_chunk_bytes];
        while (!parser->is_done()) {
            res.body().data = chunk;
            res.body().size = sizeof chunk;
            ec = run_op(ioc,
                        [&](auto h) { bhttp::async_read(stream, buffer, *parser, std::move(h)); });
            if (ec == bhttp::error::need_buffer) ec = {};
            std::size_t got = sizeof chunk - res.body().size;
            body.append(chunk, std::min(got, opts.max_response_bytes - body.size()));
            if (ec) {
                // The status line has arrived and decides the outcome; only the connection is
                // lost.
                spdlog::debug("Webhook destination lost the response body from {}: {}.", where,
                              ec.message());
                r.keep_alive = false;
                break;
            }
            if (body.size() >= opts.max_response_bytes && !parser->is_done()) {
                // Not worth reading further: drop the connection rather than drain it.
                r.keep_alive = false;
                break;
            }
        }
        return r;
    }

    const webhook_destination_options& opts;
    const webhook_url& url;
    asio::io_context ioc{1};
    tcp::resolver resolver{ioc};
    std::optional<ssl::context> tls_ctx;
    std::optional<beast::tcp_stream> plain;                   // http://
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls;  // https://
    beast::flat_buffer buffer;
    bhttp::request<bhttp::string_body> req;
    bool connected = false;
};

std::unique_ptr<webhook_destination> webhook_destination::create(
    webhook_destination_options options, std::string& err) {
    webhook_url url;
    if (!parse_webhook_url(options.url, url, err)) {
        err = "url " + err;
        return nullptr;
    }
    if (options.max_response_bytes == 0) options.max_response_bytes = 1;
    std::unique_ptr<webhook_destination> d(
        new webhook_destination(std::move(options), std::move(url)));
    if (d->url_.tls && !d->t_->init_tls(err)) return nullptr;
    if (d->url_.tls && d->opts_.tls.insecure_skip_verify) {
        spdlog::warn(
            "Webhook destination to {} does not verify the server's TLS certificate "
            "(tls.insecure_skip_verify); anyone on the path can read and change its requests.",
            d->url_.host);
    }
    return d;
}

webhook_destination::webhook_destination(webhook_destination_options options, webhook_url url)
    : opts_(std::move(options)),
      url_(std::move(url)),
      t_(std::make_unique<transport>(opts_, url_)),
      zs_(std::make_unique<z_stream_s>()) {
    if (!opts_.bearer_token.empty()) {
        authorization_ = "Bearer " + opts_.bearer_token;
    } else if (!opts_.username.empty()) {
        authorization_ = "Basic " + util::base64_encode(opts_.username + ":" + opts_.password);
    }
}

webhook_destination::~webhook_destination() { close(); }

std::chrono::system_clock::time_point webhook_destination::now() const {
    return opts_.now ? opts_.now() : std::chrono::system_clock::now();
}

std::string_view webhook_destination::compress(std::string_view body, std::string& err) {
    if (!zs_active_) {
        *zs_ = z_stream_s{};
        if (::deflateInit2(zs_.get(), Z_DEFAULT_COMPRESSION, Z_DEFLATED, gzip_window_bits, 8,
                           Z_DEFAULT_STRATEGY) != Z_OK) {
            err = "cannot initialise gzip";
            return {};
        }
        zs_active_ = true;
    } else {
        ::deflateReset(zs_.get());
    }
    if (body.size() > std::numeric_limits<uInt>::max() / 2) {
        err = "batch too large to gzip in one piece";
        return {};
    }
    zbody_.resize(::deflateBound(zs_.get(), static_cast<uLong>(body.size())));
    zs_->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
    zs_->avail_in = static_cast<uInt>(body.size());
    zs_->next_out = reinterpret_cast<Bytef*>(zbody_.data());
    zs_->avail_out = static_cast<uInt>(zbody_.size());
    // deflateBound leaves room for everything, so one Z_FINISH call completes the stream.
    if (::deflate(zs_.get(), Z_FINISH) != Z_STREAM_END) {
        err = "gzip failed";
        return {};
    }
    zbody_.resize(zbody_.size() - zs_->avail_out);
    return zbody_;
}

void webhook_destination::build_request(std::span<const delivery_item> batch) {
    auto& req = t_->req;
    const auto at = now();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();

    req.clear();  // header fields only; the body string keeps its capacity
    req.method(bhttp::verb::post);
    req.target(url_.target);
    req.version(11);
    for (const auto& [name, value] : opts_.headers) req.set(name, value);
    req.set(bhttp::field::host, url_.host_header);
    req.set(bhttp::field::user_agent, user_agent);
    req.set(bhttp::field::content_type,
            opts_.format == webhook_format::ndjson ? "application/x-ndjson" : "application/json");
    if (!authorization_.empty()) req.set(bhttp::field::authorization, authorization_);
    req.set("X-Switchyard-Batch-Id", std::to_string(batch.front().offset));

    render_webhook_body(opts_.format, batch, ms, req.body());
    if (opts_.gzip) {
        std::string err;
        if (!compress(req.body(), err).empty()) {
            req.body().swap(zbody_);
            req.set(bhttp::field::content_encoding, "gzip");
        } else {
            // Not worth failing the batch over: send it uncompressed.
            spdlog::warn("Webhook destination to {}: {}; sending the batch uncompressed.",
                         url_.host, err);
        }
    }
    if (!opts_.signing_secret.empty()) {
        req.set("X-Switchyard-Signature",
                webhook_signature(
                    opts_.signing_secret,
                    std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count(),
                    req.body()));
    }
    req.prepare_payload();  // Content-Length
}

send_outcome webhook_destination::fail(send_outcome out) {
    healthy_.store(false, std::memory_order_relaxed);
    return out;
}

send_outcome webhook_destination::classify(unsigned status) {
    if (status >= 200 && status < 300) {
        healthy_.store(true, std::memory_order_relaxed);
        return send_outcome::ok();
    }
    std::string reason = fmt::format("HTTP {}", status);
    if (status >= 300 && status < 400) {
        reason += ": redirects are not followed";
        return fail(send_outcome::rejected(std::move(reason)));
    }
    if (!resp_body_.empty()) reason += ": " + printable_prefix(resp_body_, reason_body_chars);
    if (status == 408 || status == 429 || (status >= 500 && status < 600)) {
        return fail(send_outcome::retry_later(std::move(reason)));
    }
    if (status >= 400 && status < 500) return fail(send_outcome::rejected(std::move(reason)));
    // 1xx that is not interim (101), or a number outside HTTP: a broken target, not a bad batch.
    return fail(send_outcome::retry_later(reason + " (unexpected status)"));
}

send_outcome webhook_destination::send(std::span<const delivery_item> batch) {
    if (batch.empty()) return send_outcome::ok();
    build_request(batch);
    // At most two tries: a second one only when a reused connection turned out to be closed.
    for (int attempt = 0;; ++attempt) {
        const bool reused = t_->connected;
        if (!t_->connected) {
            if (std::string err = t_->connect(); !err.empty()) {
                return fail(send_outcome::retry_later(std::move(err)));
            }
        }
        auto r = t_->exchange(resp_body_);
        if (!r.error.empty()) {
            t_->disconnect();
            if (reused && r.stale && attempt == 0) {
                spdlog::debug("Webhook destination: {}; reconnecting.", r.error);
                continue;
            }
            return fail(send_outcome::retry_later(std::move(r.error)));
        }
        if (!r.keep_alive) t_->disconnect();
        send_outcome out = classify(r.status);
        if (r.status >= 300 && r.status < 400 && !r.location.empty()) {
            out.reason += " (Location: " + printable_prefix(r.location, reason_body_chars) + ")";
        }
        if (out.status == send_status::retry && !r.retry_after.empty()) {
            out.retry_after =
                std::min(parse_retry_after(r.retry_after, now()), opts_.max_retry_after);
        }
        return out;
    }
}

void webhook_destination::close() {
    if (t_) t_->disconnect();
    if (zs_active_) {
        ::deflateEnd(zs_.get());
        zs_active_ = false;
    }
}

}  // namespace switchyard::destinations
