#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::enrich::bots {

// Why an event was flagged. The enrichment stage only flags; a per-source policy decides
// whether bots are delivered or quarantined.
enum class reason : std::uint8_t { none, empty_user_agent, spider, crawler, tool, headless };

// "empty_user_agent", "spider", "crawler", "tool", "headless"; "none" for reason::none.
std::string_view to_string(reason r) noexcept;

struct verdict {
    bool is_bot = false;
    reason why = reason::none;
    // The data file's (or extra pattern's) name for what matched ("Googlebot", "curl",
    // "HeadlessChrome"); empty for empty_user_agent and spider.
    std::string name;
};

// Only this much of a user agent is looked at, for every rule (the empty check included), so a
// hostile user agent costs one bounded scan.
inline constexpr std::size_t max_user_agent_bytes = 1024;

// Flags bots from the user agent and uap-core's device verdict. Built once at start-up (or on
// config reload) by load() or from_text() and immutable afterwards: check() is safe to call from
// every I/O thread at once. The owner (the enrichment stage) keeps it in a unique_ptr.
class detector {
  public:
    ~detector();
    detector(const detector&) = delete;
    detector& operator=(const detector&) = delete;

    // Loads the data file: one pattern per line, three tab-separated columns: kind (crawler,
    // tool, headless), name, RE2 pattern (case-insensitive, unanchored). Blank lines and lines
    // starting with '#' are skipped; a name may repeat. `extra` (config: enrich.bots.
    // extra_patterns) adds crawler patterns, each "name=regex" or a bare regex (its name is then
    // the regex itself); see README.md for how "name=" is told apart from a regex. On an error
    // returns null and sets err to "file:line: message" (a bad kind, a missing column, an empty
    // name or pattern, RE2's compile error, a pattern that matches the empty string), or
    // "extra_patterns[i]: message" for the i-th (0-based) extra pattern.
    static std::unique_ptr<detector> load(const std::string& path,
                                          const std::vector<std::string>& extra, std::string& err);
    // Same, from text; errors name the file "<text>".
    static std::unique_ptr<detector> from_text(std::string_view tsv,
                                               const std::vector<std::string>& extra,
                                               std::string& err);

    // `ua` is the event's context.userAgent, `uap_spider` whether uap-core's device parser
    // called it a "Spider". Looks at the first max_user_agent_bytes of `ua`; first match wins:
    //  1. empty or whitespace-only → empty_user_agent;
    //  2. a headless pattern → headless (before the rest so that "HeadlessChrome" is never
    //     taken for plain Chrome by anyone downstream);
    //  3. a tool pattern → tool;
    //  4. a crawler pattern → crawler (extra patterns before the file's, then file order, so
    //     that an operator's or a specific name beats the generic fallbacks);
    //  5. uap_spider → spider (after the list, so that a listed crawler is reported by name);
    //  6. otherwise not a bot.
    // Within a kind the earliest pattern wins. One RE2::Set pass decides whether anything
    // matches at all (it stops at the first match and allocates nothing, the common case for
    // browsers); only a user agent that matches is scanned a second time to list the matches.
    verdict check(std::string_view ua, bool uap_spider) const;

    // Patterns loaded: the data file's plus the extra ones.
    std::size_t pattern_count() const noexcept;

  private:
    struct impl;  // the patterns and their compiled RE2::Set, in bots.cc

    explicit detector(std::unique_ptr<impl> p);
    static std::unique_ptr<detector> build(std::string_view text, std::string_view file,
                                           const std::vector<std::string>& extra, std::string& err);

    std::unique_ptr<const impl> impl_;
};

}  // namespace switchyard::enrich::bots
