#include "delivery/worker.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace switchyard::delivery {
namespace {

// event_log::wait_for cannot be interrupted by our stop request, so idle waits are cut into
// slices of this length; it bounds how long stop() waits for an idle worker.
constexpr std::chrono::milliseconds idle_slice{100};

std::uint64_t make_seed(const std::optional<std::uint64_t>& seed) {
    if (seed) return *seed;
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

void append_json_string(std::string& out, std::string_view s) {
    out.push_back('"');
    for (char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
                } else {
                    out.push_back(c);
                }
        }
    }
    out.push_back('"');
}

std::error_code last_errno() { return {errno, std::generic_category()}; }

}  // namespace

struct worker::batch {
    std::uint64_t next = 0;  // the cursor once this batch is delivered
    std::vector<log_record> records;
    std::vector<delivery_item> items;  // views into `records`; built once `records` is final
    std::size_t bytes = 0;

    void clear() {
        records.clear();
        items.clear();
        bytes = 0;
    }
    [[nodiscard]] std::uint64_t first_offset() const {
        return records.empty() ? next : records.front().offset;
    }
    [[nodiscard]] std::uint64_t last_offset() const {
        return records.empty() ? next : records.back().offset;
    }
};

worker::worker(worker_options options, event_log& log, log::cursor_store& cursors,
               std::unique_ptr<destination> dest, std::function<void()> on_commit)
    : opts_(std::move(options)),
      log_(log),
      cursors_(cursors),
      dest_(std::move(dest)),
      on_commit_(std::move(on_commit)),
      backoff_(opts_.backoff_base, opts_.backoff_max, make_seed(opts_.backoff_seed)) {}

worker::~worker() { stop(); }

void worker::start() {
    std::lock_guard g(stop_mu_);
    if (started_ || closed_) return;
    if (opts_.name.empty()) throw std::invalid_argument("delivery worker needs a name");
    if (!dest_)
        throw std::invalid_argument("delivery worker " + opts_.name + " has no destination");
    if (opts_.dead_letter_dir.empty()) {
        throw std::invalid_argument("delivery worker " + opts_.name + " needs a dead_letter_dir");
    }
    if (opts_.max_batch_events == 0 || opts_.max_batch_bytes == 0) {
        throw std::invalid_argument("delivery worker " + opts_.name +
                                    " needs max_batch_events and max_batch_bytes above 0");
    }
    started_ = true;
    thread_ = std::jthread([this](std::stop_token st) { run(std::move(st)); });
}

void worker::stop() {
    std::lock_guard g(stop_mu_);
    if (closed_) return;
    closed_ = true;
    if (!started_) {
        // No thread ever used the destination; close it here so close() is still called once.
        if (dest_) dest_->close();
        return;
    }
    thread_.request_stop();
    {
        // A send in flight cannot be interrupted (destinations bound their own I/O); say so if
        // it takes long, then keep waiting: the thread uses the log and the destination, so
        // leaving it running would outlive them.
        std::unique_lock lk(mu_);
        if (!cv_.wait_for(lk, opts_.stop_timeout, [this] { return finished_; })) {
            spdlog::warn("Destination {} is still sending after {} ms; waiting for it to stop.",
                         opts_.name, opts_.stop_timeout.count());
        }
    }
    thread_.join();
}

worker_stats worker::stats() const {
    worker_stats s;
    s.delivered_events = delivered_.load(std::memory_order_relaxed);
    s.retries = retries_.load(std::memory_order_relaxed);
    s.rejected_events = rejected_.load(std::memory_order_relaxed);
    s.skipped_events = skipped_.load(std::memory_order_relaxed);
    s.undecodable = undecodable_.load(std::memory_order_relaxed);
    s.cursor = cursor_.load(std::memory_order_relaxed);
    std::uint64_t end = log_.end_offset();
    s.lag = end > s.cursor ? end - s.cursor : 0;
    s.healthy = healthy_.load(std::memory_order_relaxed) && dest_ && dest_->healthy();
    std::lock_guard g(mu_);
    s.last_error = last_error_;
    return s;
}

void worker::set_error(std::string e) {
    std::lock_guard g(mu_);
    last_error_ = std::move(e);
}

bool worker::wait_until(std::stop_token& st, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lk(mu_);
    cv_.wait_until(lk, st, deadline, [] { return false; });
    return !st.stop_requested();
}

std::uint64_t worker::initial_cursor() {
    const std::uint64_t start = log_.start_offset();
    const std::uint64_t end = log_.end_offset();
    auto saved = cursors_.load(opts_.name);
    std::uint64_t c = saved.value_or(start);
    if (c < start) {
        spdlog::error(
            "Destination {} resumes at offset {} but the log now starts at {}; the {} events in "
            "between were released before this destination delivered them.",
            opts_.name, c, start, start - c);
        c = start;
    } else if (c > end) {
        spdlog::warn(
            "Destination {} has its cursor at offset {}, past the log end {}; it resumes at the "
            "end.",
            opts_.name, c, end);
        c = end;
    }
    spdlog::info("Destination {} starts delivering at offset {}.", opts_.name, c);
    return c;
}

void worker::run(std::stop_token st) {
    cursor_.store(initial_cursor(), std::memory_order_relaxed);
    batch b;
    while (!st.stop_requested()) {
        if (!collect(st, b)) continue;
        decode(b);
        if (!deliver(st, b)) break;
    }
    dest_->close();
    {
        std::lock_guard g(mu_);
        finished_ = true;
    }
    cv_.notify_all();
}

bool worker::collect(std::stop_token& st, batch& b) {
    b.clear();
    const std::uint64_t from = cursor_.load(std::memory_order_relaxed);
    b.next = from;

    const auto idle_deadline = std::chrono::steady_clock::now() + idle_slice;
    if (log_.wait_for(from, idle_deadline) <= from) {
        // wait_for also returns early once the log is closed; finish the slice here so a closed
        // log does not turn this loop into a spin.
        wait_until(st, idle_deadline);
        return false;
    }

    // Data is here. Take what is available now, then wait at most max_wait for the batch to fill.
    const auto batch_deadline = std::chrono::steady_clock::now() + opts_.max_wait;
    while (true) {
        const std::size_t before = b.records.size();
        const std::size_t want_bytes =
            opts_.max_batch_bytes > b.bytes ? opts_.max_batch_bytes - b.bytes : 1;
        auto r = log_.read(b.next, opts_.max_batch_events - before, want_bytes, b.records);
        if (!r) {
            std::string e =
                fmt::format("reading the log at offset {} failed: {}", b.next, r.error().message());
            spdlog::error("Destination {}: {}.", opts_.name, e);
            set_error(std::move(e));
            if (!b.records.empty() || b.next > from) break;  // deliver what was read
            wait_until(st, std::chrono::steady_clock::now() + backoff_.next());
            return false;
        }
        const bool progressed = *r > b.next;
        b.next = *r;
        for (std::size_t i = before; i < b.records.size(); ++i) {
            b.bytes += b.records[i].payload.size();
        }
        if (!progressed || b.records.size() >= opts_.max_batch_events ||
            b.bytes >= opts_.max_batch_bytes || st.stop_requested() ||
            std::chrono::steady_clock::now() >= batch_deadline) {
            break;
        }
        if (log_.wait_for(b.next, batch_deadline) <= b.next) break;  // timed out or closed
    }
    if (st.stop_requested()) return false;  // not in flight yet: the next start reads it again
    if (b.next == from) {
        // The log announced records it then did not return; don't spin on it.
        wait_until(st, idle_deadline);
        return false;
    }
    return true;
}

void worker::decode(batch& b) {
    b.items.clear();
    b.items.reserve(b.records.size());
    for (const auto& rec : b.records) {
        auto v = decode_event(rec.payload);
        if (!v) {
            undecodable_.fetch_add(1, std::memory_order_relaxed);
            spdlog::error(
                "Destination {} skips the record at offset {}: its payload does not decode ({}).",
                opts_.name, rec.offset, v.error().message());
            continue;
        }
        if (std::find(opts_.kinds.begin(), opts_.kinds.end(), v->kind) == opts_.kinds.end()) {
            skipped_.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        b.items.push_back({rec.offset, *v});
    }
}

bool worker::deliver(std::stop_token& st, batch& b) {
    if (b.items.empty()) {
        // Only skipped or corrupt records: nothing to send, but the cursor moves past them.
        advance(b.next);
        return true;
    }
    backoff_.reset();
    while (true) {
        send_outcome out = dest_->send(b.items);
        switch (out.status) {
            case send_status::delivered:
                delivered_.fetch_add(b.items.size(), std::memory_order_relaxed);
                healthy_.store(true, std::memory_order_relaxed);
                advance(b.next);
                return true;

            case send_status::retry: {
                retries_.fetch_add(1, std::memory_order_relaxed);
                healthy_.store(false, std::memory_order_relaxed);
                auto delay = backoff_.next(out.retry_after);
                spdlog::warn(
                    "Destination {} could not take offsets {}..{} ({}); retry {} follows in {} ms.",
                    opts_.name, b.first_offset(), b.last_offset(), out.reason, backoff_.attempt(),
                    delay.count());
                set_error(std::move(out.reason));
                // On stop the batch stays uncommitted and is sent again on the next start.
                if (!wait_until(st, std::chrono::steady_clock::now() + delay)) return false;
                break;
            }

            case send_status::reject: {
                const auto file = opts_.dead_letter_dir / (opts_.name + ".ndjson");
                spdlog::error(
                    "Destination {} rejected {} events at offsets {}..{}: {}. They go to the "
                    "dead-letter file {}.",
                    opts_.name, b.items.size(), b.first_offset(), b.last_offset(), out.reason,
                    file.string());
                set_error(out.reason);
                // The cursor only moves once the events are safely in the dead-letter file.
                while (auto ec = write_dead_letters(b, out.reason)) {
                    spdlog::error(
                        "Destination {} cannot write the dead-letter file {}: {}. Delivery "
                        "waits until it can.",
                        opts_.name, file.string(), ec.message());
                    set_error("cannot write dead letters: " + ec.message());
                    if (!wait_until(st, std::chrono::steady_clock::now() + backoff_.next())) {
                        return false;
                    }
                }
                rejected_.fetch_add(b.items.size(), std::memory_order_relaxed);
                advance(b.next);
                return true;
            }
        }
    }
}

std::error_code worker::write_dead_letters(const batch& b, const std::string& reason) {
    std::error_code ec;
    std::filesystem::create_directories(opts_.dead_letter_dir, ec);
    if (ec) return ec;
    const auto file = opts_.dead_letter_dir / (opts_.name + ".ndjson");

    std::string buf;
    for (const auto& item : b.items) {
        buf += fmt::format(R"({{"offset":{},"reason":)", item.offset);
        append_json_string(buf, reason);
        buf += R"(,"event":)";
        const std::size_t start = buf.size();
        buf.append(item.event.json);
        // Raw newlines are only legal between JSON tokens: a space keeps one object per line.
        std::replace(buf.begin() + static_cast<std::ptrdiff_t>(start), buf.end(), '\n', ' ');
        buf += "}\n";
    }

    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return last_errno();
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        ec = last_errno();
        ::close(fd);
        return ec;
    }
    const off_t size_before = st.st_size;
    const char* p = buf.data();
    std::size_t left = buf.size();
    while (left > 0 && !ec) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno != EINTR) ec = last_errno();
            continue;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (!ec && ::fdatasync(fd) != 0) ec = last_errno();
    if (ec) {
        // Cut a partial append off so the retry does not leave a torn line in the middle.
        if (::ftruncate(fd, size_before) != 0) {
            spdlog::warn("Destination {} cannot truncate {} after a failed write: {}.", opts_.name,
                         file.string(), last_errno().message());
        }
    } else if (size_before == 0) {
        // A new file: make its directory entry durable too.
        int dfd = ::open(opts_.dead_letter_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (::fsync(dfd) != 0) ec = last_errno();
            ::close(dfd);
        }
    }
    if (::close(fd) != 0 && !ec) ec = last_errno();
    return ec;
}

void worker::advance(std::uint64_t next) {
    cursor_.store(next, std::memory_order_relaxed);
    if (auto ec = cursors_.commit(opts_.name, next)) {
        // Delivery continues from memory; the next successful commit covers this one. Until
        // then a restart sends these events again.
        spdlog::error("Destination {} cannot commit its cursor at offset {}: {}.", opts_.name, next,
                      ec.message());
        set_error("cannot commit cursor: " + ec.message());
        return;
    }
    if (on_commit_) on_commit_();
}

}  // namespace switchyard::delivery
