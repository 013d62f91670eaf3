#include "identity/graph.h"

#include "memory_store.h"
#include "support/redis_server.h"
#include "util/time.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unistd.h>

namespace switchyard::identity {
namespace {

using testing::memory_store;

struct step {
    observation ob;
    std::string person;                // expected person of the event ("u:alice")
    std::size_t links = 0;             // links this event makes
    std::vector<std::string> refused;  // reasons of the links it refuses
    step(observation o, std::string p, std::size_t l = 0, std::vector<std::string> r = {})
        : ob(o), person(std::move(p)), links(l), refused(std::move(r)) {}
};

struct graph_case {
    std::string name;
    graph_options opts;
    std::vector<step> steps;
    std::vector<std::pair<std::string, std::string>> final_persons;  // key → person at the end
};

observation ob(std::string_view u, std::string_view a, std::string_view d = {},
               std::string_view prev = {}) {
    observation o;
    o.user_id = u;
    o.anonymous_id = a;
    o.device_id = d;
    o.previous_id = prev;
    return o;
}

graph_options guard(std::size_t users) {
    graph_options o;
    o.max_user_ids_per_id = users;
    return o;
}

graph_options person_cap(std::size_t ids) {
    graph_options o;
    o.max_ids_per_person = ids;
    return o;
}

std::vector<graph_case> cases() {
    return {
        {"anonymous_only_is_its_own_person",
         {},
         {{ob("", "a1"), "a:a1"}, {ob("", "a1"), "a:a1"}},
         {{"a:a1", "a:a1"}}},
        {"login_links_anonymous_to_user",
         {},
         {{ob("", "a1"), "a:a1"}, {ob("alice", "a1"), "u:alice", 1}, {ob("", "a1"), "u:alice"}},
         {{"a:a1", "u:alice"}, {"u:alice", "u:alice"}}},
        {"identify_repeated_makes_one_link",
         {},
         {{ob("alice", "a1"), "u:alice", 1}, {ob("alice", "a1"), "u:alice", 0}},
         {{"a:a1", "u:alice"}}},
        {"two_browsers_one_user",
         {},
         {{ob("alice", "a1"), "u:alice", 1},
          {ob("alice", "a2"), "u:alice", 1},
          {ob("", "a2"), "u:alice"}},
         {{"a:a1", "u:alice"}, {"a:a2", "u:alice"}}},
        {"kiosk_guard_refuses_second_user",
         guard(1),
         {{ob("alice", "k1"), "u:alice", 1},
          {ob("bob", "k1"), "u:bob", 0, {"max_user_ids_per_id"}},
          {ob("", "k1"), "u:alice"}},
         {{"a:k1", "u:alice"}, {"u:bob", "u:bob"}}},
        {"guard_of_two_allows_second_user_and_older_user_stays_canonical",
         guard(2),
         {{ob("alice", "k1"), "u:alice", 1},
          {ob("bob", "k1"), "u:alice", 1},
          {ob("carol", "k1"), "u:carol", 0, {"max_user_ids_per_id"}}},
         {{"u:bob", "u:alice"}, {"a:k1", "u:alice"}, {"u:carol", "u:carol"}}},
        {"guard_applies_through_device_ids",
         guard(1),
         {{ob("alice", "a1", "d1"), "u:alice", 2},
          {ob("bob", "a2", "d1"), "u:bob", 1, {"max_user_ids_per_id"}}},
         {{"d:d1", "u:alice"}, {"a:a2", "u:bob"}}},
        {"guard_applies_to_anonymous_device_links_between_users",
         guard(1),
         {{ob("alice", "a1"), "u:alice", 1},
          {ob("bob", "a2"), "u:bob", 1},
          {ob("", "a1", "d1"), "u:alice", 1},
          {ob("", "a2", "d1"), "u:bob", 0, {"max_user_ids_per_id"}}},
         {{"d:d1", "u:alice"}, {"a:a2", "u:bob"}}},
        {"device_links_anonymous_then_login",
         {},
         {{ob("", "a1", "d1"), "a:a1", 1},
          {ob("", "a2", "d1"), "a:a1", 1},
          {ob("alice", "a2"), "u:alice", 1}},
         {{"d:d1", "u:alice"}, {"a:a1", "u:alice"}}},
        {"alias_of_anonymous_id",
         {},
         {{ob("", "a1"), "a:a1"}, {ob("alice", "", "", "a1"), "u:alice", 1}},
         {{"a:a1", "u:alice"}}},
        {"alias_chain_merges_users_despite_guard",
         guard(1),
         {{ob("alice", "a1"), "u:alice", 1},
          {ob("alice2", "", "", "alice"), "u:alice", 1},
          {ob("alice3", "", "", "alice2"), "u:alice", 1},
          {ob("", "a1"), "u:alice"}},
         {{"u:alice3", "u:alice"}, {"u:alice2", "u:alice"}, {"a:a1", "u:alice"}}},
        {"alias_from_an_anonymous_id_is_guarded",
         guard(1),
         {{ob("alice", "kiosk"), "u:alice", 1},
          {ob("bob", "kiosk"), "u:bob", 0, {"max_user_ids_per_id"}},
          {ob("bob", "kiosk", "", "kiosk"), "u:bob", 0, {"max_user_ids_per_id"}},
          {ob("bob", "", "", "other-kiosk"), "u:bob", 1}},
         {{"u:bob", "u:bob"}, {"a:kiosk", "u:alice"}, {"a:other-kiosk", "u:bob"}}},
        {"alias_to_itself_is_nothing",
         {},
         {{ob("alice", "a1"), "u:alice", 1}, {ob("alice", "", "", "alice"), "u:alice", 0}},
         {{"u:alice", "u:alice"}}},
        {"person_size_cap",
         person_cap(3),
         {{ob("alice", "a1"), "u:alice", 1},
          {ob("alice", "a2"), "u:alice", 1},
          {ob("alice", "a3"), "u:alice", 0, {"max_ids_per_person"}}},
         {{"a:a3", "a:a3"}, {"a:a2", "u:alice"}}},
        {"anonymous_persons_merge_then_user_becomes_canonical",
         {},
         {{ob("", "a1", "d1"), "a:a1", 1},
          {ob("", "a2", "d1"), "a:a1", 1},
          {ob("zed", "a2"), "u:zed", 1}},
         {{"a:a1", "u:zed"}, {"d:d1", "u:zed"}}},
        {"user_only_events_need_no_store",
         {},
         {{ob("alice", ""), "u:alice"}, {ob("alice", ""), "u:alice"}},
         {{"u:alice", "u:alice"}}},
    };
}

class GraphCases : public ::testing::TestWithParam<graph_case> {};

TEST_P(GraphCases, Semantics) {
    const auto& c = GetParam();
    auto store = std::make_shared<memory_store>();
    graph g(store, c.opts);
    resolution r;
    for (std::size_t i = 0; i < c.steps.size(); ++i) {
        const auto& s = c.steps[i];
        g.observe(s.ob, r);
        SCOPED_TRACE("step " + std::to_string(i));
        EXPECT_TRUE(r.resolved);
        EXPECT_EQ(r.person, s.person);
        EXPECT_EQ(r.links.size(), s.links);
        std::vector<std::string> reasons;
        for (const auto& f : r.refused) reasons.emplace_back(f.reason);
        EXPECT_EQ(reasons, s.refused);
        EXPECT_EQ(g.check_invariants(), "");
    }
    for (const auto& [key, person] : c.final_persons) {
        auto p = g.person_key(key);
        ASSERT_TRUE(p) << key;
        EXPECT_EQ(*p, person) << key;
        auto info = g.person_of(key);
        ASSERT_TRUE(info);
        EXPECT_EQ(info->person, person) << key;
    }
    if (c.name == "user_only_events_need_no_store") {
        EXPECT_EQ(store->stats().keys, 0u);
    }
}

INSTANTIATE_TEST_SUITE_P(Table, GraphCases, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

TEST(Graph, ResolutionNamesViaAndLinkDetails) {
    auto store = std::make_shared<memory_store>();
    graph g(store, {});
    resolution r;
    g.observe(ob("", "a1", "d1"), r);
    g.observe(ob("alice", "a1"), r);
    ASSERT_EQ(r.links.size(), 1u);
    EXPECT_EQ(r.links[0].from, "a:a1");
    EXPECT_EQ(r.links[0].to, "u:alice");
    EXPECT_EQ(r.links[0].person, "u:alice");
    EXPECT_EQ(r.links[0].previous_from, "a:a1");
    EXPECT_EQ(r.links[0].previous_to, "u:alice");
    g.observe(ob("", "a1", "d1"), r);
    EXPECT_EQ(r.person, "u:alice");
    EXPECT_EQ(r.via, (std::vector<std::string>{"a:a1", "d:d1"}));
    auto p = g.person_of("d:d1");
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->stored);
    EXPECT_EQ(p->members.size(), 3u);
}

TEST(Graph, CachedLookupsDoNotReadTheStore) {
    auto store = std::make_shared<memory_store>();
    graph g(store, {});
    resolution r;
    g.observe(ob("alice", "a1"), r);
    g.observe(ob("alice", "a1"), r);  // fills the cache
    const auto before = store->reads;
    for (int i = 0; i < 100; ++i) g.observe(ob("alice", "a1"), r);
    EXPECT_EQ(store->reads, before);
    EXPECT_GT(g.stats().cache_hits, 200u);
}

TEST(Graph, IdsLongerThanTheLimitAreNeverStored) {
    auto store = std::make_shared<memory_store>();
    graph_options o;
    o.max_id_bytes = 16;
    graph g(store, o);
    resolution r;
    const std::string long_anon(100, 'x');
    g.observe(ob("alice", long_anon), r);
    EXPECT_EQ(r.person, "u:alice");
    ASSERT_EQ(r.refused.size(), 1u);
    EXPECT_EQ(r.refused[0].reason, "id_too_long");
    EXPECT_EQ(store->stats().keys, 0u);
}

TEST(Graph, StoreFailureAttributesEventsToTheirOwnIds) {
    auto store = std::make_shared<memory_store>();
    graph_options o;
    o.cache_size = 0;
    graph g(store, o);
    resolution r;
    g.observe(ob("alice", "a1"), r);
    store->fail = true;
    g.observe(ob("bob", "a2"), r);
    EXPECT_FALSE(r.resolved);
    EXPECT_EQ(r.person, "u:bob");
    g.observe(ob("", "a1"), r);
    EXPECT_FALSE(r.resolved);
    EXPECT_EQ(r.person, "a:a1");
    EXPECT_GT(g.stats().errors, 0u);
    store->fail = false;
    g.observe(ob("", "a1"), r);
    EXPECT_TRUE(r.resolved);
    EXPECT_EQ(r.person, "u:alice");
}

TEST(Graph, ForgetRemovesThePersonAndItsCache) {
    auto store = std::make_shared<memory_store>();
    graph g(store, {});
    resolution r;
    g.observe(ob("alice", "a1", "d1"), r);
    g.observe(ob("", "a1"), r);
    EXPECT_EQ(r.person, "u:alice");
    auto f = g.forget("a:a1");
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->stored);
    EXPECT_EQ(f->person, "u:alice");
    EXPECT_EQ(f->members.size(), 3u);
    EXPECT_EQ(store->stats().keys, 0u);
    g.observe(ob("", "a1"), r);  // the cache must not answer from before the deletion
    EXPECT_EQ(r.person, "a:a1");
    auto again = g.forget("u:nobody");
    ASSERT_TRUE(again);
    EXPECT_FALSE(again->stored);
    EXPECT_EQ(again->members, std::vector<std::string>{"u:nobody"});
}

TEST(Graph, SweepForgetsByTtlAndBySize) {
    auto store = std::make_shared<memory_store>();
    graph_options o;
    o.ttl = std::chrono::hours(24 * 2);
    o.max_ids = 4;
    graph g(store, o);
    resolution r;
    g.observe(ob("alice", "a1"), r);
    g.observe(ob("bob", "b1"), r);
    g.observe(ob("carol", "c1"), r);
    EXPECT_EQ(store->stats().keys, 6u);
    // Now: over max_ids (6 > 4): the least recently seen persons go until 4 or fewer remain.
    auto n = g.sweep(util::now_ms());
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 1u);
    EXPECT_EQ(store->stats().keys, 4u);
    EXPECT_EQ(g.check_invariants(), "");
    // Three days later every person is past the TTL.
    n = g.sweep(util::now_ms() + 3LL * 86'400'000);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 2u);
    EXPECT_EQ(store->stats().keys, 0u);
    EXPECT_EQ(g.stats().expired, 3u);
}

// Many threads observing overlapping ids: the stored graph stays consistent, every id ends in
// exactly one person, and the partition is the one the links imply (each anonymous id only ever
// meets the users of its own group of ten, so there are at most 20 persons, one per group).
// Threads alternate between the given graphs (two graphs over one store = two nodes).
void run_concurrent(const std::vector<graph*>& graphs) {
    constexpr int threads = 8, per_thread = 2000, anons = 600;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            graph& g = *graphs[static_cast<std::size_t>(t) % graphs.size()];
            std::mt19937 rng(static_cast<unsigned>(t));
            resolution r;
            for (int i = 0; i < per_thread; ++i) {
                const int a = static_cast<int>(rng() % anons);
                const int u = (a % 20) * 10 + static_cast<int>(rng() % 10);
                const std::string uid = "u" + std::to_string(u);
                const std::string aid = "a" + std::to_string(a);
                g.observe(ob(rng() % 3 == 0 ? std::string_view{} : std::string_view(uid), aid), r);
                if (!r.resolved) ADD_FAILURE() << "unresolved";
            }
        });
    }
    for (auto& t : ts) t.join();
    graph& g = *graphs.front();
    EXPECT_EQ(g.check_invariants(), "");
    std::map<std::string, std::set<std::string>> persons;
    for (int a = 0; a < anons; ++a) {
        auto p = g.person_of("a:a" + std::to_string(a));
        ASSERT_TRUE(p);
        persons[p->person].insert("group" + std::to_string(a % 20));
    }
    for (int u = 0; u < 200; ++u) {
        auto p = g.person_of("u:u" + std::to_string(u));
        ASSERT_TRUE(p);
        persons[p->person].insert("group" + std::to_string(u / 10));
    }
    for (const auto& [person, groups] : persons) EXPECT_EQ(groups.size(), 1u) << person;
    EXPECT_LE(persons.size(), 20u);
}

graph_options concurrent_options() {
    graph_options o;
    o.max_user_ids_per_id = 1000;  // no refusals: the final partition is order-independent
    o.max_ids_per_person = 100000;
    o.cache_size = 256;  // small: lookups and invalidations race
    return o;
}

TEST(Graph, ConcurrentObserversKeepTheGraphConsistent) {
    auto store = std::make_shared<memory_store>();
    graph g(store, concurrent_options());
    run_concurrent({&g});
    // The cache agrees with the store once everything settled.
    for (int a = 0; a < 600; a += 7) {
        const std::string k = "a:a" + std::to_string(a);
        EXPECT_EQ(g.person_key(k).value(), g.person_of(k)->person) << k;
    }
}

TEST(Graph, TwoNodesShareOneGraphOnRedis) {
    if (!switchyard::testing::redis_server::available()) GTEST_SKIP() << "no redis-server";
    switchyard::testing::redis_server redis;
    redis_options ro;
    ro.port = redis.port();
    std::string err;
    std::shared_ptr<store> s1 = open_redis(ro, err);
    std::shared_ptr<store> s2 = open_redis(ro, err);
    ASSERT_TRUE(s1 && s2) << err;
    auto o = concurrent_options();
    o.cache_ttl = std::chrono::milliseconds(20);  // another node's merges show within it
    graph n1(s1, o), n2(s2, o);
    run_concurrent({&n1, &n2});
    EXPECT_EQ(n2.check_invariants(), "");
}

TEST(Graph, CanonicalIdsAndLinksSurviveRestartOnLmdb) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("sy-graph-restart-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    lmdb_options lo;
    lo.dir = dir;
    lo.max_bytes = 64ull << 20;
    std::map<std::string, std::string> before;
    {
        std::string err;
        std::shared_ptr<store> s = open_lmdb(lo, err);
        ASSERT_TRUE(s) << err;
        graph g(s, {});
        resolution r;
        g.observe(ob("", "a1", "d1"), r);
        g.observe(ob("", "a2", "d1"), r);
        g.observe(ob("alice", "a2"), r);
        g.observe(ob("bob", "b1"), r);
        g.observe(ob("bob2", "", "", "bob"), r);
        for (const char* k : {"a:a1", "a:a2", "d:d1", "u:alice", "u:bob", "u:bob2", "a:b1"}) {
            before[k] = g.person_key(k).value();
        }
        EXPECT_EQ(before["d:d1"], "u:alice");
        EXPECT_EQ(before["u:bob2"], "u:bob");
    }
    {
        std::string err;
        std::shared_ptr<store> s = open_lmdb(lo, err);
        ASSERT_TRUE(s) << err;
        graph g(s, {});
        EXPECT_EQ(g.check_invariants(), "");
        for (const auto& [k, person] : before) {
            auto p = g.person_key(k);
            ASSERT_TRUE(p) << k;
            EXPECT_EQ(*p, person) << k;
        }
        // New links after the restart extend the same persons.
        resolution r;
        g.observe(ob("alice", "a3"), r);
        EXPECT_EQ(r.person, "u:alice");
        EXPECT_EQ(g.person_of("a:a3")->members.size(), 5u);
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace switchyard::identity
