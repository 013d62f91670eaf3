#include "enrich/campaign/campaign.h"

#include "util/fs.h"

#include <simdjson.h>

#include <array>
#include <fstream>
#include <sstream>

namespace switchyard::enrich {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

int hex_value(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
}

// Form-decodes `in` into `out`, stopping at `cap` bytes of output so a huge value costs no more
// than a small one. False when the input did not fit.
bool decode_capped(std::string_view in, std::size_t cap, std::string& out) {
    out.clear();
    std::size_t i = 0;
    for (; i < in.size() && out.size() < cap; ++i) {
        char c = in[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%' && i + 2 < in.size() && hex_value(in[i + 1]) >= 0 &&
                   hex_value(in[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
            i += 2;
        } else {
            // A malformed escape is kept as sent, as browsers' URLSearchParams does.
            out.push_back(c);
        }
    }
    return i == in.size();
}

// After a cut, drops a trailing incomplete UTF-8 sequence so the value stays valid text.
void trim_partial_utf8(std::string& s) {
    std::size_t back = 0;
    while (back < 4 && back < s.size()) {
        auto c = static_cast<unsigned char>(s[s.size() - 1 - back]);
        if ((c & 0xC0) != 0x80) {
            std::size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (need > back + 1) s.resize(s.size() - 1 - back);
            return;
        }
        ++back;
    }
}

struct utm_field {
    std::string_view name;
    std::string campaign_info::*member;
};

const utm_field utm_fields[] = {
    {"utm_source", &campaign_info::source},   {"utm_medium", &campaign_info::medium},
    {"utm_campaign", &campaign_info::name},   {"utm_term", &campaign_info::term},
    {"utm_content", &campaign_info::content}, {"utm_id", &campaign_info::id},
};

constexpr std::string_view click_id_names[] = {
    "gclid",  "gbraid",    "wbraid", "dclid", "fbclid", "msclkid", "ttclid",
    "twclid", "li_fat_id", "yclid",  "epik",  "sccid",  "rdt_cid",
};

// Longer than every name above: a longer name cannot match, so it is not decoded in full.
constexpr std::size_t max_name_bytes = 16;

std::string_view query_of(std::string_view s) {
    auto pos = s.find_first_of("?#");
    if (pos == std::string_view::npos || s[pos] == '#') return {};
    auto q = s.substr(pos + 1);
    return q.substr(0, q.find('#'));
}

// --- hosts -------------------------------------------------------------------------------------

constexpr std::size_t max_host_bytes = 253;  // longest DNS name

// A normalized host held on the stack: classify() allocates nothing to read hosts.
struct host_buf {
    std::array<char, max_host_bytes> data;
    std::size_t size = 0;
    std::string_view view() const { return {data.data(), size}; }
};

bool is_host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

// Lowercases and checks a host name: host characters only, no empty label. Strips one trailing
// '.' (absolute form) and a leading "www.".
bool normalize_host(std::string_view host, host_buf& out) {
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    if (host.empty() || host.size() > max_host_bytes) return false;
    bool bracketed = host.front() == '[';
    for (std::size_t i = 0; i < host.size(); ++i) {
        char c = lower(host[i]);
        if (bracketed) {
            bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.' ||
                      (c == '[' && i == 0) || (c == ']' && i + 1 == host.size());
            if (!ok) return false;
        } else if (!is_host_char(c) || (c == '.' && (i == 0 || out.data[i - 1] == '.'))) {
            return false;
        }
        out.data[i] = c;
    }
    out.size = host.size();
    if (bracketed && (out.size < 3 || out.data[out.size - 1] != ']')) return false;
    if (out.view().starts_with("www.") && out.size > 4) {
        std::copy(out.data.begin() + 4, out.data.begin() + out.size, out.data.begin());
        out.size -= 4;
    }
    return true;
}

// scheme://[userinfo@]host[:port][/?#…] with scheme http or https; false for anything else.
bool extract_host(std::string_view url, host_buf& out) {
    while (!url.empty() && (url.front() == ' ' || url.front() == '\t')) url.remove_prefix(1);
    auto colon = url.find(':');
    if (colon == std::string_view::npos) return false;
    auto scheme = url.substr(0, colon);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) return false;
    auto rest = url.substr(colon + 1);
    if (!rest.starts_with("//")) return false;
    rest.remove_prefix(2);
    auto authority = rest.substr(0, rest.find_first_of("/?#\\"));
    if (auto at = authority.rfind('@'); at != std::string_view::npos)
        authority.remove_prefix(at + 1);
    std::string_view host, port;
    if (authority.starts_with('[')) {
        auto close = authority.find(']');
        if (close == std::string_view::npos) return false;
        host = authority.substr(0, close + 1);
        auto after = authority.substr(close + 1);
        if (!after.empty() && after.front() != ':') return false;
        port = after.empty() ? after : after.substr(1);
    } else {
        auto c = authority.find(':');
        host = authority.substr(0, c);
        port = c == std::string_view::npos ? std::string_view{} : authority.substr(c + 1);
    }
    for (char c : port)
        if (c < '0' || c > '9') return false;
    return normalize_host(host, out);
}

bool is_ip(std::string_view host) {
    if (host.starts_with('[')) return true;
    for (char c : host)
        if ((c < '0' || c > '9') && c != '.') return false;
    return true;
}

// "co.uk", "com.au", "ne.jp": a country code under which names are registered one level down.
// A stand-in for the Public Suffix List that covers the common cases; see README.
bool is_country_second_level(std::string_view two_labels) {
    auto dot = two_labels.find('.');
    if (dot == std::string_view::npos) return false;
    auto sld = two_labels.substr(0, dot), tld = two_labels.substr(dot + 1);
    if (tld.size() != 2 || tld.find('.') != std::string_view::npos) return false;
    for (std::string_view s :
         {"ac", "co", "com", "edu", "go", "gob", "gov", "ne", "net", "or", "org"})
        if (sld == s) return true;
    return false;
}

// Start of the label `n` labels from the end (n >= 1), or npos when the host has fewer.
std::size_t label_start(std::string_view host, int n) {
    std::size_t end = host.size();
    for (int i = 0; i < n; ++i) {
        if (end == 0) return std::string_view::npos;
        auto dot = host.rfind('.', end - 1);
        if (i + 1 == n) return dot == std::string_view::npos ? 0 : dot + 1;
        if (dot == std::string_view::npos) return std::string_view::npos;
        end = dot;
    }
    return std::string_view::npos;
}

std::string_view registrable_domain(std::string_view host) {
    if (is_ip(host)) return host;
    auto two = label_start(host, 2);
    if (two == std::string_view::npos) return host;
    if (is_country_second_level(host.substr(two))) {
        auto three = label_start(host, 3);
        return three == std::string_view::npos ? host : host.substr(three);
    }
    return host.substr(two);
}

bool ends_with_label(std::string_view host, std::string_view suffix) {
    if (suffix.empty() || host.size() < suffix.size()) return false;
    if (!iequals(host.substr(host.size() - suffix.size()), suffix)) return false;
    return host.size() == suffix.size() || host[host.size() - suffix.size() - 1] == '.';
}

bool listed_internal(std::string_view host, const std::vector<std::string>& internal_hosts) {
    for (std::string_view h : internal_hosts) {
        while (!h.empty() && h.front() == '.') h.remove_prefix(1);
        while (!h.empty() && h.back() == '.') h.remove_suffix(1);
        if (h.size() > 4 && iequals(h.substr(0, 4), "www.")) h.remove_prefix(4);
        if (ends_with_label(host, h)) return true;
    }
    return false;
}

bool is_paid_medium(std::string_view m) {
    for (std::string_view p : {"cpc", "ppc", "paid", "paidsearch", "display", "cpm"})
        if (iequals(m, p)) return true;
    return false;
}

bool is_email_medium(std::string_view m) {
    for (std::string_view p : {"email", "e-mail", "e_mail", "e mail"})
        if (iequals(m, p)) return true;
    return false;
}

// Ad click ids mean a paid click, except fbclid: Facebook adds it to every outbound link,
// organic posts included.
bool has_paid_click_id(const campaign_info& c) {
    for (const auto& [name, value] : c.click_ids)
        if (name != "fbclid") return true;
    return false;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

bool parse_medium(std::string_view s, referrer_medium& out) {
    for (auto m : {referrer_medium::search, referrer_medium::social, referrer_medium::email,
                   referrer_medium::paid}) {
        if (s == to_string(m)) {
            out = m;
            return true;
        }
    }
    return false;
}

// Checks one host suffix of the data file; empty when valid, else why not.
std::string check_suffix(std::string_view s) {
    if (s.empty()) return "empty host suffix";
    std::string_view body = s.back() == '.' ? s.substr(0, s.size() - 1) : s;
    if (body.empty() || body.size() > max_host_bytes)
        return "bad host suffix '" + std::string(s) + "'";
    if (body.starts_with("www."))
        return "host suffix '" + std::string(s) +
               "' starts with www. (hosts are compared without it)";
    for (std::size_t i = 0; i < body.size(); ++i) {
        char c = body[i];
        if (!is_host_char(c) || (c >= 'A' && c <= 'Z'))
            return "bad character in host suffix '" + std::string(s) +
                   "' (lowercase a-z, 0-9, -, ., _)";
        if (c == '.' && (i == 0 || i + 1 == body.size() || body[i - 1] == '.'))
            return "empty label in host suffix '" + std::string(s) + "'";
    }
    return {};
}

}  // namespace

bool campaign_info::empty() const {
    return source.empty() && medium.empty() && name.empty() && term.empty() && content.empty() &&
           id.empty() && click_ids.empty();
}

campaign_info parse_campaign(std::string_view url_or_search) {
    campaign_info out;
    auto q = query_of(url_or_search);
    std::string name, value;
    for (std::size_t seen = 0; !q.empty() && seen < max_campaign_params; ++seen) {
        auto amp = q.find('&');
        auto part = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        auto eq = part.find('=');
        auto raw_value = eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
        if (!decode_capped(part.substr(0, eq), max_name_bytes, name)) continue;
        for (auto& c : name) c = lower(c);

        std::string* target = nullptr;
        std::string_view click_id;
        for (const auto& f : utm_fields)
            if (name == f.name) target = &(out.*f.member);
        if (!target) {
            for (auto n : click_id_names)
                if (name == n) click_id = n;
            if (click_id.empty()) continue;
            bool seen_before = false;
            for (const auto& [n, v] : out.click_ids) seen_before = seen_before || n == click_id;
            if (seen_before) continue;
        } else if (!target->empty()) {
            continue;
        }

        if (!decode_capped(raw_value, max_campaign_value_bytes, value)) trim_partial_utf8(value);
        if (!simdjson::validate_utf8(value.data(), value.size())) {
            // Escapes that decode to invalid UTF-8 ("%FF"): keep the value as sent, which is
            // text, rather than bytes no JSON output could carry.
            value.assign(raw_value.substr(0, max_campaign_value_bytes));
            trim_partial_utf8(value);
        }
        if (value.empty()) continue;
        if (target)
            *target = value;
        else
            out.click_ids.emplace_back(std::string(click_id), value);
    }
    return out;
}

std::string_view to_string(referrer_medium m) noexcept {
    switch (m) {
        case referrer_medium::search:
            return "search";
        case referrer_medium::social:
            return "social";
        case referrer_medium::email:
            return "email";
        case referrer_medium::paid:
            return "paid";
        case referrer_medium::internal:
            return "internal";
        case referrer_medium::unknown:
            return "unknown";
    }
    return "unknown";
}

std::unique_ptr<referrer_classifier> referrer_classifier::load(const std::string& path,
                                                               std::string& err) {
    std::string text;
    if (!util::read_file(path, text, err)) return nullptr;
    return parse(text, path, err);
}

std::unique_ptr<referrer_classifier> referrer_classifier::from_text(std::string_view tsv,
                                                                    std::string& err) {
    return parse(tsv, "<text>", err);
}

std::unique_ptr<referrer_classifier> referrer_classifier::parse(std::string_view text,
                                                                std::string_view file,
                                                                std::string& err) {
    std::unique_ptr<referrer_classifier> out(new referrer_classifier);
    std::map<std::string, std::size_t, std::less<>> first_line;  // suffix → line, for duplicates
    std::size_t line_no = 0;
    auto fail = [&](const std::string& msg) {
        err = std::string(file) + ":" + std::to_string(line_no) + ": " + msg;
        return nullptr;
    };
    while (!text.empty()) {
        ++line_no;
        auto nl = text.find('\n');
        // Only spaces and '\r' are trimmed here: a trailing tab is an (empty) column.
        auto line = text.substr(0, nl);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
        while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (line.empty() || line.front() == '#') continue;

        std::string_view fields[3];
        std::size_t n = 0;
        for (std::string_view rest = line;; ++n) {
            auto tab = rest.find('\t');
            if (n < 3) fields[n] = trim(rest.substr(0, tab));
            if (tab == std::string_view::npos) break;
            rest = rest.substr(tab + 1);
        }
        if (n + 1 != 3)
            return fail("expected 3 tab-separated columns (medium, source, host suffixes), got " +
                        std::to_string(n + 1));
        referrer_medium medium;
        if (!parse_medium(fields[0], medium))
            return fail("unknown medium '" + std::string(fields[0]) +
                        "' (search, social, email, paid)");
        if (fields[1].empty()) return fail("empty source name");

        std::string_view hosts = fields[2];
        if (hosts.empty()) return fail("no host suffixes");
        while (true) {
            auto comma = hosts.find(',');
            auto suffix = trim(hosts.substr(0, comma));
            if (auto why = check_suffix(suffix); !why.empty()) return fail(why);
            if (auto it = first_line.find(suffix); it != first_line.end())
                return fail("duplicate host suffix '" + std::string(suffix) + "' (first on line " +
                            std::to_string(it->second) + ")");
            first_line.emplace(std::string(suffix), line_no);
            entry e{medium, std::string(fields[1])};
            if (suffix.back() == '.')
                out->any_tld_.emplace(std::string(suffix.substr(0, suffix.size() - 1)), e);
            else
                out->exact_.emplace(std::string(suffix), e);
            if (comma == std::string_view::npos) break;
            hosts = hosts.substr(comma + 1);
        }
    }
    return out;
}

// Walks the host's label boundaries from the longest suffix down, so the first hit is the longest
// match; at equal length an exact suffix beats an any-TLD one.
const referrer_classifier::entry* referrer_classifier::match(std::string_view host) const {
    if (is_ip(host)) return nullptr;
    for (std::size_t i = 0; i < host.size();) {
        auto tail = host.substr(i);
        if (auto it = exact_.find(tail); it != exact_.end()) return &it->second;
        // "google." + a TLD ("de"), or + a country second level ("co.uk").
        for (int labels = 1; labels <= 2; ++labels) {
            auto start = label_start(tail, labels);
            if (start == std::string_view::npos || start == 0) continue;
            auto tld = tail.substr(start);
            if (labels == 2 && !is_country_second_level(tld)) continue;
            if (auto it = any_tld_.find(tail.substr(0, start - 1)); it != any_tld_.end())
                return &it->second;
        }
        auto dot = host.find('.', i);
        if (dot == std::string_view::npos) break;
        i = dot + 1;
    }
    return nullptr;
}

referrer_info referrer_classifier::classify(std::string_view referrer_url,
                                            std::string_view page_url,
                                            const std::vector<std::string>& internal_hosts) const {
    return classify(referrer_url, page_url, parse_campaign(page_url), internal_hosts);
}

referrer_info referrer_classifier::classify(std::string_view referrer_url,
                                            std::string_view page_url,
                                            const campaign_info& campaign,
                                            const std::vector<std::string>& internal_hosts) const {
    host_buf ref, page;
    bool have_ref = extract_host(referrer_url, ref);
    std::string_view ref_host = have_ref ? ref.view() : std::string_view{};
    if (have_ref) {
        bool same_site = extract_host(page_url, page) &&
                         registrable_domain(ref_host) == registrable_domain(page.view());
        if (same_site || listed_internal(ref_host, internal_hosts))
            return {referrer_medium::internal, {}};
    }

    const entry* known = have_ref ? match(ref_host) : nullptr;
    auto source = [&]() -> std::string {
        if (known) return known->source;
        if (!campaign.source.empty()) return campaign.source;
        return std::string(ref_host);
    };
    if (has_paid_click_id(campaign) || is_paid_medium(campaign.medium) ||
        (known && known->medium == referrer_medium::paid))
        return {referrer_medium::paid, source()};
    if (is_email_medium(campaign.medium)) return {referrer_medium::email, source()};
    if (known) return {known->medium, known->source};
    return {referrer_medium::unknown, std::string(ref_host)};
}

}  // namespace switchyard::enrich
