// The shared identity store: Redis, through hiredis' synchronous API.
//
// Every key is prefixed with key_prefix. Transactions are optimistic: each key a transaction
// reads is WATCHed before it is read, writes are buffered and sent in MULTI/EXEC; a nil EXEC
// (another client changed a watched key) re-runs the transaction function after a jittered
// backoff, up to 64 times.
// Connections come from a small pool; one that saw an error is dropped and the next call opens
// a new one, so the store recovers by itself when Redis comes back (an idle pooled connection
// the server closed meanwhile is noticed before use, not by failing a call). After a failed
// connect, operations fail at once for one second (no connect timeout on every event while
// Redis is unreachable). `stats().keys` is not reported (DBSIZE counts other prefixes too).
// Failures return errc::unavailable (errc::timed_out after max_attempts conflicts) and count in
// stats().errors; nothing here throws.

#include "identity/store.h"

#include <atomic>
#include <hiredis/hiredis.h>
#include <map>
#include <mutex>
#include <optional>
#include <poll.h>
#include <random>
#include <thread>
#include <vector>

namespace switchyard::identity {

namespace {

struct reply_ptr {
    redisReply* r = nullptr;
    explicit reply_ptr(void* p) : r(static_cast<redisReply*>(p)) {}
    ~reply_ptr() {
        if (r != nullptr) freeReplyObject(r);
    }
    reply_ptr(const reply_ptr&) = delete;
    reply_ptr& operator=(const reply_ptr&) = delete;
    redisReply* operator->() const { return r; }
    explicit operator bool() const { return r != nullptr; }
};

std::string glob_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    return out;
}

constexpr int max_attempts = 64;

class redis_store final : public store {
  public:
    explicit redis_store(redis_options o) : opts_(std::move(o)) {}

    ~redis_store() override {
        for (auto* c : idle_) redisFree(c);
    }

    // Opens one connection (AUTH, SELECT). Null + err on failure.
    redisContext* connect(std::string& err) {
        timeval tv{};
        tv.tv_sec = static_cast<long>(opts_.timeout.count() / 1000);
        tv.tv_usec = static_cast<long>((opts_.timeout.count() % 1000) * 1000);
        redisContext* c = opts_.unix_socket.empty()
                              ? redisConnectWithTimeout(opts_.host.c_str(), opts_.port, tv)
                              : redisConnectUnixWithTimeout(opts_.unix_socket.c_str(), tv);
        if (c == nullptr) {
            err = "cannot allocate a connection";
            return nullptr;
        }
        if (c->err) {
            err = c->errstr;
            redisFree(c);
            return nullptr;
        }
        redisSetTimeout(c, tv);
        auto check = [&](void* raw) {
            reply_ptr r(raw);
            if (!r || r->type == REDIS_REPLY_ERROR) {
                err = r ? std::string(r->str, r->len) : std::string(c->errstr);
                return false;
            }
            return true;
        };
        if (!opts_.password.empty() &&
            !check(redisCommand(c, "AUTH %b", opts_.password.data(), opts_.password.size()))) {
            redisFree(c);
            return nullptr;
        }
        if (opts_.database != 0 && !check(redisCommand(c, "SELECT %d", opts_.database))) {
            redisFree(c);
            return nullptr;
        }
        return c;
    }

    // A connection for one operation; give it back with release(). Null while Redis is
    // known to be unreachable: after a failed connect, callers fail fast for a second instead
    // of each waiting out the connect timeout on an I/O thread.
    redisContext* acquire() {
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        if (now < down_until_.load(std::memory_order_relaxed)) return nullptr;
        for (;;) {
            redisContext* c = nullptr;
            {
                std::lock_guard g(mu_);
                if (idle_.empty()) break;
                c = idle_.back();
                idle_.pop_back();
            }
            if (!closed_by_peer(c)) return c;
            redisFree(c);
        }
        std::string err;
        redisContext* c = connect(err);
        if (c == nullptr) {
            down_until_.store(now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                        std::chrono::seconds(1))
                                        .count(),
                              std::memory_order_relaxed);
        }
        return c;
    }

    // An idle connection has no reply pending, so anything readable on it means the server
    // closed it (a restart, its `timeout` setting, a proxy's idle cut). Checking costs one
    // poll() and spares the caller a failed command on a connection that was dead all along.
    static bool closed_by_peer(const redisContext* c) {
        pollfd p{c->fd, POLLIN, 0};
        return ::poll(&p, 1, 0) != 0;
    }

    void release(redisContext* c, bool broken) {
        if (c == nullptr) return;
        if (broken || c->err) {
            redisFree(c);
            return;
        }
        std::lock_guard g(mu_);
        if (idle_.size() < opts_.pool_size) {
            idle_.push_back(c);
        } else {
            redisFree(c);
        }
    }

    // One connection for one operation. It goes back to the pool only when the operation
    // says it is in a known state (keep()); on every other way out, an exception thrown by a
    // transaction function included, it is freed, so a WATCH or a half-read reply never
    // leaks into the next operation.
    class lease {
      public:
        explicit lease(redis_store& s) : s_(s), c_(s.acquire()) {}
        ~lease() { s_.release(c_, !keep_); }
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        explicit operator bool() const { return c_ != nullptr; }
        redisContext* get() const { return c_; }
        void keep() { keep_ = true; }

      private:
        redis_store& s_;
        redisContext* c_;
        bool keep_ = false;
    };

    std::string key(std::string_view k) const {
        std::string s = opts_.key_prefix;
        s += k;
        return s;
    }

    std::error_code fail() {
        errors_.fetch_add(1, std::memory_order_relaxed);
        return make_error_code(errc::unavailable);
    }

    class rtxn final : public txn {
      public:
        rtxn(redis_store& s, redisContext* c) : s_(s), c_(c) {}
        result<std::optional<std::string>> get(std::string_view k) override {
            if (auto it = writes_.find(std::string(k)); it != writes_.end()) return it->second;
            if (broken_) return make_error_code(errc::unavailable);
            const std::string full = s_.key(k);
            // WATCH before GET, pipelined: one round trip, and the server still runs them in
            // order, so the value read is covered by the watch.
            watched_ = true;
            if (redisAppendCommand(c_, "WATCH %b", full.data(), full.size()) != REDIS_OK ||
                redisAppendCommand(c_, "GET %b", full.data(), full.size()) != REDIS_OK) {
                return broken();
            }
            void* raw = nullptr;
            if (redisGetReply(c_, &raw) != REDIS_OK) return broken();
            reply_ptr w(raw);
            raw = nullptr;
            if (redisGetReply(c_, &raw) != REDIS_OK) return broken();
            reply_ptr r(raw);
            if (w->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_ERROR) return broken();
            if (r->type != REDIS_REPLY_STRING) return std::optional<std::string>{};
            return std::optional<std::string>(std::string(r->str, r->len));
        }
        void put(std::string_view k, std::string_view v) override {
            writes_[std::string(k)] = std::string(v);
        }
        void del(std::string_view k) override { writes_[std::string(k)] = std::nullopt; }

        std::error_code broken() {
            broken_ = true;
            return make_error_code(errc::unavailable);
        }
        bool is_broken() const { return broken_; }
        bool watched() const { return watched_; }
        std::map<std::string, std::optional<std::string>>& writes() { return writes_; }

      private:
        redis_store& s_;
        redisContext* c_;
        std::map<std::string, std::optional<std::string>> writes_;
        bool broken_ = false;
        bool watched_ = false;
    };

    std::error_code transact(const std::function<bool(txn&)>& fn) override {
        lease l(*this);
        if (!l) return fail();
        redisContext* c = l.get();
        for (int attempt = 0; attempt < max_attempts; ++attempt) {
            rtxn t(*this, c);
            const bool commit = fn(t);
            if (t.is_broken()) return fail();  // the lease frees the connection
            if (!commit || t.writes().empty()) {
                if (t.watched()) {
                    reply_ptr u(redisCommand(c, "UNWATCH"));
                    if (!u || u->type == REDIS_REPLY_ERROR) return {};  // nothing was written
                }
                l.keep();
                return {};
            }
            // Pipelined: MULTI, the writes, EXEC.
            std::size_t sent = 0;
            bool broken = redisAppendCommand(c, "MULTI") != REDIS_OK;
            ++sent;
            for (const auto& [k, v] : t.writes()) {
                const std::string full = key(k);
                const int rc = v ? redisAppendCommand(c, "SET %b %b", full.data(), full.size(),
                                                      v->data(), v->size())
                                 : redisAppendCommand(c, "DEL %b", full.data(), full.size());
                broken = broken || rc != REDIS_OK;
                ++sent;
            }
            broken = broken || redisAppendCommand(c, "EXEC") != REDIS_OK;
            ++sent;
            if (broken) return fail();
            bool conflict = false;
            for (std::size_t i = 0; i < sent && !broken; ++i) {
                void* raw = nullptr;
                if (redisGetReply(c, &raw) != REDIS_OK) {
                    broken = true;
                    break;
                }
                reply_ptr r(raw);
                if (r->type == REDIS_REPLY_ERROR) broken = true;
                if (i + 1 == sent && r->type == REDIS_REPLY_NIL) conflict = true;
                if (i + 1 == sent && r->type == REDIS_REPLY_ARRAY) {
                    for (std::size_t j = 0; j < r->elements; ++j) {
                        if (r->element[j]->type == REDIS_REPLY_ERROR) broken = true;
                    }
                }
            }
            if (broken) return fail();
            if (!conflict) {
                l.keep();
                return {};
            }
            // EXEC cleared the watches; the next attempt watches what it reads afresh.
            conflicts_.fetch_add(1, std::memory_order_relaxed);
            // Jittered backoff so contending writers stop colliding in lockstep.
            thread_local std::minstd_rand rng(std::random_device{}());
            const int cap_us = std::min(5000, 50 << std::min(attempt, 7));
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % cap_us));
        }
        l.keep();
        errors_.fetch_add(1, std::memory_order_relaxed);
        return make_error_code(errc::timed_out);
    }

    result<std::optional<std::string>> get(std::string_view k) override {
        lease l(*this);
        if (!l) return fail();
        const std::string full = key(k);
        reply_ptr r(redisCommand(l.get(), "GET %b", full.data(), full.size()));
        if (!r) return fail();
        l.keep();  // an error reply (LOADING, WRONGTYPE) leaves the connection usable
        if (r->type == REDIS_REPLY_ERROR) return fail();
        std::optional<std::string> out;
        if (r->type == REDIS_REPLY_STRING) out.emplace(r->str, r->len);
        return out;
    }

    std::error_code scan(
        std::string_view prefix,
        const std::function<bool(std::string_view, std::string_view)>& fn) override {
        lease l(*this);
        if (!l) return fail();
        redisContext* c = l.get();
        const std::string pattern = glob_escape(key(prefix)) + "*";
        const std::size_t strip = opts_.key_prefix.size();
        std::string cursor = "0";
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        do {
            reply_ptr r(redisCommand(c, "SCAN %s MATCH %b COUNT 1000", cursor.c_str(),
                                     pattern.data(), pattern.size()));
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                r->element[0]->type != REDIS_REPLY_STRING ||
                r->element[1]->type != REDIS_REPLY_ARRAY) {
                return fail();
            }
            cursor.assign(r->element[0]->str, r->element[0]->len);
            const redisReply* keys = r->element[1];
            if (keys->elements == 0) continue;
            // One MGET per SCAN batch rather than a GET per key.
            argv.assign(1, "MGET");
            lens.assign(1, 4);
            for (std::size_t i = 0; i < keys->elements; ++i) {
                argv.push_back(keys->element[i]->str);
                lens.push_back(keys->element[i]->len);
            }
            reply_ptr v(
                redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
            if (!v || v->type != REDIS_REPLY_ARRAY || v->elements != keys->elements) {
                return fail();
            }
            for (std::size_t i = 0; i < keys->elements; ++i) {
                const redisReply* val = v->element[i];
                if (val->type != REDIS_REPLY_STRING) continue;  // deleted since the SCAN
                std::string_view full(keys->element[i]->str, keys->element[i]->len);
                if (full.size() < strip) continue;  // MATCH guarantees the prefix; be safe
                if (!fn(full.substr(strip), std::string_view(val->str, val->len))) {
                    l.keep();
                    return {};
                }
            }
        } while (cursor != "0");
        l.keep();
        return {};
    }

    stats_t stats() const override {
        stats_t s;
        s.conflicts = conflicts_.load(std::memory_order_relaxed);
        s.errors = errors_.load(std::memory_order_relaxed);
        return s;
    }

    std::string describe() const override {
        if (!opts_.unix_socket.empty()) {
            return "redis+unix://" + opts_.unix_socket + "/" + std::to_string(opts_.database);
        }
        return "redis://" + opts_.host + ":" + std::to_string(opts_.port) + "/" +
               std::to_string(opts_.database);
    }

  private:
    redis_options opts_;
    std::mutex mu_;
    std::vector<redisContext*> idle_;
    std::atomic<std::uint64_t> conflicts_{0}, errors_{0};
    std::atomic<std::int64_t> down_until_{0};  // steady_clock ticks
};

}  // namespace

std::unique_ptr<store> open_redis(const redis_options& o, std::string& err) {
    auto s = std::make_unique<redis_store>(o);
    std::string why;
    redisContext* c = s->connect(why);
    if (c == nullptr) {
        err = "identity store " + s->describe() + ": cannot connect: " + why;
        return nullptr;
    }
    s->release(c, false);
    return s;
}

}  // namespace switchyard::identity
