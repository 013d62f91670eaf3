#include "identity/audit.h"
#include "identity/service.h"
#include "identity/suppression.h"
#include "memory_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>

namespace switchyard::identity {
namespace {

using testing::memory_store;

TEST(Suppression, AddContainsRemoveAndReload) {
    auto s = std::make_shared<memory_store>();
    suppression_list a(s);
    ASSERT_FALSE(a.load());
    EXPECT_FALSE(a.any());
    ASSERT_FALSE(a.add({{"u:alice", 1, "dpo", "objection", "u:alice"},
                        {"a:a1", 1, "dpo", "objection", "u:alice"}}));
    EXPECT_TRUE(a.any());
    EXPECT_TRUE(a.contains("u:alice"));
    EXPECT_TRUE(a.contains("a:a1"));
    EXPECT_FALSE(a.contains("u:bob"));
    // Another instance on the same store (a restart, or another node) loads the same list.
    suppression_list b(s);
    ASSERT_FALSE(b.load());
    EXPECT_TRUE(b.contains("a:a1"));
    ASSERT_EQ(b.list().size(), 2u);
    EXPECT_EQ(b.list()[0].by, "dpo");
    // A change made through `a` reaches `b` on its next refresh.
    auto r = a.remove("a:a1");
    ASSERT_TRUE(r);
    EXPECT_TRUE(*r);
    EXPECT_TRUE(b.contains("a:a1"));
    ASSERT_FALSE(b.refresh());
    EXPECT_FALSE(b.contains("a:a1"));
    EXPECT_TRUE(b.contains("u:alice"));
    auto again = a.remove("a:a1");
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again);
}

TEST(Suppression, ReadersNeverSeeAHalfBuiltList) {
    auto s = std::make_shared<memory_store>();
    suppression_list list(s);
    ASSERT_FALSE(list.load());
    ASSERT_FALSE(list.add({{"u:always", 1, "", "", "u:always"}}));
    std::atomic<bool> stop{false};
    std::atomic<int> misses{0};
    std::thread reader([&] {
        while (!stop.load()) {
            if (!list.contains("u:always")) misses.fetch_add(1);
        }
    });
    for (int i = 0; i < 300; ++i) {
        const std::string k = "u:x" + std::to_string(i);
        ASSERT_FALSE(list.add({{k, 1, "", "", k}}));
        if (i % 2) ASSERT_TRUE(list.remove(k));
    }
    stop = true;
    reader.join();
    EXPECT_EQ(misses.load(), 0);
    EXPECT_EQ(list.size(), 151u);
}

TEST(Suppression, StoreFailureIsReported) {
    auto s = std::make_shared<memory_store>();
    suppression_list list(s);
    s->fail = true;
    EXPECT_TRUE(list.load());
    EXPECT_TRUE(list.add({{"u:a", 1, "", "", "u:a"}}));
    EXPECT_FALSE(list.contains("u:a"));  // not published when not stored
}

std::filesystem::path temp_file(const char* name) {
    auto dir = std::filesystem::temp_directory_path() /
               (std::string("sy-audit-") + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto p = dir / name;
    std::filesystem::remove(p);
    return p;
}

TEST(DeletionAudit, RecordsConfirmsAndReloads) {
    auto file = temp_file("a.ndjson");
    {
        deletion_audit a(file);
        ASSERT_FALSE(a.open());
        deletion_audit::request r;
        r.id = "r1";
        r.requested_ms = 1700000000000;
        r.requested_by = "dpo@example.com";
        r.reason = "art. 17";
        r.subject = "u:alice";
        r.person = "u:alice";
        r.ids = {"u:alice", "a:a1"};
        r.destinations = {"warehouse", "kafka"};
        r.suppressed = true;
        ASSERT_FALSE(a.record(r));
        ASSERT_FALSE(a.confirm("r1", "kafka", 1700000001000));
        ASSERT_FALSE(a.confirm("r1", "kafka", 1700000002000));  // a repeat is ignored
        ASSERT_FALSE(a.confirm("unknown", "kafka", 1));
        auto j = deletion_audit::to_json(*a.get("r1"));
        EXPECT_NE(j.find(R"("status":"pending")"), std::string::npos) << j;
        EXPECT_NE(
            j.find(
                R"({"name":"kafka","status":"confirmed","confirmedAt":"2023-11-14T22:13:21.000Z"})"),
            std::string::npos)
            << j;
    }
    {
        // A torn last line (crash mid-write) is skipped; everything before it is kept.
        std::ofstream(file, std::ios::app) << "{\"event\":\"confirmed\",\"id\":\"r1\",\"dest";
        deletion_audit b(file);
        std::size_t skipped = 0;
        ASSERT_FALSE(b.open(&skipped));
        EXPECT_EQ(skipped, 1u);
        auto r = b.get("r1");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->requested_by, "dpo@example.com");
        EXPECT_EQ(r->ids, (std::vector<std::string>{"u:alice", "a:a1"}));
        EXPECT_EQ(r->confirmed.size(), 1u);
        ASSERT_FALSE(b.confirm("r1", "warehouse", 1700000003000));
        EXPECT_NE(deletion_audit::to_json(*b.get("r1")).find(R"("status":"complete")"),
                  std::string::npos);
    }
    EXPECT_EQ(deletion_audit::message_id("r1"), "deletion-r1");
    EXPECT_EQ(deletion_audit::request_id("deletion-r1").value_or(""), "r1");
    EXPECT_FALSE(deletion_audit::request_id("link-1"));
}

TEST(IdentityService, IdentityJsonNamesPersonViaAndRefusals) {
    resolution r;
    r.person = "u:alice";
    r.via = {"a:a1", "d:\"quoted\""};
    r.refused.push_back({"a:a1", "u:bob", "max_user_ids_per_id"});
    r.resolved = false;
    std::string j;
    service::identity_json(r, j);
    EXPECT_EQ(
        j, R"({"personId":"alice","personIdType":"userId","via":[{"type":"anonymousId","id":"a1"},)"
           R"({"type":"deviceId","id":"\"quoted\""}],"refused":[{"from":{"type":"anonymousId",)"
           R"("id":"a1"},"to":{"type":"userId","id":"bob"},"reason":"max_user_ids_per_id"}],)"
           R"("resolved":false})");
}

}  // namespace
}  // namespace switchyard::identity

namespace switchyard::identity {
namespace {

TEST(IdentityService, ApplyWritesContextAndLinkRecordsAndKeepsFailedOnes) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("sy-service-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    service_options o;
    o.lmdb.dir = dir / "store";
    o.lmdb.max_bytes = 16ull << 20;
    o.audit_file = dir / "deletions.ndjson";
    std::string err;
    auto s = service::open(o, err);
    ASSERT_TRUE(s) << err;
    event ev;
    ev.header.source = "web";
    ev.header.message_id = "m1";
    ev.header.user_id = "alice";
    ev.header.anonymous_id = "a1";
    ev.header.received_at_ms = 1700000000000;
    ev.json =
        R"({"type":"identify","userId":"alice","anonymousId":"a1","context":{"ip":"1.2.3.4"}})";
    observation ob;
    ob.user_id = ev.header.user_id;
    ob.anonymous_id = ev.header.anonymous_id;
    resolution r;
    std::vector<std::string> links;
    s->apply(ev, ob, r, links);
    EXPECT_NE(ev.json.find(R"("identity":{"personId":"alice","personIdType":"userId")"),
              std::string::npos)
        << ev.json;
    ASSERT_EQ(links.size(), 1u);
    auto v = decode_event(links[0]);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->kind, record_kind::identity_link);
    EXPECT_EQ(v->user_id, "alice");
    EXPECT_EQ(v->anonymous_id, "a1");
    EXPECT_EQ(type_label(*v), "identity_link");
    EXPECT_NE(v->json.find(R"("eventMessageId":"m1")"), std::string::npos) << v->json;
    const std::string id(v->message_id);
    // The same link again makes no record; a record whose append failed is handed back.
    std::vector<std::string> none;
    s->apply(ev, ob, r, none);
    EXPECT_TRUE(none.empty());
    EXPECT_FALSE(s->has_pending());
    s->requeue(std::move(links));
    EXPECT_TRUE(s->has_pending());
    std::vector<std::string> again;
    s->take_pending(again);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(decode_event(again[0])->message_id, id);  // the same messageId: safe to repeat
    EXPECT_FALSE(s->has_pending());
    s.reset();
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace switchyard::identity
