#include "destinations/webhook/webhook_destination.h"

#include "config/config.h"
#include "util/ids.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <gtest/gtest.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>
#include <zlib.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace switchyard::destinations {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

// 2023-11-14T22:13:20.123Z
const auto fake_now = std::chrono::system_clock::time_point(1700000000123ms);

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string tmpl = (fs::path(testing::TempDir()) / "webhook_XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// Keeps the JSON strings alive while the views point at them.
struct batch_builder {
    std::vector<std::string> json;
    std::vector<delivery_item> items;
    explicit batch_builder(std::size_t first, std::size_t n, std::string_view extra = "") {
        for (std::size_t i = first; i < first + n; ++i) {
            json.push_back(R"({"type":"track","event":"Clicked","messageId":"m-)" +
                           std::to_string(i) + "\"" + std::string(extra) + "}");
        }
        for (std::size_t i = 0; i < json.size(); ++i) {
            delivery_item it;
            it.offset = first + i;
            it.event.json = json[i];
            items.push_back(it);
        }
    }
};

fs::path receiver_script() {
    if (const char* src = std::getenv("SWITCHYARD_SOURCE_DIR"); src != nullptr && *src != '\0') {
        return fs::path(src) / "tests" / "support" / "webhook_receiver.py";
    }
    // tests/unit/destinations/this_file.cc -> tests/support/webhook_receiver.py
    return fs::path(__FILE__).parent_path().parent_path().parent_path() / "support" /
           "webhook_receiver.py";
}

// tests/support/webhook_receiver.py as a child process. It exits by itself when its stdin
// closes, so a crashed test does not leave it running.
class receiver {
  public:
    explicit receiver(std::vector<std::string> extra = {}) {
        int in[2], out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
            error_ = "pipe failed";
            return;
        }
        std::vector<std::string> args = {"python3", receiver_script().string(), "--max-seconds",
                                         "300"};
        args.insert(args.end(), extra.begin(), extra.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        int rc = posix_spawnp(&pid_, "python3", &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        ::close(in[0]);
        ::close(out[1]);
        stdin_ = in[1];
        stdout_ = out[0];
        if (rc != 0) {
            pid_ = -1;
            error_ = "cannot start python3";
            return;
        }
        // Wait for "CERT <path>" (https only) and "PORT <n>".
        std::string line;
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
            pollfd p{stdout_, POLLIN, 0};
            if (::poll(&p, 1, 1000) <= 0) continue;
            char c;
            if (::read(stdout_, &c, 1) != 1) break;
            if (c != '\n') {
                line.push_back(c);
                continue;
            }
            if (line.starts_with("CERT ")) cert_ = line.substr(5);
            if (line.starts_with("PORT "))
                port_ = static_cast<unsigned short>(std::stoi(line.substr(5)));
            line.clear();
        }
        if (port_ == 0) error_ = "receiver did not report its port";
    }
    ~receiver() {
        if (stdin_ >= 0) ::close(stdin_);
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        if (stdout_ >= 0) ::close(stdout_);
    }
    receiver(const receiver&) = delete;
    receiver& operator=(const receiver&) = delete;

    const std::string& error() const { return error_; }
    unsigned short port() const { return port_; }
    const std::string& cert() const { return cert_; }
    bool tls() const { return !cert_.empty(); }
    std::string url(std::string_view path = "/hook") const {
        return (tls() ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_) +
               std::string(path);
    }

    // One control request on its own connection (TLS without verification for https).
    std::string call(bhttp::verb verb, std::string target, std::string body = {}) const {
        asio::io_context ioc;
        tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port_);
        bhttp::request<bhttp::string_body> req{verb, target, 11};
        req.set(bhttp::field::host, "127.0.0.1");
        req.set(bhttp::field::connection, "close");
        req.set(bhttp::field::content_type, "application/json");
        req.body() = std::move(body);
        req.prepare_payload();
        bhttp::response<bhttp::string_body> res;
        beast::flat_buffer buf;
        if (tls()) {
            asio::ssl::context ctx(asio::ssl::context::tls_client);
            ctx.set_verify_mode(asio::ssl::verify_none);
            beast::ssl_stream<tcp::socket> s(ioc, ctx);
            s.next_layer().connect(ep);
            s.handshake(asio::ssl::stream_base::client);
            bhttp::write(s, req);
            bhttp::read(s, buf, res);
        } else {
            tcp::socket s(ioc);
            s.connect(ep);
            bhttp::write(s, req);
            bhttp::read(s, buf, res);
        }
        return res.body();
    }
    void mode(const std::string& json) { call(bhttp::verb::post, "/_control", json); }

    std::vector<std::string> received_ids() const {
        std::vector<std::string> ids;
        simdjson::dom::parser p;
        for (auto e : p.parse(call(bhttp::verb::get, "/_received")).get_array()) {
            ids.emplace_back(std::string_view(e["messageId"].get_string()));
        }
        return ids;
    }
    std::int64_t stat(const char* name) const {
        simdjson::dom::parser p;
        return p.parse(call(bhttp::verb::get, "/_stats"))[name].get_int64();
    }

    struct batch {
        std::map<std::string, std::string> headers;
        std::string body;  // as sent
    };
    std::vector<batch> batches() const {
        std::vector<batch> out;
        simdjson::dom::parser p;
        for (auto b : p.parse(call(bhttp::verb::get, "/_batches")).get_array()) {
            batch x;
            for (auto [k, v] : b["headers"].get_object()) {
                x.headers[std::string(k)] = std::string(std::string_view(v.get_string()));
            }
            EXPECT_TRUE(util::base64_decode(std::string_view(b["body_b64"].get_string()), x.body));
            out.push_back(std::move(x));
        }
        return out;
    }

  private:
    pid_t pid_ = -1;
    int stdin_ = -1;
    int stdout_ = -1;
    unsigned short port_ = 0;
    std::string cert_;
    std::string error_;
};

webhook_destination_options options_for(const receiver& r) {
    webhook_destination_options o;
    o.url = r.url();
    o.now = [] { return fake_now; };
    o.connect_timeout = 5s;
    o.request_timeout = 10s;
    if (r.tls()) o.tls.ca_file = r.cert();
    return o;
}

std::unique_ptr<webhook_destination> make(webhook_destination_options o) {
    std::string err;
    auto d = webhook_destination::create(std::move(o), err);
    EXPECT_NE(d, nullptr) << err;
    return d;
}

std::vector<std::string> ids(std::size_t first, std::size_t n) {
    std::vector<std::string> out;
    for (std::size_t i = first; i < first + n; ++i) out.push_back("m-" + std::to_string(i));
    return out;
}

std::string gunzip(const std::string& data) {
    z_stream zs{};
    EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    std::string out;
    char buf[4096];
    int rc = Z_OK;
    while (rc == Z_OK) {
        zs.next_out = reinterpret_cast<Bytef*>(buf);
        zs.avail_out = sizeof buf;
        rc = inflate(&zs, Z_NO_FLUSH);
        out.append(buf, sizeof buf - zs.avail_out);
    }
    EXPECT_EQ(rc, Z_STREAM_END);
    inflateEnd(&zs);
    return out;
}

#define START_RECEIVER(r, ...) \
    receiver r{__VA_ARGS__};   \
    ASSERT_TRUE(r.error().empty()) << r.error()

// ---------------------------------------------------------------------------------------------
// Pure functions: body layouts, URLs, Retry-After, signatures.

TEST(WebhookBody, BatchObjectUsesTheEventBytesAndSentAt) {
    batch_builder b(0, 2);
    std::string out;
    render_webhook_body(webhook_format::batch_object, b.items, 1700000000123, out);
    EXPECT_EQ(out, "{\"batch\":[" + b.json[0] + "," + b.json[1] +
                       "],\"sentAt\":\"2023-11-14T22:13:20.123Z\"}");
}

TEST(WebhookBody, ArrayAndNdjson) {
    batch_builder b(0, 2);
    b.json[1] = "{\"a\":\n1}";
    b.items[1].event.json = b.json[1];
    std::string out;
    render_webhook_body(webhook_format::array, b.items, 0, out);
    EXPECT_EQ(out, "[" + b.json[0] + ",{\"a\":\n1}]");
    render_webhook_body(webhook_format::ndjson, b.items, 0, out);
    EXPECT_EQ(out, b.json[0] + "\n{\"a\": 1}\n");
}

TEST(WebhookUrl, ParsesHostPortAndTarget) {
    webhook_url u;
    std::string err;
    ASSERT_TRUE(parse_webhook_url("https://hooks.example.com/in?x=1", u, err)) << err;
    EXPECT_TRUE(u.tls);
    EXPECT_EQ(u.host, "hooks.example.com");
    EXPECT_EQ(u.port, "443");
    EXPECT_EQ(u.target, "/in?x=1");
    EXPECT_EQ(u.host_header, "hooks.example.com");

    ASSERT_TRUE(parse_webhook_url("http://[::1]:8080", u, err)) << err;
    EXPECT_FALSE(u.tls);
    EXPECT_EQ(u.host, "::1");
    EXPECT_EQ(u.port, "8080");
    EXPECT_EQ(u.target, "/");
    EXPECT_EQ(u.host_header, "[::1]:8080");

    for (const char* bad : {"ftp://x/", "http://", "http://u:p@h/", "http://h:0/",
                            "http://h:99999/", "http://h/a#frag", "http://h/a b", "http://[::1/"}) {
        EXPECT_FALSE(parse_webhook_url(bad, u, err)) << bad;
    }
}

TEST(WebhookRetryAfter, SecondsAndHttpDates) {
    EXPECT_EQ(parse_retry_after("2", fake_now), 2s);
    EXPECT_EQ(parse_retry_after(" 120 ", fake_now), 120s);
    auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), 10s);
    EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:57 GMT", now), 20s);
    EXPECT_EQ(parse_retry_after("Sun Nov  6 08:50:07 1994", now), 30s);
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), 0ms);  // in the past
    EXPECT_EQ(parse_retry_after("soon", now), 0ms);
    EXPECT_EQ(parse_retry_after("", now), 0ms);
    EXPECT_EQ(parse_retry_after("99999999999999999999999", now), std::chrono::hours(24 * 365));
}

std::string reference_signature(const std::string& secret, const std::string& t,
                                const std::string& body) {
    std::string msg = t + "." + body;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
    std::string hex;
    for (unsigned i = 0; i < len; ++i) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", mac[i]);
        hex += b;
    }
    return "t=" + t + ",v1=" + hex;
}

TEST(WebhookSignature, IsHmacSha256OfTimestampDotBody) {
    EXPECT_EQ(webhook_signature("s3cret", 1700000000, "{\"batch\":[]}"),
              reference_signature("s3cret", "1700000000", "{\"batch\":[]}"));
}

// ---------------------------------------------------------------------------------------------
// Against the receiver.

TEST(WebhookDestination, DeliversBatchWithHeaders) {
    START_RECEIVER(r);
    auto o = options_for(r);
    o.headers = {{"X-Api-Key", "k-123"}};
    o.bearer_token = "tok";
    auto d = make(std::move(o));
    batch_builder b(40, 3);
    auto out = d->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    EXPECT_TRUE(d->healthy());
    EXPECT_EQ(r.received_ids(), ids(40, 3));
    auto batches = r.batches();
    ASSERT_EQ(batches.size(), 1u);
    auto& h = batches[0].headers;
    EXPECT_EQ(h["Content-Type"], "application/json");
    EXPECT_EQ(h["User-Agent"], std::string("switchyard/") + SWITCHYARD_VERSION);
    EXPECT_EQ(h["X-Switchyard-Batch-Id"], "40");
    EXPECT_EQ(h["X-Api-Key"], "k-123");
    EXPECT_EQ(h["Authorization"], "Bearer tok");
    EXPECT_EQ(h.count("X-Switchyard-Signature"), 0u);
    EXPECT_EQ(h.count("Content-Encoding"), 0u);
    std::string want;
    render_webhook_body(webhook_format::batch_object, b.items, 1700000000123, want);
    EXPECT_EQ(batches[0].body, want);
}

TEST(WebhookDestination, NdjsonAndArrayFormats) {
    START_RECEIVER(r);
    auto o = options_for(r);
    o.format = webhook_format::ndjson;
    auto nd = make(o);
    o.format = webhook_format::array;
    auto arr = make(o);
    batch_builder a(0, 2), b(2, 2);
    ASSERT_EQ(nd->send(a.items).status, send_status::delivered);
    ASSERT_EQ(arr->send(b.items).status, send_status::delivered);
    EXPECT_EQ(r.received_ids(), ids(0, 4));
    auto batches = r.batches();
    ASSERT_EQ(batches.size(), 2u);
    EXPECT_EQ(batches[0].headers["Content-Type"], "application/x-ndjson");
    EXPECT_EQ(batches[0].body, a.json[0] + "\n" + a.json[1] + "\n");
    EXPECT_EQ(batches[1].headers["Content-Type"], "application/json");
    EXPECT_EQ(batches[1].body, "[" + b.json[0] + "," + b.json[1] + "]");
}

TEST(WebhookDestination, BasicAuth) {
    START_RECEIVER(r);
    auto o = options_for(r);
    o.username = "user";
    o.password = "pa:ss";
    auto d = make(o);
    batch_builder b(0, 1);
    ASSERT_EQ(d->send(b.items).status, send_status::delivered);
    EXPECT_EQ(r.batches().at(0).headers["Authorization"],
              "Basic " + util::base64_encode("user:pa:ss"));
}

TEST(WebhookDestination, SignatureIsVerifiedByTheReceiver) {
    START_RECEIVER(r, {"--secret", "s3cret"});
    auto o = options_for(r);
    o.signing_secret = "s3cret";
    auto d = make(o);
    batch_builder b(0, 2);
    auto out = d->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    auto batch = r.batches().at(0);
    EXPECT_EQ(batch.headers["X-Switchyard-Signature"],
              reference_signature("s3cret", "1700000000", batch.body));

    o.signing_secret = "wrong";
    auto bad = make(o);
    out = bad->send(b.items);
    EXPECT_EQ(out.status, send_status::reject);
    EXPECT_EQ(out.reason, "HTTP 401: bad signature");
    EXPECT_EQ(r.stat("bad_signature"), 1);
}

TEST(WebhookDestination, GzipBody) {
    START_RECEIVER(r, {"--secret", "k"});
    auto o = options_for(r);
    o.gzip = true;
    o.signing_secret = "k";  // signs the compressed bytes, as sent
    auto d = make(o);
    batch_builder b(0, 50);
    auto out = d->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    EXPECT_EQ(r.received_ids(), ids(0, 50));
    auto batch = r.batches().at(0);
    EXPECT_EQ(batch.headers["Content-Encoding"], "gzip");
    std::string want;
    render_webhook_body(webhook_format::batch_object, b.items, 1700000000123, want);
    EXPECT_EQ(gunzip(batch.body), want);
    EXPECT_LT(batch.body.size(), want.size());
    // A second batch reuses the compressor.
    batch_builder c(50, 5);
    ASSERT_EQ(d->send(c.items).status, send_status::delivered);
    EXPECT_EQ(r.received_ids(), ids(0, 55));
}

TEST(WebhookDestination, ReusesTheConnection) {
    START_RECEIVER(r);
    auto d = make(options_for(r));
    for (std::size_t i = 0; i < 3; ++i) {
        batch_builder b(i * 10, 2);
        ASSERT_EQ(d->send(b.items).status, send_status::delivered);
    }
    EXPECT_EQ(r.stat("requests"), 3);
    EXPECT_EQ(r.stat("connections"), 1);
}

TEST(WebhookDestination, ServerErrorRetriesAndMarksUnhealthy) {
    START_RECEIVER(r);
    auto d = make(options_for(r));
    r.mode(R"({"mode":"fail500"})");
    batch_builder b(0, 2);
    auto out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_EQ(out.reason, "HTTP 500: receiver told to fail");
    EXPECT_EQ(out.retry_after, 0ms);
    EXPECT_FALSE(d->healthy());
    r.mode(R"({"mode":"ok"})");
    ASSERT_EQ(d->send(b.items).status, send_status::delivered);
    EXPECT_TRUE(d->healthy());
    EXPECT_EQ(r.received_ids(), ids(0, 2));
    EXPECT_EQ(r.stat("connections"), 1);  // a 500 does not cost the connection
}

TEST(WebhookDestination, TooManyRequestsHonoursRetryAfter) {
    START_RECEIVER(r);
    auto o = options_for(r);
    o.max_retry_after = 60s;
    auto d = make(o);
    batch_builder b(0, 1);
    r.mode(R"({"mode":"429","retry_after":"2"})");
    auto out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_EQ(out.retry_after, 2s);
    EXPECT_EQ(out.reason, "HTTP 429: slow down");

    // An HTTP-date, measured against the destination's clock (fake_now + 30 s).
    r.mode(R"({"mode":"429","retry_after":"Tue, 14 Nov 2023 22:13:50 GMT"})");
    out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_EQ(out.retry_after, 29877ms);

    // Capped by max_retry_after.
    r.mode(R"({"mode":"429","retry_after":"86400"})");
    EXPECT_EQ(d->send(b.items).retry_after, 60s);
}

TEST(WebhookDestination, BadRequestRejectsWithTheBody) {
    START_RECEIVER(r);
    auto d = make(options_for(r));
    r.mode(R"({"mode":"reject_matching","match":"m-7\""})");
    batch_builder good(0, 3), bad(6, 3);
    EXPECT_EQ(d->send(good.items).status, send_status::delivered);
    auto out = d->send(bad.items);
    EXPECT_EQ(out.status, send_status::reject);
    EXPECT_EQ(out.reason, "HTTP 400: rejected: contains m-7\"");
    EXPECT_FALSE(d->healthy());
    EXPECT_EQ(r.received_ids(), ids(0, 3));
}

TEST(WebhookDestination, LongResponseBodiesAreCutInTheReason) {
    START_RECEIVER(r);
    auto o = options_for(r);
    auto d = make(o);
    batch_builder b(0, 1);
    r.mode(R"({"mode":"status","status":422,"body":")" + std::string(1000, 'x') + "\\nmore\"}");
    auto out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::reject);
    EXPECT_EQ(out.reason, "HTTP 422: " + std::string(200, 'x') + "…");

    // Only max_response_bytes of the body are kept.
    o.max_response_bytes = 50;
    auto small = make(o);
    out = small->send(b.items);
    EXPECT_EQ(out.reason, "HTTP 422: " + std::string(50, 'x'));

    // A body well past max_response_bytes is not read to its end: the connection is dropped
    // and the next batch goes over a new one.
    r.mode(R"({"mode":"status","status":422,"body":")" + std::string(300000, 'y') + "\"}");
    out = d->send(b.items);
    EXPECT_EQ(out.reason, "HTTP 422: " + std::string(200, 'y') + "…");
    r.mode(R"({"mode":"ok"})");
    EXPECT_EQ(d->send(b.items).status, send_status::delivered);
    EXPECT_EQ(r.stat("connections"), 3);  // d's first, small's, d's second
}

TEST(WebhookDestination, RedirectRejects) {
    START_RECEIVER(r);
    auto d = make(options_for(r));
    r.mode(R"({"mode":"status","status":302,"location":"https://elsewhere.example/"})");
    batch_builder b(0, 1);
    auto out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::reject);
    EXPECT_EQ(out.reason,
              "HTTP 302: redirects are not followed (Location: https://elsewhere.example/)");
}

TEST(WebhookDestination, ConnectionRefusedRetries) {
    // A bound socket that does not listen: connecting to it is refused, and nobody else can take
    // the port while the test runs.
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.open(tcp::v4());
    s.bind({asio::ip::make_address("127.0.0.1"), 0});
    webhook_destination_options o;
    o.url = "http://127.0.0.1:" + std::to_string(s.local_endpoint().port()) + "/";
    auto d = make(o);
    batch_builder b(0, 1);
    auto out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_NE(out.reason.find("cannot connect to 127.0.0.1:"), std::string::npos) << out.reason;
    EXPECT_FALSE(d->healthy());
}

TEST(WebhookDestination, HangingServerTimesOutAndRetries) {
    START_RECEIVER(r);
    auto o = options_for(r);
    o.request_timeout = 300ms;
    auto d = make(o);
    r.mode(R"({"mode":"hang"})");
    batch_builder b(0, 1);
    auto start = std::chrono::steady_clock::now();
    auto out = d->send(b.items);
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_NE(out.reason.find("timed out after 300ms"), std::string::npos) << out.reason;
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 5s);
    // The next attempt gets a fresh connection; the hung handler finishes when the mode changes.
    r.mode(R"({"mode":"ok"})");
    batch_builder c(1, 1);
    EXPECT_EQ(d->send(c.items).status, send_status::delivered);
    EXPECT_EQ(r.stat("connections"), 2);
}

TEST(WebhookDestination, ResetConnectionRetriesOnceOnAReusedConnection) {
    START_RECEIVER(r);
    auto d = make(options_for(r));
    batch_builder b(0, 1);
    ASSERT_EQ(d->send(b.items).status, send_status::delivered);
    r.mode(R"({"mode":"reset"})");
    auto out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::retry);
    // The reused connection failed first, then one fresh connection failed the same way.
    EXPECT_EQ(r.stat("requests"), 3);
    EXPECT_EQ(r.stat("connections"), 2);
    r.mode(R"({"mode":"ok"})");
    EXPECT_EQ(d->send(b.items).status, send_status::delivered);
}

TEST(WebhookDestination, HttpsVerifiesTheCertificate) {
    temp_dir tmp;
    START_RECEIVER(r, {"--tls-dir", tmp.path.string()});
    ASSERT_TRUE(r.tls());
    batch_builder b(0, 2);

    // The system trust store does not know the self-signed certificate.
    auto o = options_for(r);
    o.tls.ca_file.clear();
    auto untrusted = make(o);
    auto out = untrusted->send(b.items);
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_NE(out.reason.find("TLS certificate verification failed"), std::string::npos)
        << out.reason;

    auto trusted = make(options_for(r));
    out = trusted->send(b.items);
    ASSERT_EQ(out.status, send_status::delivered) << out.reason;
    EXPECT_EQ(r.received_ids(), ids(0, 2));

    o.tls.insecure_skip_verify = true;
    auto insecure = make(o);
    EXPECT_EQ(insecure->send(b.items).status, send_status::delivered);
}

TEST(WebhookDestination, HttpsHostNameMustMatch) {
    temp_dir tmp;
    START_RECEIVER(r, {"--tls-dir", tmp.path.string(), "--tls-names", "DNS:example.invalid"});
    auto d = make(options_for(r));  // trusts the certificate, which does not name 127.0.0.1
    batch_builder b(0, 1);
    auto out = d->send(b.items);
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_NE(out.reason.find("TLS certificate verification failed for 127.0.0.1:"),
              std::string::npos)
        << out.reason;
    EXPECT_NE(out.reason.find("mismatch"), std::string::npos) << out.reason;
}

TEST(WebhookDestination, UnusableCaFileFailsAtStart) {
    temp_dir tmp;
    std::ofstream(tmp.path / "empty.pem") << "";
    webhook_destination_options o;
    o.url = "https://127.0.0.1:1/";
    o.tls.ca_file = (tmp.path / "empty.pem").string();
    std::string err;
    EXPECT_EQ(webhook_destination::create(o, err), nullptr);
    EXPECT_NE(err.find("cannot load tls.ca_file"), std::string::npos) << err;
}

// ---------------------------------------------------------------------------------------------
// Config.

std::unique_ptr<destination> from_yaml(const std::string& yaml, config::errors& errs) {
    config::map_reader r(YAML::Load(yaml), "destinations[0]", errs);
    return make_webhook_destination(r, destination_context{"hook", "/tmp"});
}

std::string joined(const config::errors& errs) {
    std::string all;
    for (const auto& e : errs.list()) all += e + "\n";
    return all;
}

TEST(WebhookConfig, ReadsEverySetting) {
    ::setenv("WEBHOOK_TEST_KEY", "from-env", 1);
    config::errors errs;
    auto d = from_yaml(R"(
url: https://hooks.example.com/in
format: ndjson
gzip: true
headers:
  X-Api-Key: "${WEBHOOK_TEST_KEY}"
  X-Other: "${WEBHOOK_TEST_UNSET:-fallback}"
auth: {bearer: tok}
signing_secret: s
connect_timeout: 2s
request_timeout: 10s
max_retry_after: 1m
max_response_bytes: 4KiB
tls: {insecure_skip_verify: true}
)",
                       errs);
    ASSERT_TRUE(errs.empty()) << joined(errs);
    ASSERT_NE(d, nullptr);
    auto* w = dynamic_cast<webhook_destination*>(d.get());
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->url().host, "hooks.example.com");
    EXPECT_TRUE(w->url().tls);
}

TEST(WebhookConfig, ReportsAllErrorsWithPositions) {
    config::errors errs;
    auto d = from_yaml(R"(url: ftp://x/
format: xml
headers:
  Content-Length: "1"
  "Bad Name": x
  X-Multi: "a\nb"
auth: {bearer: t, username: u}
request_timeout: 0s
tls: {ca_file: /nonexistent/ca.pem, verify: false}
bogus: 1
)",
                       errs);
    EXPECT_EQ(d, nullptr);
    std::string all = joined(errs);
    for (const char* want :
         {"<config>:1:6: destinations[0].url: must start with http:// or https://",
          "<config>:2:9: destinations[0].format: must be batch_object, ndjson or array, got 'xml'",
          "destinations[0].headers.Content-Length: set by the destination itself",
          "destinations[0].headers.Bad Name: not a valid header name",
          "destinations[0].headers.X-Multi: header values cannot contain line breaks",
          "destinations[0].auth: give either bearer or username/password, not both",
          "destinations[0].request_timeout: must be positive",
          "destinations[0].tls.ca_file: cannot read /nonexistent/ca.pem",
          "destinations[0].tls: unknown key 'verify'", "destinations[0]: unknown key 'bogus'"}) {
        EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << all;
    }
    EXPECT_EQ(errs.list().size(), 10u) << all;
}

TEST(WebhookConfig, UrlIsRequired) {
    config::errors errs;
    EXPECT_EQ(from_yaml("format: array\n", errs), nullptr);
    ASSERT_EQ(errs.list().size(), 1u);
    EXPECT_NE(errs.list()[0].find("destinations[0].url: required key is missing"),
              std::string::npos);
}

// What `switchyard check -c config/examples/webhook.yaml` does for this destination, runnable
// before the type is registered.
TEST(WebhookConfig, ExampleConfigIsValid) {
    ::setenv("WEBSITE_WRITE_KEY", "wk-website", 0);
    const fs::path file = receiver_script().parent_path().parent_path().parent_path() / "config" /
                          "examples" / "webhook.yaml";
    config::errors errs(file.string());
    auto cfg = config::load_file(file.string(), errs);
    ASSERT_TRUE(errs.empty()) << joined(errs);
    std::size_t webhooks = 0;
    for (std::size_t i = 0; i < cfg.destinations.size(); ++i) {
        const auto& d = cfg.destinations[i];
        if (d.type != "webhook") continue;
        config::map_reader settings(d.settings, "destinations[" + std::to_string(i) + "]", errs);
        for (auto k : {"name", "type", "batch_max_events", "batch_max_bytes", "batch_max_wait",
                       "retry_backoff_base", "retry_backoff_max"}) {
            settings.consume(k);
        }
        EXPECT_NE(make_webhook_destination(settings, {d.name, "/tmp"}), nullptr);
        ++webhooks;
    }
    EXPECT_TRUE(errs.empty()) << joined(errs);
    EXPECT_EQ(webhooks, 1u);
}

TEST(WebhookConfig, DescribeModeDocumentsKeys) {
    config::errors errs;
    config::key_catalog catalog;
    config::map_reader r(YAML::Node(), "d", errs, &catalog);
    EXPECT_EQ(make_webhook_destination(r, {}), nullptr);
    std::vector<std::string> keys;
    for (const auto& k : catalog.keys()) keys.push_back(k.path);
    EXPECT_EQ(keys, (std::vector<std::string>{
                        "d.url", "d.format", "d.gzip", "d.headers", "d.auth", "d.auth.bearer",
                        "d.auth.username", "d.auth.password", "d.signing_secret",
                        "d.connect_timeout", "d.request_timeout", "d.max_retry_after",
                        "d.max_response_bytes", "d.tls", "d.tls.ca_file",
                        "d.tls.insecure_skip_verify", "d.tls.client_cert", "d.tls.client_key"}));
    EXPECT_TRUE(errs.empty()) << joined(errs);
}

}  // namespace
}  // namespace switchyard::destinations
