#include "enrich/geo/geo.h"

#include "enrich/privacy/ip.h"
#include "util/json.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <iterator>
#include <maxminddb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <system_error>
#include <utility>

namespace switchyard::enrich::geo {
namespace {

// Fields are read in groups: the map that holds them ("location" for latitude, longitude and
// time zone) is found once per lookup, then each field from there. Finding a key in the record
// means decoding every sibling before it (names in eight languages each), so one walk per group
// instead of one per field takes about a third off a full City lookup.
enum group : std::uint8_t { g_record, g_country, g_subdivision, g_city, g_postal, g_location };
constexpr std::size_t group_count = 6;

constexpr const char* record_path[] = {nullptr};
constexpr const char* country_group[] = {"country", nullptr};
constexpr const char* subdivision_group[] = {"subdivisions", "0", nullptr};
constexpr const char* city_group[] = {"city", nullptr};
constexpr const char* postal_group[] = {"postal", nullptr};
constexpr const char* location_group[] = {"location", nullptr};
constexpr const char* const* group_paths[group_count] = {
    record_path, country_group, subdivision_group, city_group, postal_group, location_group};

constexpr const char* iso_code_path[] = {"iso_code", nullptr};
constexpr const char* name_path[] = {"names", "en", nullptr};
constexpr const char* postal_code_path[] = {"code", nullptr};
constexpr const char* latitude_path[] = {"latitude", nullptr};
constexpr const char* longitude_path[] = {"longitude", nullptr};
constexpr const char* timezone_path[] = {"time_zone", nullptr};
constexpr const char* asn_path[] = {"autonomous_system_number", nullptr};
constexpr const char* as_organization_path[] = {"autonomous_system_organization", nullptr};

struct field_info {
    field bit;
    std::string_view name;
    group in;
    const char* const* path;  // from the group's map, for MMDB_aget_value; null-terminated
};

// In bit order, which is also the order append_location_members writes.
constexpr field_info fields_table[] = {
    {country, "country", g_country, iso_code_path},
    {country_name, "country_name", g_country, name_path},
    {region, "region", g_subdivision, iso_code_path},
    {region_name, "region_name", g_subdivision, name_path},
    {city, "city", g_city, name_path},
    {postal_code, "postal_code", g_postal, postal_code_path},
    {latitude, "latitude", g_location, latitude_path},
    {longitude, "longitude", g_location, longitude_path},
    {timezone, "timezone", g_location, timezone_path},
    {asn, "asn", g_record, asn_path},
    {as_organization, "as_organization", g_record, as_organization_path},
};

// The string member a field is stored in; null for the numeric fields. L is location or const
// location.
template <class L>
auto string_member(L& l, field f) noexcept -> decltype(&l.country) {
    switch (f) {
        case country:
            return &l.country;
        case country_name:
            return &l.country_name;
        case region:
            return &l.region;
        case region_name:
            return &l.region_name;
        case city:
            return &l.city;
        case postal_code:
            return &l.postal_code;
        case timezone:
            return &l.timezone;
        case as_organization:
            return &l.as_organization;
        default:
            return nullptr;
    }
}

void clear_fields(location& l, std::uint32_t fields) noexcept {
    for (const auto& fi : fields_table) {
        if (!(fields & fi.bit)) continue;
        if (auto* s = string_member(l, fi.bit)) s->clear();
    }
    if (fields & latitude) l.latitude = 0, l.has_latitude = false;
    if (fields & longitude) l.longitude = 0, l.has_longitude = false;
    if (fields & asn) l.asn = 0;
}

enum class found { yes, no, corrupt };

// Follows `path` from `start`. A path the record does not have (no subdivisions array, "names"
// that is not a map) is found::no; only corrupt data is found::corrupt.
found get_value(MMDB_entry_s start, const char* const* path, MMDB_entry_data_s& d) noexcept {
    int status = MMDB_aget_value(&start, &d, path);
    if (status == MMDB_SUCCESS) return d.has_data ? found::yes : found::no;
    if (status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR ||
        status == MMDB_INVALID_LOOKUP_PATH_ERROR) {
        return found::no;
    }
    return found::corrupt;
}

// Reads one value from its group's map into `l`. False only for corrupt data; a missing value
// or one of an unexpected type leaves the (already cleared) field empty.
bool read_field(MMDB_entry_s group_map, const field_info& fi, location& l) noexcept {
    MMDB_entry_data_s d;
    found f = get_value(group_map, fi.path, d);
    if (f != found::yes) return f == found::no;
    if (auto* s = string_member(l, fi.bit)) {
        // The file is the operator's, not ours: a string that is not UTF-8 would break the
        // event's JSON, so it counts as absent.
        if (d.type == MMDB_DATA_TYPE_UTF8_STRING &&
            simdjson::validate_utf8(d.utf8_string, d.data_size)) {
            s->assign(d.utf8_string, d.data_size);
        }
        return true;
    }
    switch (fi.bit) {
        case latitude:
        case longitude: {
            double v;
            if (d.type == MMDB_DATA_TYPE_DOUBLE) {
                v = d.double_value;
            } else if (d.type == MMDB_DATA_TYPE_FLOAT) {
                v = d.float_value;
            } else {
                return true;
            }
            if (fi.bit == latitude) {
                l.latitude = v, l.has_latitude = true;
            } else {
                l.longitude = v, l.has_longitude = true;
            }
            return true;
        }
        case asn:
            if (d.type == MMDB_DATA_TYPE_UINT32) {
                l.asn = d.uint32;
            } else if (d.type == MMDB_DATA_TYPE_UINT16) {
                l.asn = d.uint16;
            } else if (d.type == MMDB_DATA_TYPE_UINT64 && d.uint64 <= UINT32_MAX) {
                l.asn = static_cast<std::uint32_t>(d.uint64);
            } else if (d.type == MMDB_DATA_TYPE_INT32 && d.int32 >= 0) {
                l.asn = static_cast<std::uint32_t>(d.int32);
            }
            return true;
        default:
            return true;
    }
}

std::string mmdb_message(int status) {
    if (status == MMDB_IO_ERROR || status == MMDB_FILE_OPEN_ERROR) {
        return fmt::format("{} ({})", MMDB_strerror(status),
                           std::generic_category().message(errno));
    }
    return MMDB_strerror(status);
}

std::string epoch_text(std::uint64_t epoch) {
    auto t = static_cast<std::time_t>(epoch);
    std::tm tm{};
    if (::gmtime_r(&t, &tm) == nullptr) return std::to_string(epoch);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

std::optional<std::uint32_t> field_from_name(std::string_view name) noexcept {
    for (const auto& fi : fields_table) {
        if (fi.name == name) return fi.bit;
    }
    return std::nullopt;
}

std::string_view field_name(field f) noexcept {
    for (const auto& fi : fields_table) {
        if (fi.bit == f) return fi.name;
    }
    return {};
}

// ---- database -------------------------------------------------------------------------------

database::database(private_tag, std::string path, std::unique_ptr<MMDB_s> mmdb) noexcept
    : path_(std::move(path)), mmdb_(std::move(mmdb)) {}

database::~database() {
    if (mmdb_) MMDB_close(mmdb_.get());
}

std::shared_ptr<const database> database::open(const std::string& path, std::string& err) {
    auto mmdb = std::make_unique<MMDB_s>();
    errno = 0;
    int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, mmdb.get());
    if (status != MMDB_SUCCESS) {
        err = fmt::format("{}: cannot open MaxMind DB: {}", path, mmdb_message(status));
        return nullptr;
    }
    return std::make_shared<const database>(private_tag{}, path, std::move(mmdb));
}

bool database::lookup(std::string_view ip, std::uint32_t fields, location& out) const {
    clear_fields(out, fields);
    out.found = false;

    privacy::ip_address a;
    if (!privacy::parse_ip(ip, a)) return false;
    sockaddr_in sin{};
    sockaddr_in6 sin6{};
    const sockaddr* sa;
    if (a.v6) {
        if (mmdb_->metadata.ip_version != 6) return false;  // libmaxminddb would report an error
        sin6.sin6_family = AF_INET6;
        std::memcpy(sin6.sin6_addr.s6_addr, a.bytes.data(), 16);
        sa = reinterpret_cast<const sockaddr*>(&sin6);
    } else {
        sin.sin_family = AF_INET;
        std::memcpy(&sin.sin_addr, a.bytes.data(), 4);
        sa = reinterpret_cast<const sockaddr*>(&sin);
    }

    int mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(mmdb_.get(), sa, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS || !r.found_entry) return false;
    // Each group's map, found on first use: its start, or absent.
    enum class state : std::uint8_t { unknown, present, absent };
    state groups[group_count] = {};
    MMDB_entry_s maps[group_count];
    groups[g_record] = state::present;
    maps[g_record] = r.entry;
    for (const auto& fi : fields_table) {
        if (!(fields & fi.bit)) continue;
        if (groups[fi.in] == state::unknown) {
            MMDB_entry_data_s d;
            found f = get_value(r.entry, group_paths[fi.in], d);
            if (f == found::corrupt) {
                clear_fields(out, fields);
                return false;
            }
            groups[fi.in] =
                f == found::yes && d.type == MMDB_DATA_TYPE_MAP ? state::present : state::absent;
            // A map's entry is its offset in the data section (pointers already followed).
            maps[fi.in] = MMDB_entry_s{mmdb_.get(), d.offset};
        }
        if (groups[fi.in] == state::absent) continue;
        if (!read_field(maps[fi.in], fi, out)) {
            clear_fields(out, fields);
            return false;
        }
    }
    out.found = true;
    return true;
}

std::string_view database::type() const noexcept {
    const char* t = mmdb_->metadata.database_type;
    return t ? std::string_view(t) : std::string_view();
}

std::uint64_t database::build_epoch() const noexcept { return mmdb_->metadata.build_epoch; }

// ---- reloading_database ---------------------------------------------------------------------

reloading_database::reloading_database(private_tag, std::string path,
                                       std::chrono::milliseconds check_interval)
    : path_(std::move(path)), check_interval_(check_interval) {}

reloading_database::~reloading_database() {
    {
        std::lock_guard lk(stop_mu_);
        stop_ = true;
    }
    stop_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::unique_ptr<reloading_database> reloading_database::open(
    const std::string& path, std::chrono::milliseconds check_interval, std::string& err) {
    file_id id;
    if (!stat_file(path, id, err)) return nullptr;
    auto db = database::open(path, err);
    if (!db) return nullptr;
    auto r = std::make_unique<reloading_database>(private_tag{}, path, check_interval);
    // The identity is taken before opening: if the file is replaced in between, the next check
    // sees a different identity and opens the replacement.
    r->loaded_ = id;
    r->current_.store(std::move(db));
    if (check_interval.count() > 0) r->thread_ = std::thread([p = r.get()] { p->run(); });
    return r;
}

bool reloading_database::stat_file(const std::string& path, file_id& id, std::string& err) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        int e = errno;
        id = {};
        err = fmt::format("{}: {}", path, std::generic_category().message(e));
        return false;
    }
    id.dev = static_cast<std::uint64_t>(st.st_dev);
    id.ino = static_cast<std::uint64_t>(st.st_ino);
    id.size = static_cast<std::uint64_t>(st.st_size);
    id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                  static_cast<std::int64_t>(st.st_mtim.tv_nsec);
    return true;
}

bool reloading_database::reload() { return check(true); }

bool reloading_database::check(bool retry_failed) {
    std::lock_guard lk(check_mu_);
    file_id id;
    std::string err;
    bool present = stat_file(path_, id, err);
    if (present && id == loaded_) {
        has_failed_ = false;  // e.g. the old file was put back after a bad one
        return false;
    }
    if (has_failed_ && id == failed_ && !retry_failed) return false;

    auto fail = [&](const std::string& why) {
        if (!(has_failed_ && id == failed_)) {
            spdlog::error("Geo database not reloaded, the previous one stays in service: {}.", why);
        }
        failed_ = id;
        has_failed_ = true;
        failures_.fetch_add(1, std::memory_order_relaxed);
        return false;
    };
    if (!present) return fail(err);
    auto db = database::open(path_, err);
    if (!db) return fail(err);

    spdlog::info("Geo database {} reloaded: {}, built {}.", path_, db->type(),
                 epoch_text(db->build_epoch()));
    current_.store(std::move(db));
    loaded_ = id;
    has_failed_ = false;
    // Release: whoever sees the new count sees the new database (caches keyed on it rely on it).
    reloads_.fetch_add(1, std::memory_order_release);
    return true;
}

void reloading_database::run() {
    std::unique_lock lk(stop_mu_);
    while (!stop_cv_.wait_for(lk, check_interval_, [this] { return stop_; })) {
        lk.unlock();
        check(false);
        lk.lock();
    }
}

// ---- JSON -----------------------------------------------------------------------------------

std::size_t append_location_members(const location& l, std::uint32_t fields, std::string& out) {
    if (!l.found) return 0;
    std::size_t n = 0;
    auto key = [&](std::string_view name) {
        if (n++ > 0) out += ',';
        out += '"';
        out += name;  // field names need no escaping
        out += "\":";
    };
    for (const auto& fi : fields_table) {
        if (!(fields & fi.bit)) continue;
        if (const auto* s = string_member(l, fi.bit)) {
            if (s->empty()) continue;
            key(fi.name);
            util::append_json_string(out, *s);
        } else if (fi.bit == latitude || fi.bit == longitude) {
            bool has = fi.bit == latitude ? l.has_latitude : l.has_longitude;
            double v = fi.bit == latitude ? l.latitude : l.longitude;
            if (!has || !std::isfinite(v)) continue;
            key(fi.name);
            fmt::format_to(std::back_inserter(out), "{}", v);
        } else if (fi.bit == asn) {
            if (l.asn == 0) continue;
            key(fi.name);
            fmt::format_to(std::back_inserter(out), "{}", l.asn);
        }
    }
    return n;
}

}  // namespace switchyard::enrich::geo
