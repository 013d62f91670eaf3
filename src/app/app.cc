#include "app/app.h"

#include "delivery/worker.h"
#include "destinations/file/file_destination.h"
#include "destinations/registry.h"
#include "http/admin.h"
#include "http/net.h"
#include "http/server.h"
#include "log/cursor_store.h"
#include "log/local/local_log.h"
#include "sources/segment/handler.h"
#include "telemetry/metrics.h"
#include "util/json.h"

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <pthread.h>
#include <signal.h>
#include <thread>
#include <unistd.h>

namespace switchyard::app {

namespace {

// Keys every destination has, read by the core (config.cc) before its factory runs.
constexpr std::string_view common_destination_keys[] = {"name",
                                                        "type",
                                                        "batch_max_events",
                                                        "batch_max_bytes",
                                                        "batch_max_wait",
                                                        "retry_backoff_base",
                                                        "retry_backoff_max"};

constexpr std::string_view quarantine_worker = "_quarantine";

// Builds every configured destination; errors go to `errs`.
std::vector<std::unique_ptr<destination>> build_destinations(const config::config& cfg,
                                                             config::errors& errs) {
    destinations::registry reg;
    destinations::register_builtin(reg);
    std::vector<std::unique_ptr<destination>> out;
    for (std::size_t i = 0; i < cfg.destinations.size(); ++i) {
        const auto& d = cfg.destinations[i];
        config::map_reader settings(d.settings, fmt::format("destinations[{}]", i), errs);
        for (auto k : common_destination_keys) settings.consume(k);
        if (d.type.empty()) {  // already reported as a missing required key
            out.emplace_back();
            continue;
        }
        const auto* f = reg.find(d.type);
        if (f == nullptr) {
            std::string known;
            for (const auto& [name, _] : reg.all()) known += (known.empty() ? "" : ", ") + name;
            errs.add(d.mark, fmt::format("destinations[{}]: unknown type '{}' (known: {})", i,
                                         d.type, known));
            out.emplace_back();
            continue;
        }
        destinations::destination_context ctx{d.name, cfg.data_dir};
        out.push_back((*f)(settings, ctx));
    }
    return out;
}

class json_msg_flag final : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        std::string s;
        util::append_json_string(s, std::string_view(msg.payload.data(), msg.payload.size()));
        dest.append(s.data(), s.data() + s.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<json_msg_flag>();
    }
};

void setup_logging(const config::logging_config& lc) {
    auto logger = spdlog::stderr_color_mt("switchyard");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(lc.level));
    if (lc.format == "json") {
        auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
        f->add_flag<json_msg_flag>('*');
        f->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","thread":%t,"msg":%*})");
        spdlog::set_formatter(std::move(f));
    } else {
        spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
    }
}

}  // namespace

bool load(const std::string& path, config::config& out) {
    config::errors errs(path);
    out = config::load_file(path, errs);
    build_destinations(out, errs);  // their errors are reported together with the rest
    if (!errs.empty()) {
        for (const auto& e : errs.list()) std::cerr << e << '\n';
        std::cerr << errs.list().size() << " config error(s).\n";
        return false;
    }
    return true;
}

int check(const std::string& path, bool print) {
    config::config cfg;
    if (!load(path, cfg)) return 2;
    if (print) std::cout << config::dump_redacted(cfg) << '\n';
    std::cout << path << ": OK\n";
    return 0;
}

std::string config_docs() {
    config::errors errs;
    config::key_catalog cat;
    config::config c;
    config::map_reader root(YAML::Node(), "", errs, &cat);
    config::read_config(root, c);
    destinations::registry reg;
    destinations::register_builtin(reg);
    for (const auto& [type, f] : reg.all()) {
        config::map_reader settings(YAML::Node(), fmt::format("destinations[type={}]", type), errs,
                                    &cat);
        destinations::destination_context ctx{"<name>", "<data_dir>"};
        f(settings, ctx);
    }
    std::string out =
        "# Configuration reference\n\n"
        "<!-- Generated by `switchyard config-docs`; a test checks this file matches. -->\n\n"
        "Switchyard reads one YAML file (`switchyard run -c FILE`). Unknown keys are errors; "
        "`switchyard check -c FILE` reports every error with its line and column. Any scalar may "
        "use `${VAR}` or `${VAR:-default}` to read the environment. Durations are written "
        "`250ms`, `10s`, `5m`, `1h`; byte sizes `1048576`, `512KiB`, `64MiB`, `1GiB` (or "
        "`KB`/`MB`/`GB` "
        "in powers of 1000).\n\n"
        "| key | type | default | description |\n|---|---|---|---|\n";
    for (const auto& k : cat.keys()) {
        out +=
            fmt::format("| `{}` | {} | {} | {} |\n", k.path, k.type,
                        k.default_value.empty() ? "" : "`" + k.default_value + "`", k.description);
    }
    return out;
}

int run(const config::config& cfg) {
    setup_logging(cfg.logging);

    // Signals are taken synchronously by this thread; every thread started below inherits the mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    telemetry::metrics metrics;
    std::unique_ptr<log::local_log> event_log;
    try {
        std::filesystem::create_directories(cfg.data_dir);
        log::local_log_options lo;
        lo.dir = cfg.log_dir();
        lo.segment_bytes = cfg.log.segment_bytes.bytes;
        lo.capacity_bytes = cfg.log.capacity_bytes.bytes;
        lo.durability = cfg.log.policy;
        lo.fsync_interval = cfg.log.fsync_interval;
        lo.on_fsync = [&metrics](double s) { metrics.observe_fsync(s); };
        event_log = log::local_log::open(lo);
    } catch (const std::exception& e) {
        spdlog::critical("Cannot open the event log in {}: {}.", cfg.log_dir().string(), e.what());
        return 1;
    }

    log::cursor_store cursors(std::filesystem::path(cfg.data_dir) / "cursors");
    try {
        cursors.open();
    } catch (const std::exception& e) {
        spdlog::critical("Cannot open the cursor store: {}.", e.what());
        return 1;
    }

    // Delivery: one worker per destination, plus the quarantine store (a file destination that
    // receives only quarantine records).
    config::errors errs;
    auto dests = build_destinations(cfg, errs);
    if (!errs.empty()) {
        for (const auto& e : errs.list()) spdlog::critical("{}", e);
        return 2;
    }
    std::vector<std::string> names;
    std::vector<std::unique_ptr<delivery::worker>> workers;
    std::mutex release_mu;
    auto on_commit = [&] {
        // Retention follows the slowest cursor among the configured readers.
        std::lock_guard lk(release_mu);
        auto snap = cursors.snapshot();
        std::uint64_t floor = UINT64_MAX;
        for (const auto& n : names) {
            auto it = snap.find(n);
            floor = std::min<std::uint64_t>(floor, it == snap.end() ? 0 : it->second);
        }
        if (floor != UINT64_MAX) event_log->release_before(floor);
    };
    auto dead_letter_dir = std::filesystem::path(cfg.data_dir) / "dead_letter";
    for (std::size_t i = 0; i < dests.size(); ++i) {
        const auto& d = cfg.destinations[i];
        delivery::worker_options wo;
        wo.name = d.name;
        wo.max_batch_events = d.batch_max_events;
        wo.max_batch_bytes = d.batch_max_bytes.bytes;
        wo.max_wait = d.batch_max_wait;
        wo.backoff_base = d.retry_backoff_base;
        wo.backoff_max = d.retry_backoff_max;
        wo.dead_letter_dir = dead_letter_dir;
        names.push_back(d.name);
        workers.push_back(std::make_unique<delivery::worker>(wo, *event_log, cursors,
                                                             std::move(dests[i]), on_commit));
    }
    {
        destinations::file_destination_options qo;
        qo.dir = cfg.quarantine_dir();
        qo.prefix = "quarantine";
        qo.rotate_bytes = cfg.quarantine.rotate_bytes.bytes;
        delivery::worker_options wo;
        wo.name = std::string(quarantine_worker);
        wo.kinds = {record_kind::quarantine};
        wo.dead_letter_dir = dead_letter_dir;
        names.push_back(wo.name);
        workers.push_back(std::make_unique<delivery::worker>(
            wo, *event_log, cursors, std::make_unique<destinations::file_destination>(qo),
            on_commit));
    }
    // Forget cursors of destinations no longer configured, so they do not pin retention.
    for (const auto& [n, off] : cursors.snapshot()) {
        if (std::find(names.begin(), names.end(), n) == names.end()) {
            spdlog::warn(
                "Destination {} is no longer configured; its cursor at offset {} is removed.", n,
                off);
            cursors.remove(n);
        }
    }
    for (auto& w : workers) w->start();

    // Metrics polled at scrape time.
    {
        auto& g_bytes =
            metrics.gauges("switchyard_log_bytes", "Bytes held by the event log.").Add({});
        auto& g_cap =
            metrics.gauges("switchyard_log_capacity_bytes", "Capacity of the event log.").Add({});
        auto& g_segments =
            metrics.gauges("switchyard_log_segments", "Segment files of the event log.").Add({});
        auto& g_end =
            metrics.gauges("switchyard_log_end_offset", "Next offset of the event log.").Add({});
        auto& c_bytes =
            metrics.counters("switchyard_log_appended_bytes_total", "Bytes appended to the log.")
                .Add({});
        auto& c_records =
            metrics
                .counters("switchyard_log_appended_records_total", "Records appended to the log.")
                .Add({});
        auto& c_full = metrics
                           .counters("switchyard_log_full_refusals_total",
                                     "Appends refused because the log was full.")
                           .Add({});
        auto& c_corrupt = metrics
                              .counters("switchyard_log_corrupt_records_total",
                                        "Corrupt records found in the log.")
                              .Add({});
        auto& lag = metrics.gauges("switchyard_destination_lag_events",
                                   "Events in the log not yet delivered, by destination.");
        auto& delivered = metrics.gauges("switchyard_destination_delivered_events",
                                         "Events delivered since start, by destination.");
        auto& rejected =
            metrics.gauges("switchyard_destination_dead_lettered_events",
                           "Events written to the dead-letter store since start, by destination.");
        auto& retries =
            metrics.gauges("switchyard_destination_retries",
                           "Send attempts answered with retry since start, by destination.");
        auto& healthy = metrics.gauges("switchyard_destination_healthy",
                                       "1 when the destination's last send succeeded.");
        metrics.on_scrape([&, last = log_stats{}]() mutable {
            auto s = event_log->stats();
            g_bytes.Set(static_cast<double>(s.bytes));
            g_cap.Set(static_cast<double>(s.capacity_bytes));
            g_segments.Set(static_cast<double>(s.segments));
            g_end.Set(static_cast<double>(s.end_offset));
            c_bytes.Increment(static_cast<double>(s.appended_bytes - last.appended_bytes));
            c_records.Increment(static_cast<double>(s.appended_records - last.appended_records));
            c_full.Increment(static_cast<double>(s.full_refusals - last.full_refusals));
            c_corrupt.Increment(static_cast<double>(s.corrupt_records - last.corrupt_records));
            last = s;
            for (std::size_t i = 0; i < workers.size(); ++i) {
                auto ws = workers[i]->stats();
                std::map<std::string, std::string> l{{"destination", names[i]}};
                lag.Add(l).Set(static_cast<double>(ws.lag));
                delivered.Add(l).Set(static_cast<double>(ws.delivered_events));
                rejected.Add(l).Set(static_cast<double>(ws.rejected_events));
                retries.Add(l).Set(static_cast<double>(ws.retries));
                healthy.Add(l).Set(ws.healthy ? 1 : 0);
            }
        });
    }

    // Ingest.
    sources::segment::handler_options ho;
    ho.event_limits.max_event_bytes = cfg.limits.max_event_bytes.bytes;
    ho.event_limits.max_batch_bytes = cfg.limits.max_batch_bytes.bytes;
    ho.event_limits.max_batch_events = cfg.limits.max_batch_events;
    ho.retry_after = std::chrono::duration_cast<std::chrono::seconds>(cfg.log.retry_after);
    if (ho.retry_after.count() < 1) ho.retry_after = std::chrono::seconds(1);
    for (const auto& p : cfg.server.trusted_proxies)
        ho.trusted_proxies.push_back(*http::parse_cidr(p));
    std::vector<sources::segment::source_entry> sources;
    std::unordered_map<std::string, std::size_t> keys;
    for (const auto& s : cfg.sources) {
        for (const auto& k : s.write_keys) keys.emplace(k, sources.size());
        sources.push_back({s.name, s.allowed_origins, s.settings_api_host, {}});
    }
    sources::segment::handler segment(ho, std::move(sources), std::move(keys), *event_log, metrics);

    std::atomic<bool> stopping{false};
    http::admin_handler admin(metrics, [&] { return !stopping.load(); });

    std::size_t threads = cfg.server.threads > 0
                              ? static_cast<std::size_t>(cfg.server.threads)
                              : std::max(1u, std::thread::hardware_concurrency());
    http::io_pool pool(threads);
    http::server_limits lim;
    lim.max_header_bytes = cfg.server.max_header_bytes.bytes;
    lim.max_body_bytes = cfg.server.max_body_bytes.bytes;
    lim.header_timeout = cfg.server.header_timeout;
    lim.idle_timeout = cfg.server.idle_timeout;
    lim.body_timeout = cfg.server.body_timeout;
    lim.write_timeout = cfg.server.write_timeout;
    lim.max_connections = cfg.server.max_connections;
    http::server public_server(pool, "public", lim, segment, true);
    http::server_limits admin_lim;
    admin_lim.max_connections = 64;
    http::server admin_server(pool, "admin", admin_lim, admin, false);
    {
        auto& conns =
            metrics
                .gauges("switchyard_http_connections", "Open connections on the public listener.")
                .Add({});
        auto& refused = metrics
                            .gauges("switchyard_http_connections_refused",
                                    "Connections refused over max_connections since start.")
                            .Add({});
        auto& perr =
            metrics
                .gauges("switchyard_http_protocol_errors",
                        "Requests refused for framing, parse, size or deadline errors since start.")
                .Add({});
        metrics.on_scrape([&] {
            conns.Set(static_cast<double>(public_server.stats().connections_active.load()));
            refused.Set(static_cast<double>(public_server.stats().connections_refused.load()));
            perr.Set(static_cast<double>(public_server.stats().protocol_errors.load()));
        });
    }
    try {
        std::string host;
        unsigned short port = 0;
        http::split_host_port(cfg.admin.listen, host, port);
        admin_server.listen(host, port);
        http::split_host_port(cfg.server.listen, host, port);
        public_server.listen(host, port);
    } catch (const std::exception& e) {
        spdlog::critical("Cannot listen: {}.", e.what());
        for (auto& w : workers) w->stop();
        event_log->close();
        return 1;
    }
    pool.run();
    spdlog::info(
        "Switchyard {} listening on {} (port {}), admin on {} (port {}), {} I/O threads, log in "
        "{}.",
        SWITCHYARD_VERSION, cfg.server.listen, public_server.port(), cfg.admin.listen,
        admin_server.port(), threads, cfg.log_dir().string());

    int sig = 0;
    sigwait(&sigs, &sig);
    spdlog::info("Received signal {}; stopping: no new connections, finishing requests in flight.",
                 sig);
    stopping = true;
    // A second signal forces exit.
    std::thread([sigs] {
        int s2 = 0;
        sigwait(&sigs, &s2);
        std::fputs("Second signal: exiting now without a graceful shutdown.\n", stderr);
        _exit(1);
    }).detach();

    public_server.stop_accepting();
    auto deadline = std::chrono::steady_clock::now() + cfg.server.shutdown_grace;
    while (public_server.active_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(
            std::chrono::milliseconds(20));  // polling a counter, not synchronising data
    }
    if (public_server.active_connections() > 0) {
        spdlog::warn("{} connections still open after the shutdown grace period; closing them.",
                     public_server.active_connections());
        public_server.close_all();
    }
    admin_server.stop_accepting();
    for (auto& w : workers) w->stop();
    event_log->close();  // completes and makes durable every queued append
    pool.stop();
    spdlog::info("Stopped cleanly; the event log is durable.");
    spdlog::shutdown();
    return 0;
}

}  // namespace switchyard::app
