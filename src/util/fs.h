#pragma once

#include <filesystem>
#include <system_error>

namespace switchyard::util {

// errno as a std::error_code (generic category).
std::error_code last_errno() noexcept;

// fsyncs a directory so a rename or file creation inside it survives a power loss.
std::error_code fsync_dir(const std::filesystem::path& dir);

}  // namespace switchyard::util
