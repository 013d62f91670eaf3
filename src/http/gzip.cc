#include "http/gzip.h"

#include <zlib.h>

namespace switchyard::http {

inflate_status inflate_body(std::string_view in, std::size_t max_out, std::string& out) {
    z_stream zs{};
    // 15 + 32: accept gzip and zlib headers.
    if (inflateInit2(&zs, 15 + 32) != Z_OK) return inflate_status::invalid;
    out.clear();
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    std::size_t chunk =
        std::min<std::size_t>(std::max<std::size_t>(in.size() * 4, 4096), max_out + 1);
    inflate_status st = inflate_status::ok;
    for (;;) {
        std::size_t old = out.size();
        std::size_t grow = std::min(chunk, max_out + 1 - old);
        if (grow == 0) {
            st = inflate_status::too_large;
            break;
        }
        out.resize(old + grow);
        zs.next_out = reinterpret_cast<Bytef*>(out.data() + old);
        zs.avail_out = static_cast<uInt>(grow);
        int rc = inflate(&zs, Z_NO_FLUSH);
        out.resize(old + (grow - zs.avail_out));
        if (out.size() > max_out) {
            st = inflate_status::too_large;
            break;
        }
        if (rc == Z_STREAM_END) {
            // Concatenated gzip members are legal; continue if more input remains.
            if (zs.avail_in == 0) break;
            if (inflateReset(&zs) != Z_OK) {
                st = inflate_status::invalid;
                break;
            }
            continue;
        }
        if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
            st = inflate_status::invalid;  // truncated stream
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            st = inflate_status::invalid;
            break;
        }
        chunk *= 2;
    }
    inflateEnd(&zs);
    return st;
}

}  // namespace switchyard::http
