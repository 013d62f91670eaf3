#include "warehouse/rows.h"

#include "util/json.h"
#include "util/time.h"
#include "warehouse/identifiers.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

namespace switchyard::warehouse {
namespace {

using ct = column_type;

std::vector<column> common_plus(std::initializer_list<column> more) {
    std::vector<column> v = {{"id", ct::text},
                             {"received_at", ct::timestamp},
                             {"sent_at", ct::timestamp},
                             {"original_timestamp", ct::timestamp},
                             {"timestamp", ct::timestamp},
                             {"user_id", ct::text},
                             {"anonymous_id", ct::text},
                             {"uuid_ts", ct::timestamp}};
    v.insert(v.end(), more.begin(), more.end());
    return v;
}

}  // namespace

std::span<const column> standard_columns(table_kind kind) noexcept {
    // Built once; std::string members make these runtime statics.
    static const auto tracks = common_plus({{"event", ct::text}, {"event_text", ct::text}});
    static const auto named = common_plus({{"name", ct::text}});
    static const auto groups = common_plus({{"group_id", ct::text}});
    static const auto aliases = common_plus({{"previous_id", ct::text}});
    static const auto common = common_plus({});
    static const std::array users = {column{"id", ct::text}, column{"received_at", ct::timestamp},
                                     column{"uuid_ts", ct::timestamp}};
    static const std::array links = {column{"id", ct::text}, column{"received_at", ct::timestamp},
                                     column{"user_id", ct::text}, column{"anonymous_id", ct::text},
                                     column{"uuid_ts", ct::timestamp}};
    static const std::array quarantine = {
        column{"id", ct::text},           column{"received_at", ct::timestamp},
        column{"reason", ct::text},       column{"message", ct::text},
        column{"source", ct::text},       column{"route", ct::text},
        column{"message_id", ct::text},   column{"user_id", ct::text},
        column{"anonymous_id", ct::text}, column{"event", ct::text},
        column{"raw_base64", ct::text},   column{"uuid_ts", ct::timestamp}};
    static const std::array discards = {
        column{"id", ct::text},          column{"received_at", ct::timestamp},
        column{"table_name", ct::text},  column{"column_name", ct::text},
        column{"row_id", ct::text},      column{"column_type", ct::text},
        column{"value", ct::text},       column{"reason", ct::text},
        column{"user_id", ct::text},     column{"anonymous_id", ct::text},
        column{"uuid_ts", ct::timestamp}};
    switch (kind) {
        case table_kind::tracks:
        case table_kind::track_event:
            return tracks;
        case table_kind::identifies:
            return common;
        case table_kind::users:
            return users;
        case table_kind::pages:
        case table_kind::screens:
            return named;
        case table_kind::groups:
            return groups;
        case table_kind::aliases:
            return aliases;
        case table_kind::identity_links:
            return links;
        case table_kind::quarantine:
            return quarantine;
        case table_kind::discards:
            return discards;
    }
    return common;
}

bool is_standard_column(table_kind kind, std::string_view name) noexcept {
    if (name == extra_column) return true;
    for (const auto& c : standard_columns(kind)) {
        if (c.name == name) return true;
    }
    return false;
}

std::string namespace_for(std::string_view source) {
    if (source.empty()) return "switchyard";
    std::string n = sanitize_identifier(source);
    // Names the engines keep for themselves: PostgreSQL's pg_* schemas and information_schema,
    // SQLite's sqlite_* tables (a namespace prefixes SQLite table names).
    if (n.rfind("pg_", 0) == 0 || n.rfind("sqlite", 0) == 0 || n == "information_schema") {
        n = sanitize_identifier("s_" + n);
    }
    return n;
}

namespace {

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

}  // namespace

bool parse_timestamp_us(std::string_view s, std::int64_t& us) noexcept {
    int y, mo, d, h, mi, sec = 0;
    if (s.size() < 16 || s.size() > 40) return false;
    if (!util::parse_digits(s, 0, 4, y) || s[4] != '-' || !util::parse_digits(s, 5, 2, mo) ||
        s[7] != '-' || !util::parse_digits(s, 8, 2, d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !util::parse_digits(s, 11, 2, h) ||
        s[13] != ':' || !util::parse_digits(s, 14, 2, mi)) {
        return false;
    }
    std::size_t p = 16;
    if (p < s.size() && s[p] == ':') {
        if (!util::parse_digits(s, p + 1, 2, sec)) return false;
        p += 3;
    }
    std::int64_t frac_us = 0;
    if (p < s.size() && (s[p] == '.' || s[p] == ',')) {
        ++p;
        std::size_t n = 0;
        std::int64_t scale = 100000;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
            if (n < 6) frac_us += (s[p] - '0') * scale;
            scale /= 10;
            ++p;
            ++n;
        }
        if (n == 0 || n > 9) return false;
    }
    std::int64_t offset_s = 0;
    if (p < s.size()) {
        if (s[p] == 'Z' || s[p] == 'z') {
            ++p;
        } else if (s[p] == '+' || s[p] == '-') {
            const int sign = s[p] == '-' ? -1 : 1;
            int oh, om = 0;
            if (!util::parse_digits(s, p + 1, 2, oh)) return false;
            p += 3;
            if (p < s.size() && s[p] == ':') ++p;
            if (p < s.size()) {
                if (!util::parse_digits(s, p, 2, om)) return false;
                p += 2;
            }
            if (oh > 23 || om > 59) return false;
            offset_s = sign * (oh * 3600 + om * 60);
        } else {
            return false;
        }
    }
    if (p != s.size()) return false;
    static constexpr int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return false;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y) ? 1 : 0)) return false;
    const std::int64_t secs =
        util::days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    // Keep within 0001-01-01 .. 9999-12-31 UTC after the offset: both engines, and the
    // fixed-width text form SQLite stores, handle exactly that range.
    static const std::int64_t lo = util::days_from_civil(1, 1, 1) * 86400;
    static const std::int64_t hi = util::days_from_civil(10000, 1, 1) * 86400;
    if (secs < lo || secs >= hi) return false;
    us = secs * 1'000'000 + frac_us;
    return true;
}

std::string format_timestamp_us(std::int64_t us) {
    std::int64_t secs = us / 1'000'000;
    std::int64_t frac = us % 1'000'000;
    if (frac < 0) {
        frac += 1'000'000;
        --secs;
    }
    std::int64_t days = secs / 86400;
    std::int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        --days;
    }
    int y;
    unsigned m, d;
    util::civil_from_days(days, y, m, d);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", y, m, d, rem / 3600,
                       rem / 60 % 60, rem % 60, frac);
}

void append_value_json(std::string& out, const cell& c) {
    switch (c.k) {
        case cell::kind::null:
            out += "null";
            break;
        case cell::kind::boolean:
            out += c.b ? "true" : "false";
            break;
        case cell::kind::integer:
            fmt::format_to(std::back_inserter(out), "{}", c.i);
            break;
        case cell::kind::floating:
            fmt::format_to(std::back_inserter(out), "{}", c.f);
            break;
        case cell::kind::timestamp:
            if (c.s.empty()) {
                out += '"';
                util::append_iso8601_ms(out, c.i / 1000);
                out += '"';
            } else {
                util::append_json_string(out, c.s);
            }
            break;
        case cell::kind::text:
            util::append_json_string(out, c.s);
            break;
    }
}

void row_builder::add(row& r, std::string column, cell value) {
    r.fields.push_back({std::move(column), std::move(value)});
}

const std::string& row_builder::key_name(std::string_view key) {
    // Events repeat the same keys; sanitizing each once keeps rows cheap. Bounded: a stream of
    // ever-new keys only costs a reset now and then.
    auto it = names_.find(key);
    if (it != names_.end()) return it->second;
    if (names_.size() >= 8192) names_.clear();
    return names_.emplace(std::string(key), sanitize_identifier(key)).first->second;
}

std::string row_builder::column_name(const std::string& joined) {
    // Joined from sanitized parts, so only the length rule can still apply.
    return joined.size() <= max_identifier_bytes ? joined : sanitize_identifier(joined);
}

void row_builder::flatten_object(simdjson::dom::object o, std::string& prefix, std::size_t depth,
                                 row& r, bool collide_check) {
    const std::size_t keep = prefix.size();
    for (auto [key, value] : o) {
        std::string name = key_name(key);
        if (collide_check && is_standard_column(r.kind, name)) {
            // A property or trait named like a standard column ("id", "timestamp") keeps its
            // value under a prefixed name rather than overwriting the standard one.
            const bool traits = r.kind == table_kind::identifies || r.kind == table_kind::groups ||
                                r.kind == table_kind::users;
            name.insert(0, traits ? "traits_" : "properties_");
        }
        // One '_' between parts, as sanitizing the whole path would leave it ("from_" + "type"
        // -> "from_type", "a" + "_1st" -> "a_1st").
        if (!prefix.empty() && prefix.back() != '_' && name.front() != '_') prefix += '_';
        prefix += name;
        flatten(value, prefix, depth + 1, r, false);
        prefix.resize(keep);
    }
}

void row_builder::flatten(element e, std::string& prefix, std::size_t depth, row& r,
                          bool collide_check) {
    using simdjson::dom::element_type;
    switch (e.type()) {
        case element_type::OBJECT: {
            if (depth >= opts_.max_depth) {
                add(r, column_name(prefix), cell::of_text(simdjson::minify(e)));
                return;
            }
            flatten_object(simdjson::dom::object(e), prefix, depth, r, collide_check);
            return;
        }
        case element_type::ARRAY:
            add(r, column_name(prefix), cell::of_text(simdjson::minify(e)));
            return;
        case element_type::STRING: {
            std::string_view s = e.get_string().value_unsafe();
            std::int64_t us = 0;
            if (parse_timestamp_us(s, us)) {
                cell c = cell::of_timestamp_us(us);
                c.s.assign(s);
                add(r, column_name(prefix), std::move(c));
            } else {
                add(r, column_name(prefix), cell::of_text(std::string(s)));
            }
            return;
        }
        case element_type::INT64:
            add(r, column_name(prefix), cell::of_int(e.get_int64().value_unsafe()));
            return;
        case element_type::UINT64:
            add(r, column_name(prefix),
                cell::of_float(static_cast<double>(e.get_uint64().value_unsafe())));
            return;
        case element_type::DOUBLE:
            add(r, column_name(prefix), cell::of_float(e.get_double().value_unsafe()));
            return;
        case element_type::BOOL:
            add(r, column_name(prefix), cell::of_bool(e.get_bool().value_unsafe()));
            return;
        case element_type::NULL_VALUE:
            return;  // like a missing key: no column, and a users upsert keeps the old value
    }
}

void row_builder::members(simdjson::dom::object o, std::string_view prefix_name, row& r) {
    scratch_.assign(prefix_name);
    flatten_object(o, scratch_, 0, r, prefix_name.empty());
}

namespace {

cell timestamp_cell_ms(std::int64_t ms) {
    cell c = cell::of_timestamp_us(ms * 1000);
    c.s = util::format_iso8601_ms(ms);
    return c;
}

std::string string_member(simdjson::dom::object o, std::string_view key) {
    auto v = o[key];
    if (v.error()) return {};
    if (v.is_string()) return std::string(v.get_string().value_unsafe());
    if (v.is_int64()) return std::to_string(v.get_int64().value_unsafe());
    if (v.is_uint64()) return std::to_string(v.get_uint64().value_unsafe());
    return {};
}

// Moves fields that repeat an earlier field's column (two keys with one sanitized name) to extra.
void split_duplicates(row& r) {
    if (r.fields.size() < 2) return;
    std::vector<std::uint32_t> idx(r.fields.size());
    std::iota(idx.begin(), idx.end(), 0u);
    std::stable_sort(idx.begin(), idx.end(), [&](std::uint32_t a, std::uint32_t b) {
        return r.fields[a].column < r.fields[b].column;
    });
    std::vector<bool> dup(r.fields.size(), false);
    bool any = false;
    for (std::size_t i = 1; i < idx.size(); ++i) {
        if (r.fields[idx[i]].column == r.fields[idx[i - 1]].column) {
            dup[idx[i]] = true;
            any = true;
        }
    }
    if (!any) return;
    std::vector<field> kept;
    kept.reserve(r.fields.size());
    for (std::size_t i = 0; i < r.fields.size(); ++i) {
        if (!dup[i]) {
            kept.push_back(std::move(r.fields[i]));
            continue;
        }
        std::string j;
        append_value_json(j, r.fields[i].value);
        r.extra.emplace_back(std::move(r.fields[i].column), std::move(j));
    }
    r.fields = std::move(kept);
}

table_kind kind_of(event_type t) {
    switch (t) {
        case event_type::identify:
            return table_kind::identifies;
        case event_type::page:
            return table_kind::pages;
        case event_type::screen:
            return table_kind::screens;
        case event_type::group:
            return table_kind::groups;
        case event_type::alias:
            return table_kind::aliases;
        default:
            return table_kind::tracks;
    }
}

std::string_view table_name(table_kind k) {
    switch (k) {
        case table_kind::tracks:
            return "tracks";
        case table_kind::identifies:
            return "identifies";
        case table_kind::users:
            return "users";
        case table_kind::pages:
            return "pages";
        case table_kind::screens:
            return "screens";
        case table_kind::groups:
            return "groups";
        case table_kind::aliases:
            return "aliases";
        case table_kind::identity_links:
            return "identity_links";
        case table_kind::quarantine:
            return "quarantine";
        case table_kind::discards:
            return discards_table;
        case table_kind::track_event:
            return {};
    }
    return {};
}

// An event's own table may not take the name of a standard table.
std::string event_table_name(std::string_view event) {
    std::string n = sanitize_identifier(event);
    for (auto k : {table_kind::tracks, table_kind::identifies, table_kind::users, table_kind::pages,
                   table_kind::screens, table_kind::groups, table_kind::aliases,
                   table_kind::identity_links, table_kind::quarantine}) {
        if (n == table_name(k)) return n + "_event";
    }
    return n;
}

}  // namespace

void row_builder::common(const event_view& v, simdjson::dom::object o, row& r) {
    add(r, "id", cell::of_text(std::string(v.message_id)));
    add(r, "received_at", timestamp_cell_ms(v.received_at_ms));
    for (auto [key, col] :
         {std::pair{"sentAt", "sent_at"}, std::pair{"originalTimestamp", "original_timestamp"},
          std::pair{"timestamp", "timestamp"}}) {
        auto t = o[key];
        if (t.error() || t.is_null()) continue;
        if (t.is_string()) {
            std::string_view s = t.get_string().value_unsafe();
            std::int64_t us = 0;
            if (parse_timestamp_us(s, us)) {
                cell c = cell::of_timestamp_us(us);
                c.s.assign(s);
                add(r, col, std::move(c));
            } else {
                add(r, col, cell::of_text(std::string(s)));  // discarded by the loader, kept
            }
        } else {
            add(r, col, cell::of_text(simdjson::minify(t.value_unsafe())));
        }
    }
    if (!v.user_id.empty()) add(r, "user_id", cell::of_text(std::string(v.user_id)));
    if (!v.anonymous_id.empty()) {
        add(r, "anonymous_id", cell::of_text(std::string(v.anonymous_id)));
    }
    r.id.assign(v.message_id);
    r.received_us = v.received_at_ms * 1000;
    r.user_id.assign(v.user_id);
    r.anonymous_id.assign(v.anonymous_id);
    r.record_json = v.json;
    auto ctx = o["context"];
    if (!ctx.error() && ctx.is_object()) {
        scratch_ = "context";
        flatten(ctx.value_unsafe(), scratch_, 0, r, false);
    }
}

bool row_builder::build(const event_view& v, std::vector<row>& out, std::string& why) {
    auto doc = parser_.parse(v.json.data(), v.json.size());
    if (doc.error() || !doc.is_object()) {
        why = doc.error() ? fmt::format("the record's JSON cannot be read: {}",
                                        simdjson::error_message(doc.error()))
                          : std::string("the record's JSON is not an object");
        return false;
    }
    simdjson::dom::object o = doc.get_object().value_unsafe();
    if (v.source != last_source_ || last_ns_.empty()) {
        last_source_.assign(v.source);
        last_ns_ = namespace_for(v.source);
    }
    const std::string& ns = last_ns_;
    auto start = [&](table_kind k, std::string name) -> row& {
        row& r = out.emplace_back();
        r.table = {ns, std::move(name)};
        r.kind = k;
        return r;
    };
    const std::size_t first = out.size();

    if (v.kind == record_kind::identity_link || v.kind == record_kind::quarantine) {
        const bool link = v.kind == record_kind::identity_link;
        row& r = start(
            link ? table_kind::identity_links : table_kind::quarantine,
            std::string(table_name(link ? table_kind::identity_links : table_kind::quarantine)));
        r.id = link ? string_member(o, "messageId") : fmt::format("q{:016x}", fnv1a64(v.json));
        if (r.id.empty()) r.id = fmt::format("l{:016x}", fnv1a64(v.json));
        r.received_us = v.received_at_ms * 1000;
        r.record_json = v.json;
        add(r, "id", cell::of_text(r.id));
        add(r, "received_at", timestamp_cell_ms(v.received_at_ms));
        std::string uid(v.user_id), aid(v.anonymous_id);
        if (!link) {
            auto ev = o["event"];
            if (!ev.error() && ev.is_object()) {
                simdjson::dom::object eo = ev.get_object().value_unsafe();
                if (uid.empty()) uid = string_member(eo, "userId");
                if (aid.empty()) aid = string_member(eo, "anonymousId");
                std::string mid = string_member(eo, "messageId");
                if (!mid.empty()) add(r, "message_id", cell::of_text(std::move(mid)));
            }
        }
        r.user_id = uid;
        r.anonymous_id = aid;
        if (!uid.empty()) add(r, "user_id", cell::of_text(std::move(uid)));
        if (!aid.empty()) add(r, "anonymous_id", cell::of_text(std::move(aid)));
        for (auto [key, value] : o) {
            if (key == "messageId" || key == "receivedAt" || key == "type") continue;
            std::string name = sanitize_identifier(key);
            if (name == "id" || name == "received_at" || name == "uuid_ts" || name == "user_id" ||
                name == "anonymous_id" || name == "message_id") {
                name = "record_" + name;
            }
            if (!link && (value.is_object() || value.is_array())) {
                // The quarantined event (and its violations) as JSON text: a bad event must not
                // add a column per key it carried.
                add(r, name, cell::of_text(simdjson::minify(value)));
                continue;
            }
            scratch_ = name;
            flatten(value, scratch_, 1, r, false);
        }
        split_duplicates(r);
        return true;
    }

    const table_kind k = kind_of(v.type);
    row& main = start(k, std::string(table_name(k)));
    common(v, o, main);
    switch (v.type) {
        case event_type::track:
            add(main, "event", cell::of_text(std::string(v.event_name)));
            add(main, "event_text", cell::of_text(std::string(v.event_name)));
            break;
        case event_type::page:
        case event_type::screen:
            if (!v.event_name.empty()) add(main, "name", cell::of_text(std::string(v.event_name)));
            break;
        case event_type::group:
            if (auto g = string_member(o, "groupId"); !g.empty()) {
                add(main, "group_id", cell::of_text(std::move(g)));
            }
            break;
        case event_type::alias:
            if (auto p = string_member(o, "previousId"); !p.empty()) {
                add(main, "previous_id", cell::of_text(std::move(p)));
            }
            break;
        default:
            break;
    }
    const bool traits = v.type == event_type::identify || v.type == event_type::group;
    auto body = o[traits ? "traits" : "properties"];
    const bool has_body = !body.error() && body.is_object();
    // The per-event table and users rows share the main row's common columns: copy before the
    // body is added, then add the body to each.
    const std::size_t common_fields = main.fields.size();
    if (has_body) members(body.get_object().value_unsafe(), {}, main);
    split_duplicates(main);

    if (v.type == event_type::track && opts_.per_event_tables && !v.event_name.empty()) {
        row& r = out.emplace_back();
        const row& m = out[first];
        r.table = {ns, event_table_name(v.event_name)};
        r.kind = table_kind::track_event;
        r.id = m.id;
        r.received_us = m.received_us;
        r.user_id = m.user_id;
        r.anonymous_id = m.anonymous_id;
        r.record_json = m.record_json;
        r.fields = m.fields;
        r.extra = m.extra;
    }
    if (v.type == event_type::identify && opts_.users_table && !v.user_id.empty()) {
        row& r = out.emplace_back();
        const row& m = out[first];
        r.table = {ns, "users"};
        r.kind = table_kind::users;
        r.mode = write_mode::upsert;
        r.id.assign(v.user_id);
        r.received_us = m.received_us;
        r.user_id.assign(v.user_id);
        r.record_json = m.record_json;
        add(r, "id", cell::of_text(r.id));
        add(r, "received_at", timestamp_cell_ms(v.received_at_ms));
        // Traits only: the users table holds who the person is, not the call's context.
        for (std::size_t i = common_fields; i < m.fields.size(); ++i) {
            if (m.fields[i].column.rfind("context_", 0) == 0) continue;
            r.fields.push_back(m.fields[i]);
        }
        r.extra = m.extra;
    }
    return true;
}

bool row_builder::deletion(const event_view& v, deletion_ids& out, std::string& why) {
    auto doc = parser_.parse(v.json.data(), v.json.size());
    if (doc.error() || !doc.is_object()) {
        why = "the deletion record's JSON cannot be read";
        return false;
    }
    simdjson::dom::object o = doc.get_object().value_unsafe();
    auto list = [&](std::string_view key, std::vector<std::string>& dst) {
        auto a = o[key];
        if (a.error() || !a.is_array()) return;
        simdjson::dom::array arr = a.get_array().value_unsafe();
        for (simdjson::dom::element e : arr) {
            if (e.is_string()) dst.emplace_back(e.get_string().value_unsafe());
        }
    };
    list("userIds", out.user_ids);
    list("anonymousIds", out.anonymous_ids);
    list("deviceIds", out.device_ids);
    if (out.empty()) {
        if (!v.user_id.empty()) out.user_ids.emplace_back(v.user_id);
        if (!v.anonymous_id.empty()) out.anonymous_ids.emplace_back(v.anonymous_id);
    }
    return true;
}

}  // namespace switchyard::warehouse
