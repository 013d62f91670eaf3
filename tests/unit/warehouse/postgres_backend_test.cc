// The PostgreSQL backend against a real server (tests/support/postgres_server.h): schema
// creation and description, exact value round trips through COPY, idempotent inserts, upserts,
// deletions with awkward values, rows COPY refuses, permissions, and a server that goes away.
#include "warehouse/postgres_backend.h"

#include "support/postgres_server.h"

#include <gtest/gtest.h>

#include <limits>

namespace switchyard::warehouse {
namespace {

using switchyard::testing::postgres_server;
using ct = column_type;

class PostgresBackend : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        if (!postgres_server::available()) return;
        server_ = new postgres_server();
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override {
        if (server_ == nullptr) GTEST_SKIP() << "PostgreSQL is not installed";
        ASSERT_TRUE(server_->ok());
        // Each test works in its own namespace.
        ns_ = "t_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
        for (auto& c : ns_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    postgres_backend make(std::string dsn = {}) {
        postgres_options o;
        o.dsn = dsn.empty() ? server_->dsn() : dsn;
        o.connect_timeout = std::chrono::milliseconds(1000);
        return postgres_backend(o);
    }
    static std::vector<column> cols() {
        return {{"id", ct::text},    {"received_at", ct::timestamp},
                {"b", ct::boolean},  {"i", ct::integer},
                {"f", ct::floating}, {"t", ct::timestamp},
                {"s", ct::text}};
    }
    static postgres_server* server_;
    std::string ns_;
};
postgres_server* PostgresBackend::server_ = nullptr;

TEST_F(PostgresBackend, CreatesDescribesAndMarksItsSchemas) {
    auto b = make();
    table_ref t{ns_, "events"};
    ASSERT_TRUE(b.create_table(t, cols()).ok());
    // Again, with more columns: the table is left as it is.
    auto more = cols();
    more.push_back({"extra", ct::text});
    ASSERT_TRUE(b.create_table(t, more).ok());
    std::vector<table_info> infos;
    ASSERT_TRUE(b.describe(infos).ok());
    const table_info* mine = nullptr;
    for (const auto& i : infos) {
        if (i.table == t) mine = &i;
    }
    ASSERT_NE(mine, nullptr);
    EXPECT_EQ(mine->columns, cols());
    ASSERT_TRUE(
        b.add_columns(t, std::vector<column>{{"extra", ct::text}, {"n", ct::integer}}).ok());
    ASSERT_TRUE(b.add_columns(t, std::vector<column>{{"extra", ct::boolean}}).ok());  // exists
    ASSERT_TRUE(b.describe(infos).ok());
    for (const auto& i : infos) {
        if (i.table == t) EXPECT_EQ(i.columns.size(), 9u);
    }
    EXPECT_EQ(server_->query("SELECT obj_description('" + ns_ + "'::regnamespace)"),
              "switchyard warehouse");
    // A schema the loader did not create is not described.
    ASSERT_EQ(server_->psql("test", "CREATE SCHEMA other_" + ns_ + "; CREATE TABLE other_" + ns_ +
                                        ".x (id text)"),
              0);
    ASSERT_TRUE(b.describe(infos).ok());
    for (const auto& i : infos) EXPECT_NE(i.table.ns, "other_" + ns_);
}

TEST_F(PostgresBackend, ValuesRoundTripExactly) {
    auto b = make();
    table_ref t{ns_, "values"};
    ASSERT_TRUE(b.create_table(t, cols()).ok());
    load l;
    table_rows w;
    w.table = t;
    w.columns = cols();
    auto row = [](std::string id, cell bv, cell iv, cell fv, cell tv, cell sv) {
        return std::vector<cell>{cell::of_text(id), cell::of_timestamp_us(0), bv, iv, fv, tv, sv};
    };
    w.rows.push_back(row("a", cell::of_bool(true),
                         cell::of_int(std::numeric_limits<std::int64_t>::max()),
                         cell::of_float(0.1), cell::of_timestamp_us(-62135596800'000'000),
                         cell::of_text("tab\there\nnew\\line \"q\" 'x' é😀")));
    w.rows.push_back(row(
        "b", cell::of_bool(false), cell::of_int(std::numeric_limits<std::int64_t>::min()),
        cell::of_float(1e308), cell::of_timestamp_us(253402300799'999'999), cell::of_text("\\N")));
    w.rows.push_back(row("c", cell::null_value(), cell::null_value(), cell::of_float(-0.0),
                         cell::null_value(), cell::of_text("")));
    l.writes.push_back(w);
    ASSERT_TRUE(b.apply(l).ok());
    ASSERT_TRUE(b.apply(l).ok());  // a retried batch adds nothing
    const std::string q = "SELECT id, b, i, f, t, s FROM " + ns_ + ".values ORDER BY id";
    EXPECT_EQ(server_->query(q),
              "a|t|9223372036854775807|0.1|0001-01-01 00:00:00+00|tab\there\nnew\\line \"q\" "
              "'x' é😀\n"
              "b|f|-9223372036854775808|1e+308|9999-12-31 23:59:59.999999+00|\\N\n"
              "c|||-0||");
    EXPECT_EQ(server_->query("SELECT count(*) FROM " + ns_ + ".values WHERE s IS NULL"), "0");
}

TEST_F(PostgresBackend, UpsertKeepsTheNewestNonNullValues) {
    auto b = make();
    table_ref t{ns_, "users"};
    std::vector<column> c = {
        {"id", ct::text}, {"received_at", ct::timestamp}, {"plan", ct::text}, {"email", ct::text}};
    ASSERT_TRUE(b.create_table(t, c).ok());
    auto up = [&](std::int64_t at, cell plan, cell email) {
        load l;
        table_rows w;
        w.table = t;
        w.mode = write_mode::upsert;
        w.columns = c;
        w.rows.push_back({cell::of_text("u1"), cell::of_timestamp_us(at), plan, email});
        l.writes.push_back(w);
        return b.apply(l).ok();
    };
    ASSERT_TRUE(up(1000, cell::of_text("free"), cell::of_text("a@x")));
    ASSERT_TRUE(up(2000, cell::of_text("pro"), cell::null_value()));
    EXPECT_EQ(server_->query("SELECT plan, email FROM " + ns_ + ".users"), "pro|a@x");
    ASSERT_TRUE(up(1500, cell::of_text("older"), cell::of_text("old@x")));  // older: ignored
    EXPECT_EQ(server_->query("SELECT plan, email FROM " + ns_ + ".users"), "pro|a@x");
}

TEST_F(PostgresBackend, DeletesByAwkwardValues) {
    auto b = make();
    table_ref t{ns_, "tracks"};
    std::vector<column> c = {{"id", ct::text}, {"user_id", ct::text}};
    ASSERT_TRUE(b.create_table(t, c).ok());
    const std::vector<std::string> users = {"plain",    "with \"quote\"", "back\\slash",
                                            "{brace,}", "it's",           "keep"};
    load l;
    table_rows w;
    w.table = t;
    w.columns = c;
    for (std::size_t i = 0; i < users.size(); ++i) {
        w.rows.push_back({cell::of_text(std::to_string(i)), cell::of_text(users[i])});
    }
    l.writes.push_back(w);
    ASSERT_TRUE(b.apply(l).ok());
    load d;
    d.deletions.push_back({t, "user_id", {users.begin(), users.end() - 1}});
    d.deletions.back().values.push_back(std::string("nul\0inside", 10));  // skipped, no error
    ASSERT_TRUE(b.apply(d).ok());
    EXPECT_EQ(server_->query("SELECT user_id FROM " + ns_ + ".tracks"), "keep");
}

TEST_F(PostgresBackend, RefusedRowIsNamedAndNothingIsApplied) {
    auto b = make();
    table_ref a{ns_, "first"}, t{ns_, "checked"};
    std::vector<column> c = {{"id", ct::text}, {"code", ct::text}};
    ASSERT_TRUE(b.create_table(a, c).ok());
    ASSERT_TRUE(b.create_table(t, c).ok());
    ASSERT_EQ(server_->psql("test", "ALTER TABLE " + ns_ +
                                        ".checked ADD CONSTRAINT short CHECK (length(code) < 4)"),
              0);
    load l;
    l.writes.push_back(
        {a, write_mode::insert_ignore, c, {{cell::of_text("x"), cell::of_text("1")}}});
    l.writes.push_back({t,
                        write_mode::insert_ignore,
                        c,
                        {{cell::of_text("1"), cell::of_text("ok")},
                         {cell::of_text("2"), cell::of_text("too long")},
                         {cell::of_text("3"), cell::of_text("ok")}}});
    status st = b.apply(l);
    ASSERT_EQ(st.c, status::code::bad_row) << st.reason;
    EXPECT_EQ(st.write_index, 1u);
    EXPECT_EQ(st.row_index, 1u);
    EXPECT_NE(st.reason.find("23514"), std::string::npos) << st.reason;
    EXPECT_EQ(server_->query("SELECT count(*) FROM " + ns_ + ".first"), "0");
    l.writes[1].rows.erase(l.writes[1].rows.begin() + 1);
    ASSERT_TRUE(b.apply(l).ok());
    EXPECT_EQ(server_->query("SELECT count(*) FROM " + ns_ + ".checked"), "2");
}

TEST_F(PostgresBackend, StagingFollowsTheTargetsColumns) {
    auto b = make();
    table_ref t{ns_, "grows"};
    std::vector<column> c = {{"id", ct::text}, {"a", ct::integer}};
    ASSERT_TRUE(b.create_table(t, c).ok());
    auto put = [&](std::vector<column> cols, std::vector<cell> row) {
        load l;
        l.writes.push_back({t, write_mode::insert_ignore, std::move(cols), {std::move(row)}});
        return b.apply(l);
    };
    ASSERT_TRUE(put(c, {cell::of_text("1"), cell::of_int(1)}).ok());
    ASSERT_TRUE(put(c, {cell::of_text("2"), cell::of_int(2)}).ok());  // the same stage again
    // A column added between loads: the connection's staging table is remade to include it.
    ASSERT_TRUE(b.add_columns(t, std::vector<column>{{"b", ct::text}}).ok());
    ASSERT_TRUE(
        put({{"id", ct::text}, {"b", ct::text}}, {cell::of_text("3"), cell::of_text("x")}).ok());
    // Rows never stay behind in a stage: each load sees only its own.
    EXPECT_EQ(server_->query("SELECT id, a, b FROM " + ns_ + ".grows ORDER BY id"),
              "1|1|\n2|2|\n3||x");
}

TEST_F(PostgresBackend, IdentifiersAreQuotedNotInjected) {
    auto b = make();
    table_ref t{ns_, "x\"; DROP TABLE y; --"};
    std::vector<column> c = {{"id", ct::text}, {"a\"b", ct::text}};
    ASSERT_TRUE(b.create_table(t, c).ok());
    std::vector<table_info> infos;
    ASSERT_TRUE(b.describe(infos).ok());
    bool found = false;
    for (const auto& i : infos) found = found || i.table == t;
    EXPECT_TRUE(found);
}

TEST_F(PostgresBackend, PermissionErrorsAreRetriedWithTheirSqlstate) {
    ASSERT_EQ(server_->psql("test", "CREATE ROLE nobody_" + ns_ +
                                        " LOGIN; REVOKE CREATE ON "
                                        "DATABASE test FROM PUBLIC; REVOKE CREATE ON SCHEMA public "
                                        "FROM PUBLIC"),
              0);
    auto b = make(server_->dsn("nobody_" + ns_));
    status st = b.create_table({ns_ + "_denied", "t"}, cols());
    EXPECT_EQ(st.c, status::code::retry);
    EXPECT_NE(st.reason.find("42501"), std::string::npos) << st.reason;
}

TEST_F(PostgresBackend, UnreachableServerIsRetriedAndRecovers) {
    postgres_server own;
    ASSERT_TRUE(own.ok());
    postgres_options o;
    o.dsn = own.dsn();
    o.connect_timeout = std::chrono::milliseconds(1000);
    postgres_backend b(o);
    table_ref t{"s", "t"};
    std::vector<column> c = {{"id", ct::text}};
    ASSERT_TRUE(b.create_table(t, c).ok());
    own.stop();
    load l;
    l.writes.push_back({t, write_mode::insert_ignore, c, {{cell::of_text("1")}}});
    status st = b.apply(l);
    EXPECT_EQ(st.c, status::code::retry);
    EXPECT_FALSE(st.reason.empty());
    st = b.apply(l);  // still down: a fresh connect attempt fails the same way
    EXPECT_EQ(st.c, status::code::retry);
    ASSERT_TRUE(own.start());
    ASSERT_TRUE(b.apply(l).ok()) << "the same backend reconnects";
    EXPECT_EQ(own.query("SELECT count(*) FROM s.t"), "1");
}

}  // namespace
}  // namespace switchyard::warehouse
