#pragma once

// Log records -> warehouse rows (the Segment warehouse schema).
//
// An event becomes one row in its type's table (tracks, identifies, pages, screens, groups,
// aliases), plus a row in its event's own table (track) or an upsert into `users` (identify
// with a userId). identity_link records become rows of `identity_links`, quarantine records rows
// of `quarantine`. Columns: the standard ones (id = messageId, received_at, sent_at,
// original_timestamp, timestamp, user_id, anonymous_id, uuid_ts = load time), `context_*`
// flattened, and properties/traits flattened to snake_case columns (nested objects joined by
// '_', arrays as JSON text). Values keep their natural type here; fitting them to columns is the
// loader's job (schema.h).

#include "switchyard/event.h"
#include "warehouse/backend.h"

#include <simdjson.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace switchyard::warehouse {

enum class table_kind : std::uint8_t {
    tracks,
    track_event,  // one table per track event name
    identifies,
    users,
    pages,
    screens,
    groups,
    aliases,
    identity_links,
    quarantine,
    discards,
};

// The standard columns every table of `kind` is created with, `id` first.
std::span<const column> standard_columns(table_kind kind) noexcept;

// Names the loader owns in every table of a kind (standard columns plus `_extra`); properties
// and traits with these names are stored as `properties_<name>` / `traits_<name>`.
bool is_standard_column(table_kind kind, std::string_view name) noexcept;

inline constexpr std::string_view extra_column = "_extra";
inline constexpr std::string_view discards_table = "_discards";

struct field {
    std::string column;
    // Natural type of the value. Timestamps (ISO-8601 date-times) also keep the original string
    // in `s`, so a text column stores exactly what was sent. Arrays and over-deep objects are
    // text cells holding JSON.
    cell value;
};

struct row {
    table_ref table;
    table_kind kind = table_kind::tracks;
    write_mode mode = write_mode::insert_ignore;
    std::string id;  // the `id` column's value (also fields[0])
    std::vector<field> fields;
    // Values that have no column of their own (a second key with the same sanitized name), as
    // (column name, JSON value); the loader adds those beyond the column budget and writes them
    // all to `_extra` as one JSON object.
    std::vector<std::pair<std::string, std::string>> extra;
    // For discards and deletions.
    std::int64_t received_us = 0;
    std::string user_id;
    std::string anonymous_id;
    std::string_view record_json;  // the whole record, for a row the engine refuses
};

struct row_options {
    std::size_t max_depth = 8;     // object nesting flattened into columns; deeper is JSON text
    bool per_event_tables = true;  // track events also get a row in their event's own table
    bool users_table = true;       // identifies with a userId upsert `users`
};

// Ids named by a deletion record.
struct deletion_ids {
    std::vector<std::string> user_ids;
    std::vector<std::string> anonymous_ids;
    std::vector<std::string> device_ids;
    bool empty() const noexcept {
        return user_ids.empty() && anonymous_ids.empty() && device_ids.empty();
    }
};

// Builds rows from log records. One per loader; reuses its parser and buffers.
class row_builder {
  public:
    explicit row_builder(row_options o) : opts_(o) {}

    // Appends the rows `v` yields to `out`. Returns false, with the reason, when the record's JSON
    // cannot be read (the caller keeps it in the discards table).
    bool build(const event_view& v, std::vector<row>& out, std::string& why);

    // Reads a deletion record's ids.
    bool deletion(const event_view& v, deletion_ids& out, std::string& why);

  private:
    using element = simdjson::dom::element;
    void flatten(element e, std::string& prefix, std::size_t depth, row& r, bool collide_check);
    void flatten_object(simdjson::dom::object o, std::string& prefix, std::size_t depth, row& r,
                        bool collide_check);
    void add(row& r, std::string column, cell value);
    void common(const event_view& v, simdjson::dom::object o, row& r);
    void members(simdjson::dom::object o, std::string_view prefix_name, row& r);

    const std::string& key_name(std::string_view key);
    static std::string column_name(const std::string& joined);

    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    row_options opts_;
    simdjson::dom::parser parser_;
    std::string scratch_;
    std::string last_source_, last_ns_;
    std::unordered_map<std::string, std::string, string_hash, std::equal_to<>> names_;
};

// The table namespace of a source: its sanitized name ("switchyard" for records with no
// source); names the engines reserve (pg_*, information_schema, sqlite*) get an "s_" prefix.
std::string namespace_for(std::string_view source);

// An ISO-8601 date-time ("2024-05-01T12:00:00Z", "2024-05-01 12:00:00.123456+02:00", offset
// optional = UTC), years 0001-9999, to microseconds since the epoch. Date-only strings are not
// timestamps (a birthday stays text).
bool parse_timestamp_us(std::string_view s, std::int64_t& us) noexcept;

// "YYYY-MM-DDTHH:MM:SS.ffffffZ" for microseconds since the epoch (years 0001..9999): the
// fixed-width UTC form SQLite stores (text order = time order) and PostgreSQL reads.
std::string format_timestamp_us(std::int64_t us);

// The JSON text of a natural-typed value (for `_extra` and `_discards`).
void append_value_json(std::string& out, const cell& c);

}  // namespace switchyard::warehouse
