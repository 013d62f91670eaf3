#pragma once

#include "http/server.h"

#include <string>
#include <string_view>
#include <vector>

namespace switchyard::http {

// A source's browser-origin allowlist. Exact origins are echoed back with credentials allowed
// (Snowplow's tracker sends cookies); "*" allows any origin but never with credentials, so an
// arbitrary Origin is never reflected together with Access-Control-Allow-Credentials.
class cors_policy {
  public:
    cors_policy() = default;
    explicit cors_policy(const std::vector<std::string>& origins);
    bool any() const noexcept { return any_; }
    bool allows(std::string_view origin) const;
    // Adds the CORS headers for a simple/actual request from `origin` (no-op when not allowed).
    void apply(response& res, std::string_view origin) const;
    bool empty() const noexcept { return !any_ && origins_.empty(); }

  private:
    bool any_ = false;
    std::vector<std::string> origins_;
};

// Headers browsers may send to us (Segment's analytics.js sends authorization and
// x-retry-count; gzip senders add content-encoding).
inline constexpr std::string_view cors_allowed_headers =
    "authorization, content-type, content-encoding, x-retry-count, sp-anonymous";

}  // namespace switchyard::http
