#include "switchyard/log.h"
#include "util/crc32c.h"

#include <cassert>
#include <cstring>
#include <limits>

namespace switchyard {
namespace {

void put_le32(char* out, std::uint32_t v) noexcept {
    out[0] = static_cast<char>(v & 0xFFu);
    out[1] = static_cast<char>((v >> 8) & 0xFFu);
    out[2] = static_cast<char>((v >> 16) & 0xFFu);
    out[3] = static_cast<char>((v >> 24) & 0xFFu);
}

}  // namespace

void record_batch::add(std::string_view payload) {
    // Payloads are bounded by the HTTP body limits long before 4 GiB; a larger one is a bug.
    assert(payload.size() <= std::numeric_limits<std::uint32_t>::max());
    char header[record_frame_overhead];
    put_le32(header, static_cast<std::uint32_t>(payload.size()));
    put_le32(header + 4, util::crc32c(payload));
    data_.append(header, sizeof header);
    data_.append(payload);
    ++count_;
}

}  // namespace switchyard
