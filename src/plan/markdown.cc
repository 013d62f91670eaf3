// Markdown documentation of a compiled plan (`switchyard plan docs`).
#include "plan/schema.h"

#include <fmt/format.h>

namespace switchyard::plan {

using namespace detail;

namespace {

// Table cells: a '|' would end the cell and a newline the row.
std::string cell(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '|') {
            out += "\\|";
        } else if (c == '\n' || c == '\r') {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

std::string code(std::string_view s) {
    // A backtick inside would end the span; a double-backtick span with spaces holds one.
    if (s.find('`') != std::string_view::npos) return fmt::format("`` {} ``", s);
    return fmt::format("`{}`", s);
}

std::string number(double d) { return fmt::format("{}", d); }

std::string constraints(const node& n) {
    std::vector<std::string> parts;
    if (n.enums) {
        std::string s = "one of ";
        for (std::size_t i = 0; i < n.enums->display.size(); ++i) {
            if (i) s += ", ";
            s += code(n.enums->display[i]);
        }
        parts.push_back(std::move(s));
    }
    if (n.pattern) parts.push_back("pattern " + code(n.pattern->pattern()));
    if (n.format != string_format::none) {
        parts.push_back(fmt::format("format {}", format_name(n.format)));
    }
    if (n.minimum) {
        parts.push_back(fmt::format("{} {}", n.exclusive_minimum ? ">" : ">=", number(*n.minimum)));
    }
    if (n.maximum) {
        parts.push_back(fmt::format("{} {}", n.exclusive_maximum ? "<" : "<=", number(*n.maximum)));
    }
    if (n.min_length) parts.push_back(fmt::format("min length {}", *n.min_length));
    if (n.max_length) parts.push_back(fmt::format("max length {}", *n.max_length));
    if (n.min_items) parts.push_back(fmt::format("min items {}", *n.min_items));
    if (n.max_items) parts.push_back(fmt::format("max items {}", *n.max_items));
    if (n.has_properties && n.additional_properties == additional::deny) {
        parts.emplace_back("no unplanned keys");
    }
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i) out += "; ";
        out += parts[i];
    }
    return out;
}

void rows(const node& n, const std::string& prefix, std::string& out) {
    for (const auto& f : n.fields) {
        std::string p = prefix.empty() ? f.name : prefix + "." + f.name;
        out += fmt::format("| {} | {} | {} | {} | {} |\n", cell(code(p)),
                           cell(f.schema.type_text.empty() ? "any" : f.schema.type_text),
                           f.required ? "yes" : "", cell(constraints(f.schema)),
                           cell(f.schema.description));
        const node* cur = &f.schema;
        std::string cp = p;
        while (cur->items) {
            cp += "[]";
            cur = cur->items.get();
            out += fmt::format("| {} | {} |  | {} | {} |\n", cell(code(cp)),
                               cell(cur->type_text.empty() ? "any" : cur->type_text),
                               cell(constraints(*cur)), cell(cur->description));
            rows(*cur, cp, out);
        }
        rows(f.schema, p, out);
    }
}

void event_doc(const event_spec& e, std::string& out) {
    constexpr std::string_view what = "properties";
    out += fmt::format("### {}\n\n", e.name == "*" ? "* (any other name)" : e.name);
    if (!e.description.empty()) out += e.description + "\n\n";
    if (!e.owner.empty()) out += fmt::format("Owner: {}\n\n", e.owner);
    out +=
        fmt::format("Unplanned {}: {}\n\n", what,
                    e.root.additional_properties == additional::deny ? "not allowed" : "allowed");
    if (e.root.fields.empty()) {
        out += fmt::format("No planned {}.\n\n", what);
        return;
    }
    out += "| Property | Type | Required | Constraints | Description |\n";
    out += "| --- | --- | --- | --- | --- |\n";
    rows(e.root, "", out);
    out += '\n';
}

}  // namespace

std::string compiled_plan::markdown() const {
    const plan_data& d = *data_;
    std::string out = fmt::format("# Tracking plan: {}\n\n", d.name);
    if (!d.version.empty()) out += fmt::format("Version: {}\n\n", d.version);
    if (!d.description.empty()) out += d.description + "\n\n";
    auto named = [&](const section& s, std::string_view title) {
        if (!s.present) return;
        out += fmt::format("## {}\n\n", title);
        if (s.ordered.empty())
            out += "No events planned: every event of this type is unplanned.\n\n";
        for (const event_spec* e : s.ordered) event_doc(*e, out);
    };
    auto single = [&](const section& s, std::string_view title) {
        if (!s.present || !s.single) return;
        out += fmt::format("## {}\n\n", title);
        if (!s.single->description.empty()) out += s.single->description + "\n\n";
        if (!s.single->owner.empty()) out += fmt::format("Owner: {}\n\n", s.single->owner);
        const node& root = s.single->root;
        out +=
            fmt::format("Unplanned traits: {}\n\n",
                        root.additional_properties == additional::deny ? "not allowed" : "allowed");
        if (root.fields.empty()) {
            out += "No planned traits.\n\n";
            return;
        }
        out += "| Trait | Type | Required | Constraints | Description |\n";
        out += "| --- | --- | --- | --- | --- |\n";
        rows(root, "", out);
        out += '\n';
    };
    named(d.track, "Track events");
    single(d.identify, "Identify");
    single(d.group, "Group");
    named(d.page, "Pages");
    named(d.screen, "Screens");
    while (out.size() >= 2 && out[out.size() - 1] == '\n' && out[out.size() - 2] == '\n') {
        out.pop_back();  // one final newline
    }
    return out;
}

}  // namespace switchyard::plan
