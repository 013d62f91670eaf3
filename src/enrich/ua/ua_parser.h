#pragma once

#include <simdjson.h>

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::enrich::ua {

// What a user agent says about the browser, the OS and the device, in uap-core's terms. An empty
// string means absent.
struct result {
    std::string browser_family;  // "Other" when no regex matched
    std::string browser_major, browser_minor, browser_patch, browser_patch_minor;
    std::string os_family;  // "Other" when no regex matched
    std::string os_major, os_minor, os_patch, os_patch_minor;
    std::string device_family;  // "Other" when no regex matched; "Spider" for crawlers
    std::string device_brand, device_model;
    // Derived from the above and the UA string (rules in README.md): "desktop", "mobile",
    // "tablet", "tv", "console", "wearable", "bot" or "unknown".
    std::string device_type;

    bool spider() const noexcept { return device_family == "Spider"; }
    bool operator==(const result&) const = default;
};

// "major[.minor[.patch[.patch_minor]]]", stopping at the first empty part; "" without a major.
std::string browser_version(const result& r);
std::string os_version(const result& r);

struct options {
    // Only the first max_length bytes of a UA are parsed (cut back to a UTF-8 character
    // boundary): a hostile UA costs at most that much regex work.
    std::size_t max_length = 1024;
    // Find each section's first matching regex through the literal prefilter (true), or by
    // trying the regexes one by one (false: slow, kept to check that both give the same
    // answers).
    bool use_prefilter = true;
    // Threads that compile the regexes at load (0: one per CPU). The parser is the same whatever
    // the number; it only changes how long loading takes.
    unsigned load_threads = 0;
};

// The uap-core regexes compiled with RE2 (linear-time matching: a hostile UA cannot stall a
// thread). Immutable once loaded and shared by every I/O thread: parse() keeps no mutable state.
class parser {
  public:
    // Loads and compiles regexes.yaml. A file that cannot be read or parsed, or that lacks one of
    // the three sections, gives null and err "path:line:col: message" (or "path: message" when
    // there is no position). Regexes RE2 cannot compile are skipped, not fatal: unsupported()
    // lists them.
    static std::shared_ptr<const parser> load(const std::string& path, options o, std::string& err);
    // Same, from the text of a regexes.yaml; `name` stands for the path in messages.
    static std::shared_ptr<const parser> from_text(std::string_view yaml, std::string_view name,
                                                   options o, std::string& err);

    ~parser();
    parser(const parser&) = delete;
    parser& operator=(const parser&) = delete;

    // First matching regex of each section wins; "Other" where none matches. Thread-safe.
    result parse(std::string_view user_agent) const;

    // Which regex decided each section for this UA, as file indexes (user agent, OS, device);
    // -1 where none matched. For diagnostics: explains a parse() result.
    std::array<int, 3> explain(std::string_view user_agent) const;

    // One line per skipped regex: "<section>[<index>] <pattern>: <RE2 error>", index counted from
    // 0 in the file's order.
    const std::vector<std::string>& unsupported() const noexcept;
    // Whether regex `index` (file order) of `section` ("user_agent_parsers", "os_parsers",
    // "device_parsers") was skipped as unsupported.
    bool is_unsupported(std::string_view section, std::size_t index) const noexcept;
    // Compiled regexes, all sections.
    std::size_t regex_count() const noexcept;
    const options& opts() const noexcept;

    struct impl;

  private:
    explicit parser(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

// Refines `r` with the User-Agent Client Hints that analytics.js sends as
// context.userAgentData (NavigatorUAData.toJSON(), plus the high-entropy values the page asked
// for): brands / fullVersionList (browser), platform / platformVersion (OS), mobile (device
// type), model (device model). Rules in README.md. Members that are missing or of the wrong type
// are ignored; never throws. Returns whether anything was used.
bool apply_client_hints(simdjson::dom::element user_agent_data, result& r);

// The device type rules on their own (parse() applies them): r's families plus the UA text.
std::string_view derive_device_type(const result& r, std::string_view user_agent) noexcept;

}  // namespace switchyard::enrich::ua
