#pragma once

// The engine-neutral model of a warehouse load, and the interface a SQL engine implements.
//
// The warehouse destination (destination.h) turns events into rows of typed cells, decides the
// schema (tables, columns, their types; see schema.h), and hands a backend plain work: create
// this table, add these columns, write these rows. Backends own SQL dialect, quoting, transactions
// and error classification; they never decide what a column's type is.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace switchyard::warehouse {

// Column types, ordered as a widening lattice: boolean < integer < floating < text and
// timestamp < text. A value is stored in a column of its own type or of any type above it.
enum class column_type : std::uint8_t {
    boolean = 0,
    integer = 1,
    floating = 2,
    timestamp = 3,
    text = 4,
};

const char* to_string(column_type t) noexcept;

struct column {
    std::string name;  // already sanitized (identifiers.h): [a-z0-9_], at most 63 bytes
    column_type type = column_type::text;

    friend bool operator==(const column&, const column&) = default;
};

// One value of a row. `type` says which member holds it. A cell's type always equals its
// column's type by the time it reaches a backend (the destination converts or discards).
struct cell {
    enum class kind : std::uint8_t { null, boolean, integer, floating, timestamp, text };
    kind k = kind::null;
    bool b = false;
    std::int64_t i = 0;  // integer; timestamp: microseconds since the Unix epoch, UTC,
                         // always within years 0001..9999
    double f = 0;        // floating: always finite
    std::string s;       // text (valid UTF-8; contains no NUL when the backend refuses NUL)

    static cell null_value() { return {}; }
    static cell of_bool(bool v) {
        cell c;
        c.k = kind::boolean;
        c.b = v;
        return c;
    }
    static cell of_int(std::int64_t v) {
        cell c;
        c.k = kind::integer;
        c.i = v;
        return c;
    }
    static cell of_float(double v) {
        cell c;
        c.k = kind::floating;
        c.f = v;
        return c;
    }
    static cell of_timestamp_us(std::int64_t us) {
        cell c;
        c.k = kind::timestamp;
        c.i = us;
        return c;
    }
    static cell of_text(std::string v) {
        cell c;
        c.k = kind::text;
        c.s = std::move(v);
        return c;
    }
};

// A table inside a namespace. PostgreSQL maps the namespace to a schema ("ns"."name"); SQLite,
// which has no schemas, to a table name prefix ("ns_name"). Both parts are sanitized.
struct table_ref {
    std::string ns;
    std::string name;

    friend bool operator==(const table_ref&, const table_ref&) = default;
    friend auto operator<=>(const table_ref&, const table_ref&) = default;
};

struct table_info {
    table_ref table;
    std::vector<column> columns;  // in table order
};

enum class write_mode : std::uint8_t {
    // Insert; a row whose `id` already exists is skipped (the existing row is kept). A batch
    // written twice leaves one copy of each row.
    insert_ignore,
    // Insert or update by `id` (the `users` table): for an existing row, each column whose new
    // value is not null is replaced, but only when the new row's `received_at` is not older
    // than the stored one; columns the new row leaves null keep their value.
    upsert,
};

// Rows for one table. Every table has a text column `id`, the primary key. `rows[r][c]` is the
// value of `columns[c]`; every row has exactly columns.size() cells. `columns` is a subset of
// the table's columns (those this batch has values for); the others are left null. Ids are
// unique within `rows`.
struct table_rows {
    table_ref table;
    write_mode mode = write_mode::insert_ignore;
    std::vector<column> columns;
    std::vector<std::vector<cell>> rows;
};

// Deletes the rows of `table` whose `column` (a text column) equals one of `values`.
struct row_deletion {
    table_ref table;
    std::string column;
    std::vector<std::string> values;
};

// One unit of work, applied in one transaction: all of `writes` in order, then all of
// `deletions`. Either all of it is visible afterwards or none of it.
struct load {
    std::vector<table_rows> writes;
    std::vector<row_deletion> deletions;
};

struct status {
    enum class code : std::uint8_t {
        ok,
        // Transient or operator-fixable (connection lost, server restarting, disk full,
        // permission denied, lock timeout, serialization failure): nothing was applied; the
        // same work may be retried later, after reconnecting if needed.
        retry,
        // The engine refused one row's data (a value out of range, an encoding it rejects):
        // nothing was applied; `write_index`/`row_index` name the row in load::writes. The
        // caller moves that row to the discards table and tries again without it.
        bad_row,
    };
    code c = code::ok;
    std::string reason;  // for logs, metrics and dead letters; empty when ok
    std::size_t write_index = 0;
    std::size_t row_index = 0;

    bool ok() const noexcept { return c == code::ok; }
    static status success() { return {}; }
    static status retry(std::string why) { return {code::retry, std::move(why), 0, 0}; }
    static status bad(std::size_t w, std::size_t r, std::string why) {
        return {code::bad_row, std::move(why), w, r};
    }
};

// A SQL engine. Used by one delivery worker thread at a time; not thread-safe.
class backend {
  public:
    virtual ~backend() = default;

    // Short engine name for logs and metrics: "sqlite", "postgres".
    virtual const char* engine() const noexcept = 0;

    // Whether text values may contain U+0000 (PostgreSQL's text cannot).
    virtual bool accepts_nul() const noexcept = 0;

    // Opens the database (or reconnects after a failure; a no-op when connected and healthy).
    // Every other call connects first when needed.
    virtual status connect() = 0;

    // Every table this loader manages, with its columns: PostgreSQL lists the tables of schemas
    // it created (marked with a schema comment), SQLite the tables it recorded creating. Tables
    // created by other loaders sharing the database are included.
    virtual status describe(std::vector<table_info>& out) = 0;

    // One table's columns (after DDL on it): `out.columns` is empty when the table does not
    // exist (or is not managed by this loader).
    virtual status describe_table(const table_ref& t, table_info& out) = 0;

    // Creates the namespace if needed, then the table with `columns` (which include `id`, the
    // primary key) if it does not exist. Idempotent; safe when another loader races to create
    // the same table. Columns of an already existing table are left as they are.
    virtual status create_table(const table_ref& t, std::span<const column> columns) = 0;

    // Adds columns to an existing table; a column that already exists (with any type) is left
    // as it is. Idempotent; safe under races.
    virtual status add_columns(const table_ref& t, std::span<const column> columns) = 0;

    // Applies `l` in one transaction (see load).
    virtual status apply(const load& l) = 0;

    // Closes the connection. Idempotent.
    virtual void close() = 0;
};

}  // namespace switchyard::warehouse
