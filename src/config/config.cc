#include "config/config.h"

#include "http/net.h"
#include "log/kafka/kafka_conf.h"
#include "route/route.h"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace switchyard::config {

std::filesystem::path config::log_dir() const {
    return log.dir.empty() ? std::filesystem::path(data_dir) / "log"
                           : std::filesystem::path(log.dir);
}

std::filesystem::path config::identity_dir() const {
    return identity.lmdb.path.empty() ? std::filesystem::path(data_dir) / "identity"
                                      : std::filesystem::path(identity.lmdb.path);
}

std::filesystem::path config::quarantine_dir() const {
    return quarantine.path.empty() ? std::filesystem::path(data_dir) / "quarantine"
                                   : std::filesystem::path(quarantine.path);
}

namespace {

void read_enrich(map_reader& root, enrich_config& c) {
    auto e = root.child("enrich",
                        "Enrichment of every event before it is stored (docs/enrichment.md). "
                        "Steps run in this order on the I/O thread that decoded the request: "
                        "geo, ip privacy, user_agent, bots, campaign, referrer.");
    e.get("enabled", c.enabled, "Master switch; false stores events as received.");
    {
        auto s = e.child("user_agent",
                         "context.userAgent parsed with uap-core into context.browser, "
                         "context.os and context.device (each only when the SDK did not set it).");
        auto& v = c.user_agent;
        s.get("enabled", v.enabled, "Run this step.");
        s.get("regexes", v.regexes,
              "uap-core regexes.yaml (Debian package uap-core), relative to the config file.");
        s.get("cache_size", v.cache_size,
              "Parsed user agents remembered per I/O thread (S3-FIFO, scan resistant); 0 "
              "disables the cache.");
        s.get("max_length", v.max_length,
              "Only the first max_length bytes of a user agent are parsed.");
        s.get("client_hints", v.client_hints,
              "Refine browser, OS and device from context.userAgentData (User-Agent Client "
              "Hints) when the SDK sends it.");
        s.finish();
        if (!s.describing() && (v.max_length.bytes < 16 || v.max_length.bytes > 65536)) {
            root.errs().add(s.mark(), "enrich.user_agent.max_length: must be 16 B to 64 KiB");
        }
    }
    {
        auto s = e.child("bots",
                         "Bot detection into context.bot {is_bot, reason, name}: uap-core's "
                         "spider family, a crawler/tool/headless pattern list, and empty user "
                         "agents. Needs the user_agent step for the spider signal.");
        auto& v = c.bots;
        s.get("enabled", v.enabled, "Run this step.");
        s.get("patterns", v.patterns,
              "Pattern file replacing the built-in list (format: src/enrich/bots/README.md); "
              "empty: built-in.");
        s.get_strings("extra_patterns", v.extra_patterns,
                      "More crawler patterns, each \"name=RE2 regex\" or a bare regex "
                      "(case-insensitive).");
        s.finish();
    }
    {
        auto s = e.child("geo",
                         "Location of the client IP from MaxMind/GeoLite2/DB-IP .mmdb files into "
                         "context.location, and ASN into context.network. Reopened when the file "
                         "changes (geoipupdate), no restart needed.");
        auto& v = c.geo;
        s.get("database", v.database,
              "City or Country .mmdb, relative to the config file; empty: no location lookups.");
        s.get("asn_database", v.asn_database,
              "ASN .mmdb (GeoLite2-ASN); empty: no context.network.");
        s.get_strings("fields", v.fields,
                      "Location fields looked up and stored: country, country_name, region, "
                      "region_name, city, postal_code, latitude, longitude, timezone (asn and "
                      "as_organization come from asn_database).");
        s.get("check_interval", v.check_interval,
              "How often the database files are checked for changes.");
        s.get("cache_size", v.cache_size,
              "Looked-up addresses remembered per I/O thread (a visitor sends many events from "
              "one address); emptied when a database is reopened. 0 disables the cache.");
        s.get_strings("anonymous_fields", v.anonymous_fields,
                      "Location fields kept for requests in anonymous mode (see "
                      "anonymous_header); [] stores no location for them.");
        s.finish();
        if (!s.describing() && v.check_interval.count() < 100) {
            root.errs().add(s.mark(), "enrich.geo.check_interval: must be at least 100ms");
        }
    }
    {
        auto s = e.child("campaign",
                         "utm_* parameters and ad click ids of context.page.url/search into "
                         "context.campaign, when the SDK did not set it.");
        s.get("enabled", c.campaign.enabled, "Run this step.");
        s.finish();
    }
    {
        auto s = e.child("referrer",
                         "context.page.referrer classified into context.referrer {medium, "
                         "source}: search, social, email, paid, internal or unknown.");
        auto& v = c.referrer;
        s.get("enabled", v.enabled, "Run this step.");
        s.get("data", v.data,
              "Referrer data file replacing the built-in one (format: "
              "src/enrich/campaign/referrers.tsv); empty: built-in.");
        s.get_strings("internal_hosts", v.internal_hosts,
                      "Hosts (and their subdomains) counted as internal besides the page's own "
                      "domain, e.g. a checkout on another domain.");
        s.finish();
    }
    e.get("anonymous_header", c.anonymous_header,
          "Request header that asks for anonymous mode (any value, Snowplow's SP-Anonymous): "
          "the IP is removed and only geo.anonymous_fields are kept. Empty disables it.");
    e.finish();
}

void read_identity(map_reader& root, identity_config& c) {
    auto e = root.child("identity",
                        "Identity stitching (context.identity, identity_link records), the "
                        "suppression list and deletion requests (docs/identity.md).");
    e.get("enabled", c.enabled,
          "Resolve every event's person at admission and honour the suppression list; false "
          "stores events without context.identity (the operator API's identity routes answer "
          "503).");
    e.get("store", c.store,
          "lmdb: embedded, durable, one node (or one collector); redis: shared by several "
          "collector nodes.");
    {
        auto s = e.child("lmdb", "The embedded store (identity.store: lmdb).");
        s.get("path", c.lmdb.path,
              "Directory of the LMDB environment; default <data_dir>/identity.");
        s.get("max_size", c.lmdb.max_size,
              "Upper bound of the store file (LMDB map size); links fail (counted, events still "
              "stored) when it is full, so keep it above max_ids × ~300 B.");
        s.get("sync", c.lmdb.sync,
              "fsync every link commit; false leaves flushing to the OS (a process crash loses "
              "nothing, an OS crash may lose recent links).");
        s.finish();
    }
    {
        auto s = e.child("redis", "The shared store (identity.store: redis).");
        auto& r = c.redis;
        s.get("host", r.host, "Redis host.");
        s.get("port", r.port, "Redis port.");
        s.get("unix_socket", r.unix_socket, "Unix socket path, used instead of host/port.");
        s.get("password", r.password, "AUTH password; empty: none.");
        s.get("database", r.database, "Database number (SELECT).");
        s.get("key_prefix", r.key_prefix, "Prefix of every key Switchyard writes.");
        s.get("timeout", r.timeout, "Connect and per-command timeout.");
        s.get("pool_size", r.pool_size, "Connections kept open.");
        s.finish();
        if (!s.describing() && (r.port == 0 || r.port > 65535)) {
            root.errs().add(s.mark(), "identity.redis.port: must be 1..65535");
        }
    }
    e.get("max_user_ids_per_id", c.max_user_ids_per_id,
          "Merge guard: an anonymous or device id joins at most this many distinct user ids "
          "(shared kiosks); further links are refused and counted.");
    e.get("max_ids_per_person", c.max_ids_per_person,
          "Merge guard: most ids one person may hold; a link beyond it is refused and counted.");
    e.get("max_id_length", c.max_id_length,
          "Longer ids are attributed to themselves and never stored or linked.");
    e.get("link_device_ids", c.link_device_ids,
          "Link context.device.id to the event's userId (or anonymousId).");
    e.get("cache_size", c.cache_size,
          "Ids whose lookups are cached in memory (all threads; about 260 bytes each, so the "
          "default takes ~25 MB); hot ids never touch the store.");
    c.cache_ttl_set = e.has("cache_ttl");
    e.get("cache_ttl", c.cache_ttl,
          "How long a cached lookup is trusted; 0 = until this process changes it. Default 0 "
          "with lmdb, 5s with redis (other nodes' merges show within it).");
    e.get("ttl", c.ttl,
          "A person none of whose ids was seen for this long is forgotten; 0 = never.");
    e.get("max_ids", c.max_ids,
          "When more ids are stored, the least recently seen persons are forgotten.");
    e.get("sweep_interval", c.sweep_interval, "How often ttl and max_ids are applied.");
    e.get("suppression_refresh", c.suppression_refresh,
          "How often the suppression list is re-read for changes made on other nodes.");
    e.finish();
    if (e.describing()) return;
    if (c.store != "lmdb" && c.store != "redis") {
        root.errs().add(e.mark(),
                        fmt::format("identity.store: '{}' is not lmdb or redis", c.store));
    }
    if (c.max_user_ids_per_id < 1) {
        root.errs().add(e.mark(), "identity.max_user_ids_per_id: must be at least 1");
    }
    if (c.max_ids_per_person < 2) {
        root.errs().add(e.mark(), "identity.max_ids_per_person: must be at least 2");
    }
    if (c.max_id_length < 1 || c.max_id_length > 400) {
        root.errs().add(e.mark(), "identity.max_id_length: must be 1..400");
    }
    if (c.sweep_interval.count() < 1000) {
        root.errs().add(e.mark(), "identity.sweep_interval: must be at least 1s");
    }
    if (c.suppression_refresh.count() < 100) {
        root.errs().add(e.mark(), "identity.suppression_refresh: must be at least 100ms");
    }
    if (!c.cache_ttl_set && c.store == "redis") c.cache_ttl = duration(5000);
}

}  // namespace

void read_config(map_reader& root, config& c) {
    root.get(
        "data_dir", c.data_dir,
        "Directory for the event log, cursors, quarantine and file outputs. Created if missing.");
    root.get("role", c.role,
             "all: ingest and deliver; collect: ingest only (HTTP API, appends to the Kafka log); "
             "deliver: deliver only (consumes the Kafka log). collect and deliver need "
             "log.type: kafka. `switchyard run --role` overrides it.");
    {
        auto s = root.child("server", "Public HTTP listener (the SDK-facing API).");
        auto& v = c.server;
        s.get("listen", v.listen, "Address and port to listen on, as host:port or [v6]:port.");
        s.get("threads", v.threads, "I/O threads, one io_context each; 0 means one per CPU core.");
        s.get("max_connections", v.max_connections,
              "Open connections above which new ones get 503 with Retry-After and are closed.");
        s.get("max_header_bytes", v.max_header_bytes,
              "Largest request line plus headers; larger requests get 431.");
        s.get("max_body_bytes", v.max_body_bytes,
              "Hard cap on a request body, as received and again after gzip inflation; larger "
              "bodies get 413.");
        s.get("header_timeout", v.header_timeout,
              "Deadline from connect to the end of the first request's headers; slower clients "
              "get 408 and are disconnected.");
        s.get("idle_timeout", v.idle_timeout,
              "Deadline for the next request's headers on a keep-alive connection.");
        s.get("body_timeout", v.body_timeout,
              "Deadline from the end of the headers to the end of the body.");
        s.get("write_timeout", v.write_timeout, "Deadline for writing a response.");
        s.get("shutdown_grace", v.shutdown_grace,
              "On SIGTERM/SIGINT, how long in-flight requests may take before connections are "
              "closed.");
        s.get_strings("trusted_proxies", v.trusted_proxies,
                      "CIDRs of proxies whose X-Forwarded-For is believed for context.ip.");
        s.finish();
        if (!s.describing()) {
            std::string host;
            unsigned short port = 0;
            if (!http::split_host_port(v.listen, host, port)) {
                root.errs().add(s.mark(),
                                fmt::format("server.listen: '{}' is not host:port", v.listen));
            }
            for (const auto& p : v.trusted_proxies) {
                if (!http::parse_cidr(p)) {
                    root.errs().add(s.mark(),
                                    fmt::format("server.trusted_proxies: '{}' is not a CIDR", p));
                }
            }
            if (v.threads < 0) root.errs().add(s.mark(), "server.threads: must be 0 or more");
        }
    }
    {
        auto s = root.child("admin", "Admin listener: /healthz, /readyz, /metrics.");
        s.get("listen", c.admin.listen,
              "Address and port of the admin listener; keep it off the public network.");
        s.get("token", c.admin.token,
              "Bearer token required by the operator API (/v1/destinations, dead letters, "
              "reload); empty disables that API. /healthz, /readyz and /metrics need no token.");
        s.finish();
        std::string host;
        unsigned short port = 0;
        if (!s.describing() && !http::split_host_port(c.admin.listen, host, port)) {
            root.errs().add(s.mark(),
                            fmt::format("admin.listen: '{}' is not host:port", c.admin.listen));
        }
    }
    {
        auto s = root.child("logging", "Process logs (spdlog) on stderr.");
        s.get("level", c.logging.level, "One of trace, debug, info, warn, error.");
        s.get("format", c.logging.format, "text, or json for one JSON object per line.");
        s.finish();
        static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error"};
        if (!s.describing() && !levels.count(c.logging.level)) {
            root.errs().add(s.mark(),
                            fmt::format("logging.level: unknown level '{}'", c.logging.level));
        }
        if (!s.describing() && c.logging.format != "text" && c.logging.format != "json") {
            root.errs().add(s.mark(), "logging.format: must be text or json");
        }
    }
    {
        auto s =
            root.child("limits", "Segment API limits (documented by Segment); over a limit → 400.");
        s.get("max_event_bytes", c.limits.max_event_bytes, "Largest single event.");
        s.get("max_batch_bytes", c.limits.max_batch_bytes, "Largest batch request body.");
        s.get("max_batch_events", c.limits.max_batch_events, "Most events in one batch.");
        s.finish();
    }
    {
        std::set<std::string> names, keys;
        for (auto& s : root.list("sources", "Sources: each maps write keys to a named source.")) {
            source_config src;
            src.mark = s.mark();
            s.require("name", src.name, "Source name, carried in every event's routing header.");
            s.get_strings(
                "write_keys", src.write_keys,
                "Write keys that authenticate as this source (secret; redacted in output).");
            s.get_strings("allowed_origins", src.allowed_origins,
                          "Browser origins allowed by CORS (exact, e.g. https://shop.example). "
                          "\"*\" allows any origin without credentials.");
            s.get("settings_api_host", src.settings_api_host,
                  "apiHost returned by /v1/projects/{writeKey}/settings; default: the request's "
                  "Host header plus /v1.");
            s.get("plan", src.plan,
                  "Tracking plan (a `plans` entry) every event of this source is validated "
                  "against; empty: none.");
            {
                auto pe = s.child("plan_enforcement",
                                  "What happens to events that break the plan, per violation "
                                  "kind: allow (tag context.violations), omit (drop the offending "
                                  "properties and tag), quarantine (keep out of destinations, "
                                  "stored with the reasons, replayable), block (as quarantine, "
                                  "counted as blocked).");
                auto& v = src.plan_enforcement;
                pe.get("mode", v.mode,
                       "enforce: apply the actions; shadow: evaluate and count only (for rolling "
                       "out a plan).");
                pe.get("unplanned_event", v.unplanned_event, "A track event the plan lacks.");
                pe.get("missing_required", v.missing_required, "A required property is missing.");
                pe.get("wrong_type", v.wrong_type, "A property has another type.");
                pe.get("unplanned_property", v.unplanned_property,
                       "A property the plan lacks, where additional_properties is deny.");
                pe.get("bad_value", v.bad_value,
                       "A value breaks enum, pattern, format, min/max or length rules.");
                pe.finish();
                if (!pe.describing()) {
                    if (v.mode != "enforce" && v.mode != "shadow") {
                        root.errs().add(pe.mark(),
                                        fmt::format("sources: {}: plan_enforcement.mode '{}' is "
                                                    "not enforce or shadow",
                                                    src.name, v.mode));
                    }
                    for (const auto* a : {&v.unplanned_event, &v.missing_required, &v.wrong_type,
                                          &v.unplanned_property, &v.bad_value}) {
                        if (*a != "allow" && *a != "omit" && *a != "quarantine" && *a != "block") {
                            root.errs().add(pe.mark(),
                                            fmt::format("sources: {}: plan_enforcement action "
                                                        "'{}' is not allow, omit, quarantine or "
                                                        "block",
                                                        src.name, *a));
                        }
                    }
                }
            }
            s.get("ip", src.ip,
                  "context.ip as stored, applied after the geo lookup: keep, truncate (IPv4 to "
                  "/24, IPv6 to /48) or remove.");
            s.get("bots", src.bots,
                  "Events from bots: flag (context.bot, delivered; route them with "
                  "destinations[].exclude/include on context.bot.is_bot) or drop (kept out of "
                  "destinations, stored in quarantine with reason bot, counted).");
            s.finish();
            if (s.describing()) continue;
            if (src.ip != "keep" && src.ip != "truncate" && src.ip != "remove") {
                root.errs().add(src.mark,
                                fmt::format("sources: {}: ip '{}' is not keep, truncate or remove",
                                            src.name, src.ip));
            }
            if (src.bots != "flag" && src.bots != "drop") {
                root.errs().add(src.mark, fmt::format("sources: {}: bots '{}' is not flag or drop",
                                                      src.name, src.bots));
            }
            if (!src.name.empty() && !names.insert(src.name).second) {
                root.errs().add(src.mark,
                                fmt::format("sources: duplicate source name '{}'", src.name));
            }
            if (src.write_keys.empty()) {
                root.errs().add(src.mark,
                                fmt::format("sources: source '{}' has no write_keys", src.name));
            }
            for (const auto& k : src.write_keys) {
                if (k.empty()) root.errs().add(src.mark, "sources: empty write key");
                if (!keys.insert(k).second) {
                    root.errs().add(
                        src.mark,
                        fmt::format("sources: write key of source '{}' is used twice", src.name));
                }
            }
            c.sources.push_back(std::move(src));
        }
    }
    {
        std::set<std::string> names;
        for (auto& p : root.list("plans",
                                 "Tracking plans (docs/tracking-plans.md), assigned to "
                                 "sources with sources[].plan.")) {
            plan_config pc;
            pc.mark = p.mark();
            p.require("name", pc.name, "Plan name, used by sources[].plan.");
            p.get_strings_or_string(
                "files", pc.files,
                "Plan files (YAML, or JSON Schema .json) or directories of them, relative to the "
                "config file. Reloaded on SIGHUP; a broken plan never replaces a working one.");
            p.finish();
            if (p.describing()) continue;
            if (!names.insert(pc.name).second) {
                root.errs().add(pc.mark, fmt::format("plans: duplicate plan name '{}'", pc.name));
            }
            if (pc.files.empty()) {
                root.errs().add(pc.mark, fmt::format("plans: plan '{}' has no files", pc.name));
            }
            c.plans.push_back(std::move(pc));
        }
        for (const auto& src : c.sources) {
            if (src.plan.empty()) continue;
            if (!names.count(src.plan)) {
                root.errs().add(src.mark, fmt::format("sources: {}: plan '{}' is not in `plans`",
                                                      src.name, src.plan));
            }
        }
    }
    read_enrich(root, c.enrich);
    read_identity(root, c.identity);
    {
        auto s = root.child("log", "The durable event log between ingest and delivery.");
        auto& v = c.log;
        s.get("type", v.type,
              "local: segment files on this machine (one node); kafka: a Kafka topic (stateless "
              "collectors, delivery workers in consumer groups; see docs/operations.md).");
        {
            auto k = s.child("kafka", "The Kafka log (log.type: kafka).");
            auto& kv = v.kafka;
            k.get_strings_or_string("brokers", kv.brokers,
                                    "Bootstrap brokers, host:port (required): a list, or one "
                                    "comma-separated string such as \"${KAFKA_BROKERS}\".");
            k.get("topic", kv.topic,
                  "Topic holding the log. Create it with enough partitions for the delivery "
                  "parallelism you want (partitions bound the consumers per destination).");
            k.get("key", kv.key,
                  "Message key, hence partition and order: anonymous_id_or_user_id (one visitor "
                  "stays in order across login), user_id_or_anonymous_id, or message_id (even "
                  "spread, no per-visitor order).");
            k.get("ack_timeout", kv.ack_timeout,
                  "How long an append waits for acks=all before the request answers 503.");
            k.get("max_pending_bytes", kv.max_pending_bytes,
                  "Bytes waiting for broker acknowledgement above which ingest answers 503 with "
                  "Retry-After (log_full).");
            k.get("compression", kv.compression, "none, gzip, snappy, lz4 or zstd.");
            k.get("linger", kv.linger, "How long the producer waits to fill a batch.");
            k.get("group_prefix", kv.group_prefix,
                  "Consumer group of a destination = prefix + destination name (the built-in "
                  "quarantine writer uses prefix + _quarantine).");
            k.get("buffer_events", kv.buffer_events,
                  "Records a destination's consumer holds before it pauses fetching.");
            k.get("buffer_bytes", kv.buffer_bytes,
                  "Bytes a destination's consumer holds before it pauses fetching.");
            k.get("rebalance_drain_timeout", kv.rebalance_drain_timeout,
                  "On a rebalance, how long a destination may finish delivering records of the "
                  "partitions it gives up; the rest is delivered again by their new owner.");
            std::vector<YAML::Mark> marks;
            k.get_string_map("librdkafka", kv.librdkafka, &marks,
                             "Extra librdkafka properties for the producer and consumers "
                             "(security.protocol, sasl.*, ssl.*, tuning). Properties Switchyard's "
                             "guarantees rest on (acks, enable.idempotence, group.id, offsets "
                             "commit settings) are refused.");
            k.finish();
            if (!k.describing()) {
                for (const auto& [i, msg] : log::kafka::check_properties(
                         kv.librdkafka, log::kafka::log_reserved_properties)) {
                    root.errs().add(marks[i], fmt::format("log.kafka.librdkafka.{}: {}",
                                                          kv.librdkafka[i].first, msg));
                }
                if (log::kafka::compression_codec(kv.compression).empty()) {
                    root.errs().add(k.mark(), fmt::format("log.kafka.compression: '{}' is not "
                                                          "none, gzip, snappy, lz4 or zstd",
                                                          kv.compression));
                }
                if (kv.key != "anonymous_id_or_user_id" && kv.key != "user_id_or_anonymous_id" &&
                    kv.key != "message_id") {
                    root.errs().add(
                        k.mark(), fmt::format("log.kafka.key: '{}' is not anonymous_id_or_user_id, "
                                              "user_id_or_anonymous_id or message_id",
                                              kv.key));
                }
                if (v.type == "kafka" && (kv.brokers.empty() || kv.brokers.front().empty())) {
                    root.errs().add(k.mark(), "log.kafka.brokers: required with log.type: kafka");
                }
                if (v.type == "kafka" && kv.topic.empty()) {
                    root.errs().add(k.mark(), "log.kafka.topic: must not be empty");
                }
            }
        }
        s.get("dir", v.dir, "Segment directory; default <data_dir>/log.");
        s.get("segment_bytes", v.segment_bytes, "Size at which a new segment file starts.");
        s.get("capacity_bytes", v.capacity_bytes,
              "Most bytes the log may hold; when full, ingest answers 503 with Retry-After.");
        s.get(
            "durability", v.durability,
            "fsync: one fdatasync per group commit before any 2xx (no acknowledged event is lost "
            "on power loss); interval: 2xx after write(), fdatasync every fsync_interval (a power "
            "loss can lose that window); none: never fsync (a power loss can lose anything the "
            "OS had not written).");
        s.get("fsync_interval", v.fsync_interval, "fdatasync period under durability: interval.");
        s.get("retry_after", v.retry_after, "Retry-After sent with 503 when the log is full.");
        s.finish();
        if (!s.describing()) {
            if (v.type != "local" && v.type != "kafka") {
                root.errs().add(s.mark(),
                                fmt::format("log.type: '{}' is not local or kafka", v.type));
            }
            if (v.durability == "fsync") {
                v.policy = durability_policy::fsync;
            } else if (v.durability == "interval") {
                v.policy = durability_policy::interval;
            } else if (v.durability == "none") {
                v.policy = durability_policy::none;
            } else {
                root.errs().add(s.mark(),
                                fmt::format("log.durability: '{}' is not fsync, interval or none",
                                            v.durability));
            }
            if (v.segment_bytes.bytes < 4096)
                root.errs().add(s.mark(), "log.segment_bytes: at least 4096");
            if (v.capacity_bytes.bytes < v.segment_bytes.bytes * 2) {
                root.errs().add(s.mark(),
                                "log.capacity_bytes: must be at least twice segment_bytes");
            }
        }
    }
    {
        auto s = root.child("dedup", "The messageId dedup window at admission.");
        s.get("enabled", c.dedup.enabled,
              "Answer a repeated (source, messageId) inside the window with 2xx without storing "
              "it again.");
        s.get("window", c.dedup.window,
              "How long a messageId is remembered (after a restart: at most as far back as the log "
              "still holds).");
        s.get("max_entries", c.dedup.max_entries,
              "Most ids remembered (about 40 bytes each); the oldest are forgotten first.");
        s.finish();
    }
    {
        auto s = root.child(
            "quarantine",
            "Where events that fail decoding or per-spec checks are kept, with the reason.");
        s.get("path", c.quarantine.path,
              "Directory of quarantine NDJSON files; default <data_dir>/quarantine.");
        s.get("rotate_bytes", c.quarantine.rotate_bytes,
              "Size at which a new quarantine file starts.");
        s.finish();
    }
    {
        std::set<std::string> names;
        for (auto& s : root.list("destinations", "Destinations the log is delivered to.")) {
            destination_config d;
            d.mark = s.mark();
            d.settings = s.node();
            s.require("name", d.name,
                      "Destination name; also its cursor's name, so keep it stable.");
            if (!s.describing() && s.has("type") && s.node()["type"].IsNull()) {
                // YAML reads a bare `null` (and `~`, and nothing) as no value at all.
                s.consume("type");
                s.errs().add(s.mark_of("type"),
                             s.key_path("type") +
                                 ": has no value (YAML reads a bare null as none); for the null "
                                 "destination write type: \"null\" with the quotes");
            } else {
                s.require("type", d.type,
                          "Destination type: file, webhook, kafka, sqlite, postgres or \"null\" "
                          "(quoted: a bare null is YAML's empty value).");
            }
            s.get("batch_max_events", d.batch_max_events, "Most events per delivery batch.");
            s.get("events", d.events,
                  "Receive events; false makes a destination for identity_link, deletion and/or "
                  "quarantine records only.");
            s.get("identity_links", d.identity_links,
                  "Also receive identity_link records (two ids joined one person; see "
                  "docs/identity.md).");
            s.get("deletions", d.deletions,
                  "Receive deletion records (a person was deleted) and confirm them in the "
                  "deletion audit trail once delivered.");
            s.get("quarantine", d.quarantine,
                  "Also receive quarantine records (events that failed decoding, validation or "
                  "the bot policy, with the reason), as the quarantine store does; the "
                  "warehouses load them into a `quarantine` table.");
            s.get("batch_max_bytes", d.batch_max_bytes, "Most bytes per delivery batch.");
            s.get("batch_max_wait", d.batch_max_wait,
                  "How long a partial batch waits for more events before it is sent.");
            s.get("retry_backoff_base", d.retry_backoff_base,
                  "First retry delay; doubles per attempt, with full jitter.");
            s.get("retry_backoff_max", d.retry_backoff_max, "Cap on the retry delay.");
            s.get("retry_max_attempts", d.retry_max_attempts,
                  "Retry budget: attempts per batch before its events are split and, alone, "
                  "dead-lettered. Attempts are not made (nor counted) while the circuit breaker "
                  "is open.");
            s.get("retry_max_age", d.retry_max_age,
                  "Retry budget: time since a batch's first attempt after which it is split and "
                  "dead-lettered.");
            s.get(
                "breaker_failures", d.breaker_failures,
                "Consecutive failed attempts that open the circuit breaker (no sends while open).");
            s.get("breaker_cooldown", d.breaker_cooldown,
                  "How long the breaker stays open before a one-event probe; doubles per failed "
                  "probe.");
            s.get("breaker_cooldown_max", d.breaker_cooldown_max, "Cap on the breaker cooldown.");
            s.get("concurrency", d.concurrency,
                  "Batches in flight at once for this destination (each with its own connection); "
                  "the cursor only passes contiguous delivered batches.");
            s.get("max_lag_events", d.max_lag_events,
                  "Lag (events behind the log's end) that triggers `when_lagging`; 0 = no limit.");
            s.get("when_lagging", d.when_lagging,
                  "block: keep everything (when the log is full, ingest answers 503); "
                  "drop_oldest: skip to max_lag_events behind the end, counting every skipped "
                  "event and writing its id to the dead-letter store.");
            s.get("dead_letter_max_bytes", d.dead_letter_max_bytes,
                  "Size bound of this destination's dead-letter store; when full, the destination "
                  "stops advancing (back-pressure) rather than lose events.");
            d.rules = std::make_shared<route::rules>();
            route::read_rules(s, d.name, *d.rules);
            if (!s.describing()) {
                if (d.when_lagging != "block" && d.when_lagging != "drop_oldest") {
                    root.errs().add(d.mark,
                                    fmt::format("destinations: when_lagging '{}' is not block "
                                                "or drop_oldest",
                                                d.when_lagging));
                }
                if (d.concurrency < 1 || d.concurrency > 64) {
                    root.errs().add(d.mark, "destinations: concurrency must be 1..64");
                }
                if (d.retry_max_attempts < 1) {
                    root.errs().add(d.mark, "destinations: retry_max_attempts must be at least 1");
                }
                d.core_keys = s.consumed_keys();
            }
            if (s.describing()) continue;
            if (!d.name.empty() && !names.insert(d.name).second) {
                root.errs().add(d.mark, fmt::format("destinations: duplicate name '{}'", d.name));
            }
            if (!d.name.empty() && d.name.front() == '_') {
                root.errs().add(d.mark,
                                fmt::format("destinations: name '{}' may not start with '_' "
                                            "(reserved for built-in readers)",
                                            d.name));
            }
            for (char ch : d.name) {
                if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-')) {
                    root.errs().add(d.mark,
                                    fmt::format("destinations: name '{}' may only use letters, "
                                                "digits, '_' and '-'",
                                                d.name));
                    break;
                }
            }
            c.destinations.push_back(std::move(d));
        }
    }
    root.finish();
    if (root.describing()) return;
    for (const auto& d : c.destinations) {
        if (c.log.type == "kafka" && d.when_lagging == "drop_oldest") {
            root.errs().add(d.mark,
                            fmt::format("destinations: {}: when_lagging: drop_oldest is not "
                                        "available with log.type: kafka (Kafka's retention "
                                        "bounds the lag)",
                                        d.name));
        }
    }
    if (auto e = check_role(c); !e.empty()) root.errs().add(root.mark(), e);
    // A record must fit in one Kafka message, or its request could only ever get 503.
    for (const auto& [k, v] : c.log.kafka.librdkafka) {
        if (k != "message.max.bytes") continue;
        const std::uint64_t need = c.limits.max_event_bytes.bytes + 4096;
        std::uint64_t have = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), have);
        if (ec == std::errc() && p == v.data() + v.size() && have < need) {
            root.errs().add(root.mark(),
                            fmt::format("log.kafka.librdkafka.message.max.bytes: {} is below the "
                                        "largest record ({} = limits.max_event_bytes + 4096)",
                                        have, need));
        }
    }
}

std::string kafka_log_config::bootstrap() const {
    std::string out;
    for (const auto& b : brokers) out += (out.empty() ? "" : ",") + b;
    return out;
}

std::string check_role(const config& c) {
    if (c.role != "all" && c.role != "collect" && c.role != "deliver") {
        return fmt::format("role: '{}' is not all, collect or deliver", c.role);
    }
    if (c.role != "all" && c.log.type != "kafka") {
        return fmt::format(
            "role: '{}' needs log.type: kafka (the local log is read and written "
            "by one process)",
            c.role);
    }
    return {};
}

namespace {

config load_node(const YAML::Node& node, errors& errs) {
    config c;
    map_reader root(node, "", errs);
    read_config(root, c);
    return c;
}

}  // namespace

config load_string(const std::string& yaml, errors& errs) {
    try {
        return load_node(YAML::Load(yaml), errs);
    } catch (const YAML::Exception& e) {
        errs.add(e.mark, e.msg);
        return {};
    }
}

config load_file(const std::string& path, errors& errs) {
    std::ifstream in(path);
    if (!in) {
        errs.add(fmt::format("cannot open config file: {}", std::strerror(errno)));
        return {};
    }
    std::stringstream ss;
    ss << in.rdbuf();
    config c = load_string(ss.str(), errs);
    auto dir = std::filesystem::path(path).parent_path();
    c.base_dir = dir.empty() ? "." : dir.string();
    return c;
}

std::string dump_redacted(const config& c) {
    YAML::Emitter out;
    out << YAML::BeginMap;
    out << YAML::Key << "data_dir" << YAML::Value << c.data_dir;
    out << YAML::Key << "server" << YAML::Value << YAML::BeginMap << YAML::Key << "listen"
        << YAML::Value << c.server.listen << YAML::EndMap;
    out << YAML::Key << "admin" << YAML::Value << YAML::BeginMap << YAML::Key << "listen"
        << YAML::Value << c.admin.listen << YAML::EndMap;
    out << YAML::Key << "sources" << YAML::Value << YAML::BeginSeq;
    for (const auto& s : c.sources) {
        out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << s.name;
        out << YAML::Key << "write_keys" << YAML::Value << YAML::BeginSeq;
        for (const auto& k : s.write_keys) {
            out << (k.size() > 4 ? k.substr(0, 2) + "…(redacted)" : std::string("(redacted)"));
        }
        out << YAML::EndSeq << YAML::EndMap;
    }
    out << YAML::EndSeq;
    out << YAML::Key << "log" << YAML::Value << YAML::BeginMap << YAML::Key << "dir" << YAML::Value
        << c.log_dir().string() << YAML::Key << "durability" << YAML::Value << c.log.durability
        << YAML::EndMap;
    out << YAML::Key << "destinations" << YAML::Value << YAML::BeginSeq;
    for (const auto& d : c.destinations) {
        out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << d.name << YAML::Key << "type"
            << YAML::Value << d.type << YAML::EndMap;
    }
    out << YAML::EndSeq << YAML::EndMap;
    return out.c_str();
}

}  // namespace switchyard::config
