#pragma once

#include "config/reader.h"
#include "switchyard/destination.h"
#include "telemetry/metrics.h"

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace switchyard::destinations {

struct destination_context {
    std::string name;                       // the destination's configured name
    std::filesystem::path data_dir;         // the daemon's data directory
    telemetry::metrics* metrics = nullptr;  // for a destination's own metrics; null in tools
};

// Reads the destination's own settings from `settings` (strictly: it calls settings.finish()) and
// builds it. In describe mode (settings.describing()) it only documents its keys and returns null.
// Config errors go to settings.errs(); a factory returns null when it recorded any.
using factory = std::function<std::unique_ptr<destination>(config::map_reader& settings,
                                                           const destination_context& ctx)>;

class registry {
  public:
    void add(std::string type, factory f);
    const factory* find(const std::string& type) const;
    const std::map<std::string, factory>& all() const noexcept { return factories_; }

  private:
    std::map<std::string, factory> factories_;
};

// The one explicit list of built-in destinations (register_builtin.cc).
void register_builtin(registry& r);

}  // namespace switchyard::destinations
