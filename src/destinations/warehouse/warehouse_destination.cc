#include "destinations/warehouse/warehouse_destination.h"

#include "warehouse/postgres_backend.h"
#include "warehouse/sqlite_backend.h"

#include <fmt/format.h>

namespace switchyard::destinations {

struct warehouse_destination::exported {
    prometheus::Counter* rows;
    prometheus::Counter* discards;
    prometheus::Counter* extra_values;
    prometheus::Counter* columns_added;
    prometheus::Counter* tables_created;
    prometheus::Counter* refused_rows;
    prometheus::Counter* deletions;
    prometheus::Counter* failures;
    // What was exported so far: the counters move by the difference after each send.
    std::uint64_t last[8] = {};
};

warehouse_destination::warehouse_destination(std::unique_ptr<warehouse::backend> b,
                                             warehouse::loader_options o,
                                             const destination_context& ctx)
    : loader_(std::move(b), o) {
    if (ctx.metrics == nullptr) return;
    auto& m = *ctx.metrics;
    const prometheus::Labels l{{"destination", ctx.name}};
    metrics_ = std::make_shared<exported>();
    metrics_->rows = &m.counters("switchyard_warehouse_rows_total",
                                 "Rows written to warehouse tables (inserted or upserted; a row "
                                 "already present is skipped by the database).")
                          .Add(l);
    metrics_->discards =
        &m.counters("switchyard_warehouse_discards_total",
                    "Values (or whole rows) stored in a _discards table instead of their column.")
             .Add(l);
    metrics_->extra_values =
        &m.counters("switchyard_warehouse_extra_values_total",
                    "Values stored in a table's _extra JSON column (column budget reached or a "
                    "second key with the same column name).")
             .Add(l);
    metrics_->columns_added = &m.counters("switchyard_warehouse_columns_added_total",
                                          "Columns added to existing warehouse tables.")
                                   .Add(l);
    metrics_->tables_created =
        &m.counters("switchyard_warehouse_tables_created_total", "Warehouse tables created.")
             .Add(l);
    metrics_->refused_rows = &m.counters("switchyard_warehouse_refused_rows_total",
                                         "Rows the database refused (moved whole to _discards).")
                                  .Add(l);
    metrics_->deletions = &m.counters("switchyard_warehouse_deletions_total",
                                      "Deletion records applied to warehouse tables.")
                               .Add(l);
    metrics_->failures = &m.counters("switchyard_warehouse_load_failures_total",
                                     "Warehouse loads that failed and will be retried (connection, "
                                     "permissions, disk full, ...).")
                              .Add(l);
}

void warehouse_destination::export_stats() {
    if (!metrics_) return;
    const auto& s = loader_.stats();
    prometheus::Counter* c[8] = {metrics_->rows,           metrics_->discards,
                                 metrics_->extra_values,   metrics_->columns_added,
                                 metrics_->tables_created, metrics_->refused_rows,
                                 metrics_->deletions,      metrics_->failures};
    const std::uint64_t now[8] = {s.rows.load(),           s.discards.load(),
                                  s.extra_values.load(),   s.columns_added.load(),
                                  s.tables_created.load(), s.refused_rows.load(),
                                  s.deletions.load(),      s.failures.load()};
    for (int i = 0; i < 8; ++i) {
        if (now[i] > metrics_->last[i]) {
            c[i]->Increment(static_cast<double>(now[i] - metrics_->last[i]));
        }
        metrics_->last[i] = now[i];
    }
}

send_outcome warehouse_destination::send(std::span<const delivery_item> batch) {
    auto out = loader_.send(batch);
    export_stats();
    return out;
}

namespace {

std::string key_of(config::map_reader& settings, std::string_view k) {
    return settings.path().empty() ? std::string(k) : settings.path() + "." + std::string(k);
}

}  // namespace

void read_warehouse_options(config::map_reader& settings, warehouse::loader_options& o) {
    std::uint64_t max_columns = o.max_columns;
    settings.get("max_columns", max_columns,
                 "Most columns per table, standard columns included. Values of further keys are "
                 "kept in the table's `_extra` JSON column (PostgreSQL allows 1600 columns, "
                 "SQLite 2000).");
    settings.get("per_event_tables", o.rows.per_event_tables,
                 "Also write each track event to a table named after the event, holding its "
                 "properties as columns (as Segment's warehouses do).");
    settings.get("users_table", o.rows.users_table,
                 "Keep a `users` table with the latest traits of each userId (upserted from "
                 "identify calls).");
    std::uint64_t depth = o.rows.max_depth;
    settings.get("max_nesting", depth,
                 "Nested objects are flattened into columns to this depth (`a_b_c`); deeper "
                 "values are stored as JSON text.");
    if (!settings.describing()) {
        if (max_columns < 20 || max_columns > 1600) {
            settings.errs().add(settings.mark(),
                                fmt::format("{}: must be between 20 and 1600, got {}",
                                            key_of(settings, "max_columns"), max_columns));
        }
        if (depth < 1 || depth > 32) {
            settings.errs().add(settings.mark(),
                                fmt::format("{}: must be between 1 and 32, got {}",
                                            key_of(settings, "max_nesting"), depth));
        }
    }
    o.max_columns = static_cast<std::size_t>(max_columns);
    o.rows.max_depth = static_cast<std::size_t>(depth);
}

std::unique_ptr<destination> make_sqlite_destination(config::map_reader& settings,
                                                     const destination_context& ctx) {
    const std::size_t errors_before = settings.errs().list().size();
    warehouse::sqlite_options so;
    std::string path = settings.describing() ? std::string("<data_dir>/warehouse.db")
                                             : (ctx.data_dir / "warehouse.db").string();
    settings.get("path", path,
                 "The SQLite database file; created (with its directory) if missing. Tables are "
                 "named <source>_<table>.");
    config::duration busy_timeout = so.busy_timeout;
    settings.get("busy_timeout", busy_timeout,
                 "How long a load waits for another connection's lock on the file (readers never "
                 "block it in WAL mode) before the batch is retried.");
    std::string synchronous = "normal";
    settings.get("synchronous", synchronous,
                 "normal: a committed batch survives a crash of the daemon (WAL); full: also a "
                 "power loss, at the cost of an fsync per batch.");
    warehouse::loader_options lo;
    read_warehouse_options(settings, lo);
    if (!settings.describing()) {
        if (path.empty()) {
            settings.errs().add(settings.mark(), key_of(settings, "path") + ": must not be empty");
        }
        if (synchronous != "normal" && synchronous != "full") {
            settings.errs().add(settings.mark(),
                                fmt::format("{}: must be normal or full, got '{}'",
                                            key_of(settings, "synchronous"), synchronous));
        }
    }
    settings.finish();
    if (settings.describing() || settings.errs().list().size() != errors_before) return nullptr;
    so.path = path;
    so.busy_timeout = busy_timeout;
    so.synchronous_full = synchronous == "full";
    return std::make_unique<warehouse_destination>(
        std::make_unique<warehouse::sqlite_backend>(std::move(so)), lo, ctx);
}

std::unique_ptr<destination> make_postgres_destination(config::map_reader& settings,
                                                       const destination_context& ctx) {
    const std::size_t errors_before = settings.errs().list().size();
    warehouse::postgres_options po;
    settings.require("dsn", po.dsn,
                     "libpq connection string: \"host=db port=5432 dbname=analytics user=loader\" "
                     "or postgresql://loader@db/analytics (see libpq's docs for sslmode and the "
                     "rest). Events go to one schema per source.");
    std::string password;
    settings.get("password", password,
                 "Password, kept out of `dsn` so it can come from the environment "
                 "(\"${PGPASSWORD}\"); libpq's own PGPASSWORD / .pgpass also work.");
    config::duration connect_timeout = po.connect_timeout;
    settings.get("connect_timeout", connect_timeout,
                 "How long a connection attempt may take before the batch is retried.");
    config::duration statement_timeout = po.statement_timeout;
    settings.get("statement_timeout", statement_timeout,
                 "Server-side limit per statement (a batch's COPY and merge); 0 = none.");
    warehouse::loader_options lo;
    read_warehouse_options(settings, lo);
    if (!settings.describing()) {
        if (connect_timeout.count() < 1000) {
            settings.errs().add(settings.mark(), key_of(settings, "connect_timeout") +
                                                     ": must be at least 1s (libpq counts "
                                                     "whole seconds)");
        }
        if (statement_timeout.count() < 0) {
            settings.errs().add(settings.mark(),
                                key_of(settings, "statement_timeout") + ": must not be negative");
        }
    }
    settings.finish();
    if (settings.describing() || settings.errs().list().size() != errors_before) return nullptr;
    if (!password.empty()) {
        // A key=value conninfo takes more pairs; a URI takes them as query parameters.
        std::string quoted = "'";
        for (char c : password) {
            if (c == '\'' || c == '\\') quoted += '\\';
            quoted += c;
        }
        quoted += '\'';
        const bool uri =
            po.dsn.rfind("postgresql://", 0) == 0 || po.dsn.rfind("postgres://", 0) == 0;
        if (uri) {
            std::string enc;
            for (unsigned char c : password) {
                if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
                    enc += static_cast<char>(c);
                } else {
                    enc += fmt::format("%{:02X}", c);
                }
            }
            po.dsn += (po.dsn.find('?') == std::string::npos ? "?" : "&");
            po.dsn += "password=" + enc;
        } else {
            po.dsn += " password=" + quoted;
        }
    }
    po.connect_timeout = connect_timeout;
    po.statement_timeout = statement_timeout;
    return std::make_unique<warehouse_destination>(
        std::make_unique<warehouse::postgres_backend>(std::move(po)), lo, ctx);
}

}  // namespace switchyard::destinations
