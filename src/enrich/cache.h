#pragma once

// A bounded, scan-resistant cache keyed by strings: S3-FIFO (Yang et al., "FIFO queues are all
// you need for cache eviction", SOSP 2023).
//
// Three queues:
//  - small: a FIFO that new keys enter; its target size is 10% of the capacity. A key that
//    reaches the tail of small without having been read again since it entered is evicted and
//    its hash goes to the ghost queue; a key that was read moves to main.
//  - main: a FIFO with reinsertion (CLOCK-like). The tail key is evicted when its frequency is 0,
//    otherwise its frequency drops by one and it goes back to the head.
//  - ghost: hashes of keys recently evicted from small, as many as main holds. A key found there
//    when it is inserted again goes straight to main: it was evicted too early.
// Each entry has a 2-bit frequency (0..3), bumped by every find() that hits.
//
// Why: a burst of one-time keys (a crawler walking through thousands of user agents, a
// campaign of never-repeated strings) only churns the small queue, while keys read more than
// once stay in main; a plain LRU of the same size would lose its whole working set to the scan.
//
// Bounds: at most capacity() entries; the ghost queue holds at most capacity() 64-bit hashes.
// Entries live in a std::deque (stable addresses), so the index stores string_views into the
// entries' own keys: a hit hashes the key once and allocates nothing. Freed slots are reused,
// keeping their string buffers.
//
// Not thread-safe: each thread owns its own cache. Values are returned by pointer/reference into
// the cache; they stay valid until the next insert() or clear() on the same cache.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace switchyard::enrich {

template <typename V>
class s3fifo_cache {
  public:
    explicit s3fifo_cache(std::size_t capacity)
        : capacity_(capacity),
          small_target_(capacity == 0 ? 0 : std::max<std::size_t>(1, capacity / 10)),
          small_(capacity),
          main_(capacity),
          ghost_(capacity) {
        index_.reserve(std::min<std::size_t>(capacity, 1 << 16));
    }

    s3fifo_cache(const s3fifo_cache&) = delete;
    s3fifo_cache& operator=(const s3fifo_cache&) = delete;

    // The cached value for key, or null. A hit raises the key's frequency (saturating at 3).
    const V* find(std::string_view key) noexcept {
        if (capacity_ == 0) return nullptr;
        auto it = index_.find(key);
        if (it == index_.end()) return nullptr;
        entry& e = entries_[it->second];
        if (e.freq < max_freq) ++e.freq;
        return &e.value;
    }

    // Stores value under key (replacing the value if the key is present) and returns a reference
    // to the stored value. Evicts first when the cache is full. With capacity 0 nothing is
    // stored: the value goes to a scratch slot that the next insert() overwrites.
    const V& insert(std::string_view key, V value) {
        if (capacity_ == 0) {
            scratch_.reset();
            scratch_.emplace(std::move(value));
            return *scratch_;
        }
        if (auto it = index_.find(key); it != index_.end()) {
            entry& e = entries_[it->second];
            e.value = std::move(value);
            return e.value;
        }
        while (index_.size() >= capacity_) evict();

        const std::uint64_t h = hash_of(key);
        const bool to_main = ghost_.contains(h);
        std::uint32_t slot;
        if (!free_.empty()) {
            slot = free_.back();
            free_.pop_back();
            entry& e = entries_[slot];
            e.key.assign(key.data(), key.size());
            e.value = std::move(value);
        } else {
            slot = static_cast<std::uint32_t>(entries_.size());
            entries_.push_back(entry{std::string(key), std::move(value)});
        }
        entry& e = entries_[slot];
        e.hash = h;
        e.freq = 0;
        (to_main ? main_ : small_).push(slot);
        index_.emplace(std::string_view(e.key), slot);
        return e.value;
    }

    std::size_t size() const noexcept { return index_.size(); }
    std::size_t capacity() const noexcept { return capacity_; }

    // Drops every entry and the ghost history.
    void clear() noexcept {
        index_.clear();
        entries_.clear();
        free_.clear();
        small_.clear();
        main_.clear();
        ghost_.clear();
        scratch_.reset();
    }

    // Introspection for tests and metrics.
    std::size_t small_size() const noexcept { return small_.size(); }
    std::size_t main_size() const noexcept { return main_.size(); }
    std::size_t ghost_size() const noexcept { return ghost_.size(); }

  private:
    static constexpr std::uint8_t max_freq = 3;

    struct entry {
        std::string key;
        V value;
        std::uint64_t hash = 0;
        std::uint8_t freq = 0;
    };

    // A fixed-capacity ring of slot numbers (or hashes).
    template <typename T>
    class ring {
      public:
        explicit ring(std::size_t cap) : buf_(cap) {}
        bool empty() const noexcept { return size_ == 0; }
        std::size_t size() const noexcept { return size_; }
        bool full() const noexcept { return size_ == buf_.size(); }
        void push(T v) noexcept {
            buf_[(head_ + size_) % buf_.size()] = v;
            ++size_;
        }
        T pop() noexcept {
            T v = buf_[head_];
            head_ = (head_ + 1) % buf_.size();
            --size_;
            return v;
        }
        void clear() noexcept { head_ = size_ = 0; }

      private:
        std::vector<T> buf_;
        std::size_t head_ = 0, size_ = 0;
    };

    // Hashes of keys evicted from small: a FIFO plus a multiset for membership.
    class ghost_queue {
      public:
        explicit ghost_queue(std::size_t cap) : fifo_(cap) {}
        bool contains(std::uint64_t h) const { return counts_.find(h) != counts_.end(); }
        std::size_t size() const noexcept { return fifo_.size(); }
        void add(std::uint64_t h) {
            if (fifo_.full()) {
                auto it = counts_.find(fifo_.pop());
                if (--it->second == 0) counts_.erase(it);
            }
            fifo_.push(h);
            ++counts_[h];
        }
        void clear() noexcept {
            fifo_.clear();
            counts_.clear();
        }

      private:
        ring<std::uint64_t> fifo_;
        std::unordered_map<std::uint64_t, std::uint32_t> counts_;
    };

    static std::uint64_t hash_of(std::string_view key) noexcept {
        return std::hash<std::string_view>{}(key);
    }

    // Removes one entry. Called only when the cache is full (so at least one queue is non-empty).
    void evict() {
        for (;;) {
            if (!small_.empty() && (small_.size() >= small_target_ || main_.empty())) {
                const std::uint32_t slot = small_.pop();
                entry& e = entries_[slot];
                if (e.freq > 0) {
                    // Read again while in small: promote. Its frequency starts over in main.
                    e.freq = 0;
                    main_.push(slot);
                    continue;
                }
                ghost_.add(e.hash);
                release(slot);
                return;
            }
            if (evict_main()) return;
        }
    }

    // Evicts the first entry of main whose frequency has dropped to 0; the ones passed over lose
    // one unit of frequency and go back to the head. Terminates: frequencies are at most 3.
    bool evict_main() {
        while (!main_.empty()) {
            const std::uint32_t slot = main_.pop();
            entry& e = entries_[slot];
            if (e.freq > 0) {
                --e.freq;
                main_.push(slot);
                continue;
            }
            release(slot);
            return true;
        }
        return false;
    }

    void release(std::uint32_t slot) {
        entry& e = entries_[slot];
        index_.erase(std::string_view(e.key));
        free_.push_back(slot);
    }

    std::size_t capacity_;
    std::size_t small_target_;
    std::deque<entry> entries_;
    std::vector<std::uint32_t> free_;
    std::unordered_map<std::string_view, std::uint32_t> index_;
    ring<std::uint32_t> small_;
    ring<std::uint32_t> main_;
    ghost_queue ghost_;
    std::optional<V> scratch_;
};

}  // namespace switchyard::enrich
