#pragma once

#include "warehouse/backend.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>

struct pg_conn;
struct pg_result;

namespace switchyard::warehouse {

struct postgres_options {
    std::string dsn;  // libpq conninfo ("host=… dbname=…") or URI (postgresql://…)
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds statement_timeout{60000};  // 0 = none
    std::string application_name = "switchyard";
};

// The PostgreSQL warehouse engine, over libpq. A namespace is a schema, marked with the comment
// `switchyard warehouse` so describe() lists only schemas this loader manages. A load is one
// transaction: per table, COPY into the connection's staging table for it (a temporary table
// emptied at every commit), then INSERT … SELECT … ON
// CONFLICT (id); then the deletions. Errors are classified by SQLSTATE: data errors in COPY name
// the refused row (status::bad_row), the rest are retried. The session runs in UTC.
// Not thread-safe: one delivery worker uses it.
class postgres_backend final : public backend {
  public:
    explicit postgres_backend(postgres_options o);
    ~postgres_backend() override;
    postgres_backend(const postgres_backend&) = delete;
    postgres_backend& operator=(const postgres_backend&) = delete;

    const char* engine() const noexcept override { return "postgres"; }
    bool accepts_nul() const noexcept override { return false; }
    status connect() override;
    status describe(std::vector<table_info>& out) override;
    status describe_table(const table_ref& t, table_info& out) override;
    status create_table(const table_ref& t, std::span<const column> columns) override;
    status add_columns(const table_ref& t, std::span<const column> columns) override;
    status apply(const load& l) override;
    void close() override;

    static constexpr const char* schema_comment = "switchyard warehouse";

  private:
    // Runs `sql`; on failure returns the classified status (and rolls back / drops a broken
    // connection).
    status run(const std::string& sql, int expect);
    status classify(pg_result* r, const char* what, std::size_t write_index);
    status ensure_schema(const std::string& ns);
    void rollback();
    // Makes sure the connection has a staging table for `tr`'s target covering its columns.
    status ensure_stage(const table_rows& tr);

    struct stage_info {
        std::string name;
        std::set<std::string> columns;
    };

    postgres_options opts_;
    pg_conn* conn_ = nullptr;
    std::string where_;                       // host:port for messages (never the password)
    std::map<table_ref, stage_info> stages_;  // this connection's staging tables
    std::uint64_t stage_seq_ = 0;
};

}  // namespace switchyard::warehouse
