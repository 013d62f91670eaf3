#pragma once

#include <filesystem>
#include <string>
#include <system_error>

namespace switchyard::util {

// errno as a std::error_code (generic category).
std::error_code last_errno() noexcept;

// fsyncs a directory so a rename or file creation inside it survives a power loss.
std::error_code fsync_dir(const std::filesystem::path& dir);

// Reads a whole file. On failure returns false and sets err to "PATH: cannot read: REASON".
bool read_file(const std::string& path, std::string& out, std::string& err);

}  // namespace switchyard::util
