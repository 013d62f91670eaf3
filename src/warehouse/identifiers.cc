#include "warehouse/identifiers.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

namespace switchyard::warehouse {
namespace {

// PostgreSQL 15's reserved key words (Appendix C: "reserved" and "reserved, can be function or
// type"), plus SQLite key words that cannot be used unquoted as column names. Sorted.
constexpr std::string_view reserved[] = {
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "autoincrement",
    "between",
    "binary",
    "both",
    "by",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "commit",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "delete",
    "desc",
    "distinct",
    "do",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "exists",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "glob",
    "grant",
    "group",
    "having",
    "if",
    "ilike",
    "in",
    "index",
    "initially",
    "inner",
    "insert",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "regexp",
    "returning",
    "right",
    "rollback",
    "select",
    "session_user",
    "set",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "transaction",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "values",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
};

bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::uint64_t fnv1a64(std::string_view s) noexcept {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

bool is_reserved_word(std::string_view name) noexcept {
    return std::binary_search(std::begin(reserved), std::end(reserved), name);
}

std::string sanitize_identifier(std::string_view raw) {
    std::string out;
    out.reserve(raw.size() + 4);
    const std::size_t n = raw.size();
    for (std::size_t i = 0; i < n; ++i) {
        const char c = raw[i];
        if (is_upper(c)) {
            // A word starts at an upper-case letter after a lower-case letter or digit
            // ("productId"), or at the last capital of an acronym followed by lower case
            // ("HTTPStatus" -> "http_status").
            const char prev = i > 0 ? raw[i - 1] : '\0';
            const char next = i + 1 < n ? raw[i + 1] : '\0';
            if (is_lower(prev) || is_digit(prev) || (is_upper(prev) && is_lower(next))) {
                out += '_';
            }
            out += static_cast<char>(c - 'A' + 'a');
        } else if (is_lower(c) || is_digit(c)) {
            out += c;
        } else {
            out += '_';
        }
    }
    // Collapse runs of '_' and trim both ends.
    std::string name;
    name.reserve(out.size() + 2);
    for (char c : out) {
        if (c == '_' && (name.empty() || name.back() == '_')) continue;
        name += c;
    }
    while (!name.empty() && name.back() == '_') name.pop_back();

    if (name.empty()) return fmt::format("_{:016x}", fnv1a64(raw));
    if (is_digit(name.front())) name.insert(name.begin(), '_');
    if (is_reserved_word(name)) name += '_';
    if (name.size() > max_identifier_bytes) {
        name.resize(54);
        while (!name.empty() && name.back() == '_') name.pop_back();
        name += fmt::format("_{:08x}", static_cast<std::uint32_t>(fnv1a64(raw) >> 32));
    }
    return name;
}

std::string quote_identifier(std::string_view name) {
    std::string q;
    q.reserve(name.size() + 2);
    q += '"';
    for (char c : name) {
        if (c == '"') q += '"';
        q += c;
    }
    q += '"';
    return q;
}

}  // namespace switchyard::warehouse
