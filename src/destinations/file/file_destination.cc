#include "destinations/file/file_destination.h"

#include "util/fs.h"

#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace switchyard::destinations {
namespace {

using util::fsync_dir;

// Lines are handed to write()/deflate() in chunks of about this size, so a large batch does not
// need one contiguous copy of itself.
constexpr std::size_t line_chunk_bytes = 1 << 20;
constexpr std::size_t deflate_out_bytes = 256 << 10;
// gzip windowBits: 15-bit window plus 16 for a gzip (not zlib) wrapper.
constexpr int gzip_window_bits = 15 + 16;

std::error_code last_errno() { return {errno, std::generic_category()}; }

void put_le32(char* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

file_destination::file_destination(file_destination_options options)
    : opts_(std::move(options)), zs_(std::make_unique<z_stream_s>()) {
    if (opts_.prefix.empty()) opts_.prefix = "events";
}

file_destination::~file_destination() {
    if (fd_ >= 0) close();
}

std::chrono::system_clock::time_point file_destination::now() const {
    return opts_.now ? opts_.now() : std::chrono::system_clock::now();
}

std::error_code file_destination::write_all(const char* data, std::size_t size) {
    while (size > 0) {
        ssize_t n = ::write(fd_, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_errno();
        }
        data += n;
        size -= static_cast<std::size_t>(n);
        file_bytes_ += static_cast<std::uint64_t>(n);
    }
    return {};
}

std::error_code file_destination::deflate_and_write(const char* data, std::size_t size, int flush) {
    zs_->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    zs_->avail_in = static_cast<uInt>(size);
    zout_.resize(deflate_out_bytes);
    // The usual zlib loop: deflate until it stops filling the whole output buffer, which means
    // it consumed all input and emitted everything `flush` asks for.
    do {
        zs_->next_out = reinterpret_cast<Bytef*>(zout_.data());
        zs_->avail_out = static_cast<uInt>(zout_.size());
        int rc = ::deflate(zs_.get(), flush);
        if (rc == Z_STREAM_ERROR) return make_error_code(errc::invalid_argument);
        std::size_t have = zout_.size() - zs_->avail_out;
        if (auto ec = write_all(zout_.data(), have)) return ec;
    } while (zs_->avail_out == 0);
    return {};
}

std::error_code file_destination::open_file(std::string& what) {
    std::error_code ec;
    std::filesystem::create_directories(opts_.dir, ec);
    if (ec) {
        what = "cannot create directory " + opts_.dir.string();
        return ec;
    }
    auto t = now();
    std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    const char* ext = opts_.gzip ? ".ndjson.gz" : ".ndjson";

    // O_EXCL: never append to a file from a previous run (or a clock that went back); take the
    // next sequence number instead.
    for (int attempt = 0; attempt < 1000; ++attempt) {
        char seq[24];
        std::snprintf(seq, sizeof seq, "%06llu", static_cast<unsigned long long>(seq_++));
        std::filesystem::path p = opts_.dir / (opts_.prefix + "-" + stamp + "-" + seq + ext);
        int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            if (errno == EEXIST || errno == EINTR) continue;
            ec = last_errno();
            what = "cannot create " + p.string();
            return ec;
        }
        fd_ = fd;
        path_ = std::move(p);
        break;
    }
    if (fd_ < 0) {
        what = "cannot find a free file name in " + opts_.dir.string();
        return std::make_error_code(std::errc::file_exists);
    }
    file_bytes_ = committed_bytes_ = 0;
    committed_crc_ = committed_isize_ = 0;
    opened_at_ = t;

    if (opts_.fsync) {
        // The new directory entry must survive a crash as well as the data written into it.
        if (auto dec = fsync_dir(opts_.dir)) {
            what = "cannot fsync directory " + opts_.dir.string();
            abandon_file();
            return dec;
        }
    }
    if (opts_.gzip) {
        *zs_ = z_stream_s{};
        if (::deflateInit2(zs_.get(), opts_.gzip_level, Z_DEFLATED, gzip_window_bits, 8,
                           Z_DEFAULT_STRATEGY) != Z_OK) {
            what = "cannot initialise gzip";
            abandon_file();
            return make_error_code(errc::invalid_argument);
        }
        zs_active_ = true;
    }
    spdlog::debug("File destination opened {}.", path_.string());
    return {};
}

std::error_code file_destination::finish_file(std::string& what) {
    std::error_code ec;
    if (zs_active_) {
        ec = deflate_and_write(nullptr, 0, Z_FINISH);
        ::deflateEnd(zs_.get());
        zs_active_ = false;
        if (ec) {
            what = "cannot finish " + path_.string();
            return ec;
        }
    }
    if (opts_.fsync && ::fdatasync(fd_) != 0) {
        what = "cannot fdatasync " + path_.string();
        return last_errno();
    }
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
        what = "cannot close " + path_.string();
        ec = last_errno();
    }
    path_.clear();
    return ec;
}

void file_destination::abandon_file() {
    if (fd_ < 0) return;
    if (zs_active_) {
        ::deflateEnd(zs_.get());
        zs_active_ = false;
    }
    // Whatever follows the last complete batch is a partial write: cut it off, so the retry of
    // that batch does not leave a torn line (or a broken deflate stream) in the middle of a file.
    if (::ftruncate(fd_, static_cast<off_t>(committed_bytes_)) != 0) {
        spdlog::warn("File destination cannot truncate {} after a failed write: {}.",
                     path_.string(), last_errno().message());
    }
    bool remove = committed_bytes_ == 0;
    if (!remove && opts_.gzip) {
        // Every complete batch ended with Z_SYNC_FLUSH, which leaves the deflate stream byte
        // aligned. An empty final fixed-Huffman block (03 00) and the gzip trailer (CRC-32 and
        // size of the data so far) turn what is left into a complete gzip member.
        char tail[10] = {0x03, 0x00};
        put_le32(tail + 2, committed_crc_);
        put_le32(tail + 6, committed_isize_);
        if (::pwrite(fd_, tail, sizeof tail, static_cast<off_t>(committed_bytes_)) !=
            static_cast<ssize_t>(sizeof tail)) {
            spdlog::warn(
                "File destination cannot finish {} after a failed write; its last "
                "gzip member has no trailer.",
                path_.string());
        }
    }
    if (!remove && opts_.fsync) ::fdatasync(fd_);
    ::close(fd_);
    fd_ = -1;
    if (remove) {
        std::error_code ec;
        std::filesystem::remove(path_, ec);
    }
    path_.clear();
}

std::error_code file_destination::write_batch(std::span<const delivery_item> batch,
                                              std::string& what) {
    auto flush_lines = [&](int zflush) -> std::error_code {
        std::error_code ec = zs_active_
                                 ? deflate_and_write(line_buf_.data(), line_buf_.size(), zflush)
                                 : write_all(line_buf_.data(), line_buf_.size());
        line_buf_.clear();
        return ec;
    };
    line_buf_.clear();
    for (const auto& item : batch) {
        std::size_t start = line_buf_.size();
        line_buf_.append(item.event.json);
        // A raw newline is only legal between JSON tokens, where a space means the same; this
        // keeps one event per line whatever the serializer did.
        std::replace(line_buf_.begin() + static_cast<std::ptrdiff_t>(start), line_buf_.end(), '\n',
                     ' ');
        line_buf_.push_back('\n');
        if (line_buf_.size() >= line_chunk_bytes) {
            if (auto ec = flush_lines(Z_NO_FLUSH)) {
                what = "cannot write " + path_.string();
                return ec;
            }
        }
    }
    // Z_SYNC_FLUSH ends the batch on a byte boundary with everything emitted, so the file is
    // readable up to here even if the process dies before the member is finished.
    if (auto ec = flush_lines(Z_SYNC_FLUSH)) {
        what = "cannot write " + path_.string();
        return ec;
    }
    if (opts_.fsync && ::fdatasync(fd_) != 0) {
        what = "cannot fdatasync " + path_.string();
        return last_errno();
    }
    return {};
}

send_outcome file_destination::fail(std::error_code ec, const std::string& what) {
    healthy_.store(false, std::memory_order_relaxed);
    return send_outcome::retry_later(what + ": " + ec.message());
}

send_outcome file_destination::send(std::span<const delivery_item> batch) {
    if (batch.empty()) return send_outcome::ok();
    std::string what;
    if (fd_ >= 0 && committed_bytes_ > 0 &&
        (committed_bytes_ >= opts_.rotate_bytes || now() - opened_at_ >= opts_.rotate_interval)) {
        if (auto ec = finish_file(what)) {
            // The batches in this file were already reported delivered and are on disk; only
            // the member's end is at stake. Cut back to the last batch and move on.
            spdlog::warn("File destination {}: {}.", what, ec.message());
            abandon_file();
        }
    }
    if (fd_ < 0) {
        if (auto ec = open_file(what)) return fail(ec, what);
    }
    if (auto ec = write_batch(batch, what)) {
        abandon_file();
        return fail(ec, what);
    }
    committed_bytes_ = file_bytes_;
    if (zs_active_) {
        committed_crc_ = static_cast<std::uint32_t>(zs_->adler);  // gzip mode keeps the CRC-32 here
        committed_isize_ = static_cast<std::uint32_t>(zs_->total_in);
    }
    healthy_.store(true, std::memory_order_relaxed);
    return send_outcome::ok();
}

void file_destination::close() {
    if (fd_ < 0) return;
    std::string what;
    if (auto ec = finish_file(what)) {
        spdlog::error("File destination {}: {}; the last gzip member may lack its trailer.", what,
                      ec.message());
        abandon_file();
    }
}

}  // namespace switchyard::destinations
