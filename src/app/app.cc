#include "app/app.h"

#include "admit/dedup.h"
#include "admit/plan_enforcer.h"
#include "app/delivery_manager.h"
#include "app/identity_api.h"
#include "app/quarantine_api.h"
#include "delivery/worker.h"
#include "destinations/file/file_destination.h"
#include "destinations/registry.h"
#include "enrich/pipeline.h"
#include "http/admin.h"
#include "http/net.h"
#include "http/server.h"
#include "identity/service.h"
#include "log/cursor_store.h"
#include "log/kafka/kafka_log.h"
#include "log/kafka/kafka_reader.h"
#include "log/local/local_log.h"
#include "plan/plan.h"
#include "sources/segment/handler.h"
#include "telemetry/metrics.h"
#include "util/json.h"
#include "util/time.h"

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <pthread.h>
#include <set>
#include <signal.h>
#include <thread>
#include <unistd.h>

namespace switchyard::app {

namespace {

// Identity metrics, read from the graph and store counters at scrape time.
void register_identity_metrics(telemetry::metrics& m, identity::service& ids) {
    auto& lookups = m.counters("switchyard_identity_lookups_total",
                               "Identifier lookups (per event: its ids, and their links).")
                        .Add({});
    auto& hits = m.counters("switchyard_identity_cache_hits_total",
                            "Lookups answered from the in-memory cache (no store I/O).")
                     .Add({});
    auto& reads = m.counters("switchyard_identity_store_reads_total",
                             "Cold lookups that read the identity store.")
                      .Add({});
    auto& ratio =
        m.gauges("switchyard_identity_cache_hit_ratio", "Cache hits / lookups since start.")
            .Add({});
    auto& links = m.counters("switchyard_identity_links_total",
                             "Links made (two persons became one); each emits an identity_link "
                             "record.")
                      .Add({});
    auto& refused_family = m.counters("switchyard_identity_links_refused_total",
                                      "Links refused by a merge guard, by reason.");
    auto& ref_users = refused_family.Add({{"reason", "max_user_ids_per_id"}});
    auto& ref_ids = refused_family.Add({{"reason", "max_ids_per_person"}});
    auto& ref_long = refused_family.Add({{"reason", "id_too_long"}});
    auto& errors = m.counters("switchyard_identity_errors_total",
                              "Events whose identity could not be resolved because the store "
                              "failed (stored anyway, context.identity.resolved false).")
                       .Add({});
    auto& forgotten_family =
        m.counters("switchyard_identity_persons_forgotten_total",
                   "Persons removed from the identity store, by cause (deletion, retention).");
    auto& f_del = forgotten_family.Add({{"cause", "deletion"}});
    auto& f_ret = forgotten_family.Add({{"cause", "retention"}});
    auto& cache_entries =
        m.gauges("switchyard_identity_cache_entries", "Lookups held in the cache.").Add({});
    auto& suppressed =
        m.gauges("switchyard_identity_suppressed_ids", "Ids on the suppression list.").Add({});
    auto& store_keys =
        m.gauges("switchyard_identity_store_keys", "Entries in the identity store (LMDB).").Add({});
    auto& store_bytes =
        m.gauges("switchyard_identity_store_bytes", "Bytes used by the identity store (LMDB).")
            .Add({});
    auto& store_errors = m.counters("switchyard_identity_store_errors_total",
                                    "Identity store operations that failed.")
                             .Add({});
    auto& conflicts = m.counters("switchyard_identity_store_conflicts_total",
                                 "Store transactions re-run after a concurrent change (Redis).")
                          .Add({});
    m.on_scrape(
        [&, last = identity::graph_stats{}, last_store = identity::store::stats_t{}]() mutable {
            auto s = ids.ids().stats();
            auto d = [](std::uint64_t now, std::uint64_t before) {
                return static_cast<double>(now >= before ? now - before : 0);
            };
            lookups.Increment(d(s.lookups, last.lookups));
            hits.Increment(d(s.cache_hits, last.cache_hits));
            reads.Increment(d(s.store_reads, last.store_reads));
            ratio.Set(s.lookups ? static_cast<double>(s.cache_hits) / static_cast<double>(s.lookups)
                                : 0.0);
            links.Increment(d(s.links, last.links));
            ref_users.Increment(d(s.refused_max_user_ids, last.refused_max_user_ids));
            ref_ids.Increment(d(s.refused_max_ids, last.refused_max_ids));
            ref_long.Increment(d(s.refused_too_long, last.refused_too_long));
            errors.Increment(d(s.errors, last.errors));
            f_ret.Increment(d(s.expired, last.expired));
            f_del.Increment(d(s.forgotten - s.expired, last.forgotten - last.expired));
            cache_entries.Set(static_cast<double>(s.cache_entries));
            suppressed.Set(static_cast<double>(ids.suppressions().size()));
            auto st = ids.ids().backing_store().stats();
            store_keys.Set(static_cast<double>(st.keys));
            store_bytes.Set(static_cast<double>(st.bytes_used));
            store_errors.Increment(d(st.errors, last_store.errors));
            conflicts.Increment(d(st.conflicts, last_store.conflicts));
            last = s;
            last_store = st;
        });
}

constexpr std::string_view quarantine_worker = "_quarantine";

// Stands in for the log when this process does not ingest (role deliver).
class no_appender final : public event_appender {
  public:
    std::error_code append(record_batch, append_handler) override {
        return make_error_code(errc::log_closed);
    }
    void close() override {}
};

log::kafka::kafka_log_options kafka_log_options(const config::config& cfg) {
    const auto& k = cfg.log.kafka;
    log::kafka::kafka_log_options o;
    o.brokers = k.bootstrap();
    o.topic = k.topic;
    o.key = k.key == "user_id_or_anonymous_id" ? log::kafka::key_policy::user_id_or_anonymous_id
            : k.key == "message_id"            ? log::kafka::key_policy::message_id
                                               : log::kafka::key_policy::anonymous_id_or_user_id;
    o.ack_timeout = k.ack_timeout;
    o.max_pending_bytes = k.max_pending_bytes.bytes;
    o.compression = k.compression;
    o.linger = k.linger;
    o.properties = k.librdkafka;
    return o;
}

// Builds every configured destination; errors go to `errs`.
std::vector<std::unique_ptr<destination>> build_destinations(const config::config& cfg,
                                                             config::errors& errs) {
    destinations::registry reg;
    destinations::register_builtin(reg);
    std::vector<std::unique_ptr<destination>> out;
    for (std::size_t i = 0; i < cfg.destinations.size(); ++i) {
        const auto& d = cfg.destinations[i];
        config::map_reader settings(d.settings, fmt::format("destinations[{}]", i), errs);
        for (const auto& k : d.core_keys) settings.consume(k);
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

std::map<std::string, std::shared_ptr<const plan::compiled_plan>> load_plans(
    const config::config& cfg, std::vector<std::string>& errors) {
    std::map<std::string, std::shared_ptr<const plan::compiled_plan>> out;
    for (const auto& pc : cfg.plans) {
        std::vector<std::string> files;
        for (const auto& f : pc.files) {
            std::filesystem::path p(f);
            if (p.is_relative()) p = std::filesystem::path(cfg.base_dir) / p;
            std::error_code ec;
            if (std::filesystem::is_directory(p, ec)) {
                std::vector<std::string> found;
                for (const auto& e : std::filesystem::directory_iterator(p, ec)) {
                    const auto ext = e.path().extension().string();
                    if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json"))
                        found.push_back(e.path().string());
                }
                if (found.empty()) {
                    errors.push_back(fmt::format("plans: {}: no .yaml, .yml or .json files in {}",
                                                 pc.name, p.string()));
                }
                std::sort(found.begin(), found.end());
                files.insert(files.end(), found.begin(), found.end());
            } else {
                files.push_back(p.string());
            }
        }
        std::vector<std::string> errs;
        auto plan = plan::load_plan(files, errs, pc.name);
        for (auto& e : errs) errors.push_back(fmt::format("plans: {}: {}", pc.name, e));
        if (plan) out.emplace(pc.name, std::move(plan));
    }
    return out;
}

bool load(const std::string& path, config::config& out) {
    config::errors errs(path);
    out = config::load_file(path, errs);
    build_destinations(out, errs);  // their errors are reported together with the rest
    if (errs.empty()) {
        std::vector<std::string> perrs;
        load_plans(out, perrs);
        for (auto& e : perrs) errs.add(std::move(e));
    }
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
    // The enrichment data (uap-core regexes, pattern files, geo databases) must load too.
    std::vector<std::string> errs;
    if (!enrich::pipeline::build(cfg.enrich, cfg.base_dir, errs)) {
        for (const auto& e : errs) std::cerr << path << ": " << e << '\n';
        std::cerr << errs.size() << " config error(s).\n";
        return 2;
    }
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

int run(const config::config& initial, const std::string& config_path) {
    const config::config& cfg = initial;
    setup_logging(cfg.logging);

    // Signals are taken synchronously by this thread; every thread started below inherits the mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    telemetry::metrics metrics;
    const bool use_kafka = cfg.log.type == "kafka";
    const bool ingest = cfg.role != "deliver";
    const bool deliver = cfg.role != "collect";
    spdlog::info("Role: {} (log: {}).", cfg.role, cfg.log.type);
    // Enrichment data (the uap-core regexes above all) takes longest to load: it loads on its own
    // thread while the log is recovered and the dedup window rebuilt, and is waited for before
    // the listeners open.
    std::vector<std::string> enrich_errs;
    std::future<std::unique_ptr<enrich::pipeline>> enrich_loading;
    const auto enrich_started = std::chrono::steady_clock::now();
    if (ingest && cfg.enrich.enabled) {
        enrich_loading = std::async(std::launch::async, [&cfg, &enrich_errs] {
            return enrich::pipeline::build(cfg.enrich, cfg.base_dir, enrich_errs);
        });
    }
    std::unique_ptr<log::local_log> local_log;
    std::unique_ptr<log::kafka::kafka_log> kafka_log;
    event_appender* appender = nullptr;
    try {
        std::filesystem::create_directories(cfg.data_dir);
        if (!use_kafka) {
            log::local_log_options lo;
            lo.dir = cfg.log_dir();
            lo.segment_bytes = cfg.log.segment_bytes.bytes;
            lo.capacity_bytes = cfg.log.capacity_bytes.bytes;
            lo.durability = cfg.log.policy;
            lo.fsync_interval = cfg.log.fsync_interval;
            lo.on_fsync = [&metrics](double s) { metrics.observe_fsync(s); };
            local_log = log::local_log::open(lo);
            appender = local_log.get();
        } else if (ingest) {
            kafka_log = log::kafka::kafka_log::open(kafka_log_options(cfg));
            appender = kafka_log.get();
        }
    } catch (const std::exception& e) {
        spdlog::critical("Cannot open the event log: {}.", e.what());
        return 1;
    }
    auto close_log = [&] {
        if (appender != nullptr) appender->close();
    };

    log::cursor_store cursors(std::filesystem::path(cfg.data_dir) / "cursors");
    try {
        cursors.open();
    } catch (const std::exception& e) {
        spdlog::critical("Cannot open the cursor store: {}.", e.what());
        return 1;
    }

    // The messageId dedup window, rebuilt from what the local log still holds. With the Kafka
    // log it is per collector and starts empty (docs/operations.md).
    std::unique_ptr<admit::dedup_window> dedup;
    if (cfg.dedup.enabled && ingest) {
        admit::dedup_options dopts;
        dopts.window = cfg.dedup.window;
        dopts.max_entries = cfg.dedup.max_entries;
        dedup = std::make_unique<admit::dedup_window>(dopts);
        auto t0 = std::chrono::steady_clock::now();
        auto scanned = local_log ? dedup->rebuild(*local_log, util::now_ms())
                                 : result<std::size_t>(std::size_t{0});
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
        if (!scanned) {
            spdlog::error("Rebuilding the dedup window from the log failed: {}; it starts empty.",
                          scanned.error().message());
        } else {
            spdlog::info("Dedup window rebuilt from {} log records ({} ids) in {} ms.", *scanned,
                         dedup->stats().entries, ms);
        }
        auto& g_entries =
            metrics.gauges("switchyard_dedup_entries", "messageIds remembered by the dedup window.")
                .Add({});
        auto& g_mem =
            metrics
                .gauges("switchyard_dedup_memory_bytes", "Memory of the dedup window (estimate).")
                .Add({});
        auto& g_evicted =
            metrics
                .gauges("switchyard_dedup_evicted",
                        "Ids forgotten inside the window to stay within max_entries, since start.")
                .Add({});
        metrics.on_scrape([&] {
            auto s = dedup->stats();
            g_entries.Set(static_cast<double>(s.entries));
            g_mem.Set(static_cast<double>(s.memory_bytes));
            g_evicted.Set(static_cast<double>(s.evicted_by_size));
        });
    }

    // Identity: graph, suppression list and deletion audit over one store (every role: the
    // operator API answers identity questions everywhere; collectors stitch at admission).
    std::unique_ptr<identity::service> identity;
    if (cfg.identity.enabled) {
        identity::service_options io;
        const auto& ic = cfg.identity;
        io.backend = ic.store;
        io.lmdb.dir = cfg.identity_dir();
        io.lmdb.max_bytes = ic.lmdb.max_size.bytes;
        io.lmdb.sync = ic.lmdb.sync;
        io.redis.host = ic.redis.host;
        io.redis.port = static_cast<int>(ic.redis.port);
        io.redis.unix_socket = ic.redis.unix_socket;
        io.redis.password = ic.redis.password;
        io.redis.database = static_cast<int>(ic.redis.database);
        io.redis.key_prefix = ic.redis.key_prefix;
        io.redis.timeout = ic.redis.timeout;
        io.redis.pool_size = ic.redis.pool_size;
        io.graph.max_user_ids_per_id = ic.max_user_ids_per_id;
        io.graph.max_ids_per_person = ic.max_ids_per_person;
        io.graph.max_id_bytes = ic.max_id_length;
        io.graph.cache_size = ic.cache_size;
        io.graph.cache_ttl = ic.cache_ttl;
        io.graph.ttl = std::chrono::duration_cast<std::chrono::seconds>(ic.ttl);
        io.graph.max_ids = ic.max_ids;
        io.link_device_ids = ic.link_device_ids;
        io.suppression_refresh = ic.suppression_refresh;
        io.sweep_interval = ic.sweep_interval;
        io.audit_file = cfg.identity_dir() / "deletions.ndjson";
        if (ic.store == "redis") {
            io.audit_file =
                std::filesystem::path(cfg.data_dir) / "identity-audit" / "deletions.ndjson";
        }
        std::string err;
        identity = identity::service::open(io, err);
        if (!identity) {
            spdlog::critical("{}", err);
            close_log();
            return 2;
        }
        identity->start();
        spdlog::info("Identity: store {}, {} suppressed id(s), {} deletion request(s) on record.",
                     identity->ids().backing_store().describe(), identity->suppressions().size(),
                     identity->audit().list().size());
        register_identity_metrics(metrics, *identity);
    }

    // Delivery: one worker per destination plus the quarantine writer.
    std::function<delivery_manager::reader_ptr(const std::string&)> readers;
    if (use_kafka) {
        readers = [&cfg](const std::string& name) {
            log::kafka::kafka_reader_options ro;
            ro.name = name;
            ro.brokers = cfg.log.kafka.bootstrap();
            ro.topic = cfg.log.kafka.topic;
            ro.group = cfg.log.kafka.group_prefix + name;
            ro.properties = cfg.log.kafka.librdkafka;
            ro.buffer_events = cfg.log.kafka.buffer_events;
            ro.buffer_bytes = cfg.log.kafka.buffer_bytes.bytes;
            ro.drain_timeout = cfg.log.kafka.rebalance_drain_timeout;
            return log::kafka::kafka_reader::open(std::move(ro));
        };
    }
    delivery_manager deliveries(local_log.get(), std::move(readers), cursors, cfg.data_dir, metrics,
                                deliver);
    if (identity) {
        deliveries.set_deletion_confirmer([&identity](std::string_view dest, const event_view& v) {
            auto id = identity::deletion_audit::request_id(v.message_id);
            if (!id) return;
            if (auto ec = identity->audit().confirm(*id, dest, util::now_ms())) {
                spdlog::error("Identity: cannot record that {} confirmed deletion {}: {}.", dest,
                              *id, ec.message());
            }
        });
    }
    std::mutex deletion_dests_mu;
    std::vector<std::string> deletion_dests;
    auto set_deletion_dests = [&](const config::config& c) {
        std::lock_guard g(deletion_dests_mu);
        deletion_dests.clear();
        for (const auto& d : c.destinations) {
            if (d.deletions) deletion_dests.push_back(d.name);
        }
    };
    set_deletion_dests(cfg);
    {
        config::errors errs(config_path);
        spdlog::info("Destinations: {}.", deliveries.apply(cfg, errs));
        if (!errs.empty()) {
            for (const auto& e : errs.list()) spdlog::critical("{}", e);
            return 2;
        }
    }
    std::mutex reload_mu;
    // Set once the sources are built below; called by reload with the newly read config.
    std::function<std::string(const config::config&)> reload_plans;
    std::function<std::string()> reload_enrich;  // reopens changed geo databases
    auto reload = [&]() -> std::string {
        std::lock_guard lk(reload_mu);
        config::errors errs(config_path);
        auto next = config::load_file(config_path, errs);
        if (!errs.empty()) {
            for (const auto& e : errs.list()) spdlog::error("Reload refused: {}", e);
            return fmt::format("reload refused: {} config error(s); the running config is kept",
                               errs.list().size());
        }
        std::string plans_summary = reload_plans ? reload_plans(next) : std::string("no plans");
        auto summary = deliveries.apply(next, errs);
        if (!errs.empty()) {
            for (const auto& e : errs.list()) spdlog::error("Reload refused: {}", e);
            return "reload refused: " + summary + "; " + plans_summary;
        }
        summary += "; " + plans_summary;
        set_deletion_dests(next);
        if (reload_enrich) summary += "; " + reload_enrich();
        spdlog::info(
            "Config reloaded: destinations {}. Changes outside `destinations` and plan "
            "files need a restart.",
            summary);
        return summary;
    };
    deliveries.set_reloader(reload);

    // Log metrics polled at scrape time.
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
        metrics.on_scrape([&, last = log_stats{}]() mutable {
            if (!local_log) return;
            auto s = local_log->stats();
            g_bytes.Set(static_cast<double>(s.bytes));
            g_cap.Set(static_cast<double>(s.capacity_bytes));
            g_segments.Set(static_cast<double>(s.segments));
            g_end.Set(static_cast<double>(s.end_offset));
            c_bytes.Increment(static_cast<double>(s.appended_bytes - last.appended_bytes));
            c_records.Increment(static_cast<double>(s.appended_records - last.appended_records));
            c_full.Increment(static_cast<double>(s.full_refusals - last.full_refusals));
            c_corrupt.Increment(static_cast<double>(s.corrupt_records - last.corrupt_records));
            last = s;
        });
    }

    // Kafka log metrics (collectors), polled at scrape time.
    if (kafka_log) {
        auto& acked = metrics
                          .counters("switchyard_kafka_log_acknowledged_records_total",
                                    "Records the brokers acknowledged (acks=all).")
                          .Add({});
        auto& failed = metrics
                           .counters("switchyard_kafka_log_failed_records_total",
                                     "Records the brokers did not acknowledge in time (their "
                                     "requests answered 503).")
                           .Add({});
        auto& refused = metrics
                            .counters("switchyard_kafka_log_refused_appends_total",
                                      "Appends refused at once (outage, pending bytes full).")
                            .Add({});
        auto& pending = metrics
                            .gauges("switchyard_kafka_log_pending_bytes",
                                    "Bytes appended and waiting for acknowledgement.")
                            .Add({});
        auto& available = metrics
                              .gauges("switchyard_kafka_log_available",
                                      "1 while the brokers acknowledge records.")
                              .Add({});
        metrics.on_scrape([&, last = log::kafka::kafka_log_stats{}]() mutable {
            auto s = kafka_log->stats();
            acked.Increment(static_cast<double>(s.appended_records - last.appended_records));
            failed.Increment(static_cast<double>(s.failed_records - last.failed_records));
            refused.Increment(static_cast<double>(s.refused_appends - last.refused_appends));
            pending.Set(static_cast<double>(s.pending_bytes));
            available.Set(s.available ? 1 : 0);
            last = s;
        });
    }

    // Ingest.
    sources::segment::handler_options ho;
    ho.event_limits.max_event_bytes = cfg.limits.max_event_bytes.bytes;
    ho.event_limits.max_batch_bytes = cfg.limits.max_batch_bytes.bytes;
    ho.event_limits.max_batch_events = cfg.limits.max_batch_events;
    ho.retry_after = std::chrono::duration_cast<std::chrono::seconds>(cfg.log.retry_after);
    if (ho.retry_after.count() < 1) ho.retry_after = std::chrono::seconds(1);
    ho.dedup = dedup.get();
    if (ingest) ho.identity = identity.get();
    // Enrichment, loaded once; the geo databases reopen themselves when their files change.
    std::unique_ptr<enrich::pipeline> enricher;
    if (enrich_loading.valid()) {
        enricher = enrich_loading.get();
        if (!enricher) {
            for (const auto& e : enrich_errs) spdlog::critical("{}", e);
            close_log();
            return 2;
        }
        enricher->attach(metrics);
        std::string steps;
        for (std::size_t i = 0; i < enrich::step_count; ++i) {
            auto st = static_cast<enrich::step>(i);
            if (!enricher->enabled(st)) continue;
            if (!steps.empty()) steps += ", ";
            steps += enrich::to_string(st);
        }
        spdlog::info("Enrichment: {} (ready {} ms after start-up began).",
                     steps.empty() ? "no steps" : steps,
                     std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - enrich_started)
                         .count());
    }
    ho.enrich = enricher.get();
    if (enricher) {
        reload_enrich = [&enricher] {
            return enricher->reload() ? std::string("geo databases reopened")
                                      : std::string("geo databases unchanged");
        };
    }
    for (const auto& p : cfg.server.trusted_proxies)
        ho.trusted_proxies.push_back(*http::parse_cidr(p));
    std::vector<sources::segment::source_entry> sources;
    std::unordered_map<std::string, std::size_t> keys;
    // Tracking plans, compiled once; a reload swaps in new compilations of the same plans.
    std::vector<std::string> plan_errors;
    auto plans = load_plans(cfg, plan_errors);
    if (!plan_errors.empty()) {
        for (const auto& e : plan_errors) spdlog::critical("{}", e);
        close_log();
        return 2;
    }
    std::vector<std::pair<std::string, std::shared_ptr<admit::plan_enforcer>>> enforcers;
    for (const auto& s : cfg.sources) {
        for (const auto& k : s.write_keys) keys.emplace(k, sources.size());
        sources.push_back({s.name, s.allowed_origins, s.settings_api_host, {}, nullptr, {}});
        sources.back().enrich.ip = *enrich::privacy::ip_mode_from_string(s.ip);
        sources.back().enrich.drop_bots = s.bots == "drop";
        if (s.plan.empty()) continue;
        admit::plan_policy pol;
        const auto& pe = s.plan_enforcement;
        pol.shadow = pe.mode == "shadow";
        using plan::violation_kind;
        auto set = [&](violation_kind k, const std::string& a) {
            pol.actions[static_cast<std::size_t>(k)] = admit::plan_action_from_string(a);
        };
        set(violation_kind::unplanned_event, pe.unplanned_event);
        set(violation_kind::missing_required, pe.missing_required);
        set(violation_kind::wrong_type, pe.wrong_type);
        set(violation_kind::unplanned_property, pe.unplanned_property);
        set(violation_kind::bad_value, pe.bad_value);
        auto e = std::make_shared<admit::plan_enforcer>(s.name, pol, plans.at(s.plan), &metrics);
        sources.back().plan = e;
        enforcers.emplace_back(s.plan, e);
        spdlog::info("Source {} validates against tracking plan {} (version {}, {} events, {}).",
                     s.name, s.plan, plans.at(s.plan)->version(), plans.at(s.plan)->event_count(),
                     pol.shadow ? "shadow mode" : "enforced");
    }
    std::map<std::string, std::shared_ptr<admit::plan_enforcer>> by_source;
    for (const auto& src : sources) {
        if (src.plan) by_source.emplace(src.name, src.plan);
    }
    std::set<std::string> bot_drop_sources;
    for (const auto& s : cfg.sources) {
        if (s.bots == "drop") bot_drop_sources.insert(s.name);
    }
    quarantine_api quarantine(cfg.quarantine_dir(), appender, std::move(by_source),
                              std::move(bot_drop_sources));
    identity_api identity_ops(identity.get(), appender, [&] {
        std::lock_guard g(deletion_dests_mu);
        return deletion_dests;
    });
    deliveries.set_extra_routes([&quarantine, &identity_ops](std::string_view m, std::string_view p,
                                                             std::string_view q,
                                                             std::string_view body) {
        if (auto r = identity_ops.call(m, p, q, body)) return r;
        return quarantine.call(m, p, q);
    });
    reload_plans = [&enforcers](const config::config& next) {
        std::vector<std::string> errs;
        auto fresh = load_plans(next, errs);
        for (const auto& e : errs) {
            spdlog::error("Plan reload: {} (that plan keeps its running version)", e);
        }
        std::size_t swapped = 0;
        for (auto& [name, enf] : enforcers) {
            auto it = fresh.find(name);
            if (it == fresh.end()) continue;
            enf->set_plan(it->second);
            ++swapped;
        }
        return fmt::format("{} source plan(s) reloaded, {} plan error(s)", swapped, errs.size());
    };
    no_appender no_log;  // role deliver: the public listener is not opened
    sources::segment::handler segment(ho, std::move(sources), std::move(keys),
                                      appender != nullptr ? *appender : no_log, metrics);

    std::atomic<bool> stopping{false};
    http::admin_handler admin(
        metrics, [&] { return !stopping.load(); }, cfg.admin.token, &deliveries);

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
        if (ingest) {
            http::split_host_port(cfg.server.listen, host, port);
            public_server.listen(host, port);
        }
    } catch (const std::exception& e) {
        spdlog::critical("Cannot listen: {}.", e.what());
        deliveries.stop_all();
        close_log();
        return 1;
    }
    pool.run();
    const std::string where = use_kafka ? fmt::format("Kafka topic {} on {}", cfg.log.kafka.topic,
                                                      cfg.log.kafka.bootstrap())
                                        : cfg.log_dir().string();
    if (ingest) {
        spdlog::info(
            "Switchyard {} listening on {} (port {}), admin on {} (port {}), {} I/O threads, log "
            "in {}.",
            SWITCHYARD_VERSION, cfg.server.listen, public_server.port(), cfg.admin.listen,
            admin_server.port(), threads, where);
    } else {
        spdlog::info("Switchyard {} delivering from {}, admin on {} (port {}).", SWITCHYARD_VERSION,
                     where, cfg.admin.listen, admin_server.port());
    }

    int sig = 0;
    for (;;) {
        sigwait(&sigs, &sig);
        if (sig != SIGHUP) break;
        spdlog::info("Received SIGHUP; reloading {}.", config_path);
        reload();
    }
    spdlog::info("Received signal {}; stopping: no new connections, finishing requests in flight.",
                 sig);
    stopping = true;
    // A second signal forces exit.
    std::thread([sigs] {
        for (;;) {
            int s2 = 0;
            sigwait(&sigs, &s2);
            if (s2 == SIGHUP) continue;
            std::fputs("Second signal: exiting now without a graceful shutdown.\n", stderr);
            _exit(1);
        }
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
    deliveries.stop_all();
    close_log();  // completes and makes durable every queued append
    pool.stop();
    spdlog::info("Stopped cleanly; the event log is durable.");
    spdlog::shutdown();
    return 0;
}

}  // namespace switchyard::app
