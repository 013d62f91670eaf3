#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace switchyard::util {

// Sets `object_key.member` in a JSON object text: `json` must be one valid JSON object (as
// simdjson or our serializers produce it). When the top-level key `object_key` holds an object,
// `member` is added to it, replacing an existing `member` there; when it is absent, the object
// `{"member": value}` is added under `object_key`. `value_json` is inserted verbatim (it must be
// valid JSON). Returns false, leaving `json` unchanged, when `object_key` holds a non-object or
// `json` is not an object.
bool set_nested_member(std::string& json, std::string_view object_key, std::string_view member,
                       std::string_view value_json);

// set_nested_member(json, "context", member, value_json), reading only the context object when
// [open, close] are the offsets of its braces (event::context_open/context_close; 0 = unknown).
// The hint is checked (`"context":` right before json[open] == '{', and the object starting
// there ends at close) and, if it does not hold, the whole object is walked as
// set_nested_member does. With `known_absent` (the caller knows the context object at the hint
// lacks `member`, e.g. from event::context_lacks) the member is appended at close without reading
// the object; the offsets must then be current (every edit of the JSON keeps them so or zeroes
// them). On return open/close describe the context object after the edit, or are 0 when that is
// not known.
bool set_context_member(std::string& json, std::uint32_t& open, std::uint32_t& close,
                        bool known_absent, std::string_view member, std::string_view value_json);

}  // namespace switchyard::util
