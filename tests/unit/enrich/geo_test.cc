#include "enrich/geo/geo.h"

#include "unit/log/temp_dir.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

namespace switchyard::enrich::geo {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---- test databases, built with tests/support/make_mmdb.pl ---------------------------------

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) {
        if (c == '\'') {
            q += "'\\''";
        } else {
            q += c;
        }
    }
    return q + "'";
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
}

bool writer_available() {
    static const bool ok =
        // NOLINTNEXTLINE(concurrency-mt-unsafe): the test's main thread only
        std::system("perl -MMaxMind::DB::Writer::Tree -MJSON::PP -e1 >/dev/null 2>&1") == 0;
    return ok;
}

// Specs written by the tests themselves (the fixtures are tests/fixtures/geo/*.json).
const std::map<std::string, std::string>& inline_specs() {
    static const std::map<std::string, std::string> specs = {
        // The reload tests swap v1 for v2: one network whose country changes.
        {"v1", R"({"database_type": "Test-City", "ip_version": 6, "record_size": 24,
                   "build_epoch": 1000,
                   "networks": [{"network": "203.0.113.0/24",
                                 "data": {"country": {"iso_code": "DE"},
                                          "city": {"names": {"en": "Berlin"}}}}]})"},
        {"v2", R"({"database_type": "Test-City-2", "ip_version": 6, "record_size": 24,
                   "build_epoch": 2000,
                   "networks": [{"network": "203.0.113.0/24",
                                 "data": {"country": {"iso_code": "FR"},
                                          "city": {"names": {"en": "Paris"}}}}]})"},
        // IPv4-only, with a latitude of the wrong type, a postal that is a string instead of a
        // map, and a city name that the test patches
        // into bytes that are not UTF-8 (the writer only writes valid UTF-8).
        {"v4_odd", R"({"database_type": "Test-IPv4", "ip_version": 4, "record_size": 24,
                       "types": {"latitude": "utf8_string", "postal": "utf8_string"},
                       "networks": [{"network": "203.0.113.0/24",
                                     "data": {"country": {"iso_code": "DE"},
                                              "city": {"names": {"en": "Berlin"}},
                                              "postal": "10115",
                                              "location": {"latitude": "52.52",
                                                           "longitude": 13.405}}},
                                    {"network": "198.51.100.0/24",
                                     "data": {"country": {"iso_code": "FR"},
                                              "city": {"names": {"en": "@NOT-UTF8@"}}}}]})"},
    };
    return specs;
}

// Builds (once per process) and returns the path of a test database: "city" and "asn" from the
// fixtures, or one of inline_specs(). Fails the test on a build error.
class databases {
  public:
    static databases& get() {
        static databases d;
        return d;
    }

    [[nodiscard]] const fs::path& dir() const { return dir_.path(); }

    std::string path(const std::string& name) {
        auto it = built_.find(name);
        if (it != built_.end()) return it->second;
        fs::path spec;
        if (auto s = inline_specs().find(name); s != inline_specs().end()) {
            spec = dir() / (name + ".json");
            write_file(spec, s->second);
        } else {
            spec = fs::path(SWITCHYARD_TEST_SOURCE_DIR) / "tests/fixtures/geo" / (name + ".json");
        }
        fs::path out = dir() / (name + ".mmdb");
        fs::path log = dir() / (name + ".log");
        std::string cmd =
            "perl " +
            quote(std::string(SWITCHYARD_TEST_SOURCE_DIR) + "/tests/support/make_mmdb.pl") + " " +
            quote(spec) + " " + quote(out) + " >" + quote(log) + " 2>&1";
        if (std::system(cmd.c_str()) != 0) {  // NOLINT(concurrency-mt-unsafe): main thread only
            ADD_FAILURE() << "make_mmdb.pl failed for " << name << ": " << read_file(log);
            return {};
        }
        return built_[name] = out;
    }

  private:
    switchyard::test::temp_dir dir_{"switchyard-geo-test"};
    std::map<std::string, std::string> built_;
};

std::shared_ptr<const database> open_db(const std::string& name) {
    std::string path = databases::get().path(name);
    if (path.empty()) return nullptr;
    std::string err;
    auto db = database::open(path, err);
    EXPECT_TRUE(db) << err;
    return db;
}

#define REQUIRE_WRITER()                                                                   \
    do {                                                                                   \
        if (!writer_available()) GTEST_SKIP() << "perl MaxMind::DB::Writer not installed"; \
    } while (0)

// ---- field names ----------------------------------------------------------------------------

TEST(GeoFields, NamesRoundTrip) {
    const char* names[] = {"country",  "country_name", "region",         "region_name",
                           "city",     "postal_code",  "latitude",       "longitude",
                           "timezone", "asn",          "as_organization"};
    std::uint32_t seen = 0;
    for (const char* n : names) {
        auto f = field_from_name(n);
        ASSERT_TRUE(f) << n;
        EXPECT_EQ(field_name(static_cast<field>(*f)), n);
        EXPECT_EQ(seen & *f, 0u) << n;
        seen |= *f;
    }
    EXPECT_EQ(seen, all_fields);
    EXPECT_EQ(all_fields & ~all_location_fields, asn | as_organization);
    for (const char* bad : {"", "Country", "country ", "iso_code", "lat", "region_code"}) {
        EXPECT_FALSE(field_from_name(bad)) << bad;
    }
    EXPECT_EQ(field_name(static_cast<field>(country | city)), "");
    EXPECT_EQ(field_name(static_cast<field>(1u << 20)), "");
}

// ---- lookups against the City fixture ---------------------------------------------------------

class GeoLookup : public ::testing::Test {
  protected:
    void SetUp() override {
        REQUIRE_WRITER();
        city_ = open_db("city");
        ASSERT_TRUE(city_);
    }
    std::shared_ptr<const database> city_;
};

TEST_F(GeoLookup, Metadata) {
    EXPECT_EQ(city_->type(), "GeoLite2-City");
    EXPECT_EQ(city_->build_epoch(), 1700000000u);
}

TEST_F(GeoLookup, IPv4AllFields) {
    location l;
    ASSERT_TRUE(city_->lookup("203.0.113.77", all_location_fields, l));
    EXPECT_TRUE(l.found);
    EXPECT_EQ(l.country, "DE");
    EXPECT_EQ(l.country_name, "Germany");
    EXPECT_EQ(l.region, "BE");
    EXPECT_EQ(l.region_name, "Land Berlin");
    EXPECT_EQ(l.city, "Berlin");
    EXPECT_EQ(l.postal_code, "10115");
    EXPECT_TRUE(l.has_latitude);
    EXPECT_DOUBLE_EQ(l.latitude, 52.52);
    EXPECT_TRUE(l.has_longitude);
    EXPECT_DOUBLE_EQ(l.longitude, 13.405);
    EXPECT_EQ(l.timezone, "Europe/Berlin");
    EXPECT_EQ(l.asn, 0u);  // not asked for, and not in a City database
    EXPECT_EQ(l.as_organization, "");
}

TEST_F(GeoLookup, IPv6AllFields) {
    location l;
    ASSERT_TRUE(city_->lookup("2001:db8:1::abcd", all_location_fields, l));
    EXPECT_EQ(l.country, "JP");
    EXPECT_EQ(l.country_name, "Japan");
    EXPECT_EQ(l.region, "13");
    EXPECT_EQ(l.region_name, "Tokyo");
    EXPECT_EQ(l.city, "Tokyo");
    EXPECT_EQ(l.postal_code, "100-0001");
    EXPECT_DOUBLE_EQ(l.latitude, 35.6895);
    EXPECT_DOUBLE_EQ(l.longitude, 139.6917);
    EXPECT_EQ(l.timezone, "Asia/Tokyo");

    ASSERT_TRUE(city_->lookup("2001:DB8:2:0:0:0:0:1", all_location_fields, l));
    EXPECT_EQ(l.country, "BR");
    EXPECT_EQ(l.city, "S\xC3\xA3o Paulo");
    EXPECT_EQ(l.postal_code, "");  // the record has none
    EXPECT_DOUBLE_EQ(l.latitude, -23.5475);
    EXPECT_DOUBLE_EQ(l.longitude, -46.63611);
}

TEST_F(GeoLookup, IPv4MappedIsLookedUpAsIPv4) {
    for (const char* ip :
         {"::ffff:203.0.113.77", "::FFFF:cb00:714d", "0:0:0:0:0:ffff:203.0.113.1"}) {
        location l;
        ASSERT_TRUE(city_->lookup(ip, country | city, l)) << ip;
        EXPECT_EQ(l.country, "DE") << ip;
        EXPECT_EQ(l.city, "Berlin") << ip;
    }
}

TEST_F(GeoLookup, RegionIsTheFirstSubdivision) {
    location l;
    ASSERT_TRUE(city_->lookup("81.2.69.170", all_location_fields, l));
    EXPECT_EQ(l.region, "ENG");
    EXPECT_EQ(l.region_name, "England");
    EXPECT_EQ(l.city, "Boxford");
    // The rest of the /24 is London.
    ASSERT_TRUE(city_->lookup("81.2.69.142", all_location_fields, l));
    EXPECT_EQ(l.city, "London");
    EXPECT_EQ(l.region, "ENG");
    EXPECT_EQ(l.postal_code, "EC1A");
    EXPECT_DOUBLE_EQ(l.longitude, -0.0931);
}

TEST_F(GeoLookup, OnlyRequestedFieldsAreFilled) {
    location l;
    l.country_name = "untouched";
    l.timezone = "untouched";
    l.latitude = 1.5;
    l.has_latitude = true;
    ASSERT_TRUE(city_->lookup("203.0.113.77", country | city, l));
    EXPECT_EQ(l.country, "DE");
    EXPECT_EQ(l.city, "Berlin");
    EXPECT_EQ(l.country_name, "untouched");
    EXPECT_EQ(l.timezone, "untouched");
    EXPECT_TRUE(l.has_latitude);
    EXPECT_EQ(l.latitude, 1.5);
    EXPECT_EQ(l.region, "");
    EXPECT_EQ(l.region_name, "");
    EXPECT_EQ(l.postal_code, "");
    EXPECT_FALSE(l.has_longitude);

    location only_lat;
    ASSERT_TRUE(city_->lookup("203.0.113.77", latitude, only_lat));
    EXPECT_TRUE(only_lat.has_latitude);
    EXPECT_FALSE(only_lat.has_longitude);
    EXPECT_EQ(only_lat.country, "");

    location none;
    EXPECT_TRUE(city_->lookup("203.0.113.77", 0, none));  // found, nothing read
    EXPECT_TRUE(none.found);
    EXPECT_EQ(none.country, "");
}

TEST_F(GeoLookup, CountryOnlyNetwork) {
    location l;
    ASSERT_TRUE(city_->lookup("198.51.100.23", all_location_fields, l));
    EXPECT_EQ(l.country, "FR");
    EXPECT_EQ(l.country_name, "France");
    EXPECT_EQ(l.region, "");
    EXPECT_EQ(l.region_name, "");
    EXPECT_EQ(l.city, "");
    EXPECT_EQ(l.postal_code, "");
    EXPECT_EQ(l.timezone, "");
    EXPECT_FALSE(l.has_latitude);
    EXPECT_FALSE(l.has_longitude);
}

TEST_F(GeoLookup, NameWithoutEnglishIsEmpty) {
    location l;
    ASSERT_TRUE(city_->lookup("2001:db8:3::1", all_location_fields, l));
    EXPECT_EQ(l.country, "CH");
    EXPECT_EQ(l.country_name, "");  // only "de" in the record
    EXPECT_TRUE(l.has_latitude);
    EXPECT_DOUBLE_EQ(l.latitude, 47.0);
    EXPECT_DOUBLE_EQ(l.longitude, 8.0);
}

TEST_F(GeoLookup, UnknownAndPrivateNetworksAreNotFound) {
    for (const char* ip :
         {"10.0.0.1", "192.168.1.1", "172.16.5.4", "127.0.0.1", "100.64.0.1", "0.0.0.0",
          "255.255.255.255", "8.8.8.8", "192.0.3.1", "::1", "::", "fe80::1", "fc00::1",
          "2001:db8:ffff::1", "2606:4700::1111", "::ffff:10.0.0.1"}) {
        location l;
        l.country = "stale";
        l.city = "stale";
        l.has_latitude = true;
        EXPECT_FALSE(city_->lookup(ip, all_location_fields, l)) << ip;
        EXPECT_FALSE(l.found) << ip;
        EXPECT_EQ(l.country, "") << ip;
        EXPECT_EQ(l.city, "") << ip;
        EXPECT_FALSE(l.has_latitude) << ip;
    }
}

TEST_F(GeoLookup, UnparsableAddresses) {
    using namespace std::string_literals;
    const std::string bad[] = {"",
                               "not an ip",
                               " 203.0.113.77",
                               "203.0.113.77 ",
                               "203.0.113.77:8080",
                               "[2001:db8:1::1]",
                               "fe80::1%eth0",
                               "2001:db8:1::1%0",
                               "203.0.113",
                               "203.0.113.777",
                               "203.0.113.077",
                               "203.0.113.77\0"s,
                               "203.0.113.0/24",
                               std::string(100000, '9')};
    for (const auto& ip : bad) {
        location l;
        EXPECT_FALSE(city_->lookup(ip, all_location_fields, l)) << ip.substr(0, 40);
        EXPECT_FALSE(l.found);
    }
}

TEST_F(GeoLookup, ReusedLocationIsClearedBetweenLookups) {
    location l;
    ASSERT_TRUE(city_->lookup("203.0.113.77", all_location_fields, l));
    ASSERT_TRUE(city_->lookup("198.51.100.1", all_location_fields, l));
    EXPECT_EQ(l.country, "FR");
    EXPECT_EQ(l.city, "");
    EXPECT_FALSE(l.has_latitude);
    EXPECT_FALSE(city_->lookup("10.0.0.1", all_location_fields, l));
    EXPECT_EQ(l.country, "");
}

TEST_F(GeoLookup, ConcurrentLookupsAgree) {
    const std::pair<const char*, const char*> expected[] = {
        {"203.0.113.77", "DE"},    {"81.2.69.142", "GB"}, {"2001:db8:1::1", "JP"},
        {"198.51.100.9", "FR"},    {"192.0.2.200", "US"}, {"10.0.0.1", ""},
        {"::ffff:81.2.69.1", "GB"}};
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            location l;
            for (int i = 0; i < 2000; ++i) {
                const auto& [ip, country_code] = expected[i % std::size(expected)];
                city_->lookup(ip, all_location_fields, l);
                if (l.country != country_code) ++mismatches;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(mismatches.load(), 0);
}

// ---- ASN database ----------------------------------------------------------------------------

TEST(GeoAsn, Lookups) {
    REQUIRE_WRITER();
    auto db = open_db("asn");
    ASSERT_TRUE(db);
    EXPECT_EQ(db->type(), "GeoLite2-ASN");
    EXPECT_EQ(db->build_epoch(), 1700000000u);

    location l;
    ASSERT_TRUE(db->lookup("203.0.113.5", asn | as_organization, l));
    EXPECT_EQ(l.asn, 64496u);
    EXPECT_EQ(l.as_organization, "Example Networks GmbH");

    ASSERT_TRUE(db->lookup("2001:db8:1:2::3", asn | as_organization, l));
    EXPECT_EQ(l.asn, 64497u);
    EXPECT_EQ(l.as_organization, "Example Transit KK");

    ASSERT_TRUE(db->lookup("::ffff:198.51.100.1", asn | as_organization, l));
    EXPECT_EQ(l.asn, 64498u);
    EXPECT_EQ(l.as_organization, "");  // a number without an organization

    location only_number;
    ASSERT_TRUE(db->lookup("81.2.69.1", asn, only_number));
    EXPECT_EQ(only_number.asn, 64500u);
    EXPECT_EQ(only_number.as_organization, "");

    EXPECT_FALSE(db->lookup("192.0.2.1", asn | as_organization, l));
    EXPECT_EQ(l.asn, 0u);
    EXPECT_EQ(l.as_organization, "");

    // City fields in an ASN database: the network is found, but has none of them.
    location c;
    ASSERT_TRUE(db->lookup("203.0.113.5", all_location_fields, c));
    EXPECT_EQ(c.country, "");
    EXPECT_FALSE(c.has_latitude);
}

TEST(GeoOddDatabase, IPv4OnlyWrongTypesAndBadUtf8) {
    REQUIRE_WRITER();
    std::string built = databases::get().path("v4_odd");
    ASSERT_FALSE(built.empty());
    // Same length, so the file stays well-formed: "@NOT-UTF8@" becomes "\xFFNOT-UTF8@".
    std::string bytes = read_file(built);
    auto at = bytes.find("@NOT-UTF8@");
    ASSERT_NE(at, std::string::npos);
    bytes[at] = '\xFF';
    switchyard::test::temp_dir dir("switchyard-geo-odd");
    fs::path patched = dir.path() / "odd.mmdb";
    write_file(patched, bytes);
    std::string err;
    auto db = database::open(patched.string(), err);
    ASSERT_TRUE(db) << err;
    location l;
    ASSERT_TRUE(db->lookup("203.0.113.1", all_location_fields, l));
    EXPECT_EQ(l.country, "DE");
    EXPECT_EQ(l.city, "Berlin");
    EXPECT_FALSE(l.has_latitude);  // stored as a string: not used
    EXPECT_EQ(l.postal_code, "");  // "postal" is not a map
    EXPECT_TRUE(l.has_longitude);
    EXPECT_DOUBLE_EQ(l.longitude, 13.405);

    // IPv4-mapped works in an IPv4 database; IPv6 is simply not found.
    ASSERT_TRUE(db->lookup("::ffff:203.0.113.1", country, l));
    EXPECT_EQ(l.country, "DE");
    EXPECT_FALSE(db->lookup("2001:db8:1::1", country, l));

    // A name that is not valid UTF-8 is treated as absent.
    ASSERT_TRUE(db->lookup("198.51.100.1", country | city, l));
    EXPECT_EQ(l.country, "FR");
    EXPECT_EQ(l.city, "");
}

// ---- opening -------------------------------------------------------------------------------

TEST(GeoDatabase, OpenErrorsNameThePath) {
    switchyard::test::temp_dir dir("switchyard-geo-open");
    std::string err;

    std::string missing = (dir.path() / "missing.mmdb").string();
    EXPECT_FALSE(database::open(missing, err));
    EXPECT_NE(err.find(missing), std::string::npos) << err;

    std::string text = (dir.path() / "text.mmdb").string();
    write_file(text, "this is not a MaxMind database\n");
    err.clear();
    EXPECT_FALSE(database::open(text, err));
    EXPECT_NE(err.find(text), std::string::npos) << err;

    std::string empty = (dir.path() / "empty.mmdb").string();
    write_file(empty, "");
    err.clear();
    EXPECT_FALSE(database::open(empty, err));
    EXPECT_NE(err.find(empty), std::string::npos) << err;

    err.clear();
    EXPECT_FALSE(reloading_database::open(missing, 50ms, err));
    EXPECT_NE(err.find(missing), std::string::npos) << err;

    err.clear();
    EXPECT_FALSE(reloading_database::open(text, 50ms, err));
    EXPECT_NE(err.find(text), std::string::npos) << err;
}

TEST(GeoDatabase, TruncatedFileIsRefused) {
    REQUIRE_WRITER();
    std::string good = databases::get().path("city");
    ASSERT_FALSE(good.empty());
    switchyard::test::temp_dir dir("switchyard-geo-open");
    std::string bytes = read_file(good);
    std::string cut = (dir.path() / "cut.mmdb").string();
    write_file(cut, bytes.substr(0, bytes.size() / 2));
    std::string err;
    EXPECT_FALSE(database::open(cut, err));
    EXPECT_NE(err.find(cut), std::string::npos) << err;
}

// ---- reloading ---------------------------------------------------------------------------

// Gives each file a modification time of its own. File times come from a coarse clock, and a
// file replaced twice within one tick can get a freed inode back at the same size: the check
// could not tell it from the one in service (days apart in production, microseconds here).
void stamp_unique_mtime(const fs::path& p) {
    static std::atomic<long> next{1'000'000};
    struct timespec times[2] = {{0, UTIME_OMIT}, {next++, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
}

// Puts a copy of `source` at `target` the way geoipupdate does: write beside it, then rename.
void replace_atomically(const fs::path& source, const fs::path& target) {
    fs::path tmp = target;
    tmp += ".tmp";
    fs::copy_file(source, tmp, fs::copy_options::overwrite_existing);
    stamp_unique_mtime(tmp);
    fs::rename(tmp, target);
}

void replace_with_text(const std::string& text, const fs::path& target) {
    fs::path tmp = target;
    tmp += ".tmp";
    write_file(tmp, text);
    stamp_unique_mtime(tmp);
    fs::rename(tmp, target);
}

std::string country_of(const reloading_database& r, const char* ip) {
    location l;
    auto db = r.current();
    if (!db || !db->lookup(ip, country, l)) return "-";
    return l.country;
}

// Polls `done` until it holds or a generous deadline passes; the deadline only bounds a failing
// test, nothing is asserted about how long it took.
bool eventually(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return done();
}

class GeoReload : public ::testing::Test {
  protected:
    void SetUp() override {
        REQUIRE_WRITER();
        v1_ = databases::get().path("v1");
        v2_ = databases::get().path("v2");
        ASSERT_FALSE(v1_.empty());
        ASSERT_FALSE(v2_.empty());
        live_ = dir_.path() / "live.mmdb";
        replace_atomically(v1_, live_);
    }

    std::unique_ptr<reloading_database> open_live(std::chrono::milliseconds interval) {
        std::string err;
        auto r = reloading_database::open(live_.string(), interval, err);
        EXPECT_TRUE(r) << err;
        return r;
    }

    switchyard::test::temp_dir dir_{"switchyard-geo-reload"};
    fs::path v1_, v2_, live_;
};

TEST_F(GeoReload, BackgroundCheckPicksUpAtomicReplacement) {
    auto r = open_live(50ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->path(), live_.string());
    EXPECT_EQ(country_of(*r, "203.0.113.7"), "DE");
    EXPECT_EQ(r->current()->type(), "Test-City");

    replace_atomically(v2_, live_);
    ASSERT_TRUE(eventually([&] { return country_of(*r, "203.0.113.7") == "FR"; }));
    EXPECT_EQ(r->current()->type(), "Test-City-2");
    EXPECT_EQ(r->current()->build_epoch(), 2000u);
    EXPECT_EQ(r->reloads(), 1u);
    EXPECT_EQ(r->reload_failures(), 0u);
}

TEST_F(GeoReload, CorruptReplacementKeepsTheOldDatabase) {
    auto r = open_live(50ms);
    ASSERT_TRUE(r);
    replace_with_text("garbage, not a database", live_);
    ASSERT_TRUE(eventually([&] { return r->reload_failures() >= 1; }));
    EXPECT_EQ(country_of(*r, "203.0.113.7"), "DE");
    EXPECT_EQ(r->reloads(), 0u);

    // A good file after the bad one is picked up.
    replace_atomically(v2_, live_);
    ASSERT_TRUE(eventually([&] { return country_of(*r, "203.0.113.7") == "FR"; }));
    EXPECT_EQ(r->reloads(), 1u);
}

TEST_F(GeoReload, ExplicitReload) {
    auto r = open_live(0ms);  // no background thread: only reload() checks
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->reload());  // unchanged
    EXPECT_EQ(r->reloads(), 0u);

    replace_atomically(v2_, live_);
    EXPECT_EQ(country_of(*r, "203.0.113.7"), "DE");  // nothing checks on its own
    EXPECT_TRUE(r->reload());
    EXPECT_EQ(country_of(*r, "203.0.113.7"), "FR");
    EXPECT_FALSE(r->reload());
    EXPECT_EQ(r->reloads(), 1u);

    // Back to v1: a change of any kind is a reload, not only a newer file.
    replace_atomically(v1_, live_);
    EXPECT_TRUE(r->reload());
    EXPECT_EQ(country_of(*r, "203.0.113.7"), "DE");
    EXPECT_EQ(r->reloads(), 2u);
    EXPECT_EQ(r->reload_failures(), 0u);
}

TEST_F(GeoReload, ExplicitReloadCountsEachFailedAttempt) {
    auto r = open_live(0ms);
    ASSERT_TRUE(r);
    replace_with_text("not a database", live_);
    EXPECT_FALSE(r->reload());
    EXPECT_EQ(r->reload_failures(), 1u);
    EXPECT_FALSE(r->reload());  // reload() retries a version that failed
    EXPECT_EQ(r->reload_failures(), 2u);
    EXPECT_EQ(country_of(*r, "203.0.113.7"), "DE");
    EXPECT_EQ(r->reloads(), 0u);
}

TEST_F(GeoReload, MtimeChangeAloneIsAReload) {
    auto r = open_live(0ms);
    ASSERT_TRUE(r);
    // Same inode, same size: only the modification time differs.
    struct timespec times[2] = {{0, UTIME_OMIT}, {12345, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, live_.c_str(), times, 0), 0);
    EXPECT_TRUE(r->reload());
    EXPECT_EQ(r->reloads(), 1u);
}

TEST_F(GeoReload, MissingFileKeepsTheOldDatabase) {
    auto r = open_live(0ms);
    ASSERT_TRUE(r);
    fs::remove(live_);
    EXPECT_FALSE(r->reload());
    EXPECT_EQ(r->reload_failures(), 1u);
    EXPECT_EQ(country_of(*r, "203.0.113.7"), "DE");  // still mapped

    replace_atomically(v2_, live_);
    EXPECT_TRUE(r->reload());
    EXPECT_EQ(country_of(*r, "203.0.113.7"), "FR");
}

TEST_F(GeoReload, OldDatabaseOutlivesReload) {
    auto r = open_live(0ms);
    ASSERT_TRUE(r);
    auto old = r->current();
    replace_atomically(v2_, live_);
    ASSERT_TRUE(r->reload());
    location l;
    ASSERT_TRUE(old->lookup("203.0.113.7", country | city, l));
    EXPECT_EQ(l.country, "DE");
    EXPECT_EQ(l.city, "Berlin");
    ASSERT_TRUE(r->current()->lookup("203.0.113.7", country | city, l));
    EXPECT_EQ(l.country, "FR");
    EXPECT_EQ(l.city, "Paris");
}

TEST_F(GeoReload, ConcurrentReloadAndLookups) {
    auto r = open_live(0ms);
    ASSERT_TRUE(r);
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::vector<std::thread> readers;
    readers.reserve(2);
    for (int t = 0; t < 2; ++t) {
        readers.emplace_back([&] {
            while (!stop.load()) {
                std::string c = country_of(*r, "203.0.113.7");
                if (c != "DE" && c != "FR") ++bad;
            }
        });
    }
    for (int i = 0; i < 20; ++i) {
        replace_atomically(i % 2 == 0 ? v2_ : v1_, live_);
        EXPECT_TRUE(r->reload());
    }
    stop = true;
    for (auto& t : readers) t.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(r->reloads(), 20u);
}

TEST_F(GeoReload, DestructionStopsTheThread) {
    // An hour between checks: the destructor must wake the thread rather than wait it out.
    auto r = open_live(std::chrono::hours(1));
    ASSERT_TRUE(r);
    r.reset();
    SUCCEED();
}

// ---- JSON members ------------------------------------------------------------------------

TEST(GeoJson, AllCityFields) {
    REQUIRE_WRITER();
    auto db = open_db("city");
    ASSERT_TRUE(db);
    location l;
    ASSERT_TRUE(db->lookup("203.0.113.77", all_location_fields, l));
    std::string out;
    EXPECT_EQ(append_location_members(l, all_location_fields, out), 9u);
    EXPECT_EQ(
        out, R"("country":"DE","country_name":"Germany","region":"BE","region_name":"Land Berlin",)"
             R"("city":"Berlin","postal_code":"10115","latitude":52.52,"longitude":13.405,)"
             R"("timezone":"Europe/Berlin")");

    out = "{";
    ASSERT_TRUE(db->lookup("2001:db8:2::1", all_location_fields, l));
    EXPECT_EQ(append_location_members(l, all_location_fields, out), 8u);
    out += "}";
    EXPECT_EQ(out,
              "{\"country\":\"BR\",\"country_name\":\"Brazil\",\"region\":\"SP\","
              "\"region_name\":\"S\xC3\xA3o Paulo\",\"city\":\"S\xC3\xA3o Paulo\","
              "\"latitude\":-23.5475,\"longitude\":-46.63611,\"timezone\":\"America/Sao_Paulo\"}");
}

TEST(GeoJson, OnlyRequestedAndPresentFields) {
    location l;
    l.found = true;
    l.country = "FR";
    l.city = "Paris";
    l.latitude = 48.8566;
    l.has_latitude = true;
    std::string out = "prefix|";
    EXPECT_EQ(append_location_members(l, country | latitude | longitude | region, out), 2u);
    EXPECT_EQ(out, R"(prefix|"country":"FR","latitude":48.8566)");

    out.clear();
    EXPECT_EQ(append_location_members(l, postal_code | timezone, out), 0u);
    EXPECT_EQ(out, "");
}

TEST(GeoJson, NumbersRoundTripAndZeroIsKept) {
    location l;
    l.found = true;
    l.has_latitude = true;
    l.latitude = 0.1 + 0.2;
    l.has_longitude = true;
    l.longitude = 0;  // on the meridian: present, so written
    std::string out;
    EXPECT_EQ(append_location_members(l, latitude | longitude, out), 2u);
    EXPECT_EQ(out, R"("latitude":0.30000000000000004,"longitude":0)");
}

TEST(GeoJson, StringsAreEscaped) {
    location l;
    l.found = true;
    l.city = "Quote \" back\\slash\ttab\x01";
    std::string out;
    EXPECT_EQ(append_location_members(l, city, out), 1u);
    EXPECT_EQ(out, R"("city":"Quote \" back\\slash\ttab\u0001")");
}

TEST(GeoJson, AsnMembers) {
    location l;
    l.found = true;
    l.asn = 64496;
    l.as_organization = "Example Networks GmbH";
    std::string out;
    EXPECT_EQ(append_location_members(l, asn | as_organization, out), 2u);
    EXPECT_EQ(out, R"("asn":64496,"as_organization":"Example Networks GmbH")");

    l.asn = 0;  // no number: left out
    out.clear();
    EXPECT_EQ(append_location_members(l, asn, out), 0u);
    EXPECT_EQ(out, "");
}

TEST(GeoJson, NotFoundWritesNothing) {
    location l;
    l.country = "DE";  // left over; found is false
    std::string out = "x";
    EXPECT_EQ(append_location_members(l, all_fields, out), 0u);
    EXPECT_EQ(out, "x");
}

}  // namespace
}  // namespace switchyard::enrich::geo
