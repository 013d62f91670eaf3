#pragma once

#include "identity/store.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace switchyard::identity {

// The people whose events are refused at admission. Entries are graph keys ("u:alice",
// "a:…", "d:…"); suppressing a person adds every id it holds. Kept in the identity store (so
// the list survives restarts and, with Redis, is shared by every collector) and mirrored in
// memory: admission checks a snapshot, never the store.
//
// Thread model: contains()/any() are lock-free reads of the current snapshot, from any
// thread; changes are serialised by a mutex and published as a new snapshot at once. Changes
// made by other nodes sharing the store arrive through refresh() (the owner calls it every
// few seconds; it reads one version key and reloads only when it moved).
class suppression_list {
  public:
    struct entry {
        std::string key;
        std::int64_t at_ms = 0;
        std::string by;      // who asked
        std::string reason;  // free text
        std::string person;  // the person the key belonged to when it was suppressed
    };

    explicit suppression_list(std::shared_ptr<store> s);

    // Reads every entry from the store.
    std::error_code load();
    // Reloads when another node changed the list since the last load.
    std::error_code refresh();

    bool any() const noexcept { return count_.load(std::memory_order_acquire) != 0; }
    bool contains(std::string_view key) const;

    // Adds (or replaces) entries, durably, then publishes them.
    std::error_code add(const std::vector<entry>& entries);
    // Removes one key; false when it was not suppressed.
    result<bool> remove(std::string_view key);
    std::vector<entry> list() const;
    std::size_t size() const noexcept { return count_.load(std::memory_order_acquire); }

  private:
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    using set_t = std::unordered_set<std::string, hash, std::equal_to<>>;
    void publish();  // with mu_ held
    std::error_code bump_version(store::txn& tx);

    std::shared_ptr<store> store_;
    mutable std::mutex mu_;
    std::map<std::string, entry, std::less<>> entries_;
    std::string version_;
    std::atomic<std::shared_ptr<const set_t>> snapshot_;
    std::atomic<std::size_t> count_{0};
};

}  // namespace switchyard::identity
