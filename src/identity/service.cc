#include "identity/service.h"

#include "util/json.h"
#include "util/json_edit.h"
#include "util/time.h"

#include <spdlog/spdlog.h>

namespace switchyard::identity {

namespace {

// A stable messageId for the record of the link from→to: a retried request that makes the
// same link again (after its first append failed) produces the same id.
std::string link_message_id(std::string_view from, std::string_view to) {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a over from '\0' to
    auto mix = [&](std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 1099511628211ull;
        }
    };
    mix(from);
    mix(std::string_view("\0", 1));
    mix(to);
    char buf[32];
    std::snprintf(buf, sizeof buf, "link-%016llx", static_cast<unsigned long long>(h));
    return buf;
}

}  // namespace

std::unique_ptr<service> service::open(const service_options& o, std::string& err) {
    std::unique_ptr<service> s(new service(o));
    if (o.backend == "redis") {
        s->store_ = open_redis(o.redis, err);
    } else {
        s->store_ = open_lmdb(o.lmdb, err);
    }
    if (!s->store_) return nullptr;
    s->graph_ = std::make_unique<graph>(s->store_, o.graph);
    s->suppressions_ = std::make_unique<suppression_list>(s->store_);
    if (auto ec = s->suppressions_->load()) {
        err = "identity: cannot load the suppression list from " + s->store_->describe() + ": " +
              ec.message();
        return nullptr;
    }
    s->audit_ = std::make_unique<deletion_audit>(o.audit_file);
    std::size_t skipped = 0;
    if (auto ec = s->audit_->open(&skipped)) {
        err = "identity: cannot read the deletion audit trail " + o.audit_file.string() + ": " +
              ec.message();
        return nullptr;
    }
    if (skipped) {
        spdlog::warn("Identity: {} unreadable line(s) in {} skipped.", skipped,
                     o.audit_file.string());
    }
    return s;
}

service::~service() { stop(); }

void service::start() {
    if (thread_.joinable()) return;
    stop_ = false;
    thread_ = std::thread([this] { run(); });
}

void service::stop() {
    {
        std::lock_guard g(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void service::run() {
    using clock = std::chrono::steady_clock;
    auto next_sweep = clock::now() + opts_.sweep_interval;
    std::unique_lock lk(mu_);
    while (!stop_) {
        const auto wake = std::min(clock::now() + opts_.suppression_refresh, next_sweep);
        cv_.wait_until(lk, wake, [&] { return stop_; });
        if (stop_) break;
        lk.unlock();
        if (auto ec = suppressions_->refresh()) {
            spdlog::warn("Identity: cannot refresh the suppression list: {}.", ec.message());
        }
        if (clock::now() >= next_sweep) {
            next_sweep = clock::now() + opts_.sweep_interval;
            auto r = graph_->sweep(util::now_ms());
            if (!r) {
                spdlog::warn("Identity: the retention sweep failed: {}.", r.error().message());
            } else if (*r > 0) {
                spdlog::info("Identity: the retention policy forgot {} person(s).", *r);
            }
        }
        lk.lock();
    }
}

bool service::suppressed(const observation& ob) {
    if (!suppressions_->any()) return false;
    const std::pair<id_type, std::string_view> ids[] = {{id_type::user, ob.user_id},
                                                        {id_type::anonymous, ob.anonymous_id},
                                                        {id_type::device, ob.device_id}};
    std::string primary;
    for (const auto& [t, id] : ids) {
        if (id.empty()) continue;
        std::string k = make_key(t, id);
        if (suppressions_->contains(k)) return true;
        if (primary.empty()) primary = std::move(k);
    }
    if (primary.empty()) return false;
    auto p = graph_->person_key(primary);
    return p && suppressions_->contains(*p);
}

void service::requeue(std::vector<std::string> links) {
    if (links.empty()) return;
    std::lock_guard g(pending_mu_);
    constexpr std::size_t max_pending = 100000;
    for (auto& l : links) {
        if (pending_.size() >= max_pending) {
            spdlog::error(
                "Identity: {} identity_link record(s) could not be appended and the "
                "retry queue is full; those links stay stored but their records are "
                "not delivered.",
                links.size());
            break;
        }
        pending_.push_back(std::move(l));
    }
    has_pending_.store(true, std::memory_order_release);
}

void service::take_pending(std::vector<std::string>& out) {
    std::lock_guard g(pending_mu_);
    for (auto& l : pending_) out.push_back(std::move(l));
    pending_.clear();
    has_pending_.store(false, std::memory_order_release);
}

void service::identity_json(const resolution& r, std::string& j) {
    j += "{\"personId\":";
    util::append_json_string(j, key_id(r.person));
    j += ",\"personIdType\":";
    util::append_json_string(j, to_string(key_type(r.person)));
    j += ",\"via\":[";
    for (std::size_t i = 0; i < r.via.size(); ++i) {
        if (i) j += ',';
        append_key_json(j, r.via[i]);
    }
    j += ']';
    if (!r.refused.empty()) {
        j += ",\"refused\":[";
        for (std::size_t i = 0; i < r.refused.size(); ++i) {
            if (i) j += ',';
            j += "{\"from\":";
            append_key_json(j, r.refused[i].from);
            if (!r.refused[i].to.empty()) {
                j += ",\"to\":";
                append_key_json(j, r.refused[i].to);
            }
            j += ",\"reason\":";
            util::append_json_string(j, r.refused[i].reason);
            j += '}';
        }
        j += ']';
    }
    if (!r.resolved) j += ",\"resolved\":false";
    j += '}';
}

void service::apply(event& ev, const observation& ob, resolution& r,
                    std::vector<std::string>& links) {
    observation o = ob;
    if (!opts_.link_device_ids) o.device_id = {};
    graph_->observe(o, r);
    if (r.person.empty()) return;
    std::string j;
    identity_json(r, j);
    util::set_context_member(ev.json, ev.context_open, ev.context_close,
                             (ev.context_lacks & context_lacks_identity) != 0, "identity", j);
    ev.context_lacks &= static_cast<std::uint8_t>(~context_lacks_identity);
    for (const auto& l : r.links) {
        event_header h;
        h.kind = record_kind::identity_link;
        h.source = ev.header.source;
        h.received_at_ms = ev.header.received_at_ms;
        h.message_id = link_message_id(l.from, l.to);
        h.event_name = "identity_link";
        for (const std::string* k : {&l.from, &l.to}) {
            if (key_type(*k) == id_type::user && h.user_id.empty()) h.user_id = key_id(*k);
            if (key_type(*k) == id_type::anonymous && h.anonymous_id.empty()) {
                h.anonymous_id = key_id(*k);
            }
        }
        std::string body = "{\"type\":\"identity_link\",\"messageId\":";
        util::append_json_string(body, h.message_id);
        body += ",\"from\":";
        append_key_json(body, l.from);
        body += ",\"to\":";
        append_key_json(body, l.to);
        body += ",\"personId\":";
        util::append_json_string(body, key_id(l.person));
        body += ",\"personIdType\":";
        util::append_json_string(body, to_string(key_type(l.person)));
        body += ",\"previousPersonIds\":[";
        append_key_json(body, l.previous_from);
        if (l.previous_to != l.previous_from) {
            body += ',';
            append_key_json(body, l.previous_to);
        }
        body += "],\"source\":";
        util::append_json_string(body, ev.header.source);
        body += ",\"eventMessageId\":";
        util::append_json_string(body, ev.header.message_id);
        body += ",\"receivedAt\":\"";
        util::append_iso8601_ms(body, ev.header.received_at_ms);
        body += "\"}";
        std::string payload;
        encode_event(h, body, payload);
        links.push_back(std::move(payload));
    }
}

}  // namespace switchyard::identity
