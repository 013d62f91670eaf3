#include "http/server.h"

#include "http/framing.h"
#include "http/gzip.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <list>
#include <mutex>

namespace switchyard::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

io_pool::io_pool(std::size_t threads) {
    if (threads == 0) threads = 1;
    for (std::size_t i = 0; i < threads; ++i) {
        contexts_.push_back(std::make_unique<asio::io_context>(1));
        guards_.push_back(
            std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
                contexts_.back()->get_executor()));
    }
}

io_pool::~io_pool() { stop(); }

void io_pool::run() {
    for (auto& ctx : contexts_) {
        threads_.emplace_back([c = ctx.get()] { c->run(); });
    }
}

void io_pool::stop() {
    for (auto& g : guards_) g.reset();
    for (auto& ctx : contexts_) ctx->stop();
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
    threads_.clear();
}

// Per-connection bookkeeping that shutdown needs. Touched only on the connection's I/O thread.
struct session_slot {
    beast::tcp_stream* stream = nullptr;
    bool busy = false;
};

struct per_context {
    asio::io_context* ctx = nullptr;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::list<session_slot> sessions;  // only touched on ctx's thread
};

struct server::state {
    std::string name;
    server_limits limits;
    handler* app = nullptr;
    server_stats stats;
    std::vector<std::unique_ptr<per_context>> contexts;
    std::atomic<bool> stopping{false};
};

namespace {

response make_error(unsigned status, std::string_view code, std::string_view message) {
    response res{static_cast<bhttp::status>(status), 11};
    res.set(bhttp::field::content_type, "application/json");
    std::string body = R"({"success":false,"code":)" + std::to_string(status) + R"(,"error":")";
    body += code;
    body += R"(","message":")";
    for (char c : message) {
        if (c == '"' || c == '\\') body += '\\';
        if (static_cast<unsigned char>(c) >= 0x20) body += c;
    }
    body += "\"}";
    res.body() = std::move(body);
    res.keep_alive(false);
    res.prepare_payload();
    return res;
}

// Bridges the handler's callback to the awaiting coroutine: the response is posted back to the
// connection's executor.
template <class Token>
auto async_handle(handler& h, request& req, const asio::ip::address& peer, Token&& token) {
    return asio::async_initiate<Token, void(response)>(
        [&h, &req, peer](auto completion) {
            auto ex = asio::get_associated_executor(completion);
            auto shared = std::make_shared<decltype(completion)>(std::move(completion));
            h.handle(req, peer, [shared, ex](response res) {
                asio::post(ex,
                           [shared, res = std::move(res)]() mutable { (*shared)(std::move(res)); });
            });
        },
        token);
}

// Writes `res`, then drains what the client still sends for a bounded time so it can read the
// answer before the connection closes (closing with unread input would reset the connection).
asio::awaitable<void> write_and_close(beast::tcp_stream& stream, response res,
                                      std::chrono::milliseconds write_timeout) {
    beast::error_code ec;
    stream.expires_after(write_timeout);
    co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    char sink[4096];
    std::size_t drained = 0;
    stream.expires_after(std::chrono::seconds(1));
    while (drained < (1u << 20)) {
        std::size_t n = co_await stream.async_read_some(
            asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        drained += n;
    }
}

bool is_quiet_close(const beast::error_code& ec) {
    return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
           ec == asio::error::bad_descriptor;
}

asio::awaitable<void> run_session(tcp::socket socket, std::shared_ptr<server::state> st,
                                  per_context* pc) {
    beast::tcp_stream stream(std::move(socket));
    pc->sessions.push_back(session_slot{&stream, false});
    auto slot = std::prev(pc->sessions.end());
    struct unregister {
        std::list<session_slot>& l;
        std::list<session_slot>::iterator it;
        server_stats& stats;
        ~unregister() {
            l.erase(it);
            stats.connections_active.fetch_sub(1, std::memory_order_relaxed);
        }
    } guard{pc->sessions, slot, st->stats};

    const server_limits& lim = st->limits;
    beast::flat_buffer buffer(lim.max_header_bytes + 64 * 1024);
    beast::error_code ec;
    bool first = true;

    auto peer = stream.socket().remote_endpoint(ec).address();
    if (ec) co_return;

    while (!st->stopping.load(std::memory_order_relaxed)) {
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(lim.max_header_bytes));
        parser.body_limit(lim.max_body_bytes);

        stream.expires_after(first ? lim.header_timeout : lim.idle_timeout);
        first = false;
        co_await bhttp::async_read_header(stream, buffer, parser,
                                          asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == bhttp::error::end_of_stream && buffer.size() == 0) co_return;
            if (is_quiet_close(ec) && ec != bhttp::error::end_of_stream) co_return;
            st->stats.protocol_errors.fetch_add(1, std::memory_order_relaxed);
            if (ec == beast::error::timeout) {
                if (buffer.size() == 0) co_return;  // idle keep-alive connection: just close
                co_await write_and_close(
                    stream,
                    make_error(408, "header_timeout", "request headers were not received in time"),
                    lim.write_timeout);
                co_return;
            }
            if (ec == bhttp::error::body_limit) {
                // A Content-Length above the cap is refused as soon as the headers are read,
                // without waiting for the body.
                co_await write_and_close(
                    stream,
                    make_error(
                        413, "body_too_large",
                        "request body exceeds " + std::to_string(lim.max_body_bytes) + " bytes"),
                    lim.write_timeout);
                co_return;
            }
            if (ec == bhttp::error::header_limit) {
                co_await write_and_close(
                    stream,
                    make_error(431, "header_too_large",
                               "request headers exceed " + std::to_string(lim.max_header_bytes) +
                                   " bytes"),
                    lim.write_timeout);
                co_return;
            }
            co_await write_and_close(
                stream, make_error(400, "bad_request", "malformed HTTP request: " + ec.message()),
                lim.write_timeout);
            co_return;
        }
        // From the end of the headers until the response is written the request is in flight:
        // a graceful stop lets it finish (body, handling, response) within the shutdown grace.
        slot->busy = true;
        if (auto why = check_framing(parser.get()); why) {
            st->stats.protocol_errors.fetch_add(1, std::memory_order_relaxed);
            co_await write_and_close(stream, make_error(400, "bad_framing", *why),
                                     lim.write_timeout);
            co_return;
        }
        if (!parser.is_done()) {
            auto expect = parser.get()[bhttp::field::expect];
            if (beast::iequals(expect, "100-continue")) {
                bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
                stream.expires_after(lim.write_timeout);
                co_await bhttp::async_write(stream, cont,
                                            asio::redirect_error(asio::use_awaitable, ec));
                if (ec) co_return;
            }
            stream.expires_after(lim.body_timeout);
            co_await bhttp::async_read(stream, buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                st->stats.protocol_errors.fetch_add(1, std::memory_order_relaxed);
                if (ec == bhttp::error::body_limit) {
                    co_await write_and_close(
                        stream,
                        make_error(413, "body_too_large",
                                   "request body exceeds " + std::to_string(lim.max_body_bytes) +
                                       " bytes"),
                        lim.write_timeout);
                } else if (ec == beast::error::timeout) {
                    co_await write_and_close(
                        stream,
                        make_error(408, "body_timeout", "request body was not received in time"),
                        lim.write_timeout);
                } else if (!is_quiet_close(ec) && ec != bhttp::error::partial_message) {
                    co_await write_and_close(
                        stream,
                        make_error(400, "bad_request", "malformed HTTP body: " + ec.message()),
                        lim.write_timeout);
                }
                co_return;
            }
        }
        request req = parser.release();

        // Content-Encoding: gzip bodies are inflated here, with the same cap as raw bodies.
        if (auto enc = req[bhttp::field::content_encoding];
            !enc.empty() && !beast::iequals(enc, "identity")) {
            if (beast::iequals(enc, "gzip") || beast::iequals(enc, "x-gzip") ||
                beast::iequals(enc, "deflate")) {
                std::string inflated;
                auto rc = inflate_body(req.body(), lim.max_body_bytes, inflated);
                if (rc != inflate_status::ok) {
                    st->stats.protocol_errors.fetch_add(1, std::memory_order_relaxed);
                    auto res =
                        rc == inflate_status::too_large
                            ? make_error(413, "body_too_large",
                                         "decompressed body exceeds " +
                                             std::to_string(lim.max_body_bytes) + " bytes")
                            : make_error(400, "invalid_encoding", "body is not valid gzip data");
                    co_await write_and_close(stream, std::move(res), lim.write_timeout);
                    co_return;
                }
                req.body() = std::move(inflated);
            } else {
                co_await write_and_close(
                    stream,
                    make_error(415, "unsupported_encoding",
                               "Content-Encoding must be gzip, deflate or identity"),
                    lim.write_timeout);
                co_return;
            }
        }

        response res = co_await async_handle(*st->app, req, peer, asio::use_awaitable);
        bool keep =
            req.keep_alive() && res.keep_alive() && !st->stopping.load(std::memory_order_relaxed);
        res.keep_alive(keep);
        res.version(req.version());
        stream.expires_after(lim.write_timeout);
        co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        slot->busy = false;
        if (ec || !keep) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> accept_loop(std::shared_ptr<server::state> st, per_context* pc) {
    for (;;) {
        beast::error_code ec;
        tcp::socket sock =
            co_await pc->acceptor->async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !pc->acceptor->is_open()) co_return;
            // EMFILE and friends: back off briefly instead of spinning.
            spdlog::warn("Listener {} failed to accept a connection: {}.", st->name, ec.message());
            asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        st->stats.connections_accepted.fetch_add(1, std::memory_order_relaxed);
        auto active = st->stats.connections_active.fetch_add(1, std::memory_order_relaxed) + 1;
        if (static_cast<std::size_t>(active) > st->limits.max_connections) {
            st->stats.connections_active.fetch_sub(1, std::memory_order_relaxed);
            st->stats.connections_refused.fetch_add(1, std::memory_order_relaxed);
            static constexpr std::string_view busy =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                "Retry-After: 1\r\nConnection: close\r\nContent-Length: 99\r\n\r\n"
                R"({"success":false,"code":503,"error":"too_many_connections","message":"connection limit reached"})";
            sock.non_blocking(true, ec);
            sock.send(asio::buffer(busy.data(), busy.size()), 0, ec);
            sock.close(ec);
            continue;
        }
        sock.set_option(tcp::no_delay(true), ec);
        asio::co_spawn(pc->acceptor->get_executor(), run_session(std::move(sock), st, pc),
                       asio::detached);
    }
}

}  // namespace

server::server(io_pool& pool, std::string name, server_limits limits, handler& h, bool all_threads)
    : pool_(pool),
      state_(std::make_shared<state>()),
      stats_(state_->stats),
      all_threads_(all_threads) {
    state_->name = std::move(name);
    state_->limits = limits;
    state_->app = &h;
}

server::~server() = default;

void server::listen(const std::string& host, unsigned short port) {
    auto addr = asio::ip::make_address(host);
    std::size_t n = all_threads_ ? pool_.size() : 1;
    for (std::size_t i = 0; i < n; ++i) {
        auto pc = std::make_unique<per_context>();
        pc->ctx = &pool_.context(i);
        pc->acceptor = std::make_unique<tcp::acceptor>(*pc->ctx);
        tcp::endpoint ep(addr, port_ != 0 ? port_ : port);
        pc->acceptor->open(ep.protocol());
        pc->acceptor->set_option(asio::socket_base::reuse_address(true));
        if (n > 1) {
            int one = 1;
            ::setsockopt(pc->acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one,
                         sizeof(one));
        }
        pc->acceptor->bind(ep);
        pc->acceptor->listen(asio::socket_base::max_listen_connections);
        // With port 0 the first bind picks the port; the others join it.
        port_ = pc->acceptor->local_endpoint().port();
        state_->contexts.push_back(std::move(pc));
    }
    for (auto& pc : state_->contexts) {
        asio::co_spawn(*pc->ctx, accept_loop(state_, pc.get()), asio::detached);
    }
}

void server::stop_accepting() {
    state_->stopping.store(true);
    for (auto& pc : state_->contexts) {
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        asio::post(*pc->ctx, [&, p = pc.get()] {
            beast::error_code ec;
            p->acceptor->close(ec);
            for (auto& s : p->sessions) {
                if (!s.busy) beast::get_lowest_layer(*s.stream).socket().close(ec);
            }
            std::lock_guard lk(mu);
            done = true;
            cv.notify_one();
        });
        std::unique_lock lk(mu);
        cv.wait_for(lk, std::chrono::seconds(5), [&] { return done; });
    }
}

void server::close_all() {
    for (auto& pc : state_->contexts) {
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        asio::post(*pc->ctx, [&, p = pc.get()] {
            beast::error_code ec;
            for (auto& s : p->sessions) beast::get_lowest_layer(*s.stream).socket().close(ec);
            std::lock_guard lk(mu);
            done = true;
            cv.notify_one();
        });
        std::unique_lock lk(mu);
        cv.wait_for(lk, std::chrono::seconds(5), [&] { return done; });
    }
}

}  // namespace switchyard::http
