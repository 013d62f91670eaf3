// The uap-core parser. How a section finds its first matching regex quickly, with the same
// answer as trying the regexes one by one in file order (which use_prefilter = false does):
//
//  1. Prefilter. Each regex is cut into "factors": pieces of its top-level concatenation that
//     every match must contain (the runs between repetitions and wide items such as "[^;]",
//     "\d", "."), expanded into lowercase literal "atoms" ("[Bb]ot" → "bot"). One
//     Aho-Corasick automaton over all atoms, built at load, scans the UA once. A regex is a
//     candidate when each of its factors had an atom in the UA; a regex without usable factors
//     is a candidate for every UA. Candidates are a superset of the matching regexes.
//  2. Candidates are tried in file order; the first that matches wins.
//  3. Each regex is compiled twice: as written ("exact"), and "relaxed": each large counted
//     repetition of a single character ("[^;]{1,200}", ".{0,100}") becomes unbounded
//     ("[^;]{1,}") inside an extra capture group. Bounded repetitions make RE2's DFA count
//     positions, which multiplies its states; the relaxed forms do not. A candidate runs in its
//     relaxed form. If that matches and every extra group is within its original bound, the
//     match is also the exact regex's match, with the same groups: the exact regex's paths are
//     the relaxed regex's paths that respect the bounds, in the same priority order, so the
//     relaxed regex's first path, respecting them, is the exact regex's first path. (Each
//     iteration consumes one byte, so a group's length is its iteration count; repetitions
//     inside a repeated group are never relaxed.) Otherwise the exact regex decides.
//
// Why not an RE2::Set over all the regexes: its DFA is built lazily, and with ~1,200 unanchored
// patterns full of repetitions each new UA creates new states (hundreds of microseconds per
// unseen UA on diverse traffic, and a cache that must be bounded and then thrashes). The
// automaton above costs one table lookup per byte and never grows.
//
// Matching is bytewise (RE2's Latin-1 mode): any byte sequence is a valid input and "." is one
// byte. uap-core's patterns are ASCII; a regex that is not gets no prefilter and is tried on
// every UA.
#include "enrich/ua/ua_parser.h"

#include "util/fs.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <re2/re2.h>
#include <re2/set.h>
#include <sstream>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace switchyard::enrich::ua {
namespace {

// uap-core's replacement placeholders are $0..$9 ($0: the whole match).
constexpr int max_groups = 10;
// Capture slots for a relaxed regex: its own groups plus one per relaxed repetition.
constexpr int max_relaxed_groups = 64;
// Counted repetitions with an upper bound below this stay as written (" {0,2}" costs nothing).
constexpr std::size_t relax_min_bound = 5;

// RE2's budget for one regex (its program and DFA cache). A few uap-core regexes with large
// counted repetitions ({1,200}) need more than RE2's 8 MiB default.
constexpr std::int64_t regex_max_mem = 64 << 20;
// ---- Relaxing counted repetitions ----------------------------------------------------------

struct relaxed_pattern {
    std::string pattern;
    std::vector<int> group_map;                       // original group (0..) → relaxed group
    std::vector<std::pair<int, std::size_t>> bounds;  // extra group → maximum length
};

// Length of the single-character atom at p[i] ('.', a class, an escape, a plain character), or
// 0 when p[i] does not start one.
std::size_t atom_length(std::string_view p, std::size_t i) {
    const char c = p[i];
    if (c == '\\') {
        if (i + 1 >= p.size()) return 0;
        const char e = p[i + 1];
        if (e == 'b' || e == 'B' || e == 'A' || e == 'z' || e == 'Q' || e == 'E' || e == 'C')
            return 0;  // assertions, quoting, and \C (any byte; kept as written)
        if (e == 'p' || e == 'P' || e == 'x') {
            if (i + 2 < p.size() && p[i + 2] == '{') {
                const std::size_t close = p.find('}', i + 3);
                return close == std::string_view::npos ? 0 : close + 1 - i;
            }
            if (e == 'x') return i + 3 < p.size() ? 4 : 0;
            return i + 2 < p.size() ? 3 : 0;
        }
        if (e >= '0' && e <= '7') return 0;  // octal escapes: keep as written
        return 2;
    }
    if (c == '[') {
        std::size_t j = i + 1;
        if (j < p.size() && p[j] == '^') ++j;
        if (j < p.size() && p[j] == ']') ++j;  // a leading ']' is literal
        while (j < p.size() && p[j] != ']') {
            if (p[j] == '\\') {
                j += 2;
            } else if (p[j] == '[' && j + 1 < p.size() && p[j + 1] == ':') {
                const std::size_t close = p.find(":]", j + 2);
                if (close == std::string_view::npos) return 0;
                j = close + 2;
            } else {
                ++j;
            }
        }
        return j < p.size() ? j + 1 - i : 0;
    }
    if (c == '(' || c == ')' || c == '|' || c == '^' || c == '$' || c == '*' || c == '+' ||
        c == '?' || c == '{') {
        return 0;
    }
    if (static_cast<unsigned char>(c) >= 0x80) return 0;
    return 1;
}

// A quantifier at p[i]: its length (including a lazy '?'), and its bounds (max SIZE_MAX when
// unbounded). 0 when p[i] is not a quantifier.
struct quantifier {
    std::size_t length = 0, min = 0, max = 0;
};

quantifier quantifier_at(std::string_view p, std::size_t i) {
    quantifier q;
    if (i >= p.size()) return q;
    const char c = p[i];
    if (c == '*' || c == '+' || c == '?') {
        q.length = 1;
        q.min = c == '+' ? 1 : 0;
        q.max = c == '?' ? 1 : SIZE_MAX;
    } else if (c == '{') {
        std::size_t j = i + 1, lo = 0, hi = 0;
        bool have_lo = false, have_hi = false, comma = false;
        while (j < p.size() && p[j] >= '0' && p[j] <= '9')
            lo = lo * 10 + (p[j++] - '0'), have_lo = true;
        if (j < p.size() && p[j] == ',') {
            comma = true;
            ++j;
            while (j < p.size() && p[j] >= '0' && p[j] <= '9')
                hi = hi * 10 + (p[j++] - '0'), have_hi = true;
        }
        if (!have_lo || j >= p.size() || p[j] != '}') return q;  // a literal '{'
        q.length = j + 1 - i;
        q.min = lo;
        q.max = comma ? (have_hi ? hi : SIZE_MAX) : lo;
    } else {
        return q;
    }
    if (i + q.length < p.size() && p[i + q.length] == '?') ++q.length;
    return q;
}

// Rewrites a pattern for step 1 above. Returns false when there is nothing to relax or the
// pattern uses syntax this rewriter does not follow (then the exact regex is used alone).
bool relax(std::string_view p, relaxed_pattern& out) {
    struct group {
        bool capturing = false;
        std::vector<std::size_t> inner;  // relaxable repetitions inside
    };
    struct repetition {
        std::size_t atom_begin, atom_end, quant_end, min, max;
        bool ok = true;
    };
    std::vector<repetition> reps;
    std::vector<group> stack;
    stack.push_back({});
    std::vector<bool> capturing_at(p.size(), false);  // '(' that opens a capturing group

    for (std::size_t i = 0; i < p.size();) {
        const char c = p[i];
        if (c == '(') {
            group g;
            std::size_t j = i + 1;
            if (j < p.size() && p[j] == '?') {
                ++j;
                if (j < p.size() && p[j] == 'P') return false;  // named groups: not followed
                while (j < p.size() && ((p[j] >= 'a' && p[j] <= 'z') ||
                                        (p[j] >= 'A' && p[j] <= 'Z') || p[j] == '-')) {
                    ++j;
                }
                if (j < p.size() && p[j] == ')') {  // "(?i)": a flag, not a group
                    i = j + 1;
                    continue;
                }
                if (j >= p.size() || p[j] != ':') return false;
                i = j + 1;
            } else {
                g.capturing = true;
                capturing_at[i] = true;
                i = j;
            }
            stack.push_back(std::move(g));
            continue;
        }
        if (c == ')') {
            if (stack.size() < 2) return false;
            group g = std::move(stack.back());
            stack.pop_back();
            const quantifier q = quantifier_at(p, i + 1);
            // Inside a repeated group, a capture shows only the last iteration: keep exact.
            if (q.length > 0 && q.max > 1) {
                for (std::size_t r : g.inner) reps[r].ok = false;
            }
            stack.back().inner.insert(stack.back().inner.end(), g.inner.begin(), g.inner.end());
            i += 1 + q.length;
            continue;
        }
        if (c == '|' || c == '^' || c == '$') {
            ++i;
            continue;
        }
        if (c == '\\' && i + 1 < p.size() &&
            (p[i + 1] == 'Q' || p[i + 1] == 'E' || p[i + 1] == 'C'))
            return false;
        const std::size_t n = atom_length(p, i);
        if (n == 0) {
            if (c == '\\' && i + 1 < p.size()) {  // an assertion such as \b
                i += 2;
                continue;
            }
            if (static_cast<unsigned char>(c) >= 0x80) return false;
            return false;  // a stray quantifier or something unexpected
        }
        const quantifier q = quantifier_at(p, i + n);
        if (q.length > 0 && q.max != SIZE_MAX && q.max >= relax_min_bound && q.max > q.min) {
            stack.back().inner.push_back(reps.size());
            reps.push_back({i, i + n, i + n + q.length, q.min, q.max});
        }
        i += n + q.length;
    }
    if (stack.size() != 1) return false;

    std::size_t relaxing = 0;
    for (const repetition& r : reps) relaxing += r.ok ? 1 : 0;
    if (relaxing == 0) return false;

    out.pattern.clear();
    out.group_map.assign(1, 0);  // group 0 is the whole match in both
    out.bounds.clear();
    int next_group = 0;
    std::size_t r = 0;
    for (std::size_t i = 0; i < p.size();) {
        while (r < reps.size() && !reps[r].ok) ++r;
        if (r < reps.size() && reps[r].atom_begin == i) {
            const repetition& rep = reps[r++];
            out.pattern += '(';
            out.bounds.emplace_back(++next_group, rep.max);
            out.pattern.append(p.substr(rep.atom_begin, rep.atom_end - rep.atom_begin));
            out.pattern += '{';
            out.pattern += std::to_string(rep.min);
            out.pattern += ",}";
            if (p[rep.quant_end - 1] == '?') out.pattern += '?';  // lazy stays lazy
            out.pattern += ')';
            i = rep.quant_end;
            continue;
        }
        if (p[i] == '\\' && i + 1 < p.size()) {
            out.pattern.append(p.substr(i, 2));
            i += 2;
            continue;
        }
        if (p[i] == '[') {
            const std::size_t n = atom_length(p, i);
            out.pattern.append(p.substr(i, n));
            i += n;
            continue;
        }
        if (capturing_at[i]) out.group_map.push_back(++next_group);
        out.pattern += p[i++];
    }
    return next_group < max_relaxed_groups;
}

// ---- Prefilter: necessary factors and their literal atoms ----------------------------------

// A regex matches somewhere only if each piece of its top-level concatenation matches somewhere.
// Such pieces ("factors") are taken between repetitions and wide items, expanded into the
// literal strings they can match ("atoms": "[Bb]ot" gives "Bot" and "bot"), and one of a
// factor's atoms must then occur in the UA. An Aho-Corasick automaton finds all atoms in one
// pass.

struct regex_node {
    enum kind_t { literal, char_class, assertion, group, alternation, concatenation, repeat };
    kind_t kind = literal;
    std::size_t begin = 0, end = 0;  // source span, including a quantifier
    std::size_t min = 0, max = 0;    // repeat bounds (max SIZE_MAX: unbounded)
    std::vector<regex_node> children;
};

class regex_reader {
  public:
    explicit regex_reader(std::string_view p) : p_(p) {}

    bool read(regex_node& out) {
        if (!alternation(out)) return false;
        return i_ == p_.size();
    }

  private:
    bool alternation(regex_node& out) {
        out = {};
        out.kind = regex_node::alternation;
        out.begin = i_;
        for (;;) {
            regex_node branch;
            if (!concatenation(branch)) return false;
            out.children.push_back(std::move(branch));
            if (i_ < p_.size() && p_[i_] == '|') {
                ++i_;
                continue;
            }
            break;
        }
        out.end = i_;
        if (out.children.size() == 1) {
            regex_node only = std::move(out.children[0]);
            out = std::move(only);
        }
        return true;
    }

    bool concatenation(regex_node& out) {
        out = {};
        out.kind = regex_node::concatenation;
        out.begin = i_;
        while (i_ < p_.size() && p_[i_] != '|' && p_[i_] != ')') {
            regex_node atom;
            if (!quantified(atom)) return false;
            out.children.push_back(std::move(atom));
        }
        out.end = i_;
        return true;
    }

    bool quantified(regex_node& out) {
        if (!atom(out)) return false;
        const quantifier q = quantifier_at(p_, i_);
        if (q.length == 0) return true;
        regex_node r;
        r.kind = regex_node::repeat;
        r.begin = out.begin;
        r.min = q.min;
        r.max = q.max;
        i_ += q.length;
        r.end = i_;
        r.children.push_back(std::move(out));
        out = std::move(r);
        return quantifier_at(p_, i_).length == 0;  // "a**": not followed
    }

    bool atom(regex_node& out) {
        out = {};
        out.begin = i_;
        const char c = p_[i_];
        if (c == '(') {
            ++i_;
            if (i_ < p_.size() && p_[i_] == '?') {
                // Only "(?:" is followed; flags and named groups make the rule fall back.
                if (i_ + 1 >= p_.size() || p_[i_ + 1] != ':') return false;
                i_ += 2;
            }
            regex_node inner;
            if (!alternation(inner)) return false;
            if (i_ >= p_.size() || p_[i_] != ')') return false;
            ++i_;
            out.kind = regex_node::group;
            out.children.push_back(std::move(inner));
            out.end = i_;
            return true;
        }
        if (c == '^' || c == '$') {
            ++i_;
            out.kind = regex_node::assertion;
            out.end = i_;
            return true;
        }
        if (c == '\\' && i_ + 1 < p_.size()) {
            const char e = p_[i_ + 1];
            if (e == 'b' || e == 'B' || e == 'A' || e == 'z') {
                i_ += 2;
                out.kind = regex_node::assertion;
                out.end = i_;
                return true;
            }
        }
        const std::size_t n = atom_length(p_, i_);
        if (n == 0) return false;
        const bool is_literal =
            n == 1 ? c != '.'
                   : (n == 2 && c == '\\' && !std::isalnum(static_cast<unsigned char>(p_[i_ + 1])));
        out.kind = is_literal ? regex_node::literal : regex_node::char_class;
        i_ += n;
        out.end = i_;
        return true;
    }

    std::string_view p_;
    std::size_t i_ = 0;
};

// Whether a node repeats something without a small bound.
bool loops(const regex_node& n) {
    if (n.kind == regex_node::repeat && n.max >= relax_min_bound && n.max > n.min) return true;
    return std::any_of(n.children.begin(), n.children.end(), loops);
}

// Members of a character class "[…]" (escapes such as \d count as large); SIZE_MAX when

constexpr std::size_t max_class_members = 10;  // "\d", "[0-9]": expanded; "[a-z]": not

// The bytes a class node ("[…]", "\d", "\s") matches; false when there are more than max, the
// class is negated, or it uses syntax not followed here.
bool class_members(std::string_view c, std::size_t max, std::string& out) {
    out.clear();
    auto escape = [&out](char e) {
        if (e == 'd') {
            out += "0123456789";
        } else if (e == 's') {
            out += " \t\n\v\f\r";
        } else if (std::isalnum(static_cast<unsigned char>(e))) {
            return false;  // \w, \D, \x41, \pL …
        } else {
            out.push_back(e);
        }
        return true;
    };
    if (c.size() == 2 && c[0] == '\\') return escape(c[1]) && out.size() <= max;
    if (c.size() < 3 || c.front() != '[' || c.back() != ']' || c[1] == '^') return false;
    c = c.substr(1, c.size() - 2);
    for (std::size_t i = 0; i < c.size();) {
        char lo = c[i];
        std::size_t step = 1;
        if (lo == '\\') {
            if (i + 1 >= c.size()) return false;
            lo = c[i + 1];
            step = 2;
            if (std::isalnum(static_cast<unsigned char>(lo))) {
                if (!escape(lo)) return false;
                i += step;
                continue;
            }
        } else if (lo == '[') {
            return false;  // [:alpha:]
        }
        if (i + step + 1 < c.size() && c[i + step] == '-') {
            char hi = c[i + step + 1];
            std::size_t hi_step = 1;
            if (hi == '\\') {
                if (i + step + 2 >= c.size()) return false;
                hi = c[i + step + 2];
                hi_step = 2;
            }
            if (static_cast<unsigned char>(hi) < static_cast<unsigned char>(lo)) return false;
            if (static_cast<std::size_t>(static_cast<unsigned char>(hi) -
                                         static_cast<unsigned char>(lo)) >= max)
                return false;
            for (int b = static_cast<unsigned char>(lo); b <= static_cast<unsigned char>(hi); ++b)
                out.push_back(static_cast<char>(b));
            i += step + 1 + hi_step;
        } else {
            out.push_back(lo);
            i += step;
        }
        if (out.size() > max) return false;
    }
    return true;
}

std::size_t class_size(std::string_view c) {
    std::string members;
    return class_members(c, 256, members) ? members.size() : SIZE_MAX;
}

// How selective a node is: the fewest "literal" characters any match of it contains. A class of
// up to 4 members ("[Bb]", "[ _]") counts as a literal.
std::size_t min_literals(std::string_view p, const regex_node& n) {
    switch (n.kind) {
        case regex_node::literal:
            return 1;
        case regex_node::char_class:
            return class_size(p.substr(n.begin, n.end - n.begin)) <= 4 ? 1 : 0;
        case regex_node::assertion:
            return 0;
        case regex_node::group:
            return min_literals(p, n.children[0]);
        case regex_node::repeat:
            return n.min == 0 ? 0 : n.min * min_literals(p, n.children[0]);
        case regex_node::alternation: {
            std::size_t m = SIZE_MAX;
            for (const regex_node& c : n.children) m = std::min(m, min_literals(p, c));
            return m == SIZE_MAX ? 0 : m;
        }
        case regex_node::concatenation: {
            std::size_t m = 0;
            for (const regex_node& c : n.children) m += min_literals(p, c);
            return m;
        }
    }
    return 0;
}

// Whether a node can be expanded into literal strings: literals, assertions, classes of up to
// max_class_members bytes, and small repetitions of those.
bool narrow(std::string_view p, const regex_node& n) {
    switch (n.kind) {
        case regex_node::literal:
        case regex_node::assertion:
            return true;
        case regex_node::char_class:
            return class_size(p.substr(n.begin, n.end - n.begin)) <= max_class_members;
        case regex_node::repeat:
            if (n.max >= relax_min_bound) return false;
            break;
        default:
            break;
    }
    return std::all_of(n.children.begin(), n.children.end(),
                       [&](const regex_node& c) { return narrow(p, c); });
}

// Where a factor must stop: a loop, or anything wide ('.', "[^;]", "[a-z]").
bool breaks(std::string_view p, const regex_node& n) { return loops(n) || !narrow(p, n); }

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

constexpr std::size_t max_atoms_per_factor = 512;
constexpr std::size_t min_atom_length = 2;

void add_unique(std::vector<std::string>& v, std::string s) {
    if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
}

// Strings one of which starts every match of a node (lowercased when fold), at most cap of
// them: the node's whole expansion when it is narrow and small enough, else a shorter one,
// which still holds (a prefix of a match is in the text wherever the match is). Returns whether
// the expansion is whole. Out is never empty: {""} says nothing.
bool expand(std::string_view p, const regex_node& n, bool fold, std::size_t cap,
            std::vector<std::string>& out);

// The concatenation of items [first, last) as above: each item gets what is left of the budget.
bool expand_sequence(std::string_view p, const regex_node* const* first,
                     const regex_node* const* last, bool fold, std::size_t cap,
                     std::vector<std::string>& out) {
    out.assign(1, std::string());
    std::vector<std::string> e, next;
    std::unordered_set<std::string> seen;  // next's strings: first occurrences kept, in order
    for (; first != last; ++first) {
        const std::size_t budget = cap / out.size();
        if (budget == 0) return false;
        const bool whole = expand(p, **first, fold, budget, e);
        next.clear();
        seen.clear();
        for (const std::string& a : out) {
            for (const std::string& b : e) {
                std::string ab = a + b;
                if (seen.insert(ab).second) next.push_back(std::move(ab));
            }
        }
        out.swap(next);
        if (!whole) return false;
    }
    return true;
}

bool expand(std::string_view p, const regex_node& n, bool fold, std::size_t cap,
            std::vector<std::string>& out) {
    out.clear();
    switch (n.kind) {
        case regex_node::literal: {
            const char c = p[n.end - 1];
            out.emplace_back(1, fold ? lower(c) : c);
            return true;
        }
        case regex_node::char_class: {
            std::string members;
            if (class_members(p.substr(n.begin, n.end - n.begin), max_class_members, members)) {
                for (char c : members) add_unique(out, std::string(1, fold ? lower(c) : c));
                if (out.size() <= cap) return true;
            }
            out.assign(1, std::string());
            return false;
        }
        case regex_node::assertion:
            out.emplace_back();
            return true;
        case regex_node::group:
            return expand(p, n.children[0], fold, cap, out);
        case regex_node::alternation: {
            // With the whole budget per branch first; if the union is too large, with a share.
            std::vector<std::string> e;
            for (std::size_t share : {cap, std::max<std::size_t>(1, cap / n.children.size())}) {
                out.clear();
                bool whole = true;
                for (const regex_node& c : n.children) {
                    whole = expand(p, c, fold, share, e) && whole;
                    for (std::string& s : e) add_unique(out, std::move(s));
                    if (out.size() > cap) break;
                }
                if (out.size() <= cap) return whole;
            }
            out.assign(1, std::string());
            return false;
        }
        case regex_node::concatenation: {
            std::vector<const regex_node*> items;
            for (const regex_node& c : n.children) items.push_back(&c);
            return expand_sequence(p, items.data(), items.data() + items.size(), fold, cap, out);
        }
        case regex_node::repeat: {
            const regex_node* child = &n.children[0];
            if (n.max < relax_min_bound) {
                std::vector<std::string> e;
                bool whole = true;
                for (std::size_t k = n.min; k <= n.max && out.size() <= cap; ++k) {
                    const std::vector<const regex_node*> copies(k, child);
                    whole =
                        expand_sequence(p, copies.data(), copies.data() + k, fold, cap, e) && whole;
                    for (std::string& s : e) add_unique(out, std::move(s));
                }
                if (out.size() <= cap) return whole;
            }
            // Every match starts with min copies of the child.
            const std::vector<const regex_node*> copies(std::min<std::size_t>(n.min, 4), child);
            expand_sequence(p, copies.data(), copies.data() + copies.size(), fold, cap, out);
            return false;
        }
    }
    out.assign(1, std::string());
    return false;
}

std::size_t shortest(const std::vector<std::string>& atoms) {
    std::size_t m = SIZE_MAX;
    for (const std::string& a : atoms) m = std::min(m, a.size());
    return atoms.empty() ? 0 : m;
}

// Common UAs, to rank factors: an atom that occurs in them says little. Choosing rarer factors
// keeps the number of candidates that fail verification low.
constexpr std::array<std::string_view, 8> common_uas{{
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S911B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; U; Android 4.4.2; en-us; Nexus 5 Build/KOT49H) AppleWebKit/534.30 (KHTML, "
    "like Gecko) Version/4.0 Mobile Safari/534.30",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
}};

// Which common UAs (a bit each) contain a string, from an index of their short substrings.
class common_index {
  public:
    static constexpr std::size_t max_indexed = 12;

    explicit common_index(bool fold) : fold_(fold) {
        for (std::size_t u = 0; u < common_uas.size(); ++u) {
            const std::string ua = prepare(common_uas[u]);
            for (std::size_t b = 0; b < ua.size(); ++b) {
                for (std::size_t n = 1; n <= max_indexed && b + n <= ua.size(); ++n) {
                    masks_[ua.substr(b, n)] |= static_cast<std::uint8_t>(1u << u);
                }
            }
        }
    }

    std::uint8_t mask(const std::string& s) const {
        if (s.size() > max_indexed) {
            std::uint8_t m = 0;
            for (std::size_t u = 0; u < common_uas.size(); ++u) {
                if (prepare(common_uas[u]).find(s) != std::string::npos)
                    m |= static_cast<std::uint8_t>(1u << u);
            }
            return m;
        }
        auto it = masks_.find(s);
        return it == masks_.end() ? 0 : it->second;
    }

  private:
    std::string prepare(std::string_view ua) const {
        std::string s(ua);
        if (fold_) {
            for (char& c : s) c = lower(c);
        }
        return s;
    }

    bool fold_;
    std::unordered_map<std::string, std::uint8_t> masks_;
};

// How many of the common UAs contain one of the atoms (lower is more selective).
std::size_t commonness(const std::vector<std::string>& atoms, bool fold) {
    static const common_index exact(false), folded(true);
    const common_index& index = fold ? folded : exact;
    unsigned m = 0;
    for (const std::string& a : atoms) m |= index.mask(a);
    return static_cast<std::size_t>(std::popcount(m));
}

// The atoms of a factor: the most selective window of its concatenation (often all of it),
// expanded. Empty: no usable atoms (one would be shorter than min_atom_length, which almost
// every UA contains).
std::vector<std::string> factor_atoms(std::string_view f, bool fold) {
    regex_node root;
    regex_reader reader(f);
    if (!reader.read(root)) return {};
    std::vector<const regex_node*> items;
    if (root.kind == regex_node::concatenation) {
        for (const regex_node& c : root.children) items.push_back(&c);
    } else {
        items.push_back(&root);
    }
    std::vector<std::string> best, atoms;
    std::size_t best_common = SIZE_MAX, best_short = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
        expand_sequence(f, items.data() + i, items.data() + items.size(), fold,
                        max_atoms_per_factor, atoms);
        const std::size_t len = shortest(atoms);
        if (len < min_atom_length) continue;
        const std::size_t common = commonness(atoms, fold);
        if (common < best_common || (common == best_common && len > best_short)) {
            best = atoms;
            best_common = common;
            best_short = len;
        }
    }
    return best;
}

struct factor {
    std::string pattern;
    std::vector<std::string> atoms;  // empty: unusable
};

// Better: rarer in common UAs, then longer shortest atom.
bool more_selective(const factor& a, const factor& b, bool fold) {
    if (a.atoms.empty() || b.atoms.empty()) return !a.atoms.empty();
    const std::size_t ca = commonness(a.atoms, fold), cb = commonness(b.atoms, fold);
    if (ca != cb) return ca < cb;
    return shortest(a.atoms) > shortest(b.atoms);
}

factor make_factor(std::string pattern, bool fold) {
    factor f;
    f.atoms = factor_atoms(pattern, fold);
    f.pattern = std::move(pattern);
    return f;
}

// The items of a concatenation, with groups around concatenations opened up.
void flatten(const regex_node& concat, std::vector<const regex_node*>& items) {
    for (const regex_node& c : concat.children) {
        if (c.kind == regex_node::group && c.children[0].kind == regex_node::concatenation) {
            flatten(c.children[0], items);
        } else {
            items.push_back(&c);
        }
    }
}

// A piece of pattern, and how many literal characters it surely contains.
struct pattern_piece {
    std::string pattern;
    std::size_t literals = 0;
};

// A narrow pattern every match of n starts with (at_end: ends with); empty when there is none
// (the node can start with a repetition that may be absent, or match the empty string).
pattern_piece edge(std::string_view p, const regex_node& n, bool at_end) {
    if (!breaks(p, n)) return {std::string(p.substr(n.begin, n.end - n.begin)), min_literals(p, n)};
    switch (n.kind) {
        case regex_node::group:
            return edge(p, n.children[0], at_end);
        case regex_node::repeat:
            if (n.min == 0) return {};
            // X{m,}: the first and the last iteration are X.
            return edge(p, n.children[0], at_end);
        case regex_node::alternation: {
            pattern_piece joined{"(?:", SIZE_MAX};
            for (std::size_t k = 0; k < n.children.size(); ++k) {
                const pattern_piece e = edge(p, n.children[k], at_end);
                if (e.pattern.empty()) return {};
                joined.pattern += (k ? "|" : "") + e.pattern;
                joined.literals = std::min(joined.literals, e.literals);
            }
            joined.pattern += ')';
            return joined;
        }
        case regex_node::concatenation: {
            std::vector<const regex_node*> items;
            flatten(n, items);
            if (at_end) std::reverse(items.begin(), items.end());
            pattern_piece out;
            for (const regex_node* c : items) {
                const pattern_piece e =
                    breaks(p, *c)
                        ? edge(p, *c, at_end)
                        : pattern_piece{std::string(p.substr(c->begin, c->end - c->begin)),
                                        min_literals(p, *c)};
                out.pattern = at_end ? e.pattern + out.pattern : out.pattern + e.pattern;
                out.literals += e.literals;
                if (breaks(p, *c)) break;
            }
            return out;
        }
        default:
            return {};
    }
}

// Factors of a node: each matches somewhere in any text the node matches somewhere.
void factors_of(std::string_view p, const regex_node& n, bool fold, std::vector<factor>& out) {
    if (!breaks(p, n)) {
        out.push_back(make_factor(std::string(p.substr(n.begin, n.end - n.begin)), fold));
        return;
    }
    switch (n.kind) {
        case regex_node::group:
            factors_of(p, n.children[0], fold, out);
            return;
        case regex_node::repeat:
            if (n.min > 0) factors_of(p, n.children[0], fold, out);  // present at least once
            return;
        case regex_node::alternation: {
            // One factor per branch, the most selective, joined: "(?:f1|f2|…)".
            std::string joined = "(?:";
            for (std::size_t k = 0; k < n.children.size(); ++k) {
                std::vector<factor> fs;
                factors_of(p, n.children[k], fold, fs);
                const factor* best = nullptr;
                for (const factor& f : fs) {
                    if (best == nullptr || more_selective(f, *best, fold)) best = &f;
                }
                if (best == nullptr || best->atoms.empty()) return;  // a branch without: none
                joined += (k ? "|" : "") + best->pattern;
            }
            joined += ')';
            out.push_back(make_factor(std::move(joined), fold));
            return;
        }
        case regex_node::concatenation: {
            // Maximal runs of narrow items are factors; the other items contribute theirs.
            // Groups around a concatenation are transparent here ("; {0,2}(F\-\d[^;/]+)" gives
            // "; {0,2}F\-\d"): their parentheses only matter for captures.
            std::vector<const regex_node*> items;
            flatten(n, items);
            std::string run;
            auto close_run = [&] {
                if (!run.empty()) out.push_back(make_factor(std::move(run), fold));
                run.clear();
            };
            for (const regex_node* c : items) {
                if (breaks(p, *c)) {
                    // The run goes on into the item's first bytes, and a new one starts with
                    // its last bytes: "(iPhone|iPad)(\d+,\d+)" gives "(iPhone|iPad)\d".
                    run += edge(p, *c, false).pattern;
                    close_run();
                    factors_of(p, *c, fold, out);
                    run = edge(p, *c, true).pattern;
                    continue;
                }
                run.append(p.substr(c->begin, c->end - c->begin));
            }
            close_run();
            return;
        }
        default:
            return;
    }
}

bool has_start_anchor(std::string_view p, const regex_node& n) {
    if (n.kind == regex_node::assertion && p[n.begin] == '^') return true;
    return std::any_of(n.children.begin(), n.children.end(),
                       [&](const regex_node& c) { return has_start_anchor(p, c); });
}

// Whether the pattern contains '^' (when it cannot be read, true: the safe answer).
bool starts_anchored(std::string_view pattern) {
    regex_node root;
    regex_reader reader(pattern);
    return !reader.read(root) || has_start_anchor(pattern, root);
}

// The usable factors of a pattern (fold: it is matched case-insensitively). Empty: the rule is a
// candidate for every UA.
std::vector<factor> necessary_factors(std::string_view pattern, bool fold) {
    regex_node root;
    regex_reader reader(pattern);
    if (!reader.read(root)) return {};
    std::vector<factor> fs;
    factors_of(pattern, root, fold, fs);
    std::erase_if(fs, [](const factor& f) { return f.atoms.empty(); });
    return fs;
}

// Aho-Corasick over atoms (case-folded or not), as a dense DFA over byte classes: one table lookup
// per byte, built entirely at load (nothing is built lazily while parsing, so a UA never pays for
// construction).
class literal_matcher {
  public:
    explicit literal_matcher(bool fold = false) : fold_(fold) {}

    // Adds an atom (lowercased if the matcher folds case); returns its id (the same string gets
    // the same id).
    int add(const std::string& atom) {
        auto [it, fresh] = ids_.try_emplace(atom, static_cast<int>(atoms_.size()));
        if (fresh) atoms_.push_back(atom);
        return it->second;
    }
    std::size_t size() const noexcept { return atoms_.size(); }

    void build() {
        // Byte classes: one per byte used by an atom, case-folded; everything else is class 0.
        std::array<int, 256> cls{};
        classes_ = 1;
        for (const std::string& a : atoms_) {
            for (char c : a) {
                auto& k = cls[static_cast<unsigned char>(c)];
                if (k == 0) k = static_cast<int>(classes_++);
            }
        }
        for (int b = 0; b < 256; ++b) {
            const auto folded = static_cast<unsigned char>(fold_ ? lower(static_cast<char>(b))
                                                                 : static_cast<char>(b));
            byte_class_[static_cast<std::size_t>(b)] = static_cast<std::uint16_t>(cls[folded]);
        }
        // The trie.
        next_.assign(classes_, 0);
        std::vector<std::vector<int>> own(1);
        for (std::size_t id = 0; id < atoms_.size(); ++id) {
            std::uint32_t s = 0;
            for (char c : atoms_[id]) {
                const std::size_t k = byte_class_[static_cast<unsigned char>(c)];
                std::uint32_t& t = next_[s * classes_ + k];
                if (t == 0) {
                    t = static_cast<std::uint32_t>(next_.size() / classes_);
                    next_.resize(next_.size() + classes_, 0);
                    own.emplace_back();
                }
                s = next_[s * classes_ + k];
            }
            own[s].push_back(static_cast<int>(id));
        }
        // Failure links, breadth first; missing transitions become the failure state's.
        const std::size_t states = next_.size() / classes_;
        std::vector<std::uint32_t> fail(states, 0), order;
        order.reserve(states);
        for (std::size_t k = 0; k < classes_; ++k) {
            if (next_[k] != 0) order.push_back(next_[k]);
        }
        for (std::size_t q = 0; q < order.size(); ++q) {
            const std::uint32_t s = order[q];
            for (std::size_t k = 0; k < classes_; ++k) {
                std::uint32_t& t = next_[s * classes_ + k];
                const std::uint32_t via_fail = next_[fail[s] * classes_ + k];
                if (t != 0) {
                    fail[t] = via_fail;
                    order.push_back(t);
                } else {
                    t = via_fail;
                }
            }
        }
        // Each state reports its own atoms and those of its failure chain.
        out_begin_.assign(states + 1, 0);
        std::vector<std::vector<int>> all(states);
        for (std::uint32_t s : order) {
            all[s] = own[s];
            const auto& inherited = all[fail[s]];
            all[s].insert(all[s].end(), inherited.begin(), inherited.end());
        }
        outs_.clear();
        for (std::size_t s = 0; s < states; ++s) {
            out_begin_[s] = static_cast<std::uint32_t>(outs_.size());
            outs_.insert(outs_.end(), all[s].begin(), all[s].end());
        }
        out_begin_[states] = static_cast<std::uint32_t>(outs_.size());
        ids_.clear();
    }

    bool empty() const noexcept { return atoms_.empty(); }

    // Calls on_atom(id) for each occurrence of an atom in text.
    template <typename F>
    void scan(std::string_view text, F&& on_atom) const {
        std::uint32_t s = 0;
        for (char c : text) {
            s = next_[s * classes_ + byte_class_[static_cast<unsigned char>(c)]];
            for (std::uint32_t i = out_begin_[s]; i < out_begin_[s + 1]; ++i) on_atom(outs_[i]);
        }
    }

    std::size_t memory() const noexcept {
        return next_.size() * sizeof(std::uint32_t) + outs_.size() * sizeof(int) +
               out_begin_.size() * sizeof(std::uint32_t);
    }

  private:
    bool fold_ = false;
    std::vector<std::string> atoms_;
    std::unordered_map<std::string, int> ids_;
    std::array<std::uint16_t, 256> byte_class_{};
    std::size_t classes_ = 1;
    std::vector<std::uint32_t> next_;  // state * classes_ + class → state
    std::vector<std::uint32_t> out_begin_;
    std::vector<int> outs_;
};

// ---- Replacements ----------------------------------------------------------------------------

// A replacement template, split at its $N placeholders.
struct replacement {
    struct piece {
        std::string literal;
        int group = -1;  // >= 0: a placeholder, replaced by that group ('' if it did not match)
    };
    std::vector<piece> pieces;
    int max_group = -1;
};

replacement compile_replacement(std::string_view s) {
    replacement r;
    std::string lit;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '$' && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9') {
            if (!lit.empty()) r.pieces.push_back({std::move(lit), -1});
            lit.clear();
            const int g = s[i + 1] - '0';
            r.pieces.push_back({{}, g});
            r.max_group = std::max(r.max_group, g);
            ++i;
        } else {
            lit.push_back(s[i]);
        }
    }
    if (!lit.empty()) r.pieces.push_back({std::move(lit), -1});
    return r;
}

// How one output field is filled: from its replacement when the entry has one, else from a
// capture group (0: none).
struct field_rule {
    bool has_replacement = false;
    replacement rep;
    int group = 0;
};

enum class section_kind { user_agent, os, device };
constexpr std::size_t fields_per_rule = 5;

// The YAML key of each output field, and the capture group it defaults to.
struct field_key {
    const char* key;
    int default_group;
};
constexpr std::array<field_key, fields_per_rule> ua_keys{{{"family_replacement", 1},
                                                          {"v1_replacement", 2},
                                                          {"v2_replacement", 3},
                                                          {"v3_replacement", 4},
                                                          {"v4_replacement", 5}}};
constexpr std::array<field_key, fields_per_rule> os_keys{{{"os_replacement", 1},
                                                          {"os_v1_replacement", 2},
                                                          {"os_v2_replacement", 3},
                                                          {"os_v3_replacement", 4},
                                                          {"os_v4_replacement", 5}}};
constexpr std::array<field_key, fields_per_rule> device_keys{{{"device_replacement", 1},
                                                              {"brand_replacement", 0},
                                                              {"model_replacement", 1},
                                                              {nullptr, 0},
                                                              {nullptr, 0}}};

const std::array<field_key, fields_per_rule>& keys_of(section_kind k) {
    switch (k) {
        case section_kind::user_agent:
            return ua_keys;
        case section_kind::os:
            return os_keys;
        case section_kind::device:
            break;
    }
    return device_keys;
}

// ---- Rules and sections ----------------------------------------------------------------------

struct rule {
    std::unique_ptr<RE2> exact;
    std::unique_ptr<RE2> relaxed;  // null: nothing to relax, `exact` alone decides
    std::vector<int> group_map;    // original group → relaxed group
    std::vector<std::pair<int, std::size_t>> bounds;  // relaxed group → maximum length
    int exact_slots = 1;       // submatches to ask the exact regex for (groups used, + $0)
    int relaxed_slots = 1;     // same for the relaxed regex (also covers every bound group)
    std::vector<int> factors;  // set indexes that must all match; empty: always a candidate
    int key_factor = -1;       // the most selective of them, which indexes the rule
    // RE2 skips its DFA for start-anchored regexes and backtracks at once, which is slow when
    // there is no match: ask the DFA first.
    bool dfa_first = false;
    std::size_t file_index = 0;
    std::array<field_rule, fields_per_rule> fields;
};

struct section {
    section_kind kind;
    const char* name;
    std::vector<rule> rules;           // compiled regexes, file order
    std::vector<std::size_t> skipped;  // file indexes of unsupported regexes, ascending
    std::vector<int> always;           // rules without factors, ascending
};

// The original groups of a match, whichever regex produced it.
using group_views = std::array<std::string_view, max_groups>;

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void trim(std::string& s) {
    std::size_t b = 0, e = s.size();
    while (b < e && is_space(s[b])) ++b;
    while (e > b && is_space(s[e - 1])) --e;
    if (e != s.size()) s.resize(e);
    if (b != 0) s.erase(0, b);
}

// Length of the valid UTF-8 sequence at s[i], or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto d = static_cast<unsigned char>(s[i + k]);
        if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) return 0;
    }
    return n;
}

// Matching is bytewise, so a capture can end inside a multi-byte character, and the UA itself
// may not be valid UTF-8. Results go into JSON: drop bytes that are not part of a valid
// sequence.
void keep_valid_utf8(std::string& s) {
    if (std::all_of(s.begin(), s.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
        return;
    }
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence(s, i);
        if (n == 0) {
            ++i;
            continue;
        }
        out.append(s, i, n);
        i += n;
    }
    s = std::move(out);
}

// The first max bytes of s, cut back to the start of a UTF-8 character.
std::string_view cut_utf8(std::string_view s, std::size_t max) noexcept {
    if (s.size() <= max) return s;
    std::size_t n = max;
    for (int back = 0; back < 3 && n > 0; ++back) {
        if ((static_cast<unsigned char>(s[n]) & 0xC0) != 0x80) break;
        --n;
    }
    if (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) n = max;  // not UTF-8 anyway
    return s.substr(0, n);
}

std::string position(std::string_view name, const YAML::Mark& m) {
    if (m.is_null()) return std::string(name);
    return std::string(name) + ":" + std::to_string(m.line + 1) + ":" +
           std::to_string(m.column + 1);
}

std::string position(std::string_view name, const YAML::Node& n) {
    return position(name, n.Mark());
}

RE2::Options regex_options(bool case_sensitive, std::int64_t max_mem) {
    RE2::Options o;
    o.set_encoding(RE2::Options::EncodingLatin1);
    o.set_log_errors(false);
    o.set_case_sensitive(case_sensitive);
    o.set_max_mem(max_mem);
    return o;
}

bool is_ascii(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string_view device_type_from(const result& r, std::uint32_t tokens) noexcept;

// ---- Device type tokens ----------------------------------------------------------------------

// What the device type rules look for in the UA string, one bit each. The patterns also go at
// the end of the parser's set, so parse() finds them in the same DFA pass as the regexes.
enum device_token : std::uint32_t {
    tok_tv,       // smart TV and streaming stick markers
    tok_fire_tv,  // Amazon Fire TV model codes: AFTB, AFTMM, AFTKA …
    tok_tizen,
    tok_webos,
    tok_tv_word,  // "TV" as a word: "Tizen 2.3) … TV Safari"
    tok_console,
    tok_wearable,
    tok_ipad,
    tok_tablet_brand,  // Kindle, Silk, PlayBook
    tok_tablet_word,
    tok_tablet_pc,  // "Tablet PC": a Windows desktop feature, not a tablet
    tok_mobi,       // "Mobi", "Mobile": what browsers add on phones
    tok_android,
    tok_phone,    // phone platforms and feature phone browsers
    tok_mozilla,  // a browser UA ("Mozilla/" first), not an app's HTTP client
    tok_count
};

constexpr std::array<std::string_view, tok_count> device_token_patterns{{
    R"(SmartTV|SMART-TV|SmartTv|Smart-TV|SMART TV|HbbTV|AppleTV|Apple TV|CrKey|Roku|BRAVIA|GoogleTV|Google TV|Android TV|AndroidTV|NetCast|Web0S|webOS\.TV|WebOS TV)",
    R"((?:^|[^A-Za-z])AFT[A-Z])",
    R"(Tizen)",
    R"(webOS|WebOS)",
    R"((?:^|[^A-Za-z])TV(?:[^A-Za-z]|$))",
    R"(PlayStation|PLAYSTATION|Xbox|Nintendo|OUYA)",
    R"(watchOS|Watch OS|Wear OS|WearOS|SmartWatch)",
    R"(iPad)",
    R"(Kindle|Silk/|PlayBook)",
    R"(Tablet)",
    R"(Tablet PC)",
    R"(Mobi)",
    R"(Android)",
    R"(iPhone|iPod|Windows Phone|KaiOS|BlackBerry|BB10|Symbian|SymbOS|Opera Mini|MIDP|UP\.Browser|Nokia|Windows CE|Bada)",
    R"(^Mozilla/)",
}};

// The tokens on their own (derive_device_type, and the paths that do not use the parser's set).
std::uint32_t scan_device_tokens(std::string_view ua) {
    static const std::unique_ptr<RE2::Set> tokens = [] {
        auto s = std::make_unique<RE2::Set>(regex_options(true, 8 << 20), RE2::UNANCHORED);
        for (std::string_view p : device_token_patterns) s->Add(p, nullptr);
        if (!s->Compile()) s.reset();
        return s;
    }();
    if (!tokens) return 0;
    thread_local std::vector<int> hits;
    std::uint32_t bits = 0;
    if (tokens->Match(re2::StringPiece(ua.data(), ua.size()), &hits)) {
        for (int h : hits) bits |= std::uint32_t{1} << h;
    }
    return bits;
}

bool read_scalar(const YAML::Node& n, std::string& out) {
    if (!n || n.IsNull() || !n.IsScalar()) return false;
    out = n.Scalar();
    return true;
}

// Builds one section from its YAML sequence. Structural problems are fatal (err set, false);
// regexes RE2 rejects are recorded in unsupported.
// The prefilter under construction: factors (each stored once, as their atom lists) and the
// atoms that stand for them, case-sensitive ones and case-folded ones (regex_flag: 'i').
struct prefilter_builder {
    std::array<literal_matcher, 2> atoms{literal_matcher(false), literal_matcher(true)};
    std::array<std::vector<std::vector<int>>, 2> atom_factors;  // [fold][atom id] → factors
    std::vector<std::size_t> commonness_of;                     // factor id → commonness()
    std::vector<std::size_t> shortest_of;                       // factor id → shortest atom
    std::unordered_map<std::string, int> ids;                   // atom list → factor id

    int add(const factor& f, bool fold) {
        std::vector<std::string> a = f.atoms;
        std::sort(a.begin(), a.end());
        std::string key(1, fold ? 'i' : 'c');
        for (const std::string& s : a) key.append(s).push_back('\0');
        auto [it, fresh] = ids.try_emplace(std::move(key), static_cast<int>(shortest_of.size()));
        if (!fresh) return it->second;
        const int id = it->second;
        shortest_of.push_back(shortest(a));
        commonness_of.push_back(commonness(a, fold));
        auto& table = atom_factors[fold ? 1 : 0];
        for (const std::string& s : a) {
            const auto atom = static_cast<std::size_t>(atoms[fold ? 1 : 0].add(s));
            if (table.size() <= atom) table.resize(atom + 1);
            table[atom].push_back(id);
        }
        return id;
    }

    // Whether factor a is a better key than b (rarer in common UAs, then longer atoms).
    bool better_key(int a, int b) const {
        const auto ua = static_cast<std::size_t>(a), ub = static_cast<std::size_t>(b);
        if (commonness_of[ua] != commonness_of[ub]) return commonness_of[ua] < commonness_of[ub];
        return shortest_of[ua] > shortest_of[ub];
    }
};

// One rule on its way through build_section: read from YAML, then compiled (on any thread),
// then added to the section and the prefilter in file order.
struct pending_rule {
    rule r;
    std::string where;
    std::string pattern;
    bool icase = false;
    int groups_used = 0;
    std::string problem;          // set: RE2 (or the loader) rejects it; the rule is skipped
    std::vector<factor> factors;  // necessary_factors(pattern), for ASCII patterns
};

// The expensive, independent part of one rule: both regexes and the prefilter factors. Touches
// nothing shared but read-only tables, so rules compile in parallel.
void compile_rule(pending_rule& pr) {
    rule& r = pr.r;
    const std::string& pattern = pr.pattern;
    r.exact = std::make_unique<RE2>(pattern, regex_options(!pr.icase, regex_max_mem));
    if (!r.exact->ok()) {
        pr.problem = r.exact->error();
        return;
    }
    const int ncap = r.exact->NumberOfCapturingGroups();
    const int groups_used = std::min(pr.groups_used, ncap);
    r.exact_slots = std::min(1 + groups_used, max_groups);

    relaxed_pattern rp;
    if (is_ascii(pattern) && relax(pattern, rp) &&
        static_cast<int>(rp.group_map.size()) == ncap + 1) {
        auto relaxed = std::make_unique<RE2>(rp.pattern, regex_options(!pr.icase, regex_max_mem));
        if (relaxed->ok()) {
            int slots = 0;
            for (int g = 0; g <= std::min(groups_used, max_groups - 1); ++g) {
                slots = std::max(slots, rp.group_map[static_cast<std::size_t>(g)]);
            }
            for (const auto& b : rp.bounds) slots = std::max(slots, b.first);
            r.relaxed = std::move(relaxed);
            r.group_map = std::move(rp.group_map);
            r.bounds = std::move(rp.bounds);
            r.relaxed_slots = slots + 1;
        }
    }
    if (is_ascii(pattern)) {
        pr.factors = necessary_factors(pattern, pr.icase);
        r.dfa_first = starts_anchored(pattern);
    }
}

// Runs compile_rule over every pending rule: on up to `threads` threads (this one included),
// each taking the next rule in turn. The result does not depend on the thread count.
void compile_rules(std::vector<pending_rule>& rules, unsigned threads) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < rules.size();) {
            if (rules[i].problem.empty()) compile_rule(rules[i]);
        }
    };
    std::vector<std::thread> pool;
    const unsigned extra = std::min<std::size_t>(threads, rules.size() / 16 + 1) - 1;
    for (unsigned t = 0; t < extra; ++t) {
        try {
            pool.emplace_back(work);
        } catch (const std::system_error&) {
            break;  // no more threads: the ones running (and this one) finish the list
        }
    }
    work();
    for (std::thread& t : pool) t.join();
}

// Builds one section from its YAML sequence. Structural problems are fatal (err set, false);
// regexes RE2 rejects are recorded in unsupported. Reading YAML and filling the prefilter stay
// on this thread and in file order; compiling the regexes runs on `threads` threads.
bool build_section(section& s, const YAML::Node& seq, std::string_view name,
                   std::vector<std::string>& unsupported, prefilter_builder& pre, unsigned threads,
                   std::string& err) {
    if (!seq.IsSequence()) {
        err = position(name, seq) + ": " + s.name + " must be a list";
        return false;
    }
    const auto& keys = keys_of(s.kind);
    std::vector<pending_rule> pending(seq.size());
    for (std::size_t i = 0; i < seq.size(); ++i) {
        const YAML::Node entry = seq[i];
        pending_rule& pr = pending[i];
        pr.where = std::string(s.name) + "[" + std::to_string(i) + "]";
        if (!entry.IsMap()) {
            err = position(name, entry) + ": " + pr.where + " must be a mapping with a regex";
            return false;
        }
        if (!read_scalar(entry["regex"], pr.pattern)) {
            err = position(name, entry) + ": " + pr.where + " has no regex";
            return false;
        }
        rule& r = pr.r;
        r.file_index = i;
        for (std::size_t f = 0; f < fields_per_rule; ++f) {
            if (keys[f].key == nullptr) continue;
            field_rule& fr = r.fields[f];
            fr.group = keys[f].default_group;
            std::string rep;
            // As in uap-core's reference implementation, an empty replacement counts as none.
            if (read_scalar(entry[keys[f].key], rep) && !rep.empty()) {
                fr.has_replacement = true;
                fr.rep = compile_replacement(rep);
                pr.groups_used = std::max(pr.groups_used, fr.rep.max_group);
            } else {
                pr.groups_used = std::max(pr.groups_used, fr.group);
            }
        }
        std::string flag;
        if (read_scalar(entry["regex_flag"], flag)) {
            if (flag == "i") {
                pr.icase = true;
            } else {
                pr.problem = "unsupported regex_flag '" + flag + "'";
            }
        }
    }

    compile_rules(pending, threads);

    for (std::size_t i = 0; i < pending.size(); ++i) {
        pending_rule& pr = pending[i];
        if (!pr.problem.empty()) {
            unsupported.push_back(pr.where + " " + pr.pattern + ": " + pr.problem);
            s.skipped.push_back(i);
            continue;
        }
        rule& r = pr.r;
        for (const factor& f : pr.factors) {
            const int id = pre.add(f, pr.icase);
            if (std::find(r.factors.begin(), r.factors.end(), id) != r.factors.end()) continue;
            r.factors.push_back(id);
            if (r.key_factor < 0 || pre.better_key(id, r.key_factor)) r.key_factor = id;
        }
        if (r.factors.empty()) s.always.push_back(static_cast<int>(s.rules.size()));
        s.rules.push_back(std::move(r));
    }
    return true;
}

// Runs one rule with captures. Fills g with its original groups; false if it does not match.
// Whether a rule cannot match: its relaxed form (a superset) or its exact form, without
// captures (RE2 then answers from its DFA alone).
bool cannot_match(const rule& r, std::string_view text) {
    const re2::StringPiece sp(text.data(), text.size());
    const RE2& re = r.relaxed ? *r.relaxed : *r.exact;
    return !re.Match(sp, 0, sp.size(), RE2::UNANCHORED, nullptr, 0);
}

bool run_rule(const rule& r, std::string_view text, group_views& g) {
    if (r.dfa_first && cannot_match(r, text)) return false;
    const re2::StringPiece sp(text.data(), text.size());
    std::array<re2::StringPiece, max_relaxed_groups> sub;
    if (r.relaxed) {
        if (!r.relaxed->Match(sp, 0, sp.size(), RE2::UNANCHORED, sub.data(), r.relaxed_slots))
            return false;
        bool within = true;
        for (const auto& [group, max] : r.bounds) {
            if (sub[static_cast<std::size_t>(group)].size() > max) within = false;
        }
        if (within) {
            for (std::size_t k = 0; k < g.size(); ++k) {
                const int m = k < r.group_map.size() ? r.group_map[k] : -1;
                if (m < 0 || m >= r.relaxed_slots ||
                    sub[static_cast<std::size_t>(m)].data() == nullptr) {
                    g[k] = {};
                } else {
                    g[k] = {sub[static_cast<std::size_t>(m)].data(),
                            sub[static_cast<std::size_t>(m)].size()};
                }
            }
            return true;
        }
    }
    if (!r.exact->Match(sp, 0, sp.size(), RE2::UNANCHORED, sub.data(), r.exact_slots)) return false;
    for (std::size_t k = 0; k < g.size(); ++k) {
        const bool set = static_cast<int>(k) < r.exact_slots && sub[k].data() != nullptr;
        g[k] = set ? std::string_view(sub[k].data(), sub[k].size()) : std::string_view();
    }
    return true;
}

}  // namespace

struct parser::impl {
    options opts;
    std::array<section, 3> sections{{{section_kind::user_agent, "user_agent_parsers"},
                                     {section_kind::os, "os_parsers"},
                                     {section_kind::device, "device_parsers"}}};
    std::vector<std::string> unsupported;
    std::size_t regex_count = 0;

    // The prefilter: atoms found in the UA → factors found → candidate rules.
    std::array<literal_matcher, 2> atoms;  // case-sensitive atoms, case-folded atoms
    std::array<std::vector<std::vector<int>>, 2> atom_factors;  // [fold][atom id] → factor ids
    // Factor id → the rules it is the key of, as section << 16 | rule index.
    std::vector<std::vector<std::uint32_t>> keyed;

    struct matches {
        std::array<int, 3> rule{-1, -1, -1};  // per section, index into rules; -1: none
        std::array<group_views, 3> groups;
        std::uint32_t tokens = 0;
    };
    void match(std::string_view text, matches& m) const;

    // The exact regexes one by one, as the specification describes (use_prefilter = false).
    int reference_scan(const section& s, std::string_view text, group_views& g) const;
};

int parser::impl::reference_scan(const section& s, std::string_view text, group_views& g) const {
    const re2::StringPiece sp(text.data(), text.size());
    std::array<re2::StringPiece, max_groups> sub;
    for (std::size_t i = 0; i < s.rules.size(); ++i) {
        const rule& r = s.rules[i];
        if (!r.exact->Match(sp, 0, sp.size(), RE2::UNANCHORED, sub.data(), r.exact_slots)) continue;
        for (std::size_t k = 0; k < g.size(); ++k) {
            const bool set = static_cast<int>(k) < r.exact_slots && sub[k].data() != nullptr;
            g[k] = set ? std::string_view(sub[k].data(), sub[k].size()) : std::string_view();
        }
        return static_cast<int>(i);
    }
    return -1;
}

void parser::impl::match(std::string_view text, matches& m) const {
    m.rule = {-1, -1, -1};
    m.tokens = scan_device_tokens(text);
    if (!opts.use_prefilter) {
        for (std::size_t k = 0; k < sections.size(); ++k) {
            m.rule[k] = reference_scan(sections[k], text, m.groups[k]);
        }
        return;
    }
    // Per-thread scratch, reused: no allocation once grown.
    thread_local std::vector<std::uint8_t> found;
    thread_local std::vector<int> found_list;
    thread_local std::array<std::vector<int>, 3> candidates;

    found.resize(keyed.size());
    found_list.clear();
    for (std::size_t fold = 0; fold < 2; ++fold) {
        if (atoms[fold].empty()) continue;
        const auto& table = atom_factors[fold];
        atoms[fold].scan(text, [&](int atom) {
            for (int f : table[static_cast<std::size_t>(atom)]) {
                if (found[static_cast<std::size_t>(f)] != 0) continue;
                found[static_cast<std::size_t>(f)] = 1;
                found_list.push_back(f);
            }
        });
    }
    for (std::size_t k = 0; k < sections.size(); ++k) {
        candidates[k].assign(sections[k].always.begin(), sections[k].always.end());
    }
    for (int f : found_list) {
        for (std::uint32_t ref : keyed[static_cast<std::size_t>(f)]) {
            candidates[ref >> 16].push_back(static_cast<int>(ref & 0xFFFF));
        }
    }
    // Candidates in file order; the first whose factors were all found and which matches wins.
    for (std::size_t k = 0; k < sections.size(); ++k) {
        auto& c = candidates[k];
        std::sort(c.begin(), c.end());
        for (int i : c) {
            const rule& r = sections[k].rules[static_cast<std::size_t>(i)];
            const bool all = std::all_of(r.factors.begin(), r.factors.end(), [](int f) {
                return found[static_cast<std::size_t>(f)] != 0;
            });
            if (all && run_rule(r, text, m.groups[k])) {
                m.rule[k] = i;
                break;
            }
        }
    }
    for (int f : found_list) found[static_cast<std::size_t>(f)] = 0;
}

namespace {

void fill(const rule& r, const group_views& g, std::array<std::string*, fields_per_rule> out) {
    for (std::size_t f = 0; f < fields_per_rule; ++f) {
        std::string* o = out[f];
        if (o == nullptr) continue;
        const field_rule& fr = r.fields[f];
        o->clear();
        if (fr.has_replacement) {
            for (const auto& p : fr.rep.pieces) {
                if (p.group >= 0) {
                    o->append(g[static_cast<std::size_t>(p.group)]);
                } else {
                    o->append(p.literal);
                }
            }
        } else if (fr.group > 0) {
            o->assign(g[static_cast<std::size_t>(fr.group)]);
        }
        trim(*o);
        keep_valid_utf8(*o);
    }
}

}  // namespace

parser::parser(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
parser::~parser() = default;

std::shared_ptr<const parser> parser::load(const std::string& path, options o, std::string& err) {
    std::string text;
    if (!util::read_file(path, text, err)) return nullptr;
    return from_text(text, path, o, err);
}

std::shared_ptr<const parser> parser::from_text(std::string_view yaml, std::string_view name,
                                                options o, std::string& err) {
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        err = position(name, e.mark) + ": " + e.msg;
        return nullptr;
    }
    if (!root.IsMap()) {
        err = position(name, root) +
              ": expected a mapping with user_agent_parsers, os_parsers and device_parsers";
        return nullptr;
    }
    auto p = std::make_unique<impl>();
    p->opts = o;
    prefilter_builder pre;
    try {
        for (section& s : p->sections) {
            const YAML::Node seq = root[s.name];
            if (!seq) {
                err = position(name, root) + ": missing " + s.name;
                return nullptr;
            }
            if (!build_section(s, seq, name, p->unsupported, pre, o.load_threads, err)) {
                return nullptr;
            }
            p->regex_count += s.rules.size();
        }
    } catch (const YAML::Exception& e) {
        err = position(name, e.mark) + ": " + e.msg;
        return nullptr;
    }
    p->keyed.resize(pre.shortest_of.size());
    for (std::size_t k = 0; k < p->sections.size(); ++k) {
        const auto& rules = p->sections[k].rules;
        if (rules.size() > 0xFFFF) {
            err = std::string(name) + ": more than 65535 regexes in " + p->sections[k].name;
            return nullptr;
        }
        for (std::size_t i = 0; i < rules.size(); ++i) {
            if (rules[i].key_factor < 0) continue;
            p->keyed[static_cast<std::size_t>(rules[i].key_factor)].push_back(
                static_cast<std::uint32_t>(k << 16 | i));
        }
    }
    for (std::size_t fold = 0; fold < 2; ++fold) {
        pre.atom_factors[fold].resize(pre.atoms[fold].size());
        pre.atoms[fold].build();
    }
    p->atoms = std::move(pre.atoms);
    p->atom_factors = std::move(pre.atom_factors);
    return std::shared_ptr<const parser>(new parser(std::move(p)));
}

result parser::parse(std::string_view user_agent) const {
    const std::string_view text = cut_utf8(user_agent, impl_->opts.max_length);
    impl::matches m;
    impl_->match(text, m);
    result r;
    const auto& secs = impl_->sections;
    if (m.rule[0] >= 0) {
        fill(secs[0].rules[static_cast<std::size_t>(m.rule[0])], m.groups[0],
             {&r.browser_family, &r.browser_major, &r.browser_minor, &r.browser_patch,
              &r.browser_patch_minor});
    }
    if (r.browser_family.empty()) r.browser_family = "Other";
    if (m.rule[1] >= 0) {
        fill(secs[1].rules[static_cast<std::size_t>(m.rule[1])], m.groups[1],
             {&r.os_family, &r.os_major, &r.os_minor, &r.os_patch, &r.os_patch_minor});
    }
    if (r.os_family.empty()) r.os_family = "Other";
    if (m.rule[2] >= 0) {
        fill(secs[2].rules[static_cast<std::size_t>(m.rule[2])], m.groups[2],
             {&r.device_family, &r.device_brand, &r.device_model, nullptr, nullptr});
    }
    if (r.device_family.empty()) r.device_family = "Other";
    r.device_type = device_type_from(r, m.tokens);
    return r;
}

std::array<int, 3> parser::explain(std::string_view user_agent) const {
    const std::string_view text = cut_utf8(user_agent, impl_->opts.max_length);
    impl::matches m;
    impl_->match(text, m);
    std::array<int, 3> out{};
    for (std::size_t k = 0; k < out.size(); ++k) {
        const auto& rules = impl_->sections[k].rules;
        out[k] = m.rule[k] < 0
                     ? -1
                     : static_cast<int>(rules[static_cast<std::size_t>(m.rule[k])].file_index);
    }
    return out;
}

const std::vector<std::string>& parser::unsupported() const noexcept { return impl_->unsupported; }

bool parser::is_unsupported(std::string_view section_name, std::size_t index) const noexcept {
    for (const section& s : impl_->sections) {
        if (section_name == s.name) {
            return std::binary_search(s.skipped.begin(), s.skipped.end(), index);
        }
    }
    return false;
}

std::size_t parser::regex_count() const noexcept { return impl_->regex_count; }

const options& parser::opts() const noexcept { return impl_->opts; }

namespace {

std::string version_of(const std::string& a, const std::string& b, const std::string& c,
                       const std::string& d) {
    std::string v;
    if (a.empty()) return v;
    v = a;
    for (const std::string* p : {&b, &c, &d}) {
        if (p->empty()) break;
        v += '.';
        v += *p;
    }
    return v;
}

bool is_desktop_os(std::string_view os) noexcept {
    if (os.starts_with("Windows")) {
        return os != "Windows Phone" && os != "Windows Mobile" && os != "Windows CE" &&
               os != "Windows RT";
    }
    static constexpr std::array<std::string_view, 27> families{
        "Mac OS X", "Mac OS",     "Linux",      "Ubuntu",    "Kubuntu",  "Xubuntu",   "Lubuntu",
        "Fedora",   "Debian",     "Red Hat",    "CentOS",    "Gentoo",   "SUSE",      "openSUSE",
        "Mint",     "Linux Mint", "Arch Linux", "Slackware", "Mandriva", "Chrome OS", "FreeBSD",
        "OpenBSD",  "NetBSD",     "Solaris",    "SunOS",     "Haiku",    "BeOS"};
    return std::find(families.begin(), families.end(), os) != families.end();
}

template <std::size_t N>
bool one_of(std::string_view s, const std::array<std::string_view, N>& list) noexcept {
    return std::find(list.begin(), list.end(), s) != list.end();
}

// The rules of README.md, first match wins.
std::string_view device_type_from(const result& r, std::uint32_t tokens) noexcept {
    auto has = [tokens](device_token t) { return (tokens & (std::uint32_t{1} << t)) != 0; };
    const std::string_view os = r.os_family;
    const std::string_view fam = r.device_family;

    if (r.spider()) return "bot";

    static constexpr std::array<std::string_view, 5> tv_os{"tvOS", "ATV OS X", "Chromecast",
                                                           "FireHbbTV", "Roku"};
    if (has(tok_tv) || has(tok_fire_tv) || one_of(os, tv_os) || fam == "AppleTV" ||
        ((has(tok_tizen) || has(tok_webos)) && has(tok_tv_word))) {
        return "tv";
    }
    if (has(tok_console)) return "console";
    if (has(tok_wearable) || os == "WatchOS" || fam == "Apple Watch") return "wearable";

    bool tablet = has(tok_ipad) || has(tok_tablet_brand) || os == "BlackBerry Tablet OS" ||
                  (has(tok_tablet_word) && !has(tok_tablet_pc));
    static constexpr std::array<std::string_view, 6> tablet_families{
        "iPad", "Kindle", "Galaxy Tab", "Nexus 7", "Nexus 9", "Nexus 10"};
    for (std::string_view t : tablet_families) tablet = tablet || fam.starts_with(t);
    // Samsung tablets: SM-T… and SM-X… (Galaxy Tab), SM-P… (Galaxy Note tablets).
    if (r.device_brand == "Samsung" &&
        (r.device_model.starts_with("SM-T") || r.device_model.starts_with("SM-X") ||
         r.device_model.starts_with("SM-P"))) {
        tablet = true;
    }
    // Android browsers say "Mobile" on phones only. Apps' HTTP clients (Dalvik, okhttp) never
    // do, so the rule is for browser UAs.
    const bool android = has(tok_android) || os == "Android";
    if (android && !has(tok_mobi) && has(tok_mozilla)) tablet = true;
    if (tablet) return "tablet";

    static constexpr std::array<std::string_view, 10> phone_os{
        "iOS",        "Android",       "Windows Phone", "Windows Mobile",  "KaiOS",
        "Firefox OS", "BlackBerry OS", "Symbian OS",    "Nokia Series 40", "Nokia Series 30 Plus"};
    if (has(tok_mobi) || android || has(tok_phone) || one_of(os, phone_os) ||
        fam == "Generic Smartphone" || fam == "Generic Feature Phone" || fam == "iPhone") {
        return "mobile";
    }

    if (is_desktop_os(os) && (fam == "Other" || fam == "Mac")) return "desktop";
    return "unknown";
}

}  // namespace

std::string browser_version(const result& r) {
    return version_of(r.browser_major, r.browser_minor, r.browser_patch, r.browser_patch_minor);
}

std::string os_version(const result& r) {
    return version_of(r.os_major, r.os_minor, r.os_patch, r.os_patch_minor);
}

std::string_view derive_device_type(const result& r, std::string_view user_agent) noexcept {
    return device_type_from(r, scan_device_tokens(user_agent));
}

}  // namespace switchyard::enrich::ua
