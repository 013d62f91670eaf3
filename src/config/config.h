#pragma once

#include "config/reader.h"
#include "switchyard/log.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace switchyard::route {
struct rules;
}

namespace switchyard::config {

struct server_config {
    std::string listen = "0.0.0.0:8080";
    int threads = 0;
    std::uint64_t max_connections = 10000;
    byte_size max_header_bytes{16 * 1024};
    byte_size max_body_bytes{1024 * 1024};
    duration header_timeout{10'000};
    duration idle_timeout{75'000};
    duration body_timeout{30'000};
    duration write_timeout{10'000};
    duration shutdown_grace{10'000};
    std::vector<std::string> trusted_proxies;
};

struct admin_config {
    std::string listen = "127.0.0.1:9090";
    std::string token;  // bearer token of the operator API; empty disables it
};

struct dedup_config {
    bool enabled = true;
    duration window{24ULL * 3600 * 1000};
    std::uint64_t max_entries = 10'000'000;
};

struct logging_config {
    std::string level = "info";
    std::string format = "text";
};

struct limits_config {
    byte_size max_event_bytes{32 * 1024};
    byte_size max_batch_bytes{500 * 1024};
    std::uint64_t max_batch_events = 2500;
};

// What a source does with events that break its tracking plan (docs/tracking-plans.md).
struct plan_enforcement_config {
    std::string mode = "enforce";  // enforce | shadow (evaluate and count only)
    // Per violation kind: allow (tag) | omit (drop the offending properties, tag) | quarantine |
    // block (quarantine, counted as blocked).
    std::string unplanned_event = "allow";
    std::string missing_required = "allow";
    std::string wrong_type = "allow";
    std::string unplanned_property = "allow";
    std::string bad_value = "allow";
};

struct source_config {
    std::string name;
    std::vector<std::string> write_keys;
    std::vector<std::string> allowed_origins;
    std::string settings_api_host;
    std::string plan;  // name of a `plans` entry; empty = no validation
    plan_enforcement_config plan_enforcement;
    std::string ip = "keep";    // keep | truncate | remove: context.ip as stored (after geo)
    std::string bots = "flag";  // flag (context.bot) | drop (quarantined, counted)
    YAML::Mark mark;
};

// The enrichment stage (docs/enrichment.md): each step has its own block and can be turned off.
struct enrich_config {
    bool enabled = true;  // master switch: false skips every step
    struct user_agent_step {
        bool enabled = true;
        std::string regexes = "/usr/share/uap-core/regexes.yaml";
        std::uint64_t cache_size = 10'000;  // entries per I/O thread
        byte_size max_length{1024};
        bool client_hints = true;
    } user_agent;
    struct bots_step {
        bool enabled = true;
        std::string patterns;  // empty: the built-in list
        std::vector<std::string> extra_patterns;
    } bots;
    struct geo_step {
        std::string database;  // empty: no geo lookups
        std::string asn_database;
        std::vector<std::string> fields{"country",     "region",   "region_name", "city",
                                        "postal_code", "latitude", "longitude",   "timezone"};
        duration check_interval{60'000};
        std::vector<std::string> anonymous_fields{"country"};
        std::uint64_t cache_size = 4096;  // looked-up addresses per I/O thread
    } geo;
    struct campaign_step {
        bool enabled = true;
    } campaign;
    struct referrer_step {
        bool enabled = true;
        std::string data;  // empty: the built-in list
        std::vector<std::string> internal_hosts;
    } referrer;
    std::string anonymous_header = "SP-Anonymous";
};

struct plan_config {
    std::string name;
    std::vector<std::string> files;  // files or directories, relative to the config file
    YAML::Mark mark;
};

struct kafka_log_config {
    std::vector<std::string> brokers;  // each entry may hold several, comma-separated
    std::string topic = "switchyard.events";
    std::string key = "anonymous_id_or_user_id";
    duration ack_timeout{10'000};
    byte_size max_pending_bytes{256ULL << 20};
    std::string compression = "lz4";
    duration linger{5};
    std::string group_prefix = "switchyard.";
    std::uint64_t buffer_events = 50'000;
    byte_size buffer_bytes{64ULL << 20};
    duration rebalance_drain_timeout{10'000};
    std::vector<std::pair<std::string, std::string>> librdkafka;  // pass-through properties

    std::string bootstrap() const;  // brokers joined with ','
};

struct log_config {
    std::string type = "local";  // local | kafka
    kafka_log_config kafka;
    std::string dir;  // default <data_dir>/log
    byte_size segment_bytes{64ULL << 20};
    byte_size capacity_bytes{1ULL << 30};
    std::string durability = "fsync";
    duration fsync_interval{100};
    duration retry_after{5000};
    durability_policy policy = durability_policy::fsync;
};

// Identity stitching, suppression and deletion (docs/identity.md).
struct identity_config {
    bool enabled = true;
    std::string store = "lmdb";  // lmdb | redis
    struct lmdb_block {
        std::string path;  // default <data_dir>/identity
        byte_size max_size{1ULL << 30};
        bool sync = true;
    } lmdb;
    struct redis_block {
        std::string host = "127.0.0.1";
        std::uint64_t port = 6379;
        std::string unix_socket;
        std::string password;
        std::uint64_t database = 0;
        std::string key_prefix = "switchyard:identity:";
        duration timeout{500};
        std::uint64_t pool_size = 8;
    } redis;
    std::uint64_t max_user_ids_per_id = 1;
    std::uint64_t max_ids_per_person = 1000;
    std::uint64_t max_id_length = 256;
    bool link_device_ids = true;
    std::uint64_t cache_size = 100'000;
    duration cache_ttl{0};  // 0: lmdb trusts its cache; redis default set in read_config
    bool cache_ttl_set = false;
    duration ttl{400ULL * 24 * 3600 * 1000};
    std::uint64_t max_ids = 10'000'000;
    duration sweep_interval{600'000};
    duration suppression_refresh{2000};
};

struct destination_config {
    std::string name;
    std::string type;
    std::uint64_t batch_max_events = 500;
    byte_size batch_max_bytes{4ULL << 20};
    duration batch_max_wait{200};
    bool events = true;           // receive events (false: only identity_links / deletions)
    bool identity_links = false;  // receive identity_link records
    bool deletions = true;        // receive deletion records
    bool quarantine = false;      // receive quarantine records (as the quarantine store does)
    duration retry_backoff_base{100};
    duration retry_backoff_max{30'000};
    std::uint64_t retry_max_attempts = 10;
    duration retry_max_age{24ULL * 3600 * 1000};
    std::uint64_t breaker_failures = 5;
    duration breaker_cooldown{10'000};
    duration breaker_cooldown_max{300'000};
    std::uint64_t concurrency = 1;
    std::uint64_t max_lag_events = 0;
    std::string when_lagging = "block";
    byte_size dead_letter_max_bytes{1ULL << 30};
    std::shared_ptr<route::rules> rules;  // routing: filters, integrations, consent, fields
    std::vector<std::string> core_keys;   // keys read by the core; the factory skips them
    YAML::Node settings;  // the whole mapping; the destination's factory reads its own keys
    YAML::Mark mark;
};

struct quarantine_config {
    std::string path;  // default <data_dir>/quarantine
    byte_size rotate_bytes{128ULL << 20};
};

struct config {
    std::string data_dir = "./data";
    std::string role = "all";  // all | collect | deliver
    server_config server;
    admin_config admin;
    logging_config logging;
    limits_config limits;
    std::vector<source_config> sources;
    std::vector<plan_config> plans;
    enrich_config enrich;
    identity_config identity;
    std::string base_dir = ".";  // directory of the config file: relative plan paths start here
    log_config log;
    quarantine_config quarantine;
    std::vector<destination_config> destinations;
    dedup_config dedup;

    std::filesystem::path log_dir() const;
    std::filesystem::path quarantine_dir() const;
    std::filesystem::path identity_dir() const;  // the LMDB store and the deletion audit trail
};

// Reads and validates a config file. Every problem goes to `errs` with its line:col; the result
// is only meaningful when errs.empty(). Destination settings are validated by their factories
// (see app/), which also report to `errs`.
config load_file(const std::string& path, errors& errs);
config load_string(const std::string& yaml, errors& errs);

// Reads the top-level keys into `out`; with a catalog and a null node, documents them instead.
void read_config(map_reader& root, config& out);

// The error in `role` (given its log type), or empty. Checked again after `run --role`.
std::string check_role(const config& c);

// The config as YAML with secrets (write keys) redacted.
std::string dump_redacted(const config& c);

}  // namespace switchyard::config
