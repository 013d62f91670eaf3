#include "warehouse/postgres_backend.h"

#include "warehouse/identifiers.h"
#include "warehouse/rows.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstring>
#include <libpq-fe.h>
#include <memory>

namespace switchyard::warehouse {
namespace {

struct result_deleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_deleter>;

const char* sql_type(column_type t) {
    switch (t) {
        case column_type::boolean:
            return "boolean";
        case column_type::integer:
            return "bigint";
        case column_type::floating:
            return "double precision";
        case column_type::timestamp:
            return "timestamptz";
        case column_type::text:
            return "text";
    }
    return "text";
}

column_type type_of(std::string_view t) {
    if (t == "boolean") return column_type::boolean;
    if (t == "bigint" || t == "integer" || t == "smallint") return column_type::integer;
    if (t == "double precision" || t == "real" || t.rfind("numeric", 0) == 0) {
        return column_type::floating;
    }
    if (t.rfind("timestamp", 0) == 0 || t == "date") return column_type::timestamp;
    return column_type::text;
}

std::string qualified(const table_ref& t) {
    return quote_identifier(t.ns) + "." + quote_identifier(t.name);
}

// COPY's text format: backslash escapes for the characters that delimit rows and columns.
void append_copy_text(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                out += c;
        }
    }
}

void append_copy_cell(std::string& out, const cell& v) {
    switch (v.k) {
        case cell::kind::null:
            out += "\\N";
            break;
        case cell::kind::boolean:
            out += v.b ? 't' : 'f';
            break;
        case cell::kind::integer:
            fmt::format_to(std::back_inserter(out), "{}", v.i);
            break;
        case cell::kind::floating:
            fmt::format_to(std::back_inserter(out), "{}", v.f);
            break;
        case cell::kind::timestamp:
            out += format_timestamp_us(v.i);
            break;
        case cell::kind::text:
            append_copy_text(out, v.s);
            break;
    }
}

// A PostgreSQL array literal of text values: {"a","b\"c"}.
std::string text_array(const std::vector<std::string>& values, std::size_t from, std::size_t n) {
    std::string a = "{";
    for (std::size_t i = from; i < from + n; ++i) {
        if (i > from) a += ',';
        a += '"';
        for (char c : values[i]) {
            if (c == '"' || c == '\\') a += '\\';
            a += c;
        }
        a += '"';
    }
    a += '}';
    return a;
}

// The 1-based line of a COPY error's context ("COPY stage_0, line 3, column x: …"), or 0.
std::size_t copy_line(const char* context) {
    if (context == nullptr) return 0;
    const char* p = std::strstr(context, ", line ");
    if (p == nullptr) return 0;
    return static_cast<std::size_t>(std::strtoull(p + 7, nullptr, 10));
}

bool data_error(std::string_view state) {
    return state.size() == 5 && (state.substr(0, 2) == "22" || state.substr(0, 2) == "23");
}

}  // namespace

postgres_backend::postgres_backend(postgres_options o) : opts_(std::move(o)) {}

postgres_backend::~postgres_backend() { close(); }

void postgres_backend::close() {
    stages_.clear();
    if (conn_ != nullptr) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
}

status postgres_backend::connect() {
    if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK &&
        PQtransactionStatus(conn_) == PQTRANS_IDLE) {
        return status::success();
    }
    close();
    const std::string timeout =
        std::to_string(std::max<std::int64_t>(1, opts_.connect_timeout.count() / 1000));
    const char* keys[] = {"dbname", "connect_timeout", "application_name", "client_encoding",
                          nullptr};
    const char* values[] = {opts_.dsn.c_str(), timeout.c_str(), opts_.application_name.c_str(),
                            "UTF8", nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (conn_ == nullptr) return status::retry("postgres: out of memory creating a connection");
    if (PQstatus(conn_) != CONNECTION_OK) {
        std::string msg = PQerrorMessage(conn_);
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        close();
        return status::retry("postgres: cannot connect: " + msg);
    }
    // Server notices ("relation already exists, skipping" from IF NOT EXISTS, shutdown
    // warnings) go to the debug log rather than to stderr.
    PQsetNoticeProcessor(
        conn_,
        [](void*, const char* message) {
            std::string m = message;
            while (!m.empty() && m.back() == '\n') m.pop_back();
            spdlog::debug("postgres: {}", m);
        },
        nullptr);
    where_ = fmt::format("{}:{}", PQhost(conn_) ? PQhost(conn_) : "?",
                         PQport(conn_) ? PQport(conn_) : "?");
    status st = run(fmt::format("SET TIME ZONE 'UTC'; SET statement_timeout = {}",
                                opts_.statement_timeout.count()),
                    PGRES_COMMAND_OK);
    if (!st.ok()) close();
    return st;
}

status postgres_backend::classify(PGresult* r, const char* what, std::size_t write_index) {
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    std::string msg = primary ? primary : (conn_ ? PQerrorMessage(conn_) : "no connection");
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    const std::string sqlstate = state ? state : "";
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
        close();
        return status::retry(
            fmt::format("postgres ({}): {}: connection lost: {}", where_, what, msg));
    }
    if (std::strcmp(what, "copy") == 0 && data_error(sqlstate)) {
        const std::size_t line = copy_line(r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : nullptr);
        if (line > 0) {
            return status::bad(write_index, line - 1,
                               fmt::format("postgres: {} ({})", msg, sqlstate));
        }
    }
    return status::retry(fmt::format("postgres ({}): {}: {} ({})", where_, what, msg,
                                     sqlstate.empty() ? "no SQLSTATE" : sqlstate));
}

void postgres_backend::rollback() {
    if (conn_ == nullptr) return;
    if (PQstatus(conn_) != CONNECTION_OK) {
        close();
        return;
    }
    if (PQtransactionStatus(conn_) != PQTRANS_IDLE) {
        result_ptr r(PQexec(conn_, "ROLLBACK"));
        if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
            close();
            return;
        }
    }
    // Staging tables made in the failed transaction are gone with it; start them all afresh.
    result_ptr d(PQexec(conn_, "DISCARD TEMP"));
    stages_.clear();
    if (!d || PQresultStatus(d.get()) != PGRES_COMMAND_OK) close();
}

status postgres_backend::ensure_stage(const table_rows& tr) {
    auto it = stages_.find(tr.table);
    if (it != stages_.end()) {
        bool covers = true;
        for (const auto& c : tr.columns) covers = covers && it->second.columns.count(c.name);
        if (covers) return status::success();
        // The target gained columns since: make a new stage like it.
        status st = run("DROP TABLE IF EXISTS " + it->second.name, PGRES_COMMAND_OK);
        if (!st.ok()) return st;
        stages_.erase(it);
    }
    if (stages_.size() >= 512) {
        for (const auto& [t, s] : stages_) {
            status st = run("DROP TABLE IF EXISTS " + s.name, PGRES_COMMAND_OK);
            if (!st.ok()) return st;
        }
        stages_.clear();
    }
    stage_info info;
    info.name = fmt::format("switchyard_stage_{}", ++stage_seq_);
    // One staging table per target for the connection's life, emptied by every commit: creating
    // and dropping one per batch costs catalog writes that grow with the column count.
    // Constraints come along so a row an operator's CHECK refuses fails inside COPY, where
    // PostgreSQL names its line.
    status st = run(fmt::format("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING "
                                "CONSTRAINTS) ON COMMIT DELETE ROWS",
                                info.name, qualified(tr.table)),
                    PGRES_COMMAND_OK);
    if (!st.ok()) return st;
    const std::string q = "SELECT attname FROM pg_attribute WHERE attrelid = '" + info.name +
                          "'::regclass AND attnum > 0 AND NOT attisdropped";
    result_ptr r(PQexec(conn_, q.c_str()));
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) return classify(r.get(), "stage", 0);
    for (int i = 0; i < PQntuples(r.get()); ++i) info.columns.insert(PQgetvalue(r.get(), i, 0));
    stages_[tr.table] = std::move(info);
    return status::success();
}

status postgres_backend::run(const std::string& sql, int expect) {
    if (conn_ == nullptr) return status::retry("postgres: not connected");
    result_ptr r(PQexec(conn_, sql.c_str()));
    if (r && PQresultStatus(r.get()) == expect) return status::success();
    return classify(r.get(), sql.substr(0, sql.find(' ')).c_str(), 0);
}

status postgres_backend::describe(std::vector<table_info>& out) {
    status st = connect();
    if (!st.ok()) return st;
    out.clear();
    const char* sql =
        "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
        "FROM pg_namespace n "
        "JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p') "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE obj_description(n.oid, 'pg_namespace') = $1 "
        "ORDER BY n.nspname, c.relname, a.attnum";
    const char* params[] = {schema_comment};
    result_ptr r(PQexecParams(conn_, sql, 1, nullptr, params, nullptr, nullptr, 0));
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) return classify(r.get(), "describe", 0);
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        table_ref t{PQgetvalue(r.get(), i, 0), PQgetvalue(r.get(), i, 1)};
        if (out.empty() || out.back().table != t) out.push_back({t, {}});
        out.back().columns.push_back(
            {PQgetvalue(r.get(), i, 2), type_of(PQgetvalue(r.get(), i, 3))});
    }
    return status::success();
}

status postgres_backend::describe_table(const table_ref& t, table_info& out) {
    status st = connect();
    if (!st.ok()) return st;
    out.table = t;
    out.columns.clear();
    const char* sql =
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
        "FROM pg_namespace n "
        "JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p') "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE n.nspname = $1 AND c.relname = $2 "
        "AND obj_description(n.oid, 'pg_namespace') = $3 ORDER BY a.attnum";
    const char* params[] = {t.ns.c_str(), t.name.c_str(), schema_comment};
    result_ptr r(PQexecParams(conn_, sql, 3, nullptr, params, nullptr, nullptr, 0));
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) return classify(r.get(), "describe", 0);
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        out.columns.push_back({PQgetvalue(r.get(), i, 0), type_of(PQgetvalue(r.get(), i, 1))});
    }
    return status::success();
}

status postgres_backend::ensure_schema(const std::string& ns) {
    result_ptr r(PQexec(conn_, ("CREATE SCHEMA IF NOT EXISTS " + quote_identifier(ns)).c_str()));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        const char* s = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        // Two loaders creating the schema at once: one of them sees a unique violation.
        if (s == nullptr || (std::strcmp(s, "23505") != 0 && std::strcmp(s, "42P06") != 0)) {
            return classify(r.get(), "create schema", 0);
        }
    }
    const char* params[] = {ns.c_str()};
    result_ptr c(PQexecParams(conn_,
                              "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
                              "WHERE nspname = $1",
                              1, nullptr, params, nullptr, nullptr, 0));
    if (!c || PQresultStatus(c.get()) != PGRES_TUPLES_OK) {
        return classify(c.get(), "read schema comment", 0);
    }
    if (PQntuples(c.get()) == 1 && !PQgetisnull(c.get(), 0, 0) &&
        std::strcmp(PQgetvalue(c.get(), 0, 0), schema_comment) == 0) {
        return status::success();
    }
    return run(fmt::format("COMMENT ON SCHEMA {} IS '{}'", quote_identifier(ns), schema_comment),
               PGRES_COMMAND_OK);
}

status postgres_backend::create_table(const table_ref& t, std::span<const column> columns) {
    status st = connect();
    if (!st.ok()) return st;
    st = ensure_schema(t.ns);
    if (!st.ok()) return st;
    std::string sql = "CREATE TABLE IF NOT EXISTS " + qualified(t) + " (";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        if (i) sql += ", ";
        sql += quote_identifier(columns[i].name);
        sql += ' ';
        sql += sql_type(columns[i].type);
        if (columns[i].name == "id") sql += " PRIMARY KEY";
    }
    sql += ")";
    result_ptr r(PQexec(conn_, sql.c_str()));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        const char* s = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        if (s == nullptr || (std::strcmp(s, "23505") != 0 && std::strcmp(s, "42P07") != 0)) {
            return classify(r.get(), "create table", 0);
        }
    }
    return status::success();
}

status postgres_backend::add_columns(const table_ref& t, std::span<const column> columns) {
    status st = connect();
    if (!st.ok()) return st;
    if (columns.empty()) return st;
    std::string sql = "ALTER TABLE " + qualified(t);
    for (std::size_t i = 0; i < columns.size(); ++i) {
        sql += i ? ", ADD COLUMN IF NOT EXISTS " : " ADD COLUMN IF NOT EXISTS ";
        sql += quote_identifier(columns[i].name);
        sql += ' ';
        sql += sql_type(columns[i].type);
    }
    result_ptr r(PQexec(conn_, sql.c_str()));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        const char* s = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        if (s == nullptr || std::strcmp(s, "42701") != 0) {  // a racing loader added it first
            return classify(r.get(), "alter table", 0);
        }
    }
    return status::success();
}

status postgres_backend::apply(const load& l) {
    status st = connect();
    if (!st.ok()) return st;
    auto fail = [&](status s) {
        rollback();
        return s;
    };
    if (st = run("BEGIN", PGRES_COMMAND_OK); !st.ok()) return fail(st);
    std::string buf;
    for (std::size_t w = 0; w < l.writes.size(); ++w) {
        const table_rows& tr = l.writes[w];
        if (tr.rows.empty()) continue;
        const std::string target = qualified(tr.table);
        st = ensure_stage(tr);
        if (!st.ok()) return fail(st);
        const std::string& stage = stages_[tr.table].name;
        std::string cols;
        bool has_received = false;
        for (std::size_t c = 0; c < tr.columns.size(); ++c) {
            if (c) cols += ", ";
            cols += quote_identifier(tr.columns[c].name);
            if (tr.columns[c].name == "received_at") has_received = true;
        }
        {
            result_ptr r(
                PQexec(conn_, fmt::format("COPY {} ({}) FROM STDIN", stage, cols).c_str()));
            if (!r || PQresultStatus(r.get()) != PGRES_COPY_IN) {
                return fail(classify(r.get(), "copy", w));
            }
        }
        buf.clear();
        bool sent_ok = true;
        for (const auto& row : tr.rows) {
            for (std::size_t c = 0; c < row.size(); ++c) {
                if (c) buf += '\t';
                append_copy_cell(buf, row[c]);
            }
            buf += '\n';
            if (buf.size() >= (1u << 20)) {
                if (PQputCopyData(conn_, buf.data(), static_cast<int>(buf.size())) != 1) {
                    sent_ok = false;
                    break;
                }
                buf.clear();
            }
        }
        if (sent_ok && !buf.empty() &&
            PQputCopyData(conn_, buf.data(), static_cast<int>(buf.size())) != 1) {
            sent_ok = false;
        }
        if (PQputCopyEnd(conn_, sent_ok ? nullptr : "client failed to send the rows") != 1) {
            return fail(classify(nullptr, "copy", w));
        }
        status copy_status;
        while (PGresult* raw = PQgetResult(conn_)) {
            result_ptr r(raw);
            if (PQresultStatus(raw) != PGRES_COMMAND_OK && copy_status.ok()) {
                copy_status = classify(raw, "copy", w);
            }
        }
        if (!copy_status.ok()) return fail(copy_status);
        std::string merge = fmt::format(
            "INSERT INTO {} AS t ({}) SELECT {} FROM {} ON CONFLICT "
            "(\"id\") DO ",
            target, cols, cols, stage);
        if (tr.mode == write_mode::insert_ignore) {
            merge += "NOTHING";
        } else {
            std::string set;
            for (const auto& c : tr.columns) {
                if (c.name == "id") continue;
                if (!set.empty()) set += ", ";
                const std::string q = quote_identifier(c.name);
                set += q + " = COALESCE(EXCLUDED." + q + ", t." + q + ")";
            }
            if (set.empty()) {
                merge += "NOTHING";
            } else {
                merge += "UPDATE SET " + set;
                if (has_received) {
                    merge +=
                        " WHERE t.\"received_at\" IS NULL OR EXCLUDED.\"received_at\" IS "
                        "NULL OR EXCLUDED.\"received_at\" >= t.\"received_at\"";
                }
            }
        }
        if (st = run(merge, PGRES_COMMAND_OK); !st.ok()) return fail(st);
    }
    for (const auto& d : l.deletions) {
        // Text with U+0000 cannot be in the database (nor in a parameter): skip such values.
        std::vector<std::string> values;
        for (const auto& v : d.values) {
            if (v.find('\0') == std::string::npos) values.push_back(v);
        }
        const std::string sql = "DELETE FROM " + qualified(d.table) + " WHERE " +
                                quote_identifier(d.column) + " = ANY($1::text[])";
        for (std::size_t i = 0; i < values.size(); i += 5000) {
            const std::string arr =
                text_array(values, i, std::min<std::size_t>(5000, values.size() - i));
            const char* params[] = {arr.c_str()};
            result_ptr r(PQexecParams(conn_, sql.c_str(), 1, nullptr, params, nullptr, nullptr, 0));
            if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
                return fail(classify(r.get(), "delete", 0));
            }
        }
    }
    if (st = run("COMMIT", PGRES_COMMAND_OK); !st.ok()) return fail(st);
    return status::success();
}

}  // namespace switchyard::warehouse
