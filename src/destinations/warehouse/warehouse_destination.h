#pragma once

#include "config/reader.h"
#include "destinations/registry.h"
#include "switchyard/destination.h"
#include "warehouse/loader.h"

#include <memory>

namespace switchyard::destinations {

// A SQL warehouse as a destination: the engine-neutral loader (src/warehouse/loader.h) over one
// backend, with the loader's counters exported as metrics labelled by destination.
//
// Lifecycle: built at start without touching the database (so `switchyard check` needs no
// server); the first send() connects. send() and close() run on the delivery worker thread.
class warehouse_destination final : public destination {
  public:
    warehouse_destination(std::unique_ptr<warehouse::backend> b, warehouse::loader_options o,
                          const destination_context& ctx);

    send_outcome send(std::span<const delivery_item> batch) override;
    bool healthy() const override { return loader_.healthy(); }
    void close() override { loader_.close(); }

    const warehouse::loader_stats& stats() const noexcept { return loader_.stats(); }

  private:
    void export_stats();

    warehouse::loader loader_;
    struct exported;
    std::shared_ptr<exported> metrics_;  // null without a metrics registry
};

// Reads the keys every warehouse shares (max_columns, per_event_tables, users_table,
// max_nesting) into `o`.
void read_warehouse_options(config::map_reader& settings, warehouse::loader_options& o);

// The `sqlite` destination: path, busy_timeout, synchronous, plus the shared keys.
std::unique_ptr<destination> make_sqlite_destination(config::map_reader& settings,
                                                     const destination_context& ctx);

// The `postgres` destination: dsn, password, connect_timeout, statement_timeout, plus the
// shared keys.
std::unique_ptr<destination> make_postgres_destination(config::map_reader& settings,
                                                       const destination_context& ctx);

}  // namespace switchyard::destinations
