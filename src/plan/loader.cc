// Loading: YAML plan files and JSON Schema files (parsed with yaml-cpp too, since JSON is YAML,
// so every error has a line and column) compiled into plan_data. Runs at start-up and reload,
// never on the ingest path; yaml-cpp reports syntax errors by exception, caught here.
#include "plan/schema.h"
#include "util/fs.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace switchyard::plan {

using namespace detail;

namespace {

constexpr int max_depth = 32;
// YAML aliases can make a small file expand to an exponential number of nodes; a plan with more
// declarations than this is refused instead of exhausting memory at load.
constexpr std::size_t max_nodes = 100000;

std::string where(std::string_view file, const YAML::Mark& m) {
    if (m.line < 0) return std::string(file);
    return fmt::format("{}:{}:{}", file, m.line + 1, m.column + 1);
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Plain (unquoted) scalars may be numbers, booleans or null; quoted ones are always strings.
// yaml-cpp tags plain scalars "?" and quoted ones "!".
bool is_plain(const YAML::Node& n) { return n.Tag() != "!"; }

// A JSON-style number ("-1", "2.5", "1e3"); YAML extras such as hex or .inf are not numbers here.
bool parse_number(std::string_view s, double& out) {
    std::size_t i = 0;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    std::size_t digits_start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == digits_start) return false;
    if (i < s.size() && s[i] == '.') {
        ++i;
        std::size_t f = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == f) return false;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
        std::size_t e = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == e) return false;
    }
    if (i != s.size()) return false;
    std::string tmp(s);
    errno = 0;
    out = std::strtod(tmp.c_str(), nullptr);
    return errno != ERANGE;
}

// How a schema node is written: the YAML plan dialect (type/min/min_length/required: true...) or
// JSON Schema (minimum/minLength/required: [...]).
enum class dialect { yaml, json_schema };

// Keys JSON Schema allows that carry no validation; accepted and ignored.
bool is_annotation(std::string_view k) {
    return k == "$schema" || k == "$id" || k == "id" || k == "title" || k == "$comment" ||
           k == "examples" || k == "default";
}

class builder {
  public:
    explicit builder(std::vector<std::string>& errors)
        : errors_(errors), errors_before_(errors.size()) {}

    void add_document(std::string file, std::string_view text) {
        if (!simdjson::validate_utf8(text.data(), text.size())) {
            errors_.push_back(fmt::format("{}: file is not valid UTF-8", file));
            return;
        }
        YAML::Node root;
        try {
            root = YAML::Load(std::string(text));
        } catch (const YAML::Exception& e) {
            errors_.push_back(fmt::format("{}: YAML syntax error: {}", where(file, e.mark), e.msg));
            return;
        }
        bool json = ends_with(file, ".json");
        if (!root || root.IsNull()) {
            errors_.push_back(fmt::format("{}: plan file is empty", file));
            return;
        }
        if (!root.IsMap()) {
            err_at(file, root.Mark(),
                   json ? "expected a JSON object" : "a plan file must be a mapping");
            return;
        }
        docs_.push_back({std::move(file), root, json});
    }

    std::shared_ptr<const compiled_plan> finish(std::string_view fallback_name) {
        // Every access is checked before it is made; this catch is the backstop that keeps a
        // yaml-cpp exception on some unforeseen shape a load error rather than a crash.
        try {
            // Headers first: `defaults` must be known before any event is compiled.
            for (auto& d : docs_) {
                file_ = d.file;
                if (d.json) {
                    read_json_header(d.root);
                } else {
                    read_yaml_header(d.root);
                }
            }
            for (auto& d : docs_) {
                file_ = d.file;
                if (d.json) {
                    read_json_file(d.root);
                } else {
                    read_yaml_sections(d.root);
                }
            }
        } catch (const YAML::Exception& e) {
            errors_.push_back(
                fmt::format("{}: unexpected plan structure: {}", where(file_, e.mark), e.msg));
        }
        if (errors_.size() != errors_before_) return nullptr;
        if (data_->name.empty()) data_->name = std::string(fallback_name);
        return std::make_shared<const compiled_plan>(std::move(data_));
    }

  private:
    struct doc {
        std::string file;
        YAML::Node root;
        bool json;
    };

    // A header value (name, version, defaults) may be repeated across files only unchanged.
    struct header_value {
        std::string value;
        std::string where;
    };

    void err_at(std::string_view file, const YAML::Mark& m, std::string_view msg) {
        errors_.push_back(fmt::format("{}: {}", where(file, m), msg));
    }
    void err(const YAML::Node& n, std::string_view msg) { err_at(file_, n.Mark(), msg); }
    void err(const YAML::Mark& m, std::string_view msg) { err_at(file_, m, msg); }

    std::string here(const YAML::Node& n) const { return where(file_, n.Mark()); }

    // Walks a mapping's entries in order, refusing non-scalar and duplicate keys.
    // `report` is false on a second pass over a mapping already checked.
    template <class F>
    void each_entry(const YAML::Node& map, std::string_view ctx, F&& f, bool report = true) {
        std::set<std::string, std::less<>> seen;
        for (const auto& kv : map) {
            if (!kv.first.IsScalar()) {
                if (report) err(kv.first, fmt::format("{}: keys must be strings", ctx));
                continue;
            }
            const std::string& key = kv.first.Scalar();
            if (!seen.insert(key).second) {
                if (report) err(kv.first, fmt::format("{}: duplicate key '{}'", ctx, key));
                continue;
            }
            f(key, kv.first, kv.second);
        }
    }

    void unknown_key(const YAML::Node& key_node, std::string_view ctx, std::string_view key) {
        err(key_node, fmt::format("{}: unknown key '{}'", ctx, key));
    }

    bool need_map(const YAML::Node& v, std::string_view ctx) {
        if (v.IsMap()) return true;
        err(v, fmt::format("{}: expected a mapping", ctx));
        return false;
    }

    bool get_string(const YAML::Node& v, std::string_view ctx, std::string& out) {
        if (!v.IsScalar()) {
            err(v, fmt::format("{}: expected a string", ctx));
            return false;
        }
        out = v.Scalar();
        return true;
    }

    bool get_bool(const YAML::Node& v, std::string_view ctx, bool& out) {
        if (v.IsScalar() && is_plain(v) && (v.Scalar() == "true" || v.Scalar() == "false")) {
            out = v.Scalar() == "true";
            return true;
        }
        err(v, fmt::format("{}: expected true or false", ctx));
        return false;
    }

    bool get_number(const YAML::Node& v, std::string_view ctx, double& out) {
        if (v.IsScalar() && is_plain(v) && parse_number(v.Scalar(), out)) return true;
        err(v, fmt::format("{}: expected a number", ctx));
        return false;
    }

    bool get_count(const YAML::Node& v, std::string_view ctx, std::optional<std::uint64_t>& out) {
        std::uint64_t n = 0;
        const std::string& s = v.IsScalar() ? v.Scalar() : std::string();
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (!v.IsScalar() || !is_plain(v) || s.empty() || ec != std::errc() ||
            p != s.data() + s.size()) {
            err(v, fmt::format("{}: expected a non-negative integer", ctx));
            return false;
        }
        out = n;
        return true;
    }

    bool get_additional(const YAML::Node& v, std::string_view ctx, additional& out) {
        if (v.IsScalar() && (v.Scalar() == "allow" || v.Scalar() == "deny")) {
            out = v.Scalar() == "allow" ? additional::allow : additional::deny;
            return true;
        }
        err(v, fmt::format("{}: expected allow or deny", ctx));
        return false;
    }

    void set_header(std::optional<header_value>& slot, const YAML::Node& v, std::string value,
                    std::string_view what) {
        if (slot && slot->value != value) {
            err(v, fmt::format("plan {} '{}' differs from '{}' set at {}", what, value, slot->value,
                               slot->where));
            return;
        }
        if (!slot) slot = header_value{value, here(v)};
        if (what == "name") data_->name = std::move(value);
        if (what == "version") data_->version = std::move(value);
    }

    // --- YAML plan files ------------------------------------------------------------------

    void read_yaml_header(const YAML::Node& root) {
        each_entry(
            root, "plan", [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                std::string s;
                if (key == "name") {
                    if (get_string(v, "name", s)) set_header(name_, v, std::move(s), "name");
                } else if (key == "version") {
                    if (get_string(v, "version", s))
                        set_header(version_, v, std::move(s), "version");
                } else if (key == "description") {
                    if (get_string(v, "description", s)) {
                        if (!data_->description.empty()) data_->description += "\n\n";
                        data_->description += s;
                    }
                } else if (key == "defaults") {
                    if (!need_map(v, "defaults")) return;
                    each_entry(
                        v, "defaults",
                        [&](const std::string& dk, const YAML::Node& dkn, const YAML::Node& dv) {
                            if (dk != "additional_properties") {
                                unknown_key(dkn, "defaults", dk);
                                return;
                            }
                            additional a = additional::allow;
                            if (!get_additional(dv, "defaults.additional_properties", a)) return;
                            set_header(defaults_, dv, a == additional::allow ? "allow" : "deny",
                                       "defaults.additional_properties");
                            default_additional_ = a;
                        });
                } else if (key != "track" && key != "identify" && key != "group" && key != "page" &&
                           key != "screen") {
                    unknown_key(k, "plan", key);
                }
            });
    }

    void read_yaml_sections(const YAML::Node& root) {
        each_entry(
            root, "plan",
            [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                if (key == "track" || key == "page" || key == "screen") {
                    read_named_list(key, v);
                } else if (key == "identify" || key == "group") {
                    read_single(key, k, v);
                }
            },
            false);
    }

    section& section_for(std::string_view key) {
        if (key == "track") return data_->track;
        if (key == "page") return data_->page;
        if (key == "screen") return data_->screen;
        if (key == "identify") return data_->identify;
        return data_->group;
    }

    void read_named_list(const std::string& kind, const YAML::Node& list) {
        section& sec = section_for(kind);
        sec.present = true;
        if (list.IsNull()) return;  // `track:` with nothing under it: every event is unplanned
        if (!list.IsSequence()) {
            err(list, fmt::format("{}: expected a list of events", kind));
            return;
        }
        for (std::size_t i = 0; i < list.size(); ++i) {
            const YAML::Node& e = list[i];
            std::string ctx = fmt::format("{}[{}]", kind, i);
            if (!need_map(e, ctx)) continue;
            auto spec = std::make_unique<event_spec>();
            const YAML::Node name_node = e["name"];
            if (!name_node) {
                err(e, fmt::format("{}: 'name' is required", ctx));
                continue;
            }
            if (!get_string(name_node, ctx + ".name", spec->name)) continue;
            spec->where = here(name_node);
            ctx = fmt::format("{} \"{}\"", kind, spec->name);
            read_event_body(*spec, e, ctx, "properties");
            add_named(sec, kind, std::move(spec), name_node);
        }
    }

    void add_named(section& sec, std::string_view kind, std::unique_ptr<event_spec> spec,
                   const YAML::Node& at) {
        auto it = sec.by_name.find(spec->name);
        if (it != sec.by_name.end()) {
            err(at, fmt::format("{} event '{}' is already defined at {}", kind, spec->name,
                                it->second->where));
            return;
        }
        const event_spec* p = spec.get();
        if (kind != "track" && spec->name == "*") {
            sec.wildcard = p;
        }
        sec.ordered.push_back(p);
        sec.by_name.emplace(p->name, std::move(spec));
    }

    void read_single(const std::string& kind, const YAML::Node& k, const YAML::Node& v) {
        section& sec = section_for(kind);
        if (sec.single) {
            err(k, fmt::format("{} is already defined at {}", kind, sec.single->where));
            return;
        }
        sec.present = true;
        auto spec = std::make_unique<event_spec>();
        spec->name = kind;
        spec->where = here(k);
        if (v.IsNull() || need_map(v, kind)) read_event_body(*spec, v, kind, "traits");
        sec.single = std::move(spec);
    }

    // The keys of one event entry; `body_key` is "properties" or "traits".
    void read_event_body(event_spec& spec, const YAML::Node& e, const std::string& ctx,
                         std::string_view body_key) {
        std::optional<additional> own_additional;
        std::optional<YAML::Node> body, schema;
        each_entry(e, ctx, [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
            if (key == "name" && body_key == "properties") {
                return;  // read by the caller
            } else if (key == "description") {
                get_string(v, ctx + ".description", spec.description);
            } else if (key == "owner") {
                get_string(v, ctx + ".owner", spec.owner);
            } else if (key == "additional_properties") {
                additional a = additional::allow;
                if (get_additional(v, ctx + ".additional_properties", a)) own_additional = a;
            } else if (key == body_key) {
                body = v;
            } else if (key == "schema") {
                schema = v;
            } else {
                unknown_key(k, ctx, key);
            }
        });
        spec.root.types = t_object;
        spec.root.type_text = "object";
        if (body && schema) {
            err(*schema, fmt::format("{}: set either '{}' or 'schema', not both", ctx, body_key));
            return;
        }
        if (schema) {
            if (own_additional) {
                err(*schema, fmt::format("{}: with 'schema', set additionalProperties inside the "
                                         "schema instead of additional_properties",
                                         ctx));
                return;
            }
            compile_root_schema(*schema, spec.root, ctx + " schema", std::string(body_key));
            return;
        }
        if (body && !body->IsNull()) {
            if (need_map(*body, ctx + "." + std::string(body_key))) {
                read_yaml_properties(*body, spec.root, ctx, std::string(body_key), 1);
            }
        }
        spec.root.additional_properties = own_additional.value_or(additional::inherit);
        resolve(spec.root, default_additional_, true);
    }

    // Counts one compiled node; false (with one error) once the budget is spent.
    bool take_node(const YAML::Node& v) {
        if (++nodes_ <= max_nodes) return true;
        if (nodes_ == max_nodes + 1) {
            err(v, fmt::format("the plan declares more than {} properties (YAML aliases?)",
                               max_nodes));
        }
        return false;
    }

    // Nested nodes without their own additional_properties inherit the enclosing setting, except
    // objects with no planned keys at all, which stay free-form.
    void resolve(node& n, additional inherited, bool is_root) {
        additional eff =
            n.additional_properties == additional::inherit ? inherited : n.additional_properties;
        if (n.additional_properties == additional::inherit) {
            n.additional_properties = (n.has_properties || is_root) ? eff : additional::allow;
        }
        for (auto& f : n.fields) resolve(f.schema, eff, false);
        if (n.items) resolve(*n.items, eff, false);
    }

    void read_yaml_properties(const YAML::Node& props, node& parent, const std::string& ctx,
                              const std::string& path, int depth) {
        parent.has_properties = true;
        each_entry(props, ctx + " " + path,
                   [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                       field f;
                       f.name = key;
                       std::string p = path + "." + key;
                       compile_yaml(v, f.schema, ctx, p, depth, &f.required);
                       add_field(parent, std::move(f));
                   });
    }

    static void add_field(node& parent, field f) {
        std::size_t i = parent.fields.size();
        if (f.required) parent.required.push_back(i);
        parent.field_index.emplace(f.name, i);
        parent.fields.push_back(std::move(f));
    }

    void parse_types(const YAML::Node& v, const std::string& c, node& out) {
        auto one = [&](const YAML::Node& t) {
            if (t.IsNull()) {
                out.types |= t_null;
                return;
            }
            if (!t.IsScalar()) {
                err(t, fmt::format("{}: expected a type name", c));
                return;
            }
            auto bit = type_from_name(t.Scalar());
            if (!bit) {
                err(t, fmt::format("{}: unknown type '{}' (expected string, number, integer, "
                                   "boolean, object, array or null)",
                                   c, t.Scalar()));
                return;
            }
            out.types |= *bit;
        };
        if (v.IsSequence()) {
            if (v.size() == 0) err(v, fmt::format("{}: the list of types is empty", c));
            for (std::size_t i = 0; i < v.size(); ++i) one(v[i]);
        } else {
            one(v);
        }
        out.type_text = describe_types(out.types);
    }

    void compile_pattern(const YAML::Node& v, const std::string& c, node& out) {
        std::string s;
        if (!get_string(v, c, s)) return;
        RE2::Options opts;
        opts.set_log_errors(false);
        auto re = std::make_unique<RE2>(s, opts);
        if (!re->ok()) {
            err(v, fmt::format("{}: invalid pattern '{}': {}", c, s, re->error()));
            return;
        }
        out.pattern_expected = "pattern " + s;
        out.pattern = std::move(re);
    }

    void compile_format(const YAML::Node& v, const std::string& c, node& out) {
        std::string s;
        if (!get_string(v, c, s)) return;
        auto f = format_from_name(s);
        if (!f) {
            err(v, fmt::format("{}: unsupported format '{}' (supported: date-time, email, uri, "
                               "uuid)",
                               c, s));
            return;
        }
        out.format = *f;
    }

    // Enum values keep their JSON type. In the YAML dialect a plain `1` or `true` in the enum of
    // a string-only property means the string, as a YAML author would expect.
    void compile_enum(const YAML::Node& v, const std::string& c, node& out, dialect d,
                      bool single) {
        auto e = std::make_unique<enum_values>();
        auto add = [&](const YAML::Node& item) {
            if (item.IsNull()) {
                e->allow_null = true;
                e->display.emplace_back("null");
                return;
            }
            if (!item.IsScalar()) {
                err(item, fmt::format("{}: enum values must be strings, numbers, booleans or "
                                      "null",
                                      c));
                return;
            }
            const std::string& s = item.Scalar();
            bool string_only = d == dialect::yaml && out.types != 0 &&
                               (out.types & (t_number | t_integer | t_boolean)) == 0;
            double num = 0;
            if (is_plain(item) && !string_only && (s == "true" || s == "false")) {
                (s == "true" ? e->allow_true : e->allow_false) = true;
            } else if (is_plain(item) && !string_only && parse_number(s, num)) {
                e->numbers.push_back(num);
            } else {
                e->strings.insert(s);
            }
            e->display.push_back(s);
        };
        if (single) {
            add(v);
        } else if (!v.IsSequence()) {
            err(v, fmt::format("{}: expected a list of values", c));
            return;
        } else {
            for (std::size_t i = 0; i < v.size(); ++i) add(v[i]);
        }
        e->expected = "one of [";
        for (std::size_t i = 0; i < e->display.size(); ++i) {
            if (i) e->expected += ", ";
            e->expected += e->display[i];
        }
        e->expected += ']';
        out.enums = std::move(e);
    }

    // Refuses constraints that can never apply to the declared types (a typo in the plan would
    // otherwise silently check nothing).
    void check_applicable(const YAML::Node& v, const std::string& c, const node& n) {
        if (n.types == 0) return;
        auto need = [&](bool present, std::uint8_t bits, std::string_view what,
                        std::string_view kind) {
            if (present && (n.types & bits) == 0) {
                err(v, fmt::format("{}: {} applies to {}, but the type is {}", c, what, kind,
                                   n.type_text));
            }
        };
        need(n.pattern != nullptr, t_string, "pattern", "strings");
        need(n.format != string_format::none, t_string, "format", "strings");
        need(n.min_length || n.max_length, t_string, "min_length/max_length", "strings");
        need(n.minimum || n.maximum, t_number | t_integer, "min/max", "numbers");
        need(n.min_items || n.max_items || n.items, t_array, "items/min_items/max_items", "arrays");
        need(n.has_properties, t_object, "properties", "objects");
        if (n.enums) {
            const auto& e = *n.enums;
            if (!e.strings.empty() && (n.types & t_string) == 0) {
                err(v, fmt::format("{}: enum has strings, but the type is {}", c, n.type_text));
            }
            if (!e.numbers.empty() && (n.types & (t_number | t_integer)) == 0) {
                err(v, fmt::format("{}: enum has numbers, but the type is {}", c, n.type_text));
            }
            if ((e.allow_true || e.allow_false) && (n.types & t_boolean) == 0) {
                err(v, fmt::format("{}: enum has booleans, but the type is {}", c, n.type_text));
            }
            if (e.allow_null && (n.types & t_null) == 0) {
                err(v, fmt::format("{}: enum has null, but the type is {}", c, n.type_text));
            }
        }
    }

    void check_ranges(const YAML::Node& v, const std::string& c, const node& n) {
        if (n.minimum && n.maximum && *n.minimum > *n.maximum) {
            err(v, fmt::format("{}: the minimum {} is greater than the maximum {}", c, *n.minimum,
                               *n.maximum));
        }
        if (n.min_length && n.max_length && *n.min_length > *n.max_length) {
            err(v, fmt::format("{}: min_length {} is greater than max_length {}", c, *n.min_length,
                               *n.max_length));
        }
        if (n.min_items && n.max_items && *n.min_items > *n.max_items) {
            err(v, fmt::format("{}: min_items {} is greater than max_items {}", c, *n.min_items,
                               *n.max_items));
        }
    }

    // One property (or `items`) in the YAML dialect. `required` is null where `required: true`
    // means nothing (array items).
    void compile_yaml(const YAML::Node& v, node& out, const std::string& ctx,
                      const std::string& path, int depth, bool* required) {
        std::string c = ctx + " " + path;
        if (depth > max_depth) {
            err(v, fmt::format("{}: nested deeper than {} levels", c, max_depth));
            return;
        }
        if (!take_node(v)) return;
        if (v.IsScalar()) {  // shorthand: `price: number`
            parse_types(v, c, out);
            return;
        }
        if (v.IsSequence()) {  // shorthand: `coupon: [string, "null"]`
            parse_types(v, c, out);
            return;
        }
        if (!need_map(v, c)) return;
        std::optional<YAML::Node> type_node, enum_node, props_node, items_node;
        each_entry(v, c, [&](const std::string& key, const YAML::Node& k, const YAML::Node& val) {
            std::string kc = c + "." + key;
            if (key == "type") {
                type_node = val;
            } else if (key == "required") {
                bool b = false;
                if (required == nullptr) {
                    err(k, fmt::format("{}: required applies only to object properties", c));
                } else if (get_bool(val, kc, b)) {
                    *required = b;
                }
            } else if (key == "description") {
                get_string(val, kc, out.description);
            } else if (key == "enum") {
                enum_node = val;
            } else if (key == "pattern") {
                compile_pattern(val, kc, out);
            } else if (key == "format") {
                compile_format(val, kc, out);
            } else if (key == "min" || key == "max" || key == "exclusive_min" ||
                       key == "exclusive_max") {
                double d = 0;
                if (!get_number(val, kc, d)) return;
                bool is_min = key == "min" || key == "exclusive_min";
                auto& slot = is_min ? out.minimum : out.maximum;
                if (slot) {
                    err(k, fmt::format("{}: set only one of {}", c,
                                       is_min ? "min and exclusive_min" : "max and exclusive_max"));
                    return;
                }
                slot = d;
                (is_min ? out.exclusive_minimum : out.exclusive_maximum) =
                    key.starts_with("exclusive");
            } else if (key == "min_length") {
                get_count(val, kc, out.min_length);
            } else if (key == "max_length") {
                get_count(val, kc, out.max_length);
            } else if (key == "min_items") {
                get_count(val, kc, out.min_items);
            } else if (key == "max_items") {
                get_count(val, kc, out.max_items);
            } else if (key == "properties") {
                props_node = val;
            } else if (key == "items") {
                items_node = val;
            } else if (key == "additional_properties") {
                get_additional(val, kc, out.additional_properties);
            } else {
                unknown_key(k, c, key);
            }
        });
        if (type_node) parse_types(*type_node, c + ".type", out);
        if (enum_node) compile_enum(*enum_node, c + ".enum", out, dialect::yaml, false);
        if (props_node && need_map(*props_node, c + ".properties")) {
            read_yaml_properties(*props_node, out, ctx, path, depth + 1);
        }
        if (items_node) {
            out.items = std::make_unique<node>();
            compile_yaml(*items_node, *out.items, ctx, path + "[]", depth + 1, nullptr);
        }
        if (out.additional_properties != additional::inherit && out.types != 0 &&
            (out.types & t_object) == 0) {
            err(v, fmt::format("{}: additional_properties applies to objects, but the type is {}",
                               c, out.type_text));
        }
        check_applicable(v, c, out);
        check_ranges(v, c, out);
    }

    // --- JSON Schema ----------------------------------------------------------------------

    // The schema of an event's properties/traits object.
    void compile_root_schema(const YAML::Node& v, node& root, const std::string& ctx,
                             const std::string& path) {
        if (!need_map(v, ctx)) return;
        compile_schema(v, root, ctx, path, 1);
        if (root.types != 0 && (root.types & t_object) == 0) {
            err(v, fmt::format("{}: the schema of {} must be an object schema", ctx, path));
        }
        root.types = t_object;
        root.type_text = "object";
    }

    void compile_schema(const YAML::Node& v, node& out, const std::string& ctx,
                        const std::string& path, int depth) {
        std::string c = ctx + " " + path;
        if (depth > max_depth) {
            err(v, fmt::format("{}: nested deeper than {} levels", c, max_depth));
            return;
        }
        if (!take_node(v) || !need_map(v, c)) return;
        // Absent additionalProperties means true in JSON Schema.
        out.additional_properties = additional::allow;
        std::optional<YAML::Node> props_node, required_node, enum_node, const_node, type_node;
        std::optional<double> excl_min, excl_max;
        std::optional<bool> draft4_excl_min, draft4_excl_max;
        each_entry(v, c, [&](const std::string& key, const YAML::Node& k, const YAML::Node& val) {
            std::string kc = c + "." + key;
            if (is_annotation(key)) return;
            if (key == "type") {
                type_node = val;
            } else if (key == "description") {
                get_string(val, kc, out.description);
            } else if (key == "properties") {
                props_node = val;
            } else if (key == "required") {
                required_node = val;
            } else if (key == "enum") {
                enum_node = val;
            } else if (key == "const") {
                const_node = val;
            } else if (key == "pattern") {
                compile_pattern(val, kc, out);
            } else if (key == "format") {
                compile_format(val, kc, out);
            } else if (key == "minimum") {
                double d = 0;
                if (get_number(val, kc, d)) out.minimum = d;
            } else if (key == "maximum") {
                double d = 0;
                if (get_number(val, kc, d)) out.maximum = d;
            } else if (key == "exclusiveMinimum" || key == "exclusiveMaximum") {
                bool is_min = key == "exclusiveMinimum";
                double d = 0;
                if (val.IsScalar() && is_plain(val) &&
                    (val.Scalar() == "true" || val.Scalar() == "false")) {
                    // draft-04: a boolean modifying minimum/maximum
                    (is_min ? draft4_excl_min : draft4_excl_max) = val.Scalar() == "true";
                } else if (get_number(val, kc, d)) {
                    (is_min ? excl_min : excl_max) = d;
                }
            } else if (key == "minLength") {
                get_count(val, kc, out.min_length);
            } else if (key == "maxLength") {
                get_count(val, kc, out.max_length);
            } else if (key == "minItems") {
                get_count(val, kc, out.min_items);
            } else if (key == "maxItems") {
                get_count(val, kc, out.max_items);
            } else if (key == "items") {
                if (!val.IsMap()) {
                    err(val, fmt::format("{}: only a single schema is supported for items (not "
                                         "a list of schemas)",
                                         kc));
                    return;
                }
                out.items = std::make_unique<node>();
                compile_schema(val, *out.items, ctx, path + "[]", depth + 1);
            } else if (key == "additionalProperties") {
                bool b = true;
                if (!val.IsScalar()) {
                    err(val, fmt::format("{}: only true or false is supported (not a schema)", kc));
                } else if (get_bool(val, kc, b)) {
                    out.additional_properties = b ? additional::allow : additional::deny;
                }
            } else {
                err(k, fmt::format("{}: unsupported JSON Schema keyword '{}'", c, key));
            }
        });
        if (type_node) parse_types(*type_node, c + ".type", out);
        if (draft4_excl_min.value_or(false) && out.minimum) out.exclusive_minimum = true;
        if (draft4_excl_max.value_or(false) && out.maximum) out.exclusive_maximum = true;
        // Both minimum and exclusiveMinimum: keep the stricter bound.
        if (excl_min && (!out.minimum || *excl_min >= *out.minimum)) {
            out.minimum = excl_min;
            out.exclusive_minimum = true;
        }
        if (excl_max && (!out.maximum || *excl_max <= *out.maximum)) {
            out.maximum = excl_max;
            out.exclusive_maximum = true;
        }
        if (enum_node && const_node) {
            err(*const_node, fmt::format("{}: set either enum or const, not both", c));
        } else if (enum_node) {
            compile_enum(*enum_node, c + ".enum", out, dialect::json_schema, false);
        } else if (const_node) {
            compile_enum(*const_node, c + ".const", out, dialect::json_schema, true);
        }
        if (props_node && need_map(*props_node, c + ".properties")) {
            out.has_properties = true;
            each_entry(*props_node, c + ".properties",
                       [&](const std::string& key, const YAML::Node&, const YAML::Node& pv) {
                           field f;
                           f.name = key;
                           compile_schema(pv, f.schema, ctx, path + "." + key, depth + 1);
                           add_field(out, std::move(f));
                       });
        }
        if (required_node) {
            const YAML::Node& req = *required_node;
            if (!req.IsSequence()) {
                err(req, fmt::format("{}.required: expected a list of names", c));
            } else {
                for (std::size_t i = 0; i < req.size(); ++i) {
                    std::string name;
                    if (!get_string(req[i], c + ".required", name)) continue;
                    auto it = out.field_index.find(name);
                    if (it == out.field_index.end()) {
                        // Required but not described: any value, but it must be there.
                        field f;
                        f.name = name;
                        f.required = true;
                        add_field(out, std::move(f));
                    } else if (!out.fields[it->second].required) {
                        out.fields[it->second].required = true;
                        out.required.push_back(it->second);
                    }
                }
                std::sort(out.required.begin(), out.required.end());
            }
        }
        check_ranges(v, c, out);
    }

    // --- JSON files -----------------------------------------------------------------------

    // A Segment Protocols export has `rules`; anything else is one draft-07 schema.
    void read_json_header(const YAML::Node& root) {
        const YAML::Node& r = root;
        if (!r["rules"]) return;
        for (const char* key : {"display_name", "name"}) {
            const YAML::Node n = r[key];
            if (n && n.IsScalar()) {
                set_header(name_, n, n.Scalar(), "name");
                break;
            }
        }
        for (const char* key : {"version", "update_time"}) {
            const YAML::Node n = r[key];
            if (n && n.IsScalar()) {
                set_header(version_, n, n.Scalar(), "version");
                break;
            }
        }
    }

    void read_json_file(const YAML::Node& root) {
        const YAML::Node& r = root;
        if (r["rules"]) {
            read_segment_export(root);
        } else {
            read_bare_schema(root);
        }
    }

    void read_segment_export(const YAML::Node& root) {
        YAML::Node rules;  // present: the caller saw `rules`
        each_entry(root, "export",
                   [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                       if (key == "rules") {
                           rules = v;
                       } else if (key == "description") {
                           std::string s;
                           if (get_string(v, "description", s)) data_->description = s;
                       } else if (key != "name" && key != "display_name" && key != "version" &&
                                  key != "create_time" && key != "update_time" && key != "id" &&
                                  key != "workspace_id") {
                           unknown_key(k, "export", key);
                       }
                   });
        if (!need_map(rules, "rules")) return;
        each_entry(
            rules, "rules", [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                if (key == "events") {
                    read_export_events(v);
                } else if (key == "identify" || key == "group") {
                    section& sec = section_for(key);
                    if (sec.single) {
                        err(v, fmt::format("{} is already defined at {}", key, sec.single->where));
                        return;
                    }
                    sec.present = true;
                    auto spec = std::make_unique<event_spec>();
                    spec->name = key;
                    spec->where = here(v);
                    read_call_schema(v, *spec, "rules." + key, "traits");
                    sec.single = std::move(spec);
                } else if (key == "global") {
                    check_trivial_call_schema(v, "rules.global");
                } else {
                    unknown_key(k, "rules", key);
                }
            });
    }

    void read_export_events(const YAML::Node& list) {
        section& sec = data_->track;
        sec.present = true;
        if (!list.IsSequence()) {
            err(list, "rules.events: expected a list");
            return;
        }
        for (std::size_t i = 0; i < list.size(); ++i) {
            const YAML::Node& e = list[i];
            std::string ctx = fmt::format("rules.events[{}]", i);
            if (!need_map(e, ctx)) continue;
            auto spec = std::make_unique<event_spec>();
            const YAML::Node name_node = e["name"];
            if (!name_node) {
                err(e, fmt::format("{}: 'name' is required", ctx));
                continue;
            }
            if (!get_string(name_node, ctx + ".name", spec->name)) continue;
            spec->where = here(name_node);
            std::string ectx = fmt::format("track \"{}\"", spec->name);
            std::optional<YAML::Node> rules;
            each_entry(e, ectx,
                       [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                           if (key == "description") {
                               get_string(v, ectx + ".description", spec->description);
                           } else if (key == "rules") {
                               rules = v;
                           } else if (key != "name" && key != "version" && key != "labels") {
                               unknown_key(k, ectx, key);
                           }
                       });
            spec->root.types = t_object;
            spec->root.type_text = "object";
            spec->root.additional_properties = additional::allow;
            if (rules) read_call_schema(*rules, *spec, ectx + " rules", "properties");
            add_named(sec, "track", std::move(spec), name_node);
        }
    }

    // A schema of a whole call ({properties: {properties|traits: {...}, context: ...}}): the
    // member named `body` becomes the event's schema; the others must place no constraint.
    void read_call_schema(const YAML::Node& v, event_spec& spec, const std::string& ctx,
                          const std::string& body) {
        spec.root.types = t_object;
        spec.root.type_text = "object";
        spec.root.additional_properties = additional::allow;
        if (!need_map(v, ctx)) return;
        each_entry(v, ctx, [&](const std::string& key, const YAML::Node& k, const YAML::Node& val) {
            if (is_annotation(key) || key == "required" || key == "description") return;
            if (key == "type") {
                if (!val.IsScalar() || val.Scalar() != "object") {
                    err(val, fmt::format("{}.type: a call's schema must be of type object", ctx));
                }
            } else if (key == "properties") {
                if (!need_map(val, ctx + ".properties")) return;
                each_entry(val, ctx + ".properties",
                           [&](const std::string& member, const YAML::Node&, const YAML::Node& mv) {
                               if (member == body) {
                                   compile_root_schema(mv, spec.root, ctx, body);
                               } else {
                                   check_trivial(mv, ctx + ".properties." + member);
                               }
                           });
            } else {
                err(k, fmt::format("{}: unsupported JSON Schema keyword '{}'", ctx, key));
            }
        });
    }

    void check_trivial_call_schema(const YAML::Node& v, const std::string& ctx) {
        if (!need_map(v, ctx)) return;
        each_entry(v, ctx, [&](const std::string& key, const YAML::Node& k, const YAML::Node& val) {
            if (is_annotation(key) || key == "type" || key == "description" || key == "required") {
                return;
            }
            if (key == "properties" && val.IsMap()) {
                for (const auto& kv : val) {
                    check_trivial(kv.second, ctx + ".properties." + kv.first.Scalar());
                }
                return;
            }
            err(k, fmt::format("{}: unsupported JSON Schema keyword '{}'", ctx, key));
        });
    }

    // Rules on context (or on traits of a track call) are not supported: refuse any that
    // constrain something, accept the empty placeholders exports carry.
    void check_trivial(const YAML::Node& v, const std::string& ctx) {
        bool trivial = v.IsMap();
        if (trivial) {
            for (const auto& kv : v) {
                const std::string& k = kv.first.Scalar();
                if (is_annotation(k) || k == "description" ||
                    (k == "type" && kv.second.IsScalar() && kv.second.Scalar() == "object")) {
                    continue;
                }
                if ((k == "properties" && kv.second.IsMap() && kv.second.size() == 0) ||
                    (k == "required" && kv.second.IsSequence() && kv.second.size() == 0)) {
                    continue;
                }
                trivial = false;
            }
        }
        if (!trivial) {
            err(v, fmt::format("{}: rules here are not supported (only the call's properties or "
                               "traits are checked)",
                               ctx));
        }
    }

    // One draft-07 schema, its title the event name: either of the properties object or, when
    // its only members are properties/traits/context objects, of the whole call.
    void read_bare_schema(const YAML::Node& root) {
        const YAML::Node& r = root;
        const YAML::Node title = r["title"];
        if (!title || !title.IsScalar() || title.Scalar().empty()) {
            err(root,
                "a JSON Schema file needs a title (the event name) or a Segment Protocols "
                "export's 'rules'");
            return;
        }
        auto spec = std::make_unique<event_spec>();
        spec->name = title.Scalar();
        spec->where = here(root);
        const YAML::Node desc = r["description"];
        if (desc && desc.IsScalar()) spec->description = desc.Scalar();
        std::string ctx = fmt::format("track \"{}\"", spec->name);
        bool whole_call = false;
        const YAML::Node props = r["properties"];
        if (props && props.IsMap() && props.size() > 0) {
            whole_call = true;
            for (const auto& kv : props) {
                const std::string& k = kv.first.Scalar();
                if ((k != "properties" && k != "traits" && k != "context") || !kv.second.IsMap()) {
                    whole_call = false;
                    continue;
                }
                const YAML::Node& value = kv.second;
                const YAML::Node t = value["type"];
                if (!t || !t.IsScalar() || t.Scalar() != "object") whole_call = false;
            }
            if (!props["properties"]) whole_call = false;
        }
        if (whole_call) {
            read_call_schema(root, *spec, ctx, "properties");
        } else {
            compile_root_schema(root, spec->root, ctx, "properties");
        }
        data_->track.present = true;
        add_named(data_->track, "track", std::move(spec), title);
    }

    std::vector<std::string>& errors_;
    std::size_t errors_before_;
    std::vector<doc> docs_;
    std::string file_;
    std::unique_ptr<plan_data> data_ = std::make_unique<plan_data>();
    std::optional<header_value> name_, version_, defaults_;
    std::size_t nodes_ = 0;
    additional default_additional_ = additional::allow;
};

std::string stem_of(std::string_view file) {
    return std::filesystem::path(std::string(file)).stem().string();
}

}  // namespace

std::shared_ptr<const compiled_plan> load_plan(const std::vector<std::string>& files,
                                               std::vector<std::string>& errors,
                                               std::string_view name) {
    std::size_t before = errors.size();
    builder b(errors);
    if (files.empty()) {
        errors.push_back("no plan files given");
        return nullptr;
    }
    for (const auto& f : files) {
        std::string text, err;
        if (!util::read_file(f, text, err)) {
            errors.push_back(std::move(err));
            continue;
        }
        b.add_document(f, std::move(text));
    }
    std::string fallback = name.empty() ? stem_of(files.front()) : std::string(name);
    auto plan = b.finish(fallback);
    return errors.size() == before ? plan : nullptr;
}

std::shared_ptr<const compiled_plan> load_plan_text(std::string_view text, std::string_view file,
                                                    std::vector<std::string>& errors) {
    std::size_t before = errors.size();
    builder b(errors);
    b.add_document(std::string(file), text);
    auto plan = b.finish(stem_of(file));
    return errors.size() == before ? plan : nullptr;
}

}  // namespace switchyard::plan
