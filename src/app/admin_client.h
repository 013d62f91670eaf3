#pragma once

#include "config/config.h"

#include <string>
#include <utility>
#include <vector>

namespace switchyard::app {

struct admin_reply {
    int status = 0;  // 0 when the request could not be made
    std::string body;
    std::string error;
};

// One request to the running daemon's operator API (admin.listen, bearer admin.token), for the
// CLI. Blocking, with a 30 s deadline.
admin_reply admin_request(const config::config& cfg, const std::string& method,
                          const std::string& target, const std::string& body = {});

// CLI commands backed by the operator API. Return the process exit code.
int cli_destinations(const config::config& cfg, bool json);
int cli_dlq(const config::config& cfg, const std::string& action, const std::string& destination,
            const std::string& query, bool json);
int cli_reload(const config::config& cfg);
struct identity_cli_args {
    std::string action;
    std::vector<std::pair<std::string, std::string>> ids;  // userId/anonymousId/… → value
    std::string requested_by;
    std::string reason;
    bool suppress = true;
    std::string request_id;
};
int cli_identity(const config::config& cfg, const identity_cli_args& a);
int cli_quarantine(const config::config& cfg, const std::string& action, const std::string& query);

}  // namespace switchyard::app
