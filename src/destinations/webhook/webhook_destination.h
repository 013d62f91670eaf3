#pragma once

#include "config/reader.h"
#include "destinations/registry.h"
#include "switchyard/destination.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// Defined by <zlib.h>; kept out of this header so users of the destination don't see zlib.
struct z_stream_s;

namespace switchyard::destinations {

// How a batch is laid out in the request body. Every layout uses the events' canonical JSON
// bytes as stored in the log; nothing is parsed or re-serialized.
enum class webhook_format {
    batch_object,  // {"batch":[e1,e2],"sentAt":"<ISO-8601>"}, application/json
    ndjson,        // one event per line, application/x-ndjson
    array,         // [e1,e2], application/json
};

struct webhook_tls_options {
    std::string ca_file;  // PEM bundle that replaces the system trust store; empty = system store
    bool insecure_skip_verify = false;  // no certificate or host name check (a warning is logged)
    std::string client_cert;            // PEM chain for mutual TLS; needs client_key
    std::string client_key;             // PEM private key for client_cert
};

struct webhook_destination_options {
    std::string url;  // http://host[:port]/path or https://...
    webhook_format format = webhook_format::batch_object;
    bool gzip = false;                                         // Content-Encoding: gzip
    std::vector<std::pair<std::string, std::string>> headers;  // sent with every request
    std::string bearer_token;  // Authorization: Bearer ...; exclusive with username
    std::string username;      // Authorization: Basic base64(username:password)
    std::string password;
    std::string signing_secret;  // non-empty: X-Switchyard-Signature on every request
    std::chrono::milliseconds connect_timeout{5000};    // resolve + TCP connect + TLS handshake
    std::chrono::milliseconds request_timeout{30000};   // write request + read whole response
    std::chrono::milliseconds max_retry_after{300000};  // cap on the target's Retry-After
    std::size_t max_response_bytes = 64 << 10;          // response body bytes kept and read
    webhook_tls_options tls;
    // Wall clock for sentAt and the signature timestamp; tests inject a fake one. Empty = system.
    std::function<std::chrono::system_clock::time_point()> now;
};

// The parts of a webhook URL the client needs.
struct webhook_url {
    bool tls = false;
    std::string host;         // without brackets for IPv6 literals
    std::string port;         // "80"/"443" when the URL has none
    std::string target;       // path and query, at least "/"
    std::string host_header;  // Host header value: host, bracketed if IPv6, ":port" if not default
};

// Parses an http:// or https:// URL. False, with `err` set, for anything else (user info in the
// URL, fragments, bad ports, empty host).
bool parse_webhook_url(std::string_view url, webhook_url& out, std::string& err);

// Renders `batch` as a request body in `format` into `out` (cleared first). `sent_at_ms` is the
// sentAt of the batch_object layout. Exposed so the payload can be tested without a network.
void render_webhook_body(webhook_format format, std::span<const delivery_item> batch,
                         std::int64_t sent_at_ms, std::string& out);

// The X-Switchyard-Signature value: "t=<unix_seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>",
// where body is the request body exactly as sent (after gzip when gzip is on).
std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds,
                              std::string_view body);

// Parses a Retry-After value, delta-seconds or an HTTP-date, into a wait from `now`. Returns 0
// when the value is malformed or in the past.
std::chrono::milliseconds parse_retry_after(std::string_view value,
                                            std::chrono::system_clock::time_point now);

// Posts each batch to an HTTP(S) endpoint and classifies the answer: 2xx delivered; 408, 429,
// 5xx, network errors and timeouts retry (with the target's Retry-After); 3xx and other 4xx
// reject, so the batch goes to the dead-letter store with the status and the start of the body.
//
// The client is blocking: each send() drives asynchronous Beast operations on a private
// io_context until they finish, so the tcp_stream timers can enforce connect_timeout and
// request_timeout. One keep-alive connection is reused across batches; it is closed after any
// network error, a response without keep-alive, or a response body over max_response_bytes, and
// the next send() resolves the host again and reconnects. A request that fails on a reused
// connection before any response byte arrives (the server closed an idle connection) is sent
// once more on a new connection within the same send().
//
// Lifecycle: built by create() (or make_webhook_destination) at start; send() and close() are
// called only by its delivery worker thread. healthy() may be called from any thread.
class webhook_destination final : public destination {
  public:
    // Builds the destination; null with `err` set when the URL or the TLS files are unusable.
    static std::unique_ptr<webhook_destination> create(webhook_destination_options options,
                                                       std::string& err);
    ~webhook_destination() override;

    webhook_destination(const webhook_destination&) = delete;
    webhook_destination& operator=(const webhook_destination&) = delete;

    send_outcome send(std::span<const delivery_item> batch) override;
    bool healthy() const override { return healthy_.load(std::memory_order_relaxed); }
    void close() override;

    const webhook_url& url() const noexcept { return url_; }

  private:
    struct transport;  // Asio/Beast/OpenSSL state, kept out of this header

    webhook_destination(webhook_destination_options options, webhook_url url);
    std::chrono::system_clock::time_point now() const;
    void build_request(std::span<const delivery_item> batch);
    std::string_view compress(std::string_view body, std::string& err);
    send_outcome attempt(bool& stale_connection);
    send_outcome classify(unsigned status);
    send_outcome fail(send_outcome out);

    webhook_destination_options opts_;
    webhook_url url_;
    std::string authorization_;  // precomputed Authorization header value, empty when none
    std::unique_ptr<transport> t_;
    std::unique_ptr<z_stream_s> zs_;
    bool zs_active_ = false;
    std::string body_;       // rendered body, reused across batches
    std::string zbody_;      // gzip output, reused across batches
    std::string resp_body_;  // the first max_response_bytes of the last response body
    std::atomic<bool> healthy_{true};
};

// The `webhook` destination factory. In describe mode it only documents its keys and returns
// null.
std::unique_ptr<destination> make_webhook_destination(config::map_reader& settings,
                                                      const destination_context& ctx);

}  // namespace switchyard::destinations
