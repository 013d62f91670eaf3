#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace switchyard::http {

enum class inflate_status { ok, too_large, invalid };

// Inflates a gzip (or zlib) body into `out`, stopping as soon as the output would pass
// `max_out` bytes, so a compression bomb costs at most `max_out` bytes of memory.
inflate_status inflate_body(std::string_view in, std::size_t max_out, std::string& out);

}  // namespace switchyard::http
