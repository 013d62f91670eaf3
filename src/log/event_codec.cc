// Log record payload of a canonical event (little endian):
//   u8 version (1) | u8 kind | u8 type | u8 reserved | u16 flags | i64 received_at_ms
//   | 5 × (u32 length | bytes): source, message_id, user_id, anonymous_id, event_name
//   | json (the rest of the payload)
// The header lets delivery route, filter and key events without parsing the JSON.
#include "switchyard/event.h"

#include <cstring>

namespace switchyard {

namespace {

constexpr std::uint8_t codec_version = 1;
constexpr std::size_t fixed_size = 1 + 1 + 1 + 1 + 2 + 8;

template <class T>
void put(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // x86-64 and aarch64 Linux are little endian
    out.append(b, sizeof(T));
}

void put_str(std::string& out, std::string_view s) {
    put<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}

template <class T>
bool get(std::string_view& in, T& v) {
    if (in.size() < sizeof(T)) return false;
    std::memcpy(&v, in.data(), sizeof(T));
    in.remove_prefix(sizeof(T));
    return true;
}

bool get_str(std::string_view& in, std::string_view& s) {
    std::uint32_t n = 0;
    if (!get(in, n) || in.size() < n) return false;
    s = in.substr(0, n);
    in.remove_prefix(n);
    return true;
}

}  // namespace

std::string_view type_label(const event_view& v) noexcept {
    switch (v.kind) {
        case record_kind::identity_link:
            return "identity_link";
        case record_kind::deletion:
            return "deletion";
        default:
            return to_string(v.type);
    }
}

std::string_view to_string(event_type t) noexcept {
    switch (t) {
        case event_type::track:
            return "track";
        case event_type::identify:
            return "identify";
        case event_type::page:
            return "page";
        case event_type::screen:
            return "screen";
        case event_type::group:
            return "group";
        case event_type::alias:
            return "alias";
        case event_type::unknown:
            break;
    }
    return "unknown";
}

event_type event_type_from_string(std::string_view s) noexcept {
    if (s == "track") return event_type::track;
    if (s == "identify") return event_type::identify;
    if (s == "page") return event_type::page;
    if (s == "screen") return event_type::screen;
    if (s == "group") return event_type::group;
    if (s == "alias") return event_type::alias;
    return event_type::unknown;
}

void encode_event(const event_header& h, std::string_view json, std::string& out) {
    out.reserve(out.size() + fixed_size + 20 + h.source.size() + h.message_id.size() +
                h.user_id.size() + h.anonymous_id.size() + h.event_name.size() + json.size());
    put<std::uint8_t>(out, codec_version);
    put<std::uint8_t>(out, static_cast<std::uint8_t>(h.kind));
    put<std::uint8_t>(out, static_cast<std::uint8_t>(h.type));
    put<std::uint8_t>(out, 0);
    put<std::uint16_t>(out, h.flags);
    put<std::int64_t>(out, h.received_at_ms);
    put_str(out, h.source);
    put_str(out, h.message_id);
    put_str(out, h.user_id);
    put_str(out, h.anonymous_id);
    put_str(out, h.event_name);
    out.append(json);
}

void encode_event(const event& e, std::string& out) { encode_event(e.header, e.json, out); }

result<event_view> decode_event(std::string_view in) noexcept {
    event_view v;
    std::uint8_t version = 0, kind = 0, type = 0, reserved = 0;
    if (!get(in, version) || version != codec_version || !get(in, kind) || !get(in, type) ||
        !get(in, reserved) || !get(in, v.flags) || !get(in, v.received_at_ms) ||
        !get_str(in, v.source) || !get_str(in, v.message_id) || !get_str(in, v.user_id) ||
        !get_str(in, v.anonymous_id) || !get_str(in, v.event_name)) {
        return errc::corrupt_record;
    }
    if (kind > static_cast<std::uint8_t>(record_kind::deletion) ||
        type > static_cast<std::uint8_t>(event_type::alias)) {
        return errc::corrupt_record;
    }
    v.kind = static_cast<record_kind>(kind);
    v.type = static_cast<event_type>(type);
    v.json = in;
    return v;
}

}  // namespace switchyard
