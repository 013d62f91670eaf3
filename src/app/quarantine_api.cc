#include "app/quarantine_api.h"

#include "app/operator_reply.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/time.h"
#include "util/url.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <fcntl.h>
#include <fstream>
#include <future>
#include <unistd.h>
#include <vector>

namespace switchyard::app {
namespace {

bool replayable(std::string_view reason) {
    return reason == "plan_violation" || reason == "plan_blocked" || reason == "bot";
}

// Every quarantine file's lines, oldest file first (names carry their start time).
std::vector<std::string> read_lines(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const auto name = e.path().filename().string();
        if (e.is_regular_file() && name.rfind("quarantine", 0) == 0 &&
            name.find(".ndjson") != std::string::npos && name.find(".gz") == std::string::npos) {
            files.push_back(e.path());
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> out;
    for (const auto& f : files) {
        std::ifstream in(f);
        std::string line;
        while (std::getline(in, line)) {
            if (!line.empty()) out.push_back(std::move(line));
        }
    }
    return out;
}

std::string str(simdjson::dom::element e, const char* key) {
    std::string_view v;
    if (e[key].get_string().get(v)) return {};
    return std::string(v);
}

// The routing header of an event JSON (as stored in a quarantine entry).
bool header_from(simdjson::dom::element ev, event_header& h) {
    h.type = event_type_from_string(str(ev, "type"));
    h.message_id = str(ev, "messageId");
    h.user_id = str(ev, "userId");
    h.anonymous_id = str(ev, "anonymousId");
    if (h.type == event_type::track) {
        h.event_name = str(ev, "event");
    } else if (h.type == event_type::page || h.type == event_type::screen) {
        h.event_name = str(ev, "name");
    }
    return h.type != event_type::unknown && !h.message_id.empty();
}

}  // namespace

quarantine_api::quarantine_api(std::filesystem::path dir, event_appender* appender,
                               std::map<std::string, std::shared_ptr<admit::plan_enforcer>> e,
                               std::set<std::string> bot_drop_sources)
    : dir_(std::move(dir)),
      appender_(appender),
      enforcers_(std::move(e)),
      bot_drop_sources_(std::move(bot_drop_sources)) {}

std::optional<http::operator_backend::reply> quarantine_api::call(std::string_view method,
                                                                  std::string_view path,
                                                                  std::string_view query) {
    auto q = util::parse_query(query);
    if (path == "/v1/quarantine") {
        if (method != "GET") return error_reply(405, "method_not_allowed", "use GET");
        return list(q);
    }
    if (path == "/v1/quarantine/replay") {
        if (method != "POST") return error_reply(405, "method_not_allowed", "use POST");
        return replay(q);
    }
    return std::nullopt;
}

std::set<std::string> quarantine_api::load_replayed() {
    std::set<std::string> out;
    std::ifstream in(dir_ / "replayed.ids");
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty()) out.insert(line);
    }
    return out;
}

http::operator_backend::reply quarantine_api::list(const std::map<std::string, std::string>& q) {
    std::size_t limit = 100;
    if (auto it = q.find("limit"); it != q.end() && !it->second.empty()) {
        auto [p, ec] =
            std::from_chars(it->second.data(), it->second.data() + it->second.size(), limit);
        if (ec != std::errc()) return error_reply(400, "bad_filter", "'limit' must be a number");
    }
    const std::string reason = q.count("reason") ? q.at("reason") : "";
    const std::string source = q.count("source") ? q.at("source") : "";
    std::lock_guard g(mu_);
    auto replayed = load_replayed();
    simdjson::dom::parser parser;
    std::vector<std::string> matched;
    std::size_t total = 0;
    for (const auto& line : read_lines(dir_)) {
        simdjson::dom::element e;
        if (parser.parse(line).get(e)) continue;
        if (!reason.empty() && str(e, "reason") != reason) continue;
        if (!source.empty() && str(e, "source") != source) continue;
        ++total;
        std::string item = line;
        const std::string mid = str(e, "messageId");
        item.pop_back();  // '}'
        item += fmt::format(",\"replayed\":{}}}", !mid.empty() && replayed.count(mid) != 0);
        matched.push_back(std::move(item));
    }
    const std::size_t from = matched.size() > limit ? matched.size() - limit : 0;
    std::string j = fmt::format("{{\"total\":{},\"entries\":[", total);
    for (std::size_t i = from; i < matched.size(); ++i) {
        if (i > from) j += ',';
        j += matched[i];
    }
    j += "]}";
    return {200, std::move(j)};
}

http::operator_backend::reply quarantine_api::replay(const std::map<std::string, std::string>& q) {
    if (appender_ == nullptr) {
        return error_reply(409, "not_here",
                           "this process does not ingest (role deliver): replay on a node with "
                           "role all");
    }
    const std::string reason = q.count("reason") ? q.at("reason") : "";
    const std::string source = q.count("source") ? q.at("source") : "";
    std::set<std::string> ids;
    if (auto it = q.find("ids"); it != q.end()) {
        std::string_view s = it->second;
        while (!s.empty()) {
            auto comma = s.find(',');
            if (comma != 0) ids.emplace(s.substr(0, comma));
            s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
        }
    }
    std::lock_guard g(mu_);
    auto replayed = load_replayed();
    simdjson::dom::parser parser;
    std::size_t already = 0, not_replayable = 0, still_failing = 0;
    record_batch batch;
    std::vector<std::string> appended;
    std::vector<plan::violation> violations;
    std::string payload;
    for (const auto& line : read_lines(dir_)) {
        simdjson::dom::element e;
        if (parser.parse(line).get(e)) continue;
        const std::string why = str(e, "reason");
        const std::string src = str(e, "source");
        const std::string mid = str(e, "messageId");
        if (!reason.empty() && why != reason) continue;
        if (!source.empty() && src != source) continue;
        if (!ids.empty() && ids.count(mid) == 0) continue;
        if (!replayable(why) || mid.empty()) {
            ++not_replayable;
            continue;
        }
        if (replayed.count(mid) != 0) {  // includes those appended earlier in this run
            ++already;
            continue;
        }
        simdjson::dom::element ev;
        auto enf = enforcers_.find(src);
        const bool bot = why == "bot";
        event candidate;
        if (e["event"].get(ev) || (!bot && enf == enforcers_.end()) ||
            !header_from(ev, candidate.header)) {
            ++not_replayable;
            continue;
        }
        if (bot && bot_drop_sources_.count(src) != 0) {  // the source still drops bots
            ++still_failing;
            continue;
        }
        candidate.header.source = src;
        candidate.header.received_at_ms =
            util::parse_iso8601_ms(str(e, "receivedAt")).value_or(util::now_ms());
        candidate.json = simdjson::minify(ev);
        if (bot) candidate.header.flags |= event_flag_bot;
        // A bot's event was dropped before its plan was checked: check it now.
        const auto r = enf == enforcers_.end() ? admit::plan_result::valid
                                               : enf->second->apply(candidate, violations);
        if (r == admit::plan_result::quarantined || r == admit::plan_result::blocked) {
            ++still_failing;
            continue;
        }
        payload.clear();
        encode_event(candidate, payload);
        batch.add(payload);
        appended.push_back(mid);
        replayed.insert(mid);
    }
    std::string error;
    if (!batch.empty()) {
        std::promise<std::error_code> done;
        auto fut = done.get_future();
        auto ec = appender_->append(
            std::move(batch), [&done](std::error_code e, std::uint64_t) { done.set_value(e); });
        if (!ec) ec = fut.get();
        if (ec) {
            return error_reply(503, "unavailable",
                               "the event log did not take the replayed events: " + ec.message());
        }
        // Remember them, durably, so a second replay does not append them again.
        std::string text;
        for (const auto& m : appended) text += m + '\n';
        const auto path = dir_ / "replayed.ids";
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        bool ok = fd >= 0 &&
                  ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fdatasync(fd) == 0;
        if (fd >= 0) ::close(fd);
        if (!ok) {
            error = "the replayed ids could not be recorded; a second replay may append them again";
            spdlog::error("Quarantine replay: {} ({}).", error, path.string());
        }
        spdlog::info("Quarantine replay: {} events passed their plan and were appended.",
                     appended.size());
    }
    std::string j = fmt::format(
        "{{\"replayed\":{},\"still_failing\":{},\"already_replayed\":{},"
        "\"not_replayable\":{}",
        appended.size(), still_failing, already, not_replayable);
    if (!error.empty()) {
        j += ",\"warning\":";
        util::append_json_string(j, error);
    }
    j += '}';
    return {200, std::move(j)};
}

}  // namespace switchyard::app
