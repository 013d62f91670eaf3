#pragma once

#include "http/server.h"
#include "telemetry/metrics.h"

#include <atomic>
#include <functional>

namespace switchyard::http {

// The admin listener's routes: /healthz (process alive), /readyz (accepting events),
// /metrics (Prometheus text format). Runs on the first I/O thread.
class admin_handler final : public handler {
  public:
    admin_handler(telemetry::metrics& m, std::function<bool()> ready)
        : metrics_(m), ready_(std::move(ready)) {}
    void handle(request& req, const boost::asio::ip::address& peer, responder respond) override;

  private:
    telemetry::metrics& metrics_;
    std::function<bool()> ready_;
};

}  // namespace switchyard::http
