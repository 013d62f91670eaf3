#include "sources/segment/decoder.h"

#include "util/ids.h"
#include "util/json.h"
#include "util/time.h"

#include <fmt/format.h>

namespace switchyard::sources::segment {

namespace dom = simdjson::dom;

namespace {

constexpr std::size_t max_message_id_chars = 100;

// Fields the server writes itself; the client's values are read, not copied through.
bool is_server_field(std::string_view k) {
    return k == "type" || k == "messageId" || k == "writeKey" || k == "sentAt" ||
           k == "timestamp" || k == "originalTimestamp" || k == "receivedAt" || k == "context" ||
           k == "integrations";
}

// An identifier may be a non-empty string or a number (some server SDKs send numeric ids).
enum class id_state { absent, ok, bad_type };

id_state read_id(dom::object obj, std::string_view key, std::string& out) {
    dom::element v;
    if (obj.at_key(key).get(v) != simdjson::SUCCESS || v.is_null()) return id_state::absent;
    std::string_view s;
    if (v.get(s) == simdjson::SUCCESS) {
        if (s.empty()) return id_state::absent;
        out.assign(s);
        return id_state::ok;
    }
    int64_t i;
    if (v.get(i) == simdjson::SUCCESS) {
        out = std::to_string(i);
        return id_state::ok;
    }
    uint64_t u;
    if (v.get(u) == simdjson::SUCCESS) {
        out = std::to_string(u);
        return id_state::ok;
    }
    return id_state::bad_type;
}

std::string_view string_field(dom::object obj, std::string_view key) {
    std::string_view s;
    if (obj.at_key(key).get(s) != simdjson::SUCCESS) return {};
    return s;
}

// Records what the enrichment stage needs from one context member.
void note_context_member(std::string_view key, dom::element value, enrich::event_input& in) {
    if (key.empty()) return;
    switch (key[0]) {
        case 'b':
            if (key == "browser") in.has_browser = true;
            if (key == "bot") in.has_bot = true;
            break;
        case 'c':
            if (key == "campaign") in.has_campaign = true;
            break;
        case 'd':
            if (key == "device") in.has_device = true;
            break;
        case 'i':
            if (key == "ip") {
                std::string_view ip;
                if (value.get(ip) == simdjson::SUCCESS) in.ip = ip;
                in.ip_from_context = true;
            }
            break;
        case 'l':
            if (key == "location") in.has_location = true;
            break;
        case 'n':
            if (key == "network") in.has_network = true;
            break;
        case 'o':
            if (key == "os") in.has_os = true;
            break;
        case 'p':
            if (key == "page") {
                dom::object page;
                if (value.get(page) == simdjson::SUCCESS) {
                    in.page_url = string_field(page, "url");
                    in.page_search = string_field(page, "search");
                    in.page_referrer = string_field(page, "referrer");
                }
            }
            break;
        case 'r':
            if (key == "referrer") in.has_referrer = true;
            break;
        case 'u':
            if (key == "userAgent") {
                std::string_view ua;
                if (value.get(ua) == simdjson::SUCCESS) {
                    in.user_agent = ua;
                    in.has_user_agent = true;
                }
            } else if (key == "userAgentData") {
                in.user_agent_data = value;
                in.has_user_agent_data = value.is_object();
            }
            break;
        default:
            break;
    }
}

}  // namespace

std::optional<body_error> decoder::parse(std::string_view body, bool batch) {
    batch_ = batch;
    has_batch_context_ = false;
    has_batch_integrations_ = false;
    batch_sent_at_ = {};
    if (batch && body.size() > limits_.max_batch_bytes) {
        return body_error{400, "batch_too_large",
                          fmt::format("batch body is {} bytes; the limit is {} bytes", body.size(),
                                      limits_.max_batch_bytes)};
    }
    if (!batch && body.size() > limits_.max_event_bytes) {
        return body_error{400, "event_too_large",
                          fmt::format("event body is {} bytes; the limit is {} bytes", body.size(),
                                      limits_.max_event_bytes)};
    }
    if (auto err = parser_.parse(body.data(), body.size(), true).get(root_); err) {
        return body_error{400, "invalid_json",
                          fmt::format("body is not valid JSON: {}", simdjson::error_message(err))};
    }
    dom::object top;
    if (root_.get(top) != simdjson::SUCCESS) {
        return body_error{400, "invalid_body", "body must be a JSON object"};
    }
    if (batch) {
        dom::array arr;
        if (top.at_key("batch").get(arr) != simdjson::SUCCESS) {
            return body_error{400, "invalid_batch", "body must have a 'batch' array"};
        }
        if (arr.size() == 0) {
            return body_error{400, "empty_batch", "'batch' contains no events"};
        }
        if (arr.size() > limits_.max_batch_events) {
            return body_error{400, "too_many_events",
                              fmt::format("batch has {} events; the limit is {}", arr.size(),
                                          limits_.max_batch_events)};
        }
        batch_sent_at_ = string_field(top, "sentAt");
        has_batch_context_ = top.at_key("context").get(batch_context_) == simdjson::SUCCESS;
        has_batch_integrations_ =
            top.at_key("integrations").get(batch_integrations_) == simdjson::SUCCESS;
    }
    return std::nullopt;
}

std::string_view decoder::body_write_key() const {
    dom::object top;
    if (root_.get(top) != simdjson::SUCCESS) return {};
    std::string_view k = string_field(top, "writeKey");
    if (!k.empty() || !batch_) return k;
    dom::array arr;
    if (top.at_key("batch").get(arr) != simdjson::SUCCESS) return {};
    for (dom::element e : arr) {
        dom::object o;
        if (e.get(o) != simdjson::SUCCESS) continue;
        k = string_field(o, "writeKey");
        if (!k.empty()) return k;
    }
    return {};
}

void decoder::decode(const request_info& info, decoded& out) {
    dom::object top;
    if (root_.get(top) != simdjson::SUCCESS) return;
    if (!batch_) {
        decode_one(top, 0, info, out);
        return;
    }
    dom::array arr;
    if (top.at_key("batch").get(arr) != simdjson::SUCCESS) return;
    std::size_t index = 0;
    for (dom::element e : arr) {
        dom::object o;
        if (e.get(o) != simdjson::SUCCESS) {
            sb_.clear();
            sb_.append(e);
            out.rejected.push_back(
                {index, "not_an_object", "event is not a JSON object", std::string(sb_.str())});
        } else {
            decode_one(o, index, info, out);
        }
        ++index;
    }
}

bool decoder::decode_one(dom::object obj, std::size_t index, const request_info& info,
                         decoded& out) {
    auto reject = [&](std::string_view code, std::string message) {
        sb_.clear();
        sb_.append(obj);
        out.rejected.push_back({index, code, std::move(message), std::string(sb_.str())});
        return false;
    };

    if (batch_ && !info.write_key.empty()) {
        std::string_view own_key = string_field(obj, "writeKey");
        if (!own_key.empty() && own_key != info.write_key) {
            return reject("write_key_mismatch",
                          "event's writeKey differs from the key the request authenticated with");
        }
    }

    event ev;
    event_header& h = ev.header;
    h.kind = record_kind::event;
    h.source.assign(info.source);
    h.received_at_ms = info.received_at_ms;

    // type: the route decides for single-event routes; batches carry it per event.
    std::string_view type_text = string_field(obj, "type");
    h.type = info.route_type != event_type::unknown ? info.route_type
                                                    : event_type_from_string(type_text);
    if (h.type == event_type::unknown) {
        if (type_text.empty()) return reject("missing_type", "event has no 'type'");
        return reject("invalid_type", fmt::format("unknown event type '{}'", type_text));
    }

    auto uid = read_id(obj, "userId", h.user_id);
    auto aid = read_id(obj, "anonymousId", h.anonymous_id);
    if (uid == id_state::bad_type) return reject("invalid_user_id", "'userId' must be a string");
    if (aid == id_state::bad_type) {
        return reject("invalid_anonymous_id", "'anonymousId' must be a string");
    }
    if (uid == id_state::absent && aid == id_state::absent) {
        return reject("missing_id", "event needs a 'userId' or an 'anonymousId'");
    }

    event_ids ids;
    switch (h.type) {
        case event_type::track: {
            dom::element e;
            std::string_view name;
            if (obj.at_key("event").get(e) != simdjson::SUCCESS || e.is_null()) {
                return reject("missing_event", "track needs an 'event' name");
            }
            if (e.get(name) != simdjson::SUCCESS) {
                return reject("invalid_event", "'event' must be a string");
            }
            if (name.empty()) return reject("missing_event", "track needs an 'event' name");
            h.event_name.assign(name);
            break;
        }
        case event_type::alias: {
            std::string prev;
            auto st = read_id(obj, "previousId", prev);
            if (st == id_state::bad_type) {
                return reject("invalid_previous_id", "'previousId' must be a string");
            }
            if (st == id_state::absent)
                return reject("missing_previous_id", "alias needs a 'previousId'");
            ids.previous_id = std::move(prev);
            break;
        }
        case event_type::group: {
            std::string gid;
            auto st = read_id(obj, "groupId", gid);
            if (st == id_state::bad_type)
                return reject("invalid_group_id", "'groupId' must be a string");
            if (st == id_state::absent)
                return reject("missing_group_id", "group needs a 'groupId'");
            break;
        }
        case event_type::page:
        case event_type::screen:
            h.event_name.assign(string_field(obj, "name"));
            break;
        default:
            break;
    }

    // messageId: kept when given (≤ 100 chars), generated when absent.
    {
        dom::element m;
        if (obj.at_key("messageId").get(m) == simdjson::SUCCESS && !m.is_null()) {
            std::string_view s;
            if (m.get(s) != simdjson::SUCCESS) {
                return reject("invalid_message_id", "'messageId' must be a string");
            }
            if (s.size() > max_message_id_chars) {
                return reject("message_id_too_long",
                              fmt::format("'messageId' is {} characters; the limit is {}", s.size(),
                                          max_message_id_chars));
            }
            h.message_id.assign(s);
        }
        if (h.message_id.empty()) util::append_uuid_v4(h.message_id);
    }

    dom::object ctx, integ;
    bool has_ctx = false, has_integ = false;
    {
        dom::element c;
        if (obj.at_key("context").get(c) == simdjson::SUCCESS && !c.is_null()) {
            if (c.get(ctx) != simdjson::SUCCESS)
                return reject("invalid_context", "'context' must be an object");
            has_ctx = true;
        }
        if (obj.at_key("integrations").get(c) == simdjson::SUCCESS && !c.is_null()) {
            if (c.get(integ) != simdjson::SUCCESS) {
                return reject("invalid_integrations", "'integrations' must be an object");
            }
            has_integ = true;
        }
    }

    // Timestamps. originalTimestamp is the device clock at the call: the SDK's `timestamp`
    // (Segment SDKs), or `originalTimestamp` (RudderStack SDKs). timestamp corrects device clock
    // skew: receivedAt − (sentAt − originalTimestamp). When a client sends both
    // `originalTimestamp` and `timestamp`, the explicit `timestamp` is the caller's event time
    // (RudderStack's `timestamp` option, historical imports) and is kept as given.
    std::string_view orig_text = string_field(obj, "originalTimestamp");
    std::string_view client_ts_text = string_field(obj, "timestamp");
    std::optional<std::int64_t> explicit_ts;
    if (orig_text.empty()) {
        orig_text = client_ts_text;
    } else if (!client_ts_text.empty()) {
        explicit_ts = util::parse_iso8601_ms(client_ts_text);
    }
    std::string_view sent_text = string_field(obj, "sentAt");
    if (sent_text.empty()) sent_text = batch_sent_at_;
    // Plain values rather than optionals: GCC 12 reports a false maybe-uninitialized otherwise.
    std::int64_t orig_ms = 0, sent_ms = 0;
    bool has_orig = false, has_sent = false;
    if (auto v = orig_text.empty() ? std::nullopt : util::parse_iso8601_ms(orig_text); v) {
        orig_ms = *v;
        has_orig = true;
    }
    if (auto v = sent_text.empty() ? std::nullopt : util::parse_iso8601_ms(sent_text); v) {
        sent_ms = *v;
        has_sent = true;
    }
    std::int64_t ts_ms = info.received_at_ms;
    if (explicit_ts) {
        ts_ms = *explicit_ts;
    } else if (has_orig && has_sent) {
        ts_ms = info.received_at_ms - (sent_ms - orig_ms);
    } else if (has_orig) {
        ts_ms = orig_ms;
    }

    std::string& j = ev.json;
    j.reserve(512);
    j += "{\"type\":";
    util::append_json_string(j, to_string(h.type));
    j += ",\"messageId\":";
    util::append_json_string(j, h.message_id);
    for (auto [key, value] : obj) {
        if (is_server_field(key)) continue;
        j += ',';
        util::append_json_string(j, key);
        j += ':';
        sb_.clear();
        sb_.append(value);
        j += sb_.str();
    }
    // Enrichment reads the context (the event's own fields, then batch-level fields it lacks).
    const bool enrich = info.enrich != nullptr;
    enriched_.clear();
    if (enrich) {
        enrich::event_input in;
        if (has_ctx) {
            for (auto [key, value] : ctx) note_context_member(key, value, in);
        }
        if (has_batch_context_) {
            for (auto [key, value] : batch_context_) {
                dom::element dummy;
                if (has_ctx && ctx.at_key(key).get(dummy) == simdjson::SUCCESS) continue;
                note_context_member(key, value, in);
            }
        }
        if (!in.ip_from_context) in.ip = info.client_ip;
        if (!in.has_user_agent && !info.fallback_user_agent.empty()) {
            in.user_agent = info.fallback_user_agent;
            in.has_user_agent = true;
        }
        info.enrich->run(in, info.enrich_request, enriched_);
    }
    const bool rewrite_ip = enriched_.rewrite_ip;

    // context: the event's own fields, then batch-level fields it lacks, then the client IP,
    // then what enrichment added.
    j += ",\"context\":{";
    const std::size_t context_open = j.size() - 1;
    bool first = true;
    bool has_ip = rewrite_ip;
    // Which of the members admission adds later the client's context already has (enrichment
    // never writes them).
    std::uint8_t context_lacks =
        context_lacks_tracking_plan | context_lacks_violations | context_lacks_identity;
    auto note_key = [&](std::string_view key) {
        if (key == "trackingPlan") context_lacks &= ~context_lacks_tracking_plan;
        if (key == "violations") context_lacks &= ~context_lacks_violations;
        if (key == "identity") context_lacks &= ~context_lacks_identity;
    };
    auto emit_field = [&](std::string_view key, dom::element value) {
        if (!first) j += ',';
        first = false;
        util::append_json_string(j, key);
        j += ':';
        sb_.clear();
        sb_.append(value);
        j += sb_.str();
    };
    if (has_ctx) {
        for (auto [key, value] : ctx) {
            if (key == "ip") {
                if (rewrite_ip) continue;
                has_ip = true;
            }
            note_key(key);
            emit_field(key, value);
        }
    }
    if (has_batch_context_) {
        for (auto [key, value] : batch_context_) {
            dom::element dummy;
            if (has_ctx && ctx.at_key(key).get(dummy) == simdjson::SUCCESS) continue;
            if (key == "ip") {
                if (rewrite_ip) continue;
                has_ip = true;
            }
            note_key(key);
            emit_field(key, value);
        }
    }
    if (!has_ip && !info.client_ip.empty()) {
        if (!first) j += ',';
        first = false;
        j += "\"ip\":";
        util::append_json_string(j, info.client_ip);
    }
    if (rewrite_ip && !enriched_.ip.empty()) {
        if (!first) j += ',';
        first = false;
        j += "\"ip\":";
        util::append_json_string(j, enriched_.ip);
    }
    if (!enriched_.members.empty()) {
        // Members come with a leading ','.
        j.append(enriched_.members, first ? 1 : 0);
    }
    if (enriched_.is_bot) ev.header.flags |= event_flag_bot;
    if (j.size() <= UINT32_MAX) {
        ev.context_open = static_cast<std::uint32_t>(context_open);
        ev.context_close = static_cast<std::uint32_t>(j.size());
        ev.context_lacks = context_lacks;
    }
    j += "},\"integrations\":{";
    first = true;
    if (has_integ) {
        for (auto [key, value] : integ) emit_field(key, value);
    }
    if (has_batch_integrations_) {
        for (auto [key, value] : batch_integrations_) {
            dom::element dummy;
            if (has_integ && integ.at_key(key).get(dummy) == simdjson::SUCCESS) continue;
            emit_field(key, value);
        }
    }
    j += '}';
    if (!orig_text.empty()) {
        j += ",\"originalTimestamp\":";
        util::append_json_string(j, orig_text);
    }
    if (!sent_text.empty()) {
        j += ",\"sentAt\":";
        util::append_json_string(j, sent_text);
    }
    j += ",\"timestamp\":\"";
    util::append_iso8601_ms(j, ts_ms);
    j += "\",\"receivedAt\":\"";
    util::append_iso8601_ms(j, info.received_at_ms);
    j += "\"}";

    // The limit is on the event as the client sent it (SDKs measure their own minified JSON);
    // the fields the server adds (receivedAt, timestamp, context.ip, batch context) do not count.
    if (j.size() > limits_.max_event_bytes) {
        sb_.clear();
        sb_.append(obj);
        std::size_t sent_size = sb_.str().size();
        if (sent_size > limits_.max_event_bytes) {
            return reject("event_too_large", fmt::format("event is {} bytes; the limit is {} bytes",
                                                         sent_size, limits_.max_event_bytes));
        }
    }
    // context.device.id (the event's, else the batch context's) for identity stitching.
    auto device_id = [&](dom::object c) {
        dom::object dev;
        std::string_view id;
        if (c.at_key("device").get(dev) == simdjson::SUCCESS &&
            dev.at_key("id").get(id) == simdjson::SUCCESS) {
            ids.device_id.assign(id);
            return true;
        }
        return false;
    };
    if (!(has_ctx && device_id(ctx)) && has_batch_context_) device_id(batch_context_);
    out.events.push_back(std::move(ev));
    out.ids.push_back(std::move(ids));
    return true;
}

}  // namespace switchyard::sources::segment
