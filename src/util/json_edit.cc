#include "util/json_edit.h"

#include "util/json.h"

#include <cstddef>
#include <cstring>

namespace switchyard::util {
namespace {

// A scanner over valid JSON text: positions only, no values built. `s` must be followed by a
// NUL (it views a std::string), which value() relies on.
struct scanner {
    std::string_view s;
    std::size_t i = 0;

    void ws() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    }
    // At a '"': returns the raw (still escaped) content and moves past the closing quote.
    // memchr finds each candidate quote; one preceded by an odd run of backslashes is escaped.
    std::string_view string() {
        const std::size_t start = ++i;
        for (;;) {
            const void* q = i < s.size() ? std::memchr(s.data() + i, '"', s.size() - i) : nullptr;
            if (q == nullptr) {
                i = s.size();
                break;
            }
            const auto pos = static_cast<std::size_t>(static_cast<const char*>(q) - s.data());
            std::size_t b = pos;
            while (b > start && s[b - 1] == '\\') --b;
            i = pos;
            if (((pos - b) & 1) == 0) break;
            ++i;
        }
        std::string_view out = s.substr(start, i - start);
        ++i;
        return out;
    }
    // Skips one value of any kind.
    void value() {
        ws();
        if (i >= s.size()) return;
        if (s[i] == '"') {
            string();
            return;
        }
        if (s[i] == '{' || s[i] == '[') {
            int depth = 0;
            while (i < s.size()) {
                // Jump to the next quote or bracket: strcspn compares 16 bytes at a time, and the
                // text is NUL-terminated (valid JSON holds no raw NUL, so it stops only at the
                // end).
                i += std::strcspn(s.data() + i, "\"{}[]");
                if (i >= s.size()) {
                    i = s.size();
                    return;
                }
                char c = s[i];
                if (c == '"') {
                    string();
                    continue;
                }
                if (c == '{' || c == '[') ++depth;
                if (c == '}' || c == ']') {
                    --depth;
                    if (depth == 0) {
                        ++i;
                        return;
                    }
                }
                ++i;
            }
            return;
        }
        while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
               s[i] != '\n' && s[i] != '\t' && s[i] != '\r') {
            ++i;
        }
    }
};

struct member_span {
    std::size_t begin = 0;  // start of the key's quote
    std::size_t value_begin = 0;
    std::size_t end = 0;  // one past the value
    bool found = false;
};

// Walks the members of the object starting at s[pos] == '{'. Returns the position of its
// closing '}', whether it has members, and the span of `key` if present.
std::size_t walk_object(std::string_view s, std::size_t pos, std::string_view key, member_span& m,
                        bool& empty) {
    scanner sc{s, pos + 1};
    empty = true;
    for (;;) {
        sc.ws();
        if (sc.i >= s.size()) return std::string_view::npos;
        if (s[sc.i] == '}') return sc.i;
        if (s[sc.i] == ',') {
            ++sc.i;
            continue;
        }
        if (s[sc.i] != '"') return std::string_view::npos;
        empty = false;
        const std::size_t kbegin = sc.i;
        std::string_view k = sc.string();
        sc.ws();
        if (sc.i >= s.size() || s[sc.i] != ':') return std::string_view::npos;
        ++sc.i;
        sc.ws();
        const std::size_t vbegin = sc.i;
        sc.value();
        if (k == key && !m.found) {
            m = {kbegin, vbegin, sc.i, true};
        }
    }
}

// Sets `member` in the object whose braces are at json[open] and json[close] (close as
// walk_object found it). Returns the position of the object's '}' after the edit.
std::size_t set_in_object(std::string& json, std::size_t close, const member_span& inner,
                          bool inner_empty, std::string_view member, std::string_view value_json) {
    if (inner.found) {
        const std::size_t old_len = inner.end - inner.value_begin;
        json.replace(inner.value_begin, old_len, value_json);
        return close + value_json.size() - old_len;
    }
    std::string piece = inner_empty ? "" : ",";
    append_json_string(piece, member);
    piece += ':';
    piece += value_json;
    json.insert(close, piece);
    return close + piece.size();
}

}  // namespace

bool set_context_member(std::string& json, std::uint32_t& open, std::uint32_t& close,
                        bool known_absent, std::string_view member, std::string_view value_json) {
    constexpr std::string_view key = "\"context\":";
    if (close != 0 && close < json.size() && open >= key.size() && open < close &&
        json[open] == '{' && json[close] == '}' &&
        std::string_view(json).substr(open - key.size(), key.size()) == key) {
        member_span inner;
        bool inner_empty = close == open + 1;
        if (known_absent || walk_object(json, open, member, inner, inner_empty) == close) {
            const std::size_t end =
                set_in_object(json, close, inner, inner_empty, member, value_json);
            if (end <= UINT32_MAX) {
                close = static_cast<std::uint32_t>(end);
            } else {
                open = close = 0;
            }
            return true;
        }
    }
    open = close = 0;
    return set_nested_member(json, "context", member, value_json);
}

bool set_nested_member(std::string& json, std::string_view object_key, std::string_view member,
                       std::string_view value_json) {
    std::string_view s = json;
    scanner sc{s, 0};
    sc.ws();
    if (sc.i >= s.size() || s[sc.i] != '{') return false;
    member_span outer;
    bool root_empty = true;
    const std::size_t root_close = walk_object(s, sc.i, object_key, outer, root_empty);
    if (root_close == std::string_view::npos) return false;

    std::string piece;
    if (!outer.found) {
        piece = root_empty ? "" : ",";
        append_json_string(piece, object_key);
        piece += ":{";
        append_json_string(piece, member);
        piece += ':';
        piece += value_json;
        piece += '}';
        json.insert(root_close, piece);
        return true;
    }
    if (s[outer.value_begin] != '{') return false;
    member_span inner;
    bool inner_empty = true;
    const std::size_t inner_close = walk_object(s, outer.value_begin, member, inner, inner_empty);
    if (inner_close == std::string_view::npos) return false;
    if (inner.found) {
        json.replace(inner.value_begin, inner.end - inner.value_begin, value_json);
        return true;
    }
    piece = inner_empty ? "" : ",";
    append_json_string(piece, member);
    piece += ':';
    piece += value_json;
    json.insert(inner_close, piece);
    return true;
}

}  // namespace switchyard::util
