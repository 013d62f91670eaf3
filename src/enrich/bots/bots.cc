#include "enrich/bots/bots.h"

#include "util/fs.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <re2/re2.h>
#include <re2/set.h>
#include <sstream>
#include <utility>

namespace switchyard::enrich::bots {

namespace {

// Cap on the compiled set plus its DFA cache. The cache fills lazily with the states real user
// agents reach; a few hundred literal-like patterns use a small fraction of this. Should the DFA
// still run out, check() falls back to the patterns one by one (see first_match).
constexpr std::int64_t set_max_mem = 32 << 20;

RE2::Options pattern_options(std::int64_t max_mem) {
    RE2::Options o;
    o.set_case_sensitive(false);
    o.set_log_errors(false);  // errors are returned to the caller, not printed
    o.set_max_mem(max_mem);
    return o;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

bool parse_kind(std::string_view s, reason& out) {
    for (auto k : {reason::crawler, reason::tool, reason::headless}) {
        if (s == to_string(k)) {
            out = k;
            return true;
        }
    }
    return false;
}

// A name before '=' in an extra pattern: letters, digits, space, '_', '-', '.'. Anything else
// (a parenthesis, a backslash, a bracket...) means the '=' belongs to a bare regex.
bool looks_like_name(std::string_view s) {
    if (trim(s).empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == ' ' || c == '_' || c == '-' || c == '.';
    });
}

// Priority groups, in the order check() tries them.
enum group : std::size_t { headless_group, tool_group, extra_group, crawler_group, group_count };

}  // namespace

struct detector::impl {
    struct entry {
        reason kind;
        std::string name;
        std::unique_ptr<RE2> re;  // the pattern alone: validation, and the out-of-memory path
    };

    // Priority order; a Set match index is an index into this vector.
    std::vector<entry> entries;
    RE2::Set set{pattern_options(set_max_mem), RE2::UNANCHORED};

    // The first entry (in priority order) matching `ua`, or -1.
    int first_match(std::string_view ua) const {
        if (entries.empty()) return -1;
        RE2::Set::ErrorInfo info{RE2::Set::kNoError};
        // Without a result vector the DFA stops at the first match and allocates nothing.
        if (!set.Match(ua, nullptr, &info)) {
            if (info.kind == RE2::Set::kNoError) return -1;
            return first_match_one_by_one(ua);
        }
        std::vector<int> hits;
        if (!set.Match(ua, &hits, &info) || hits.empty()) return first_match_one_by_one(ua);
        return *std::min_element(hits.begin(), hits.end());
    }

    // Slower but always answers: each RE2 falls back to the NFA when its DFA runs out.
    int first_match_one_by_one(std::string_view ua) const {
        for (std::size_t i = 0; i < entries.size(); ++i)
            if (RE2::PartialMatch(ua, *entries[i].re)) return static_cast<int>(i);
        return -1;
    }
};

std::string_view to_string(reason r) noexcept {
    switch (r) {
        case reason::none:
            return "none";
        case reason::empty_user_agent:
            return "empty_user_agent";
        case reason::spider:
            return "spider";
        case reason::crawler:
            return "crawler";
        case reason::tool:
            return "tool";
        case reason::headless:
            return "headless";
    }
    return "none";
}

detector::detector(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

detector::~detector() = default;

std::size_t detector::pattern_count() const noexcept { return impl_->entries.size(); }

std::unique_ptr<detector> detector::load(const std::string& path,
                                         const std::vector<std::string>& extra, std::string& err) {
    std::string text;
    if (!util::read_file(path, text, err)) return nullptr;
    return build(text, path, extra, err);
}

std::unique_ptr<detector> detector::from_text(std::string_view tsv,
                                              const std::vector<std::string>& extra,
                                              std::string& err) {
    return build(tsv, "<text>", extra, err);
}

std::unique_ptr<detector> detector::build(std::string_view text, std::string_view file,
                                          const std::vector<std::string>& extra, std::string& err) {
    std::array<std::vector<impl::entry>, group_count> groups;
    std::string where;  // "file:line" or "extra_patterns[i]", for messages
    auto fail = [&](const std::string& msg) {
        err = where + ": " + msg;
        return nullptr;
    };
    // Compiles one pattern on its own, so that a bad one is reported with its RE2 error and its
    // place, before the set is built.
    auto compile = [&](std::string_view pattern, std::string& why) -> std::unique_ptr<RE2> {
        if (pattern.empty()) {
            why = "empty pattern";
            return nullptr;
        }
        auto re = std::make_unique<RE2>(pattern, pattern_options(RE2::Options().max_mem()));
        if (!re->ok()) {
            why = "bad pattern '" + std::string(pattern) + "': " + re->error();
            return nullptr;
        }
        if (RE2::PartialMatch("", *re)) {
            why = "pattern '" + std::string(pattern) +
                  "' matches the empty string (it would flag every user agent)";
            return nullptr;
        }
        return re;
    };

    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        // Only spaces and '\r' are trimmed here: a trailing tab is an (empty) column.
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
        while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (line.empty() || line.front() == '#') continue;
        where = std::string(file) + ":" + std::to_string(line_no);

        std::array<std::string_view, 3> fields;
        std::size_t n = 0;
        for (std::string_view rest = line;; ++n) {
            auto tab = rest.find('\t');
            if (n < fields.size()) fields[n] = trim(rest.substr(0, tab));
            if (tab == std::string_view::npos) break;
            rest = rest.substr(tab + 1);
        }
        if (n + 1 != fields.size())
            return fail("expected 3 tab-separated columns (kind, name, pattern), got " +
                        std::to_string(n + 1));
        reason kind;
        if (!parse_kind(fields[0], kind))
            return fail("unknown kind '" + std::string(fields[0]) + "' (crawler, tool, headless)");
        if (fields[1].empty()) return fail("empty name");
        std::string why;
        auto re = compile(fields[2], why);
        if (!re) return fail(why);
        auto g = kind == reason::headless ? headless_group
                 : kind == reason::tool   ? tool_group
                                          : crawler_group;
        groups[g].push_back({kind, std::string(fields[1]), std::move(re)});
    }

    for (std::size_t i = 0; i < extra.size(); ++i) {
        where = "extra_patterns[" + std::to_string(i) + "]";
        std::string_view spec = trim(extra[i]);
        std::string_view name, pattern = spec;
        if (auto eq = spec.find('='); eq != std::string_view::npos) {
            if (eq == 0) return fail("empty name before '='");
            if (looks_like_name(spec.substr(0, eq))) {
                name = trim(spec.substr(0, eq));
                pattern = trim(spec.substr(eq + 1));
            }
        }
        std::string why;
        auto re = compile(pattern, why);
        if (!re) return fail(why);
        groups[extra_group].push_back(
            {reason::crawler, std::string(name.empty() ? pattern : name), std::move(re)});
    }

    auto out = std::make_unique<impl>();
    for (auto& g : groups) {
        for (auto& e : g) {
            std::string why;
            if (out->set.Add(e.re->pattern(), &why) < 0) {
                // Not reached: the pattern compiled on its own with the same options.
                err = std::string(file) + ": pattern '" + e.re->pattern() + "': " + why;
                return nullptr;
            }
            out->entries.push_back(std::move(e));
        }
    }
    if (!out->entries.empty() && !out->set.Compile()) {
        err = std::string(file) + ": the patterns together are too large to compile";
        return nullptr;
    }
    return std::unique_ptr<detector>(new detector(std::move(out)));
}

verdict detector::check(std::string_view ua, bool uap_spider) const {
    ua = ua.substr(0, max_user_agent_bytes);
    if (std::all_of(ua.begin(), ua.end(), is_space)) return {true, reason::empty_user_agent, {}};
    if (int i = impl_->first_match(ua); i >= 0) {
        const auto& e = impl_->entries[static_cast<std::size_t>(i)];
        return {true, e.kind, e.name};
    }
    if (uap_spider) return {true, reason::spider, {}};
    return {};
}

}  // namespace switchyard::enrich::bots
