#pragma once

// An in-memory identity store for graph tests: one mutex, transactions applied atomically.
// (The real backends have their own tests in store_test.cc; graph tests also run on LMDB.)

#include "identity/store.h"

#include <map>
#include <mutex>

namespace switchyard::identity::testing {

class memory_store final : public store {
  public:
    class mtxn final : public txn {
      public:
        explicit mtxn(std::map<std::string, std::string>& d) : data_(d) {}
        result<std::optional<std::string>> get(std::string_view key) override {
            if (auto it = writes_.find(std::string(key)); it != writes_.end()) return it->second;
            auto it = data_.find(std::string(key));
            if (it == data_.end()) return std::optional<std::string>{};
            return std::optional<std::string>(it->second);
        }
        void put(std::string_view key, std::string_view value) override {
            writes_[std::string(key)] = std::string(value);
        }
        void del(std::string_view key) override { writes_[std::string(key)] = std::nullopt; }
        void apply() {
            for (auto& [k, v] : writes_) {
                if (v) {
                    data_[k] = *v;
                } else {
                    data_.erase(k);
                }
            }
        }

      private:
        std::map<std::string, std::string>& data_;
        std::map<std::string, std::optional<std::string>> writes_;
    };

    std::error_code transact(const std::function<bool(txn&)>& fn) override {
        std::lock_guard g(mu_);
        if (fail) return make_error_code(errc::unavailable);
        mtxn t(data_);
        if (fn(t)) t.apply();
        return {};
    }
    result<std::optional<std::string>> get(std::string_view key) override {
        std::lock_guard g(mu_);
        if (fail) return make_error_code(errc::unavailable);
        ++reads;
        auto it = data_.find(std::string(key));
        if (it == data_.end()) return std::optional<std::string>{};
        return std::optional<std::string>(it->second);
    }
    std::error_code scan(
        std::string_view prefix,
        const std::function<bool(std::string_view, std::string_view)>& fn) override {
        std::lock_guard g(mu_);
        for (auto it = data_.lower_bound(std::string(prefix));
             it != data_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
            if (!fn(it->first, it->second)) break;
        }
        return {};
    }
    stats_t stats() const override {
        std::lock_guard g(mu_);
        stats_t s;
        s.keys = data_.size();
        return s;
    }
    std::string describe() const override { return "memory"; }

    bool fail = false;  // every operation fails while set
    std::uint64_t reads = 0;

  private:
    mutable std::mutex mu_;
    std::map<std::string, std::string> data_;
};

}  // namespace switchyard::identity::testing
