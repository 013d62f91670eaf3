#include "util/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define SWITCHYARD_CRC32C_X86 1
#endif

namespace switchyard::util {
namespace {

constexpr std::uint32_t castagnoli_reflected = 0x82F63B78u;

// Slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes.
using crc_tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr crc_tables make_tables() {
    crc_tables t{};
    for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t c = b;
        for (int i = 0; i < 8; ++i) {
            c = (c & 1u) ? (c >> 1) ^ castagnoli_reflected : c >> 1;
        }
        t[0][b] = c;
    }
    for (std::size_t k = 1; k < 8; ++k) {
        for (std::size_t b = 0; b < 256; ++b) {
            t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFFu];
        }
    }
    return t;
}

constexpr crc_tables tables = make_tables();

std::uint64_t load_le64(const unsigned char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);  // x86 and every target we build for are little endian
    return v;
}

using extend_fn = std::uint32_t (*)(std::uint32_t, const void*, std::size_t) noexcept;

extend_fn choose() noexcept {
    return crc32c_hardware_available() ? &crc32c_extend_hardware : &crc32c_extend_software;
}

}  // namespace

std::uint32_t crc32c_extend_software(std::uint32_t crc, const void* data,
                                     std::size_t size) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint32_t c = ~crc;
    while (size >= 8) {
        const std::uint64_t v = load_le64(p) ^ c;
        c = tables[7][v & 0xFF] ^ tables[6][(v >> 8) & 0xFF] ^ tables[5][(v >> 16) & 0xFF] ^
            tables[4][(v >> 24) & 0xFF] ^ tables[3][(v >> 32) & 0xFF] ^
            tables[2][(v >> 40) & 0xFF] ^ tables[1][(v >> 48) & 0xFF] ^ tables[0][v >> 56];
        p += 8;
        size -= 8;
    }
    while (size-- > 0) {
        c = (c >> 8) ^ tables[0][(c ^ *p++) & 0xFFu];
    }
    return ~c;
}

#ifdef SWITCHYARD_CRC32C_X86

// The target attribute lets this compile without -msse4.2; it only runs when the CPU has it.
__attribute__((target("sse4.2"))) std::uint32_t crc32c_extend_hardware(std::uint32_t crc,
                                                                       const void* data,
                                                                       std::size_t size) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t c = ~crc;
    while (size > 0 && (reinterpret_cast<std::uintptr_t>(p) & 7u) != 0) {
        c = _mm_crc32_u8(static_cast<std::uint32_t>(c), *p++);
        --size;
    }
    while (size >= 8) {
        c = _mm_crc32_u64(c, load_le64(p));
        p += 8;
        size -= 8;
    }
    while (size-- > 0) {
        c = _mm_crc32_u8(static_cast<std::uint32_t>(c), *p++);
    }
    return ~static_cast<std::uint32_t>(c);
}

bool crc32c_hardware_available() noexcept {
    static const bool available = __builtin_cpu_supports("sse4.2");
    return available;
}

#else

std::uint32_t crc32c_extend_hardware(std::uint32_t crc, const void* data,
                                     std::size_t size) noexcept {
    return crc32c_extend_software(crc, data, size);
}

bool crc32c_hardware_available() noexcept { return false; }

#endif

std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size) noexcept {
    static const extend_fn fn = choose();
    return fn(crc, data, size);
}

}  // namespace switchyard::util
