// The local event log: the embedded default durable log.
//
// On-disk invariants (read these before changing anything in this file):
//
// 1. A log is one directory of segment files named `<base offset, 20 digits zero padded>.seg`.
//    Offsets are logical record sequence numbers: 0, 1, 2, ... continuous across segments, so
//    a segment's records are base, base+1, ... and the next segment's base is one past the last
//    record of the one before it. Nothing else in the directory is ours.
// 2. A segment is a sequence of frames, each `u32 LE payload length | u32 LE crc32c(payload) |
//    payload`, with no header, padding or trailer. A frame is valid when its length fits in the
//    file and its CRC matches; the first invalid frame ends the readable part of a segment.
// 3. Only the last segment (the active one) is ever written, and only by appending whole
//    groups of frames at its valid end. Earlier segments are immutable; a new one is created
//    (and the directory fsynced) when the active segment reaches segment_bytes, so a segment
//    overflows that size by at most one batch.
// 4. Under durability_policy::fsync, a record is acknowledged (its handler called without error
//    and end_offset advanced past it) only after the fdatasync that covers it returned success.
//    Readers never see an offset >= end_offset. So a crash can only lose bytes after the last
//    acknowledged record, and recovery may truncate only those: a torn or corrupt tail of the
//    active segment. Offsets are never reused after a reader has seen them. Under `interval` and
//    `none` a crash may lose acknowledged records, which is what those policies trade away.
// 5. Recovery at open() scans every segment and verifies every frame. A bad tail of the last
//    segment is truncated (ftruncate + fdatasync). A bad frame in an earlier segment is not
//    repaired: the rest of that segment is unreadable and readers jump to the next segment's
//    base offset; it is counted in corrupt_records and logged as an error (data loss).
// 6. Segments are deleted only whole, oldest first, never the active one, and only once every
//    reader's cursor is past their last record (release_before). Bytes on disk plus bytes
//    queued never exceed capacity_bytes: appends beyond it are refused, never dropped.
// 7. After a failed write the segment is truncated back to its valid end. After a failed
//    fdatasync the log refuses every further append with io_error: on Linux a failed fsync may
//    have dropped dirty pages and cleared the error, so a retry could report success for data
//    that is gone. An operator must restart the process, and recovery re-verifies the files.

#include "log/local/local_log.h"

#include "util/crc32c.h"
#include "util/fs.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <limits>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <utility>

namespace switchyard::log {

namespace fs = std::filesystem;

struct local_log::file {
    explicit file(int descriptor) : fd(descriptor) {}
    ~file() {
        if (fd >= 0) ::close(fd);
    }
    file(const file&) = delete;
    file& operator=(const file&) = delete;
    int fd;
};

struct local_log::segment {
    std::uint64_t base = 0;
    fs::path path;
    std::shared_ptr<file> f;
    std::uint64_t bytes = 0;       // bytes of valid, acknowledged-or-being-published frames
    std::uint64_t file_bytes = 0;  // bytes on disk, counted against capacity
    std::uint64_t records = 0;     // valid records
    // Offset where the readable part ends because of damage; records from here up to the next
    // segment's base cannot be read. Max when the segment is intact.
    std::uint64_t readable_end = std::numeric_limits<std::uint64_t>::max();
    // index[k] is the file position of record base + k * index_interval.
    std::vector<std::uint64_t> index;
};

namespace {

using util::fsync_dir;

constexpr std::size_t max_iov = 1024;  // Linux UIO_MAXIOV
constexpr std::size_t scan_chunk = 1 << 20;
constexpr std::size_t read_chunk = 64 << 10;
constexpr std::size_t offset_digits = 20;

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

std::uint32_t get_le32(const char* p) noexcept {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return static_cast<std::uint32_t>(u[0]) | (static_cast<std::uint32_t>(u[1]) << 8) |
           (static_cast<std::uint32_t>(u[2]) << 16) | (static_cast<std::uint32_t>(u[3]) << 24);
}

std::string segment_name(std::uint64_t base) { return fmt::format("{:020}.seg", base); }

bool parse_segment_name(const std::string& name, std::uint64_t& base) {
    if (name.size() != offset_digits + 4 || name.compare(offset_digits, 4, ".seg") != 0) {
        return false;
    }
    const char* first = name.data();
    const char* last = first + offset_digits;
    if (!std::all_of(first, last, [](char c) { return c >= '0' && c <= '9'; })) return false;
    const auto [end, ec] = std::from_chars(first, last, base);
    return ec == std::errc{} && end == last;
}

// Reads exactly `size` bytes at `pos` unless the file ends first; returns the count or -1.
ssize_t pread_full(int fd, char* out, std::size_t size, std::uint64_t pos) {
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(pos + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    return static_cast<ssize_t>(done);
}

// Writes every iovec at `pos`, resuming after partial writes. Consumes `iov`.
std::error_code pwritev_all(int fd, std::vector<iovec>& iov, std::uint64_t pos) {
    std::size_t i = 0;
    while (i < iov.size()) {
        const int count = static_cast<int>(std::min(iov.size() - i, max_iov));
        const ssize_t n = ::pwritev(fd, &iov[i], count, static_cast<off_t>(pos));
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (n == 0) return std::make_error_code(std::errc::io_error);
        pos += static_cast<std::uint64_t>(n);
        auto left = static_cast<std::size_t>(n);
        while (i < iov.size() && left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            ++i;
        }
        if (left > 0) {
            iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
            iov[i].iov_len -= left;
        }
    }
    return {};
}

// Walks the frames of one segment file from `pos` up to `limit`, reading it in chunks through
// `buf` (the caller's, so its capacity is reused).
class frame_reader {
  public:
    enum class status { record, end, corrupt, io_error };

    frame_reader(int fd, std::uint64_t pos, std::uint64_t limit, std::size_t chunk,
                 std::string& buf)
        : fd_(fd), pos_(pos), limit_(limit), chunk_(chunk), buf_(buf) {}

    // On `record`, `payload` views the buffer until the next call; on `corrupt`, `why` says why.
    status next(std::string_view& payload, const char*& why) {
        if (pos_ >= limit_) return status::end;
        if (limit_ - pos_ < record_frame_overhead) {
            why = "a frame header is cut short";
            return status::corrupt;
        }
        if (!ensure(record_frame_overhead)) return status::io_error;
        const char* header = buf_.data() + (pos_ - window_pos_);
        const std::uint32_t length = get_le32(header);
        const std::uint32_t crc = get_le32(header + 4);
        if (length > limit_ - pos_ - record_frame_overhead) {
            why = "a frame length runs past the end of the segment";
            return status::corrupt;
        }
        if (!ensure(record_frame_overhead + length)) return status::io_error;
        payload =
            std::string_view(buf_.data() + (pos_ - window_pos_) + record_frame_overhead, length);
        if (util::crc32c(payload) != crc) {
            why = "a frame failed its CRC32C check";
            return status::corrupt;
        }
        pos_ += record_frame_overhead + length;
        return status::record;
    }

    [[nodiscard]] std::uint64_t pos() const noexcept { return pos_; }
    [[nodiscard]] std::error_code error() const noexcept { return error_; }

  private:
    // Makes [pos_, pos_ + size) available in buf_; false on a read error or a short file.
    bool ensure(std::uint64_t size) {
        if (pos_ >= window_pos_ && pos_ + size <= window_pos_ + window_len_) return true;
        const std::uint64_t want =
            std::min<std::uint64_t>(std::max<std::uint64_t>(size, chunk_), limit_ - pos_);
        if (buf_.size() < want) buf_.resize(want);
        const ssize_t n = pread_full(fd_, buf_.data(), want, pos_);
        if (n < 0) {
            error_ = last_error();
            return false;
        }
        window_pos_ = pos_;
        window_len_ = static_cast<std::uint64_t>(n);
        if (window_len_ < size) {
            error_ = std::make_error_code(std::errc::io_error);  // file shorter than expected
            return false;
        }
        return true;
    }

    int fd_;
    std::uint64_t pos_;
    std::uint64_t limit_;
    std::size_t chunk_;
    std::string& buf_;
    std::uint64_t window_pos_ = 0;
    std::uint64_t window_len_ = 0;
    std::error_code error_;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

local_log::local_log(local_log_options options) : options_(std::move(options)) {}

std::unique_ptr<local_log> local_log::open(local_log_options options) {
    if (options.dir.empty() || options.segment_bytes == 0 || options.capacity_bytes == 0) {
        throw std::system_error(make_error_code(errc::invalid_argument),
                                "local log needs a directory, segment_bytes and capacity_bytes");
    }
    std::unique_ptr<local_log> log(new local_log(std::move(options)));
    log->recover();
    log->writer_ = std::thread([self = log.get()] { self->writer_loop(); });
    log->writer_id_ = log->writer_.get_id();
    spdlog::info("Opened the event log in {} with offsets {} to {} in {} segments.",
                 log->options_.dir.string(), log->start_offset(), log->end_offset(),
                 log->segments_.size());
    return log;
}

local_log::~local_log() { close(); }

void local_log::recover() {
    const fs::path& dir = options_.dir;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::system_error(ec, "cannot create log directory " + dir.string());

    std::vector<std::uint64_t> bases;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        std::uint64_t base = 0;
        if (parse_segment_name(name, base)) {
            bases.push_back(base);
        } else if (name.ends_with(".seg")) {
            spdlog::warn("Ignoring {} in the log directory: not a segment file name.", name);
        }
    }
    if (ec) throw std::system_error(ec, "cannot list log directory " + dir.string());
    std::sort(bases.begin(), bases.end());

    if (bases.empty()) {
        const fs::path path = dir / segment_name(0);
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) throw std::system_error(last_error(), "cannot create " + path.string());
        segment s;
        s.path = path;
        s.f = std::make_shared<file>(fd);
        if (auto dec = fsync_dir(dir)) throw std::system_error(dec, "cannot fsync " + dir.string());
        segments_.push_back(std::move(s));
    }

    std::string buf;
    for (std::size_t i = 0; i < bases.size(); ++i) {
        const bool last = i + 1 == bases.size();
        segment s;
        s.base = bases[i];
        s.path = dir / segment_name(s.base);
        const int fd = ::open(s.path.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0) throw std::system_error(last_error(), "cannot open " + s.path.string());
        s.f = std::make_shared<file>(fd);
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            throw std::system_error(last_error(), "cannot stat " + s.path.string());
        }
        const auto size = static_cast<std::uint64_t>(st.st_size);

        frame_reader reader(fd, 0, size, scan_chunk, buf);
        std::string_view payload;
        const char* why = "";
        frame_reader::status status;
        std::uint64_t frame_pos = 0;
        while ((status = reader.next(payload, why)) == frame_reader::status::record) {
            if (s.records % index_interval == 0) s.index.push_back(frame_pos);
            ++s.records;
            frame_pos = reader.pos();
        }
        if (status == frame_reader::status::io_error) {
            throw std::system_error(reader.error(), "cannot read " + s.path.string());
        }
        s.bytes = frame_pos;
        s.file_bytes = size;

        if (frame_pos < size) {
            ++corrupt_records_;
            if (last) {
                // Only bytes after the last acknowledged record can be bad here (invariant 4).
                spdlog::warn(
                    "Truncated log segment {} from {} to {} bytes because {}; {} intact records "
                    "were kept.",
                    s.path.string(), size, frame_pos, why, s.records);
                if (::ftruncate(fd, static_cast<off_t>(frame_pos)) != 0 || ::fdatasync(fd) != 0) {
                    throw std::system_error(last_error(), "cannot truncate " + s.path.string());
                }
                s.file_bytes = frame_pos;
            } else {
                spdlog::error(
                    "Log segment {} is corrupt at byte {} of {} because {}; records from offset "
                    "{} to {} cannot be read and readers will skip them.",
                    s.path.string(), frame_pos, size, why, s.base + s.records, bases[i + 1] - 1);
                s.readable_end = s.base + s.records;
            }
        }
        if (!last) {
            const std::uint64_t next = bases[i + 1];
            if (s.base + s.records > next) {
                throw std::system_error(make_error_code(errc::corrupt_record),
                                        fmt::format("log segment {} holds {} records, past the "
                                                    "next segment's base offset {}",
                                                    s.path.string(), s.records, next));
            }
            if (s.base + s.records < next && s.readable_end > s.base + s.records) {
                spdlog::error(
                    "Log segment {} ends at offset {} but the next segment starts at {}; the "
                    "records between them are missing.",
                    s.path.string(), s.base + s.records, next);
                s.readable_end = s.base + s.records;
            }
        }
        stored_bytes_ += s.file_bytes;
        segments_.push_back(std::move(s));
    }

    const segment& active = segments_.back();
    active_file_ = active.f;
    active_base_ = active.base;
    active_bytes_ = active.bytes;
    active_records_ = active.records;
    next_offset_ = active.base + active.records;
    end_offset_.store(next_offset_);
    start_offset_.store(segments_.front().base);
}

std::error_code local_log::append(record_batch batch, append_handler done) {
    if (batch.empty() || !done) return make_error_code(errc::invalid_argument);
    const std::uint64_t bytes = batch.bytes();
    {
        std::lock_guard lk(mu_);
        if (closing_) return make_error_code(errc::log_closed);
        if (failed_) return make_error_code(errc::io_error);
        if (stored_bytes_ + queued_bytes_ + bytes > options_.capacity_bytes) {
            full_refusals_.fetch_add(1, std::memory_order_relaxed);
            return make_error_code(errc::log_full);
        }
        queued_bytes_ += bytes;
        queue_.push_back(pending{std::move(batch), std::move(done)});
    }
    writer_cv_.notify_one();
    return {};
}

std::uint64_t local_log::end_offset() const { return end_offset_.load(std::memory_order_acquire); }

std::uint64_t local_log::start_offset() const {
    return start_offset_.load(std::memory_order_acquire);
}

std::uint64_t local_log::wait_for(std::uint64_t offset,
                                  std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lk(mu_);
    reader_cv_.wait_until(lk, deadline, [&] { return end_offset_.load() > offset || closing_; });
    return end_offset_.load();
}

void local_log::writer_loop() {
    std::vector<pending> group;
    const bool interval = options_.durability == durability_policy::interval;
    for (;;) {
        bool closing = false;
        {
            std::unique_lock lk(mu_);
            while (queue_.empty() && !closing_) {
                if (interval && unsynced_) {
                    if (writer_cv_.wait_until(lk, next_sync_) == std::cv_status::timeout) break;
                } else {
                    writer_cv_.wait(lk);
                }
            }
            // Group commit: everything queued while the previous write and fdatasync ran.
            group.swap(queue_);
            closing = closing_;
        }
        if (!group.empty()) commit_group(group);
        group.clear();
        if (interval && unsynced_ && !failed_ && std::chrono::steady_clock::now() >= next_sync_) {
            sync_active();
        }
        if (closing) {
            // closing_ was read together with the swap, so no append was queued after it.
            if (unsynced_ && !failed_) sync_active();
            return;
        }
    }
}

void local_log::commit_group(std::vector<pending>& group) {
    std::size_t i = 0;
    while (i < group.size()) {
        if (failed_) {
            std::uint64_t rest = 0;
            for (std::size_t k = i; k < group.size(); ++k) rest += group[k].batch.bytes();
            fail(group, i, group.size(), rest, make_error_code(errc::io_error));
            return;
        }
        if ((active_bytes_ >= options_.segment_bytes && active_records_ > 0) ||
            roll_requested_.load()) {
            if (!roll()) {
                std::uint64_t rest = 0;
                for (std::size_t k = i; k < group.size(); ++k) rest += group[k].batch.bytes();
                fail(group, i, group.size(), rest, make_error_code(errc::io_error));
                return;
            }
        }
        // A run is what goes into the active segment: up to and including the batch that
        // reaches segment_bytes.
        std::size_t j = i;
        std::uint64_t run_bytes = 0;
        while (j < group.size()) {
            run_bytes += group[j].batch.bytes();
            ++j;
            if (active_bytes_ + run_bytes >= options_.segment_bytes) break;
        }
        commit_run(group, i, j, run_bytes);
        i = j;
    }
}

void local_log::commit_run(std::vector<pending>& group, std::size_t first, std::size_t last,
                           std::uint64_t run_bytes) {
    iov_.clear();
    for (std::size_t k = first; k < last; ++k) {
        const std::string& data = group[k].batch.data();
        iov_.push_back(iovec{const_cast<char*>(data.data()), data.size()});
    }
    const std::uint64_t pos = active_bytes_;
    if (auto ec = pwritev_all(active_file_->fd, iov_, pos)) {
        spdlog::error("Writing {} bytes to log segment {} failed ({}); those appends were refused.",
                      run_bytes, segment_name(active_base_), ec.message());
        if (::ftruncate(active_file_->fd, static_cast<off_t>(pos)) != 0) {
            spdlog::error(
                "Cannot truncate log segment {} back to {} bytes ({}); the log refuses further "
                "appends until it is restarted.",
                segment_name(active_base_), pos, last_error().message());
            std::lock_guard lk(mu_);
            failed_ = true;
        }
        fail(group, first, last, run_bytes, make_error_code(errc::io_error));
        return;
    }
    if (options_.durability == durability_policy::fsync) {
        unsynced_ = true;
        if (!sync_active()) {
            fail(group, first, last, run_bytes, make_error_code(errc::io_error));
            return;
        }
    } else if (!unsynced_) {
        unsynced_ = true;
        next_sync_ = std::chrono::steady_clock::now() + options_.fsync_interval;
    }

    // Publish: index entries for the new frames, then the segment, then end_offset.
    new_index_.clear();
    std::uint64_t records = 0;
    std::uint64_t file_pos = pos;
    std::uint64_t rel = active_records_;
    for (std::size_t k = first; k < last; ++k) {
        const std::string& data = group[k].batch.data();
        std::size_t p = 0;
        while (p + record_frame_overhead <= data.size()) {
            if (rel % index_interval == 0) new_index_.push_back(file_pos + p);
            p += record_frame_overhead + get_le32(data.data() + p);
            ++rel;
        }
        assert(p == data.size());
        file_pos += data.size();
        records += group[k].batch.count();
    }
    assert(rel == active_records_ + records);
    {
        std::unique_lock lk(segments_mu_);
        segment& s = segments_.back();
        s.bytes += run_bytes;
        s.file_bytes += run_bytes;
        s.records += records;
        s.index.insert(s.index.end(), new_index_.begin(), new_index_.end());
    }
    active_bytes_ += run_bytes;
    active_records_ += records;
    std::uint64_t offset = next_offset_;
    next_offset_ += records;
    {
        std::lock_guard lk(mu_);
        end_offset_.store(next_offset_, std::memory_order_release);
        stored_bytes_ += run_bytes;
        queued_bytes_ -= run_bytes;
    }
    reader_cv_.notify_all();
    appended_records_.fetch_add(records, std::memory_order_relaxed);
    appended_bytes_.fetch_add(run_bytes, std::memory_order_relaxed);

    for (std::size_t k = first; k < last; ++k) {
        append_handler done = std::move(group[k].done);
        done(std::error_code{}, offset);
        offset += group[k].batch.count();
    }
}

bool local_log::sync_active() {
    const auto start = std::chrono::steady_clock::now();
    if (::fdatasync(active_file_->fd) != 0) {
        const std::error_code ec = last_error();
        // See invariant 7: the kernel may have dropped the pages, so never retry.
        spdlog::error(
            "fdatasync of log segment {} failed ({}); written records may be lost and the log "
            "refuses further appends until it is restarted.",
            segment_name(active_base_), ec.message());
        std::lock_guard lk(mu_);
        failed_ = true;
        return false;
    }
    const double seconds = seconds_since(start);
    fsyncs_.fetch_add(1, std::memory_order_relaxed);
    unsynced_ = false;
    if (options_.on_fsync) options_.on_fsync(seconds);
    return true;
}

bool local_log::roll() {
    // The sealed segment must be durable before its successor exists (policy none excepted).
    if (unsynced_ && options_.durability != durability_policy::none && !sync_active()) {
        return false;
    }
    const std::uint64_t base = next_offset_;
    segment s;
    s.base = base;
    s.path = options_.dir / segment_name(base);
    const int fd = ::open(s.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        spdlog::error("Cannot create log segment {} ({}); appends are refused until it can be.",
                      s.path.string(), last_error().message());
        return false;
    }
    s.f = std::make_shared<file>(fd);
    if (options_.durability != durability_policy::none) {
        if (auto ec = fsync_dir(options_.dir)) {
            spdlog::error("Cannot fsync the log directory {} ({}); appends are refused.",
                          options_.dir.string(), ec.message());
            ::unlink(s.path.c_str());
            return false;
        }
    }
    active_file_ = s.f;
    active_base_ = base;
    active_bytes_ = 0;
    active_records_ = 0;
    unsynced_ = false;  // under policy none the sealed segment stays unsynced, as promised
    {
        std::unique_lock lk(segments_mu_);
        segments_.push_back(std::move(s));
    }
    roll_requested_.store(false);
    spdlog::debug("Started log segment {}.", segment_name(base));
    return true;
}

void local_log::fail(std::vector<pending>& group, std::size_t first, std::size_t last,
                     std::uint64_t run_bytes, std::error_code ec) {
    {
        std::lock_guard lk(mu_);
        queued_bytes_ -= run_bytes;
    }
    for (std::size_t k = first; k < last; ++k) {
        append_handler done = std::move(group[k].done);
        done(ec, next_offset_);
    }
}

void local_log::note_corrupt_in_reader(std::uint64_t base, std::uint64_t offset, const char* why) {
    std::unique_lock lk(segments_mu_);
    auto it = std::find_if(segments_.begin(), segments_.end(),
                           [&](const segment& s) { return s.base == base; });
    if (it == segments_.end() || offset >= it->readable_end) return;  // already known
    it->readable_end = offset;
    corrupt_records_.fetch_add(1, std::memory_order_relaxed);
    const bool active = std::next(it) == segments_.end();
    if (active) roll_requested_.store(true);  // so readers can skip to a new segment
    spdlog::error(
        "Log record {} in segment {} is corrupt because {}; readers skip the rest of that "
        "segment.",
        offset, it->path.string(), why);
}

result<std::uint64_t> local_log::read(std::uint64_t from, std::size_t max_records,
                                      std::size_t max_bytes, std::vector<log_record>& out) {
    thread_local std::string buf;  // reused across calls on each delivery thread
    const std::uint64_t end = end_offset_.load(std::memory_order_acquire);
    std::uint64_t next = std::max(from, start_offset_.load(std::memory_order_acquire));
    std::size_t records = 0;
    std::size_t bytes = 0;
    bool full = false;
    while (!full && next < end && records < max_records) {
        std::shared_ptr<file> f;
        std::uint64_t base = 0;
        std::uint64_t limit_bytes = 0;
        std::uint64_t stop = end;
        std::uint64_t readable_end = 0;
        std::uint64_t next_base = std::numeric_limits<std::uint64_t>::max();
        std::uint64_t file_pos = 0;
        std::uint64_t offset = 0;
        {
            std::shared_lock lk(segments_mu_);
            next = std::max(next, start_offset_.load(std::memory_order_acquire));
            auto it =
                std::upper_bound(segments_.begin(), segments_.end(), next,
                                 [](std::uint64_t o, const segment& s) { return o < s.base; });
            if (it == segments_.begin()) {
                next = segments_.front().base;  // released while we looked
                continue;
            }
            if (it != segments_.end()) next_base = it->base;
            const segment& s = *std::prev(it);
            base = s.base;
            f = s.f;
            limit_bytes = s.bytes;
            readable_end = s.readable_end;
            stop = std::min({end, s.base + s.records, next_base});
            if (next < readable_end && next < stop) {
                const std::size_t k =
                    std::min<std::size_t>((next - s.base) / index_interval, s.index.size() - 1);
                file_pos = s.index[k];
                offset = s.base + k * index_interval;
            }
        }
        if (next >= readable_end || next >= stop) {
            if (next_base != std::numeric_limits<std::uint64_t>::max()) {
                next = std::max(next, next_base);
                continue;
            }
            if (next >= readable_end) {
                if (records > 0) break;
                return make_error_code(errc::corrupt_record);
            }
            break;  // cannot happen: next < end lies in some segment
        }
        stop = std::min(stop, readable_end);

        frame_reader reader(f->fd, file_pos, limit_bytes, read_chunk, buf);
        std::string_view payload;
        const char* why = "";
        while (offset < stop && records < max_records) {
            const auto status = reader.next(payload, why);
            if (status == frame_reader::status::record) {
                if (offset >= next) {
                    if (records > 0 && bytes + payload.size() > max_bytes) {
                        full = true;
                        break;
                    }
                    out.push_back(log_record{offset, std::string(payload)});
                    ++records;
                    bytes += payload.size();
                    next = offset + 1;
                    if (bytes >= max_bytes) full = true;
                }
                ++offset;
                if (full) break;
                continue;
            }
            if (status == frame_reader::status::io_error) {
                spdlog::error("Reading log segment {} failed ({}).", segment_name(base),
                              reader.error().message());
                if (records > 0) return next;
                return make_error_code(errc::io_error);
            }
            // corrupt, or the file ends before the records it should hold
            if (status == frame_reader::status::end) why = "the segment ends early";
            note_corrupt_in_reader(base, offset, why);
            next = std::max(next, offset);
            break;
        }
    }
    return next;
}

void local_log::release_before(std::uint64_t offset) {
    std::uint64_t freed = 0;
    std::size_t removed = 0;
    {
        std::unique_lock lk(segments_mu_);
        // The front segment's last offset is the next segment's base minus one.
        while (segments_.size() > 1 && segments_[1].base <= offset) {
            const segment& s = segments_.front();
            if (::unlink(s.path.c_str()) != 0 && errno != ENOENT) {
                spdlog::error("Cannot delete released log segment {} ({}).", s.path.string(),
                              last_error().message());
                break;
            }
            freed += s.file_bytes;
            ++removed;
            segments_.pop_front();  // readers still holding its fd keep reading safely
        }
        if (removed > 0) start_offset_.store(segments_.front().base, std::memory_order_release);
    }
    if (removed > 0) {
        std::lock_guard lk(mu_);
        stored_bytes_ -= freed;
        spdlog::debug("Released {} log segments ({} bytes) before offset {}.", removed, freed,
                      offset);
    }
}

log_stats local_log::stats() const {
    log_stats s;
    s.start_offset = start_offset();
    s.end_offset = end_offset();
    {
        std::lock_guard lk(mu_);
        s.bytes = stored_bytes_ + queued_bytes_;
    }
    s.capacity_bytes = options_.capacity_bytes;
    {
        std::shared_lock lk(segments_mu_);
        s.segments = segments_.size();
    }
    s.appended_records = appended_records_.load(std::memory_order_relaxed);
    s.appended_bytes = appended_bytes_.load(std::memory_order_relaxed);
    s.fsyncs = fsyncs_.load(std::memory_order_relaxed);
    s.corrupt_records = corrupt_records_.load(std::memory_order_relaxed);
    s.full_refusals = full_refusals_.load(std::memory_order_relaxed);
    return s;
}

void local_log::close() {
    assert(std::this_thread::get_id() != writer_id_ && "handlers must not call close()");
    std::lock_guard cl(close_mu_);
    {
        std::lock_guard lk(mu_);
        closing_ = true;
    }
    writer_cv_.notify_all();
    reader_cv_.notify_all();
    if (writer_.joinable()) {
        writer_.join();
        spdlog::info("Closed the event log in {} at offset {}.", options_.dir.string(),
                     end_offset());
    }
}

}  // namespace switchyard::log
