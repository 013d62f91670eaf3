#include "switchyard/log.h"
#include "switchyard/result.h"
#include "util/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace switchyard {
namespace {

std::uint32_t le32(const std::string& s, std::size_t at) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at])) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 1])) << 8 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 2])) << 16 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 3])) << 24;
}

// Decodes frames the way the log does; stops at the first bad one.
std::vector<std::string> decode(const std::string& data) {
    std::vector<std::string> out;
    std::size_t p = 0;
    while (p + record_frame_overhead <= data.size()) {
        const std::uint32_t length = le32(data, p);
        const std::uint32_t crc = le32(data, p + 4);
        if (length > data.size() - p - record_frame_overhead) break;
        std::string payload = data.substr(p + record_frame_overhead, length);
        if (util::crc32c(payload) != crc) break;
        out.push_back(std::move(payload));
        p += record_frame_overhead + length;
    }
    return out;
}

TEST(RecordBatch, FrameLayout) {
    record_batch batch;
    batch.add("123456789");
    ASSERT_EQ(batch.bytes(), record_frame_overhead + 9);
    EXPECT_EQ(batch.count(), 1u);
    EXPECT_EQ(le32(batch.data(), 0), 9u);
    EXPECT_EQ(le32(batch.data(), 4), 0xE3069283u);
    EXPECT_EQ(batch.data().substr(8), "123456789");
}

TEST(RecordBatch, RoundTrip) {
    const std::vector<std::string> payloads = {"", "a", std::string(1000, 'x'),
                                               std::string("\0\1\2", 3), "{\"type\":\"track\"}"};
    record_batch batch;
    for (const auto& p : payloads) batch.add(p);
    EXPECT_EQ(batch.count(), payloads.size());
    EXPECT_EQ(decode(batch.data()), payloads);
    batch.clear();
    EXPECT_TRUE(batch.empty());
    EXPECT_EQ(batch.bytes(), 0u);
}

TEST(RecordBatch, ErrorCategory) {
    const std::error_code ec = errc::log_full;
    EXPECT_STREQ(ec.category().name(), "switchyard");
    EXPECT_FALSE(ec.message().empty());
    EXPECT_NE(make_error_code(errc::log_closed).message(), ec.message());
}

}  // namespace
}  // namespace switchyard
