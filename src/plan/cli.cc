#include "plan/cli.h"

#include "plan/plan.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>

namespace switchyard::plan {

namespace {

std::shared_ptr<const compiled_plan> load_or_report(const std::vector<std::string>& files) {
    std::vector<std::string> errors;
    auto plan = load_plan(files, errors);
    for (const auto& e : errors) std::cerr << e << '\n';
    return plan;
}

}  // namespace

int plan_lint(const std::vector<std::string>& files) {
    std::vector<std::string> errors;
    load_plan(files, errors);
    std::set<std::string> failed;
    for (const auto& e : errors) {
        std::cerr << e << '\n';
        // Errors start with "FILE:" (file names may contain ':', so test each prefix).
        for (const auto& f : files) {
            if (e.size() > f.size() && e.compare(0, f.size(), f) == 0 && e[f.size()] == ':') {
                failed.insert(f);
            }
        }
    }
    for (const auto& f : files) {
        if (failed.count(f) == 0) std::cout << f << ": OK\n";
    }
    // A file-independent error (no files given) still fails the run.
    return errors.empty() ? 0 : 2;
}

int plan_test(const std::vector<std::string>& plan_files, const std::string& events_ndjson) {
    auto plan = load_or_report(plan_files);
    if (!plan) return 2;
    std::ifstream file;
    std::istream* in = &std::cin;
    if (events_ndjson != "-") {
        file.open(events_ndjson, std::ios::binary);
        if (!file) {
            std::cerr << fmt::format("{}: cannot read: {}\n", events_ndjson, std::strerror(errno));
            return 2;
        }
        in = &file;
    }
    simdjson::dom::parser parser;
    std::vector<violation> found;
    std::size_t line_no = 0, checked = 0, valid = 0, invalid = 0, not_json = 0;
    std::string line;
    while (std::getline(*in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        found.clear();
        if (!plan->validate(line, found)) {
            ++not_json;
            std::cout << fmt::format("{}:{}: not a JSON object\n", events_ndjson, line_no);
            continue;
        }
        ++checked;
        if (found.empty()) {
            ++valid;
            continue;
        }
        ++invalid;
        std::string_view message_id;
        simdjson::dom::element doc;
        if (parser.parse(line).get(doc) == simdjson::SUCCESS) {
            if (doc["messageId"].get(message_id) != simdjson::SUCCESS) message_id = {};
        }
        std::cout << fmt::format("{}:{}: messageId {}: {} violation{}\n", events_ndjson, line_no,
                                 message_id.empty() ? "(none)" : message_id, found.size(),
                                 found.size() == 1 ? "" : "s");
        for (const auto& v : found) {
            std::cout << fmt::format("  {}: {}: expected {}, actual {}\n",
                                     v.path.empty() ? "(event)" : v.path, to_string(v.kind),
                                     v.expected, v.actual);
        }
    }
    std::cout << fmt::format("{}: {} events checked against plan {}: {} valid, {} with violations",
                             events_ndjson, checked, plan->name(), valid, invalid);
    if (not_json > 0) std::cout << fmt::format(", {} lines not JSON objects", not_json);
    std::cout << '\n';
    return invalid == 0 && not_json == 0 ? 0 : 1;
}

int plan_docs(const std::vector<std::string>& plan_files) {
    auto plan = load_or_report(plan_files);
    if (!plan) return 2;
    std::cout << plan->markdown();
    return 0;
}

}  // namespace switchyard::plan
