#pragma once

#include "config/config.h"
#include "delivery/dead_letters.h"
#include "delivery/worker.h"
#include "http/admin.h"
#include "log/cursor_store.h"
#include "log/kafka/kafka_reader.h"
#include "switchyard/log.h"
#include "telemetry/metrics.h"

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::app {

// Owns the delivery side: one worker and one dead-letter store per configured destination, plus
// the built-in quarantine writer; keeps log retention at the slowest cursor; applies config
// reloads (SIGHUP or POST /v1/reload) by stopping removed or changed destinations and starting
// new or changed ones, so unchanged destinations never stop and every cursor is kept; and serves
// the operator API (/v1/destinations, dead letters).
//
// Lifecycle: built by app::run after the log and cursor store are open; stop_all() before the
// log closes. apply() runs on the main thread (reload); call() on the admin handler's thread;
// on_commit() on worker threads. One mutex guards the destination table.
class delivery_manager final : public http::operator_backend {
  public:
    using reader_ptr = std::unique_ptr<log::kafka::kafka_reader>;
    // Builds the Kafka consumer view a destination reads from (log.type: kafka); may throw.
    using reader_factory = std::function<reader_ptr(const std::string& name)>;

    // With the local log, `log` is it and `readers` is empty; with the Kafka log, `log` is null
    // and every destination (and the quarantine writer) gets its own reader from `readers`,
    // which then also keeps its position (consumer-group offsets) instead of `cursors`.
    // `enabled` false (role collect): no destination runs here.
    delivery_manager(event_log* log, reader_factory readers, log::cursor_store& cursors,
                     std::filesystem::path data_dir, telemetry::metrics& m, bool enabled = true);
    ~delivery_manager() override;

    // Starts (or, on reload, reconciles) the destinations of `cfg`. Destinations are built
    // before anything is stopped, so a config whose destinations fail to build changes nothing
    // (errors in `errs`). Returns a one-line summary.
    std::string apply(const config::config& cfg, config::errors& errs);
    void stop_all();

    // Asks the owner to reload the config file (set by app::run; used by POST /v1/reload).
    void set_reloader(std::function<std::string()> f) { reloader_ = std::move(f); }
    // Other operator routes (e.g. /v1/quarantine) tried before answering 404; set at start-up.
    using extra_routes =
        std::function<std::optional<reply>(std::string_view method, std::string_view path,
                                           std::string_view query, std::string_view body)>;
    void set_extra_routes(extra_routes f) { extra_ = std::move(f); }
    // Told when a destination delivered a deletion record (destination name, the record);
    // set at start-up, before apply(). Called on sender threads.
    using deletion_confirmer = std::function<void(std::string_view, const event_view&)>;
    void set_deletion_confirmer(deletion_confirmer f) { confirm_ = std::move(f); }

    reply call(std::string_view method, std::string_view path, std::string_view query,
               std::string_view body) override;

    // Renders the destinations table as JSON (the operator API's GET /v1/destinations).
    std::string destinations_json();

  private:
    struct entry {
        std::string name;
        std::string type;
        std::string fingerprint;  // the entry's YAML, to detect changes on reload
        // Shared with the entry that replaces this one on reload: one store per file.
        std::shared_ptr<delivery::dead_letter_store> dead_letters;
        reader_ptr reader;  // Kafka log only; outlives the worker that reads it
        std::unique_ptr<delivery::worker> worker;

        // Stops the worker (final commit), then leaves the consumer group.
        void stop();
    };

    void on_commit();
    std::unique_ptr<entry> build(const config::config& cfg, const config::destination_config& d,
                                 std::shared_ptr<delivery::dead_letter_store> store,
                                 config::errors& errs);
    std::unique_ptr<entry> build_quarantine(const config::config& cfg);
    bool attach_reader(entry& e, config::errors& errs, const YAML::Mark& mark);
    void register_metrics();
    std::shared_ptr<entry> find(std::string_view name);

    event_log* log_;
    reader_factory readers_;
    log::cursor_store& cursors_;
    bool enabled_;
    std::filesystem::path data_dir_;
    telemetry::metrics& metrics_;
    std::function<std::string()> reloader_;
    extra_routes extra_;
    deletion_confirmer confirm_;

    // Entries are shared so the operator API and metrics can use one after dropping mu_ (a
    // dead-letter rewrite must never hold the lock that other destinations' commits need).
    std::vector<std::shared_ptr<entry>> snapshot();
    void publish_names();  // copies entry names for on_commit; call with mu_ held

    std::mutex mu_;  // guards entries_
    std::map<std::string, std::shared_ptr<entry>, std::less<>> entries_;
    std::mutex release_mu_;  // serialises release_before; guards names_
    std::vector<std::string> names_;

    prometheus::Family<prometheus::Histogram>* batch_size_ = nullptr;
    prometheus::Family<prometheus::Histogram>* latency_ = nullptr;
};

}  // namespace switchyard::app
