#pragma once

#include "http/server.h"
#include "telemetry/metrics.h"

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace switchyard::http {

// The operator API behind /v1/* on the admin listener (destinations, dead letters, reload).
// Calls may block on disk, so they run on the admin handler's own thread, never on an I/O thread.
class operator_backend {
  public:
    struct reply {
        unsigned status = 200;
        std::string json;
    };
    virtual ~operator_backend() = default;
    virtual reply call(std::string_view method, std::string_view path, std::string_view query,
                       std::string_view body) = 0;
};

// The admin listener's routes: /healthz (process alive), /readyz (accepting events),
// /metrics (Prometheus text format), and /v1/* (operator API, bearer token required).
// Runs on the first I/O thread; operator calls are handed to one worker thread.
class admin_handler final : public handler {
  public:
    admin_handler(telemetry::metrics& m, std::function<bool()> ready, std::string token = {},
                  operator_backend* backend = nullptr);
    ~admin_handler() override;
    void handle(request& req, const boost::asio::ip::address& peer, responder respond) override;

  private:
    telemetry::metrics& metrics_;
    std::function<bool()> ready_;
    std::string token_;
    operator_backend* backend_;
    std::unique_ptr<boost::asio::thread_pool> ops_;
};

// Constant-time comparison of a presented credential with the expected one.
bool token_equals(std::string_view presented, std::string_view expected) noexcept;

}  // namespace switchyard::http
