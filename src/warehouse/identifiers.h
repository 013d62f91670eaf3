#pragma once

// SQL identifiers from untrusted names (event names, property keys, source names).
//
// Every name the warehouse loaders put into SQL goes through sanitize_identifier and is then
// quoted with quote_identifier; the two together make injection impossible: the sanitized form
// holds only [a-z0-9_], and quoting would neutralize anything else anyway.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace switchyard::warehouse {

// PostgreSQL's identifier limit (NAMEDATALEN - 1); SQLite has none, but one rule for both
// engines keeps their schemas identical.
inline constexpr std::size_t max_identifier_bytes = 63;

// The column/table name for `raw`, following the Segment warehouse conventions:
//  - camelCase and PascalCase words become snake_case ("productId" -> "product_id",
//    "HTTPStatus" -> "http_status"); everything is lowercased;
//  - any byte outside [a-z0-9] becomes '_' (non-ASCII letters included), runs of '_' collapse,
//    and leading and trailing '_' are dropped (names starting with '_' belong to the loader:
//    `_extra`, `_discards`);
//  - a name starting with a digit gets a leading '_' ("1st" -> "_1st");
//  - an SQL reserved word gets a trailing '_' ("select" -> "select_", "user" -> "user_");
//  - an empty result (a name of only punctuation, or non-ASCII) becomes "_" plus a hash of `raw`;
//  - a name longer than 63 bytes is cut to 54 and suffixed "_" + 8 hex digits of a hash of the
//    whole raw name, so long names that share a prefix stay distinct and stable across runs.
std::string sanitize_identifier(std::string_view raw);

// True when `name` is a reserved key word in PostgreSQL or SQLite (lowercase input).
bool is_reserved_word(std::string_view name) noexcept;

// `name` in double quotes, embedded double quotes doubled: safe in PostgreSQL and SQLite.
std::string quote_identifier(std::string_view name);

// 64-bit FNV-1a, the hash behind the suffixes above and the loaders' derived row ids.
std::uint64_t fnv1a64(std::string_view s) noexcept;

}  // namespace switchyard::warehouse
