#include "warehouse/loader.h"

#include "util/json.h"
#include "util/time.h"
#include "warehouse/identifiers.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

namespace switchyard::warehouse {

const char* to_string(column_type t) noexcept {
    switch (t) {
        case column_type::boolean:
            return "boolean";
        case column_type::integer:
            return "integer";
        case column_type::floating:
            return "float";
        case column_type::timestamp:
            return "timestamp";
        case column_type::text:
            return "text";
    }
    return "text";
}

column_type natural_type(const cell& c) noexcept {
    switch (c.k) {
        case cell::kind::boolean:
            return column_type::boolean;
        case cell::kind::integer:
            return column_type::integer;
        case cell::kind::floating:
            return column_type::floating;
        case cell::kind::timestamp:
            return column_type::timestamp;
        default:
            return column_type::text;
    }
}

column_type join_types(column_type a, column_type b) noexcept {
    if (a == b) return a;
    auto numeric = [](column_type t) {
        return t == column_type::boolean || t == column_type::integer || t == column_type::floating;
    };
    if (numeric(a) && numeric(b)) return std::max(a, b);
    return column_type::text;
}

bool fit_value(const cell& v, column_type target, bool accepts_nul, cell& out, std::string& why) {
    auto refuse = [&] {
        const column_type from = natural_type(v);
        why = fmt::format("{} {} value does not fit the {} column",
                          from == column_type::integer ? "an" : "a", to_string(from),
                          to_string(target));
        return false;
    };
    switch (target) {
        case column_type::boolean:
            if (v.k != cell::kind::boolean) return refuse();
            out = cell::of_bool(v.b);
            return true;
        case column_type::integer:
            if (v.k == cell::kind::boolean) {
                out = cell::of_int(v.b ? 1 : 0);
                return true;
            }
            if (v.k == cell::kind::integer) {
                out = cell::of_int(v.i);
                return true;
            }
            if (v.k == cell::kind::floating && std::trunc(v.f) == v.f &&
                v.f >= -9223372036854775808.0 && v.f < 9223372036854775808.0) {
                out = cell::of_int(static_cast<std::int64_t>(v.f));
                return true;
            }
            return refuse();
        case column_type::floating:
            if (v.k == cell::kind::boolean) {
                out = cell::of_float(v.b ? 1.0 : 0.0);
                return true;
            }
            if (v.k == cell::kind::integer) {
                out = cell::of_float(static_cast<double>(v.i));
                return true;
            }
            if (v.k == cell::kind::floating) {
                out = cell::of_float(v.f);
                return true;
            }
            return refuse();
        case column_type::timestamp:
            if (v.k != cell::kind::timestamp) return refuse();
            out = cell::of_timestamp_us(v.i);
            return true;
        case column_type::text: {
            std::string s;
            switch (v.k) {
                case cell::kind::null:
                    out = cell::null_value();
                    return true;
                case cell::kind::boolean:
                    s = v.b ? "true" : "false";
                    break;
                case cell::kind::integer:
                    s = std::to_string(v.i);
                    break;
                case cell::kind::floating:
                    s = fmt::format("{}", v.f);
                    break;
                case cell::kind::timestamp:
                    s = v.s.empty() ? util::format_iso8601_ms(v.i / 1000) : v.s;
                    break;
                case cell::kind::text:
                    s = v.s;
                    break;
            }
            if (!accepts_nul && s.find('\0') != std::string::npos) {
                why = "the text contains U+0000, which this database cannot store";
                return false;
            }
            out = cell::of_text(std::move(s));
            return true;
        }
    }
    return refuse();
}

namespace {

std::string escape_nul(std::string s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\0') {
            out += "\\u0000";
        } else {
            out += c;
        }
    }
    return out;
}

cell timestamp_now(std::int64_t us) { return cell::of_timestamp_us(us); }

// A `_discards` row: one value (`column` set) or a whole record (`column` empty).
row discard_row(const row& from, std::string_view column, std::string_view column_type,
                std::string value, std::string reason) {
    row d;
    d.table = {from.table.ns, std::string(discards_table)};
    d.kind = table_kind::discards;
    d.id = fmt::format("{:016x}",
                       fnv1a64(fmt::format("{}\x1f{}\x1f{}", from.table.name, column, from.id)));
    d.received_us = from.received_us;
    d.user_id = from.user_id;
    d.anonymous_id = from.anonymous_id;
    d.record_json = from.record_json;
    auto text = [&](const char* c, std::string v) {
        d.fields.push_back({c, cell::of_text(std::move(v))});
    };
    text("id", d.id);
    if (from.received_us != 0) {
        d.fields.push_back({"received_at", cell::of_timestamp_us(from.received_us)});
    }
    text("table_name", from.table.name);
    text("column_name", std::string(column));
    text("row_id", from.id);
    text("column_type", std::string(column_type));
    text("value", std::move(value));
    text("reason", std::move(reason));
    if (!from.user_id.empty()) text("user_id", from.user_id);
    if (!from.anonymous_id.empty()) text("anonymous_id", from.anonymous_id);
    return d;
}

// The whole record, for a row that cannot be stored at all.
row whole_record_discard(const row& r, std::string reason) {
    return discard_row(r, "", "", std::string(r.record_json), std::move(reason));
}

}  // namespace

loader::loader(std::unique_ptr<backend> b, loader_options o)
    : backend_(std::move(b)), opts_(o), builder_(o.rows) {}

void loader::close() { backend_->close(); }

void loader::remember(const table_info& info) {
    auto& ts = tables_[info.table];
    ts.columns = info.columns;
    ts.types.clear();
    ts.has_extra = false;
    for (const auto& c : info.columns) {
        ts.types.emplace(c.name, c.type);
        if (c.name == extra_column) ts.has_extra = true;
    }
}

status loader::describe() {
    std::vector<table_info> infos;
    status st = backend_->describe(infos);
    if (!st.ok()) return st;
    tables_.clear();
    for (const auto& i : infos) remember(i);
    described_ = true;
    return st;
}

status loader::refresh(const table_ref& t) {
    table_info info;
    status st = backend_->describe_table(t, info);
    if (!st.ok()) return st;
    if (info.columns.empty()) {
        tables_.erase(t);
    } else {
        remember(info);
    }
    return st;
}

status loader::ensure_table(const table_ref& t, table_kind kind, const std::vector<column>& wanted,
                            bool need_extra, std::vector<std::string>& overflow) {
    auto it = tables_.find(t);
    std::vector<column> add;
    std::size_t budget = opts_.max_columns;
    if (it == tables_.end()) {
        auto std_cols = standard_columns(kind);
        add.assign(std_cols.begin(), std_cols.end());
        budget = budget > add.size() ? budget - add.size() : 0;
        for (const auto& c : wanted) {
            if (is_standard_column(kind, c.name)) continue;
            if (budget == 0) {
                overflow.push_back(c.name);
                continue;
            }
            add.push_back(c);
            --budget;
        }
        if (need_extra || !overflow.empty())
            add.push_back({std::string(extra_column), column_type::text});
        status st = backend_->create_table(t, add);
        if (!st.ok()) return st;
        stats_.tables_created.fetch_add(1, std::memory_order_relaxed);
        spdlog::info("Warehouse ({}): created table {}.{} with {} columns.", backend_->engine(),
                     t.ns, t.name, add.size());
        // It may have existed already (another loader made it), without some of our columns.
        status r = refresh(t);
        if (!r.ok()) return r;
        auto now = tables_.find(t);
        if (now == tables_.end()) {
            return status::retry(
                fmt::format("table {}.{} is missing after creating it", t.ns, t.name));
        }
        for (const auto& c : add) {
            if (!now->second.types.count(c.name)) {
                overflow.clear();
                return ensure_table(t, kind, wanted, need_extra, overflow);
            }
        }
        return r;
    }
    const table_state& ts = it->second;
    const std::size_t used = ts.columns.size() - (ts.has_extra ? 1 : 0);
    budget = budget > used ? budget - used : 0;
    for (const auto& c : wanted) {
        if (ts.types.count(c.name)) continue;
        if (budget == 0) {
            overflow.push_back(c.name);
            continue;
        }
        add.push_back(c);
        --budget;
    }
    if ((need_extra || !overflow.empty()) && !ts.has_extra) {
        add.push_back({std::string(extra_column), column_type::text});
    }
    if (add.empty()) return status::success();
    status st = backend_->add_columns(t, add);
    if (!st.ok()) return st;
    stats_.columns_added.fetch_add(add.size(), std::memory_order_relaxed);
    spdlog::info("Warehouse ({}): added {} column(s) to {}.{} (first: {} {}).", backend_->engine(),
                 add.size(), t.ns, t.name, add.front().name, to_string(add.front().type));
    return refresh(t);
}

namespace {

struct group {
    table_ref ref;
    table_kind kind;
    write_mode mode;
    std::vector<const row*> rows;
};

}  // namespace

status loader::load_rows(std::vector<row>& rows) {
    if (rows.empty()) return status::success();
    for (std::size_t attempt = 0;; ++attempt) {
        load l;
        std::vector<std::vector<std::ptrdiff_t>> origin;  // per write: index in `rows`, or -1
        std::vector<row> generated;                       // value discards of this build
        generated.reserve(16);
        std::size_t extra_values = 0, discards = 0;

        auto build_groups = [&](const std::vector<row>& src, bool from_rows) -> status {
            std::vector<group> groups;
            std::map<table_ref, std::size_t> index;
            for (const row& r : src) {
                auto [it, fresh] = index.emplace(r.table, groups.size());
                if (fresh) groups.push_back({r.table, r.kind, r.mode, {}});
                groups[it->second].rows.push_back(&r);
            }
            for (auto& g : groups) {
                // Columns this batch needs that the table may lack, typed by the join of values.
                std::vector<column> wanted;
                std::unordered_map<std::string, std::size_t> wanted_at;
                bool need_extra = false;
                auto known = tables_.find(g.ref);
                for (const row* r : g.rows) {
                    if (!r->extra.empty()) need_extra = true;
                    for (const auto& f : r->fields) {
                        if (f.value.k == cell::kind::null) continue;
                        if (known != tables_.end() && known->second.types.count(f.column)) continue;
                        auto [w, fresh] = wanted_at.emplace(f.column, wanted.size());
                        if (fresh) {
                            wanted.push_back({f.column, natural_type(f.value)});
                        } else {
                            wanted[w->second].type =
                                join_types(wanted[w->second].type, natural_type(f.value));
                        }
                    }
                }
                if (known == tables_.end() || !wanted.empty() ||
                    (need_extra && !known->second.has_extra)) {
                    std::vector<std::string> overflow;
                    status st = ensure_table(g.ref, g.kind, wanted, need_extra, overflow);
                    if (!st.ok()) return st;
                }
                const auto ts_it = tables_.find(g.ref);
                if (ts_it == tables_.end()) {
                    return status::retry(fmt::format("table {}.{} is missing after creating it",
                                                     g.ref.ns, g.ref.name));
                }
                const table_state& ts = ts_it->second;

                // The write's columns: the table's columns some row has a value for.
                std::unordered_set<std::string_view> used;
                bool any_extra = false;
                for (const row* r : g.rows) {
                    if (!r->extra.empty()) any_extra = true;
                    for (const auto& f : r->fields) {
                        if (ts.types.count(f.column)) {
                            used.insert(f.column);
                        } else {
                            any_extra = true;
                        }
                    }
                }
                table_rows w;
                w.table = g.ref;
                w.mode = g.mode;
                std::unordered_map<std::string_view, std::size_t> pos;
                for (const auto& c : ts.columns) {
                    const bool extra = c.name == extra_column && any_extra;
                    if (used.count(c.name) || c.name == "uuid_ts" || extra) {
                        pos.emplace(c.name, w.columns.size());
                        w.columns.push_back(c);
                    }
                }
                const auto uuid_at = pos.find("uuid_ts");
                const auto extra_at = pos.find(extra_column);
                const std::int64_t now_us = util::now_ms() * 1000;
                std::unordered_map<std::string_view, std::size_t> seen;  // id -> row in w
                std::vector<std::int64_t> received;                      // per row in w
                std::vector<std::ptrdiff_t> from;
                for (const row* r : g.rows) {
                    const bool is_discard = r->kind == table_kind::discards;
                    std::vector<cell> cells(w.columns.size());
                    std::string extra_json;
                    auto put_extra = [&](std::string_view name, std::string_view json) {
                        extra_json += extra_json.empty() ? '{' : ',';
                        util::append_json_string(extra_json, name);
                        extra_json += ':';
                        extra_json += json;
                        ++extra_values;
                    };
                    bool whole = false;
                    std::string whole_reason;
                    for (const auto& f : r->fields) {
                        auto p = pos.find(f.column);
                        if (p == pos.end()) {
                            std::string j;
                            append_value_json(j, f.value);
                            put_extra(f.column, j);
                            continue;
                        }
                        const column_type target = w.columns[p->second].type;
                        std::string why;
                        if (fit_value(f.value, target, backend_->accepts_nul(), cells[p->second],
                                      why)) {
                            continue;
                        }
                        if (is_discard) {
                            // The discards table must take everything: escape what it refuses.
                            cell c = f.value;
                            if (c.k == cell::kind::text) c.s = escape_nul(std::move(c.s));
                            if (!fit_value(c, target, backend_->accepts_nul(), cells[p->second],
                                           why)) {
                                return status::retry("a discards value cannot be stored: " + why);
                            }
                            continue;
                        }
                        if (f.column == "id") {
                            whole = true;
                            whole_reason = "the row id cannot be stored: " + why;
                            break;
                        }
                        std::string j;
                        append_value_json(j, f.value);
                        generated.push_back(discard_row(*r, f.column, to_string(target),
                                                        std::move(j), std::move(why)));
                        ++discards;
                    }
                    if (whole) {
                        generated.push_back(whole_record_discard(*r, std::move(whole_reason)));
                        ++discards;
                        continue;
                    }
                    for (const auto& [name, json] : r->extra) put_extra(name, json);
                    if (!extra_json.empty()) {
                        extra_json += '}';
                        if (extra_at != pos.end()) {
                            std::string why;
                            cell c = cell::of_text(escape_nul(std::move(extra_json)));
                            if (!fit_value(c, w.columns[extra_at->second].type, true,
                                           cells[extra_at->second], why)) {
                                generated.push_back(
                                    discard_row(*r, extra_column, "text", c.s, std::move(why)));
                                ++discards;
                            }
                        } else {
                            generated.push_back(discard_row(
                                *r, extra_column, "", std::move(extra_json),
                                "no column for these values: the table has no _extra column"));
                            ++discards;
                        }
                    }
                    if (uuid_at != pos.end()) cells[uuid_at->second] = timestamp_now(now_us);
                    auto [s, fresh] = seen.emplace(r->id, w.rows.size());
                    if (fresh) {
                        w.rows.push_back(std::move(cells));
                        received.push_back(r->received_us);
                        from.push_back(from_rows ? (r - src.data()) : -1);
                        continue;
                    }
                    if (g.mode == write_mode::insert_ignore) continue;  // the first copy wins
                    // upsert: fold into the row already in the batch, newest values winning.
                    auto& prev = w.rows[s->second];
                    const bool newer = r->received_us >= received[s->second];
                    for (std::size_t c = 0; c < cells.size(); ++c) {
                        if (cells[c].k == cell::kind::null) continue;
                        if (newer || prev[c].k == cell::kind::null) prev[c] = std::move(cells[c]);
                    }
                    if (newer) received[s->second] = r->received_us;
                }
                if (w.rows.empty()) continue;
                l.writes.push_back(std::move(w));
                origin.push_back(std::move(from));
            }
            return status::success();
        };

        status st = build_groups(rows, true);
        if (!st.ok()) return st;
        if (!generated.empty()) {
            std::vector<row> pending = std::move(generated);
            generated.clear();
            st = build_groups(pending, false);
            if (!st.ok()) return st;
            if (!generated.empty()) {
                return status::retry("a discards row could not be stored");
            }
        }

        st = backend_->apply(l);
        if (st.ok()) {
            std::uint64_t n = 0;
            for (const auto& w : l.writes) n += w.rows.size();
            stats_.rows.fetch_add(n, std::memory_order_relaxed);
            stats_.discards.fetch_add(discards, std::memory_order_relaxed);
            stats_.extra_values.fetch_add(extra_values, std::memory_order_relaxed);
            return st;
        }
        if (st.c != status::code::bad_row) return st;
        if (st.write_index >= origin.size() || st.row_index >= origin[st.write_index].size() ||
            origin[st.write_index][st.row_index] < 0) {
            return status::retry("the database refused a discards row: " + st.reason);
        }
        if (attempt >= opts_.max_refused_rows) {
            return status::retry(
                fmt::format("the database refused more than {} rows of one batch; last: {}",
                            opts_.max_refused_rows, st.reason));
        }
        row& bad = rows[static_cast<std::size_t>(origin[st.write_index][st.row_index])];
        spdlog::warn("Warehouse ({}): {}.{} refused row {}: {}; kept in {}.{}.", backend_->engine(),
                     bad.table.ns, bad.table.name, bad.id, st.reason, bad.table.ns, discards_table);
        stats_.refused_rows.fetch_add(1, std::memory_order_relaxed);
        bad = whole_record_discard(bad, "the database refused the row: " + st.reason);
    }
}

status loader::delete_person(const deletion_ids& ids) {
    // Tables other loaders created since the last look must be covered too.
    status st = describe();
    if (!st.ok()) return st;
    std::vector<std::string> all;
    for (const auto* v : {&ids.user_ids, &ids.anonymous_ids, &ids.device_ids}) {
        all.insert(all.end(), v->begin(), v->end());
    }
    load l;
    for (const auto& [ref, ts] : tables_) {
        auto del = [&](const char* col, const std::vector<std::string>& values) {
            if (values.empty() || !ts.types.count(col)) return;
            l.deletions.push_back({ref, col, values});
        };
        del("user_id", ids.user_ids);
        del("anonymous_id", ids.anonymous_ids);
        del("context_device_id", ids.device_ids);
        if (ref.name == "users") del("id", ids.user_ids);
        if (ref.name == "identity_links") {
            del("from_id", all);
            del("to_id", all);
            del("person_id", all);
        }
    }
    if (l.deletions.empty()) return status::success();
    st = backend_->apply(l);
    if (st.ok()) stats_.deletions.fetch_add(1, std::memory_order_relaxed);
    return st;
}

send_outcome loader::send(std::span<const delivery_item> batch) {
    auto fail = [&](const status& st) {
        stats_.failures.fetch_add(1, std::memory_order_relaxed);
        healthy_.store(false, std::memory_order_relaxed);
        described_ = false;  // the schema may have changed underneath; look again
        return send_outcome::retry_later(fmt::format("{}: {}", backend_->engine(), st.reason));
    };
    status st = backend_->connect();
    if (!st.ok()) return fail(st);
    if (!described_) {
        st = describe();
        if (!st.ok()) return fail(st);
    }
    std::vector<row> rows;
    rows.reserve(batch.size() * 2);
    std::string why;
    for (const auto& item : batch) {
        const event_view& v = item.event;
        if (v.kind == record_kind::deletion) {
            st = load_rows(rows);
            if (!st.ok()) return fail(st);
            rows.clear();
            deletion_ids ids;
            if (!builder_.deletion(v, ids, why)) {
                spdlog::error("Warehouse ({}): deletion record {} cannot be read: {}",
                              backend_->engine(), v.message_id, why);
                continue;
            }
            st = delete_person(ids);
            if (!st.ok()) return fail(st);
            continue;
        }
        if (!builder_.build(v, rows, why)) {
            row r;
            r.table = {namespace_for(v.source), ""};
            r.id.assign(v.message_id);
            r.received_us = v.received_at_ms * 1000;
            r.user_id.assign(v.user_id);
            r.anonymous_id.assign(v.anonymous_id);
            r.record_json = v.json;
            rows.push_back(whole_record_discard(r, why));
        }
    }
    st = load_rows(rows);
    if (!st.ok()) return fail(st);
    healthy_.store(true, std::memory_order_relaxed);
    return send_outcome::ok();
}

}  // namespace switchyard::warehouse
