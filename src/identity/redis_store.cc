// The shared identity store: Redis, through hiredis' synchronous API.
//
// Every key is prefixed with key_prefix. Transactions are optimistic: each key a transaction
// reads is WATCHed before it is read, writes are buffered and sent in MULTI/EXEC; a nil EXEC
// (another client changed a watched key) re-runs the transaction function after a jittered
// backoff, up to 64 times.
// Connections come from a small pool; one that saw an error is dropped and the next call opens
// a new one, so the store recovers by itself when Redis comes back. After a failed connect,
// operations fail at once for one second (no connect timeout on every event while Redis is
// unreachable). `stats().keys` is not reported (DBSIZE counts other prefixes too).

#include "identity/store.h"

#include <atomic>
#include <hiredis/hiredis.h>
#include <map>
#include <mutex>
#include <optional>
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
        {
            std::lock_guard g(mu_);
            if (!idle_.empty()) {
                auto* c = idle_.back();
                idle_.pop_back();
                return c;
            }
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
            const std::string full = s_.key(k);
            reply_ptr w(redisCommand(c_, "WATCH %b", full.data(), full.size()));
            if (!w || w->type == REDIS_REPLY_ERROR) return broken();
            reply_ptr r(redisCommand(c_, "GET %b", full.data(), full.size()));
            if (!r || r->type == REDIS_REPLY_ERROR) return broken();
            if (r->type == REDIS_REPLY_NIL) return std::optional<std::string>{};
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
        std::map<std::string, std::optional<std::string>>& writes() { return writes_; }

      private:
        redis_store& s_;
        redisContext* c_;
        std::map<std::string, std::optional<std::string>> writes_;
        bool broken_ = false;
    };

    std::error_code transact(const std::function<bool(txn&)>& fn) override {
        redisContext* c = acquire();
        if (c == nullptr) return fail();
        for (int attempt = 0; attempt < max_attempts; ++attempt) {
            rtxn t(*this, c);
            const bool commit = fn(t);
            if (t.is_broken()) {
                release(c, true);
                return fail();
            }
            if (!commit || t.writes().empty()) {
                reply_ptr u(redisCommand(c, "UNWATCH"));
                release(c, !u || u->type == REDIS_REPLY_ERROR);
                return {};
            }
            // Pipelined: MULTI, the writes, EXEC.
            std::size_t sent = 0;
            redisAppendCommand(c, "MULTI");
            ++sent;
            for (const auto& [k, v] : t.writes()) {
                const std::string full = key(k);
                if (v) {
                    redisAppendCommand(c, "SET %b %b", full.data(), full.size(), v->data(),
                                       v->size());
                } else {
                    redisAppendCommand(c, "DEL %b", full.data(), full.size());
                }
                ++sent;
            }
            redisAppendCommand(c, "EXEC");
            ++sent;
            bool broken = false, conflict = false;
            for (std::size_t i = 0; i < sent; ++i) {
                void* raw = nullptr;
                if (redisGetReply(c, &raw) != REDIS_OK) {
                    broken = true;
                    break;
                }
                reply_ptr r(raw);
                if (i + 1 == sent) {
                    if (r->type == REDIS_REPLY_NIL) conflict = true;
                    if (r->type == REDIS_REPLY_ERROR) broken = true;
                } else if (r->type == REDIS_REPLY_ERROR) {
                    broken = true;
                }
            }
            if (broken) {
                release(c, true);
                return fail();
            }
            if (!conflict) {
                release(c, false);
                return {};
            }
            conflicts_.fetch_add(1, std::memory_order_relaxed);
            // Jittered backoff so contending writers stop colliding in lockstep.
            thread_local std::minstd_rand rng(std::random_device{}());
            const int cap_us = std::min(5000, 50 << std::min(attempt, 7));
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % cap_us));
        }
        release(c, false);
        errors_.fetch_add(1, std::memory_order_relaxed);
        return make_error_code(errc::timed_out);
    }

    result<std::optional<std::string>> get(std::string_view k) override {
        redisContext* c = acquire();
        if (c == nullptr) return fail();
        const std::string full = key(k);
        reply_ptr r(redisCommand(c, "GET %b", full.data(), full.size()));
        if (!r || r->type == REDIS_REPLY_ERROR) {
            release(c, true);
            return fail();
        }
        std::optional<std::string> out;
        if (r->type == REDIS_REPLY_STRING) out.emplace(r->str, r->len);
        release(c, false);
        return out;
    }

    std::error_code scan(
        std::string_view prefix,
        const std::function<bool(std::string_view, std::string_view)>& fn) override {
        redisContext* c = acquire();
        if (c == nullptr) return fail();
        const std::string pattern = glob_escape(key(prefix)) + "*";
        std::string cursor = "0";
        do {
            reply_ptr r(redisCommand(c, "SCAN %s MATCH %b COUNT 1000", cursor.c_str(),
                                     pattern.data(), pattern.size()));
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                release(c, true);
                return fail();
            }
            cursor.assign(r->element[0]->str, r->element[0]->len);
            const redisReply* keys = r->element[1];
            for (std::size_t i = 0; i < keys->elements; ++i) {
                std::string_view full(keys->element[i]->str, keys->element[i]->len);
                reply_ptr v(redisCommand(c, "GET %b", full.data(), full.size()));
                if (!v || v->type == REDIS_REPLY_ERROR) {
                    release(c, true);
                    return fail();
                }
                if (v->type != REDIS_REPLY_STRING) continue;  // deleted meanwhile
                if (!fn(full.substr(opts_.key_prefix.size()), std::string_view(v->str, v->len))) {
                    release(c, false);
                    return {};
                }
            }
        } while (cursor != "0");
        release(c, false);
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
