#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace switchyard::delivery {

// One event a destination could not take, with why.
struct dead_letter {
    std::uint64_t id = 0;        // unique within the destination's store, increasing
    std::uint64_t offset = 0;    // log offset the event came from
    std::int64_t time_ms = 0;    // when it was dead-lettered (Unix ms); 0 = now, at append
    std::string reason;          // "rejected: HTTP 400: ...", "retry budget exhausted: ...",
                                 // "dropped: lag over limit", ...
    std::string kind;            // stable reason class: rejected | budget_exhausted | dropped
    std::uint32_t attempts = 0;  // send attempts made for it
    std::string last_response;   // the destination's last answer (status and body excerpt)
    std::string message_id;
    std::string event_json;  // the canonical event (may be empty for `dropped` entries
                             // when only ids are kept)
    bool replaying = false;  // marked for replay and not yet delivered
};

struct dead_letter_filter {
    std::optional<std::string> kind;  // exact match on `kind`
    std::optional<std::string> reason_contains;
    std::optional<std::int64_t> since_ms;  // time_ms >= since
    std::optional<std::int64_t> until_ms;  // time_ms <  until
    std::vector<std::uint64_t> ids;        // when not empty: only these ids
    bool matches(const dead_letter& d) const;
};

// A destination's dead-letter store: `<dir>/<destination>.dlq.ndjson`, one JSON object per
// entry. Durable: append() and every mutation return only after fdatasync; mutations rewrite
// the file atomically (temp file, fdatasync, rename, fsync of the directory), so a crash leaves
// the old or the new content. Bounded: appends beyond `max_bytes` are refused with
// errc::log_full so the caller keeps the events in the log (back-pressure) instead of losing them.
// Memory holds only each entry's metadata (reason and last_response are cut to
// `max_text_bytes` when stored) and its place in the file; event bodies are read back from the
// file when list() or replay_batch() return them.
//
// Lifecycle: opened at start by the app (one per destination), shared by the destination's
// worker thread (append, replay_batch, complete_replay, fail_replay) and the admin API (list,
// mark_for_replay, discard, size). Thread-safe (one mutex); a mutation holds it for the whole
// O(file size) rewrite, so admin calls belong on a blocking thread, not an I/O thread.
class dead_letter_store {
  public:
    // Longest `reason` / `last_response` kept, in bytes (cut at a UTF-8 boundary).
    static constexpr std::size_t max_text_bytes = 512;

    dead_letter_store(std::filesystem::path dir, std::string destination,
                      std::uint64_t max_bytes = 1ULL << 30);
    ~dead_letter_store();
    dead_letter_store(const dead_letter_store&) = delete;
    dead_letter_store& operator=(const dead_letter_store&) = delete;

    // Creates the directory and loads the file. A torn last line (crash during append) is cut
    // off with a warning; a corrupt line elsewhere is moved to `<file>.corrupt` and logged at
    // error. Throws std::system_error at start-up on failure.
    void open();

    // Appends entries (ids are assigned here and written back into `entries`). Durable on
    // return. All or nothing: errc::log_full beyond max_bytes, errc::invalid_argument when an
    // event_json is not valid JSON, an I/O error otherwise (the file is cut back).
    std::error_code append(std::vector<dead_letter>& entries);

    // Entries matching `f`, oldest first, at most `limit`. `ec` is set if reading an event
    // body from the file fails (nothing is returned then).
    std::vector<dead_letter> list(const dead_letter_filter& f, std::size_t limit,
                                  std::error_code& ec) const;

    // Marks matching entries for replay; returns how many were marked. Durable.
    std::size_t mark_for_replay(const dead_letter_filter& f, std::error_code& ec);
    // Up to `max` entries marked for replay, oldest first (not removed).
    std::vector<dead_letter> replay_batch(std::size_t max, std::error_code& ec) const;
    // Removes entries that were delivered by a replay (unknown ids are ignored). Durable.
    std::error_code complete_replay(const std::vector<std::uint64_t>& ids);
    // A replayed entry failed again: unmark it, add attempts, set reason/last_response. Durable.
    std::error_code fail_replay(const std::vector<std::uint64_t>& ids, std::string_view reason,
                                std::string_view last_response, std::uint32_t attempts);

    // Deletes matching entries; returns how many. Durable.
    std::size_t discard(const dead_letter_filter& f, std::error_code& ec);

    std::size_t size() const;
    std::size_t replay_pending() const;
    std::uint64_t bytes() const;
    const std::string& destination() const noexcept { return destination_; }
    const std::filesystem::path& file() const noexcept { return file_; }
    // An estimate of the heap the in-memory index holds (entries and their texts), in bytes.
    std::size_t memory_bytes() const;

  private:
    // What memory keeps of an entry: no event body, but where its line is in the file. Texts
    // that repeat across entries (kind, reason, last_response) are ids into texts_. Ordered to
    // leave no padding: 88 bytes.
    struct entry {
        std::uint64_t id = 0;
        std::uint64_t offset = 0;
        std::int64_t time_ms = 0;
        std::uint64_t pos = 0;  // line start in the file
        std::string message_id;
        std::uint32_t kind : 31 = 0;  // ids into texts_ (fewer than max_texts)
        std::uint32_t replaying : 1 = 0;
        std::uint32_t reason = 0;
        std::uint32_t last_response = 0;
        std::uint32_t attempts = 0;
        std::uint32_t len = 0;        // line length including '\n'
        std::uint32_t event_off = 0;  // start of the event value within the line
    };

    static constexpr std::size_t max_texts = std::size_t{1} << 31;
    // The id of `s` in texts_, adding it when new.
    std::uint32_t intern(std::string_view s);
    // Forgets texts_ from `n` on (texts an append added before it failed).
    void drop_texts_from(std::size_t n);
    std::error_code read_event(const entry& e, std::string& out) const;
    std::error_code to_dead_letter(const entry& e, dead_letter& out) const;
    // Writes `next` (positions still in the current file) to a temp file and renames it over the
    // file. Once the rename is done (`adopted`), `next` has its new positions and is entries_;
    // an error after that is the directory sync failing.
    std::error_code rewrite(std::vector<entry>& next, bool& adopted);

    std::filesystem::path dir_;
    std::string destination_;
    std::uint64_t max_bytes_;
    std::filesystem::path file_;
    mutable std::mutex mu_;
    int fd_ = -1;  // the file, read with pread and appended with pwrite at bytes_
    std::vector<entry> entries_;
    std::uint64_t next_id_ = 1;
    std::uint64_t bytes_ = 0;
    // The distinct texts entries_ refer to. A deque, so text_index_'s views stay valid as it
    // grows. Rebuilt from entries_ on every rewrite, so texts no entry uses do not pile up.
    std::deque<std::string> texts_;
    std::unordered_map<std::string_view, std::uint32_t> text_index_;
};

}  // namespace switchyard::delivery
