#include "delivery/dead_letters.h"

#include "switchyard/result.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/time.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <limits>
#include <sys/stat.h>
#include <unistd.h>

namespace switchyard::delivery {
namespace {

using util::fsync_dir;

namespace dom = simdjson::dom;

// The event is always the last field, so its bytes are the rest of the line (minus the closing
// brace). Every field before it is a scalar, so this key cannot occur earlier outside a string,
// and inside a string its quotes would be escaped.
constexpr std::string_view event_key = R"(,"event":)";

// Rewrites stream through a buffer of this size rather than building the file in memory.
constexpr std::size_t rewrite_chunk = 1 << 20;

std::error_code last_errno() { return {errno, std::generic_category()}; }

std::error_code write_all(int fd, std::string_view data, std::uint64_t at) {
    while (!data.empty()) {
        ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(at));
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_errno();
        }
        data.remove_prefix(static_cast<std::size_t>(n));
        at += static_cast<std::uint64_t>(n);
    }
    return {};
}

// Length of the well-formed UTF-8 sequence starting at s[i] (the same rules simdjson checks),
// or 0 when there is none.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = at(i);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;  // overlong
        if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;  // overlong
        if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
        return 0;
    }
    if (i + n > s.size() || at(i + 1) < lo || at(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k) {
        if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
    }
    return n;
}

// `s` as valid UTF-8 of at most `max` bytes: invalid bytes become U+FFFD (a destination's
// response body may be anything) and the cut never splits a character. JSON strings must be
// UTF-8, or the line would not load again.
std::string clean_text(std::string_view s, std::size_t max) {
    if (s.size() <= max && simdjson::validate_utf8(s.data(), s.size())) return std::string(s);
    static constexpr std::string_view replacement = "\xEF\xBF\xBD";
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence(s, i);
        const std::string_view piece = n > 0 ? s.substr(i, n) : replacement;
        if (out.size() + piece.size() > max) break;
        out.append(piece);
        i += n > 0 ? n : 1;
    }
    return out;
}

bool fields_match(const dead_letter_filter& f, std::string_view kind, std::string_view reason,
                  std::int64_t time_ms) {
    if (f.kind && kind != *f.kind) return false;
    if (f.reason_contains && reason.find(*f.reason_contains) == std::string_view::npos) {
        return false;
    }
    if (f.since_ms && time_ms < *f.since_ms) return false;
    if (f.until_ms && time_ms >= *f.until_ms) return false;
    return true;
}

std::vector<std::uint64_t> sorted_ids(const dead_letter_filter& f) {
    std::vector<std::uint64_t> ids = f.ids;
    std::sort(ids.begin(), ids.end());
    return ids;
}

bool id_allowed(const std::vector<std::uint64_t>& sorted, std::uint64_t id) {
    return sorted.empty() || std::binary_search(sorted.begin(), sorted.end(), id);
}

}  // namespace

bool dead_letter_filter::matches(const dead_letter& d) const {
    return fields_match(*this, d.kind, d.reason, d.time_ms) &&
           (ids.empty() || std::find(ids.begin(), ids.end(), d.id) != ids.end());
}

namespace {

// An entry's fields as its line has them.
struct line_fields {
    std::uint64_t id = 0;
    std::uint64_t offset = 0;
    std::int64_t time_ms = 0;
    std::string_view kind;
    std::string_view reason;
    std::uint32_t attempts = 0;
    std::string_view last_response;
    std::string_view message_id;
    bool replaying = false;
};

// The line fields of a store's entry, whose texts are ids into `texts`.
template <class Entry>
line_fields fields_of(const Entry& e, const std::deque<std::string>& texts) {
    return {e.id,
            e.offset,
            e.time_ms,
            texts[e.kind],
            texts[e.reason],
            e.attempts,
            texts[e.last_response],
            e.message_id,
            e.replaying != 0};
}

// Appends one line for `e` with `event` as its event value and returns where the event value
// starts within the line. Raw newlines are legal in JSON only between tokens, so they become
// spaces to keep one object per line.
std::uint32_t append_line(std::string& out, const line_fields& e, std::string_view event) {
    const std::size_t start = out.size();
    fmt::format_to(std::back_inserter(out), R"({{"id":{},"offset":{},"time":")", e.id, e.offset);
    util::append_iso8601_ms(out, e.time_ms);
    fmt::format_to(std::back_inserter(out), R"(","time_ms":{},"kind":)", e.time_ms);
    util::append_json_string(out, e.kind);
    out += R"(,"reason":)";
    util::append_json_string(out, e.reason);
    fmt::format_to(std::back_inserter(out), R"(,"attempts":{},"last_response":)", e.attempts);
    util::append_json_string(out, e.last_response);
    out += R"(,"message_id":)";
    util::append_json_string(out, e.message_id);
    out += e.replaying ? R"(,"replaying":true)" : R"(,"replaying":false)";
    out += event_key;
    const std::size_t event_start = out.size();
    if (event.empty()) {
        out += "null";
    } else {
        out += event;
        std::replace(out.begin() + static_cast<std::ptrdiff_t>(event_start), out.end(), '\n', ' ');
    }
    out += "}\n";
    return static_cast<std::uint32_t>(event_start - start);
}

}  // namespace

dead_letter_store::dead_letter_store(std::filesystem::path dir, std::string destination,
                                     std::uint64_t max_bytes)
    : dir_(std::move(dir)),
      destination_(std::move(destination)),
      max_bytes_(max_bytes),
      file_(dir_ / (destination_ + ".dlq.ndjson")) {}

dead_letter_store::~dead_letter_store() {
    if (fd_ >= 0) ::close(fd_);
}

namespace {

// An entry as parse_line() reads it from its line.
struct parsed_line {
    std::uint64_t id = 0;
    std::uint64_t offset = 0;
    std::int64_t time_ms = 0;
    std::string kind;
    std::string reason;
    std::uint32_t attempts = 0;
    std::string last_response;
    std::string message_id;
    bool replaying = false;
    std::uint32_t event_off = 0;
};

// Parses one line (without its '\n') the way open() loads it. Returns an empty string and fills
// `e` on success, otherwise why the line is not an entry.
std::string parse_line(dom::parser& parser, std::string_view line, parsed_line& e) {
    dom::object obj;
    if (auto err = parser.parse(line.data(), line.size()).get(obj)) {
        return simdjson::error_message(err);
    }
    bool has_id = false;
    std::size_t events = 0;
    std::size_t fields = obj.size();
    std::size_t i = 0;
    for (auto field : obj) {
        ++i;
        const std::string_view key = field.key;
        const dom::element v = field.value;
        if (key == "event") {
            ++events;
            if (i != fields) return "\"event\" is not the last field";
            continue;
        }
        if (v.is<dom::object>() || v.is<dom::array>())
            return fmt::format("\"{}\" is not scalar", key);
        simdjson::error_code err = simdjson::SUCCESS;
        std::string_view s;
        if (key == "id") {
            err = v.get(e.id);
            has_id = err == simdjson::SUCCESS;
        } else if (key == "offset") {
            err = v.get(e.offset);
        } else if (key == "time_ms") {
            err = v.get(e.time_ms);
        } else if (key == "kind" || key == "message_id") {
            err = v.get(s);
            (key == "kind" ? e.kind : e.message_id) = s;
        } else if (key == "reason" || key == "last_response") {
            err = v.get(s);
            (key == "reason" ? e.reason : e.last_response) =
                clean_text(s, dead_letter_store::max_text_bytes);
        } else if (key == "attempts") {
            std::uint64_t a = 0;
            err = v.get(a);
            if (!err && a > std::numeric_limits<std::uint32_t>::max())
                err = simdjson::NUMBER_OUT_OF_RANGE;
            e.attempts = static_cast<std::uint32_t>(a);
        } else if (key == "replaying") {
            err = v.get(e.replaying);
        }  // other scalar fields ("time", or from a later version) are not needed
        if (err) return fmt::format("\"{}\": {}", key, simdjson::error_message(err));
    }
    if (!has_id) return "no \"id\"";
    if (events != 1) return "not exactly one \"event\"";
    const std::size_t at = line.find(event_key);
    if (at == std::string_view::npos || line.back() != '}') return "not in the expected layout";
    e.event_off = static_cast<std::uint32_t>(at + event_key.size());
    return {};
}

}  // namespace

void dead_letter_store::open() {
    std::lock_guard lk(mu_);
    if (fd_ >= 0) throw std::logic_error("dead-letter store " + destination_ + " opened twice");
    std::filesystem::create_directories(dir_);
    auto tmp = file_;
    tmp += ".tmp";
    std::filesystem::remove(tmp);  // a rewrite that a crash interrupted; the file is intact
    const bool existed = std::filesystem::exists(file_);
    int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw std::system_error(last_errno(), "cannot open " + file_.string());
    fd_ = fd;
    if (!existed) {
        if (auto ec = fsync_dir(dir_)) throw std::system_error(ec, "cannot sync " + dir_.string());
    }

    std::ifstream in(file_, std::ios::binary);
    if (!in) throw std::system_error(last_errno(), "cannot read " + file_.string());
    dom::parser parser;
    auto corrupt_file = file_;
    corrupt_file += ".corrupt";
    int corrupt_fd = -1;
    std::size_t corrupt = 0;
    std::uint64_t max_id = 0;
    std::uint64_t pos = 0;
    std::string line;
    while (std::getline(in, line)) {
        if (in.eof()) {
            // No '\n': an append that a crash cut short. It was never acknowledged, so its
            // events are still in the log and will be dead-lettered again.
            spdlog::warn(
                "Dead-letter store {}: cutting off a torn last line of {} bytes at byte {} of {}.",
                destination_, line.size(), pos, file_.string());
            break;
        }
        const std::uint64_t len = line.size() + 1;
        parsed_line p;
        std::string why = len > std::numeric_limits<std::uint32_t>::max()
                              ? std::string("line too long")
                              : parse_line(parser, line, p);
        if (why.empty()) {
            entry& e = entries_.emplace_back();
            e.id = p.id;
            e.offset = p.offset;
            e.time_ms = p.time_ms;
            e.pos = pos;
            e.message_id = std::move(p.message_id);
            e.kind = intern(p.kind);
            e.replaying = p.replaying;
            e.reason = intern(p.reason);
            e.last_response = intern(p.last_response);
            e.attempts = p.attempts;
            e.len = static_cast<std::uint32_t>(len);
            e.event_off = p.event_off;
            max_id = std::max(max_id, e.id);
        } else {
            if (corrupt_fd < 0) {
                corrupt_fd =
                    ::open(corrupt_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (corrupt_fd < 0) {
                    throw std::system_error(last_errno(), "cannot open " + corrupt_file.string());
                }
            }
            line.push_back('\n');
            if (auto ec = write_all(corrupt_fd, line, 0)) {
                ::close(corrupt_fd);
                throw std::system_error(ec, "cannot write " + corrupt_file.string());
            }
            spdlog::error(
                "Dead-letter store {}: the line at byte {} of {} is not an entry ({}); it is moved "
                "to {}.",
                destination_, pos, file_.string(), why, corrupt_file.string());
            ++corrupt;
        }
        pos += len;
    }
    if (in.bad()) throw std::system_error(last_errno(), "cannot read " + file_.string());
    bytes_ = pos;
    next_id_ = max_id + 1;
    if (::ftruncate(fd_, static_cast<off_t>(pos)) != 0 || ::fdatasync(fd_) != 0) {
        throw std::system_error(last_errno(), "cannot truncate " + file_.string());
    }
    if (corrupt_fd >= 0) {
        std::error_code ec;
        if (::fdatasync(corrupt_fd) != 0) ec = last_errno();
        ::close(corrupt_fd);
        if (!ec) ec = fsync_dir(dir_);
        if (ec) throw std::system_error(ec, "cannot sync " + corrupt_file.string());
        // Only now that the lines are safe elsewhere, drop them from the store's file.
        std::vector<entry> next = entries_;
        bool adopted = false;
        if (auto ec2 = rewrite(next, adopted))
            throw std::system_error(ec2, "cannot rewrite " + file_.string());
    }
    spdlog::info("Dead-letter store {}: {} entries, {} bytes{}.", destination_, entries_.size(),
                 bytes_, corrupt > 0 ? fmt::format(", {} corrupt lines moved aside", corrupt) : "");
}

std::error_code dead_letter_store::append(std::vector<dead_letter>& entries) {
    std::lock_guard lk(mu_);
    if (fd_ < 0) return make_error_code(errc::invalid_argument);
    if (entries.empty()) return {};
    const std::int64_t now = util::now_ms();
    std::string buf;
    std::vector<entry> added;
    added.reserve(entries.size());
    dom::parser parser;
    // Texts interned from here on are forgotten again if the append fails.
    const std::size_t texts_before = texts_.size();
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const dead_letter& d = entries[i];
        entry e;
        e.id = next_id_ + i;
        e.offset = d.offset;
        e.time_ms = d.time_ms != 0 ? d.time_ms : now;
        e.kind = intern(clean_text(d.kind, std::string::npos));
        e.reason = intern(clean_text(d.reason, max_text_bytes));
        e.last_response = intern(clean_text(d.last_response, max_text_bytes));
        e.message_id = clean_text(d.message_id, std::string::npos);
        e.attempts = d.attempts;
        e.replaying = d.replaying;
        const std::size_t start = buf.size();
        const std::uint32_t event_off = append_line(buf, fields_of(e, texts_), d.event_json);
        e.event_off = event_off;
        const std::size_t len = buf.size() - start;
        e.pos = bytes_ + start;
        e.len = static_cast<std::uint32_t>(len);
        // Write only what open() will load again; this is where a bad event_json is caught.
        parsed_line check;
        std::string why =
            len > std::numeric_limits<std::uint32_t>::max()
                ? std::string("line too long")
                : parse_line(parser, std::string_view(buf).substr(start, len - 1), check);
        if (!why.empty() || check.event_off != event_off) {
            spdlog::warn("Dead-letter store {}: the event from offset {} cannot be stored ({}).",
                         destination_, d.offset, why.empty() ? "layout" : why);
            drop_texts_from(texts_before);
            return make_error_code(errc::invalid_argument);
        }
        added.push_back(std::move(e));
    }
    if (bytes_ + buf.size() > max_bytes_) {
        drop_texts_from(texts_before);
        return make_error_code(errc::log_full);
    }

    std::error_code ec = write_all(fd_, buf, bytes_);
    if (!ec && ::fdatasync(fd_) != 0) ec = last_errno();
    if (ec) {
        // Leave no partial line behind: the caller retries, and a torn line in the middle of
        // the file would be taken for corruption.
        if (::ftruncate(fd_, static_cast<off_t>(bytes_)) != 0) {
            spdlog::error("Dead-letter store {}: cannot cut {} back to {} bytes: {}.", destination_,
                          file_.string(), bytes_, last_errno().message());
        }
        drop_texts_from(texts_before);
        return ec;
    }
    bytes_ += buf.size();
    for (std::size_t i = 0; i < entries.size(); ++i) entries[i].id = next_id_ + i;
    next_id_ += entries.size();
    std::move(added.begin(), added.end(), std::back_inserter(entries_));
    return {};
}

std::error_code dead_letter_store::read_event(const entry& e, std::string& out) const {
    const std::size_t n = e.len - 2 - e.event_off;  // the value ends before "}\n"
    out.resize(n);
    std::size_t got = 0;
    while (got < n) {
        ssize_t r =
            ::pread(fd_, out.data() + got, n - got, static_cast<off_t>(e.pos + e.event_off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return last_errno();
        }
        if (r == 0) return make_error_code(errc::io_error);  // the file shrank under us
        got += static_cast<std::size_t>(r);
    }
    if (out == "null") out.clear();
    return {};
}

std::error_code dead_letter_store::to_dead_letter(const entry& e, dead_letter& out) const {
    out.id = e.id;
    out.offset = e.offset;
    out.time_ms = e.time_ms;
    out.reason = texts_[e.reason];
    out.kind = texts_[e.kind];
    out.attempts = e.attempts;
    out.last_response = texts_[e.last_response];
    out.message_id = e.message_id;
    out.replaying = e.replaying;
    return read_event(e, out.event_json);
}

std::vector<dead_letter> dead_letter_store::list(const dead_letter_filter& f, std::size_t limit,
                                                 std::error_code& ec) const {
    std::lock_guard lk(mu_);
    ec.clear();
    const auto ids = sorted_ids(f);
    std::vector<dead_letter> out;
    for (const entry& e : entries_) {
        if (out.size() >= limit) break;
        if (!id_allowed(ids, e.id) || !fields_match(f, texts_[e.kind], texts_[e.reason], e.time_ms))
            continue;
        if ((ec = to_dead_letter(e, out.emplace_back()))) return {};
    }
    return out;
}

std::vector<dead_letter> dead_letter_store::replay_batch(std::size_t max,
                                                         std::error_code& ec) const {
    std::lock_guard lk(mu_);
    ec.clear();
    std::vector<dead_letter> out;
    for (const entry& e : entries_) {
        if (out.size() >= max) break;
        if (!e.replaying) continue;
        if ((ec = to_dead_letter(e, out.emplace_back()))) return {};
    }
    return out;
}

std::error_code dead_letter_store::rewrite(std::vector<entry>& next, bool& adopted) {
    adopted = false;
    // Callers reserve for the old size; give back what a large discard freed.
    if (next.capacity() > 2 * next.size()) next.shrink_to_fit();
    // The texts `next` uses, with their new ids; taken over with the file.
    constexpr std::uint32_t unused = std::numeric_limits<std::uint32_t>::max();
    std::vector<std::uint32_t> renumber(texts_.size(), unused);
    std::deque<std::string> texts;
    std::unordered_map<std::string_view, std::uint32_t> text_index;
    auto keep = [&](std::uint32_t old_id) {
        if (renumber[old_id] == unused) {
            renumber[old_id] = static_cast<std::uint32_t>(texts.size());
            text_index.emplace(texts.emplace_back(texts_[old_id]), renumber[old_id]);
        }
    };
    for (const entry& e : next) {
        keep(e.kind);
        keep(e.reason);
        keep(e.last_response);
    }
    auto tmp = file_;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return last_errno();
    struct place {
        std::uint64_t pos;
        std::uint32_t len;
        std::uint32_t event_off;
    };
    std::vector<place> places;
    places.reserve(next.size());
    std::string out;
    out.reserve(rewrite_chunk + 4096);
    std::string event;
    std::uint64_t written = 0;
    std::error_code ec;
    for (const entry& e : next) {
        if ((ec = read_event(e, event))) break;
        const std::size_t start = out.size();
        const std::uint32_t event_off = append_line(out, fields_of(e, texts_), event);
        places.push_back(
            {written + start, static_cast<std::uint32_t>(out.size() - start), event_off});
        if (out.size() >= rewrite_chunk) {
            if ((ec = write_all(fd, out, written))) break;
            written += out.size();
            out.clear();
        }
    }
    if (!ec) ec = write_all(fd, out, written);
    written += out.size();
    if (!ec && ::fdatasync(fd) != 0) ec = last_errno();
    if (!ec && ::rename(tmp.c_str(), file_.c_str()) != 0) ec = last_errno();
    if (ec) {
        ::close(fd);
        ::unlink(tmp.c_str());
        return ec;
    }
    // The new file is in place: from here on it is the store, whatever the directory sync says.
    ::close(fd_);
    fd_ = fd;
    bytes_ = written;
    for (std::size_t i = 0; i < next.size(); ++i) {
        next[i].pos = places[i].pos;
        next[i].len = places[i].len;
        next[i].event_off = places[i].event_off;
        next[i].kind = renumber[next[i].kind];
        next[i].reason = renumber[next[i].reason];
        next[i].last_response = renumber[next[i].last_response];
    }
    entries_ = std::move(next);
    texts_ = std::move(texts);
    text_index_ = std::move(text_index);
    adopted = true;
    if ((ec = fsync_dir(dir_))) {
        spdlog::error("Dead-letter store {}: cannot sync {} after a rewrite: {}.", destination_,
                      dir_.string(), ec.message());
    }
    return ec;
}

std::size_t dead_letter_store::mark_for_replay(const dead_letter_filter& f, std::error_code& ec) {
    std::lock_guard lk(mu_);
    ec.clear();
    if (fd_ < 0) {
        ec = make_error_code(errc::invalid_argument);
        return 0;
    }
    const auto ids = sorted_ids(f);
    std::vector<entry> next = entries_;
    std::size_t n = 0;
    for (entry& e : next) {
        if (e.replaying || !id_allowed(ids, e.id) ||
            !fields_match(f, texts_[e.kind], texts_[e.reason], e.time_ms)) {
            continue;
        }
        e.replaying = true;
        ++n;
    }
    if (n == 0) return 0;
    bool adopted = false;
    ec = rewrite(next, adopted);
    return adopted ? n : 0;
}

std::error_code dead_letter_store::complete_replay(const std::vector<std::uint64_t>& ids) {
    std::lock_guard lk(mu_);
    if (fd_ < 0) return make_error_code(errc::invalid_argument);
    if (ids.empty()) return {};
    std::vector<std::uint64_t> done = ids;
    std::sort(done.begin(), done.end());
    std::vector<entry> next;
    next.reserve(entries_.size());
    for (const entry& e : entries_) {
        if (!std::binary_search(done.begin(), done.end(), e.id)) next.push_back(e);
    }
    if (next.size() == entries_.size()) return {};
    bool adopted = false;
    return rewrite(next, adopted);
}

std::error_code dead_letter_store::fail_replay(const std::vector<std::uint64_t>& ids,
                                               std::string_view reason,
                                               std::string_view last_response,
                                               std::uint32_t attempts) {
    std::lock_guard lk(mu_);
    if (fd_ < 0) return make_error_code(errc::invalid_argument);
    if (ids.empty()) return {};
    std::vector<std::uint64_t> failed = ids;
    std::sort(failed.begin(), failed.end());
    const std::size_t texts_before = texts_.size();
    const std::uint32_t why = intern(clean_text(reason, max_text_bytes));
    const std::uint32_t response = intern(clean_text(last_response, max_text_bytes));
    std::vector<entry> next = entries_;
    bool changed = false;
    for (entry& e : next) {
        if (!std::binary_search(failed.begin(), failed.end(), e.id)) continue;
        e.replaying = false;
        e.attempts = e.attempts > std::numeric_limits<std::uint32_t>::max() - attempts
                         ? std::numeric_limits<std::uint32_t>::max()
                         : e.attempts + attempts;
        e.reason = why;
        e.last_response = response;
        changed = true;
    }
    bool adopted = false;
    std::error_code ec;
    if (changed) ec = rewrite(next, adopted);
    if (!adopted) drop_texts_from(texts_before);  // rewrite() rebuilds the texts when it adopts
    return ec;
}

std::size_t dead_letter_store::discard(const dead_letter_filter& f, std::error_code& ec) {
    std::lock_guard lk(mu_);
    ec.clear();
    if (fd_ < 0) {
        ec = make_error_code(errc::invalid_argument);
        return 0;
    }
    const auto ids = sorted_ids(f);
    std::vector<entry> next;
    next.reserve(entries_.size());
    for (const entry& e : entries_) {
        if (!id_allowed(ids, e.id) ||
            !fields_match(f, texts_[e.kind], texts_[e.reason], e.time_ms)) {
            next.push_back(e);
        }
    }
    const std::size_t n = entries_.size() - next.size();
    if (n == 0) return 0;
    bool adopted = false;
    ec = rewrite(next, adopted);
    return adopted ? n : 0;
}

std::size_t dead_letter_store::size() const {
    std::lock_guard lk(mu_);
    return entries_.size();
}

std::size_t dead_letter_store::replay_pending() const {
    std::lock_guard lk(mu_);
    return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(),
                                                  [](const entry& e) { return e.replaying; }));
}

std::uint64_t dead_letter_store::bytes() const {
    std::lock_guard lk(mu_);
    return bytes_;
}

std::size_t dead_letter_store::memory_bytes() const {
    std::lock_guard lk(mu_);
    // A string's own heap block, when it is too long for the small-string buffer.
    const std::size_t sso = std::string().capacity();
    auto heap = [sso](const std::string& s) { return s.capacity() > sso ? s.capacity() + 1 : 0; };
    std::size_t n = entries_.capacity() * sizeof(entry);
    for (const entry& e : entries_) n += heap(e.message_id);
    for (const std::string& t : texts_) n += sizeof(std::string) + heap(t);
    // Hash nodes (next pointer, key, value, cached hash) and the bucket array.
    n += text_index_.size() * (sizeof(void*) + sizeof(std::string_view) + 2 * sizeof(std::size_t));
    n += text_index_.bucket_count() * sizeof(void*);
    return n;
}

std::uint32_t dead_letter_store::intern(std::string_view s) {
    if (auto it = text_index_.find(s); it != text_index_.end()) return it->second;
    if (texts_.size() >= max_texts) throw std::length_error("dead-letter store: too many texts");
    const auto id = static_cast<std::uint32_t>(texts_.size());
    const std::string& t = texts_.emplace_back(s);
    try {
        text_index_.emplace(t, id);
    } catch (...) {
        texts_.pop_back();
        throw;
    }
    return id;
}

void dead_letter_store::drop_texts_from(std::size_t n) {
    while (texts_.size() > n) {
        text_index_.erase(texts_.back());
        texts_.pop_back();
    }
}

}  // namespace switchyard::delivery
