#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::telemetry {

// The process's Prometheus registry and the core metric families. Shared by every thread;
// prometheus-cpp counters are atomic, label lookups take the family's mutex.
class metrics {
  public:
    metrics();

    prometheus::Registry& registry() { return *registry_; }

    void count_request(std::string_view route, unsigned status);
    void count_accepted(std::string_view source, double n);
    void count_rejected(std::string_view reason, double n);
    void count_duplicate(std::string_view source, double n);
    void observe_fsync(double seconds) { fsync_seconds_->Observe(seconds); }

    prometheus::Family<prometheus::Gauge>& gauges(const std::string& name, const std::string& help);
    prometheus::Family<prometheus::Counter>& counters(const std::string& name,
                                                      const std::string& help);

    // Runs before each scrape so pollers can refresh gauges from component stats.
    void on_scrape(std::function<void()> f);

    // Prometheus text exposition format.
    std::string render();

  private:
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>* requests_;
    prometheus::Family<prometheus::Counter>* accepted_;
    prometheus::Family<prometheus::Counter>* rejected_;
    prometheus::Family<prometheus::Counter>* duplicates_;
    prometheus::Histogram* fsync_seconds_;
    std::mutex mu_;
    std::vector<std::function<void()>> scrapers_;
};

}  // namespace switchyard::telemetry
