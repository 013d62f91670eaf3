#pragma once

#include "enrich/cache.h"
#include "identity/store.h"
#include "switchyard/result.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::identity {

// The kinds of identifier the graph links. The character is part of every stored key: never
// change one.
enum class id_type : char { user = 'u', anonymous = 'a', device = 'd' };

// "userId", "anonymousId", "deviceId".
std::string_view to_string(id_type t) noexcept;
std::optional<id_type> id_type_from_string(std::string_view s) noexcept;

// A typed identifier as the graph names it: the type character, ':', the id ("u:alice").
// Person ids are keys too: the canonical member's key.
std::string make_key(id_type t, std::string_view id);
id_type key_type(std::string_view key) noexcept;
std::string_view key_id(std::string_view key) noexcept;

// A key as JSON, {"type": "userId", "id": "alice"}, appended to `out`; and a list of them.
void append_key_json(std::string& out, std::string_view key);
void append_keys_json(std::string& out, const std::vector<std::string>& keys);

struct graph_options {
    // Merge guard: an anonymous or device id may join at most this many distinct user ids
    // (shared kiosks, family computers): a link between two persons that both hold user ids is
    // refused (and counted) when the merged person would hold more than this many. An alias
    // from a known user id to another (previousId → userId) is the explicit way to merge two
    // users and is not limited by it; an alias from an anonymous id is.
    std::size_t max_user_ids_per_id = 1;
    // Merge guard: a person may hold at most this many ids; a link that would exceed it is
    // refused. Also bounds the cost of a merge and of a deletion.
    std::size_t max_ids_per_person = 1000;
    // Longer ids are attributed but never stored or linked.
    std::size_t max_id_bytes = 256;
    // Cached lookups (positive and negative), over all threads.
    std::size_t cache_size = 200000;
    // How long a cached lookup is trusted. 0: until this process changes it (one node owns the
    // store). With a shared store (Redis), other nodes' merges show after at most this long.
    std::chrono::milliseconds cache_ttl{0};
    // Persons none of whose ids has been seen for this long are forgotten by sweep(); 0 = never.
    std::chrono::seconds ttl{std::chrono::hours(24 * 400)};
    // When more ids than this are stored, sweep() forgets the least recently seen persons.
    std::uint64_t max_ids = 10'000'000;
};

// The identifiers one event carries.
struct observation {
    std::string_view user_id;
    std::string_view anonymous_id;
    std::string_view device_id;    // context.device.id
    std::string_view previous_id;  // alias
};

// A link this event created (two persons became one).
struct link {
    std::string from;           // key of the id that joined
    std::string to;             // key of the id it joined
    std::string person;         // the merged person's key (canonical id)
    std::string previous_from;  // the person `from` belonged to before (itself when new)
    std::string previous_to;    // the person `to` belonged to before
};

struct refusal {
    std::string from;
    std::string to;
    std::string_view reason;  // "max_user_ids_per_id", "max_ids_per_person", "id_too_long"
};

struct resolution {
    bool resolved = true;          // false: the store failed; person is the event's own id
    std::string person;            // canonical key of the event's person
    std::vector<std::string> via;  // the event's ids that belong to that person
    std::vector<link> links;       // links made by this event, in order
    std::vector<refusal> refused;  // links this event implied but the guards refused
    void clear() {
        resolved = true;
        person.clear();
        via.clear();
        links.clear();
        refused.clear();
    }
};

struct person_info {
    std::string person;                // canonical key
    std::vector<std::string> members;  // every key of the person (just `person` when unlinked)
    std::int64_t last_seen_ms = 0;     // day resolution; 0 when the person is not stored
    bool stored = false;
};

struct graph_stats {
    std::uint64_t lookups = 0;  // id lookups
    std::uint64_t cache_hits = 0;
    std::uint64_t store_reads = 0;  // cold lookups that went to the store
    std::uint64_t links = 0;        // links made
    std::uint64_t refused_max_user_ids = 0;
    std::uint64_t refused_max_ids = 0;
    std::uint64_t refused_too_long = 0;
    std::uint64_t errors = 0;     // store failures (events attributed to their own ids)
    std::uint64_t forgotten = 0;  // persons removed by forget() or sweep()
    std::uint64_t expired = 0;    // of those, by the TTL or the size policy
    std::uint64_t cache_entries = 0;
};

// The identity graph: union-find over typed ids, persisted in a store.
//
// Each stored id has a node record naming its root; a root record also holds the person's
// size, member list, canonical id and last-seen day. Union by size keeps every node one hop
// from its root (the smaller side's members are re-pointed on merge, bounded by
// max_ids_per_person). The canonical id of a person is its best member by (user id before
// anonymous id before device id, earliest first link, then key order): deterministic, and it
// only changes when an anonymous person gains a user id or two persons with user ids merge (the
// older keeps its id). Ids that were never linked are not stored: their person is themselves.
//
// Thread model: every method is thread-safe. Lookups go through a sharded cache (no store I/O
// for hot ids); links and deletions run in store transactions, which re-read what they change
// from the store, so concurrent observers on any number of threads or nodes stay consistent.
class graph {
  public:
    graph(std::shared_ptr<store> s, graph_options o);

    // Resolves an event's ids to one person, making the links it implies (anonymousId ↔
    // userId, device id ↔ userId or anonymousId, alias previousId → userId). The person is
    // the userId's when the event has one, else the anonymousId's, else the device id's.
    void observe(const observation& ob, resolution& out);

    // Read-only, through the cache: the canonical key of the person `key` belongs to.
    result<std::string> person_key(std::string_view key);

    // Read-only, from the store: the person `key` belongs to (itself when not stored).
    result<person_info> person_of(std::string_view key);

    // Removes the person `key` belongs to from the store. Returns what was removed (just the
    // key itself when it was never linked).
    result<person_info> forget(std::string_view key);

    // Applies the retention policy: forgets persons unseen for `ttl`, then the least recently
    // seen ones while more than max_ids ids are stored. Returns the persons forgotten.
    result<std::uint64_t> sweep(std::int64_t now_ms);

    // Checks the stored graph's invariants (every member points at its root, sizes match the
    // member lists, canonical ids are members). For tests and `switchyard check`-style audits;
    // scans the whole store. Returns the first broken invariant, empty when all hold.
    std::string check_invariants();

    graph_stats stats() const;
    const graph_options& options() const noexcept { return opts_; }
    store& backing_store() noexcept { return *store_; }

  private:
    struct node;
    struct cached {
        bool valid = false;          // false: an invalidated slot
        bool exists = false;         // the id is stored
        std::string root;            // key of its root (the key itself for a root)
        std::string person;          // canonical key
        std::uint32_t size = 1;      // ids of the person
        std::uint32_t user_ids = 0;  // user ids of the person
        std::uint32_t last_seen_day = 0;
        std::int64_t loaded_ms = 0;
    };
    struct shard {
        std::mutex mu;
        enrich::s3fifo_cache<cached> cache;
        explicit shard(std::size_t cap) : cache(cap) {}
    };

    result<cached> lookup(const std::string& key, std::int64_t now_ms);
    result<cached> load(const std::string& key, std::int64_t now_ms);
    void invalidate(const std::vector<std::string>& keys);
    shard& shard_of(std::string_view key);
    struct pending_link {
        std::string x, y;
        bool alias = false;  // alias links are explicit merges: the user-id guard does not apply
    };
    std::error_code link_all(const std::vector<pending_link>& pairs, std::int64_t now_ms,
                             resolution& out);
    void touch(const std::string& root, std::uint32_t day);
    bool guard_refuses(std::uint32_t users_x, std::uint32_t users_y) const;

    std::shared_ptr<store> store_;
    graph_options opts_;
    static constexpr std::size_t shard_count = 64;
    std::vector<std::unique_ptr<shard>> shards_;
    std::atomic<std::uint64_t> epoch_{0};

    mutable std::atomic<std::uint64_t> lookups_{0}, hits_{0}, reads_{0}, links_{0},
        refused_users_{0}, refused_ids_{0}, refused_long_{0}, errors_{0}, forgotten_{0},
        expired_{0};
};

}  // namespace switchyard::identity
