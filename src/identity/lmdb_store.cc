// The embedded identity store: one LMDB environment (data.mdb + lock.mdb in a directory).
//
// LMDB gives ACID transactions with one writer at a time and lock-free readers over a
// memory-mapped B+tree, so a cold lookup is a page-cache read and a commit is one fsync (or
// none with sync=false: MDB_NOSYNC, where a process crash loses nothing and an OS crash may lose
// the most recent commits). The map size caps the file; a full map fails the write (counted)
// and leaves the store readable.
//
// Keys longer than LMDB's limit (511 bytes) are shortened deterministically: the first 400
// bytes, '#', and 16 hex digits of a 64-bit FNV-1a hash of the whole key. scan() returns the
// stored (shortened) key. The graph never stores ids that long (identity.max_id_length).

#include "identity/store.h"

#include <atomic>
#include <cstdio>
#include <lmdb.h>
#include <optional>

namespace switchyard::identity {

namespace {

constexpr std::size_t kept_prefix = 400;

std::string stored_key(std::string_view key, std::size_t max_key) {
    if (key.size() <= max_key) return std::string(key);
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : key) {
        h ^= c;
        h *= 1099511628211ull;
    }
    char tail[18];
    std::snprintf(tail, sizeof tail, "#%016llx", static_cast<unsigned long long>(h));
    std::string k(key.substr(0, kept_prefix));
    k += tail;
    return k;
}

MDB_val val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

std::error_code mdb_error(int rc) {
    if (rc == MDB_MAP_FULL) return std::make_error_code(std::errc::no_space_on_device);
    if (rc > 0) return {rc, std::generic_category()};  // an errno
    return make_error_code(errc::io_error);
}

class lmdb_store final : public store {
  public:
    lmdb_store(MDB_env* env, MDB_dbi dbi, lmdb_options o)
        : env_(env),
          dbi_(dbi),
          opts_(std::move(o)),
          max_key_(static_cast<std::size_t>(mdb_env_get_maxkeysize(env))) {}

    ~lmdb_store() override { mdb_env_close(env_); }

    class wtxn final : public txn {
      public:
        wtxn(MDB_txn* t, MDB_dbi dbi, std::size_t max_key) : t_(t), dbi_(dbi), max_key_(max_key) {}
        result<std::optional<std::string>> get(std::string_view key) override {
            const std::string k = stored_key(key, max_key_);
            MDB_val kv = val(k), v;
            const int rc = mdb_get(t_, dbi_, &kv, &v);
            if (rc == MDB_NOTFOUND) return std::optional<std::string>{};
            if (rc != 0) {
                if (rc_ == 0) rc_ = rc;
                return mdb_error(rc);
            }
            return std::optional<std::string>(
                std::string(static_cast<const char*>(v.mv_data), v.mv_size));
        }
        void put(std::string_view key, std::string_view value) override {
            if (rc_ != 0) return;
            const std::string k = stored_key(key, max_key_);
            MDB_val kv = val(k), v = val(value);
            rc_ = mdb_put(t_, dbi_, &kv, &v, 0);
        }
        void del(std::string_view key) override {
            if (rc_ != 0) return;
            const std::string k = stored_key(key, max_key_);
            MDB_val kv = val(k);
            const int rc = mdb_del(t_, dbi_, &kv, nullptr);
            if (rc != MDB_NOTFOUND) rc_ = rc;
        }
        int rc() const { return rc_; }

      private:
        MDB_txn* t_;
        MDB_dbi dbi_;
        std::size_t max_key_;
        int rc_ = 0;
    };

    std::error_code transact(const std::function<bool(txn&)>& fn) override {
        MDB_txn* t = nullptr;
        int rc = mdb_txn_begin(env_, nullptr, 0, &t);
        if (rc != 0) return fail(rc);
        wtxn w(t, dbi_, max_key_);
        bool commit = false;
        try {
            commit = fn(w);
        } catch (...) {
            // An open write transaction holds LMDB's writer lock: leaking it would block every
            // later transaction in this process forever.
            mdb_txn_abort(t);
            throw;
        }
        if (w.rc() != 0) {  // a read or write failed: nothing lands, whatever fn decided
            mdb_txn_abort(t);
            return fail(w.rc());
        }
        if (!commit) {
            mdb_txn_abort(t);
            return {};
        }
        rc = mdb_txn_commit(t);  // frees the transaction either way
        if (rc != 0) return fail(rc);
        return {};
    }

    result<std::optional<std::string>> get(std::string_view key) override {
        MDB_txn* t = nullptr;
        int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &t);
        if (rc != 0) return fail(rc);
        const std::string k = stored_key(key, max_key_);
        MDB_val kv = val(k), v;
        rc = mdb_get(t, dbi_, &kv, &v);
        result<std::optional<std::string>> out = std::optional<std::string>{};
        if (rc == 0) {
            out = std::optional<std::string>(
                std::string(static_cast<const char*>(v.mv_data), v.mv_size));
        } else if (rc != MDB_NOTFOUND) {
            out = fail(rc);
        }
        mdb_txn_abort(t);
        return out;
    }

    std::error_code scan(
        std::string_view prefix,
        const std::function<bool(std::string_view, std::string_view)>& fn) override {
        MDB_txn* t = nullptr;
        int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &t);
        if (rc != 0) return fail(rc);
        MDB_cursor* c = nullptr;
        rc = mdb_cursor_open(t, dbi_, &c);
        if (rc != 0) {
            mdb_txn_abort(t);
            return fail(rc);
        }
        MDB_val k = val(prefix), v;
        rc = mdb_cursor_get(c, &k, &v, prefix.empty() ? MDB_FIRST : MDB_SET_RANGE);
        while (rc == 0) {
            std::string_view key(static_cast<const char*>(k.mv_data), k.mv_size);
            if (key.substr(0, prefix.size()) != prefix) break;
            if (!fn(key, std::string_view(static_cast<const char*>(v.mv_data), v.mv_size))) break;
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
        mdb_txn_abort(t);
        if (rc != 0 && rc != MDB_NOTFOUND) return fail(rc);
        return {};
    }

    stats_t stats() const override {
        stats_t s;
        MDB_stat st;
        if (mdb_env_stat(env_, &st) == 0) {
            s.keys = st.ms_entries;
            // Pages of the B-tree itself (the file's high-water mark also counts free pages).
            s.bytes_used = (static_cast<std::uint64_t>(st.ms_branch_pages) + st.ms_leaf_pages +
                            st.ms_overflow_pages) *
                           st.ms_psize;
        }
        MDB_envinfo info;
        if (mdb_env_info(env_, &info) == 0) s.capacity = info.me_mapsize;
        s.errors = errors_.load(std::memory_order_relaxed);
        return s;
    }

    std::string describe() const override { return "lmdb:" + opts_.dir.string(); }

  private:
    std::error_code fail(int rc) {
        errors_.fetch_add(1, std::memory_order_relaxed);
        return mdb_error(rc);
    }

    MDB_env* env_;
    MDB_dbi dbi_;
    lmdb_options opts_;
    std::size_t max_key_;
    std::atomic<std::uint64_t> errors_{0};
};

}  // namespace

std::unique_ptr<store> open_lmdb(const lmdb_options& o, std::string& err) {
    auto fail = [&](int rc, MDB_env* env) -> std::unique_ptr<store> {
        err = "identity store " + o.dir.string() + ": " + mdb_strerror(rc);
        if (env != nullptr) mdb_env_close(env);
        return nullptr;
    };
    std::error_code ec;
    std::filesystem::create_directories(o.dir, ec);
    if (ec) {
        err = "identity store " + o.dir.string() + ": cannot create the directory: " + ec.message();
        return nullptr;
    }
    MDB_env* env = nullptr;
    int rc = mdb_env_create(&env);
    if (rc != 0) return fail(rc, nullptr);
    if ((rc = mdb_env_set_mapsize(env, static_cast<std::size_t>(o.max_bytes))) != 0) {
        return fail(rc, env);
    }
    unsigned flags = MDB_NOTLS;
    if (!o.sync) flags |= MDB_NOSYNC;
    if ((rc = mdb_env_open(env, o.dir.c_str(), flags, 0640)) != 0) return fail(rc, env);
    MDB_txn* t = nullptr;
    if ((rc = mdb_txn_begin(env, nullptr, 0, &t)) != 0) return fail(rc, env);
    MDB_dbi dbi;
    if ((rc = mdb_dbi_open(t, nullptr, 0, &dbi)) != 0) {
        mdb_txn_abort(t);
        return fail(rc, env);
    }
    if ((rc = mdb_txn_commit(t)) != 0) return fail(rc, env);
    return std::make_unique<lmdb_store>(env, dbi, o);
}

}  // namespace switchyard::identity
