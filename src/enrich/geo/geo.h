#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

struct MMDB_s;  // libmaxminddb's open database

namespace switchyard::enrich::geo {

// What to look up, as a bit mask. Only the requested fields are read from the database; the
// comment gives each field's path in a GeoIP2/GeoLite2 record.
enum field : std::uint32_t {
    country = 1 << 0,           // country.iso_code: ISO 3166-1 alpha-2, "DE"
    country_name = 1 << 1,      // country.names.en
    region = 1 << 2,            // subdivisions.0.iso_code: ISO 3166-2 part after the hyphen, "BE"
    region_name = 1 << 3,       // subdivisions.0.names.en
    city = 1 << 4,              // city.names.en
    postal_code = 1 << 5,       // postal.code
    latitude = 1 << 6,          // location.latitude
    longitude = 1 << 7,         // location.longitude
    timezone = 1 << 8,          // location.time_zone: IANA name, "Europe/Berlin"
    asn = 1 << 9,               // autonomous_system_number (ASN database)
    as_organization = 1 << 10,  // autonomous_system_organization (ASN database)
};

inline constexpr std::uint32_t all_location_fields = country | country_name | region | region_name |
                                                     city | postal_code | latitude | longitude |
                                                     timezone;
inline constexpr std::uint32_t all_fields = all_location_fields | asn | as_organization;

// "country", "country_name", "region", "region_name", "city", "postal_code", "latitude",
// "longitude", "timezone", "asn", "as_organization" (exact, lowercase) ↔ one bit. The names are
// also the JSON member names append_location_members writes.
std::optional<std::uint32_t> field_from_name(std::string_view name) noexcept;
// The name of one bit; "" for anything that is not exactly one known bit.
std::string_view field_name(field f) noexcept;

// What a lookup found. Strings are empty and has_* false where the record has no such value (or
// one that is not valid UTF-8, or of another type); strings a lookup fills are valid UTF-8.
struct location {
    std::string country, country_name, region, region_name, city, postal_code, timezone,
        as_organization;
    double latitude = 0, longitude = 0;
    bool has_latitude = false, has_longitude = false;
    std::uint32_t asn = 0;
    bool found = false;  // the address is in the database (even if no requested field is set)
};

// One opened .mmdb file (memory-mapped, MMDB_MODE_MMAP). Immutable once open: lookup() may run
// on any number of threads at once. Shared by reloading_database and the lookups in flight, so an
// old database stays mapped until the last lookup holding it is done. The mapping is of the file
// that was opened: a replacement must be a new file renamed over the old path (as geoipupdate
// does), never the old file rewritten in place.
class database {
    struct private_tag {};

  public:
    // Null on failure, with err naming the path and libmaxminddb's message.
    static std::shared_ptr<const database> open(const std::string& path, std::string& err);

    // Looks up `ip` as text: IPv4, IPv6, or IPv4-mapped IPv6 (looked up as IPv4), parsed without
    // getaddrinfo. Assigns each requested field of `out` (clearing it when the record lacks it or
    // holds a value of another type) and out.found; leaves the other fields alone. Returns
    // out.found: false for text that is not an address, an address not in the database (private
    // and reserved networks never are), an IPv6 address in an IPv4-only database and corrupt
    // data. Never throws.
    bool lookup(std::string_view ip, std::uint32_t fields, location& out) const;

    std::string_view type() const noexcept;  // metadata database_type, "GeoLite2-City"
    std::uint64_t build_epoch() const noexcept;
    const std::string& path() const noexcept { return path_; }

    database(private_tag, std::string path, std::unique_ptr<MMDB_s> mmdb) noexcept;
    ~database();
    database(const database&) = delete;
    database& operator=(const database&) = delete;

  private:
    std::string path_;
    std::unique_ptr<MMDB_s> mmdb_;  // open from construction by open() to destruction
};

// A database file kept fresh. Owns a background thread that checks the file every
// check_interval and reopens it when its identity (inode, device, size, mtime) changes, as after
// geoipupdate's atomic rename; reload() checks at once (SIGHUP). A replacement that fails to open
// keeps the previous database in service: the failure is logged and counted once per file
// version (reload() retries a version that failed, the background thread does not), and so is a
// missing file. Lookups take current() and keep that database alive for as long as they hold it.
//
// Created at start-up by the enrichment stage, which owns it; destroyed with it (the destructor
// wakes and joins the thread, waiting at most for an open in progress). current(), reloads() and
// reload_failures() are safe from any thread; reload() may run concurrently with the background
// check (they are serialized).
class reloading_database {
    struct private_tag {};

  public:
    // Opens the file now (a missing or bad file is an error: null and err set) and starts the
    // background check. A check_interval of zero or less starts no thread: only reload() checks.
    static std::unique_ptr<reloading_database> open(const std::string& path,
                                                    std::chrono::milliseconds check_interval,
                                                    std::string& err);

    reloading_database(private_tag, std::string path, std::chrono::milliseconds check_interval);
    ~reloading_database();
    reloading_database(const reloading_database&) = delete;
    reloading_database& operator=(const reloading_database&) = delete;

    // The database in service; never null after a successful open().
    std::shared_ptr<const database> current() const noexcept { return current_.load(); }

    // Checks the file now; true if a new database was loaded.
    bool reload();

    std::uint64_t reloads() const noexcept { return reloads_.load(std::memory_order_acquire); }
    std::uint64_t reload_failures() const noexcept {
        return failures_.load(std::memory_order_relaxed);
    }
    const std::string& path() const noexcept { return path_; }

  private:
    // What tells one version of the file from the next; all zero for a missing file.
    struct file_id {
        std::uint64_t dev = 0, ino = 0, size = 0;
        std::int64_t mtime_ns = 0;
        bool operator==(const file_id&) const = default;
    };
    static bool stat_file(const std::string& path, file_id& id, std::string& err);
    bool check(bool retry_failed);
    void run();

    const std::string path_;
    const std::chrono::milliseconds check_interval_;
    std::atomic<std::shared_ptr<const database>> current_;
    std::atomic<std::uint64_t> reloads_{0}, failures_{0};

    std::mutex check_mu_;  // serializes check(); guards loaded_, failed_, has_failed_
    file_id loaded_;       // the version in service
    file_id failed_;       // the last version that failed (not retried by the thread)
    bool has_failed_ = false;

    std::mutex stop_mu_;
    std::condition_variable stop_cv_;
    bool stop_ = false;
    std::thread thread_;
};

// Appends the requested fields that `l` has as JSON object members without braces, in field
// order: "country":"DE","city":"Berlin","latitude":52.52. Empty strings, absent coordinates
// and an ASN of 0 are left out; coordinates are written in the shortest form that reads back
// exactly. Strings must be valid UTF-8 (as lookup() leaves them). Nothing is written when l.found
// is false. Returns the number of members written.
std::size_t append_location_members(const location& l, std::uint32_t fields, std::string& out);

}  // namespace switchyard::enrich::geo
