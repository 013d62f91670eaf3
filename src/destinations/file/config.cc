#include "destinations/file/file_destination.h"

#include <fmt/format.h>

namespace switchyard::destinations {

std::unique_ptr<destination> make_file_destination(config::map_reader& settings,
                                                   const destination_context& ctx) {
    const std::size_t errors_before = settings.errs().list().size();
    file_destination_options o;

    // In describe mode there is no real destination yet, so the documented default is the rule.
    std::string path = settings.describing() ? std::string("<data_dir>/out/<name>")
                                             : (ctx.data_dir / "out" / ctx.name).string();
    settings.get("path", path,
                 "Directory the NDJSON files are written to; created if missing. Relative paths "
                 "are relative to the daemon's working directory.");
    settings.get("prefix", o.prefix,
                 "File name prefix: files are named <prefix>-<UTC yyyyMMddTHHmmss>-<seq>.ndjson "
                 "(.ndjson.gz with gzip).");
    config::byte_size rotate_bytes{o.rotate_bytes};
    settings.get(
        "rotate_bytes", rotate_bytes,
        "Start a new file once the current one holds this many bytes on disk (compressed "
        "bytes with gzip). Checked between batches, so a file can exceed it by one batch.");
    config::duration rotate_interval = o.rotate_interval;
    settings.get("rotate_interval", rotate_interval,
                 "Start a new file once the current one is this old. Checked when a batch "
                 "arrives.");
    settings.get("gzip", o.gzip,
                 "Compress files with gzip; each file is one gzip member readable by zcat.");
    settings.get("gzip_level", o.gzip_level, "gzip compression level, 0 (none) to 9 (smallest).");
    settings.get("fsync", o.fsync,
                 "fdatasync each batch before reporting it delivered. Without it a power loss can "
                 "lose events that were already acknowledged by this destination.");

    auto key = [&](std::string_view k) {
        return settings.path().empty() ? std::string(k) : settings.path() + "." + std::string(k);
    };
    if (!settings.describing()) {
        if (path.empty()) settings.errs().add(settings.mark(), key("path") + ": must not be empty");
        if (o.prefix.empty() || o.prefix.find('/') != std::string::npos) {
            settings.errs().add(settings.mark(),
                                key("prefix") + ": must be a non-empty file name without '/'");
        }
        if (rotate_bytes.bytes == 0) {
            settings.errs().add(settings.mark(), key("rotate_bytes") + ": must be greater than 0");
        }
        if (rotate_interval.count() <= 0) {
            settings.errs().add(settings.mark(),
                                key("rotate_interval") + ": must be greater than 0");
        }
        if (o.gzip_level < 0 || o.gzip_level > 9) {
            settings.errs().add(settings.mark(), fmt::format("{}: must be between 0 and 9, got {}",
                                                             key("gzip_level"), o.gzip_level));
        }
    }
    settings.finish();
    if (settings.describing() || settings.errs().list().size() != errors_before) return nullptr;

    o.dir = path;
    o.rotate_bytes = rotate_bytes.bytes;
    o.rotate_interval = rotate_interval;
    return std::make_unique<file_destination>(std::move(o));
}

}  // namespace switchyard::destinations
