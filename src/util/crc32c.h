#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by the log's record frames.
// The SSE4.2 `crc32` instruction is used when the CPU has it (checked once at run time), and a
// table-driven software version otherwise. All functions are thread-safe and never allocate.
namespace switchyard::util {

// Continues a CRC: `crc` is the value returned for the preceding bytes (0 to start).
std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size) noexcept;

inline std::uint32_t crc32c(std::string_view data) noexcept {
    return crc32c_extend(0, data.data(), data.size());
}

// The two implementations, exposed so tests can check that they agree.
std::uint32_t crc32c_extend_software(std::uint32_t crc, const void* data,
                                     std::size_t size) noexcept;
// Must only be called when crc32c_hardware_available() is true.
std::uint32_t crc32c_extend_hardware(std::uint32_t crc, const void* data,
                                     std::size_t size) noexcept;
bool crc32c_hardware_available() noexcept;

}  // namespace switchyard::util
