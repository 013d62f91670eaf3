#include "identity/audit.h"

#include "identity/graph.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/time.h"

#include <simdjson.h>

#include <fcntl.h>
#include <fstream>
#include <unistd.h>

namespace switchyard::identity {

namespace {

constexpr std::string_view deletion_prefix = "deletion-";

void append_strings(std::string& j, const std::vector<std::string>& v) {
    j += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) j += ',';
        util::append_json_string(j, v[i]);
    }
    j += ']';
}

}  // namespace

std::string deletion_audit::message_id(std::string_view request_id) {
    std::string m(deletion_prefix);
    m += request_id;
    return m;
}

std::optional<std::string_view> deletion_audit::request_id(std::string_view message_id) {
    if (message_id.substr(0, deletion_prefix.size()) != deletion_prefix) return std::nullopt;
    return message_id.substr(deletion_prefix.size());
}

std::error_code deletion_audit::open(std::size_t* skipped) {
    std::error_code ec;
    std::filesystem::create_directories(file_.parent_path(), ec);
    if (ec) return ec;
    std::string text, err;
    if (!std::filesystem::exists(file_)) return {};
    if (!util::read_file(file_.string(), text, err)) return util::last_errno();
    simdjson::dom::parser parser;
    std::size_t bad = 0;
    std::lock_guard g(mu_);
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        std::string_view line(text.data() + pos, nl - pos);
        pos = nl + 1;
        if (line.empty()) continue;
        simdjson::dom::object o;
        if (parser.parse(line.data(), line.size()).get(o) != simdjson::SUCCESS) {
            ++bad;  // a torn last line after a crash
            continue;
        }
        std::string_view kind, id;
        if (o["event"].get(kind) || o["id"].get(id)) {
            ++bad;
            continue;
        }
        if (kind == "requested") {
            request r;
            r.id.assign(id);
            std::string_view s;
            std::int64_t n = 0;
            if (!o["requested_ms"].get(n)) r.requested_ms = n;
            if (!o["requested_by"].get(s)) r.requested_by.assign(s);
            if (!o["reason"].get(s)) r.reason.assign(s);
            if (!o["subject"].get(s)) r.subject.assign(s);
            if (!o["person"].get(s)) r.person.assign(s);
            bool b = false;
            if (!o["suppressed"].get(b)) r.suppressed = b;
            simdjson::dom::array a;
            if (!o["ids"].get(a)) {
                for (auto v : a) {
                    if (!v.get(s)) r.ids.emplace_back(s);
                }
            }
            if (!o["destinations"].get(a)) {
                for (auto v : a) {
                    if (!v.get(s)) r.destinations.emplace_back(s);
                }
            }
            if (!requests_.count(r.id)) order_.push_back(r.id);
            requests_[r.id] = std::move(r);
        } else if (kind == "confirmed") {
            std::string_view dest;
            std::int64_t at = 0;
            if (o["destination"].get(dest) || o["at_ms"].get(at)) {
                ++bad;
                continue;
            }
            auto it = requests_.find(id);
            if (it != requests_.end()) it->second.confirmed.emplace(std::string(dest), at);
        }
    }
    if (skipped) *skipped = bad;
    return {};
}

std::error_code deletion_audit::append_line(const std::string& line) {
    int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return util::last_errno();
    std::string l = line;
    l += '\n';
    std::error_code ec;
    if (::write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) {
        ec = util::last_errno();
    } else if (::fdatasync(fd) != 0) {
        ec = util::last_errno();
    }
    ::close(fd);
    return ec;
}

std::error_code deletion_audit::record(const request& r) {
    std::string j = "{\"event\":\"requested\",\"id\":";
    util::append_json_string(j, r.id);
    j += ",\"requested_ms\":" + std::to_string(r.requested_ms) + ",\"requested_by\":";
    util::append_json_string(j, r.requested_by);
    j += ",\"reason\":";
    util::append_json_string(j, r.reason);
    j += ",\"subject\":";
    util::append_json_string(j, r.subject);
    j += ",\"person\":";
    util::append_json_string(j, r.person);
    j += ",\"suppressed\":";
    j += r.suppressed ? "true" : "false";
    j += ",\"ids\":";
    append_strings(j, r.ids);
    j += ",\"destinations\":";
    append_strings(j, r.destinations);
    j += '}';
    std::lock_guard g(mu_);
    if (auto ec = append_line(j)) return ec;
    if (!requests_.count(r.id)) order_.push_back(r.id);
    requests_[r.id] = r;
    return {};
}

std::error_code deletion_audit::confirm(std::string_view request_id, std::string_view destination,
                                        std::int64_t at_ms) {
    std::lock_guard g(mu_);
    auto it = requests_.find(request_id);
    if (it == requests_.end() || it->second.confirmed.count(std::string(destination))) return {};
    std::string j = "{\"event\":\"confirmed\",\"id\":";
    util::append_json_string(j, request_id);
    j += ",\"destination\":";
    util::append_json_string(j, destination);
    j += ",\"at_ms\":" + std::to_string(at_ms) + "}";
    if (auto ec = append_line(j)) return ec;
    it->second.confirmed.emplace(std::string(destination), at_ms);
    return {};
}

std::optional<deletion_audit::request> deletion_audit::get(std::string_view id) const {
    std::lock_guard g(mu_);
    auto it = requests_.find(id);
    if (it == requests_.end()) return std::nullopt;
    return it->second;
}

std::vector<deletion_audit::request> deletion_audit::list() const {
    std::lock_guard g(mu_);
    std::vector<request> out;
    out.reserve(order_.size());
    for (const auto& id : order_) out.push_back(requests_.at(id));
    return out;
}

std::string deletion_audit::to_json(const request& r) {
    std::string j = "{\"id\":";
    util::append_json_string(j, r.id);
    j += ",\"messageId\":";
    util::append_json_string(j, message_id(r.id));
    j += ",\"requestedAt\":\"";
    util::append_iso8601_ms(j, r.requested_ms);
    j += "\",\"requestedBy\":";
    util::append_json_string(j, r.requested_by);
    j += ",\"reason\":";
    util::append_json_string(j, r.reason);
    j += ",\"subject\":{\"type\":";
    util::append_json_string(j, to_string(key_type(r.subject)));
    j += ",\"id\":";
    util::append_json_string(j, key_id(r.subject));
    j += '}';
    j += ",\"personId\":";
    util::append_json_string(j, key_id(r.person));
    j += ",\"personIdType\":";
    util::append_json_string(j, to_string(key_type(r.person)));
    j += ",\"ids\":";
    append_keys_json(j, r.ids);
    j += ",\"suppressed\":";
    j += r.suppressed ? "true" : "false";
    j += ",\"destinations\":[";
    bool all = true;
    for (std::size_t i = 0; i < r.destinations.size(); ++i) {
        if (i) j += ',';
        j += "{\"name\":";
        util::append_json_string(j, r.destinations[i]);
        auto it = r.confirmed.find(r.destinations[i]);
        if (it == r.confirmed.end()) {
            all = false;
            j += ",\"status\":\"pending\"}";
        } else {
            j += ",\"status\":\"confirmed\",\"confirmedAt\":\"";
            util::append_iso8601_ms(j, it->second);
            j += "\"}";
        }
    }
    j += "],\"status\":";
    j += all ? "\"complete\"" : "\"pending\"";
    j += '}';
    return j;
}

}  // namespace switchyard::identity
