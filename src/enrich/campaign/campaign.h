#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::enrich {

// Campaign parameters of a page URL (Segment's context.campaign plus the ad click ids).
struct campaign_info {
    std::string source;   // utm_source
    std::string medium;   // utm_medium
    std::string name;     // utm_campaign
    std::string term;     // utm_term
    std::string content;  // utm_content
    std::string id;       // utm_id
    // Ad click ids present (gclid, gbraid, wbraid, dclid, fbclid, msclkid, ttclid, twclid,
    // li_fat_id, yclid, epik, sccid, rdt_cid), lowercase name → value, in URL order.
    std::vector<std::pair<std::string, std::string>> click_ids;

    bool empty() const;
};

// Bounds on what parse_campaign looks at, so a hostile URL costs one linear scan at most.
inline constexpr std::size_t max_campaign_params = 64;
inline constexpr std::size_t max_campaign_value_bytes = 256;

// Reads the campaign parameters from the query of a URL, or from a bare "?a=b&c=d" search
// string. The query runs from the first '?' to the next '#'; a '?' after a '#' is part of the
// fragment and is not read. Names and values are percent-decoded with '+' as a space (a malformed
// escape is kept as sent); names match case-insensitively; the first non-empty occurrence of a
// name wins (an empty value counts as absent); values are cut to max_campaign_value_bytes (at a
// UTF-8 character boundary); only the first max_campaign_params '&'-separated pieces are read.
campaign_info parse_campaign(std::string_view url_or_search);

enum class referrer_medium { search, social, email, paid, internal, unknown };

std::string_view to_string(referrer_medium m) noexcept;

struct referrer_info {
    referrer_medium medium = referrer_medium::unknown;
    // The data file's name for the referrer ("Google", "Facebook"); for a referrer not in the
    // file, its host without "www."; for paid and email without a known host, utm_source; empty
    // for internal and for no usable referrer.
    std::string source;
};

// Classifies a page view's referrer. Immutable once loaded: classify() is safe to call from any
// number of threads.
class referrer_classifier {
  public:
    // Loads the data file: one entry per line, tab-separated: medium (search, social, email,
    // paid), source name, comma-separated host suffixes. A suffix "google.com" matches that host
    // and its subdomains; a suffix ending in '.' ("google.") matches it followed by any top-level
    // domain ("google.de") or country second-level domain ("google.co.uk"). Blank lines and lines
    // starting with '#' are skipped. On a bad line returns null and sets err to
    // "file:line: message".
    static std::unique_ptr<referrer_classifier> load(const std::string& path, std::string& err);
    // Same, from text; errors name the file "<text>".
    static std::unique_ptr<referrer_classifier> from_text(std::string_view tsv, std::string& err);

    // In order:
    //  1. the referrer's host has the page's registrable domain (approximated, see README), or is
    //     (a subdomain of) one of internal_hosts → internal;
    //  2. the page URL carries a paid marker (an ad click id other than fbclid, or utm_medium cpc,
    //     ppc, paid, paidsearch, display, cpm), or the referrer is a `paid` host → paid;
    //  3. utm_medium is email → email;
    //  4. the referrer's host matches a data-file suffix (the longest wins) → its medium, source;
    //  5. otherwise unknown (source: the referrer's host, or empty without a usable referrer).
    // Steps 2 and 3 need no referrer: email clients and referrer policies often send none. Only
    // http and https referrers are read; anything else is treated as no referrer.
    referrer_info classify(std::string_view referrer_url, std::string_view page_url,
                           const std::vector<std::string>& internal_hosts = {}) const;
    // Same, with the page's campaign parameters already parsed (parse_campaign(page_url)).
    referrer_info classify(std::string_view referrer_url, std::string_view page_url,
                           const campaign_info& page_campaign,
                           const std::vector<std::string>& internal_hosts = {}) const;

    // Host suffixes loaded (both kinds).
    std::size_t size() const noexcept { return exact_.size() + any_tld_.size(); }

  private:
    struct entry {
        referrer_medium medium;
        std::string source;
    };

    referrer_classifier() = default;
    static std::unique_ptr<referrer_classifier> parse(std::string_view text, std::string_view file,
                                                      std::string& err);
    const entry* match(std::string_view host) const;

    std::map<std::string, entry, std::less<>> exact_;    // "t.co"
    std::map<std::string, entry, std::less<>> any_tld_;  // "google" (from "google.")
};

}  // namespace switchyard::enrich
