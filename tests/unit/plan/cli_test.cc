#include "plan/cli.h"

#include "plan_test_support.h"
#include "unit/log/temp_dir.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace switchyard::plan {
namespace {

// Captures std::cout and std::cerr for the lifetime of the object.
class captured {
  public:
    captured() : out_old_(std::cout.rdbuf(out_.rdbuf())), err_old_(std::cerr.rdbuf(err_.rdbuf())) {}
    ~captured() {
        std::cout.rdbuf(out_old_);
        std::cerr.rdbuf(err_old_);
    }
    std::string out() const { return out_.str(); }
    std::string err() const { return err_.str(); }

  private:
    std::ostringstream out_, err_;
    std::streambuf* out_old_;
    std::streambuf* err_old_;
};

std::string write(const switchyard::test::temp_dir& dir, const char* name,
                  const std::string& text) {
    auto p = dir.path() / name;
    std::ofstream(p) << text;
    return p.string();
}

TEST(PlanCli, LintOk) {
    std::string web = plan_testing::fixture("web.yaml");
    captured c;
    EXPECT_EQ(plan_lint({web}), 0);
    EXPECT_EQ(c.out(), web + ": OK\n");
    EXPECT_EQ(c.err(), "");
}

TEST(PlanCli, LintReportsEveryErrorWithPosition) {
    switchyard::test::temp_dir dir;
    std::string good = write(dir, "good.yaml", "track:\n  - name: A\n");
    std::string bad = write(dir, "bad.yaml",
                            "track:\n  - name: B\n    properties:\n      p: {type: strng}\n"
                            "      q: {pattern: \"(\"}\n");
    captured c;
    EXPECT_EQ(plan_lint({good, bad}), 2);
    EXPECT_EQ(c.out(), good + ": OK\n");
    EXPECT_EQ(c.err(),
              bad +
                  ":4:17: track \"B\" properties.p.type: unknown type 'strng' (expected string, "
                  "number, integer, boolean, object, array or null)\n" +
                  bad +
                  ":5:20: track \"B\" properties.q.pattern: invalid pattern '(': missing ): (\n");
}

TEST(PlanCli, TestGoodFixtures) {
    std::string events = plan_testing::fixture("good.ndjson");
    captured c;
    EXPECT_EQ(plan_test({plan_testing::fixture("web.yaml")}, events), 0);
    EXPECT_EQ(c.out(),
              events + ": 10 events checked against plan web: 10 valid, 0 with violations\n");
}

TEST(PlanCli, TestBadFixturesPrintsEachViolation) {
    std::string events = plan_testing::fixture("bad.ndjson");
    captured c;
    EXPECT_EQ(plan_test({plan_testing::fixture("web.yaml")}, events), 1);
    std::string out = c.out();
    EXPECT_EQ(out.rfind(events + ":1: messageId b-1: 5 violations\n"
                                 "  properties.order_id: bad_value: expected pattern ^ord_[0-9]+$, "
                                 "actual string \"1001\"\n"
                                 "  properties.revenue: wrong_type: expected number, actual string "
                                 "\"42.5\"\n",
                        0),
              0u)
        << out;
    EXPECT_NE(out.find(events + ":6: messageId b-6: 1 violation\n"
                                "  (event): unplanned_event: expected planned event, actual "
                                "Checkout Abandoned\n"),
              std::string::npos)
        << out;
    EXPECT_NE(
        out.find(events + ":8: messageId b-8: 2 violations\n"
                          "  traits.employees: bad_value: expected minimum 1, actual number 0\n"
                          "  traits.name: missing_required: expected required, actual "
                          "missing\n"),
        std::string::npos)
        << out;
    EXPECT_NE(out.find(events + ": 10 events checked against plan web: 0 valid, 10 with "
                                "violations\n"),
              std::string::npos)
        << out;
}

TEST(PlanCli, TestLinesThatAreNotJson) {
    switchyard::test::temp_dir dir;
    std::string events = write(dir, "e.ndjson",
                               "{\"type\":\"track\",\"event\":\"A\"}\n\n[1]\nnot json\n"
                               "{\"type\":\"track\",\"event\":\"Z\"}\n");
    std::string plan = write(dir, "p.yaml", "name: p\ntrack:\n  - name: A\n");
    captured c;
    EXPECT_EQ(plan_test({plan}, events), 1);
    EXPECT_EQ(c.out(), events + ":3: not a JSON object\n" + events + ":4: not a JSON object\n" +
                           events + ":5: messageId (none): 1 violation\n" +
                           "  (event): unplanned_event: expected planned event, actual Z\n" +
                           events +
                           ": 2 events checked against plan p: 1 valid, 1 with violations, 2 "
                           "lines not JSON objects\n");
}

TEST(PlanCli, TestWithBrokenPlanOrMissingEvents) {
    switchyard::test::temp_dir dir;
    std::string plan = write(dir, "p.yaml", "track: {}\n");
    {
        captured c;
        EXPECT_EQ(plan_test({plan}, plan_testing::fixture("good.ndjson")), 2);
        EXPECT_EQ(c.err(), plan + ":1:8: track: expected a list of events\n");
    }
    captured c;
    std::string missing = (dir.path() / "none.ndjson").string();
    EXPECT_EQ(plan_test({plan_testing::fixture("web.yaml")}, missing), 2);
    EXPECT_EQ(c.err(), missing + ": cannot read: No such file or directory\n");
}

TEST(PlanCli, Docs) {
    {
        captured c;
        EXPECT_EQ(plan_docs({plan_testing::fixture("web.yaml")}), 0);
        EXPECT_EQ(c.out().rfind("# Tracking plan: web\n", 0), 0u);
    }
    captured c;
    EXPECT_EQ(plan_docs({"/nonexistent/plan.yaml"}), 2);
    EXPECT_EQ(c.out(), "");
    EXPECT_NE(c.err(), "");
}

}  // namespace
}  // namespace switchyard::plan
