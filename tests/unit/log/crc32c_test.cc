#include "util/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

namespace switchyard::util {
namespace {

TEST(Crc32c, KnownValues) {
    EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
    EXPECT_EQ(crc32c(""), 0u);
    // RFC 3720 (iSCSI) appendix B.4 test vectors.
    EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
    EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
    std::string ascending(32, '\0');
    for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
    EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
}

TEST(Crc32c, SoftwareKnownValue) {
    const std::string check = "123456789";
    EXPECT_EQ(crc32c_extend_software(0, check.data(), check.size()), 0xE3069283u);
}

TEST(Crc32c, ExtendEqualsOneShot) {
    const std::string data = "The quick brown fox jumps over the lazy dog, twice over.";
    for (std::size_t split = 0; split <= data.size(); ++split) {
        const std::uint32_t head = crc32c_extend(0, data.data(), split);
        EXPECT_EQ(crc32c_extend(head, data.data() + split, data.size() - split), crc32c(data))
            << "split at " << split;
    }
}

TEST(Crc32c, HardwareAndSoftwareAgreeOnRandomBuffers) {
    if (!crc32c_hardware_available()) GTEST_SKIP() << "CPU has no SSE4.2";
    std::mt19937_64 rng(20240611);  // fixed seed: deterministic
    std::string buffer(4096 + 16, '\0');
    for (char& c : buffer) c = static_cast<char>(rng());
    for (int i = 0; i < 2000; ++i) {
        const std::size_t offset = rng() % 16;  // exercise unaligned starts
        const std::size_t size = rng() % 4096;
        const char* p = buffer.data() + offset;
        const auto seed = static_cast<std::uint32_t>(rng());
        ASSERT_EQ(crc32c_extend_hardware(seed, p, size), crc32c_extend_software(seed, p, size))
            << "offset " << offset << " size " << size;
    }
}

}  // namespace
}  // namespace switchyard::util
