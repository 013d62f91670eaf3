#pragma once

#include <string>
#include <vector>

namespace switchyard::plan {

// Entry points of `switchyard plan lint|test|docs`. They write to std::cout/std::cerr and return
// the process exit code; main.cc only parses arguments.

// Loads `files` as one plan and prints every error ("file:line:col: message") to stderr, and
// "FILE: OK" to stdout for each file without errors. 0 when all are valid, 2 otherwise.
int plan_lint(const std::vector<std::string>& files);

// Validates each line of `events_ndjson` (a path; "-" reads stdin) against the plan and prints
// each event's violations with its line number and messageId, then a summary. 0 when every
// event is valid, 1 when any event has violations or a line is not a JSON object, 2 when the
// plan does not load or the events cannot be read.
int plan_test(const std::vector<std::string>& plan_files, const std::string& events_ndjson);

// Prints the plan's Markdown documentation to stdout. 0, or 2 when the plan does not load.
int plan_docs(const std::vector<std::string>& plan_files);

}  // namespace switchyard::plan
