#pragma once

#include "config/reader.h"
#include "destinations/registry.h"
#include "switchyard/destination.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>

// Defined by <zlib.h>; kept out of this header so users of the destination don't see zlib.
struct z_stream_s;

namespace switchyard::destinations {

struct file_destination_options {
    std::filesystem::path dir;  // created on first use; relative paths resolve against the cwd
    std::string prefix = "events";
    std::uint64_t rotate_bytes = std::uint64_t{128} << 20;  // bytes on disk (compressed for gzip)
    std::chrono::milliseconds rotate_interval = std::chrono::hours(1);
    bool gzip = false;
    int gzip_level = 6;  // 0..9, zlib's scale
    bool fsync = true;   // fdatasync before reporting a batch delivered
    // Wall clock for file names and time rotation; tests inject a fake one. Empty = system clock.
    std::function<std::chrono::system_clock::time_point()> now;
};

// Writes events as NDJSON files: one canonical event JSON per line, optionally gzip-compressed.
//
// Files are named `<prefix>-<UTC yyyyMMddTHHmmss>-<seq>.ndjson[.gz]` and are never reopened: each
// run (and each rotation, and each recovery from a write error) starts a new file, so a file
// left unfinished by a crash is never appended to. A crash can leave a truncated last line, or
// a gzip member without its trailer, at the end of the newest file; after a crash the delivery
// engine resends from its committed cursor, so events may repeat (at-least-once).
//
// Rotation (size or age) is checked when a batch arrives, so a file may exceed rotate_bytes by
// one batch and an idle file stays open past rotate_interval until the next batch or close().
//
// Lifecycle: built by make_file_destination at start; send() and close() are called only by its
// delivery worker thread. healthy() may be called from any thread.
class file_destination final : public destination {
  public:
    explicit file_destination(file_destination_options options);
    ~file_destination() override;

    file_destination(const file_destination&) = delete;
    file_destination& operator=(const file_destination&) = delete;

    send_outcome send(std::span<const delivery_item> batch) override;
    bool healthy() const override { return healthy_.load(std::memory_order_relaxed); }
    void close() override;

    // The file currently being written, empty when none is open. For tests and logs.
    const std::filesystem::path& current_file() const noexcept { return path_; }

  private:
    std::chrono::system_clock::time_point now() const;
    std::error_code open_file(std::string& what);
    // Finishes the current file (gzip trailer, fdatasync) and closes it.
    std::error_code finish_file(std::string& what);
    // After a failed write: cuts the file back to its last complete batch, makes it a valid
    // gzip member if needed, and closes it, so the retry starts cleanly in a new file.
    void abandon_file();
    std::error_code write_batch(std::span<const delivery_item> batch, std::string& what);
    std::error_code write_all(const char* data, std::size_t size);
    std::error_code deflate_and_write(const char* data, std::size_t size, int flush);
    send_outcome fail(std::error_code ec, const std::string& what);

    file_destination_options opts_;
    int fd_ = -1;
    std::filesystem::path path_;
    std::uint64_t file_bytes_ = 0;       // bytes written to the current file
    std::uint64_t committed_bytes_ = 0;  // file size after the last complete batch
    std::uint32_t committed_crc_ = 0;    // gzip: crc32 of the uncompressed data up to there
    std::uint32_t committed_isize_ = 0;  // gzip: uncompressed size mod 2^32 up to there
    std::chrono::system_clock::time_point opened_at_{};
    std::uint64_t seq_ = 0;
    std::unique_ptr<z_stream_s> zs_;
    bool zs_active_ = false;
    std::string line_buf_;
    std::string zout_;
    std::atomic<bool> healthy_{true};
};

// The `file` destination factory: reads `path`, `prefix`, `rotate_bytes`, `rotate_interval`,
// `gzip`, `gzip_level` and `fsync`. In describe mode it only documents them and returns null.
std::unique_ptr<destination> make_file_destination(config::map_reader& settings,
                                                   const destination_context& ctx);

}  // namespace switchyard::destinations
