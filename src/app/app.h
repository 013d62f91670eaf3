#pragma once

#include "config/config.h"

#include <string>

namespace switchyard::app {

// Runs the daemon until SIGTERM/SIGINT. Start order: log, cursors, delivery, admin, public
// listener; stop order is the reverse, inputs first. Returns the process exit code.
int run(const config::config& cfg, const std::string& config_path);

// Validates a config file including every destination's own settings. Prints each error with
// file:line:col to stderr. Returns 0 when valid.
int check(const std::string& path, bool print);

// Loads and validates; on success fills `out` and returns true, else prints errors.
bool load(const std::string& path, config::config& out);

// Markdown reference of every config key, generated from the code that reads them.
std::string config_docs();

}  // namespace switchyard::app
