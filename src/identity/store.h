#pragma once

#include "switchyard/result.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace switchyard::identity {

// Where the identity graph and the suppression list live: a key-value store of opaque byte
// strings with atomic read-modify-write transactions. Two backends: LMDB (embedded, one node)
// and Redis (shared by several collector nodes). The graph (graph.h) owns the key layout; a
// store knows nothing about identities.
//
// Thread model: every method may be called from any thread concurrently.
class store {
  public:
    virtual ~store() = default;

    // The view a transaction function gets. Reads see the store as of the transaction plus the
    // transaction's own writes.
    class txn {
      public:
        virtual ~txn() = default;
        // nullopt when the key is absent. An error aborts the transaction (transact returns it).
        virtual result<std::optional<std::string>> get(std::string_view key) = 0;
        virtual void put(std::string_view key, std::string_view value) = 0;
        virtual void del(std::string_view key) = 0;
    };

    // Runs `fn` in a read-write transaction: all of its writes land atomically, or none. `fn`
    // returns false to abort without writing (transact then returns success). `fn` may run
    // more than once: an optimistic backend (Redis) re-runs it when a key it read was changed
    // concurrently, so `fn` must not have effects outside the transaction. Gives up with
    // errc::timed_out after a bounded number of conflicting attempts.
    virtual std::error_code transact(const std::function<bool(txn&)>& fn) = 0;

    // A single read outside any transaction.
    virtual result<std::optional<std::string>> get(std::string_view key) = 0;

    // Visits every key that starts with `prefix` (in key order for LMDB; in no order, and
    // possibly seeing concurrent writes, for Redis). `fn` returns false to stop early.
    virtual std::error_code scan(
        std::string_view prefix,
        const std::function<bool(std::string_view key, std::string_view value)>& fn) = 0;

    struct stats_t {
        std::uint64_t keys = 0;        // entries stored
        std::uint64_t bytes_used = 0;  // LMDB: pages in use × page size; Redis: 0 (unknown)
        std::uint64_t capacity = 0;    // LMDB: the map size; Redis: 0
        std::uint64_t conflicts = 0;   // transactions re-run after a concurrent change
        std::uint64_t errors = 0;      // operations that failed (I/O, connection, full)
    };
    virtual stats_t stats() const = 0;

    // "lmdb:/path" or "redis://host:port/db" for logs.
    virtual std::string describe() const = 0;
};

struct lmdb_options {
    std::filesystem::path dir;             // created if missing; holds data.mdb and lock.mdb
    std::uint64_t max_bytes = 1ull << 30;  // LMDB map size: the file never grows beyond it
    bool sync = true;                      // fsync each commit (false: the OS flushes)
};

// Opens (creating if needed) an LMDB environment. On failure returns nullptr and sets `err`
// to a sentence naming the path and the reason.
std::unique_ptr<store> open_lmdb(const lmdb_options& o, std::string& err);

struct redis_options {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string unix_socket;                          // used instead of host/port when set
    std::string password;                             // AUTH when set
    int database = 0;                                 // SELECT
    std::string key_prefix = "switchyard:identity:";  // prepended to every key
    std::chrono::milliseconds timeout{500};           // connect and per-command timeout
    std::size_t pool_size = 8;                        // connections kept open
};

// Connects to Redis (one connection up front, to fail early with a clear reason; the pool
// grows on demand up to pool_size and reconnects after errors). On failure returns nullptr and
// sets `err`.
std::unique_ptr<store> open_redis(const redis_options& o, std::string& err);

}  // namespace switchyard::identity
