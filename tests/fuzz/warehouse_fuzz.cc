// Fuzz target for the warehouse loader's names: any bytes, split into an event name, a source
// name, property keys and a value, are loaded into a real SQLite warehouse. Whatever the names
// hold, no SQL may be injected: the load succeeds, every table the database has is one the
// loader named ([a-z0-9_]), the row count grows by exactly one per event, and the database
// stays intact (PRAGMA quick_check).
// Built as a libFuzzer target with clang (-fsanitize=fuzzer); otherwise the driver below
// replays the corpus directory as a normal test.
#include "util/json.h"
#include "warehouse/loader.h"
#include "warehouse/sqlite_backend.h"

#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sqlite3.h>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

namespace {

using namespace switchyard;

void check(bool ok, const char* what) {
    if (!ok) {
        std::cerr << "invariant violated: " << what << '\n';
        std::abort();
    }
}

struct world {
    std::filesystem::path dir;
    std::unique_ptr<warehouse::loader> loader;
    std::uint64_t next_id = 0;
    std::uint64_t rows = 0;
    world() {
        dir = std::filesystem::temp_directory_path() /
              ("switchyard-warehouse-fuzz-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir);
        warehouse::loader_options o;
        o.max_columns = 60;
        loader = std::make_unique<warehouse::loader>(
            std::make_unique<warehouse::sqlite_backend>(
                warehouse::sqlite_options{.path = dir / "fuzz.db"}),
            o);
    }
    ~world() {
        loader.reset();
        std::filesystem::remove_all(dir);
    }
};

world& w() {
    static world x;
    return x;
}

std::vector<std::vector<std::string>> query(const std::string& sql) {
    sqlite3* db = nullptr;
    check(sqlite3_open((w().dir / "fuzz.db").c_str(), &db) == SQLITE_OK, "database opens");
    sqlite3_stmt* st = nullptr;
    check(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK, "query prepares");
    std::vector<std::vector<std::string>> out;
    while (sqlite3_step(st) == SQLITE_ROW) {
        auto& r = out.emplace_back();
        for (int i = 0; i < sqlite3_column_count(st); ++i) {
            auto* t = sqlite3_column_text(st, i);
            r.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

bool clean(std::string_view n) {
    if (n.empty()) return false;
    for (char c : n) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    // Names reach the loader from simdjson, which only hands out valid UTF-8.
    if (!simdjson::validate_utf8(text.data(), text.size())) return 0;
    std::vector<std::string_view> parts;
    for (std::size_t start = 0;;) {
        auto nl = text.find('\n', start);
        parts.push_back(text.substr(start, nl == std::string_view::npos ? nl : nl - start));
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    while (parts.size() < 4) parts.push_back("x");
    const std::string_view event_name = parts[0], source = parts[1], value = parts.back();

    std::string json = "{\"type\":\"track\",\"event\":";
    util::append_json_string(json, event_name);
    json += ",\"properties\":{";
    for (std::size_t i = 2; i + 1 < parts.size() || i == 2; ++i) {
        if (i > 2) json += ',';
        util::append_json_string(json, parts[i]);
        json += ':';
        util::append_json_string(json, value);
    }
    json += "},\"context\":{";
    util::append_json_string(json, parts[2]);
    json += ":{\"nested\":";
    util::append_json_string(json, value);
    json += "}}}";

    const std::string id = "fuzz-" + std::to_string(++w().next_id);
    event_view v;
    v.kind = record_kind::event;
    v.type = event_type::track;
    v.received_at_ms = 1'700'000'000'000;
    v.source = source;
    v.message_id = id;
    v.user_id = value;
    v.event_name = event_name;
    v.json = json;
    delivery_item item{w().next_id, v};
    auto out = w().loader->send(std::span<const delivery_item>(&item, 1));
    check(out.status == send_status::delivered, "the load succeeds");

    for (const auto& r : query("SELECT name FROM sqlite_master WHERE type='table'")) {
        check(clean(r[0]), "every table name is sanitized");
    }
    std::uint64_t tracks_rows = 0;
    for (const auto& r : query("SELECT physical FROM _switchyard_tables WHERE name='tracks'")) {
        tracks_rows += std::stoull(query("SELECT count(*) FROM \"" + r[0] + "\"")[0][0]);
    }
    check(tracks_rows == w().next_id, "each event adds exactly one tracks row");
    check(query("PRAGMA quick_check")[0][0] == "ok", "the database is intact");
    return 0;
}

#include "replay_main.h"
