#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace switchyard::http {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;

struct server_limits {
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 1024 * 1024;          // as received, and again after gunzip
    std::chrono::milliseconds header_timeout{10'000};  // first request: connect → end of headers
    std::chrono::milliseconds idle_timeout{75'000};    // keep-alive: last response → next headers
    std::chrono::milliseconds body_timeout{30'000};    // end of headers → end of body
    std::chrono::milliseconds write_timeout{10'000};
    std::size_t max_connections = 10'000;
};

// The application behind a listener. handle() runs on the connection's I/O thread with the
// decoded (gunzipped) body in `req.body()`; it must call `respond` exactly once, from any thread.
class handler {
  public:
    using responder = std::function<void(response)>;
    virtual ~handler() = default;
    virtual void handle(request& req, const boost::asio::ip::address& peer, responder respond) = 0;
};

struct server_stats {
    std::atomic<std::uint64_t> connections_accepted{0};
    std::atomic<std::uint64_t> connections_refused{0};  // over max_connections
    std::atomic<std::int64_t> connections_active{0};
    std::atomic<std::uint64_t> protocol_errors{0};  // framing, parse, limits, timeouts
};

// A pool of I/O threads, each running its own io_context (concurrency hint 1).
// Lifecycle: built at start, run() starts the threads, stop() joins them. Listeners are attached
// before run().
class io_pool {
  public:
    explicit io_pool(std::size_t threads);
    ~io_pool();
    std::size_t size() const noexcept { return contexts_.size(); }
    boost::asio::io_context& context(std::size_t i) { return *contexts_[i]; }
    void run();
    void stop();

  private:
    std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
    std::vector<std::thread> threads_;
    std::vector<
        std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>>
        guards_;
};

// An HTTP/1.1 listener: one SO_REUSEPORT acceptor per I/O context (or just the first, for the
// admin listener), keep-alive, one request at a time per connection (pipelined requests wait in
// the bounded read buffer and are answered in order), absolute deadlines per phase, strict
// framing and gzip with an inflated-size cap. Owned by the app; lives until after io_pool::stop().
class server {
  public:
    server(io_pool& pool, std::string name, server_limits limits, handler& h, bool all_threads);
    ~server();

    // Binds; throws std::system_error at start-up when the address is unusable.
    void listen(const std::string& host, unsigned short port);
    unsigned short port() const noexcept { return port_; }

    // Stops accepting; idle keep-alive connections are closed, busy ones finish their request.
    void stop_accepting();
    // Closes every connection still open.
    void close_all();
    std::int64_t active_connections() const noexcept { return stats_.connections_active.load(); }
    const server_stats& stats() const noexcept { return stats_; }

    struct state;

  private:
    io_pool& pool_;
    std::shared_ptr<state> state_;
    server_stats& stats_;
    unsigned short port_ = 0;
    bool all_threads_;
};

}  // namespace switchyard::http
