#include "util/fs.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace switchyard::util {

std::error_code last_errno() noexcept { return {errno, std::generic_category()}; }

std::error_code fsync_dir(const std::filesystem::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return last_errno();
    std::error_code ec;
    if (::fsync(fd) != 0) ec = last_errno();
    ::close(fd);
    return ec;
}

}  // namespace switchyard::util
