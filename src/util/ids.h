#pragma once

#include <string>
#include <string_view>

namespace switchyard::util {

// Appends a random RFC 4122 version-4 UUID (36 chars) from a per-thread generator seeded from
// the OS, without a syscall per id.
void append_uuid_v4(std::string& out);
std::string uuid_v4();

// Standard and URL-safe base64 decoding (padding optional). False on invalid input.
bool base64_decode(std::string_view in, std::string& out);
std::string base64_encode(std::string_view in);

}  // namespace switchyard::util
