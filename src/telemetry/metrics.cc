#include "telemetry/metrics.h"

#include <prometheus/text_serializer.h>

namespace switchyard::telemetry {

metrics::metrics() : registry_(std::make_shared<prometheus::Registry>()) {
    requests_ = &prometheus::BuildCounter()
                     .Name("switchyard_http_requests_total")
                     .Help("HTTP requests answered, by route and status.")
                     .Register(*registry_);
    accepted_ = &prometheus::BuildCounter()
                     .Name("switchyard_events_accepted_total")
                     .Help("Events accepted and durable in the log, by source.")
                     .Register(*registry_);
    rejected_ = &prometheus::BuildCounter()
                     .Name("switchyard_events_rejected_total")
                     .Help("Events refused by per-spec checks and kept in quarantine, by reason.")
                     .Register(*registry_);
    duplicates_ = &prometheus::BuildCounter()
                       .Name("switchyard_events_duplicate_total")
                       .Help(
                           "Events answered 2xx but not stored again: messageId seen inside the "
                           "dedup window, by source.")
                       .Register(*registry_);
    fsync_seconds_ = &prometheus::BuildHistogram()
                          .Name("switchyard_log_fsync_seconds")
                          .Help("Latency of the log's fdatasync calls.")
                          .Register(*registry_)
                          .Add({}, prometheus::Histogram::BucketBoundaries{
                                       0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05, 0.1, 0.25, 0.5, 1, 2.5});
}

namespace {

// Label lookups in prometheus-cpp build a std::map and take the family's mutex. The data path
// calls these per request, so each thread keeps the few counters it has used (a handful of
// routes × statuses, sources, reasons) and scans them linearly.
struct cached_counter {
    const void* owner;
    std::string key;
    unsigned status;
    prometheus::Counter* counter;
};

prometheus::Counter& cached(const void* owner, std::string_view key, unsigned status,
                            const std::function<prometheus::Counter&()>& make) {
    thread_local std::vector<cached_counter> cache;
    for (auto& c : cache) {
        if (c.owner == owner && c.status == status && c.key == key) return *c.counter;
    }
    auto& counter = make();
    cache.push_back({owner, std::string(key), status, &counter});
    return counter;
}

}  // namespace

void metrics::count_request(std::string_view route, unsigned status) {
    cached(requests_, route, status, [&]() -> prometheus::Counter& {
        return requests_->Add({{"route", std::string(route)}, {"status", std::to_string(status)}});
    }).Increment();
}

void metrics::count_accepted(std::string_view source, double n) {
    cached(accepted_, source, 0, [&]() -> prometheus::Counter& {
        return accepted_->Add({{"source", std::string(source)}});
    }).Increment(n);
}

void metrics::count_duplicate(std::string_view source, double n) {
    cached(duplicates_, source, 0, [&]() -> prometheus::Counter& {
        return duplicates_->Add({{"source", std::string(source)}});
    }).Increment(n);
}

void metrics::count_rejected(std::string_view reason, double n) {
    cached(rejected_, reason, 0, [&]() -> prometheus::Counter& {
        return rejected_->Add({{"reason", std::string(reason)}});
    }).Increment(n);
}

prometheus::Family<prometheus::Gauge>& metrics::gauges(const std::string& name,
                                                       const std::string& help) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
}

prometheus::Family<prometheus::Counter>& metrics::counters(const std::string& name,
                                                           const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
}

void metrics::on_scrape(std::function<void()> f) {
    std::lock_guard lk(mu_);
    scrapers_.push_back(std::move(f));
}

std::string metrics::render() {
    {
        std::lock_guard lk(mu_);
        for (auto& f : scrapers_) f();
    }
    prometheus::TextSerializer s;
    return s.Serialize(registry_->Collect());
}

}  // namespace switchyard::telemetry
