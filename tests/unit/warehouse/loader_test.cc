// The engine-neutral loader over a real SQLite database: schema evolution sequences, the type
// lattice and _discards, the column budget and _extra, idempotent retries, deletions in batch
// order, rows the engine refuses, and failures that must be retried.
#include "warehouse/loader.h"

#include "warehouse/sqlite_backend.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <sqlite3.h>

namespace switchyard::warehouse {
namespace {

namespace fs = std::filesystem;

// Wraps the SQLite backend to inject failures and to pretend NUL cannot be stored.
class faulty_backend final : public backend {
  public:
    explicit faulty_backend(const fs::path& db) : inner_(sqlite_options{.path = db}) {}
    const char* engine() const noexcept override { return "sqlite"; }
    bool accepts_nul() const noexcept override { return accepts_nul_; }
    status connect() override { return fail_all_ ? status::retry("down") : inner_.connect(); }
    status describe(std::vector<table_info>& out) override {
        return fail_all_ ? status::retry("down") : inner_.describe(out);
    }
    status describe_table(const table_ref& t, table_info& out) override {
        return fail_all_ ? status::retry("down") : inner_.describe_table(t, out);
    }
    status create_table(const table_ref& t, std::span<const column> c) override {
        return fail_all_ ? status::retry("down") : inner_.create_table(t, c);
    }
    status add_columns(const table_ref& t, std::span<const column> c) override {
        return fail_all_ ? status::retry("down") : inner_.add_columns(t, c);
    }
    status apply(const load& l) override {
        ++applies;
        if (fail_all_) return status::retry("down");
        if (refuse) {
            for (std::size_t w = 0; w < l.writes.size(); ++w) {
                for (std::size_t r = 0; r < l.writes[w].rows.size(); ++r) {
                    if (refuse(l.writes[w].rows[r])) return status::bad(w, r, "refused by test");
                }
            }
        }
        return inner_.apply(l);
    }
    void close() override { inner_.close(); }

    bool fail_all_ = false;
    bool accepts_nul_ = true;
    int applies = 0;
    std::function<bool(const std::vector<cell>&)> refuse;

  private:
    sqlite_backend inner_;
};

struct record {
    record_kind kind = record_kind::event;
    event_type type = event_type::track;
    std::string id, user, anon, event, json;
};

class WarehouseLoader : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("switchyard-loader-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        db_ = dir_ / "wh.db";
    }
    void TearDown() override {
        loader_.reset();
        fs::remove_all(dir_);
    }

    loader& make(loader_options o = {}) {
        auto b = std::make_unique<faulty_backend>(db_);
        fb_ = b.get();
        loader_ = std::make_unique<loader>(std::move(b), o);
        return *loader_;
    }

    static record track(std::string id, std::string event, std::string props,
                        std::string user = "u") {
        record r;
        r.id = id;
        r.user = user;
        r.event = event;
        r.json = R"({"type":"track","messageId":")" + id + R"(","event":")" + event +
                 R"(","userId":")" + user + R"(","properties":)" + props + "}";
        return r;
    }

    send_outcome send(const std::vector<record>& recs) {
        std::vector<delivery_item> items;
        std::uint64_t off = 0;
        for (const auto& r : recs) {
            event_view v;
            v.kind = r.kind;
            v.type = r.type;
            v.received_at_ms = 1'700'000'000'000 + clock_++;  // later sends are newer
            v.source = "web";
            v.message_id = r.id;
            v.user_id = r.user;
            v.anonymous_id = r.anon;
            v.event_name = r.event;
            v.json = r.json;
            items.push_back({off++, v});
        }
        return loader_->send(items);
    }

    // Every row of `sql`, values as text ("NULL" for null).
    std::vector<std::vector<std::string>> q(const std::string& sql) {
        sqlite3* db = nullptr;
        EXPECT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
        sqlite3_stmt* st = nullptr;
        std::vector<std::vector<std::string>> out;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
            ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
            sqlite3_close(db);
            return out;
        }
        while (sqlite3_step(st) == SQLITE_ROW) {
            auto& row = out.emplace_back();
            for (int i = 0; i < sqlite3_column_count(st); ++i) {
                auto* t = sqlite3_column_text(st, i);
                row.emplace_back(t ? reinterpret_cast<const char*>(t) : "NULL");
            }
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        return out;
    }

    std::map<std::string, std::string> columns(const std::string& table) {
        std::map<std::string, std::string> m;
        for (auto& r : q("PRAGMA table_info(\"" + table + "\")")) m[r[1]] = r[2];
        return m;
    }

    fs::path dir_, db_;
    std::unique_ptr<loader> loader_;
    faulty_backend* fb_ = nullptr;
    std::int64_t clock_ = 0;
};

TEST_F(WarehouseLoader, SchemaEvolvesBatchByBatch) {
    make();
    ASSERT_EQ(send({track("1", "Buy", R"({"a":1})")}).status, send_status::delivered);
    EXPECT_EQ(columns("web_buy")["a"], "INTEGER");
    // A batch that first shows a key decides its type as the join of what it carries.
    ASSERT_EQ(send({track("2", "Buy", R"({"b":1})"), track("3", "Buy", R"({"b":1.5})"),
                    track("4", "Buy", R"({"c":true})"),
                    track("5", "Buy", R"({"d":"2024-01-01T00:00:00Z"})"),
                    track("6", "Buy", R"({"e":"2024-01-01T00:00:00Z"})"),
                    track("7", "Buy", R"({"e":5})")})
                  .status,
              send_status::delivered);
    auto c = columns("web_buy");
    EXPECT_EQ(c["b"], "REAL");
    EXPECT_EQ(c["c"], "BOOLEAN");
    EXPECT_EQ(c["d"], "TIMESTAMP");
    EXPECT_EQ(c["e"], "TEXT");  // timestamp joined with integer
    EXPECT_EQ(q("SELECT b FROM web_buy WHERE id='2'")[0][0], "1.0");
    EXPECT_EQ(q("SELECT e FROM web_buy WHERE id='6'")[0][0], "2024-01-01T00:00:00Z");
    EXPECT_EQ(q("SELECT e FROM web_buy WHERE id='7'")[0][0], "5");
    EXPECT_EQ(q("SELECT d FROM web_buy WHERE id='5'")[0][0], "2024-01-01T00:00:00.000000Z");
    EXPECT_TRUE(q("SELECT name FROM sqlite_master WHERE name='web__discards'").empty());
    EXPECT_GE(loader_->stats().columns_added.load(), 4u);
}

TEST_F(WarehouseLoader, ConflictsGoToDiscardsAndTheRowIsKept) {
    make();
    ASSERT_EQ(send({track("1", "E", R"({"n":1,"t":"2024-01-01T00:00:00Z","f":true})")}).status,
              send_status::delivered);
    ASSERT_EQ(send({track("2", "E", R"({"n":"one","t":"soon","f":7})")}).status,
              send_status::delivered);
    EXPECT_EQ(q("SELECT n, t, f FROM web_e WHERE id='2'"),
              (std::vector<std::vector<std::string>>{{"NULL", "NULL", "NULL"}}));
    auto d =
        q("SELECT table_name, column_name, row_id, column_type, value, reason, user_id "
          "FROM web__discards WHERE table_name='e' ORDER BY column_name");
    ASSERT_EQ(d.size(), 3u);
    EXPECT_EQ(d[0],
              (std::vector<std::string>{"e", "f", "2", "boolean", "7",
                                        "an integer value does not fit the boolean column", "u"}));
    EXPECT_EQ(d[1][4], "\"one\"");
    EXPECT_EQ(d[2][4], "\"soon\"");
    // Sending the same batch again (a retry) adds nothing anywhere.
    ASSERT_EQ(send({track("2", "E", R"({"n":"one","t":"soon","f":7})")}).status,
              send_status::delivered);
    EXPECT_EQ(q("SELECT count(*) FROM web_e")[0][0], "2");
    EXPECT_EQ(q("SELECT count(*) FROM web__discards")[0][0], "6");  // 3 in e, 3 in tracks
}

TEST_F(WarehouseLoader, ColumnBudgetSpillsToExtra) {
    loader_options o;
    o.max_columns = 20;  // tracks' 10 standard columns + context + a few properties
    make(o);
    std::string props = "{";
    for (int i = 0; i < 30; ++i)
        props += (i ? "," : "") + ("\"p" + std::to_string(i) + "\":" + std::to_string(i));
    props += "}";
    ASSERT_EQ(send({track("1", "Wide", props)}).status, send_status::delivered);
    auto c = columns("web_wide");
    EXPECT_EQ(c.size(), 21u);  // 20 + _extra
    ASSERT_TRUE(c.count("_extra"));
    const std::string extra = q("SELECT _extra FROM web_wide")[0][0];
    int in_columns = 0, in_extra = 0;
    for (int i = 0; i < 30; ++i) {
        const std::string k = "p" + std::to_string(i);
        if (c.count(k)) {
            EXPECT_EQ(q("SELECT " + k + " FROM web_wide")[0][0], std::to_string(i));
            ++in_columns;
        } else {
            EXPECT_NE(extra.find("\"" + k + "\":" + std::to_string(i)), std::string::npos) << k;
            ++in_extra;
        }
    }
    EXPECT_EQ(in_columns + in_extra, 30);
    EXPECT_GT(in_extra, 0);
    // A later batch with a new key: the table is full, so it goes to _extra too.
    ASSERT_EQ(send({track("2", "Wide", R"({"p0":1,"brand_new":"x"})")}).status,
              send_status::delivered);
    EXPECT_EQ(columns("web_wide").size(), 21u);
    EXPECT_EQ(q("SELECT _extra FROM web_wide WHERE id='2'")[0][0], R"({"brand_new":"x"})");
}

TEST_F(WarehouseLoader, DeletionsApplyInBatchOrder) {
    make();
    record del;
    del.kind = record_kind::deletion;
    del.type = event_type::unknown;
    del.id = "del-1";
    del.json =
        R"({"type":"deletion","userIds":["gone"],"anonymousIds":["anon-g"],"deviceIds":["dev-g"]})";
    record identify;
    identify.type = event_type::identify;
    identify.id = "i1";
    identify.user = "gone";
    identify.json = R"({"type":"identify","userId":"gone","traits":{"email":"g@x"}})";
    record anon = track("3", "E", "{}", "");
    anon.anon = "anon-g";
    anon.json = R"({"type":"track","event":"E","anonymousId":"anon-g","properties":{}})";
    record device = track("4", "E", "{}", "someone");
    device.json = R"({"type":"track","event":"E","context":{"device":{"id":"dev-g"}}})";
    ASSERT_EQ(send({identify, track("1", "E", "{}", "gone"), anon, device,
                    track("2", "E", "{}", "kept"), del, track("5", "E", "{}", "gone")})
                  .status,
              send_status::delivered);
    // Everything before the deletion is gone; the event after it (no suppression here) stays.
    EXPECT_EQ(q("SELECT id FROM web_tracks ORDER BY id"),
              (std::vector<std::vector<std::string>>{{"2"}, {"5"}}));
    EXPECT_EQ(q("SELECT count(*) FROM web_users")[0][0], "0");
    EXPECT_EQ(q("SELECT count(*) FROM web_identifies")[0][0], "0");
    EXPECT_EQ(loader_->stats().deletions.load(), 1u);
}

TEST_F(WarehouseLoader, UsersKeepTheNewestTraits) {
    make();
    auto ident = [](std::string id, std::string traits) {
        record r;
        r.type = event_type::identify;
        r.id = id;
        r.user = "u1";
        r.json = R"({"type":"identify","userId":"u1","traits":)" + traits + "}";
        return r;
    };
    ASSERT_EQ(
        send({ident("1", R"({"plan":"free","email":"a@x"})"), ident("2", R"({"plan":"pro"})")})
            .status,
        send_status::delivered);
    EXPECT_EQ(q("SELECT plan, email FROM web_users"),
              (std::vector<std::vector<std::string>>{{"pro", "a@x"}}));
    ASSERT_EQ(send({ident("3", R"({"plan":"team","seats":3})")}).status, send_status::delivered);
    EXPECT_EQ(q("SELECT plan, email, seats FROM web_users"),
              (std::vector<std::vector<std::string>>{{"team", "a@x", "3"}}));
    EXPECT_EQ(q("SELECT count(*) FROM web_identifies")[0][0], "3");
}

TEST_F(WarehouseLoader, RefusedRowsMoveWholeToDiscards) {
    make();
    fb_->refuse = [](const std::vector<cell>& row) {
        for (const auto& c : row) {
            if (c.k == cell::kind::text && c.s == "poison") return true;
        }
        return false;
    };
    ASSERT_EQ(send({track("1", "E", R"({"v":"fine"})"), track("2", "E", R"({"v":"poison"})"),
                    track("3", "E", R"({"v":"fine"})")})
                  .status,
              send_status::delivered);
    EXPECT_EQ(q("SELECT id FROM web_e ORDER BY id"),
              (std::vector<std::vector<std::string>>{{"1"}, {"3"}}));
    auto d = q("SELECT table_name, column_name, row_id, value, reason FROM web__discards");
    ASSERT_FALSE(d.empty());
    EXPECT_EQ(d[0][2], "2");
    EXPECT_EQ(d[0][1], "");
    EXPECT_NE(d[0][3].find("\"poison\""), std::string::npos);  // the whole record
    EXPECT_NE(d[0][4].find("refused by test"), std::string::npos);
    EXPECT_GE(loader_->stats().refused_rows.load(), 1u);
}

TEST_F(WarehouseLoader, FailuresAreRetriedNotDropped) {
    make();
    fb_->fail_all_ = true;
    auto out = send({track("1", "E", "{}")});
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_NE(out.reason.find("down"), std::string::npos);
    EXPECT_FALSE(loader_->healthy());
    fb_->fail_all_ = false;
    EXPECT_EQ(send({track("1", "E", "{}")}).status, send_status::delivered);
    EXPECT_TRUE(loader_->healthy());
    EXPECT_EQ(q("SELECT count(*) FROM web_e")[0][0], "1");
}

TEST_F(WarehouseLoader, NulIsDiscardedWhereTheEngineCannotStoreIt) {
    make();
    fb_->accepts_nul_ = false;
    record r = track("1", "E", R"({"s":"a\u0000b","ok":"yes"})");
    ASSERT_EQ(send({r}).status, send_status::delivered);
    EXPECT_EQ(q("SELECT s, ok FROM web_e"),
              (std::vector<std::vector<std::string>>{{"NULL", "yes"}}));
    EXPECT_EQ(q("SELECT value FROM web__discards WHERE table_name='e'")[0][0], "\"a\\u0000b\"");
    // An id the engine cannot store sends the whole record to discards.
    record bad = track(std::string("x\0y", 3), "E", "{}");
    bad.json = R"({"type":"track","event":"E","messageId":"x\u0000y"})";
    ASSERT_EQ(send({bad}).status, send_status::delivered);
    EXPECT_EQ(q("SELECT count(*) FROM web_e")[0][0], "1");
    EXPECT_EQ(q("SELECT count(*) FROM web__discards WHERE column_name='' AND table_name='e'")[0][0],
              "1");
}

TEST_F(WarehouseLoader, TwoLoadersShareOneSchema) {
    make();
    // A second loader on the same database reads the (empty) schema first...
    loader other(std::make_unique<sqlite_backend>(sqlite_options{.path = db_}), {});
    ASSERT_EQ(send({track("1", "E", R"({"a":1})")}).status, send_status::delivered);
    // ...then meets tables the first one created meanwhile: it adds its own columns to them
    // rather than parking its values in _extra.
    event_view v;
    v.type = event_type::track;
    v.received_at_ms = 1'700'000'000'500;
    v.source = "web";
    v.message_id = "2";
    v.event_name = "E";
    v.json = R"({"type":"track","event":"E","properties":{"a":2,"b":"x"}})";
    delivery_item item{0, v};
    ASSERT_EQ(other.send(std::span<const delivery_item>(&item, 1)).status, send_status::delivered);
    EXPECT_EQ(q("SELECT id, a, b FROM web_e ORDER BY id"),
              (std::vector<std::vector<std::string>>{{"1", "1", "NULL"}, {"2", "2", "x"}}));
    EXPECT_FALSE(columns("web_e").count("_extra"));
    // And the first loader, whose cache predates column b, still loads (b is found on add).
    ASSERT_EQ(send({track("3", "E", R"({"b":"y"})")}).status, send_status::delivered);
    EXPECT_EQ(q("SELECT b FROM web_e WHERE id='3'")[0][0], "y");
}

TEST_F(WarehouseLoader, UnreadableRecordsAreKept) {
    make();
    record r = track("1", "E", "{}");
    r.json = "{not json";
    ASSERT_EQ(send({r, track("2", "E", "{}")}).status, send_status::delivered);
    EXPECT_EQ(q("SELECT row_id, value FROM web__discards"),
              (std::vector<std::vector<std::string>>{{"1", "{not json"}}));
    EXPECT_EQ(q("SELECT count(*) FROM web_tracks")[0][0], "1");
}

TEST_F(WarehouseLoader, RandomSequencesNeverLoseAValue) {
    // Random keys and value types over many batches: every value sent is found in its column,
    // in _extra, or in _discards.
    loader_options o;
    o.max_columns = 24;
    make(o);
    std::mt19937 rng(11);
    const char* values[] = {"1",  "2.5",   "true",      "\"txt\"", "\"2024-02-03T04:05:06Z\"",
                            "-7", "[1,2]", "{\"in\":1}"};
    int id = 0;
    std::size_t sent_values = 0;
    for (int batch = 0; batch < 20; ++batch) {
        std::vector<record> recs;
        for (int i = 0; i < 10; ++i) {
            std::string props = "{";
            for (int k = 0; k < 6; ++k) {
                if (k) props += ',';
                props += "\"k" + std::to_string(rng() % 25) + "x" + std::to_string(k) +
                         "\":" + values[rng() % 8];
                ++sent_values;
            }
            props += "}";
            recs.push_back(track(std::to_string(++id), "R", props));
        }
        ASSERT_EQ(send(recs).status, send_status::delivered);
    }
    EXPECT_EQ(q("SELECT count(*) FROM web_r")[0][0], std::to_string(id));
    // Count stored values in web_r: non-null property columns + _extra members + discards.
    auto cols = columns("web_r");
    std::size_t found = 0;
    for (const auto& [name, type] : cols) {
        if (name.rfind('k', 0) != 0) continue;
        found += std::stoul(q("SELECT count(\"" + name + "\") FROM web_r")[0][0]);
    }
    for (auto& r : q("SELECT _extra FROM web_r WHERE _extra IS NOT NULL")) {
        // Members are "kNNxK":value; count the keys.
        std::size_t pos = 0;
        while ((pos = r[0].find("\"k", pos)) != std::string::npos) {
            ++found;
            ++pos;
        }
    }
    found += std::stoul(q("SELECT count(*) FROM web__discards WHERE table_name='r'")[0][0]);
    // A key drawn twice in one event is one value (the keys differ by their xK suffix, so no).
    EXPECT_EQ(found, sent_values);
}

}  // namespace
}  // namespace switchyard::warehouse
