// Validation of canonical events against a compiled plan, and the `omit` rewrite.
#include "plan/schema.h"
#include "switchyard/event.h"
#include "util/json.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <array>
#include <cmath>
#include <map>

namespace switchyard::plan {

namespace dom = simdjson::dom;
using namespace detail;

namespace {

constexpr std::array<std::string_view, 5> kind_names = {
    "unplanned_event", "missing_required", "wrong_type", "unplanned_property", "bad_value"};

// Long strings are cut in messages so a violation stays small whatever the event carries.
constexpr std::size_t max_shown_bytes = 64;

// Keys that can be written after a '.' and read back unambiguously.
bool plain_key(std::string_view k) noexcept {
    if (k.empty()) return false;
    for (char ch : k) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == '.' || c == '[' || c == ']' || c == '"' || c == '\\') return false;
    }
    return true;
}

void append_key(std::string& path, std::string_view key) {
    if (plain_key(key)) {
        if (!path.empty()) path += '.';
        path += key;
    } else {
        path += '[';
        util::append_json_string(path, key);
        path += ']';
    }
}

// One step of the path being walked; rendered only when a violation is reported, so the valid
// path allocates nothing.
struct segment {
    std::string_view key;
    std::size_t index = 0;
    bool is_index = false;
};

std::string render_path(const std::vector<segment>& segs,
                        std::optional<std::string_view> last_key = std::nullopt) {
    std::string p;
    for (const auto& s : segs) {
        if (s.is_index) {
            fmt::format_to(std::back_inserter(p), "[{}]", s.index);
        } else {
            append_key(p, s.key);
        }
    }
    if (last_key) append_key(p, *last_key);
    return p;
}

// Cuts `s` to at most max_shown_bytes without splitting a UTF-8 sequence.
std::string_view shown(std::string_view s, bool& cut) noexcept {
    cut = s.size() > max_shown_bytes;
    if (!cut) return s;
    std::size_t n = max_shown_bytes;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n);
}

std::string describe_value(dom::element v) {
    switch (v.type()) {
        case dom::element_type::STRING: {
            std::string_view s = v.get_string().value_unsafe();
            bool cut = false;
            std::string out = "string ";
            util::append_json_string(out, shown(s, cut));
            if (cut) out += "...";
            return out;
        }
        case dom::element_type::INT64:
            return fmt::format("number {}", v.get_int64().value_unsafe());
        case dom::element_type::UINT64:
            return fmt::format("number {}", v.get_uint64().value_unsafe());
        case dom::element_type::DOUBLE:
            return fmt::format("number {}", v.get_double().value_unsafe());
        case dom::element_type::BOOL:
            return v.get_bool().value_unsafe() ? "boolean true" : "boolean false";
        case dom::element_type::NULL_VALUE:
            return "null";
        case dom::element_type::OBJECT:
            return "object";
        case dom::element_type::ARRAY:
            return "array";
    }
    return "unknown";
}

double number_of(dom::element v) noexcept {
    switch (v.type()) {
        case dom::element_type::INT64:
            return static_cast<double>(v.get_int64().value_unsafe());
        case dom::element_type::UINT64:
            return static_cast<double>(v.get_uint64().value_unsafe());
        default:
            return v.get_double().value_unsafe();
    }
}

std::uint8_t type_bits_of(dom::element v) noexcept {
    switch (v.type()) {
        case dom::element_type::STRING:
            return t_string;
        case dom::element_type::INT64:
        case dom::element_type::UINT64:
            return t_number | t_integer;
        case dom::element_type::DOUBLE: {
            // JSON Schema (draft-06 on) counts 2.0 as an integer: the type is about the value.
            double d = v.get_double().value_unsafe();
            return std::isfinite(d) && std::floor(d) == d ? (t_number | t_integer) : t_number;
        }
        case dom::element_type::BOOL:
            return t_boolean;
        case dom::element_type::NULL_VALUE:
            return t_null;
        case dom::element_type::OBJECT:
            return t_object;
        case dom::element_type::ARRAY:
            return t_array;
    }
    return 0;
}

bool enum_matches(const enum_values& e, dom::element v) {
    switch (v.type()) {
        case dom::element_type::STRING: {
            std::string_view s = v.get_string().value_unsafe();
            return e.strings.find(s) != e.strings.end();
        }
        case dom::element_type::INT64:
        case dom::element_type::UINT64:
        case dom::element_type::DOUBLE: {
            double d = number_of(v);
            for (double n : e.numbers) {
                if (n == d) return true;
            }
            return false;
        }
        case dom::element_type::BOOL:
            return v.get_bool().value_unsafe() ? e.allow_true : e.allow_false;
        case dom::element_type::NULL_VALUE:
            return e.allow_null;
        default:
            return false;
    }
}

std::string format_number(double d) { return fmt::format("{}", d); }

std::string counted(std::string_view what, std::size_t n, std::string_view unit) {
    return fmt::format("{} of {} {}{}", what, n, unit, n == 1 ? "" : "s");
}

// Walks one event against one event_spec. Lives for one validate() call.
class walker {
  public:
    walker(std::vector<segment>& path, std::vector<violation>& out) : path_(path), out_(out) {}

    void check(const node& n, dom::element v) {
        std::uint8_t bits = type_bits_of(v);
        if (n.types != 0 && (n.types & bits) == 0) {
            report(violation_kind::wrong_type, n.type_text, describe_value(v));
            return;
        }
        if (n.enums && !enum_matches(*n.enums, v)) {
            report(violation_kind::bad_value, n.enums->expected, describe_value(v));
        }
        switch (v.type()) {
            case dom::element_type::STRING:
                check_string(n, v);
                break;
            case dom::element_type::INT64:
            case dom::element_type::UINT64:
            case dom::element_type::DOUBLE:
                check_number(n, v);
                break;
            case dom::element_type::OBJECT:
                check_object(n, v.get_object().value_unsafe());
                break;
            case dom::element_type::ARRAY:
                check_array(n, v.get_array().value_unsafe());
                break;
            default:
                break;
        }
    }

    // `o` is null when the event has no properties/traits object at all: only `required` applies.
    void check_object(const node& n, const dom::object* o) {
        const bool deny = n.additional_properties == additional::deny;
        if (o == nullptr) {
            for (std::size_t i : n.required) missing(n.fields[i].name);
            return;
        }
        if (n.fields.empty() && !deny) return;
        // Which fields were present: a bit mask for the usual small objects, a vector beyond.
        std::uint64_t seen_mask = 0;
        std::vector<bool> seen_big;
        const bool big = n.fields.size() > 64;
        if (big) seen_big.resize(n.fields.size());
        for (auto [key, value] : *o) {
            auto it = n.field_index.find(key);
            if (it == n.field_index.end()) {
                if (deny) {
                    out_.push_back({render_path(path_, key), violation_kind::unplanned_property,
                                    "planned property", std::string(key)});
                }
                continue;
            }
            if (big) {
                seen_big[it->second] = true;
            } else {
                seen_mask |= std::uint64_t{1} << it->second;
            }
            path_.push_back({key, 0, false});
            check(n.fields[it->second].schema, value);
            path_.pop_back();
        }
        for (std::size_t i : n.required) {
            if (!(big ? seen_big[i] : (seen_mask & (std::uint64_t{1} << i)) != 0)) {
                missing(n.fields[i].name);
            }
        }
    }

  private:
    void check_object(const node& n, dom::object o) { check_object(n, &o); }

    void missing(std::string_view name) {
        out_.push_back(
            {render_path(path_, name), violation_kind::missing_required, "required", "missing"});
    }

    void check_string(const node& n, dom::element v) {
        std::string_view s = v.get_string().value_unsafe();
        if (n.pattern && !RE2::PartialMatch(s, *n.pattern)) {
            report(violation_kind::bad_value, n.pattern_expected, describe_value(v));
        }
        if (n.format != string_format::none && !check_format(n.format, s)) {
            report(violation_kind::bad_value, fmt::format("format {}", format_name(n.format)),
                   describe_value(v));
        }
        if (n.min_length || n.max_length) {
            std::size_t len = utf8_length(s);
            if (n.min_length && len < *n.min_length) {
                report(violation_kind::bad_value, fmt::format("min_length {}", *n.min_length),
                       counted("string", len, "character"));
            }
            if (n.max_length && len > *n.max_length) {
                report(violation_kind::bad_value, fmt::format("max_length {}", *n.max_length),
                       counted("string", len, "character"));
            }
        }
    }

    void check_number(const node& n, dom::element v) {
        if (!n.minimum && !n.maximum) return;
        double d = number_of(v);
        if (n.minimum && (n.exclusive_minimum ? !(d > *n.minimum) : !(d >= *n.minimum))) {
            report(violation_kind::bad_value,
                   fmt::format("{} {}", n.exclusive_minimum ? "exclusive minimum" : "minimum",
                               format_number(*n.minimum)),
                   describe_value(v));
        }
        if (n.maximum && (n.exclusive_maximum ? !(d < *n.maximum) : !(d <= *n.maximum))) {
            report(violation_kind::bad_value,
                   fmt::format("{} {}", n.exclusive_maximum ? "exclusive maximum" : "maximum",
                               format_number(*n.maximum)),
                   describe_value(v));
        }
    }

    void check_array(const node& n, dom::array a) {
        if (n.min_items || n.max_items) {
            std::size_t count = a.size();
            if (n.min_items && count < *n.min_items) {
                report(violation_kind::bad_value, fmt::format("min_items {}", *n.min_items),
                       counted("array", count, "item"));
            }
            if (n.max_items && count > *n.max_items) {
                report(violation_kind::bad_value, fmt::format("max_items {}", *n.max_items),
                       counted("array", count, "item"));
            }
        }
        if (!n.items) return;
        std::size_t i = 0;
        for (dom::element e : a) {
            path_.push_back({{}, i++, true});
            check(*n.items, e);
            path_.pop_back();
        }
    }

    void report(violation_kind k, std::string_view expected, std::string actual) {
        out_.push_back({render_path(path_), k, std::string(expected), std::move(actual)});
    }

    std::vector<segment>& path_;
    std::vector<violation>& out_;
};

// --- omit -------------------------------------------------------------------------------------

// Reads a violation path back into segments; nullopt when it is not one we wrote.
struct path_part {
    std::string key;
    std::size_t index = 0;
    bool is_index = false;
};

bool read_json_string(std::string_view s, std::size_t& i, std::string& out) {
    // s[i] == '"'
    ++i;
    while (i < s.size()) {
        char c = s[i++];
        if (c == '"') return true;
        if (c != '\\') {
            out += c;
            continue;
        }
        if (i >= s.size()) return false;
        char e = s[i++];
        switch (e) {
            case '"':
            case '\\':
            case '/':
                out += e;
                break;
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'u': {
                // Our paths escape only control characters with \u, so one unit is enough.
                if (i + 4 > s.size()) return false;
                unsigned v = 0;
                for (int k = 0; k < 4; ++k) {
                    char h = s[i++];
                    v <<= 4;
                    if (h >= '0' && h <= '9') {
                        v |= static_cast<unsigned>(h - '0');
                    } else if (h >= 'a' && h <= 'f') {
                        v |= static_cast<unsigned>(h - 'a' + 10);
                    } else if (h >= 'A' && h <= 'F') {
                        v |= static_cast<unsigned>(h - 'A' + 10);
                    } else {
                        return false;
                    }
                }
                if (v >= 0x80) return false;
                out += static_cast<char>(v);
                break;
            }
            default:
                return false;
        }
    }
    return false;
}

std::optional<std::vector<path_part>> parse_path(std::string_view s) {
    std::vector<path_part> parts;
    std::size_t i = 0;
    auto read_plain = [&] {
        std::size_t start = i;
        while (i < s.size() && s[i] != '.' && s[i] != '[') ++i;
        return std::string(s.substr(start, i - start));
    };
    if (s.empty()) return std::nullopt;
    if (s[0] != '[') {
        parts.push_back({read_plain(), 0, false});
        if (parts.back().key.empty()) return std::nullopt;
    }
    while (i < s.size()) {
        if (s[i] == '.') {
            ++i;
            parts.push_back({read_plain(), 0, false});
            if (parts.back().key.empty()) return std::nullopt;
        } else if (s[i] == '[') {
            ++i;
            if (i < s.size() && s[i] == '"') {
                path_part p;
                if (!read_json_string(s, i, p.key)) return std::nullopt;
                parts.push_back(std::move(p));
            } else {
                std::size_t n = 0;
                std::size_t start = i;
                while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
                    n = n * 10 + static_cast<std::size_t>(s[i] - '0');
                    ++i;
                }
                if (i == start) return std::nullopt;
                parts.push_back({{}, n, true});
            }
            if (i >= s.size() || s[i] != ']') return std::nullopt;
            ++i;
        } else {
            return std::nullopt;
        }
    }
    return parts;
}

struct omit_node {
    bool remove = false;
    std::map<std::string, omit_node, std::less<>> keys;
    std::map<std::size_t, omit_node> items;
};

void write_scalar(dom::element e, std::string& out, simdjson::internal::string_builder<>& sb) {
    sb.clear();
    sb.append(e);
    out += sb.str();
}

void write_omitting(dom::element e, const omit_node* t, std::string& out,
                    simdjson::internal::string_builder<>& sb) {
    if (t == nullptr) {
        write_scalar(e, out, sb);
        return;
    }
    if (e.type() == dom::element_type::OBJECT) {
        out += '{';
        bool first = true;
        dom::object obj = e.get_object().value_unsafe();
        for (auto [k, v] : obj) {
            auto it = t->keys.find(k);
            const omit_node* child = it == t->keys.end() ? nullptr : &it->second;
            if (child != nullptr && child->remove) continue;
            if (!first) out += ',';
            first = false;
            util::append_json_string(out, k);
            out += ':';
            write_omitting(v, child, out, sb);
        }
        out += '}';
    } else if (e.type() == dom::element_type::ARRAY) {
        out += '[';
        bool first = true;
        std::size_t i = 0;
        dom::array arr = e.get_array().value_unsafe();
        for (dom::element v : arr) {
            auto it = t->items.find(i++);
            const omit_node* child = it == t->items.end() ? nullptr : &it->second;
            if (child != nullptr && child->remove) continue;
            if (!first) out += ',';
            first = false;
            write_omitting(v, child, out, sb);
        }
        out += ']';
    } else {
        write_scalar(e, out, sb);
    }
}

}  // namespace

std::string_view to_string(violation_kind k) noexcept {
    auto i = static_cast<std::size_t>(k);
    return i < kind_names.size() ? kind_names[i] : "unknown";
}

std::optional<violation_kind> violation_kind_from_string(std::string_view s) noexcept {
    for (std::size_t i = 0; i < kind_names.size(); ++i) {
        if (kind_names[i] == s) return static_cast<violation_kind>(i);
    }
    return std::nullopt;
}

void append_violations_json(const std::vector<violation>& v, std::string& out) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        out += "{\"path\":";
        util::append_json_string(out, v[i].path);
        out += ",\"kind\":";
        util::append_json_string(out, to_string(v[i].kind));
        out += ",\"expected\":";
        util::append_json_string(out, v[i].expected);
        out += ",\"actual\":";
        util::append_json_string(out, v[i].actual);
        out += '}';
    }
    out += ']';
}

compiled_plan::compiled_plan(std::unique_ptr<const plan_data> data) : data_(std::move(data)) {}
compiled_plan::~compiled_plan() = default;

const std::string& compiled_plan::name() const noexcept { return data_->name; }
const std::string& compiled_plan::version() const noexcept { return data_->version; }

std::size_t compiled_plan::event_count() const noexcept {
    const plan_data& d = *data_;
    return d.track.ordered.size() + d.page.ordered.size() + d.screen.ordered.size() +
           (d.identify.single ? 1 : 0) + (d.group.single ? 1 : 0);
}

bool compiled_plan::validate(std::string_view event_json, std::vector<violation>& out) const {
    thread_local dom::parser parser;
    thread_local std::vector<segment> path;
    dom::element root;
    if (parser.parse(event_json.data(), event_json.size(), true).get(root) != simdjson::SUCCESS) {
        return false;
    }
    dom::object obj;
    if (root.get(obj) != simdjson::SUCCESS) return false;

    std::string_view type_text;
    if (obj.at_key("type").get(type_text) != simdjson::SUCCESS) return true;
    const plan_data& d = *data_;
    const section* sec = nullptr;
    std::string_view body_key = "properties";
    std::string_view name_key;
    switch (event_type_from_string(type_text)) {
        case event_type::track:
            sec = &d.track;
            name_key = "event";
            break;
        case event_type::page:
            sec = &d.page;
            name_key = "name";
            break;
        case event_type::screen:
            sec = &d.screen;
            name_key = "name";
            break;
        case event_type::identify:
            sec = &d.identify;
            body_key = "traits";
            break;
        case event_type::group:
            sec = &d.group;
            body_key = "traits";
            break;
        default:
            return true;  // alias and unknown types are never checked
    }
    if (!sec->present) return true;

    const event_spec* spec = sec->single.get();
    if (spec == nullptr) {
        std::string_view name;
        if (obj.at_key(name_key).get(name) != simdjson::SUCCESS) name = {};
        auto it = sec->by_name.find(name);
        spec = it != sec->by_name.end() ? it->second.get() : sec->wildcard;
        if (spec == nullptr) {
            out.push_back(
                {"", violation_kind::unplanned_event, "planned event", std::string(name)});
            return true;
        }
    }

    path.clear();
    path.push_back({body_key, 0, false});
    walker w(path, out);
    dom::element body;
    if (obj.at_key(body_key).get(body) != simdjson::SUCCESS || body.is_null()) {
        w.check_object(spec->root, nullptr);
    } else if (body.type() != dom::element_type::OBJECT) {
        out.push_back(
            {std::string(body_key), violation_kind::wrong_type, "object", describe_value(body)});
    } else {
        dom::object o = body.get_object().value_unsafe();
        w.check_object(spec->root, &o);
    }
    return true;
}

std::string compiled_plan::omit(std::string_view event_json,
                                const std::vector<violation>& v) const {
    omit_node root;
    bool any = false;
    for (const auto& x : v) {
        if (x.kind != violation_kind::wrong_type && x.kind != violation_kind::unplanned_property &&
            x.kind != violation_kind::bad_value) {
            continue;
        }
        auto parts = parse_path(x.path);
        // Only properties/traits members: the path must name something below them.
        if (!parts || parts->size() < 2 || parts->front().is_index ||
            (parts->front().key != "properties" && parts->front().key != "traits")) {
            continue;
        }
        omit_node* n = &root;
        for (const auto& p : *parts) {
            n = p.is_index ? &n->items[p.index] : &n->keys[p.key];
            if (n->remove) break;  // an ancestor is already removed
        }
        n->remove = true;
        any = true;
    }
    if (!any) return std::string(event_json);

    thread_local dom::parser parser;
    thread_local simdjson::internal::string_builder<> sb;
    dom::element doc;
    if (parser.parse(event_json.data(), event_json.size(), true).get(doc) != simdjson::SUCCESS ||
        doc.type() != dom::element_type::OBJECT) {
        return std::string(event_json);
    }
    std::string out;
    out.reserve(event_json.size());
    write_omitting(doc, &root, out, sb);
    return out;
}

namespace detail {

std::size_t utf8_length(std::string_view s) noexcept {
    std::size_t n = 0;
    for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
}

}  // namespace detail

}  // namespace switchyard::plan
