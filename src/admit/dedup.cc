// The dedup window's shard layout. Each shard holds, under its own mutex:
//
//   ring   a FIFO of {u64 hash, i64 first_seen_ms} in insertion order, oldest at `head`, with
//          room for at most `shard_capacity_` entries. Entries leave from the front only: when
//          their window has passed (expiry, checked on every insert into the shard), when the
//          ring is full (eviction by size), or, if erase() already dropped them, whenever they
//          reach the front (an erased entry is a tombstone: first_seen_ms == erased).
//   table  open addressing with linear probing over u64 slots, power-of-two sized so that the
//          load stays <= 3/4. A slot is (low 32 bits of the hash) << 32 | (ring position + 1),
//          0 when empty. The probe starts at hash & mask, so a slot's home index is known
//          without touching the ring, and deletion is by backward shift (no tombstones in the
//          table). A lookup confirms a tag match against the full hash in the ring.
//
// Invariants: every live ring entry has exactly one slot and every slot points at a live ring
// entry; at most one live entry per hash; live <= ring size <= ring capacity <= shard_capacity_.
//
// Memory once a shard is full: 16 bytes of ring per entry plus 8 bytes per slot, with
// 4/3..8/3 slots per entry after power-of-two rounding, i.e. 27..37 bytes per entry. The
// defaults (10M entries over 64 shards: 156,250 per shard, 262,144 slots) come to 29.4 bytes per
// entry, 294 MB in all. The ring starts small and doubles, so memory follows the traffic.
//
// The shard is picked from the high 32 bits of the hash and the probe start from the low bits,
// so the two are independent.
#include "admit/dedup.h"

#include "switchyard/event.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace switchyard::admit {

namespace {

constexpr std::uint64_t prime1 = 0x9E3779B185EBCA87ull;
constexpr std::uint64_t prime2 = 0xC2B2AE3D27D4EB4Full;
constexpr std::uint64_t prime3 = 0x165667B19E3779F9ull;
constexpr std::uint64_t prime4 = 0x85EBCA77C2B2AE63ull;
constexpr std::uint64_t prime5 = 0x27D4EB2F165667C5ull;

std::uint64_t read64(const char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);  // x86-64 and aarch64 Linux are little endian
    return v;
}

std::uint32_t read32(const char* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

std::uint64_t xxh_round(std::uint64_t acc, std::uint64_t input) noexcept {
    acc += input * prime2;
    acc = std::rotl(acc, 31);
    return acc * prime1;
}

std::uint64_t xxh_merge(std::uint64_t acc, std::uint64_t val) noexcept {
    acc ^= xxh_round(0, val);
    return acc * prime1 + prime4;
}

// Ring entries whose pair erase() dropped carry this time.
constexpr std::int64_t erased = std::numeric_limits<std::int64_t>::min();

// A shard's ring starts this small and doubles up to its capacity (shards of at most twice this
// start full-sized).
constexpr std::uint32_t initial_ring = 256;

// Keys up to this size are hashed from the stack (source names are short, messageIds <= 100).
constexpr std::size_t stack_key = 256;

std::size_t slots_for(std::size_t ring_capacity) {
    return std::bit_ceil(std::max<std::size_t>(8, (ring_capacity * 4 + 2) / 3));
}

std::uint64_t random_seed() {
    std::random_device rd;
    std::uint64_t s = 0;
    while (s == 0) s = (std::uint64_t{rd()} << 32) ^ rd();
    return s;
}

}  // namespace

std::uint64_t xxh64(std::string_view data, std::uint64_t seed) noexcept {
    const char* p = data.data();
    const char* const end = p + data.size();
    std::uint64_t h;
    if (data.size() >= 32) {
        std::uint64_t v1 = seed + prime1 + prime2;
        std::uint64_t v2 = seed + prime2;
        std::uint64_t v3 = seed;
        std::uint64_t v4 = seed - prime1;
        const char* const limit = end - 32;
        do {
            v1 = xxh_round(v1, read64(p));
            v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16));
            v4 = xxh_round(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = std::rotl(v1, 1) + std::rotl(v2, 7) + std::rotl(v3, 12) + std::rotl(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = seed + prime5;
    }
    h += data.size();
    for (; end - p >= 8; p += 8) {
        h ^= xxh_round(0, read64(p));
        h = std::rotl(h, 27) * prime1 + prime4;
    }
    if (end - p >= 4) {
        h ^= std::uint64_t{read32(p)} * prime1;
        h = std::rotl(h, 23) * prime2 + prime3;
        p += 4;
    }
    for (; p < end; ++p) {
        h ^= std::uint64_t{static_cast<unsigned char>(*p)} * prime5;
        h = std::rotl(h, 11) * prime1;
    }
    h ^= h >> 33;
    h *= prime2;
    h ^= h >> 29;
    h *= prime3;
    h ^= h >> 32;
    return h;
}

struct alignas(64) dedup_window::shard {
    struct entry {
        std::uint64_t hash;
        std::int64_t first_seen_ms;
    };

    mutable std::mutex mu;

    std::unique_ptr<entry[]> ring;
    std::uint32_t ring_capacity = 0;
    std::uint32_t head = 0;
    std::uint32_t size = 0;  // live entries plus tombstones

    std::unique_ptr<std::uint64_t[]> slots;
    std::size_t mask = 0;  // slot count - 1

    std::uint64_t live = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t inserted = 0;
    std::uint64_t evicted_by_size = 0;
    std::uint64_t expired = 0;
    std::uint64_t rebuilt = 0;

    static std::uint64_t make_slot(std::uint64_t h, std::uint32_t pos) noexcept {
        return (h << 32) | (std::uint64_t{pos} + 1);
    }
    static std::uint32_t slot_pos(std::uint64_t s) noexcept {
        return static_cast<std::uint32_t>(s) - 1;
    }
    static std::size_t slot_home(std::uint64_t s) noexcept { return s >> 32; }

    // Allocates a ring of `capacity` and its table; re-lays the live entries from position 0.
    void resize(std::uint32_t capacity) {
        auto new_ring = std::make_unique<entry[]>(capacity);
        const std::size_t slot_count = slots_for(capacity);
        slots = std::make_unique<std::uint64_t[]>(slot_count);  // zeroed: all empty
        mask = slot_count - 1;
        std::uint32_t n = 0;
        for (std::uint32_t i = 0; i < size; ++i) {
            const entry& e = ring[(head + i) % ring_capacity];
            if (e.first_seen_ms == erased) continue;
            new_ring[n] = e;
            place(e.hash, n);
            ++n;
        }
        ring = std::move(new_ring);
        ring_capacity = capacity;
        head = 0;
        size = n;
    }

    void place(std::uint64_t h, std::uint32_t pos) noexcept {
        std::size_t i = h & mask;
        while (slots[i] != 0) i = (i + 1) & mask;
        slots[i] = make_slot(h, pos);
    }

    // Index of the slot holding hash `h`, or npos.
    static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
    std::size_t find(std::uint64_t h) const noexcept {
        const std::uint64_t tag = h << 32;
        for (std::size_t i = h & mask;; i = (i + 1) & mask) {
            const std::uint64_t s = slots[i];
            if (s == 0) return npos;
            if ((s & 0xFFFF'FFFF'0000'0000ull) == tag && ring[slot_pos(s)].hash == h) return i;
        }
    }

    // Index of the slot pointing at ring position `pos` (which must be live).
    std::size_t find_pos(std::uint64_t h, std::uint32_t pos) const noexcept {
        const std::uint64_t want = make_slot(h, pos);
        std::size_t i = h & mask;
        while (slots[i] != want) i = (i + 1) & mask;
        return i;
    }

    // Backward-shift deletion: pulls later members of the probe run into the hole so every
    // remaining slot stays reachable from its home without tombstones.
    void remove_slot(std::size_t i) noexcept {
        for (std::size_t j = (i + 1) & mask; slots[j] != 0; j = (j + 1) & mask) {
            const std::size_t home = slot_home(slots[j]) & mask;
            // Slot j may move to the hole at i unless its home lies cyclically in (i, j].
            const bool home_between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!home_between) {
                slots[i] = slots[j];
                i = j;
            }
        }
        slots[i] = 0;
    }

    void pop_front() noexcept {
        head = head + 1 == ring_capacity ? 0 : head + 1;
        --size;
    }

    // Forgets the front entry, whatever its age; counts it in `counter` when it was live.
    void drop_front(std::uint64_t& counter) noexcept {
        const entry& e = ring[head];
        if (e.first_seen_ms != erased) {
            remove_slot(find_pos(e.hash, head));
            --live;
            ++counter;
        }
        pop_front();
    }

    void expire(std::int64_t cutoff_ms) noexcept {
        while (size > 0) {
            const entry& e = ring[head];
            if (e.first_seen_ms != erased && e.first_seen_ms > cutoff_ms) break;
            drop_front(expired);
        }
    }

    void erase_at(std::size_t slot) noexcept {
        ring[slot_pos(slots[slot])].first_seen_ms = erased;
        remove_slot(slot);
        --live;
    }

    std::uint64_t memory_bytes() const noexcept {
        return std::uint64_t{ring_capacity} * sizeof(entry) + (mask + 1) * sizeof(std::uint64_t);
    }
};

dedup_window::dedup_window(dedup_options o)
    : window_ms_(o.window.count()),
      seed_(o.hash_seed != 0 ? o.hash_seed : random_seed()),
      shard_count_(std::clamp<std::size_t>(o.shards, 1, std::max<std::size_t>(o.max_entries, 1))),
      shard_capacity_(std::max<std::size_t>(o.max_entries / shard_count_, 1)),
      shards_(std::make_unique<shard[]>(shard_count_)) {
    if (window_ms_ <= 0) throw std::invalid_argument("the dedup window must be positive");
    if (shard_capacity_ > (std::size_t{1} << 31)) {
        throw std::invalid_argument("dedup max_entries per shard must be at most 2^31");
    }
    const auto first = static_cast<std::uint32_t>(
        shard_capacity_ <= initial_ring * 2 ? shard_capacity_ : initial_ring);
    for (std::size_t i = 0; i < shard_count_; ++i) shards_[i].resize(first);
}

dedup_window::~dedup_window() = default;

std::uint64_t dedup_window::hash(std::string_view source, std::string_view message_id) const {
    const std::size_t n = source.size() + 1 + message_id.size();
    if (n <= stack_key) {
        char key[stack_key];
        std::memcpy(key, source.data(), source.size());
        key[source.size()] = '\0';
        std::memcpy(key + source.size() + 1, message_id.data(), message_id.size());
        return xxh64({key, n}, seed_);
    }
    std::string key;  // longer than anything the Segment decoder admits; allocation is fine
    key.reserve(n);
    key.append(source).push_back('\0');
    key.append(message_id);
    return xxh64(key, seed_);
}

std::size_t dedup_window::shard_index(std::uint64_t h) const noexcept {
    return ((h >> 32) * shard_count_) >> 32;
}

bool dedup_window::check_and_insert(std::string_view source, std::string_view message_id,
                                    std::int64_t now_ms) {
    // The Segment decoder generates a messageId when a message has none; an empty one here
    // cannot identify a message, so it is never treated as a duplicate.
    if (message_id.empty()) return false;
    const std::uint64_t h = hash(source, message_id);
    shard& s = shards_[shard_index(h)];
    std::lock_guard lock(s.mu);
    return insert_locked(s, h, now_ms, false);
}

bool dedup_window::insert_locked(shard& s, std::uint64_t h, std::int64_t now_ms,
                                 bool from_rebuild) {
    const std::int64_t cutoff = now_ms - window_ms_;  // first_seen_ms <= cutoff: outside
    s.expire(cutoff);

    if (const std::size_t slot = s.find(h); slot != shard::npos) {
        if (s.ring[shard::slot_pos(s.slots[slot])].first_seen_ms > cutoff) {
            if (!from_rebuild) ++s.duplicates;
            return true;
        }
        // Outside the window but not yet at the front (inserts arrive slightly out of time
        // order across threads): forget it and record the pair afresh.
        s.erase_at(slot);
        ++s.expired;
    }

    if (s.size == s.ring_capacity) {
        if (s.ring_capacity < shard_capacity_) {
            s.resize(static_cast<std::uint32_t>(
                std::min<std::size_t>(std::size_t{s.ring_capacity} * 2, shard_capacity_)));
        } else {
            s.drop_front(s.evicted_by_size);
        }
    }
    const std::uint32_t pos = (s.head + s.size) % s.ring_capacity;
    s.ring[pos] = {h, now_ms};
    ++s.size;
    s.place(h, pos);
    ++s.live;
    ++(from_rebuild ? s.rebuilt : s.inserted);
    return false;
}

void dedup_window::erase(std::string_view source, std::string_view message_id) {
    if (message_id.empty()) return;
    const std::uint64_t h = hash(source, message_id);
    shard& s = shards_[shard_index(h)];
    std::lock_guard lock(s.mu);
    if (const std::size_t slot = s.find(h); slot != shard::npos) s.erase_at(slot);
}

result<std::size_t> dedup_window::rebuild(event_log& log, std::int64_t now_ms) {
    constexpr std::size_t chunk_records = 8192;
    constexpr std::size_t chunk_bytes = 8 << 20;
    // How many inserts ahead the table slot is prefetched. A full window's tables are far
    // larger than the caches, so each insert is one memory miss unless it is overlapped.
    constexpr std::size_t prefetch_ahead = 8;
    struct pair_at {
        std::uint64_t hash;
        std::int64_t first_seen_ms;
    };

    const auto started = std::chrono::steady_clock::now();
    const std::int64_t cutoff = now_ms - window_ms_;
    const std::uint64_t end = log.end_offset();
    std::uint64_t from = log.start_offset();
    const std::uint64_t first = from;
    std::size_t scanned = 0, undecodable = 0, restored = 0;
    std::vector<log_record> records;
    std::vector<pair_at> pairs, by_shard;
    std::vector<std::size_t> run_start(shard_count_ + 1);
    while (from < end) {
        records.clear();
        auto next = log.read(from, chunk_records, chunk_bytes, records);
        if (!next) {
            spdlog::error(
                "Cannot read the event log at offset {} to rebuild the dedup window ({}).", from,
                next.error().message());
            return next.error();
        }
        pairs.clear();
        for (const log_record& r : records) {
            if (r.offset >= end) break;
            ++scanned;
            auto v = decode_event(r.payload);
            if (!v) {
                ++undecodable;
                continue;
            }
            if (v->kind != record_kind::event || v->received_at_ms <= cutoff ||
                v->message_id.empty()) {
                continue;
            }
            pairs.push_back({hash(v->source, v->message_id), v->received_at_ms});
        }

        // Group the chunk by shard, keeping log order within each shard (all that matters:
        // shards are independent), then insert each run under one lock with prefetching.
        std::fill(run_start.begin(), run_start.end(), 0);
        for (const pair_at& p : pairs) ++run_start[shard_index(p.hash) + 1];
        for (std::size_t i = 1; i <= shard_count_; ++i) run_start[i] += run_start[i - 1];
        by_shard.resize(pairs.size());
        {
            std::vector<std::size_t> fill(run_start.begin(), run_start.end() - 1);
            for (const pair_at& p : pairs) by_shard[fill[shard_index(p.hash)]++] = p;
        }
        for (std::size_t i = 0; i < shard_count_; ++i) {
            const std::size_t b = run_start[i], e = run_start[i + 1];
            if (b == e) continue;
            shard& s = shards_[i];
            std::lock_guard lock(s.mu);
            for (std::size_t k = b; k < e; ++k) {
                if (k + prefetch_ahead < e) {
                    __builtin_prefetch(&s.slots[by_shard[k + prefetch_ahead].hash & s.mask]);
                }
                if (!insert_locked(s, by_shard[k].hash, by_shard[k].first_seen_ms, true)) {
                    ++restored;
                }
            }
        }
        if (next.value() <= from) break;  // nothing readable left
        from = next.value();
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    if (undecodable > 0) {
        spdlog::warn("Skipped {} undecodable records while rebuilding the dedup window.",
                     undecodable);
    }
    spdlog::info(
        "Rebuilt the dedup window from log offsets {} to {}: {} records scanned, {} pairs "
        "remembered, in {} ms.",
        first, end, scanned, restored, ms);
    return scanned;
}

dedup_stats dedup_window::stats() const {
    dedup_stats out;
    for (std::size_t i = 0; i < shard_count_; ++i) {
        const shard& s = shards_[i];
        std::lock_guard lock(s.mu);
        out.entries += s.live;
        out.duplicates += s.duplicates;
        out.inserted += s.inserted;
        out.evicted_by_size += s.evicted_by_size;
        out.expired += s.expired;
        out.rebuilt += s.rebuilt;
        out.memory_bytes += s.memory_bytes();
    }
    out.memory_bytes += sizeof(*this) + shard_count_ * sizeof(shard);
    return out;
}

}  // namespace switchyard::admit
