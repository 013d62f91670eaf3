#include "route/route.h"

#include "enrich/privacy/ip.h"
#include "util/json.h"

#include <fmt/format.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdexcept>
#include <variant>

namespace switchyard::route {

namespace dom = simdjson::dom;

// ---------------------------------------------------------------------------------------------
// Building blocks

glob::glob(std::string pattern)
    : pattern_(std::move(pattern)), literal_(pattern_.find_first_of("*?") == std::string::npos) {}

bool glob::matches(std::string_view s) const noexcept {
    if (literal_) return s == pattern_;
    // Greedy match with backtracking to the last `*`: O(|p|·|s|) worst case, linear in practice.
    std::size_t p = 0, i = 0;
    std::size_t star = std::string::npos, star_i = 0;
    const std::size_t np = pattern_.size();
    while (i < s.size()) {
        if (p < np && (pattern_[p] == '?' || pattern_[p] == s[i])) {
            ++p;
            ++i;
        } else if (p < np && pattern_[p] == '*') {
            star = p++;
            star_i = i;
        } else if (star != std::string::npos) {
            p = star + 1;
            i = ++star_i;
        } else {
            return false;
        }
    }
    while (p < np && pattern_[p] == '*') ++p;
    return p == np;
}

std::string_view to_string(verdict v) noexcept {
    switch (v) {
        case verdict::deliver:
            return "deliver";
        case verdict::excluded:
            return "excluded";
        case verdict::sampled_out:
            return "sampled_out";
        case verdict::integration_disabled:
            return "integration_disabled";
        case verdict::no_consent:
            return "no_consent";
        case verdict::malformed:
            return "malformed";
    }
    return "unknown";
}

std::uint64_t sample_hash(std::string_view id) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
    for (char c : id) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;  // FNV-1a 64 prime
    }
    // murmur3 fmix64: FNV-1a alone leaves the high bits poorly mixed for short, similar ids.
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

namespace {

void append_hex_digits(const unsigned char* md, std::size_t len, std::string& out) {
    static constexpr char hex[] = "0123456789abcdef";
    const std::size_t at = out.size();
    out.resize(at + len * 2);
    for (std::size_t i = 0; i < len; ++i) {
        out[at + 2 * i] = hex[md[i] >> 4];
        out[at + 2 * i + 1] = hex[md[i] & 0xF];
    }
}

}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), md,
             &len) == nullptr) {
        return {};
    }
    std::string out;
    append_hex_digits(md, len, out);
    return out;
}

void hmac_sha256::ctx_free::operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }

hmac_sha256::hmac_sha256(std::string_view key) {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac != nullptr) ctx_.reset(EVP_MAC_CTX_new(mac));
    EVP_MAC_free(mac);  // the context holds its own reference
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!ctx_ || EVP_MAC_init(ctx_.get(), reinterpret_cast<const unsigned char*>(key.data()),
                              key.size(), params) != 1) {
        throw std::runtime_error("OpenSSL cannot set up HMAC-SHA256");
    }
}

bool hmac_sha256::append_hex(std::string_view data, std::string& out) {
    unsigned char md[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    // A null key re-initialises the context with the key it already holds.
    if (!ctx_ || EVP_MAC_init(ctx_.get(), nullptr, 0, nullptr) != 1 ||
        EVP_MAC_update(ctx_.get(), reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) != 1 ||
        EVP_MAC_final(ctx_.get(), md, &len, sizeof(md)) != 1) {
        return false;
    }
    append_hex_digits(md, len, out);
    return true;
}

bool truncate_ip(std::string_view ip, std::string& out) {
    // One rule for the whole daemon: the same as sources[].ip: truncate at ingest.
    out = enrich::privacy::truncate_ip(ip);
    return !out.empty();
}

// ---------------------------------------------------------------------------------------------
// Config

namespace {

bool parse_path(std::string_view s, field_path& out) {
    out.clear();
    if (s.empty()) return false;
    std::size_t start = 0;
    while (true) {
        auto dot = s.find('.', start);
        auto seg = s.substr(start, dot == std::string_view::npos ? s.size() - start : dot - start);
        if (seg.empty()) return false;
        out.emplace_back(seg);
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

bool is_prefix(const field_path& a, const field_path& b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

operand make_operand(std::string text) {
    operand o;
    o.text = std::move(text);
    const char* b = o.text.data();
    const char* e = b + o.text.size();
    if (!o.text.empty()) {
        std::int64_t i = 0;
        auto [p, ec] = std::from_chars(b, e, i);
        if (ec == std::errc() && p == e) {
            o.is_int = true;
            o.int_value = i;
            o.is_number = true;
            o.number = static_cast<double>(i);
            return o;
        }
        char* end = nullptr;
        errno = 0;
        double d = std::strtod(o.text.c_str(), &end);
        if (end == e && errno == 0 && std::isfinite(d)) {
            o.is_number = true;
            o.number = d;
        }
    }
    return o;
}

bool parse_op(std::string_view s, op& out) {
    static constexpr std::pair<std::string_view, op> ops[] = {
        {"eq", op::eq},   {"ne", op::ne},           {"in", op::in}, {"exists", op::exists},
        {"gt", op::gt},   {"gte", op::gte},         {"lt", op::lt}, {"not_exists", op::not_exists},
        {"lte", op::lte}, {"matches", op::matches},
    };
    for (const auto& [name, o] : ops) {
        if (s == name) {
            out = o;
            return true;
        }
    }
    return false;
}

void read_condition(config::map_reader& w, condition& out) {
    std::string path, op_name, value;
    w.require("path", path,
              "Dotted path of object keys into the event JSON, e.g. properties.plan or "
              "context.traits.email (no array indexes).");
    w.require("op", op_name,
              "Comparison: eq, ne, in, exists, not_exists, gt, gte, lt, lte (numbers) or matches "
              "(glob with * and ?). eq/ne/in compare strings as text and numbers numerically; "
              "ne and not_exists hold when the path is missing; exists means present and not "
              "null.");
    if (w.describing()) {
        w.get("value", value,
              "Operand: a scalar for eq, ne, matches and the numeric ops; a list for in; not "
              "used by exists and not_exists.");
        return;
    }
    if (!path.empty() && !parse_path(path, out.path)) {
        w.errs().add(w.mark_of("path"),
                     fmt::format("{}: '{}' is not a dotted path of non-empty keys",
                                 w.key_path("path"), path));
    }
    if (op_name.empty()) {
        w.consume("value");
        return;
    }
    if (!parse_op(op_name, out.oper)) {
        w.errs().add(w.mark_of("op"),
                     fmt::format("{}: unknown op '{}' (expected eq, ne, in, exists, not_exists, "
                                 "gt, gte, lt, lte or matches)",
                                 w.key_path("op"), op_name));
        w.consume("value");
        return;
    }
    switch (out.oper) {
        case op::exists:
        case op::not_exists:
            if (w.has("value")) {
                w.errs().add(w.mark_of("value"),
                             fmt::format("{}: not used with op {}", w.key_path("value"), op_name));
            }
            w.consume("value");
            break;
        case op::in: {
            std::vector<std::string> values;
            w.get_strings("value", values, "");
            if (!w.has("value")) {
                w.errs().add(w.mark(),
                             fmt::format("{}: required key is missing", w.key_path("value")));
            } else if (values.empty()) {
                w.errs().add(w.mark_of("value"), fmt::format("{}: op in needs at least one value",
                                                             w.key_path("value")));
            }
            for (auto& v : values) out.values.push_back(make_operand(std::move(v)));
            break;
        }
        default: {
            w.require("value", value, "");
            operand o = make_operand(value);
            const bool numeric = out.oper == op::gt || out.oper == op::gte || out.oper == op::lt ||
                                 out.oper == op::lte;
            if (numeric && w.has("value") && !o.is_number) {
                w.errs().add(w.mark_of("value"), fmt::format("{}: op {} needs a number, got '{}'",
                                                             w.key_path("value"), op_name, value));
            }
            if (out.oper == op::matches) out.pattern = glob(value);
            out.values.push_back(std::move(o));
        }
    }
}

void read_matcher(config::map_reader& m, matcher& out) {
    std::vector<std::string> types, events;
    m.get_strings("type", types,
                  "Event types (track, identify, page, screen, group, alias); any of them. "
                  "Absent: any type.");
    m.get_strings("event", events,
                  "Event names, exact or glob (* any run, ? one character): `event` of a track, "
                  "`name` of a page or screen. An event without a name never matches. Absent: "
                  "any name.");
    m.get_strings("source", out.sources,
                  "Source names (the configured source the event came in through), exact. "
                  "Absent: any source.");
    for (std::size_t i = 0; i < types.size(); ++i) {
        auto t = event_type_from_string(types[i]);
        if (t == event_type::unknown) {
            m.errs().add(m.mark_of("type", static_cast<long>(i)),
                         fmt::format("{}[{}]: unknown event type '{}' (expected track, identify, "
                                     "page, screen, group or alias)",
                                     m.key_path("type"), i, types[i]));
            continue;
        }
        out.types |= static_cast<std::uint8_t>(1u << static_cast<unsigned>(t));
    }
    for (auto& e : events) out.events.emplace_back(std::move(e));
    for (auto& w : m.list("where",
                          "Conditions on the event JSON; all must hold. Each has path, op and "
                          "(except for exists/not_exists) value.")) {
        condition c;
        read_condition(w, c);
        w.finish();
        if (!m.describing()) out.where.push_back(std::move(c));
    }
}

void read_matchers(config::map_reader& dest, std::string_view key, std::string_view description,
                   std::vector<matcher>& out) {
    for (auto& m : dest.list(key, description)) {
        matcher mt;
        read_matcher(m, mt);
        m.finish();
        if (!dest.describing()) out.push_back(std::move(mt));
    }
}

void read_paths(config::map_reader& r, std::string_view key, std::string_view description,
                std::vector<field_path>& out) {
    std::vector<std::string> raw;
    r.get_strings(key, raw, description);
    for (std::size_t i = 0; i < raw.size(); ++i) {
        field_path p;
        if (!parse_path(raw[i], p)) {
            r.errs().add(r.mark_of(key, static_cast<long>(i)),
                         fmt::format("{}[{}]: '{}' is not a dotted path of non-empty keys",
                                     r.key_path(key), i, raw[i]));
            continue;
        }
        out.push_back(std::move(p));
    }
}

void read_fields(config::map_reader& f, field_rules& out) {
    read_paths(f, "drop", "Paths removed from the event JSON; a missing path is ignored.",
               out.drop);
    {
        auto r = f.child("rename",
                         "Mapping of source path → target path. The value moves to the target, "
                         "overwriting what is there and creating missing parent objects; a "
                         "missing source is ignored, and so is a target whose parent is not an "
                         "object. Neither path may contain the other.");
        const YAML::Node n = r.node();
        if (!r.describing() && n && n.IsMap()) {
            for (const auto& kv : n) {
                std::string from_s, to_s, err;
                if (!config::parse_scalar(kv.first, from_s, err)) {
                    f.errs().add(kv.first.Mark(), fmt::format("{}: {}", r.path(), err));
                    continue;
                }
                r.consume(from_s);
                const std::string where = r.path() + "." + from_s;
                if (!config::parse_scalar(kv.second, to_s, err)) {
                    f.errs().add(kv.second.Mark(), fmt::format("{}: {}", where, err));
                    continue;
                }
                field_path from, to;
                if (!parse_path(from_s, from)) {
                    f.errs().add(kv.first.Mark(),
                                 fmt::format("{}: '{}' is not a dotted path of non-empty keys",
                                             r.path(), from_s));
                    continue;
                }
                if (!parse_path(to_s, to)) {
                    f.errs().add(kv.second.Mark(),
                                 fmt::format("{}: '{}' is not a dotted path of non-empty keys",
                                             where, to_s));
                    continue;
                }
                if (is_prefix(from, to) || is_prefix(to, from)) {
                    f.errs().add(
                        kv.second.Mark(),
                        fmt::format("{}: source and target may not contain each other", where));
                    continue;
                }
                out.rename.emplace_back(std::move(from), std::move(to));
            }
        }
        r.finish();
    }
    read_paths(f, "hash",
               "Paths whose value is replaced by the hex HMAC-SHA256 (hash_key) of the value: "
               "a string's own bytes, any other value's minified JSON. A missing path is "
               "ignored. Runs after drop, rename and truncate_ip. Only the JSON changes: the "
               "log record's header (userId, anonymousId) keeps the original ids.",
               out.hash);
    f.get("hash_key", out.hash_key,
          "HMAC-SHA256 key for hash; required when hash is set. A secret: use ${ENV_VAR}.");
    f.get("truncate_ip", out.truncate_ip,
          "Truncate context.ip: IPv4 to its /24 (last octet 0), IPv6 to its /48, IPv4-mapped "
          "IPv6 to the /24 of its IPv4 address. A context.ip that is not an IP address is "
          "removed. Runs after drop and rename, before hash.");
    if (!f.describing() && !out.hash.empty() && out.hash_key.empty()) {
        f.errs().add(f.has("hash_key") ? f.mark_of("hash_key") : f.mark_of("hash"),
                     fmt::format("{}: required (and non-empty) when {} is set",
                                 f.key_path("hash_key"), f.key_path("hash")));
    }
}

}  // namespace

void read_rules(config::map_reader& dest, const std::string& destination_name, rules& out) {
    read_matchers(dest, "include",
                  "Matchers (type, event, source, where); when present, an event is delivered "
                  "only if it matches at least one. Evaluated after integrations and consent.",
                  out.include);
    out.has_include = !dest.describing() && dest.has("include");
    if (const YAML::Node n = dest.node();
        out.has_include && n["include"].IsSequence() && n["include"].size() == 0) {
        dest.errs().add(dest.mark_of("include"),
                        fmt::format("{}: must list at least one matcher (remove the key to "
                                    "deliver every event)",
                                    dest.key_path("include")));
    }
    read_matchers(dest, "exclude",
                  "Matchers with the same keys as include; an event matching any of them is not "
                  "delivered. Exclude wins over include.",
                  out.exclude);
    {
        auto s = dest.child("sample",
                            "Deterministic sampling: an id is in or out consistently across "
                            "restarts and nodes (and across destinations with the same rate).");
        std::string by = "userId";
        s.get("rate", out.sample_rate,
              "Fraction of ids delivered, 0 to 1. An id is in when FNV-1a 64 of its bytes, "
              "finished with murmur3 fmix64, is below rate × 2^64.");
        s.get("by", by,
              "Id to sample on: userId (falls back to anonymousId, then messageId), anonymousId "
              "(falls back to messageId) or messageId.");
        if (!s.describing()) {
            if (!(out.sample_rate >= 0.0 && out.sample_rate <= 1.0)) {
                s.errs().add(s.mark_of("rate"), fmt::format("{}: must be between 0 and 1, got {}",
                                                            s.key_path("rate"), out.sample_rate));
                out.sample_rate = 1.0;
            }
            if (by == "userId") {
                out.sample_by = sample_key::user_id;
            } else if (by == "anonymousId") {
                out.sample_by = sample_key::anonymous_id;
            } else if (by == "messageId") {
                out.sample_by = sample_key::message_id;
            } else {
                s.errs().add(s.mark_of("by"),
                             fmt::format("{}: unknown id '{}' (expected userId, anonymousId or "
                                         "messageId)",
                                         s.key_path("by"), by));
            }
            out.sample_threshold =
                out.sample_rate >= 1.0
                    ? UINT64_MAX
                    : static_cast<std::uint64_t>(std::ldexp(out.sample_rate, 64));
        }
        s.finish();
    }
    out.integration = dest.describing() ? std::string("<destination name>") : destination_name;
    dest.get("integration", out.integration,
             "Key looked up in the event's `integrations` object (exact, case-sensitive). If the "
             "key is present, its value decides (false: not delivered; true or an object: "
             "delivered); otherwise `All: false` means not delivered; otherwise delivered. An "
             "empty string ignores `integrations`.");
    if (dest.describing()) out.integration.clear();
    {
        auto c = dest.child("consent",
                            "Segment Consent Management: context.consent.categoryPreferences "
                            "maps category → bool.");
        std::string missing = "allow";
        c.get_strings("categories", out.consent_categories,
                      "Categories this destination requires; delivered only if every one is "
                      "true in the event's categoryPreferences. Empty: consent is ignored.");
        c.get("missing", missing,
              "When the event has no context.consent.categoryPreferences object: allow or deny. "
              "Only used when categories is set.");
        if (!c.describing()) {
            if (missing == "allow") {
                out.consent_missing_allow = true;
            } else if (missing == "deny") {
                out.consent_missing_allow = false;
            } else {
                c.errs().add(c.mark_of("missing"),
                             fmt::format("{}: expected allow or deny, got '{}'",
                                         c.key_path("missing"), missing));
            }
            for (std::size_t i = 0; i < out.consent_categories.size(); ++i) {
                if (out.consent_categories[i].empty()) {
                    c.errs().add(
                        c.mark_of("categories", static_cast<long>(i)),
                        fmt::format("{}[{}]: must not be empty", c.key_path("categories"), i));
                }
            }
        }
        c.finish();
    }
    {
        auto f = dest.child("fields",
                            "Changes to the event JSON sent to this destination, applied in "
                            "this order: drop, rename, truncate_ip, hash.");
        read_fields(f, out.fields);
        f.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Routing

namespace {

bool has_key_escapes(std::string_view json) noexcept {
    // A key can hide from a literal search only behind \uXXXX or \/ (the other escapes stand for
    // characters the needle itself escapes the same way).
    for (std::size_t i = json.find('\\'); i != std::string_view::npos && i + 1 < json.size();
         i = json.find('\\', i + 2)) {
        if (json[i + 1] == 'u' || json[i + 1] == '/') return true;
    }
    return false;
}

bool lookup(dom::element root, const field_path& path, dom::element& out) {
    dom::element cur = root;
    for (const auto& seg : path) {
        dom::object obj;
        if (cur.get(obj) != simdjson::SUCCESS) return false;
        if (obj.at_key(seg).get(cur) != simdjson::SUCCESS) return false;
    }
    out = cur;
    return true;
}

bool as_number(dom::element v, double& out) {
    switch (v.type()) {
        case dom::element_type::INT64:
            out = static_cast<double>(std::int64_t(v));
            return true;
        case dom::element_type::UINT64:
            out = static_cast<double>(std::uint64_t(v));
            return true;
        case dom::element_type::DOUBLE:
            out = double(v);
            return true;
        default:
            return false;
    }
}

bool equals(dom::element v, const operand& o) {
    switch (v.type()) {
        case dom::element_type::STRING:
            return std::string_view(v) == o.text;
        case dom::element_type::INT64:
            if (o.is_int) return std::int64_t(v) == o.int_value;
            return o.is_number && static_cast<double>(std::int64_t(v)) == o.number;
        case dom::element_type::UINT64:
            if (o.is_int) {
                return o.int_value >= 0 &&
                       std::uint64_t(v) == static_cast<std::uint64_t>(o.int_value);
            }
            return o.is_number && static_cast<double>(std::uint64_t(v)) == o.number;
        case dom::element_type::DOUBLE:
            return o.is_number && double(v) == o.number;
        case dom::element_type::BOOL:
            return (bool(v) ? "true" : "false") == o.text;
        default:
            return false;
    }
}

bool holds(const condition& c, dom::element root) {
    dom::element v;
    const bool present = lookup(root, c.path, v) && !v.is_null();
    switch (c.oper) {
        case op::exists:
            return present;
        case op::not_exists:
            return !present;
        case op::eq:
            return present && equals(v, c.values.front());
        case op::ne:
            return !(present && equals(v, c.values.front()));
        case op::in:
            if (!present) return false;
            for (const auto& o : c.values) {
                if (equals(v, o)) return true;
            }
            return false;
        case op::matches: {
            std::string_view s;
            return present && v.get(s) == simdjson::SUCCESS && c.pattern.matches(s);
        }
        case op::gt:
        case op::gte:
        case op::lt:
        case op::lte: {
            double d = 0;
            if (!present || !as_number(v, d)) return false;
            const double x = c.values.front().number;
            if (c.oper == op::gt) return d > x;
            if (c.oper == op::gte) return d >= x;
            if (c.oper == op::lt) return d < x;
            return d <= x;
        }
    }
    return false;
}

// A copy-on-write view of the parsed event for field rules: objects on an edited path are
// turned into edit_nodes (their members still point into the DOM); everything else stays a DOM
// element and is serialized untouched.
struct edit_node;
struct new_string {
    std::string value;  // unescaped
};
using edit_value = std::variant<dom::element, new_string, std::unique_ptr<edit_node>>;
struct edit_member {
    std::string_view key;  // into the parser's buffer or the rules; both outlive the edit
    edit_value value;
};
struct edit_node {
    std::vector<edit_member> members;
};

std::unique_ptr<edit_node> materialize(dom::object obj) {
    auto n = std::make_unique<edit_node>();
    n->members.reserve(obj.size());
    for (auto [key, value] : obj) n->members.push_back({key, value});
    return n;
}

edit_member* find(edit_node& n, std::string_view key) {
    for (auto& m : n.members) {
        if (m.key == key) return &m;
    }
    return nullptr;
}

// The node holding the last segment of `path`, or nullptr when a parent is missing (and not
// `create`) or is not an object.
edit_node* parent_of(edit_node& root, const field_path& path, bool create) {
    edit_node* cur = &root;
    for (std::size_t i = 0; i + 1 < path.size(); ++i) {
        edit_member* m = find(*cur, path[i]);
        if (m == nullptr) {
            if (!create) return nullptr;
            cur->members.push_back({path[i], std::make_unique<edit_node>()});
            m = &cur->members.back();
        }
        if (auto* el = std::get_if<dom::element>(&m->value)) {
            dom::object obj;
            if (el->get(obj) != simdjson::SUCCESS) return nullptr;
            m->value = materialize(obj);
        }
        auto* child = std::get_if<std::unique_ptr<edit_node>>(&m->value);
        if (child == nullptr) return nullptr;
        cur = child->get();
    }
    return cur;
}

void erase(edit_node& n, edit_member* m) {
    n.members.erase(n.members.begin() + (m - &n.members[0]));
}

void write_node(const edit_node& n, std::string& out, simdjson::internal::string_builder<>& sb);

void write_value(const edit_value& v, std::string& out, simdjson::internal::string_builder<>& sb) {
    if (const auto* el = std::get_if<dom::element>(&v)) {
        sb.clear();
        sb.append(*el);
        out += sb.str();
    } else if (const auto* s = std::get_if<new_string>(&v)) {
        util::append_json_string(out, s->value);
    } else {
        write_node(*std::get<std::unique_ptr<edit_node>>(v), out, sb);
    }
}

void write_node(const edit_node& n, std::string& out, simdjson::internal::string_builder<>& sb) {
    out += '{';
    bool first = true;
    for (const auto& m : n.members) {
        if (!first) out += ',';
        first = false;
        util::append_json_string(out, m.key);
        out += ':';
        write_value(m.value, out, sb);
    }
    out += '}';
}

}  // namespace

struct router::lazy_doc {
    lazy_doc(dom::parser& p, std::string_view j) : parser(p), json(j) {}

    dom::parser& parser;
    std::string_view json;
    dom::element root;
    int state = 0;     // 0 not parsed, 1 parsed, -1 failed
    int escapes = -1;  // -1 not scanned yet

    bool parse() {
        if (state == 0) {
            state = parser.parse(json.data(), json.size(), true).get(root) == simdjson::SUCCESS
                        ? 1
                        : -1;
        }
        return state == 1;
    }
    bool failed() const noexcept { return state < 0; }

    // False only when `needle` (a JSON string literal) cannot be a key anywhere in the event.
    // Lets the common case (no integrations flags, no consent object) skip the parse.
    bool may_contain(std::string_view needle) {
        // glibc memmem (two-way, vectorised): string_view::find stops at every '"' of the JSON.
        if (::memmem(json.data(), json.size(), needle.data(), needle.size()) != nullptr) {
            return true;
        }
        if (escapes < 0) escapes = has_key_escapes(json) ? 1 : 0;
        return escapes == 1;
    }
};

router::router(rules r) : rules_(std::move(r)) {
    passthrough_ = rules_.empty();
    if (!rules_.fields.hash.empty()) hmac_ = hmac_sha256(rules_.fields.hash_key);
    if (!rules_.integration.empty())
        util::append_json_string(integration_needle_, rules_.integration);
}

bool router::integration_enabled(lazy_doc& doc) {
    if (!doc.may_contain(integration_needle_) && !doc.may_contain("\"All\"")) return true;
    if (!doc.parse()) return false;
    dom::object integrations;
    if (doc.root["integrations"].get(integrations) != simdjson::SUCCESS) return true;
    dom::element v;
    if (integrations.at_key(rules_.integration).get(v) == simdjson::SUCCESS) {
        bool b = true;
        return v.get(b) != simdjson::SUCCESS || b;
    }
    if (integrations.at_key("All").get(v) == simdjson::SUCCESS) {
        bool b = true;
        return v.get(b) != simdjson::SUCCESS || b;
    }
    return true;
}

bool router::consent_granted(lazy_doc& doc) {
    if (!doc.may_contain("\"categoryPreferences\"")) return rules_.consent_missing_allow;
    if (!doc.parse()) return false;
    dom::object prefs;
    if (doc.root.at_pointer("/context/consent/categoryPreferences").get(prefs) !=
        simdjson::SUCCESS) {
        return rules_.consent_missing_allow;
    }
    for (const auto& category : rules_.consent_categories) {
        bool granted = false;
        if (prefs.at_key(category).get(granted) != simdjson::SUCCESS || !granted) return false;
    }
    return true;
}

bool router::matches(const matcher& m, const event_view& ev, lazy_doc& doc) {
    if (m.types != 0) {
        const auto t = static_cast<unsigned>(ev.type);
        if (t >= 8 || (m.types & (1u << t)) == 0) return false;
    }
    if (!m.sources.empty()) {
        bool any = false;
        for (const auto& s : m.sources) any = any || s == ev.source;
        if (!any) return false;
    }
    if (!m.events.empty()) {
        if (ev.event_name.empty()) return false;
        bool any = false;
        for (const auto& g : m.events) any = any || g.matches(ev.event_name);
        if (!any) return false;
    }
    if (!m.where.empty()) {
        if (!doc.parse()) return false;
        for (const auto& c : m.where) {
            if (!holds(c, doc.root)) return false;
        }
    }
    return true;
}

bool router::sampled_in(const event_view& ev) const noexcept {
    if (rules_.sample_rate >= 1.0) return true;
    std::string_view id;
    switch (rules_.sample_by) {
        case sample_key::user_id:
            id = !ev.user_id.empty() ? ev.user_id : ev.anonymous_id;
            break;
        case sample_key::anonymous_id:
            id = ev.anonymous_id;
            break;
        case sample_key::message_id:
            break;
    }
    if (id.empty()) id = ev.message_id;
    return sample_hash(id) < rules_.sample_threshold;
}

bool router::apply_fields(dom::element root, std::size_t size_hint, std::string& out) {
    dom::object top;
    if (root.get(top) != simdjson::SUCCESS) return false;
    edit_node tree;
    tree.members.reserve(top.size() + 1);
    for (auto [key, value] : top) tree.members.push_back({key, value});
    bool changed = false;
    const field_rules& f = rules_.fields;

    for (const auto& path : f.drop) {
        edit_node* parent = parent_of(tree, path, false);
        if (parent == nullptr) continue;
        if (edit_member* m = find(*parent, path.back())) {
            erase(*parent, m);
            changed = true;
        }
    }
    for (const auto& [from, to] : f.rename) {
        edit_node* src = parent_of(tree, from, false);
        if (src == nullptr || find(*src, from.back()) == nullptr) continue;
        // Resolve the target first so that an impossible target leaves the source in place. The
        // paths do not contain each other (checked at config time), so this cannot free `src`.
        edit_node* dst = parent_of(tree, to, true);
        if (dst == nullptr) continue;
        edit_member* m = find(*src, from.back());
        edit_value v = std::move(m->value);
        erase(*src, m);
        if (edit_member* existing = find(*dst, to.back())) {
            existing->value = std::move(v);
        } else {
            dst->members.push_back({to.back(), std::move(v)});
        }
        changed = true;
    }
    if (f.truncate_ip) {
        static const field_path ip_path{"context", "ip"};
        if (edit_node* ctx = parent_of(tree, ip_path, false)) {
            if (edit_member* m = find(*ctx, "ip")) {
                std::string_view ip;
                if (const auto* el = std::get_if<dom::element>(&m->value)) {
                    if (el->get(ip) != simdjson::SUCCESS) ip = {};
                } else if (const auto* s = std::get_if<new_string>(&m->value)) {
                    ip = s->value;
                }
                std::string truncated;
                if (!ip.empty() && truncate_ip(ip, truncated)) {
                    if (truncated != ip) {
                        m->value = new_string{std::move(truncated)};
                        changed = true;
                    }
                } else {
                    erase(*ctx, m);  // not an address we can truncate: never send it as is
                    changed = true;
                }
            }
        }
    }
    for (const auto& path : f.hash) {
        edit_node* parent = parent_of(tree, path, false);
        if (parent == nullptr) continue;
        edit_member* m = find(*parent, path.back());
        if (m == nullptr) continue;
        std::string text;
        if (const auto* el = std::get_if<dom::element>(&m->value)) {
            std::string_view s;
            if (el->get(s) == simdjson::SUCCESS) {
                text = s;
            } else {
                sb_.clear();
                sb_.append(*el);
                text = sb_.str();
            }
        } else if (auto* s = std::get_if<new_string>(&m->value)) {
            text = std::move(s->value);
        } else {
            write_node(*std::get<std::unique_ptr<edit_node>>(m->value), text, sb_);
        }
        new_string hashed;
        if (!hmac_.append_hex(text, hashed.value)) return false;  // never send it unhashed
        m->value = std::move(hashed);
        changed = true;
    }

    if (changed) {
        out.reserve(size_hint);
        write_node(tree, out, sb_);
    }
    return true;
}

verdict router::route(const event_view& ev, std::string& transformed) {
    transformed.clear();
    if (passthrough_) return verdict::deliver;
    lazy_doc doc{parser_, ev.json};

    if (!rules_.integration.empty() && !integration_enabled(doc)) {
        return doc.failed() ? verdict::malformed : verdict::integration_disabled;
    }
    if (!rules_.consent_categories.empty() && !consent_granted(doc)) {
        return doc.failed() ? verdict::malformed : verdict::no_consent;
    }
    for (const auto& m : rules_.exclude) {
        if (matches(m, ev, doc)) return verdict::excluded;
        if (doc.failed()) return verdict::malformed;
    }
    if (rules_.has_include) {
        bool any = false;
        for (const auto& m : rules_.include) {
            if (matches(m, ev, doc)) {
                any = true;
                break;
            }
            if (doc.failed()) return verdict::malformed;
        }
        if (!any) return verdict::excluded;
    }
    if (!sampled_in(ev)) return verdict::sampled_out;
    if (!rules_.fields.empty()) {
        if (!doc.parse() || !apply_fields(doc.root, ev.json.size() + 64, transformed)) {
            transformed.clear();
            return verdict::malformed;
        }
    }
    return verdict::deliver;
}

}  // namespace switchyard::route
