#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::plan {

// Why an event does not match its plan. Values are stable names used in metrics labels and the
// admin API: never rename.
enum class violation_kind : std::uint8_t {
    unplanned_event,
    missing_required,
    wrong_type,
    unplanned_property,
    bad_value,
};

std::string_view to_string(violation_kind k) noexcept;
std::optional<violation_kind> violation_kind_from_string(std::string_view s) noexcept;

// One way an event differs from the plan. `path` is the JSON path from the event root: keys are
// joined with '.', array elements are `[i]`, and keys that are empty or contain '.', '[', ']',
// '"', a backslash or a control character are written `["key"]` (JSON-escaped), so the path
// always parses back.
struct violation {
    std::string path;  // "properties.price", "traits.email", "properties.items[2].sku", "" = event
    violation_kind kind;
    std::string expected;  // "number", "one of [a, b]", "pattern ^[A-Z]", "required"
    std::string actual;    // "string \"12\"", "missing", the unplanned key, the event name

    bool operator==(const violation&) const = default;
};

// Appends `v` as a JSON array of {"path","kind","expected","actual"} objects.
void append_violations_json(const std::vector<violation>& v, std::string& out);

namespace detail {
struct plan_data;
}

// A tracking plan compiled once per load into a structure validation walks with one hash lookup
// per event name and per property key (regexes precompiled, enums as sets). Immutable after
// load, so one instance is shared by every I/O thread (hold it through the shared_ptr while a
// reload swaps in a new one).
class compiled_plan {
  public:
    explicit compiled_plan(std::unique_ptr<const detail::plan_data> data);
    ~compiled_plan();
    compiled_plan(const compiled_plan&) = delete;
    compiled_plan& operator=(const compiled_plan&) = delete;

    const std::string& name() const noexcept;
    const std::string& version() const noexcept;  // the plan's `version` field
    std::size_t event_count() const noexcept;

    // Validates one canonical Segment-spec event (type, event/name, properties, traits, ...).
    // Thread-safe: const, parses with a thread_local simdjson parser. Appends to `out`; returns
    // false only when `event_json` is not a JSON object.
    bool validate(std::string_view event_json, std::vector<violation>& out) const;

    // For the `omit` policy: the event JSON without every property/trait named by a violation of
    // kind wrong_type, unplanned_property or bad_value (paths under properties/traits only;
    // other kinds are left alone). Nothing else changes semantically.
    std::string omit(std::string_view event_json, const std::vector<violation>& v) const;

    // Markdown documentation: events by type with description, owner and a properties table.
    std::string markdown() const;

  private:
    std::unique_ptr<const detail::plan_data> data_;
};

// Loads a plan from YAML plan files and/or `.json` files holding JSON Schema (a Segment
// Protocols export, or one draft-07 schema whose title is the event name). Every problem goes to
// `errors` as "file:line:col: message". Returns null when any error was reported. `name` is
// used when no file sets one.
std::shared_ptr<const compiled_plan> load_plan(const std::vector<std::string>& files,
                                               std::vector<std::string>& errors,
                                               std::string_view name = {});

// Same from in-memory text; `file` names the text in errors, and a name ending in ".json"
// selects JSON Schema import.
std::shared_ptr<const compiled_plan> load_plan_text(std::string_view text, std::string_view file,
                                                    std::vector<std::string>& errors);

}  // namespace switchyard::plan
