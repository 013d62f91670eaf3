#pragma once

// The engine-neutral warehouse loader: log records in, idempotent SQL loads out.
//
// Per delivery batch: records become rows (rows.h); rows are grouped by table; unknown tables
// are created and new keys become columns (ALTER TABLE ADD COLUMN) within the per-table column
// budget, beyond which values go to the table's `_extra` JSON column; each value is fitted to
// its column's type along the widening lattice (backend.h), and a value that does not fit is
// stored in the namespace's `_discards` table with the reason, its row kept without it. The
// batch is then applied in one transaction (the backend). A row the engine itself refuses is
// moved, whole, to `_discards` and the rest applied again. Deletion records delete the named
// person's rows from every table the loader manages. Nothing is ever dropped: what cannot be
// loaded is retried (transient) or kept in `_discards` (data).
//
// Column types are never changed once created (changing a type rewrites the table under an
// exclusive lock on PostgreSQL): the first batch that creates a column decides its type, as the
// join of the values it carries.

#include "switchyard/destination.h"
#include "warehouse/backend.h"
#include "warehouse/rows.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace switchyard::warehouse {

struct loader_options {
    row_options rows;
    // Most columns a table gets (standard columns included, `_extra` not counted); the values
    // of further keys are kept in `_extra`. PostgreSQL's hard limit is 1600, SQLite's 2000.
    std::size_t max_columns = 500;
    // Rows the engine refuses that one batch may move to `_discards` before the batch is
    // retried instead (a sign that something other than the data is wrong).
    std::size_t max_refused_rows = 1000;
};

struct loader_stats {
    std::atomic<std::uint64_t> rows{0};           // rows written (insert or upsert attempts)
    std::atomic<std::uint64_t> discards{0};       // values and rows stored in `_discards`
    std::atomic<std::uint64_t> extra_values{0};   // values stored in `_extra`
    std::atomic<std::uint64_t> columns_added{0};  // columns added to existing tables
    std::atomic<std::uint64_t> tables_created{0};
    std::atomic<std::uint64_t> refused_rows{0};  // rows the engine refused (moved to discards)
    std::atomic<std::uint64_t> deletions{0};     // deletion records applied
    std::atomic<std::uint64_t> failures{0};      // loads that failed and will be retried
};

// Fits a natural-typed value to a column type; false (with the reason) when it does not fit.
bool fit_value(const cell& value, column_type target, bool accepts_nul, cell& out,
               std::string& why);

// The join of two natural types on the widening lattice.
column_type join_types(column_type a, column_type b) noexcept;

// The column type a value has on its own.
column_type natural_type(const cell& c) noexcept;

class loader {
  public:
    loader(std::unique_ptr<backend> b, loader_options o);

    // Loads `batch` (events, identity links, quarantine and deletion records) in order.
    send_outcome send(std::span<const delivery_item> batch);

    bool healthy() const noexcept { return healthy_.load(std::memory_order_relaxed); }
    void close();

    const loader_stats& stats() const noexcept { return stats_; }
    backend& engine() noexcept { return *backend_; }

  private:
    struct table_state {
        std::vector<column> columns;
        std::unordered_map<std::string, column_type> types;
        bool has_extra = false;
    };

    status describe();
    status refresh(const table_ref& t);  // re-reads one table after DDL on it
    status load_rows(std::vector<row>& rows);
    status delete_person(const deletion_ids& ids);
    status ensure_table(const table_ref& t, table_kind kind, const std::vector<column>& wanted,
                        bool need_extra, std::vector<std::string>& overflow);
    void remember(const table_info& info);

    std::unique_ptr<backend> backend_;
    loader_options opts_;
    row_builder builder_;
    std::map<table_ref, table_state> tables_;
    bool described_ = false;
    std::atomic<bool> healthy_{true};
    loader_stats stats_;
};

}  // namespace switchyard::warehouse
