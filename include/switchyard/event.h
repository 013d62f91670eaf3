#pragma once

#include "switchyard/result.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace switchyard {

// Segment spec call types. Values are stored in log records: never renumber.
enum class event_type : std::uint8_t {
    unknown = 0,
    track = 1,
    identify = 2,
    page = 3,
    screen = 4,
    group = 5,
    alias = 6,
};

std::string_view to_string(event_type t) noexcept;
event_type event_type_from_string(std::string_view s) noexcept;

// What a log record holds. Destinations receive `event` records; `quarantine` records carry
// events that failed decoding or validation, with the reason, and go to the quarantine store.
// `identity_link` and `deletion` records are produced by the identity stage; destinations
// receive them when configured to (`identity_links`, `deletions`).
enum class record_kind : std::uint8_t {
    event = 0,
    quarantine = 1,
    identity_link = 2,  // two identifiers were linked to one person (identity stitching)
    deletion = 3,       // a person was deleted: destinations that support it remove their data
};

// event_header::flags bits. Stored in log records: never renumber.
inline constexpr std::uint16_t event_flag_bot = 1u << 0;  // enrichment flagged a bot (context.bot)

// The fixed routing header of a canonical event: enough to route, filter and key a message
// without parsing its JSON again.
struct event_header {
    record_kind kind = record_kind::event;
    event_type type = event_type::unknown;
    std::uint16_t flags = 0;
    std::int64_t received_at_ms = 0;  // Unix epoch milliseconds, server clock
    std::string source;               // configured source name
    std::string message_id;
    std::string user_id;
    std::string anonymous_id;
    std::string event_name;  // `event` for track, `name` for page/screen, empty otherwise
};

// A canonical event: the header plus the serialized Segment-spec JSON (serialized once;
// destinations read these bytes).
struct event {
    event_header header;
    std::string json;
    // Where `context` sits in json: the offsets of its '{' and '}' when the decoder wrote it,
    // 0 when unknown. Only a hint for util::set_context_member, which checks it before use and
    // keeps it current; code that rewrites json otherwise sets both to 0.
    std::uint32_t context_open = 0;
    std::uint32_t context_close = 0;
    // Members admission adds to `context` after decoding that the decoder saw the event lack
    // (context_lacks_* bits), so they can be appended at context_close without a search. Only
    // meaningful with the offsets above; cleared bit by bit as the members are added.
    std::uint8_t context_lacks = 0;
};

inline constexpr std::uint8_t context_lacks_tracking_plan = 1;
inline constexpr std::uint8_t context_lacks_violations = 2;
inline constexpr std::uint8_t context_lacks_identity = 4;

// Non-owning view of a decoded log record payload.
struct event_view {
    record_kind kind = record_kind::event;
    event_type type = event_type::unknown;
    std::uint16_t flags = 0;
    std::int64_t received_at_ms = 0;
    std::string_view source;
    std::string_view message_id;
    std::string_view user_id;
    std::string_view anonymous_id;
    std::string_view event_name;
    std::string_view json;
};

// The record's type as destinations name it: the event type, or "identity_link" / "deletion"
// for those record kinds (their `type` is unknown).
std::string_view type_label(const event_view& v) noexcept;

// Serializes `e` as a log record payload, appending to `out`.
void encode_event(const event& e, std::string& out);
void encode_event(const event_header& h, std::string_view json, std::string& out);

// Parses a payload produced by encode_event. The view points into `payload`.
result<event_view> decode_event(std::string_view payload) noexcept;

}  // namespace switchyard
