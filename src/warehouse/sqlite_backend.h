#pragma once

#include "warehouse/backend.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace switchyard::warehouse {

struct sqlite_options {
    std::filesystem::path path;  // the database file; its directory is created on connect
    std::chrono::milliseconds busy_timeout{5000};
    // WAL with synchronous=NORMAL survives a crash of the process; FULL also a power loss.
    bool synchronous_full = false;
    std::string separator = "_";  // between the namespace and the table name
};

// The SQLite warehouse engine. A namespace is a table-name prefix (`<ns>_<table>`); the tables
// the loader created are listed in `_switchyard_tables`, which is what describe() reads, so
// other tables in the file are never touched. Values: booleans 0/1, integers, REAL, timestamps
// as fixed-width UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, so text order is time order), text.
// Not thread-safe: one delivery worker uses it.
class sqlite_backend final : public backend {
  public:
    explicit sqlite_backend(sqlite_options o);
    ~sqlite_backend() override;
    sqlite_backend(const sqlite_backend&) = delete;
    sqlite_backend& operator=(const sqlite_backend&) = delete;

    const char* engine() const noexcept override { return "sqlite"; }
    bool accepts_nul() const noexcept override { return true; }
    status connect() override;
    status describe(std::vector<table_info>& out) override;
    status describe_table(const table_ref& t, table_info& out) override;
    status create_table(const table_ref& t, std::span<const column> columns) override;
    status add_columns(const table_ref& t, std::span<const column> columns) override;
    status apply(const load& l) override;
    void close() override;

    // The table's name in the file.
    std::string physical(const table_ref& t) const;

  private:
    status error(const char* what, int rc);
    status exec(const std::string& sql);
    sqlite3_stmt* prepared(const std::string& sql, status& st);
    void clear_statements();
    status existing_columns(const std::string& phys, std::map<std::string, std::string>& out);

    sqlite_options opts_;
    sqlite3* db_ = nullptr;
    std::map<std::string, sqlite3_stmt*> statements_;  // SQL text -> prepared statement
};

}  // namespace switchyard::warehouse
