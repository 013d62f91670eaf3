#include "delivery/worker.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <stdexcept>

namespace switchyard::delivery {
namespace {

using clock = std::chrono::steady_clock;

// event_log::wait_for cannot be interrupted by our stop request, so idle waits are cut into
// slices of this length; it bounds how long stop() waits for an idle reader and how late a
// replay request is noticed.
constexpr std::chrono::milliseconds idle_slice{100};

// Batches cut but not yet committed, per sender. Bounds the memory held by queued batches and
// the events sent again after a crash when one slow send holds the cursor back.
constexpr std::size_t window_per_sender = 2;

std::uint64_t make_seed(const std::optional<std::uint64_t>& seed) {
    if (seed) return *seed;
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

// A unit of work for a sender: a log batch, a replay of dead letters, or a range skipped by
// drop_oldest (born complete). Log and dropped jobs sit in window_ in log order until committed.
struct worker::job {
    enum class origin { log, replay, dropped };
    origin from = origin::log;
    std::uint64_t first = 0;  // first offset covered
    std::uint64_t next = 0;   // the cursor once this job and every job before it are complete
    std::int64_t first_received_ms = 0;
    std::vector<log_record> records;
    std::deque<std::string> owned;  // transformed or replayed JSON the items point into
    std::vector<delivery_item> items;
    std::vector<dead_letter> replays;  // replay: the entries, parallel to items
    bool done = false;                 // guarded by mu_
    std::atomic<bool> abandon{false};  // drop_oldest overtook it: drop what is left

    [[nodiscard]] std::uint64_t first_offset() const {
        return items.empty() ? first : items.front().offset;
    }
    [[nodiscard]] std::uint64_t last_offset() const {
        return items.empty() ? first : items.back().offset;
    }
};

// A slice of a job's items with its own retry budget. A job starts as one unit; an exhausted
// unit of several events is split into single-event units.
struct worker::unit {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::uint32_t attempts = 0;
    std::optional<clock::time_point> first_attempt;
    std::string last_response;
};

struct worker::sender {
    std::size_t index = 0;
    destination* dest = nullptr;
    backoff retry;
};

worker::worker(worker_options options, event_log& log, log::cursor_backend& cursors,
               std::vector<std::unique_ptr<destination>> instances, dead_letter_store& dead_letters,
               std::function<void()> on_commit)
    : opts_(std::move(options)),
      log_(log),
      cursors_(cursors),
      instances_(std::move(instances)),
      dead_letters_(&dead_letters),
      on_commit_(std::move(on_commit)),
      seed_(make_seed(opts_.backoff_seed)),
      breaker_(opts_.breaker_failures, opts_.breaker_cooldown, opts_.breaker_cooldown_max) {}

worker::~worker() { stop(); }

void worker::start() {
    std::lock_guard g(stop_mu_);
    if (started_ || closed_) return;
    const std::string& n = opts_.name;
    if (n.empty()) throw std::invalid_argument("delivery worker needs a name");
    if (instances_.empty() ||
        std::any_of(instances_.begin(), instances_.end(), [](const auto& d) { return !d; })) {
        throw std::invalid_argument("delivery worker " + n + " has no destination");
    }
    if (opts_.max_batch_events == 0 || opts_.max_batch_bytes == 0) {
        throw std::invalid_argument("delivery worker " + n +
                                    " needs max_batch_events and max_batch_bytes above 0");
    }
    started_ = true;
    for (std::size_t i = 0; i < instances_.size(); ++i) {
        senders_.push_back(std::make_unique<sender>(sender{
            i, instances_[i].get(), backoff(opts_.backoff_base, opts_.backoff_max, seed_ + i)}));
    }
    const std::uint64_t c = initial_cursor();
    read_pos_ = c;
    committed_ = c;
    cursor_.store(c, std::memory_order_relaxed);
    auto token = stop_.get_token();
    for (std::size_t i = 0; i < senders_.size(); ++i) {
        threads_.emplace_back([this, i, token]() mutable { run_sender(i, token); });
    }
    threads_.emplace_back([this, token]() mutable { run_reader(token); });
}

void worker::stop() {
    std::lock_guard g(stop_mu_);
    if (closed_) return;
    closed_ = true;
    if (!started_) {
        // No thread ever used the instances; close them here so close() is still called once.
        for (auto& d : instances_) {
            if (d) d->close();
        }
        return;
    }
    stop_.request_stop();
    {
        // A send in flight cannot be interrupted (destinations bound their own I/O); say so if
        // it takes long, then keep waiting: the threads use the log and the destinations, so
        // leaving them running would outlive them.
        std::unique_lock lk(mu_);
        cv_.notify_all();
        if (!cv_.wait_for(lk, opts_.stop_timeout,
                          [this] { return finished_ == threads_.size(); })) {
            spdlog::warn("Destination {} is still sending after {} ms; waiting for it to stop.",
                         opts_.name, opts_.stop_timeout.count());
        }
    }
    for (auto& t : threads_) t.join();
}

void worker::pause() {
    {
        std::lock_guard g(mu_);
        if (paused_) return;
        paused_ = true;
        ++generation_;
    }
    cv_.notify_all();
    spdlog::info("Destination {} is paused.", opts_.name);
}

void worker::resume() {
    {
        std::lock_guard g(mu_);
        if (!paused_) return;
        paused_ = false;
        ++generation_;
    }
    cv_.notify_all();
    spdlog::info("Destination {} resumes.", opts_.name);
}

bool worker::paused() const {
    std::lock_guard g(mu_);
    return paused_;
}

worker_stats worker::stats() const {
    worker_stats s;
    s.delivered = delivered_.load(std::memory_order_relaxed);
    s.retries = retries_.load(std::memory_order_relaxed);
    s.rejected = rejected_.load(std::memory_order_relaxed);
    s.budget_exhausted = exhausted_.load(std::memory_order_relaxed);
    s.dead_lettered = dead_lettered_.load(std::memory_order_relaxed);
    s.dropped = dropped_.load(std::memory_order_relaxed);
    s.replayed = replayed_.load(std::memory_order_relaxed);
    s.skipped_events = skipped_.load(std::memory_order_relaxed);
    s.undecodable = undecodable_.load(std::memory_order_relaxed);
    s.cursor = cursor_.load(std::memory_order_relaxed);
    const std::uint64_t end = log_.end_offset();
    s.lag_events = end > s.cursor ? end - s.cursor : 0;
    const std::int64_t head = head_received_ms_.load(std::memory_order_relaxed);
    if (s.lag_events > 0 && head > 0) {
        s.lag_seconds = static_cast<double>(std::max<std::int64_t>(0, unix_ms() - head)) / 1000.0;
    }
    s.in_flight = in_flight_.load(std::memory_order_relaxed);
    s.healthy = healthy_.load(std::memory_order_relaxed) &&
                std::all_of(instances_.begin(), instances_.end(),
                            [](const auto& d) { return d && d->healthy(); });
    {
        std::lock_guard g(mu_);
        s.last_error = last_error_;
        s.filtered = filtered_;
        s.breaker_opens = breaker_.opens();
        if (paused_) {
            s.state = "paused";
        } else if (breaker_.current() != breaker::state::closed) {
            s.state = "breaker_open";
        } else if (backing_off_.load(std::memory_order_relaxed) > 0) {
            s.state = "backing_off";
        } else {
            s.state = "running";
        }
    }
    return s;
}

void worker::set_error(std::string e) {
    std::lock_guard g(mu_);
    last_error_ = std::move(e);
}

bool worker::wait_until(std::stop_token& st, clock::time_point deadline) {
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
    spdlog::info("Destination {} starts delivering at offset {} with {} sender(s).", opts_.name, c,
                 instances_.size());
    return c;
}

// ---------------------------------------------------------------------------------------------
// Reader thread

void worker::run_reader(std::stop_token st) {
    const std::size_t window = window_per_sender * senders_.size();
    while (!st.stop_requested()) {
        {
            std::unique_lock lk(mu_);
            if (paused_) {
                lk.unlock();
                refresh_head_time();
                lk.lock();
                cv_.wait_for(lk, st, idle_slice, [this] { return !paused_; });
                continue;
            }
        }
        dispatch_replay();
        if (!apply_lag_policy(st)) continue;
        {
            std::unique_lock lk(mu_);
            // Bounded wait so the lag policy keeps running while every sender is stuck.
            if (!cv_.wait_for(lk, st, idle_slice,
                              [&] { return window_batches_ < window || paused_; })) {
                continue;
            }
            if (paused_) continue;
            if (window_.empty()) {
                lk.unlock();
                refresh_head_time();
            }
        }
        auto j = collect(st);
        if (!j) continue;
        prepare(*j);
        enqueue(std::move(j));
    }
    {
        std::lock_guard g(mu_);
        ++finished_;
    }
    cv_.notify_all();
}

std::shared_ptr<worker::job> worker::collect(std::stop_token& st) {
    auto j = std::make_shared<job>();
    const std::uint64_t from = read_pos_;
    j->first = from;
    j->next = from;

    const auto idle_deadline = clock::now() + idle_slice;
    if (log_.wait_for(from, idle_deadline) <= from) {
        // wait_for also returns early once the log is closed; finish the slice here so a closed
        // log does not turn this loop into a spin.
        wait_until(st, idle_deadline);
        return nullptr;
    }

    // Data is here. Take what is available now, then wait at most max_wait for the batch to fill.
    const auto batch_deadline = clock::now() + opts_.max_wait;
    std::size_t bytes = 0;
    while (true) {
        const std::size_t before = j->records.size();
        const std::size_t want_bytes =
            opts_.max_batch_bytes > bytes ? opts_.max_batch_bytes - bytes : 1;
        auto r = log_.read(j->next, opts_.max_batch_events - before, want_bytes, j->records);
        if (!r) {
            std::string e = fmt::format("reading the log at offset {} failed: {}", j->next,
                                        r.error().message());
            spdlog::error("Destination {}: {}.", opts_.name, e);
            set_error(std::move(e));
            if (!j->records.empty() || j->next > from) break;  // deliver what was read
            wait_until(st, clock::now() + opts_.backoff_base);
            return nullptr;
        }
        const bool progressed = *r > j->next;
        j->next = *r;
        for (std::size_t i = before; i < j->records.size(); ++i) {
            bytes += j->records[i].payload.size();
        }
        if (!progressed || j->records.size() >= opts_.max_batch_events ||
            bytes >= opts_.max_batch_bytes || st.stop_requested() ||
            clock::now() >= batch_deadline) {
            break;
        }
        if (log_.wait_for(j->next, batch_deadline) <= j->next) break;  // timed out or closed
    }
    if (st.stop_requested()) return nullptr;  // not in flight yet: the next start reads it again
    if (j->next == from) {
        // The log announced records it then did not return; don't spin on it.
        wait_until(st, idle_deadline);
        return nullptr;
    }
    read_pos_ = j->next;
    return j;
}

void worker::prepare(job& j) {
    j.items.reserve(j.records.size());
    std::string transformed;
    for (const auto& rec : j.records) {
        auto v = decode_event(rec.payload);
        if (!v) {
            undecodable_.fetch_add(1, std::memory_order_relaxed);
            spdlog::error(
                "Destination {} skips the record at offset {}: its payload does not decode ({}).",
                opts_.name, rec.offset, v.error().message());
            continue;
        }
        if (j.first_received_ms == 0) j.first_received_ms = v->received_at_ms;
        if (std::find(opts_.kinds.begin(), opts_.kinds.end(), v->kind) == opts_.kinds.end()) {
            skipped_.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        if (opts_.route && v->kind == record_kind::event) {
            // Identity links and deletions are not events: filters and transforms do not apply.
            transformed.clear();
            if (auto skip = opts_.route(*v, transformed)) {
                std::lock_guard g(mu_);
                auto it = filtered_.find(*skip);
                if (it == filtered_.end()) it = filtered_.emplace(std::string(*skip), 0).first;
                ++it->second;
                continue;
            }
            if (!transformed.empty()) {
                // A deque never moves its elements, so the view stays valid for the batch.
                j.owned.push_back(std::move(transformed));
                transformed = std::string();
                v->json = j.owned.back();
            }
        }
        j.items.push_back({rec.offset, *v});
    }
}

void worker::enqueue(std::shared_ptr<job> j) {
    const bool empty = j->items.empty();
    if (empty) j->records.clear();
    {
        std::lock_guard g(mu_);
        if (window_.empty()) {
            head_received_ms_.store(j->first_received_ms, std::memory_order_relaxed);
        }
        window_.push_back(j);
        if (!empty) {
            ++window_batches_;
            ready_.push_back(j);
        }
    }
    cv_.notify_all();
    // Only skipped, filtered or corrupt records: nothing to send, but the cursor moves past them.
    if (empty) complete(*j);
}

void worker::refresh_head_time() {
    // When nothing is queued, the event at the cursor has not been read yet: peek at it so
    // lag_seconds stays right while paused or behind a full window.
    std::uint64_t at;
    {
        std::lock_guard g(commit_mu_);
        at = committed_;
    }
    if (at >= log_.end_offset()) {
        head_received_ms_.store(0, std::memory_order_relaxed);
        return;
    }
    {
        std::lock_guard g(mu_);
        if (!window_.empty()) return;
    }
    std::vector<log_record> recs;
    auto r = log_.read(at, 1, 1, recs);
    if (!r || recs.empty()) return;
    if (auto v = decode_event(recs.front().payload)) {
        head_received_ms_.store(v->received_at_ms, std::memory_order_relaxed);
    }
}

namespace {

// Fills the routing header of a replayed event from its canonical JSON (the dead-letter store
// keeps the JSON, not the header). Strings are copied into `owned`.
void header_from_json(const std::string& json, event_view& v, std::deque<std::string>& owned,
                      simdjson::dom::parser& parser) {
    simdjson::dom::element doc;
    if (parser.parse(json).get(doc) != simdjson::SUCCESS) return;
    simdjson::dom::object obj;
    if (doc.get(obj) != simdjson::SUCCESS) return;
    auto field = [&](const char* key) -> std::string_view {
        std::string_view s;
        if (obj.at_key(key).get(s) != simdjson::SUCCESS) return {};
        owned.emplace_back(s);
        return owned.back();
    };
    v.type = event_type_from_string(field("type"));
    v.event_name = v.type == event_type::track ? field("event") : field("name");
    v.user_id = field("userId");
    v.anonymous_id = field("anonymousId");
}

}  // namespace

void worker::dispatch_replay() {
    {
        std::lock_guard g(mu_);
        if (replay_in_flight_) return;
    }
    std::error_code ec;
    auto entries = dead_letters_->replay_batch(opts_.max_batch_events, ec);
    if (ec) {
        spdlog::error("Destination {} cannot read dead letters to replay: {}.", opts_.name,
                      ec.message());
        set_error("cannot read dead letters to replay: " + ec.message());
        return;
    }
    if (entries.empty()) return;

    auto j = std::make_shared<job>();
    j->from = job::origin::replay;
    simdjson::dom::parser parser;
    std::vector<std::uint64_t> missing;
    for (auto& e : entries) {
        if (e.event_json.empty()) {
            // Only ids were kept (a `dropped` entry): the event may still be in the log.
            std::vector<log_record> recs;
            auto r = log_.read(e.offset, 1, 1, recs);
            if (r && !recs.empty() && recs.front().offset == e.offset) {
                auto d = decode_event(recs.front().payload);
                if (d && d->message_id == e.message_id) e.event_json = std::string(d->json);
            }
            if (e.event_json.empty()) {
                missing.push_back(e.id);
                continue;
            }
        }
        j->replays.push_back(std::move(e));
    }
    if (!missing.empty()) {
        if ((ec = dead_letters_->fail_replay(
                 missing, "replay failed: the event body was not kept and is no longer in the log",
                 "", 0))) {
            spdlog::error("Destination {} cannot update its dead-letter store: {}.", opts_.name,
                          ec.message());
        }
    }
    if (j->replays.empty()) return;
    j->items.reserve(j->replays.size());
    for (const auto& e : j->replays) {
        event_view v;
        v.kind = record_kind::event;
        v.message_id = e.message_id;
        v.json = e.event_json;
        header_from_json(e.event_json, v, j->owned, parser);
        j->items.push_back({e.offset, v});
    }
    spdlog::info("Destination {} replays {} dead letters.", opts_.name, j->items.size());
    {
        std::lock_guard g(mu_);
        replay_in_flight_ = true;
        ready_.push_front(std::move(j));  // before new log batches
    }
    cv_.notify_all();
}

bool worker::apply_lag_policy(std::stop_token& st) {
    if (opts_.when_lagging != lag_policy::drop_oldest || opts_.max_lag_events == 0) return true;
    const std::uint64_t end = log_.end_offset();
    std::uint64_t committed;
    {
        std::lock_guard g(commit_mu_);
        committed = committed_;
    }
    if (end <= committed || end - committed <= opts_.max_lag_events) return true;
    const std::uint64_t drop_to = end - opts_.max_lag_events;

    // Queued or stuck batches that lie wholly before drop_to: their senders drop what is left.
    {
        std::lock_guard g(mu_);
        for (auto& j : window_) {
            if (!j->done && j->next <= drop_to) j->abandon.store(true);
        }
        ++generation_;
    }
    cv_.notify_all();

    const std::string reason =
        fmt::format("dropped: lag over max_lag_events ({})", opts_.max_lag_events);
    while (read_pos_ < drop_to && !st.stop_requested()) {
        auto j = std::make_shared<job>();
        j->from = job::origin::dropped;
        j->first = read_pos_;
        const std::size_t max_records = static_cast<std::size_t>(
            std::min<std::uint64_t>(opts_.max_batch_events, drop_to - read_pos_));
        auto r = log_.read(read_pos_, max_records, opts_.max_batch_bytes, j->records);
        if (!r) {
            set_error(fmt::format("reading the log at offset {} failed: {}", read_pos_,
                                  r.error().message()));
            wait_until(st, clock::now() + opts_.backoff_base);
            return false;
        }
        j->next = std::min(*r, drop_to);
        if (j->next <= read_pos_) return true;
        std::vector<dead_letter> entries;
        const std::int64_t now = unix_ms();
        for (const auto& rec : j->records) {
            if (rec.offset >= j->next) break;
            auto v = decode_event(rec.payload);
            if (!v) continue;
            if (j->first_received_ms == 0) j->first_received_ms = v->received_at_ms;
            if (std::find(opts_.kinds.begin(), opts_.kinds.end(), v->kind) == opts_.kinds.end()) {
                continue;
            }
            dead_letter d;
            d.offset = rec.offset;
            d.time_ms = now;
            d.reason = reason;
            d.kind = "dropped";
            d.message_id = std::string(v->message_id);
            entries.push_back(std::move(d));
        }
        j->records.clear();
        const std::size_t n = entries.size();
        if (n > 0) {
            // Back-pressure: while the store refuses, nothing is skipped.
            if (!persist(st, "record dropped events",
                         [&] { return dead_letters_->append(entries); })) {
                return false;
            }
            dropped_.fetch_add(n, std::memory_order_relaxed);
            dead_lettered_.fetch_add(n, std::memory_order_relaxed);
            spdlog::warn(
                "Destination {} is more than {} events behind; it skips {} events at offsets "
                "{}..{} (recorded as dropped dead letters).",
                opts_.name, opts_.max_lag_events, n, j->first, j->next - 1);
        }
        read_pos_ = j->next;
        {
            std::lock_guard g(mu_);
            if (window_.empty()) {
                head_received_ms_.store(j->first_received_ms, std::memory_order_relaxed);
            }
            window_.push_back(j);
        }
        complete(*j);
    }
    return !st.stop_requested();
}

// ---------------------------------------------------------------------------------------------
// Sender threads

void worker::run_sender(std::size_t index, std::stop_token st) {
    sender& s = *senders_[index];
    while (true) {
        std::shared_ptr<job> j;
        {
            std::unique_lock lk(mu_);
            if (!cv_.wait(lk, st, [this] { return !ready_.empty(); })) break;
            j = std::move(ready_.front());
            ready_.pop_front();
        }
        if (!process(s, *j, st)) break;
    }
    s.dest->close();
    {
        std::lock_guard g(mu_);
        ++finished_;
    }
    cv_.notify_all();
}

bool worker::process(sender& s, job& j, std::stop_token& st) {
    const bool replay = j.from == job::origin::replay;
    std::deque<unit> units;
    units.push_back({0, j.items.size(), 0, std::nullopt, {}});
    s.retry.reset();

    while (!units.empty()) {
        unit& u = units.front();
        if (u.begin >= u.end) {
            units.pop_front();
            s.retry.reset();
            continue;
        }
        if (!replay && j.abandon.load()) {
            if (!drop_rest(j, units, st)) return false;
            break;
        }

        // The gate: nothing is sent while paused or while the breaker is open. Time spent here
        // does not count against the retry budget's age, and no attempt is made.
        bool probe = false;
        {
            std::unique_lock lk(mu_);
            const auto waited_from = clock::now();
            bool waited = false;
            bool leave = false;
            while (true) {
                if (st.stop_requested()) return false;
                if (!replay && j.abandon.load()) {
                    leave = true;
                    break;
                }
                std::uint64_t gen = generation_;
                auto pred = [&] { return generation_ != gen || (!replay && j.abandon.load()); };
                if (paused_) {
                    waited = true;
                    cv_.wait(lk, st, pred);
                    continue;
                }
                auto p = breaker_.acquire(clock::now());
                if (p.allowed) {
                    probe = p.probe;
                    break;
                }
                waited = true;
                cv_.wait_until(lk, st, p.retry_at, pred);
            }
            if (waited && u.first_attempt) *u.first_attempt += clock::now() - waited_from;
            if (leave) continue;
        }

        const std::size_t n = probe ? 1 : u.end - u.begin;
        std::span<const delivery_item> batch(j.items.data() + u.begin, n);
        if (!u.first_attempt) u.first_attempt = clock::now();
        in_flight_.fetch_add(1, std::memory_order_relaxed);
        const auto t0 = clock::now();
        send_outcome out = s.dest->send(batch);
        const auto t1 = clock::now();
        in_flight_.fetch_sub(1, std::memory_order_relaxed);
        if (opts_.on_send) {
            opts_.on_send(n, std::chrono::duration<double>(t1 - t0).count(), out.status);
        }

        if (out.status != send_status::retry) {
            healthy_.store(true, std::memory_order_relaxed);
            bool changed = false;
            {
                std::lock_guard g(mu_);
                auto before = breaker_.current();
                breaker_.on_success(probe);
                changed = before != breaker_.current();
                if (changed) ++generation_;
            }
            if (changed) {
                cv_.notify_all();
                spdlog::info("Destination {} answered the probe; its circuit breaker closes.",
                             opts_.name);
            }
        }

        switch (out.status) {
            case send_status::delivered:
                if (!settle_delivered(j, u.begin, n, out, u.attempts + 1, st)) return false;
                u.begin += n;
                if (probe) s.retry.reset();
                break;

            case send_status::reject: {
                rejected_.fetch_add(n, std::memory_order_relaxed);
                spdlog::error(
                    "Destination {} rejected {} events at offsets {}..{}: {}. They go to the "
                    "dead-letter store.",
                    opts_.name, n, batch.front().offset, batch.back().offset, out.reason);
                set_error(out.reason);
                std::vector<failure> failed;
                for (std::size_t i = u.begin; i < u.begin + n; ++i) {
                    failed.push_back(
                        {i, "rejected", "rejected: " + out.reason, u.attempts + 1, out.reason});
                }
                if (!settle_failed(j, std::move(failed), st)) return false;
                u.begin += n;
                break;
            }

            case send_status::retry: {
                retries_.fetch_add(1, std::memory_order_relaxed);
                healthy_.store(false, std::memory_order_relaxed);
                bool opened = false;
                {
                    std::lock_guard g(mu_);
                    opened = breaker_.on_failure(probe, clock::now());
                    ++generation_;
                }
                if (opened) {
                    spdlog::warn(
                        "Destination {} failed {} times in a row ({}); its circuit breaker opens "
                        "for {} ms.",
                        opts_.name, opts_.breaker_failures, out.reason,
                        opts_.breaker_cooldown.count());
                }
                set_error(out.reason);
                if (probe) break;  // probes cost no budget; the gate waits for the next cooldown
                ++u.attempts;
                u.last_response = out.reason;
                const bool by_attempts =
                    opts_.retry_max_attempts > 0 && u.attempts >= opts_.retry_max_attempts;
                const bool by_age = opts_.retry_max_age.count() > 0 &&
                                    clock::now() - *u.first_attempt >= opts_.retry_max_age;
                if (by_attempts || by_age) {
                    if (u.end - u.begin > 1) {
                        // Poison isolation: each event gets its own fresh budget, so only the
                        // event that keeps failing ends up dead-lettered.
                        spdlog::warn(
                            "Destination {} exhausted the retry budget of offsets {}..{}; it "
                            "retries them one by one.",
                            opts_.name, batch.front().offset, batch.back().offset);
                        unit whole = std::move(u);
                        units.pop_front();
                        for (std::size_t i = whole.end; i-- > whole.begin;) {
                            units.push_front({i, i + 1, 0, std::nullopt, {}});
                        }
                        s.retry.reset();
                        break;
                    }
                    exhausted_.fetch_add(1, std::memory_order_relaxed);
                    const std::string why = fmt::format(
                        "retry budget exhausted after {} attempts in {} ms: {}", u.attempts,
                        std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() -
                                                                              *u.first_attempt)
                            .count(),
                        u.last_response);
                    spdlog::error(
                        "Destination {}: the event at offset {} goes to the dead-letter "
                        "store: {}.",
                        opts_.name, batch.front().offset, why);
                    if (!settle_failed(
                            j, {{u.begin, "budget_exhausted", why, u.attempts, u.last_response}},
                            st)) {
                        return false;
                    }
                    u.begin = u.end;
                    break;
                }
                // On stop the batch stays uncommitted and is sent again on the next start.
                if (st.stop_requested()) return false;
                const auto delay = s.retry.next(out.retry_after);
                spdlog::warn(
                    "Destination {} could not take offsets {}..{} ({}); retry {} follows in {} ms.",
                    opts_.name, batch.front().offset, batch.back().offset, out.reason,
                    s.retry.attempt(), delay.count());
                backing_off_.fetch_add(1, std::memory_order_relaxed);
                {
                    std::unique_lock lk(mu_);
                    cv_.wait_until(lk, st, clock::now() + delay,
                                   [&] { return !replay && j.abandon.load(); });
                }
                backing_off_.fetch_sub(1, std::memory_order_relaxed);
                if (st.stop_requested()) return false;
                break;
            }
        }
    }
    complete(j);
    return true;
}

bool worker::settle_delivered(job& j, std::size_t begin, std::size_t n, const send_outcome& out,
                              std::uint32_t attempts, std::stop_token& st) {
    std::vector<failure> failed;
    std::vector<bool> is_rejected(n, false);
    for (const auto& [index, why] : out.rejected_items) {
        if (index >= n || is_rejected[index]) continue;  // out of range or repeated: ignore
        is_rejected[index] = true;
        failed.push_back({begin + index, "rejected", "rejected: " + why, attempts, out.reason});
    }
    if (!failed.empty()) {
        rejected_.fetch_add(failed.size(), std::memory_order_relaxed);
        spdlog::error(
            "Destination {} took a batch of {} events but rejected {} of them; those go to the "
            "dead-letter store.",
            opts_.name, n, failed.size());
        set_error(failed.front().reason);
    }
    const std::size_t ok = n - failed.size();
    if (j.from == job::origin::replay) {
        std::vector<std::uint64_t> ids;
        for (std::size_t i = 0; i < n; ++i) {
            if (!is_rejected[i]) ids.push_back(j.replays[begin + i].id);
        }
        if (!ids.empty() && !persist(st, "complete a replay",
                                     [&] { return dead_letters_->complete_replay(ids); })) {
            return false;
        }
        replayed_.fetch_add(ok, std::memory_order_relaxed);
    }
    if (!failed.empty() && !settle_failed(j, std::move(failed), st)) return false;
    delivered_.fetch_add(ok, std::memory_order_relaxed);
    if (opts_.on_delivered) {
        for (std::size_t i = 0; i < n; ++i) {
            const auto& item = j.items[begin + i];
            if (!is_rejected[i] && item.event.kind == record_kind::deletion) {
                opts_.on_delivered(item.event);
            }
        }
    }
    return true;
}

bool worker::settle_failed(job& j, std::vector<failure> failed, std::stop_token& st) {
    if (failed.empty()) return true;
    if (j.from == job::origin::replay) {
        // The entries are already in the store: unmark them with the new outcome.
        for (const auto& f : failed) {
            const std::vector<std::uint64_t> ids{j.replays[f.index].id};
            if (!persist(st, "record a failed replay", [&] {
                    return dead_letters_->fail_replay(ids, f.reason, f.last_response, f.attempts);
                })) {
                return false;
            }
        }
        return true;
    }
    std::vector<dead_letter> entries;
    entries.reserve(failed.size());
    const std::int64_t now = unix_ms();
    for (auto& f : failed) {
        const delivery_item& it = j.items[f.index];
        dead_letter d;
        d.offset = it.offset;
        d.time_ms = now;
        d.reason = std::move(f.reason);
        d.kind = std::move(f.kind);
        d.attempts = f.attempts;
        d.last_response = std::move(f.last_response);
        d.message_id = std::string(it.event.message_id);
        d.event_json = std::string(it.event.json);
        entries.push_back(std::move(d));
    }
    // The cursor moves only once the events are safely in the store.
    const std::size_t n = entries.size();
    if (!persist(st, "write dead letters", [&] { return append_dead_letters(entries); })) {
        return false;
    }
    dead_lettered_.fetch_add(n, std::memory_order_relaxed);
    return true;
}

std::error_code worker::append_dead_letters(std::vector<dead_letter>& entries) {
    std::error_code ec = dead_letters_->append(entries);
    if (!ec) entries.clear();
    if (ec != make_error_code(errc::invalid_argument)) return ec;
    // The store refuses an event body it could not load again (a route transform that is not
    // JSON, for instance). Store such events one by one, and without their body when refused:
    // the entry keeps the offset and message id, and a replay reads the event from the log.
    while (!entries.empty()) {
        std::vector<dead_letter> one;
        one.push_back(entries.front());
        ec = dead_letters_->append(one);
        if (ec == make_error_code(errc::invalid_argument) && !one.front().event_json.empty()) {
            one.front().event_json.clear();
            one.front().reason += " (event body not storable)";
            ec = dead_letters_->append(one);
        }
        if (ec) return ec;  // what is stored is gone from `entries`: a retry does not repeat it
        entries.erase(entries.begin());
    }
    return {};
}

bool worker::drop_rest(job& j, std::deque<unit>& units, std::stop_token& st) {
    std::vector<failure> failed;
    const std::string reason =
        fmt::format("dropped: lag over max_lag_events ({})", opts_.max_lag_events);
    for (const auto& u : units) {
        for (std::size_t i = u.begin; i < u.end; ++i) {
            failed.push_back({i, "dropped", reason, u.attempts, u.last_response});
        }
    }
    const std::size_t n = failed.size();
    if (!settle_failed(j, std::move(failed), st)) return false;
    dropped_.fetch_add(n, std::memory_order_relaxed);
    units.clear();
    return true;
}

bool worker::persist(std::stop_token& st, std::string_view what,
                     const std::function<std::error_code()>& op) {
    backoff wait(opts_.backoff_base, opts_.backoff_max, seed_ ^ 0x5eed);
    while (auto ec = op()) {
        spdlog::error(
            "Destination {} cannot {} in its dead-letter store: {}. Delivery waits until it can.",
            opts_.name, what, ec.message());
        set_error(fmt::format("cannot {}: {}", what, ec.message()));
        if (st.stop_requested()) return false;
        backing_off_.fetch_add(1, std::memory_order_relaxed);
        const bool go_on = wait_until(st, clock::now() + wait.next());
        backing_off_.fetch_sub(1, std::memory_order_relaxed);
        if (!go_on) return false;
    }
    return true;
}

void worker::complete(job& j) {
    j.records.clear();
    j.records.shrink_to_fit();
    std::optional<std::uint64_t> target;
    {
        std::lock_guard g(mu_);
        j.done = true;
        if (j.from == job::origin::replay) {
            replay_in_flight_ = false;
        } else {
            while (!window_.empty() && window_.front()->done) {
                const auto& f = window_.front();
                target = f->next;
                if (f->from == job::origin::log && !f->items.empty()) --window_batches_;
                window_.pop_front();
            }
            if (target) {
                head_received_ms_.store(window_.empty() ? 0 : window_.front()->first_received_ms,
                                        std::memory_order_relaxed);
            }
        }
    }
    cv_.notify_all();
    if (target) commit(*target);
}

void worker::commit(std::uint64_t next) {
    std::lock_guard g(commit_mu_);
    if (next <= committed_) return;  // another thread committed further already
    committed_ = next;
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
