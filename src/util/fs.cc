#include "util/fs.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
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

bool read_file(const std::string& path, std::string& out, std::string& err) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        err = path + ": cannot read: " + std::strerror(errno);
        return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
        err = path + ": cannot read: " + std::strerror(errno);
        return false;
    }
    out = std::move(ss).str();
    return true;
}

}  // namespace switchyard::util
