#include "identity/graph.h"

#include "identity/codec.h"
#include "util/json.h"
#include "util/time.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

namespace switchyard::identity {

// Stored layout. Every id the graph links has a node record under "n" + key ("nu:alice").
// A node record is (all integers little-endian, strings as u32 length + bytes):
//   u8 version (1) | str root (empty: this node is a root) | i64 first_seen_ms
// and a root's record goes on with
//   u32 size | str canonical | i64 canonical_first_seen_ms | u32 last_seen_day | u32 user ids |
//   list members
// `members` are the keys of every node of the person, the root included.

namespace {

using namespace codec;

constexpr std::string_view node_prefix = "n";
constexpr std::int64_t day_ms = 86'400'000;

std::uint32_t day_of(std::int64_t ms) { return static_cast<std::uint32_t>(ms / day_ms); }

int type_rank(std::string_view key) {
    switch (key_type(key)) {
        case id_type::user:
            return 0;
        case id_type::anonymous:
            return 1;
        default:
            return 2;
    }
}

// True when (key a, first seen fa) makes a better canonical id than (b, fb).
bool better(std::string_view a, std::int64_t fa, std::string_view b, std::int64_t fb) {
    const int ra = type_rank(a), rb = type_rank(b);
    if (ra != rb) return ra < rb;
    if (fa != fb) return fa < fb;
    return a < b;
}

std::uint32_t user_count(const std::vector<std::string>& members) {
    std::uint32_t n = 0;
    for (const auto& m : members) n += key_type(m) == id_type::user ? 1 : 0;
    return n;
}

std::string store_key(std::string_view key) {
    std::string k(node_prefix);
    k += key;
    return k;
}

}  // namespace

struct graph::node {
    std::string root;  // empty: a root
    std::int64_t first_seen_ms = 0;
    // Root only:
    std::uint32_t size = 1;
    std::string canonical;
    std::int64_t canonical_first_seen_ms = 0;
    std::uint32_t last_seen_day = 0;
    std::uint32_t user_ids = 0;  // as stored (encode() recounts from members)
    std::vector<std::string> members;

    bool is_root() const { return root.empty(); }

    std::string encode() const {
        std::string o;
        o.push_back(1);
        put_str(o, root);
        put_i64(o, first_seen_ms);
        if (is_root()) {
            put_u32(o, size);
            put_str(o, canonical);
            put_i64(o, canonical_first_seen_ms);
            put_u32(o, last_seen_day);
            put_u32(o, user_count(members));
            put_list(o, members);
        }
        return o;
    }

    // `with_members` false skips the member list (a cold lookup needs only the header).
    static bool decode(std::string_view in, node& n, bool with_members = true) {
        if (in.empty() || in[0] != 1) return false;
        reader r{in.substr(1)};
        n.root = r.str();
        n.first_seen_ms = r.i64();
        if (n.root.empty()) {
            n.size = r.u32();
            n.canonical = r.str();
            n.canonical_first_seen_ms = r.i64();
            n.last_seen_day = r.u32();
            n.user_ids = r.u32();
            if (with_members) n.members = r.list();
        }
        return r.ok;
    }

    static node fresh(std::string_view key, std::int64_t now_ms) {
        node n;
        n.first_seen_ms = now_ms;
        n.canonical.assign(key);
        n.canonical_first_seen_ms = now_ms;
        n.last_seen_day = day_of(now_ms);
        n.members.emplace_back(key);
        return n;
    }
};

std::string_view to_string(id_type t) noexcept {
    switch (t) {
        case id_type::user:
            return "userId";
        case id_type::anonymous:
            return "anonymousId";
        case id_type::device:
            return "deviceId";
    }
    return "unknown";
}

std::optional<id_type> id_type_from_string(std::string_view s) noexcept {
    if (s == "userId" || s == "user_id") return id_type::user;
    if (s == "anonymousId" || s == "anonymous_id") return id_type::anonymous;
    if (s == "deviceId" || s == "device_id") return id_type::device;
    return std::nullopt;
}

std::string make_key(id_type t, std::string_view id) {
    std::string k;
    k.reserve(id.size() + 2);
    k.push_back(static_cast<char>(t));
    k.push_back(':');
    k += id;
    return k;
}

id_type key_type(std::string_view key) noexcept {
    return key.empty() ? id_type::device : static_cast<id_type>(key[0]);
}

std::string_view key_id(std::string_view key) noexcept {
    return key.size() < 2 ? std::string_view{} : key.substr(2);
}

void append_key_json(std::string& j, std::string_view key) {
    j += "{\"type\":";
    util::append_json_string(j, to_string(key_type(key)));
    j += ",\"id\":";
    util::append_json_string(j, key_id(key));
    j += '}';
}

void append_keys_json(std::string& j, const std::vector<std::string>& keys) {
    j += '[';
    for (std::size_t i = 0; i < keys.size(); ++i) {
        if (i) j += ',';
        append_key_json(j, keys[i]);
    }
    j += ']';
}

graph::graph(std::shared_ptr<store> s, graph_options o) : store_(std::move(s)), opts_(o) {
    const std::size_t per = std::max<std::size_t>(1, opts_.cache_size / shard_count);
    shards_.reserve(shard_count);
    for (std::size_t i = 0; i < shard_count; ++i) {
        shards_.push_back(std::make_unique<shard>(opts_.cache_size == 0 ? 0 : per));
    }
}

graph::shard& graph::shard_of(std::string_view key) {
    return *shards_[std::hash<std::string_view>{}(key) % shard_count];
}

result<graph::cached> graph::load(const std::string& key, std::int64_t now_ms) {
    reads_.fetch_add(1, std::memory_order_relaxed);
    cached c;
    c.valid = true;
    c.loaded_ms = now_ms;
    auto v = store_->get(store_key(key));
    if (!v) return v.error();
    if (!*v) {
        c.root = key;
        c.person = key;
        return c;
    }
    node n;
    if (!node::decode(**v, n, false)) return make_error_code(errc::corrupt_record);
    c.exists = true;
    if (n.is_root()) {
        c.root = key;
        c.person = std::move(n.canonical);
        c.size = n.size;
        c.user_ids = n.user_ids;
        c.last_seen_day = n.last_seen_day;
        return c;
    }
    c.root = std::move(n.root);
    auto rv = store_->get(store_key(c.root));
    if (!rv) return rv.error();
    node r;
    if (!*rv || !node::decode(**rv, r, false) || !r.is_root()) {
        // A concurrent merge moved it; the caller's next lookup reads it again.
        c.person = c.root;
        c.valid = false;
        return c;
    }
    c.person = std::move(r.canonical);
    c.size = r.size;
    c.user_ids = r.user_ids;
    c.last_seen_day = r.last_seen_day;
    return c;
}

result<graph::cached> graph::lookup(const std::string& key, std::int64_t now_ms) {
    lookups_.fetch_add(1, std::memory_order_relaxed);
    shard& sh = shard_of(key);
    const std::uint64_t e0 = epoch_.load(std::memory_order_acquire);
    {
        std::lock_guard g(sh.mu);
        if (const cached* c = sh.cache.find(key); c != nullptr && c->valid) {
            if (opts_.cache_ttl.count() == 0 || now_ms - c->loaded_ms < opts_.cache_ttl.count()) {
                hits_.fetch_add(1, std::memory_order_relaxed);
                return *c;
            }
        }
    }
    auto c = load(key, now_ms);
    if (!c || !c->valid) {
        if (c) c->valid = true;  // usable for this event, not cached
        return c;
    }
    std::lock_guard g(sh.mu);
    // Only when no link or deletion committed since the read began (it may have changed it).
    if (epoch_.load(std::memory_order_acquire) == e0) sh.cache.insert(key, *c);
    return c;
}

void graph::invalidate(const std::vector<std::string>& keys) {
    // Bumped before the slots are cleared: a lookup that read the store before the commit
    // either sees the new epoch (and does not cache) or caches before the slot is cleared here.
    epoch_.fetch_add(1, std::memory_order_acq_rel);
    for (const auto& k : keys) {
        shard& sh = shard_of(k);
        std::lock_guard g(sh.mu);
        if (sh.cache.find(k) != nullptr) sh.cache.insert(k, cached{});
    }
}

bool graph::guard_refuses(std::uint32_t users_x, std::uint32_t users_y) const {
    // Both persons already hold user ids and together they would hold more than
    // max_user_ids_per_id. (A person without user ids may join any person.)
    return users_x >= 1 && users_y >= 1 && users_x + users_y > opts_.max_user_ids_per_id;
}

std::error_code graph::link_all(const std::vector<pending_link>& pairs, std::int64_t now_ms,
                                resolution& out) {
    std::vector<link> made;
    std::vector<refusal> refused;
    std::vector<std::string> touched;
    const std::uint32_t today = day_of(now_ms);
    auto ec = store_->transact([&](store::txn& tx) -> bool {
        made.clear();
        refused.clear();
        touched.clear();
        std::map<std::string, node> nodes;  // read or created in this transaction
        std::set<std::string> absent, dirty;
        std::error_code err;
        // The node of `key`, or null when not stored (and not created here).
        auto get = [&](const std::string& key) -> node* {
            if (auto it = nodes.find(key); it != nodes.end()) return &it->second;
            if (absent.count(key)) return nullptr;
            auto v = tx.get(store_key(key));
            if (!v) {
                err = v.error();
                return nullptr;
            }
            if (!*v) {
                absent.insert(key);
                return nullptr;
            }
            node n;
            if (!node::decode(**v, n)) {
                err = make_error_code(errc::corrupt_record);
                return nullptr;
            }
            return &nodes.emplace(key, std::move(n)).first->second;
        };
        for (const auto& [x, y, alias] : pairs) {
            node* nx = get(x);
            node* ny = get(y);
            if (err) return false;
            const std::string rx = nx == nullptr || nx->is_root() ? x : nx->root;
            const std::string ry = ny == nullptr || ny->is_root() ? y : ny->root;
            if (nx != nullptr && ny != nullptr && rx == ry) continue;  // already one person
            node* Rx = rx == x ? nx : get(rx);
            node* Ry = ry == y ? ny : get(ry);
            if (err) return false;
            if ((nx != nullptr && Rx == nullptr) || (ny != nullptr && Ry == nullptr)) {
                err = make_error_code(errc::corrupt_record);  // a member without its root
                return false;
            }
            if (!alias &&
                guard_refuses(Rx ? user_count(Rx->members) : (key_type(x) == id_type::user),
                              Ry ? user_count(Ry->members) : (key_type(y) == id_type::user))) {
                refused.push_back({x, y, "max_user_ids_per_id"});
                continue;
            }
            const std::uint32_t sx = Rx ? Rx->size : 1, sy = Ry ? Ry->size : 1;
            if (sx + sy > opts_.max_ids_per_person) {
                refused.push_back({x, y, "max_ids_per_person"});
                continue;
            }
            // Create what is new.
            if (nx == nullptr) {
                nx = &nodes.emplace(x, node::fresh(x, now_ms)).first->second;
                absent.erase(x);
                Rx = nx;
            }
            if (ny == nullptr) {
                ny = &nodes.emplace(y, node::fresh(y, now_ms)).first->second;
                absent.erase(y);
                Ry = ny;
            }
            dirty.insert(x);
            dirty.insert(y);
            link l;
            l.from = x;
            l.to = y;
            l.previous_from = Rx->canonical;
            l.previous_to = Ry->canonical;
            // Union by size (ties: the side with the better canonical id keeps its root).
            const bool x_wins =
                Rx->size > Ry->size ||
                (Rx->size == Ry->size && better(Rx->canonical, Rx->canonical_first_seen_ms,
                                                Ry->canonical, Ry->canonical_first_seen_ms));
            node* big = x_wins ? Rx : Ry;
            node* small = x_wins ? Ry : Rx;
            const std::string big_key = x_wins ? rx : ry;
            const std::string small_key = x_wins ? ry : rx;
            if (better(small->canonical, small->canonical_first_seen_ms, big->canonical,
                       big->canonical_first_seen_ms)) {
                big->canonical = small->canonical;
                big->canonical_first_seen_ms = small->canonical_first_seen_ms;
            }
            big->size += small->size;
            big->last_seen_day = std::max({big->last_seen_day, small->last_seen_day, today});
            auto moved = std::move(small->members);
            touched.insert(touched.end(), big->members.begin(), big->members.end());
            touched.insert(touched.end(), moved.begin(), moved.end());
            for (const auto& m : moved) {
                node* nm = m == small_key ? small : get(m);
                if (err) return false;
                if (nm == nullptr) {
                    err = make_error_code(errc::corrupt_record);
                    return false;
                }
                nm->root = big_key;
                nm->members.clear();
                nm->canonical.clear();
                dirty.insert(m);
            }
            // `small` may alias an entry re-pointed above; `big` stays valid (std::map).
            big->members.insert(big->members.end(), moved.begin(), moved.end());
            dirty.insert(big_key);
            l.person = big->canonical;
            made.push_back(std::move(l));
        }
        if (dirty.empty()) return false;
        for (const auto& k : dirty) tx.put(store_key(k), nodes.at(k).encode());
        return true;
    });
    if (ec) return ec;
    if (!touched.empty()) invalidate(touched);
    links_.fetch_add(made.size(), std::memory_order_relaxed);
    for (const auto& r : refused) {
        (r.reason == std::string_view("max_user_ids_per_id") ? refused_users_ : refused_ids_)
            .fetch_add(1, std::memory_order_relaxed);
    }
    for (auto& l : made) out.links.push_back(std::move(l));
    for (auto& r : refused) out.refused.push_back(std::move(r));
    return {};
}

void graph::observe(const observation& ob, resolution& out) {
    out.clear();
    const std::int64_t now = util::now_ms();
    std::string u, a, d;
    auto usable = [&](std::string_view id, id_type t, std::string& key) {
        if (id.empty()) return;
        key = make_key(t, id);
        if (id.size() > opts_.max_id_bytes) {
            refused_long_.fetch_add(1, std::memory_order_relaxed);
            out.refused.push_back({key, {}, "id_too_long"});
        }
    };
    usable(ob.user_id, id_type::user, u);
    usable(ob.anonymous_id, id_type::anonymous, a);
    usable(ob.device_id, id_type::device, d);
    auto linkable = [&](const std::string& k) {
        return !k.empty() && k.size() - 2 <= opts_.max_id_bytes;
    };

    // The links this event implies, checked against the cache first: most events imply only
    // links that exist already, and refusals by the guards need no transaction either.
    std::vector<pending_link> want;
    if (linkable(a) && linkable(u)) want.push_back({a, u, false});
    if (linkable(d)) {
        if (linkable(u)) {
            want.push_back({d, u, false});
        } else if (linkable(a)) {
            want.push_back({d, a, false});
        }
    }
    if (!ob.previous_id.empty() && linkable(u) && ob.previous_id.size() <= opts_.max_id_bytes) {
        // alias: previousId is a former user id when the graph knows it as one, else an
        // anonymous id.
        std::string prev_user = make_key(id_type::user, ob.previous_id);
        auto c = lookup(prev_user, now);
        if (!c) {
            errors_.fetch_add(1, std::memory_order_relaxed);
            out.resolved = false;
        } else if (c->exists) {
            // user → user: the explicit merge of two users, not limited by the user-id guard.
            if (prev_user != u) want.push_back({std::move(prev_user), u, true});
        } else {
            // An anonymous previousId links like any anonymousId (guarded: an alias must not
            // undo the shared-device protection).
            std::string prev_anon = make_key(id_type::anonymous, ob.previous_id);
            if (prev_anon != a) want.push_back({std::move(prev_anon), u, false});
        }
    }
    // An event looks the same ids up more than once (links, then its person): remember the
    // answers until a link changes them.
    // Capacity for every key the event can look up, so references into it stay valid.
    std::vector<std::pair<std::string, result<cached>>> memo;
    memo.reserve(2 * want.size() + 3);
    auto find = [&](const std::string& k) -> const result<cached>& {
        for (auto& [key, r] : memo) {
            if (key == k) return r;
        }
        memo.emplace_back(k, lookup(k, now));
        return memo.back().second;
    };
    std::vector<pending_link> todo;
    for (auto& [x, y, alias] : want) {
        const auto& cx = find(x);
        const auto& cy = find(y);
        if (!cx || !cy) {
            errors_.fetch_add(1, std::memory_order_relaxed);
            out.resolved = false;
            continue;
        }
        if (cx->exists && cy->exists && cx->root == cy->root) continue;
        const std::uint32_t ux = cx->exists ? cx->user_ids : key_type(x) == id_type::user;
        const std::uint32_t uy = cy->exists ? cy->user_ids : key_type(y) == id_type::user;
        if (!alias && guard_refuses(ux, uy)) {
            refused_users_.fetch_add(1, std::memory_order_relaxed);
            out.refused.push_back({x, y, "max_user_ids_per_id"});
            continue;
        }
        if (cx->size + cy->size > opts_.max_ids_per_person) {
            refused_ids_.fetch_add(1, std::memory_order_relaxed);
            out.refused.push_back({x, y, "max_ids_per_person"});
            continue;
        }
        todo.push_back({std::move(x), std::move(y), alias});
    }
    if (!todo.empty()) {
        if (auto ec = link_all(todo, now, out)) {
            errors_.fetch_add(1, std::memory_order_relaxed);
            out.resolved = false;
        }
        memo.clear();
    }

    const std::string& primary = !u.empty() ? u : !a.empty() ? a : d;
    if (primary.empty()) return;
    const auto& c = find(primary);
    if (!c) {
        errors_.fetch_add(1, std::memory_order_relaxed);
        out.resolved = false;
        out.person = primary;
        out.via.push_back(primary);
        return;
    }
    out.person = c->person;
    out.via.push_back(primary);
    for (const std::string* k : {&u, &a, &d}) {
        if (k->empty() || *k == primary || !c->exists) continue;
        const auto& ck = find(*k);
        if (ck && ck->exists && ck->root == c->root) out.via.push_back(*k);
    }
    if (c->exists && c->last_seen_day < day_of(now)) touch(c->root, day_of(now));
}

result<std::string> graph::person_key(std::string_view key) {
    auto c = lookup(std::string(key), util::now_ms());
    if (!c) {
        errors_.fetch_add(1, std::memory_order_relaxed);
        return c.error();
    }
    return std::move(c->person);
}

void graph::touch(const std::string& root, std::uint32_t day) {
    std::vector<std::string> members;
    auto ec = store_->transact([&](store::txn& tx) -> bool {
        members.clear();
        auto v = tx.get(store_key(root));
        if (!v || !*v) return false;
        node n;
        if (!node::decode(**v, n) || !n.is_root() || n.last_seen_day >= day) return false;
        n.last_seen_day = day;
        members = n.members;
        tx.put(store_key(root), n.encode());
        return true;
    });
    if (ec) {
        errors_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (!members.empty()) invalidate(members);
}

result<person_info> graph::person_of(std::string_view key) {
    person_info p;
    auto v = store_->get(store_key(key));
    if (!v) return v.error();
    if (!*v) {
        p.person.assign(key);
        p.members.emplace_back(key);
        return p;
    }
    node n;
    if (!node::decode(**v, n)) return make_error_code(errc::corrupt_record);
    if (!n.is_root()) {
        auto rv = store_->get(store_key(n.root));
        if (!rv) return rv.error();
        if (!*rv || !node::decode(**rv, n) || !n.is_root()) {
            return make_error_code(errc::corrupt_record);
        }
    }
    p.stored = true;
    p.person = n.canonical;
    p.members = n.members;
    p.last_seen_ms = static_cast<std::int64_t>(n.last_seen_day) * day_ms;
    return p;
}

result<person_info> graph::forget(std::string_view key) {
    person_info p;
    const std::string k(key);
    auto ec = store_->transact([&](store::txn& tx) -> bool {
        p = person_info{};
        p.person = k;
        p.members = {k};
        auto v = tx.get(store_key(k));
        if (!v || !*v) return false;
        node n;
        if (!node::decode(**v, n)) return false;
        std::string root = k;
        if (!n.is_root()) {
            root = n.root;
            auto rv = tx.get(store_key(root));
            if (!rv || !*rv || !node::decode(**rv, n) || !n.is_root()) {
                tx.del(store_key(k));  // an orphan: remove what there is
                return true;
            }
        }
        p.stored = true;
        p.person = n.canonical;
        p.members = n.members;
        p.last_seen_ms = static_cast<std::int64_t>(n.last_seen_day) * day_ms;
        for (const auto& m : n.members) tx.del(store_key(m));
        tx.del(store_key(root));
        return true;
    });
    if (ec) {
        errors_.fetch_add(1, std::memory_order_relaxed);
        return ec;
    }
    invalidate(p.members);
    if (p.stored) forgotten_.fetch_add(1, std::memory_order_relaxed);
    return p;
}

result<std::uint64_t> graph::sweep(std::int64_t now_ms) {
    struct root_info {
        std::uint32_t day;
        std::uint32_t size;
        std::string key;
    };
    std::vector<root_info> roots;
    std::uint64_t ids = 0;
    auto ec = store_->scan(node_prefix, [&](std::string_view k, std::string_view v) {
        node n;
        ++ids;
        if (node::decode(v, n) && n.is_root()) {
            roots.push_back({n.last_seen_day, n.size, std::string(k.substr(node_prefix.size()))});
        }
        return true;
    });
    if (ec) return ec;
    std::uint64_t removed = 0;
    const std::uint32_t today = day_of(now_ms);
    const auto ttl_days = static_cast<std::uint32_t>(opts_.ttl.count() / 86400);
    std::sort(roots.begin(), roots.end(), [](const root_info& x, const root_info& y) {
        return x.day != y.day ? x.day < y.day : x.key < y.key;
    });
    for (const auto& r : roots) {
        const bool old = opts_.ttl.count() > 0 && r.day + ttl_days < today;
        const bool over = ids > opts_.max_ids;
        if (!old && !over) break;  // sorted by day: nothing later is older
        auto f = forget(r.key);
        if (!f) return f.error();
        ids -= std::min<std::uint64_t>(ids, f->members.size());
        ++removed;
    }
    expired_.fetch_add(removed, std::memory_order_relaxed);
    return removed;
}

std::string graph::check_invariants() {
    std::unordered_map<std::string, node> all;
    auto ec = store_->scan(node_prefix, [&](std::string_view k, std::string_view v) {
        node n;
        if (!node::decode(v, n)) {
            all.clear();
            all.emplace("!corrupt:" + std::string(k), node{});
            return false;
        }
        all.emplace(std::string(k.substr(node_prefix.size())), std::move(n));
        return true;
    });
    if (ec) return "scan failed: " + ec.message();
    for (const auto& [k, n] : all) {
        if (k.rfind("!corrupt:", 0) == 0) return "undecodable record " + k.substr(9);
        if (!n.is_root()) {
            auto it = all.find(n.root);
            if (it == all.end()) return k + ": root " + n.root + " is missing";
            if (!it->second.is_root()) return k + ": root " + n.root + " is not a root";
            const auto& m = it->second.members;
            if (std::find(m.begin(), m.end(), k) == m.end()) {
                return k + ": not in the member list of " + n.root;
            }
            continue;
        }
        if (n.size != n.members.size()) {
            return k + ": size " + std::to_string(n.size) + " but " +
                   std::to_string(n.members.size()) + " members";
        }
        if (std::find(n.members.begin(), n.members.end(), k) == n.members.end()) {
            return k + ": a root missing from its own member list";
        }
        if (n.user_ids != user_count(n.members)) return k + ": user id count out of date";
        std::string best;
        std::int64_t best_seen = 0;
        for (const auto& m : n.members) {
            auto it = all.find(m);
            if (it == all.end()) return k + ": member " + m + " is missing";
            if (m != k && it->second.root != k) return k + ": member " + m + " points elsewhere";
            if (best.empty() || better(m, it->second.first_seen_ms, best, best_seen)) {
                best = m;
                best_seen = it->second.first_seen_ms;
            }
        }
        if (n.canonical != best) return k + ": canonical " + n.canonical + ", expected " + best;
        if (n.members.size() > opts_.max_ids_per_person) return k + ": over max_ids_per_person";
    }
    return {};
}

graph_stats graph::stats() const {
    graph_stats s;
    s.lookups = lookups_.load(std::memory_order_relaxed);
    s.cache_hits = hits_.load(std::memory_order_relaxed);
    s.store_reads = reads_.load(std::memory_order_relaxed);
    s.links = links_.load(std::memory_order_relaxed);
    s.refused_max_user_ids = refused_users_.load(std::memory_order_relaxed);
    s.refused_max_ids = refused_ids_.load(std::memory_order_relaxed);
    s.refused_too_long = refused_long_.load(std::memory_order_relaxed);
    s.errors = errors_.load(std::memory_order_relaxed);
    s.forgotten = forgotten_.load(std::memory_order_relaxed);
    s.expired = expired_.load(std::memory_order_relaxed);
    for (const auto& sh : shards_) {
        std::lock_guard g(sh->mu);
        s.cache_entries += sh->cache.size();
    }
    return s;
}

}  // namespace switchyard::identity
