#pragma once

#include "http/admin.h"
#include "identity/service.h"
#include "switchyard/log.h"

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::app {

// The operator API's /v1/identity/* routes (docs/identity.md):
//   GET    /v1/identity/persons?userId=…        the person an id belongs to
//   GET    /v1/identity/suppressions            the suppression list
//   POST   /v1/identity/suppressions            {"userId"|"anonymousId"|"deviceId": …,
//                                                "requestedBy": …, "reason": …}
//   DELETE /v1/identity/suppressions?userId=…   lift a suppression
//   POST   /v1/identity/deletions               {"userId"|…, "requestedBy": …, "reason": …,
//                                                "suppress": true}
//   GET    /v1/identity/deletions[/ID]          the deletion audit trail
// Runs on the admin handler's worker thread (calls may block on the store and the log).
class identity_api {
  public:
    using reply = http::operator_backend::reply;
    // `ids` null: identity is off (the routes answer 503). `appender` null: this process does
    // not write the log (role deliver): deletions answer 503. `deletion_destinations` names the
    // destinations that receive deletion records, as configured now.
    identity_api(identity::service* ids, event_appender* appender,
                 std::function<std::vector<std::string>()> deletion_destinations);

    std::optional<reply> call(std::string_view method, std::string_view path,
                              std::string_view query, std::string_view body);

  private:
    reply persons(std::string_view query);
    reply suppressions(std::string_view method, std::string_view query, std::string_view body);
    reply deletions(std::string_view method, std::string_view rest, std::string_view body);
    reply create_deletion(std::string_view body);

    identity::service* ids_;
    event_appender* appender_;
    std::function<std::vector<std::string>()> deletion_destinations_;
    std::mutex mu_;  // one deletion at a time
};

}  // namespace switchyard::app
