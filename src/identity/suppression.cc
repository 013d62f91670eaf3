#include "identity/suppression.h"

#include "identity/codec.h"

namespace switchyard::identity {

// Stored as "s" + key → u8 version (1) | i64 at_ms | str by | str reason | str person, plus
// "m:suppression_version" (a decimal counter) that every change bumps in the same transaction,
// so other nodes notice a change by reading one key.

namespace {

constexpr std::string_view entry_prefix = "s";
constexpr std::string_view version_key = "m:suppression_version";

std::string encode(const suppression_list::entry& e) {
    std::string o;
    o.push_back(1);
    codec::put_i64(o, e.at_ms);
    codec::put_str(o, e.by);
    codec::put_str(o, e.reason);
    codec::put_str(o, e.person);
    return o;
}

bool decode(std::string_view key, std::string_view v, suppression_list::entry& e) {
    if (v.empty() || v[0] != 1) return false;
    codec::reader r{v.substr(1)};
    e.key.assign(key);
    e.at_ms = r.i64();
    e.by = r.str();
    e.reason = r.str();
    e.person = r.str();
    return r.ok;
}

}  // namespace

suppression_list::suppression_list(std::shared_ptr<store> s) : store_(std::move(s)) {
    snapshot_.store(std::make_shared<const set_t>());
}

bool suppression_list::contains(std::string_view key) const {
    auto snap = snapshot_.load(std::memory_order_acquire);
    return snap->find(key) != snap->end();
}

void suppression_list::publish() {
    auto s = std::make_shared<set_t>();
    s->reserve(entries_.size());
    for (const auto& [k, e] : entries_) s->insert(k);
    count_.store(s->size(), std::memory_order_release);
    snapshot_.store(std::move(s), std::memory_order_release);
}

std::error_code suppression_list::load() {
    auto ver = store_->get(version_key);
    if (!ver) return ver.error();
    std::map<std::string, entry, std::less<>> fresh;
    auto ec = store_->scan(entry_prefix, [&](std::string_view k, std::string_view v) {
        entry e;
        if (decode(k.substr(entry_prefix.size()), v, e)) fresh.emplace(e.key, std::move(e));
        return true;
    });
    if (ec) return ec;
    std::lock_guard g(mu_);
    entries_ = std::move(fresh);
    version_ = ver->value_or("");
    publish();
    return {};
}

std::error_code suppression_list::refresh() {
    auto ver = store_->get(version_key);
    if (!ver) return ver.error();
    {
        std::lock_guard g(mu_);
        if (ver->value_or("") == version_) return {};
    }
    return load();
}

std::error_code suppression_list::bump_version(store::txn& tx) {
    auto v = tx.get(version_key);
    if (!v) return v.error();
    std::uint64_t n = 0;
    if (*v) n = std::strtoull((*v)->c_str(), nullptr, 10);
    tx.put(version_key, std::to_string(n + 1));
    return {};
}

std::error_code suppression_list::add(const std::vector<entry>& entries) {
    std::lock_guard g(mu_);
    std::error_code inner;
    std::string ver;
    auto ec = store_->transact([&](store::txn& tx) {
        if ((inner = bump_version(tx))) return false;
        for (const auto& e : entries) {
            std::string k(entry_prefix);
            k += e.key;
            tx.put(k, encode(e));
        }
        auto v = tx.get(version_key);
        if (v && *v) ver = **v;
        return true;
    });
    if (ec) return ec;
    if (inner) return inner;
    for (const auto& e : entries) entries_[e.key] = e;
    version_ = ver;
    publish();
    return {};
}

result<bool> suppression_list::remove(std::string_view key) {
    std::lock_guard g(mu_);
    bool found = false;
    std::error_code inner;
    std::string ver;
    std::string k(entry_prefix);
    k += key;
    auto ec = store_->transact([&](store::txn& tx) {
        found = false;
        auto cur = tx.get(k);
        if (!cur) {
            inner = cur.error();
            return false;
        }
        if (!*cur) return false;
        found = true;
        if ((inner = bump_version(tx))) return false;
        tx.del(k);
        auto v = tx.get(version_key);
        if (v && *v) ver = **v;
        return true;
    });
    if (ec) return ec;
    if (inner) return inner;
    if (!found) return false;
    entries_.erase(std::string(key));
    version_ = ver;
    publish();
    return true;
}

std::vector<suppression_list::entry> suppression_list::list() const {
    std::lock_guard g(mu_);
    std::vector<entry> out;
    out.reserve(entries_.size());
    for (const auto& [k, e] : entries_) out.push_back(e);
    return out;
}

}  // namespace switchyard::identity
