#pragma once

#include "admit/plan_enforcer.h"
#include "http/admin.h"
#include "switchyard/log.h"

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace switchyard::app {

// The operator API over the quarantine store (data/quarantine/*.ndjson, written by the built-in
// quarantine writer):
//   GET  /v1/quarantine[?reason=&source=&limit=]   list entries (newest last)
//   POST /v1/quarantine/replay[?reason=&source=&ids=messageId,…]
// Replay re-validates each plan-quarantined event (reasons plan_violation and plan_blocked)
// against its source's current plan and policy; those that now pass are appended to the log
// as ordinary events (same messageId, receivedAt) and remembered in `replayed.ids`, so a second
// replay skips them. Bot events (reason bot) come back once their source no longer drops bots
// (then they are checked against its plan, if any). Other quarantine reasons (malformed or
// off-spec events) are not replayable.
//
// Runs on the admin handler's operator thread; needs this process to ingest (role all or
// collect) and to hold the quarantine files (role all).
class quarantine_api {
  public:
    // `bot_drop_sources`: sources whose bots policy is drop (their bot events stay quarantined
    // on replay; a source since switched to flag gets them back).
    quarantine_api(std::filesystem::path dir, event_appender* appender,
                   std::map<std::string, std::shared_ptr<admit::plan_enforcer>> enforcers,
                   std::set<std::string> bot_drop_sources = {});

    // Handles /v1/quarantine*; nullopt for other paths.
    std::optional<http::operator_backend::reply> call(std::string_view method,
                                                      std::string_view path,
                                                      std::string_view query);

  private:
    http::operator_backend::reply list(const std::map<std::string, std::string>& q);
    http::operator_backend::reply replay(const std::map<std::string, std::string>& q);
    std::set<std::string> load_replayed();

    std::filesystem::path dir_;
    event_appender* appender_;
    std::map<std::string, std::shared_ptr<admit::plan_enforcer>> enforcers_;
    std::set<std::string> bot_drop_sources_;
    std::mutex mu_;  // one replay at a time
};

}  // namespace switchyard::app
