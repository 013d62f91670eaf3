#pragma once

#include "config/reader.h"
#include "switchyard/event.h"

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <openssl/types.h>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::route {

// A `*`/`?` glob compiled once: `*` matches any run of bytes (also empty), `?` one byte.
// No character classes and no escapes; a pattern without wildcards is an exact comparison.
class glob {
  public:
    glob() = default;
    explicit glob(std::string pattern);
    bool matches(std::string_view s) const noexcept;
    const std::string& pattern() const noexcept { return pattern_; }

  private:
    std::string pattern_;
    bool literal_ = true;
};

// A dotted path into the event JSON, split once at config time ("context.ip" → {context, ip}).
using field_path = std::vector<std::string>;

enum class op : std::uint8_t { eq, ne, in, exists, not_exists, gt, gte, lt, lte, matches };

// A config operand, pre-parsed both as text and as a number so comparisons need no parsing.
struct operand {
    std::string text;
    bool is_int = false;
    std::int64_t int_value = 0;
    bool is_number = false;
    double number = 0;
};

struct condition {
    field_path path;
    op oper = op::eq;
    std::vector<operand> values;  // one for eq/ne/gt/gte/lt/lte, the list for in, none otherwise
    glob pattern;                 // for matches
};

// One include/exclude entry. Every field that is present must hold (AND); within a field's
// list any element may match (OR). An empty matcher matches every event.
struct matcher {
    std::uint8_t types = 0;  // bit (1 << event_type); 0 = any type
    std::vector<glob> events;
    std::vector<std::string> sources;
    std::vector<condition> where;
};

enum class sample_key : std::uint8_t { user_id, anonymous_id, message_id };

struct field_rules {
    std::vector<field_path> drop;
    std::vector<std::pair<field_path, field_path>> rename;  // from → to, in config order
    std::vector<field_path> hash;
    std::string hash_key;  // HMAC-SHA256 key; a secret, never logged
    bool truncate_ip = false;

    bool empty() const noexcept {
        return drop.empty() && rename.empty() && hash.empty() && !truncate_ip;
    }
};

// The compiled routing rules of one destination. Built at config time by read_rules(); immutable
// afterwards and owned by that destination's router.
struct rules {
    bool has_include = false;
    std::vector<matcher> include;
    std::vector<matcher> exclude;

    double sample_rate = 1.0;
    std::uint64_t sample_threshold = 0;  // in the sample when hash < threshold (rate < 1 only)
    sample_key sample_by = sample_key::user_id;

    // Key looked up in the event's `integrations` object; empty = integrations are ignored.
    std::string integration;

    std::vector<std::string> consent_categories;
    bool consent_missing_allow = true;

    field_rules fields;

    // True when no rule can stop or change an event.
    bool empty() const noexcept {
        return !has_include && exclude.empty() && sample_rate >= 1.0 && integration.empty() &&
               consent_categories.empty() && fields.empty();
    }
};

// Reads the routing keys (include, exclude, sample, integration, consent, fields) of one
// destination entry from `dest`, the reader the core uses for that entry. Errors go to
// dest.errs() with the offending key's line:col. Finishes the nested readers it opens but not
// `dest` itself (the core does). In describe mode only documents the keys.
void read_rules(config::map_reader& dest, const std::string& destination_name, rules& out);

enum class verdict : std::uint8_t {
    deliver,
    excluded,              // an exclude matcher matched, or include is set and none matched
    sampled_out,           // outside sample.rate
    integration_disabled,  // the event's `integrations` turned this destination off
    no_consent,            // a required consent category is not granted
    malformed,  // a rule needed the JSON and it did not parse, or hashing failed (never expected)
};

// Stable, low-cardinality names for metric labels: "deliver", "excluded", "sampled_out",
// "integration_disabled", "no_consent", "malformed".
std::string_view to_string(verdict v) noexcept;

// Stable 64-bit hash used for sampling: FNV-1a 64 of the bytes, then the murmur3 fmix64
// finalizer so that the high bits (compared against rate × 2^64) are well mixed.
std::uint64_t sample_hash(std::string_view id) noexcept;

// Hex HMAC-SHA256 of `data` under `key` (64 lowercase hex digits); empty if OpenSSL fails.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// HMAC-SHA256 keyed once and reused per value (the one-shot HMAC() fetches the digest and
// allocates a context on every call). Lifecycle: owned by a router, used on its thread only.
class hmac_sha256 {
  public:
    hmac_sha256() = default;
    // Throws std::runtime_error if OpenSSL cannot set up HMAC-SHA256 (start-up time only).
    explicit hmac_sha256(std::string_view key);
    // Appends the 64 hex digits of HMAC(key, data) to `out`; false if OpenSSL fails.
    bool append_hex(std::string_view data, std::string& out);

  private:
    struct ctx_free {
        void operator()(EVP_MAC_CTX* c) const noexcept;
    };
    std::unique_ptr<EVP_MAC_CTX, ctx_free> ctx_;
};

// Rewrites an IP address for privacy with the ingest rule (enrich::privacy::truncate_ip): IPv4
// → /24 (last octet 0), IPv6 → /48, IPv4-mapped IPv6 → the /24 of the IPv4 part, written as
// IPv4. False when `ip` is not an IP address.
bool truncate_ip(std::string_view ip, std::string& out);

// Applies one destination's rules to events. Lifecycle: one router per destination worker,
// built from that destination's rules at start and then used only on the worker's thread
// (it owns a simdjson parser and scratch buffers); never shared.
class router {
  public:
    // Throws std::runtime_error only if OpenSSL cannot set up HMAC-SHA256 (start-up time).
    explicit router(rules r);

    // True when there are no rules at all: every event is delivered unchanged, so the worker can
    // skip calling route(). Setting `integration: ""` is needed for this, since by default the
    // event's `integrations` object is honoured.
    bool passthrough() const noexcept { return passthrough_; }

    const rules& get_rules() const noexcept { return rules_; }

    // Decides whether `ev` goes to this destination. When delivering and field rules change the
    // event, writes the new JSON into `transformed` (cleared first); leaves it empty when the
    // original JSON is to be sent. Parses the JSON only when a rule needs it. No exceptions.
    verdict route(const event_view& ev, std::string& transformed);

  private:
    struct lazy_doc;

    bool integration_enabled(lazy_doc& doc);
    bool consent_granted(lazy_doc& doc);
    bool matches(const matcher& m, const event_view& ev, lazy_doc& doc);
    bool sampled_in(const event_view& ev) const noexcept;
    bool apply_fields(simdjson::dom::element root, std::size_t size_hint, std::string& out);

    rules rules_;
    bool passthrough_ = false;
    bool needs_json_for_matchers_ = false;
    std::string integration_needle_;  // `"<integration>"` as canonical JSON writes it
    hmac_sha256 hmac_;
    simdjson::dom::parser parser_;
    simdjson::internal::string_builder<> sb_;
};

}  // namespace switchyard::route
