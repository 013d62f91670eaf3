#pragma once

// Length-prefixed binary encoding of the identity store's values (little-endian integers,
// strings as u32 length + bytes). Internal to identity/.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::identity::codec {

inline void put_u32(std::string& o, std::uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    o.append(b, 4);
}
inline void put_i64(std::string& o, std::int64_t v) {
    auto u = static_cast<std::uint64_t>(v);
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((u >> (8 * i)) & 0xff);
    o.append(b, 8);
}
inline void put_str(std::string& o, std::string_view s) {
    put_u32(o, static_cast<std::uint32_t>(s.size()));
    o.append(s);
}
inline void put_list(std::string& o, const std::vector<std::string>& l) {
    put_u32(o, static_cast<std::uint32_t>(l.size()));
    for (const auto& s : l) put_str(o, s);
}

struct reader {
    std::string_view in;
    bool ok = true;
    std::uint64_t raw(int n) {
        if (!ok || in.size() < static_cast<std::size_t>(n)) {
            ok = false;
            return 0;
        }
        std::uint64_t v = 0;
        for (int i = 0; i < n; ++i)
            v |= std::uint64_t(static_cast<unsigned char>(in[i])) << (8 * i);
        in.remove_prefix(static_cast<std::size_t>(n));
        return v;
    }
    std::uint32_t u32() { return static_cast<std::uint32_t>(raw(4)); }
    std::int64_t i64() { return static_cast<std::int64_t>(raw(8)); }
    std::string str() {
        auto n = u32();
        if (!ok || in.size() < n) {
            ok = false;
            return {};
        }
        std::string s(in.substr(0, n));
        in.remove_prefix(n);
        return s;
    }
    std::vector<std::string> list() {
        auto n = u32();
        std::vector<std::string> l;
        if (!ok || n > in.size()) {  // every entry takes at least 4 bytes
            ok = false;
            return l;
        }
        l.reserve(n);
        for (std::uint32_t i = 0; i < n && ok; ++i) l.push_back(str());
        return l;
    }
};

}  // namespace switchyard::identity::codec
