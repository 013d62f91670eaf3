#include "app/identity_api.h"

#include "app/operator_reply.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/time.h"
#include "util/url.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <future>

namespace switchyard::app {

namespace {

using identity::id_type;
using identity::key_id;
using identity::key_type;

constexpr std::string_view prefix = "/v1/identity/";

// The one id a request names: userId, anonymousId, deviceId, or personId (+ personIdType,
// default userId). Empty + `err` when none or several are given.
template <class Get>
std::string subject_key(Get get, std::string& err) {
    std::string key;
    int n = 0;
    for (auto t : {id_type::user, id_type::anonymous, id_type::device}) {
        if (auto v = get(identity::to_string(t)); v && !v->empty()) {
            key = identity::make_key(t, *v);
            ++n;
        }
    }
    if (auto v = get("personId"); v && !v->empty()) {
        auto type = id_type::user;
        if (auto t = get("personIdType"); t && !t->empty()) {
            auto parsed = identity::id_type_from_string(*t);
            if (!parsed) {
                err = fmt::format("personIdType '{}' is not userId, anonymousId or deviceId",
                                  t->substr(0, 100));
                return {};
            }
            type = *parsed;
        }
        key = identity::make_key(type, *v);
        ++n;
    }
    if (n == 0) err = "name one id: userId, anonymousId, deviceId or personId";
    if (n > 1) err = "name only one id: userId, anonymousId, deviceId or personId";
    return n == 1 ? key : std::string();
}

std::string subject_from_query(std::string_view query, std::string& err) {
    auto q = util::parse_query(query);
    return subject_key(
        [&](std::string_view k) -> std::optional<std::string> {
            auto it = q.find(std::string(k));
            if (it == q.end()) return std::nullopt;
            return it->second;
        },
        err);
}

struct body_fields {
    std::string subject;
    std::string requested_by;
    std::string reason;
    bool suppress = true;
};

bool parse_body(std::string_view body, body_fields& f, std::string& err) {
    simdjson::dom::parser parser;
    simdjson::dom::object o;
    if (parser.parse(body.data(), body.size()).get(o) != simdjson::SUCCESS) {
        err = "the body must be a JSON object";
        return false;
    }
    auto str = [&](std::string_view k) -> std::optional<std::string> {
        std::string_view v;
        if (o[k].get(v) != simdjson::SUCCESS) return std::nullopt;
        return std::string(v);
    };
    for (std::string_view k : {"userId", "anonymousId", "deviceId", "personId", "personIdType",
                               "requestedBy", "reason"}) {
        simdjson::dom::element e;
        if (o[k].get(e) == simdjson::SUCCESS && !e.is_string()) {
            err = fmt::format("'{}' must be a string", k);
            return false;
        }
    }
    f.subject = subject_key(str, err);
    if (f.subject.empty()) return false;
    if (key_id(f.subject).size() > 1024) {
        err = "the id is longer than 1024 bytes";
        return false;
    }
    f.requested_by = str("requestedBy").value_or("");
    f.reason = str("reason").value_or("");
    bool b = true;
    if (simdjson::dom::element e; o["suppress"].get(e) == simdjson::SUCCESS) {
        if (e.get(b) != simdjson::SUCCESS) {
            err = "'suppress' must be true or false";
            return false;
        }
    }
    f.suppress = b;
    return true;
}

std::string suppression_json(const identity::suppression_list::entry& e) {
    std::string j = "{\"id\":";
    identity::append_key_json(j, e.key);
    j += ",\"person\":";
    identity::append_key_json(j, e.person);
    j += ",\"suppressedAt\":\"";
    util::append_iso8601_ms(j, e.at_ms);
    j += "\",\"requestedBy\":";
    util::append_json_string(j, e.by);
    j += ",\"reason\":";
    util::append_json_string(j, e.reason);
    j += '}';
    return j;
}

}  // namespace

identity_api::identity_api(identity::service* ids, event_appender* appender,
                           std::function<std::vector<std::string>()> deletion_destinations)
    : ids_(ids), appender_(appender), deletion_destinations_(std::move(deletion_destinations)) {}

std::optional<identity_api::reply> identity_api::call(std::string_view method,
                                                      std::string_view path, std::string_view query,
                                                      std::string_view body) {
    if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
    if (ids_ == nullptr) {
        return error_reply(503, "identity_disabled",
                           "identity is off in this daemon's config (identity.enabled)");
    }
    std::string_view rest = path.substr(prefix.size());
    if (rest == "persons") {
        if (method != "GET") return error_reply(405, "method_not_allowed", "use GET");
        return persons(query);
    }
    if (rest == "suppressions") return suppressions(method, query, body);
    if (rest == "deletions" || rest.substr(0, 10) == "deletions/") {
        return deletions(method, rest.size() > 10 ? rest.substr(10) : std::string_view{}, body);
    }
    return error_reply(404, "not_found", "no such identity route");
}

identity_api::reply identity_api::persons(std::string_view query) {
    std::string err;
    auto key = subject_from_query(query, err);
    if (key.empty()) return error_reply(400, "invalid_request", err);
    auto p = ids_->ids().person_of(key);
    if (!p) {
        return error_reply(503, "store_unavailable",
                           "the identity store cannot be read: " + p.error().message());
    }
    std::string j = "{\"personId\":";
    util::append_json_string(j, key_id(p->person));
    j += ",\"personIdType\":";
    util::append_json_string(j, identity::to_string(key_type(p->person)));
    j += ",\"stored\":";
    j += p->stored ? "true" : "false";
    j += ",\"ids\":";
    identity::append_keys_json(j, p->members);
    if (p->stored) {
        j += ",\"lastSeen\":\"";
        util::append_iso8601_ms(j, p->last_seen_ms);
        j += '"';
    }
    bool suppressed = ids_->suppressions().contains(p->person);
    for (const auto& m : p->members) suppressed = suppressed || ids_->suppressions().contains(m);
    j += ",\"suppressed\":";
    j += suppressed ? "true" : "false";
    j += '}';
    return {200, std::move(j)};
}

identity_api::reply identity_api::suppressions(std::string_view method, std::string_view query,
                                               std::string_view body) {
    auto& list = ids_->suppressions();
    if (method == "GET") {
        std::string j = "{\"suppressions\":[";
        bool first = true;
        for (const auto& e : list.list()) {
            if (!first) j += ',';
            first = false;
            j += suppression_json(e);
        }
        j += "]}";
        return {200, std::move(j)};
    }
    if (method == "POST") {
        body_fields f;
        std::string err;
        if (!parse_body(body, f, err)) return error_reply(400, "invalid_request", err);
        // The whole person: every id it holds now (ids joining later are refused at admission
        // through the person's canonical id).
        auto p = ids_->ids().person_of(f.subject);
        if (!p) {
            return error_reply(503, "store_unavailable",
                               "the identity store cannot be read: " + p.error().message());
        }
        std::vector<identity::suppression_list::entry> entries;
        const auto now = util::now_ms();
        std::vector<std::string> keys = p->members;
        if (std::find(keys.begin(), keys.end(), f.subject) == keys.end()) keys.push_back(f.subject);
        if (std::find(keys.begin(), keys.end(), p->person) == keys.end()) keys.push_back(p->person);
        for (const auto& k : keys) entries.push_back({k, now, f.requested_by, f.reason, p->person});
        if (auto ec = list.add(entries)) {
            return error_reply(503, "store_unavailable",
                               "the suppression could not be stored: " + ec.message());
        }
        spdlog::info("Identity: {} suppressed ({} id(s)), requested by '{}'.", f.subject,
                     keys.size(), f.requested_by);
        std::string j = "{\"personId\":";
        util::append_json_string(j, key_id(p->person));
        j += ",\"personIdType\":";
        util::append_json_string(j, identity::to_string(key_type(p->person)));
        j += ",\"suppressed\":";
        identity::append_keys_json(j, keys);
        j += '}';
        return {201, std::move(j)};
    }
    if (method == "DELETE") {
        std::string err;
        auto key = subject_from_query(query, err);
        if (key.empty()) return error_reply(400, "invalid_request", err);
        // Lifts the suppression of the whole person the key was suppressed with.
        std::string person;
        for (const auto& e : list.list()) {
            if (e.key == key) person = e.person;
        }
        if (person.empty()) return error_reply(404, "not_suppressed", "that id is not suppressed");
        std::vector<std::string> lifted;
        for (const auto& e : list.list()) {
            if (e.person != person) continue;
            auto r = list.remove(e.key);
            if (!r) {
                return error_reply(503, "store_unavailable",
                                   "the suppression could not be lifted: " + r.error().message());
            }
            lifted.push_back(e.key);
        }
        spdlog::info("Identity: suppression of {} lifted ({} id(s)).", key, lifted.size());
        std::string j = "{\"lifted\":";
        identity::append_keys_json(j, lifted);
        j += '}';
        return {200, std::move(j)};
    }
    return error_reply(405, "method_not_allowed", "use GET, POST or DELETE");
}

identity_api::reply identity_api::deletions(std::string_view method, std::string_view id,
                                            std::string_view body) {
    auto& audit = ids_->audit();
    if (method == "GET") {
        if (!id.empty()) {
            auto r = audit.get(id);
            if (!r) return error_reply(404, "not_found", "no deletion request with that id");
            return {200, identity::deletion_audit::to_json(*r)};
        }
        std::string j = "{\"deletions\":[";
        bool first = true;
        for (const auto& r : audit.list()) {
            if (!first) j += ',';
            first = false;
            j += identity::deletion_audit::to_json(r);
        }
        j += "]}";
        return {200, std::move(j)};
    }
    if (method == "POST" && id.empty()) return create_deletion(body);
    return error_reply(405, "method_not_allowed", "use GET, or POST /v1/identity/deletions");
}

identity_api::reply identity_api::create_deletion(std::string_view body) {
    if (appender_ == nullptr) {
        return error_reply(503, "no_log_writer",
                           "this process does not write the event log (role deliver); send "
                           "deletions to a collector");
    }
    body_fields f;
    std::string err;
    if (!parse_body(body, f, err)) return error_reply(400, "invalid_request", err);
    if (f.requested_by.empty()) {
        return error_reply(400, "invalid_request",
                           "'requestedBy' is required: the audit trail records who asked");
    }
    std::lock_guard g(mu_);
    auto p = ids_->ids().person_of(f.subject);
    if (!p) {
        return error_reply(503, "store_unavailable",
                           "the identity store cannot be read: " + p.error().message());
    }
    identity::deletion_audit::request r;
    r.id = util::uuid_v4();
    r.requested_ms = util::now_ms();
    r.requested_by = f.requested_by;
    r.reason = f.reason;
    r.subject = f.subject;
    r.person = p->person;
    r.ids = p->members;
    if (std::find(r.ids.begin(), r.ids.end(), f.subject) == r.ids.end()) r.ids.push_back(f.subject);
    r.destinations = deletion_destinations_ ? deletion_destinations_() : std::vector<std::string>{};
    r.suppressed = f.suppress;

    // 1. Suppress first, so events arriving meanwhile do not re-create the person.
    if (f.suppress) {
        std::vector<identity::suppression_list::entry> entries;
        for (const auto& k : r.ids) {
            entries.push_back({k, r.requested_ms, f.requested_by, "deletion " + r.id, r.person});
        }
        if (auto ec = ids_->suppressions().add(entries)) {
            return error_reply(503, "store_unavailable",
                               "the suppression could not be stored: " + ec.message());
        }
    }
    // 2. The deletion record, durable in the log before anything is removed.
    event_header h;
    h.kind = record_kind::deletion;
    h.received_at_ms = r.requested_ms;
    h.message_id = identity::deletion_audit::message_id(r.id);
    h.event_name = "deletion";
    std::string users, anons, devices;
    for (const auto& k : r.ids) {
        std::string& list = key_type(k) == id_type::user        ? users
                            : key_type(k) == id_type::anonymous ? anons
                                                                : devices;
        if (!list.empty()) list += ',';
        util::append_json_string(list, key_id(k));
        if (key_type(k) == id_type::user && h.user_id.empty()) h.user_id = key_id(k);
        if (key_type(k) == id_type::anonymous && h.anonymous_id.empty()) {
            h.anonymous_id = key_id(k);
        }
    }
    std::string j = "{\"type\":\"deletion\",\"messageId\":";
    util::append_json_string(j, h.message_id);
    j += ",\"requestId\":";
    util::append_json_string(j, r.id);
    j += ",\"personId\":";
    util::append_json_string(j, key_id(r.person));
    j += ",\"personIdType\":";
    util::append_json_string(j, identity::to_string(key_type(r.person)));
    j += ",\"ids\":";
    identity::append_keys_json(j, r.ids);
    j += ",\"userIds\":[" + users + "],\"anonymousIds\":[" + anons + "],\"deviceIds\":[" + devices +
         "],\"requestedBy\":";
    util::append_json_string(j, r.requested_by);
    j += ",\"reason\":";
    util::append_json_string(j, r.reason);
    j += ",\"requestedAt\":\"";
    util::append_iso8601_ms(j, r.requested_ms);
    j += "\",\"receivedAt\":\"";
    util::append_iso8601_ms(j, r.requested_ms);
    j += "\"}";
    record_batch batch;
    std::string payload;
    encode_event(h, j, payload);
    batch.add(payload);
    std::promise<std::error_code> done;
    auto fut = done.get_future();
    auto ec = appender_->append(std::move(batch),
                                [&done](std::error_code e, std::uint64_t) { done.set_value(e); });
    if (!ec) ec = fut.get();
    if (ec) {
        return error_reply(503, "log_unavailable",
                           "the deletion record could not be stored (" + ec.message() +
                               "); nothing was deleted, retry later");
    }
    // 3. The audit trail, then the graph.
    if (auto aec = ids_->audit().record(r)) {
        spdlog::error(
            "Identity: deletion {} is in the log but its audit line could not be "
            "written: {}.",
            r.id, aec.message());
    }
    auto forgotten = ids_->ids().forget(f.subject);
    if (!forgotten) {
        spdlog::error(
            "Identity: deletion {}: the identity store could not remove {}: {}. The "
            "deletion record is in the log; retry the request to remove the links.",
            r.id, f.subject, forgotten.error().message());
        return error_reply(503, "store_unavailable",
                           fmt::format("deletion {} was sent to the destinations but the "
                                       "identity store could not remove the person: {}",
                                       r.id, forgotten.error().message()));
    }
    spdlog::info("Identity: deletion {} of {} ({} id(s)) requested by '{}'.", r.id, f.subject,
                 r.ids.size(), r.requested_by);
    return {202, identity::deletion_audit::to_json(r)};
}

}  // namespace switchyard::app
