#include "app/delivery_manager.h"

#include "app/operator_reply.h"
#include "destinations/file/file_destination.h"
#include "destinations/registry.h"
#include "route/route.h"
#include "util/json.h"
#include "util/time.h"
#include "util/url.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace switchyard::app {

namespace {

constexpr std::string_view quarantine_name = "_quarantine";

using util::parse_query;

// Builds a dead-letter filter from query parameters; false + message on a bad value.
bool read_filter(const std::map<std::string, std::string>& q, delivery::dead_letter_filter& f,
                 std::size_t& limit, std::string& err) {
    if (auto it = q.find("kind"); it != q.end() && !it->second.empty()) f.kind = it->second;
    if (auto it = q.find("reason"); it != q.end() && !it->second.empty()) {
        f.reason_contains = it->second;
    }
    for (const char* k : {"since", "until"}) {
        auto it = q.find(k);
        if (it == q.end() || it->second.empty()) continue;
        auto ms = util::parse_iso8601_ms(it->second);
        if (!ms) {
            err = fmt::format("'{}' is not an ISO-8601 date-time", k);
            return false;
        }
        (std::string_view(k) == "since" ? f.since_ms : f.until_ms) = *ms;
    }
    if (auto it = q.find("ids"); it != q.end() && !it->second.empty()) {
        std::string_view s = it->second;
        while (!s.empty()) {
            auto comma = s.find(',');
            auto item = s.substr(0, comma);
            s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
            std::uint64_t id = 0;
            auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
            if (ec != std::errc() || p != item.data() + item.size()) {
                err = "'ids' must be comma-separated numbers";
                return false;
            }
            f.ids.push_back(id);
        }
    }
    if (auto it = q.find("limit"); it != q.end() && !it->second.empty()) {
        auto [p, ec] =
            std::from_chars(it->second.data(), it->second.data() + it->second.size(), limit);
        if (ec != std::errc()) {
            err = "'limit' must be a number";
            return false;
        }
    }
    return true;
}

}  // namespace

delivery_manager::delivery_manager(event_log* log, reader_factory readers,
                                   log::cursor_store& cursors, std::filesystem::path data_dir,
                                   telemetry::metrics& m, bool enabled)
    : log_(log),
      readers_(std::move(readers)),
      cursors_(cursors),
      enabled_(enabled),
      data_dir_(std::move(data_dir)),
      metrics_(m) {
    register_metrics();
}

void delivery_manager::entry::stop() {
    worker->stop();
    if (reader) reader->close();
}

delivery_manager::~delivery_manager() { stop_all(); }

void delivery_manager::on_commit() {
    // Retention follows the slowest cursor among the configured readers. Uses its own lock, not
    // mu_, so no operator action or reload can stall a destination's commits.
    if (log_ == nullptr) return;  // Kafka keeps its own retention
    std::lock_guard lk(release_mu_);
    auto snap = cursors_.snapshot();
    std::uint64_t floor = UINT64_MAX;
    for (const auto& name : names_) {
        auto it = snap.find(name);
        floor = std::min<std::uint64_t>(floor, it == snap.end() ? 0 : it->second);
    }
    if (floor != UINT64_MAX) log_->release_before(floor);
}

void delivery_manager::publish_names() {
    std::lock_guard lk(release_mu_);
    names_.clear();
    for (const auto& [name, e] : entries_) names_.push_back(name);
}

std::vector<std::shared_ptr<delivery_manager::entry>> delivery_manager::snapshot() {
    std::lock_guard lk(mu_);
    std::vector<std::shared_ptr<entry>> out;
    for (const auto& [name, e] : entries_) out.push_back(e);
    return out;
}

std::unique_ptr<delivery_manager::entry> delivery_manager::build(
    const config::config& cfg, const config::destination_config& d,
    std::shared_ptr<delivery::dead_letter_store> store, config::errors& errs) {
    destinations::registry reg;
    destinations::register_builtin(reg);
    const auto* f = reg.find(d.type);
    if (f == nullptr) {
        errs.add(d.mark, fmt::format("destinations: unknown type '{}'", d.type));
        return nullptr;
    }
    std::vector<std::unique_ptr<destination>> instances;
    for (std::uint64_t i = 0; i < d.concurrency; ++i) {
        config::map_reader settings(d.settings, "destinations." + d.name, errs);
        for (const auto& k : d.core_keys) settings.consume(k);
        destinations::destination_context ctx{d.name, cfg.data_dir, &metrics_};
        auto inst = (*f)(settings, ctx);
        if (!inst) return nullptr;
        instances.push_back(std::move(inst));
    }
    auto e = std::make_unique<entry>();
    e->name = d.name;
    e->type = d.type;
    e->fingerprint = YAML::Dump(d.settings);
    if (store) {
        e->dead_letters = std::move(store);  // a changed destination keeps its open store
    } else {
        e->dead_letters = std::make_shared<delivery::dead_letter_store>(
            data_dir_ / "dead_letter", d.name, d.dead_letter_max_bytes.bytes);
        try {
            e->dead_letters->open();
        } catch (const std::exception& ex) {
            errs.add(d.mark, fmt::format("destinations: {}: cannot open the dead-letter store: {}",
                                         d.name, ex.what()));
            return nullptr;
        }
    }

    delivery::worker_options wo;
    wo.name = d.name;
    wo.max_batch_events = d.batch_max_events;
    wo.max_batch_bytes = d.batch_max_bytes.bytes;
    wo.max_wait = d.batch_max_wait;
    wo.backoff_base = d.retry_backoff_base;
    wo.backoff_max = d.retry_backoff_max;
    wo.retry_max_attempts = static_cast<std::uint32_t>(d.retry_max_attempts);
    wo.retry_max_age = d.retry_max_age;
    wo.breaker_failures = static_cast<std::uint32_t>(d.breaker_failures);
    wo.breaker_cooldown = d.breaker_cooldown;
    wo.breaker_cooldown_max = d.breaker_cooldown_max;
    wo.max_lag_events = d.max_lag_events;
    wo.kinds.clear();
    if (d.events) wo.kinds.push_back(record_kind::event);
    if (d.identity_links) wo.kinds.push_back(record_kind::identity_link);
    if (d.quarantine) wo.kinds.push_back(record_kind::quarantine);
    if (d.deletions) {
        wo.kinds.push_back(record_kind::deletion);
        if (confirm_) {
            wo.on_delivered = [confirm = confirm_, name = d.name](const event_view& v) {
                confirm(name, v);
            };
        }
    }
    wo.when_lagging = d.when_lagging == "drop_oldest" ? delivery::lag_policy::drop_oldest
                                                      : delivery::lag_policy::block;
    if (d.rules) {
        auto router = std::make_shared<route::router>(*d.rules);
        if (!router->passthrough()) {
            // Called on the worker's single reader thread only.
            wo.route = [router](const event_view& ev,
                                std::string& transformed) -> std::optional<std::string_view> {
                auto v = router->route(ev, transformed);
                if (v == route::verdict::deliver) return std::nullopt;
                return route::to_string(v);
            };
        }
    }
    auto* sizes = &batch_size_->Add(
        {{"destination", d.name}},
        prometheus::Histogram::BucketBoundaries{1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000});
    auto* latency = &latency_->Add(
        {{"destination", d.name}},
        prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                0.5, 1, 2.5, 5, 10, 30});
    wo.on_send = [sizes, latency](std::size_t events, double seconds, send_status) {
        sizes->Observe(static_cast<double>(events));
        latency->Observe(seconds);
    };
    if (!attach_reader(*e, errs, d.mark)) return nullptr;
    event_log& source = e->reader ? static_cast<event_log&>(*e->reader) : *log_;
    log::cursor_backend& position =
        e->reader ? static_cast<log::cursor_backend&>(*e->reader) : cursors_;
    e->worker =
        std::make_unique<delivery::worker>(std::move(wo), source, position, std::move(instances),
                                           *e->dead_letters, [this] { on_commit(); });
    return e;
}

bool delivery_manager::attach_reader(entry& e, config::errors& errs, const YAML::Mark& mark) {
    if (!readers_) return true;
    try {
        e.reader = readers_(e.name);
    } catch (const std::exception& ex) {
        errs.add(mark, fmt::format("destinations: {}: cannot consume the Kafka log: {}", e.name,
                                   ex.what()));
        return false;
    }
    return true;
}

std::unique_ptr<delivery_manager::entry> delivery_manager::build_quarantine(
    const config::config& cfg) {
    auto e = std::make_unique<entry>();
    e->name = std::string(quarantine_name);
    e->type = "file";
    e->dead_letters =
        std::make_shared<delivery::dead_letter_store>(data_dir_ / "dead_letter", e->name);
    e->dead_letters->open();
    destinations::file_destination_options qo;
    qo.dir = cfg.quarantine_dir();
    qo.prefix = "quarantine";
    qo.rotate_bytes = cfg.quarantine.rotate_bytes.bytes;
    delivery::worker_options wo;
    wo.name = e->name;
    wo.kinds = {record_kind::quarantine};
    std::vector<std::unique_ptr<destination>> inst;
    inst.push_back(std::make_unique<destinations::file_destination>(qo));
    config::errors errs;
    if (!attach_reader(*e, errs, {})) {
        for (const auto& m : errs.list()) spdlog::error("{}", m);
        return nullptr;
    }
    event_log& source = e->reader ? static_cast<event_log&>(*e->reader) : *log_;
    log::cursor_backend& position =
        e->reader ? static_cast<log::cursor_backend&>(*e->reader) : cursors_;
    e->worker = std::make_unique<delivery::worker>(std::move(wo), source, position, std::move(inst),
                                                   *e->dead_letters, [this] { on_commit(); });
    return e;
}

std::string delivery_manager::apply(const config::config& cfg, config::errors& errs) {
    if (!enabled_) return "none here (role collect)";
    // Build everything new or changed first; nothing running is touched if any of it fails.
    std::map<std::string, std::unique_ptr<entry>> fresh;
    std::vector<std::string> unchanged;
    {
        std::lock_guard lk(mu_);
        for (const auto& d : cfg.destinations) {
            auto it = entries_.find(d.name);
            if (it != entries_.end() && it->second->fingerprint == YAML::Dump(d.settings)) {
                unchanged.push_back(d.name);
                continue;
            }
            auto e = build(cfg, d, it != entries_.end() ? it->second->dead_letters : nullptr, errs);
            if (e) fresh.emplace(d.name, std::move(e));
        }
    }
    if (!errs.empty()) return "config has errors; nothing changed";
    std::unique_ptr<entry> quarantine;
    {
        std::lock_guard lk(mu_);
        if (entries_.find(quarantine_name) == entries_.end()) quarantine = build_quarantine(cfg);
    }
    const bool quarantine_new = quarantine != nullptr;

    std::vector<std::shared_ptr<entry>> retired;
    std::vector<std::string> removed, changed, added;
    {
        std::lock_guard lk(mu_);
        for (auto it = entries_.begin(); it != entries_.end();) {
            const std::string& name = it->first;
            bool keep = name == quarantine_name ||
                        std::find(unchanged.begin(), unchanged.end(), name) != unchanged.end();
            if (keep) {
                ++it;
                continue;
            }
            (fresh.count(name) ? changed : removed).push_back(name);
            retired.push_back(std::move(it->second));
            it = entries_.erase(it);
        }
        // names_ still lists the retired ones until the new table is published below, so no
        // commit can release segments a changed destination still needs.
    }
    // Stop outside the lock: a worker's final commit calls on_commit(), which takes it.
    for (auto& e : retired) e->stop();
    for (const auto& name : removed) {
        spdlog::warn("Destination {} was removed from the config; its cursor is removed.", name);
        cursors_.remove(name);
    }
    retired.clear();
    {
        std::lock_guard lk(mu_);
        if (quarantine) entries_.emplace(quarantine->name, std::move(quarantine));
        for (auto& [name, e] : fresh) {
            entries_.emplace(name, std::move(e));
        }
        publish_names();
        for (const auto& d : cfg.destinations) {
            if (fresh.count(d.name) &&
                std::find(changed.begin(), changed.end(), d.name) == changed.end()) {
                added.push_back(d.name);
            }
        }
        // Cursors of destinations that are no longer configured would pin retention forever.
        for (const auto& [n, off] : cursors_.snapshot()) {
            if (entries_.find(n) == entries_.end()) {
                spdlog::warn(
                    "Destination {} is no longer configured; its cursor at offset {} is "
                    "removed.",
                    n, off);
                cursors_.remove(n);
            }
        }
    }
    {
        std::lock_guard lk(mu_);
        for (auto& [name, e] : entries_) {
            bool start = std::find(added.begin(), added.end(), name) != added.end() ||
                         std::find(changed.begin(), changed.end(), name) != changed.end() ||
                         (name == quarantine_name && quarantine_new);
            if (start) e->worker->start();
        }
    }
    auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& n : v) s += (s.empty() ? "" : ",") + n;
        return s.empty() ? std::string("-") : s;
    };
    return fmt::format("added {}; changed {}; removed {}; unchanged {}", join(added), join(changed),
                       join(removed), join(unchanged));
}

void delivery_manager::stop_all() {
    for (auto& e : snapshot()) e->stop();
}

std::shared_ptr<delivery_manager::entry> delivery_manager::find(std::string_view name) {
    std::lock_guard lk(mu_);
    auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : it->second;
}

std::string delivery_manager::destinations_json() {
    std::string j = "{\"destinations\":[";
    bool first = true;
    for (auto& e : snapshot()) {
        const std::string& name = e->name;
        auto s = e->worker->stats();
        if (!first) j += ',';
        first = false;
        j += "{\"name\":";
        util::append_json_string(j, name);
        j += ",\"type\":";
        util::append_json_string(j, e->type);
        j += ",\"state\":";
        util::append_json_string(j, e->worker->paused() ? std::string("paused") : s.state);
        j += fmt::format(
            ",\"lag_events\":{},\"lag_seconds\":{:.3f},\"cursor\":{},\"delivered\":{},"
            "\"retries\":{},\"rejected\":{},\"budget_exhausted\":{},\"dead_lettered\":{},"
            "\"dropped\":{},\"replayed\":{},\"breaker_opens\":{},\"in_flight\":{},"
            "\"healthy\":{},\"dead_letters\":{},\"replay_pending\":{},\"filtered\":{{",
            s.lag_events, s.lag_seconds, s.cursor, s.delivered, s.retries, s.rejected,
            s.budget_exhausted, s.dead_lettered, s.dropped, s.replayed, s.breaker_opens,
            s.in_flight, s.healthy ? "true" : "false", e->dead_letters->size(),
            e->dead_letters->replay_pending());
        bool ff = true;
        for (const auto& [reason, n] : s.filtered) {
            if (!ff) j += ',';
            ff = false;
            util::append_json_string(j, reason);
            j += fmt::format(":{}", n);
        }
        j += '}';
        if (e->reader) {
            auto k = e->reader->reader_stats();
            j += fmt::format(
                ",\"kafka\":{{\"assigned_partitions\":{},\"consumer_lag\":{},\"buffered\":{},"
                "\"fetched\":{},\"commits\":{},\"failed_commits\":{},\"rebalances\":{}}}",
                k.assigned_partitions, k.consumer_lag, k.buffered, k.fetched, k.committed_commits,
                k.failed_commits, k.rebalances);
        }
        j += ",\"last_error\":";
        util::append_json_string(j, s.last_error);
        j += '}';
    }
    j += "]}";
    return j;
}

http::operator_backend::reply delivery_manager::call(std::string_view method, std::string_view path,
                                                     std::string_view query,
                                                     std::string_view body) {
    if (path == "/v1/destinations" || path == "/v1/destinations/") {
        if (method != "GET") return error_reply(405, "method_not_allowed", "use GET");
        return {200, destinations_json()};
    }
    if (path == "/v1/reload") {
        if (method != "POST") return error_reply(405, "method_not_allowed", "use POST");
        if (!reloader_) return error_reply(503, "unavailable", "reload is not available");
        std::string summary = reloader_();
        std::string j = "{\"result\":";
        util::append_json_string(j, summary);
        j += '}';
        return {200, std::move(j)};
    }
    if (extra_) {
        if (auto r = extra_(method, path, query, body)) return std::move(*r);
    }
    constexpr std::string_view prefix = "/v1/destinations/";
    if (path.substr(0, prefix.size()) != prefix) {
        return error_reply(404, "not_found", "no such operator route");
    }
    std::string_view rest = path.substr(prefix.size());
    auto slash = rest.find('/');
    std::string name(rest.substr(0, slash));
    std::string_view action = slash == std::string_view::npos ? "" : rest.substr(slash + 1);

    auto e = find(name);
    if (e == nullptr) return error_reply(404, "unknown_destination", "no destination " + name);
    if (action == "pause" || action == "resume") {
        if (method != "POST") return error_reply(405, "method_not_allowed", "use POST");
        if (action == "pause") {
            e->worker->pause();
        } else {
            e->worker->resume();
        }
        spdlog::info("Destination {} {} by the operator API.", name,
                     action == "pause" ? "paused" : "resumed");
        return {200, fmt::format(R"({{"name":"{}","paused":{}}})", name,
                                 e->worker->paused() ? "true" : "false")};
    }
    if (action == "dead-letters" || action == "dead-letters/replay" ||
        action == "dead-letters/discard") {
        delivery::dead_letter_filter f;
        std::size_t limit = 100;
        std::string err;
        if (!read_filter(parse_query(query), f, limit, err)) {
            return error_reply(400, "bad_filter", err);
        }
        std::error_code ec;
        if (action == "dead-letters") {
            if (method != "GET") return error_reply(405, "method_not_allowed", "use GET");
            auto list = e->dead_letters->list(f, limit, ec);
            if (ec) return error_reply(500, "io_error", ec.message());
            std::string j = fmt::format(R"({{"destination":"{}","total":{},"entries":[)", name,
                                        e->dead_letters->size());
            for (std::size_t i = 0; i < list.size(); ++i) {
                const auto& d = list[i];
                if (i) j += ',';
                j += fmt::format(R"({{"id":{},"offset":{},"time":")", d.id, d.offset);
                util::append_iso8601_ms(j, d.time_ms);
                j += "\",\"kind\":";
                util::append_json_string(j, d.kind);
                j += ",\"reason\":";
                util::append_json_string(j, d.reason);
                j += fmt::format(",\"attempts\":{},\"last_response\":", d.attempts);
                util::append_json_string(j, d.last_response);
                j += ",\"message_id\":";
                util::append_json_string(j, d.message_id);
                j += fmt::format(",\"replaying\":{},\"event\":", d.replaying ? "true" : "false");
                j += d.event_json.empty() ? std::string("null") : d.event_json;
                j += '}';
            }
            j += "]}";
            return {200, std::move(j)};
        }
        if (method != "POST") return error_reply(405, "method_not_allowed", "use POST");
        bool replay = action == "dead-letters/replay";
        std::size_t n =
            replay ? e->dead_letters->mark_for_replay(f, ec) : e->dead_letters->discard(f, ec);
        if (ec) return error_reply(500, "io_error", ec.message());
        spdlog::info("{} {} dead letters of destination {} by the operator API.",
                     replay ? "Marked for replay" : "Discarded", n, name);
        return {200, fmt::format(R"({{"destination":"{}","{}":{}}})", name,
                                 replay ? "marked_for_replay" : "discarded", n)};
    }
    return error_reply(404, "not_found", "no such operator route");
}

void delivery_manager::register_metrics() {
    batch_size_ = &prometheus::BuildHistogram()
                       .Name("switchyard_destination_batch_events")
                       .Help("Events per send attempt, by destination.")
                       .Register(metrics_.registry());
    latency_ = &prometheus::BuildHistogram()
                    .Name("switchyard_destination_send_seconds")
                    .Help("Duration of send attempts (delivery latency), by destination.")
                    .Register(metrics_.registry());
    auto& lag = metrics_.gauges("switchyard_destination_lag_events",
                                "Events in the log not yet delivered, by destination.");
    auto& lag_s = metrics_.gauges("switchyard_destination_lag_seconds",
                                  "Age of the oldest undelivered event, by destination.");
    auto& delivered = metrics_.gauges("switchyard_destination_delivered_events",
                                      "Events delivered since start, by destination.");
    auto& retries =
        metrics_.gauges("switchyard_destination_retries",
                        "Send attempts answered with retry since start, by destination.");
    auto& rejected = metrics_.gauges("switchyard_destination_rejected_events",
                                     "Events the destination rejected since start.");
    auto& dead = metrics_.gauges("switchyard_destination_dead_lettered_events",
                                 "Entries written to the dead-letter store since start.");
    auto& dropped = metrics_.gauges("switchyard_destination_dropped_events",
                                    "Events skipped by the drop_oldest lag policy since start.");
    auto& filtered = metrics_.gauges("switchyard_destination_filtered_events",
                                     "Events not sent because of routing rules, by reason.");
    auto& dlq = metrics_.gauges("switchyard_destination_dead_letters",
                                "Entries currently in the dead-letter store.");
    auto& healthy = metrics_.gauges("switchyard_destination_healthy",
                                    "1 when the destination's last send succeeded.");
    auto& breaker = metrics_.gauges("switchyard_destination_breaker_opens",
                                    "Times the circuit breaker opened since start.");
    auto& paused =
        metrics_.gauges("switchyard_destination_paused", "1 when paused by an operator.");
    // The gauges of a destination removed by a reload are removed too: a frozen lag or
    // healthy=0 of a destination that no longer exists would keep alerts firing forever. (Its
    // histograms stay: a retired worker may still be finishing a send that observes them.)
    metrics_.on_scrape([&, this,
                        exported = std::map<std::string, std::set<std::string>>()]() mutable {
        auto current = snapshot();
        for (auto it = exported.begin(); it != exported.end();) {
            if (std::any_of(current.begin(), current.end(),
                            [&](const auto& e) { return e->name == it->first; })) {
                ++it;
                continue;
            }
            const std::map<std::string, std::string> l{{"destination", it->first}};
            for (auto* fam : {&lag, &lag_s, &delivered, &retries, &rejected, &dead, &dropped, &dlq,
                              &healthy, &breaker, &paused}) {
                fam->Remove(&fam->Add(l));
            }
            for (const auto& reason : it->second) {
                auto& g = filtered.Add({{"destination", it->first}, {"reason", reason}});
                filtered.Remove(&g);
            }
            it = exported.erase(it);
        }
        for (auto& e : current) {
            const std::string& name = e->name;
            auto& reasons = exported[name];
            auto s = e->worker->stats();
            std::map<std::string, std::string> l{{"destination", name}};
            // With the Kafka log, lag is what the consumer group has not delivered yet.
            const std::int64_t kafka_lag = e->reader ? e->reader->reader_stats().consumer_lag : -1;
            lag.Add(l).Set(static_cast<double>(
                kafka_lag >= 0 ? static_cast<std::uint64_t>(kafka_lag) : s.lag_events));
            lag_s.Add(l).Set(s.lag_seconds);
            delivered.Add(l).Set(static_cast<double>(s.delivered));
            retries.Add(l).Set(static_cast<double>(s.retries));
            rejected.Add(l).Set(static_cast<double>(s.rejected));
            dead.Add(l).Set(static_cast<double>(s.dead_lettered));
            dropped.Add(l).Set(static_cast<double>(s.dropped));
            dlq.Add(l).Set(static_cast<double>(e->dead_letters->size()));
            healthy.Add(l).Set(s.healthy ? 1 : 0);
            breaker.Add(l).Set(static_cast<double>(s.breaker_opens));
            paused.Add(l).Set(e->worker->paused() ? 1 : 0);
            for (const auto& [reason, n] : s.filtered) {
                filtered.Add({{"destination", name}, {"reason", reason}})
                    .Set(static_cast<double>(n));
                reasons.insert(reason);
            }
        }
    });
}

}  // namespace switchyard::app
