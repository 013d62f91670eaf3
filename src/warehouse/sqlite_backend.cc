#include "warehouse/sqlite_backend.h"

#include "warehouse/identifiers.h"
#include "warehouse/rows.h"

#include <fmt/format.h>

#include <sqlite3.h>
#include <system_error>

namespace switchyard::warehouse {
namespace {

const char* declared_type(column_type t) {
    switch (t) {
        case column_type::boolean:
            return "BOOLEAN";
        case column_type::integer:
            return "INTEGER";
        case column_type::floating:
            return "REAL";
        case column_type::timestamp:
            return "TIMESTAMP";
        case column_type::text:
            return "TEXT";
    }
    return "TEXT";
}

column_type type_of(std::string decl) {
    for (auto& c : decl) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (decl == "BOOLEAN" || decl == "BOOL") return column_type::boolean;
    if (decl == "INTEGER" || decl == "BIGINT" || decl == "INT") return column_type::integer;
    if (decl == "REAL" || decl == "DOUBLE" || decl == "FLOAT") return column_type::floating;
    if (decl == "TIMESTAMP" || decl == "DATETIME") return column_type::timestamp;
    return column_type::text;
}

// Errors that are about the data of one row rather than the database.
bool row_error(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_CONSTRAINT || primary == SQLITE_TOOBIG || primary == SQLITE_MISMATCH;
}

}  // namespace

sqlite_backend::sqlite_backend(sqlite_options o) : opts_(std::move(o)) {}

sqlite_backend::~sqlite_backend() { close(); }

std::string sqlite_backend::physical(const table_ref& t) const {
    return t.ns.empty() ? t.name : t.ns + opts_.separator + t.name;
}

status sqlite_backend::error(const char* what, int rc) {
    std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    status st = status::retry(fmt::format("sqlite: {}: {} ({})", what, msg, opts_.path.string()));
    const int primary = rc & 0xff;
    // The connection may be unusable after these: start afresh at the next call.
    if (primary == SQLITE_IOERR || primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB ||
        primary == SQLITE_CANTOPEN || primary == SQLITE_NOMEM || primary == SQLITE_READONLY) {
        close();
    }
    return st;
}

status sqlite_backend::exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    if (err != nullptr) sqlite3_free(err);
    if (rc != SQLITE_OK) return error(sql.substr(0, 60).c_str(), rc);
    return status::success();
}

status sqlite_backend::connect() {
    if (db_ != nullptr) return status::success();
    std::error_code ec;
    if (opts_.path.has_parent_path())
        std::filesystem::create_directories(opts_.path.parent_path(), ec);
    if (ec) {
        return status::retry(fmt::format("sqlite: cannot create the directory of {}: {}",
                                         opts_.path.string(), ec.message()));
    }
    const int rc =
        sqlite3_open_v2(opts_.path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        status st = status::retry(fmt::format("sqlite: cannot open {}: {}", opts_.path.string(),
                                              db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
        close();
        return st;
    }
    sqlite3_busy_timeout(db_, static_cast<int>(opts_.busy_timeout.count()));
    sqlite3_extended_result_codes(db_, 1);
    for (const std::string& sql :
         {std::string("PRAGMA journal_mode=WAL"),
          std::string(opts_.synchronous_full ? "PRAGMA synchronous=FULL"
                                             : "PRAGMA synchronous=NORMAL"),
          std::string("PRAGMA foreign_keys=OFF"),
          // Index and table pages of a busy warehouse stay in memory (32 MiB; SQLite's default
          // is 2 MiB, which makes every batch re-read the primary-key indexes).
          std::string("PRAGMA cache_size=-32768"),
          std::string("CREATE TABLE IF NOT EXISTS _switchyard_tables (ns TEXT NOT NULL, name "
                      "TEXT NOT NULL, physical TEXT NOT NULL PRIMARY KEY)")}) {
        status st = exec(sql);
        if (!st.ok()) {
            close();
            return st;
        }
    }
    return status::success();
}

void sqlite_backend::clear_statements() {
    for (auto& [sql, st] : statements_) sqlite3_finalize(st);
    statements_.clear();
}

void sqlite_backend::close() {
    clear_statements();
    if (db_ != nullptr) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
    }
}

sqlite3_stmt* sqlite_backend::prepared(const std::string& sql, status& st) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) {
        sqlite3_reset(it->second);
        sqlite3_clear_bindings(it->second);
        return it->second;
    }
    if (statements_.size() >= 256) clear_statements();
    sqlite3_stmt* s = nullptr;
    const int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &s, nullptr);
    if (rc != SQLITE_OK) {
        st = error("prepare", rc);
        return nullptr;
    }
    statements_.emplace(sql, s);
    return s;
}

status sqlite_backend::existing_columns(const std::string& phys,
                                        std::map<std::string, std::string>& out) {
    status st;
    sqlite3_stmt* s = prepared("SELECT name, type FROM pragma_table_info(?)", st);
    if (s == nullptr) return st;
    sqlite3_bind_text(s, 1, phys.data(), static_cast<int>(phys.size()), SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        auto* n = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
        auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
        out.emplace(n ? n : "", t ? t : "");
    }
    if (rc != SQLITE_DONE) return error("table_info", rc);
    return status::success();
}

status sqlite_backend::describe(std::vector<table_info>& out) {
    status st = connect();
    if (!st.ok()) return st;
    out.clear();
    std::vector<table_info> tables;
    {
        sqlite3_stmt* s = prepared("SELECT ns, name, physical FROM _switchyard_tables", st);
        if (s == nullptr) return st;
        int rc;
        std::vector<std::string> phys;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            table_info ti;
            ti.table.ns = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
            ti.table.name = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
            tables.push_back(std::move(ti));
            phys.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 2)));
        }
        if (rc != SQLITE_DONE) return error("describe", rc);
        for (std::size_t i = 0; i < tables.size(); ++i) {
            sqlite3_stmt* c =
                prepared("SELECT name, type FROM pragma_table_info(?) ORDER BY cid", st);
            if (c == nullptr) return st;
            sqlite3_bind_text(c, 1, phys[i].data(), static_cast<int>(phys[i].size()),
                              SQLITE_TRANSIENT);
            while ((rc = sqlite3_step(c)) == SQLITE_ROW) {
                auto* n = reinterpret_cast<const char*>(sqlite3_column_text(c, 0));
                auto* t = reinterpret_cast<const char*>(sqlite3_column_text(c, 1));
                tables[i].columns.push_back({n ? n : "", type_of(t ? t : "")});
            }
            if (rc != SQLITE_DONE) return error("describe", rc);
            if (!tables[i].columns.empty()) out.push_back(std::move(tables[i]));
        }
    }
    return status::success();
}

status sqlite_backend::describe_table(const table_ref& t, table_info& out) {
    status st = connect();
    if (!st.ok()) return st;
    out.table = t;
    out.columns.clear();
    const std::string phys = physical(t);
    sqlite3_stmt* s = prepared("SELECT name, type FROM pragma_table_info(?) ORDER BY cid", st);
    if (s == nullptr) return st;
    sqlite3_bind_text(s, 1, phys.data(), static_cast<int>(phys.size()), SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        auto* n = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
        auto* ty = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
        out.columns.push_back({n ? n : "", type_of(ty ? ty : "")});
    }
    if (rc != SQLITE_DONE) return error("describe", rc);
    return status::success();
}

status sqlite_backend::create_table(const table_ref& t, std::span<const column> columns) {
    status st = connect();
    if (!st.ok()) return st;
    const std::string phys = physical(t);
    std::string sql = "CREATE TABLE IF NOT EXISTS " + quote_identifier(phys) + " (";
    bool first = true;
    for (const auto& c : columns) {
        if (!first) sql += ", ";
        first = false;
        sql += quote_identifier(c.name);
        sql += ' ';
        sql += declared_type(c.type);
        if (c.name == "id") sql += " PRIMARY KEY";
    }
    sql += ")";
    if (st = exec("BEGIN IMMEDIATE"); !st.ok()) return st;
    st = exec(sql);
    if (st.ok()) {
        sqlite3_stmt* s = prepared(
            "INSERT OR IGNORE INTO _switchyard_tables (ns, name, physical) VALUES (?, ?, ?)", st);
        if (s != nullptr) {
            sqlite3_bind_text(s, 1, t.ns.data(), static_cast<int>(t.ns.size()), SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 2, t.name.data(), static_cast<int>(t.name.size()),
                              SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 3, phys.data(), static_cast<int>(phys.size()), SQLITE_TRANSIENT);
            const int rc = sqlite3_step(s);
            if (rc != SQLITE_DONE) st = error("register table", rc);
        }
    }
    if (!st.ok()) {
        if (db_ != nullptr) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return st;
    }
    clear_statements();  // the schema changed: prepared statements recompile anyway
    return exec("COMMIT");
}

status sqlite_backend::add_columns(const table_ref& t, std::span<const column> columns) {
    status st = connect();
    if (!st.ok()) return st;
    const std::string phys = physical(t);
    if (st = exec("BEGIN IMMEDIATE"); !st.ok()) return st;
    std::map<std::string, std::string> have;
    st = existing_columns(phys, have);
    for (const auto& c : columns) {
        if (!st.ok()) break;
        if (have.count(c.name)) continue;
        st = exec("ALTER TABLE " + quote_identifier(phys) + " ADD COLUMN " +
                  quote_identifier(c.name) + " " + declared_type(c.type));
        have.emplace(c.name, declared_type(c.type));
    }
    if (!st.ok()) {
        if (db_ != nullptr) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return st;
    }
    clear_statements();
    return exec("COMMIT");
}

status sqlite_backend::apply(const load& l) {
    status st = connect();
    if (!st.ok()) return st;
    if (st = exec("BEGIN IMMEDIATE"); !st.ok()) return st;
    auto fail = [&](status s) {
        if (db_ != nullptr) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return s;
    };
    std::string ts;
    for (std::size_t w = 0; w < l.writes.size(); ++w) {
        const table_rows& tr = l.writes[w];
        const std::string target = quote_identifier(physical(tr.table));
        std::string sql = "INSERT INTO " + target + " (";
        std::string values;
        bool has_received = false;
        for (std::size_t c = 0; c < tr.columns.size(); ++c) {
            if (c) {
                sql += ", ";
                values += ", ";
            }
            sql += quote_identifier(tr.columns[c].name);
            values += '?';
            if (tr.columns[c].name == "received_at") has_received = true;
        }
        sql += ") VALUES (" + values + ") ON CONFLICT(\"id\") DO ";
        if (tr.mode == write_mode::insert_ignore) {
            sql += "NOTHING";
        } else {
            std::string set;
            for (const auto& c : tr.columns) {
                if (c.name == "id") continue;
                if (!set.empty()) set += ", ";
                const std::string q = quote_identifier(c.name);
                set += q + " = COALESCE(excluded." + q + ", " + target + "." + q + ")";
            }
            if (set.empty()) {
                sql += "NOTHING";
            } else {
                sql += "UPDATE SET " + set;
                if (has_received) {
                    sql += " WHERE excluded.\"received_at\" IS NULL OR " + target +
                           ".\"received_at\" IS NULL OR excluded.\"received_at\" >= " + target +
                           ".\"received_at\"";
                }
            }
        }
        sqlite3_stmt* s = prepared(sql, st);
        if (s == nullptr) return fail(st);
        for (std::size_t r = 0; r < tr.rows.size(); ++r) {
            sqlite3_reset(s);
            const auto& row = tr.rows[r];
            for (std::size_t c = 0; c < row.size(); ++c) {
                const cell& v = row[c];
                const int i = static_cast<int>(c) + 1;
                switch (v.k) {
                    case cell::kind::null:
                        sqlite3_bind_null(s, i);
                        break;
                    case cell::kind::boolean:
                        sqlite3_bind_int(s, i, v.b ? 1 : 0);
                        break;
                    case cell::kind::integer:
                        sqlite3_bind_int64(s, i, v.i);
                        break;
                    case cell::kind::floating:
                        sqlite3_bind_double(s, i, v.f);
                        break;
                    case cell::kind::timestamp:
                        ts = format_timestamp_us(v.i);
                        sqlite3_bind_text(s, i, ts.data(), static_cast<int>(ts.size()),
                                          SQLITE_TRANSIENT);
                        break;
                    case cell::kind::text:
                        sqlite3_bind_text64(s, i, v.s.data(), v.s.size(), SQLITE_STATIC,
                                            SQLITE_UTF8);
                        break;
                }
            }
            const int rc = sqlite3_step(s);
            if (rc != SQLITE_DONE) {
                if (row_error(rc)) {
                    std::string why = sqlite3_errmsg(db_);
                    sqlite3_reset(s);
                    return fail(status::bad(w, r, "sqlite: " + why));
                }
                sqlite3_reset(s);
                return fail(error("insert", rc));
            }
        }
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    for (const auto& d : l.deletions) {
        const std::string base = "DELETE FROM " + quote_identifier(physical(d.table)) + " WHERE " +
                                 quote_identifier(d.column) + " IN (";
        for (std::size_t i = 0; i < d.values.size(); i += 500) {
            const std::size_t n = std::min<std::size_t>(500, d.values.size() - i);
            std::string sql = base;
            for (std::size_t k = 0; k < n; ++k) sql += k ? ",?" : "?";
            sql += ")";
            sqlite3_stmt* s = prepared(sql, st);
            if (s == nullptr) return fail(st);
            for (std::size_t k = 0; k < n; ++k) {
                const auto& v = d.values[i + k];
                sqlite3_bind_text64(s, static_cast<int>(k) + 1, v.data(), v.size(), SQLITE_STATIC,
                                    SQLITE_UTF8);
            }
            const int rc = sqlite3_step(s);
            sqlite3_reset(s);
            sqlite3_clear_bindings(s);
            if (rc != SQLITE_DONE) return fail(error("delete", rc));
        }
    }
    const int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return fail(error("commit", rc));
    return status::success();
}

}  // namespace switchyard::warehouse
