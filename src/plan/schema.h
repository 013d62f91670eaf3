#pragma once

// The compiled form of a tracking plan: what the loader builds and the validator walks. Internal
// to src/plan/.

#include "plan/plan.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <re2/re2.h>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace switchyard::plan::detail {

// Heterogeneous lookup: events and properties are found by the string_view simdjson hands out,
// without building a std::string per key.
struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;
using string_set = std::unordered_set<std::string, string_hash, std::equal_to<>>;

// JSON value types as bits, so a union is one mask test.
enum type_bit : std::uint8_t {
    t_string = 1,
    t_number = 2,
    t_integer = 4,
    t_boolean = 8,
    t_object = 16,
    t_array = 32,
    t_null = 64,
};

std::string_view type_name(std::uint8_t bit) noexcept;
std::optional<std::uint8_t> type_from_name(std::string_view s) noexcept;
// "string", "string or null", "string, number or null"; "any" for 0.
std::string describe_types(std::uint8_t mask);

enum class string_format : std::uint8_t { none, date_time, email, uri, uuid };
std::string_view format_name(string_format f) noexcept;
std::optional<string_format> format_from_name(std::string_view s) noexcept;
bool check_format(string_format f, std::string_view s) noexcept;

enum class additional : std::uint8_t { inherit, allow, deny };

struct field;

// The allowed values of an `enum`, by JSON type.
struct enum_values {
    string_set strings;
    std::vector<double> numbers;
    bool allow_true = false;
    bool allow_false = false;
    bool allow_null = false;
    std::vector<std::string> display;  // as written, for messages and docs
    std::string expected;              // "one of [a, b]"
};

// One schema node: the checks for a value at one place in the event.
struct node {
    std::uint8_t types = 0;  // 0: any type
    std::string type_text;   // describe_types(types), precomputed for messages

    std::unique_ptr<enum_values> enums;
    std::unique_ptr<RE2> pattern;
    std::string pattern_expected;  // "pattern ^[A-Z]"
    string_format format = string_format::none;
    std::optional<double> minimum, maximum;
    bool exclusive_minimum = false, exclusive_maximum = false;
    std::optional<std::uint64_t> min_length, max_length;  // in code points
    std::optional<std::uint64_t> min_items, max_items;

    // Objects. `has_properties` distinguishes "no keys planned" from a free-form object.
    bool has_properties = false;
    std::vector<field> fields;            // in declaration order (docs, required order)
    std::vector<std::size_t> required;    // indexes of required fields, in declaration order
    string_map<std::size_t> field_index;  // key -> index in fields
    additional additional_properties = additional::inherit;  // resolved to allow/deny at load

    std::unique_ptr<node> items;  // arrays

    std::string description;
};

struct field {
    std::string name;
    bool required = false;
    node schema;
};

// One planned event (or the identify/group traits): the schema of its `properties` (`traits`).
struct event_spec {
    std::string name;
    std::string description;
    std::string owner;
    std::string where;  // "file:line:col" of its definition, for duplicate errors
    node root;          // object node
};

// The events of one call type. track/page/screen are looked up by name (page/screen fall back to
// the "*" entry); identify/group have a single entry.
struct section {
    bool present = false;
    string_map<std::unique_ptr<event_spec>> by_name;
    std::vector<const event_spec*> ordered;  // declaration order, for docs
    const event_spec* wildcard = nullptr;
    std::unique_ptr<event_spec> single;  // identify, group
};

struct plan_data {
    std::string name;
    std::string version;
    std::string description;
    section track, identify, group, page, screen;
};

// Counts UTF-8 code points (bytes that are not continuation bytes).
std::size_t utf8_length(std::string_view s) noexcept;

}  // namespace switchyard::plan::detail
