#include "log/cursor_store.h"

#include "switchyard/result.h"
#include "util/fs.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <string_view>
#include <unistd.h>

namespace switchyard::log {

namespace fs = std::filesystem;

namespace {

using util::fsync_dir;

constexpr std::string_view cursor_ext = ".cursor";
constexpr std::string_view temp_ext = ".cursor.tmp";

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

// A name becomes a file name, so it must not be able to leave the directory.
bool valid_name(const std::string& name) {
    return !name.empty() && name != "." && name != ".." &&
           name.find_first_of(std::string_view("/\0", 2)) == std::string::npos;
}

std::optional<std::uint64_t> parse_offset(std::string_view text) {
    if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

std::error_code write_file_synced(const fs::path& path, std::string_view data) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return last_error();
    std::error_code ec;
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            ec = last_error();
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    if (!ec && ::fdatasync(fd) != 0) ec = last_error();
    if (::close(fd) != 0 && !ec) ec = last_error();
    return ec;
}

}  // namespace

cursor_store::cursor_store(fs::path dir) : dir_(std::move(dir)) {}

void cursor_store::open() {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) throw std::system_error(ec, "cannot create cursor directory " + dir_.string());

    std::map<std::string, std::uint64_t> loaded;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string file = it->path().filename().string();
        if (file.ends_with(temp_ext)) {
            // A commit that crashed before its rename; the old value is still in place.
            fs::remove(it->path(), ec);
            if (ec) throw std::system_error(ec, "cannot remove " + it->path().string());
            continue;
        }
        if (!file.ends_with(cursor_ext) || file.size() == cursor_ext.size()) continue;
        std::ifstream in(it->path(), std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        const auto offset = parse_offset(text);
        if (!in.good() && !in.eof()) {
            throw std::system_error(make_error_code(errc::io_error),
                                    "cannot read cursor " + it->path().string());
        }
        if (!offset) {
            throw std::system_error(make_error_code(errc::corrupt_record),
                                    "cursor file " + it->path().string() +
                                        " does not hold an offset; fix or delete it");
        }
        loaded[file.substr(0, file.size() - cursor_ext.size())] = *offset;
    }
    if (ec) throw std::system_error(ec, "cannot list cursor directory " + dir_.string());

    std::lock_guard lk(mu_);
    cache_ = std::move(loaded);
}

std::optional<std::uint64_t> cursor_store::load(const std::string& name) const {
    std::lock_guard lk(mu_);
    const auto it = cache_.find(name);
    if (it == cache_.end()) return std::nullopt;
    return it->second;
}

std::error_code cursor_store::commit(const std::string& name, std::uint64_t offset) {
    if (!valid_name(name)) return make_error_code(errc::invalid_argument);
    const fs::path path = dir_ / (name + std::string(cursor_ext));
    const fs::path temp = dir_ / (name + std::string(temp_ext));
    // I/O runs outside the lock: each worker commits only its own name, so names never race.
    const std::string text = std::to_string(offset) + "\n";
    if (auto ec = write_file_synced(temp, text)) {
        spdlog::error("Cannot write cursor {} ({}).", temp.string(), ec.message());
        ::unlink(temp.c_str());
        return make_error_code(errc::io_error);
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        spdlog::error("Cannot rename cursor {} into place ({}).", temp.string(),
                      last_error().message());
        ::unlink(temp.c_str());
        return make_error_code(errc::io_error);
    }
    if (auto ec = fsync_dir(dir_)) {
        spdlog::error("Cannot fsync cursor directory {} ({}).", dir_.string(), ec.message());
        return make_error_code(errc::io_error);
    }
    std::lock_guard lk(mu_);
    cache_[name] = offset;
    return {};
}

std::error_code cursor_store::remove(const std::string& name) {
    if (!valid_name(name)) return make_error_code(errc::invalid_argument);
    const fs::path path = dir_ / (name + std::string(cursor_ext));
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) {
            std::lock_guard lk(mu_);
            return cache_.erase(name) > 0 ? std::error_code{} : make_error_code(errc::not_found);
        }
        spdlog::error("Cannot delete cursor {} ({}).", path.string(), last_error().message());
        return make_error_code(errc::io_error);
    }
    if (auto ec = fsync_dir(dir_)) {
        spdlog::error("Cannot fsync cursor directory {} ({}).", dir_.string(), ec.message());
        return make_error_code(errc::io_error);
    }
    std::lock_guard lk(mu_);
    cache_.erase(name);
    return {};
}

std::map<std::string, std::uint64_t> cursor_store::snapshot() const {
    std::lock_guard lk(mu_);
    return cache_;
}

}  // namespace switchyard::log
