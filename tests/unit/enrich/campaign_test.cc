#include "enrich/campaign/campaign.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace switchyard::enrich {
namespace {

using click_id_list = std::vector<std::pair<std::string, std::string>>;

// campaign_info's fields, defaulted so each case names only the ones it expects.
struct expected {
    std::string source = {};
    std::string medium = {};
    std::string name = {};
    std::string term = {};
    std::string content = {};
    std::string id = {};
    click_id_list click_ids = {};
};

struct campaign_case {
    const char* label;
    std::string url;
    expected want;
};

void expect_campaign(const campaign_info& got, const expected& want, const char* label) {
    SCOPED_TRACE(label);
    EXPECT_EQ(got.source, want.source);
    EXPECT_EQ(got.medium, want.medium);
    EXPECT_EQ(got.name, want.name);
    EXPECT_EQ(got.term, want.term);
    EXPECT_EQ(got.content, want.content);
    EXPECT_EQ(got.id, want.id);
    EXPECT_EQ(got.click_ids, want.click_ids);
    bool all_empty = want.source.empty() && want.medium.empty() && want.name.empty() &&
                     want.term.empty() && want.content.empty() && want.id.empty() &&
                     want.click_ids.empty();
    EXPECT_EQ(got.empty(), all_empty);
}

TEST(CampaignParse, Table) {
    const campaign_case cases[] = {
        {"all utm fields",
         "https://shop.example.com/p?utm_source=google&utm_medium=cpc&utm_campaign=spring&utm_term="
         "shoes&utm_content=banner&utm_id=42",
         {"google", "cpc", "spring", "shoes", "banner", "42", {}}},
        {"bare search string",
         "?utm_source=news&utm_medium=email",
         {.source = "news", .medium = "email"}},
        {"percent-decoding and plus",
         "https://e.com/?utm_campaign=summer+sale%202024&utm_term=caf%C3%A9%26bar",
         {.name = "summer sale 2024", .term = "caf\xC3\xA9&bar"}},
        {"encoded name", "https://e.com/?utm%5Fsource=x", {.source = "x"}},
        {"malformed escape kept as sent",
         "https://e.com/?utm_source=100%&utm_term=%zz",
         {.source = "100%", .term = "%zz"}},
        {"names case-insensitive, values as sent",
         "https://e.com/?UTM_Source=Google&Utm_Medium=CPC&GCLID=AbC",
         {.source = "Google", .medium = "CPC", .click_ids = {{"gclid", "AbC"}}}},
        {"first occurrence wins",
         "https://e.com/?utm_source=a&utm_source=b&gclid=1&gclid=2",
         {.source = "a", .click_ids = {{"gclid", "1"}}}},
        {"empty value counts as absent",
         "https://e.com/?utm_source=&utm_source=b&utm_medium",
         {.source = "b"}},
        {"no '=' and empty pieces", "https://e.com/?&&utm_medium&utm_term=t&", {.term = "t"}},
        {"fragment is not a query", "https://e.com/page#utm_source=x", {}},
        {"query before fragment only", "https://e.com/?utm_source=a#utm_medium=b", {.source = "a"}},
        {"'?' inside the fragment", "https://e.com/#/route?utm_source=x", {}},
        {"no query", "https://e.com/utm_source=x", {}},
        {"empty input", "", {}},
        {"unrelated parameters", "https://e.com/?q=1&utm=2&utm_sourcex=3&xutm_source=4", {}},
        {"click ids in URL order",
         "https://e.com/?msclkid=m&fbclid=f&gbraid=gb&wbraid=wb&dclid=d&ttclid=tt&twclid=tw&li_"
         "fat_id=li&yclid=y&epik=e&sccid=s&rdt_cid=r&gclid=g",
         {.click_ids = {{"msclkid", "m"},
                        {"fbclid", "f"},
                        {"gbraid", "gb"},
                        {"wbraid", "wb"},
                        {"dclid", "d"},
                        {"ttclid", "tt"},
                        {"twclid", "tw"},
                        {"li_fat_id", "li"},
                        {"yclid", "y"},
                        {"epik", "e"},
                        {"sccid", "s"},
                        {"rdt_cid", "r"},
                        {"gclid", "g"}}}},
        {"empty click id ignored",
         "https://e.com/?gclid=&msclkid=x",
         {.click_ids = {{"msclkid", "x"}}}},
    };
    for (const auto& c : cases) expect_campaign(parse_campaign(c.url), c.want, c.label);
}

TEST(CampaignParse, EscapesThatAreNotUtf8AreKeptAsSent) {
    auto c = parse_campaign("https://x.example/?utm_source=%E2%82&utm_medium=%FFa&utm_term=%C3%A9");
    EXPECT_EQ(c.source, "%E2%82");
    EXPECT_EQ(c.medium, "%FFa");
    EXPECT_EQ(c.term, "\xc3\xa9");  // valid: decoded
}

TEST(CampaignParse, ValueCappedAtCharacterBoundary) {
    // 255 ASCII bytes then a 2-byte character: cutting at 256 would split it.
    std::string url = "?utm_source=" + std::string(255, 'a') + "%C3%A9tail";
    auto got = parse_campaign(url);
    EXPECT_EQ(got.source, std::string(255, 'a'));

    auto exact = parse_campaign("?utm_term=" + std::string(max_campaign_value_bytes, 'b'));
    EXPECT_EQ(exact.term.size(), max_campaign_value_bytes);
}

TEST(CampaignParse, HostileInputStaysBounded) {
    // 10,000 parameters: only the first max_campaign_params are looked at.
    std::string many = "https://e.com/?";
    for (int i = 0; i < 10'000; ++i) many += "p" + std::to_string(i) + "=v&";
    many += "utm_source=late";
    std::string early = "?";
    for (std::size_t i = 0; i + 1 < max_campaign_params; ++i) early += "x=1&";
    early += "utm_source=edge";

    // A 1 MB value (escaped, so it decodes byte by byte) before the parameter that matters.
    std::string big = "https://e.com/?utm_campaign=";
    for (int i = 0; i < (1 << 20) / 3; ++i) big += "%41";
    big += "&utm_source=after";

    auto m = parse_campaign(many);
    auto e = parse_campaign(early);
    auto b = parse_campaign(big);

    EXPECT_TRUE(m.empty());
    EXPECT_EQ(e.source, "edge");  // the 64th piece is still read
    EXPECT_EQ(b.name, std::string(max_campaign_value_bytes, 'A'));
    EXPECT_EQ(b.source, "after");
}

std::string data_file() {
    if (const char* dir = std::getenv("SWITCHYARD_SOURCE_DIR"))
        return (std::filesystem::path(dir) / "src/enrich/campaign/referrers.tsv").string();
    return (std::filesystem::path(__FILE__).parent_path() /
            "../../../src/enrich/campaign/referrers.tsv")
        .string();
}

const referrer_classifier& shipped() {
    static const auto c = [] {
        std::string err;
        auto loaded = referrer_classifier::load(data_file(), err);
        EXPECT_TRUE(loaded) << err;
        return loaded;
    }();
    return *c;
}

struct referrer_case {
    const char* label;
    std::string referrer;
    std::string page;
    referrer_medium medium;
    std::string source;
    std::vector<std::string> internal_hosts = {};
};

const std::string page = "https://shop.example.com/landing";

TEST(ReferrerClassify, ShippedDataFile) {
    ASSERT_GT(shipped().size(), 50u);
    const referrer_case cases[] = {
        // search
        {"google.com", "https://www.google.com/", page, referrer_medium::search, "Google"},
        {"google.co.uk", "https://www.google.co.uk/search?q=x", page, referrer_medium::search,
         "Google"},
        {"google.de", "https://google.de/", page, referrer_medium::search, "Google"},
        {"google.com.br", "https://www.google.com.br/", page, referrer_medium::search, "Google"},
        {"bing", "https://www.bing.com/search?q=shoes", page, referrer_medium::search, "Bing"},
        {"duckduckgo", "https://duckduckgo.com/", page, referrer_medium::search, "DuckDuckGo"},
        {"yahoo subdomain", "https://uk.search.yahoo.com/", page, referrer_medium::search, "Yahoo"},
        {"yandex.ru", "https://yandex.ru/search/", page, referrer_medium::search, "Yandex"},
        {"upper case, port, userinfo", "HTTPS://user:pw@WWW.Google.COM:443/x", page,
         referrer_medium::search, "Google"},
        {"absolute host with trailing dot", "https://www.google.com./", page,
         referrer_medium::search, "Google"},
        // social
        {"l.facebook.com", "https://l.facebook.com/l.php?u=x", page, referrer_medium::social,
         "Facebook"},
        {"m.facebook.com", "https://m.facebook.com/", page, referrer_medium::social, "Facebook"},
        {"t.co", "https://t.co/abc123", page, referrer_medium::social, "Twitter"},
        {"x.com", "https://x.com/someone/status/1", page, referrer_medium::social, "Twitter"},
        {"lnkd.in", "https://lnkd.in/abc", page, referrer_medium::social, "LinkedIn"},
        {"hacker news", "https://news.ycombinator.com/item?id=1", page, referrer_medium::social,
         "Hacker News"},
        {"fbclid alone is not paid", "https://l.facebook.com/",
         "https://shop.example.com/?fbclid=abc", referrer_medium::social, "Facebook"},
        // email
        {"gmail beats google. (longest suffix)", "https://mail.google.com/mail/u/0/", page,
         referrer_medium::email, "Gmail"},
        {"outlook", "https://outlook.live.com/", page, referrer_medium::email, "Outlook.com"},
        {"yahoo mail any tld", "https://mail.yahoo.co.jp/", page, referrer_medium::email,
         "Yahoo Mail"},
        {"utm_medium=email, no referrer", "",
         "https://shop.example.com/?utm_medium=email&utm_source=newsletter", referrer_medium::email,
         "newsletter"},
        {"utm_medium=Email, unknown referrer", "https://tracker.example.org/",
         "https://shop.example.com/?utm_medium=Email", referrer_medium::email,
         "tracker.example.org"},
        // paid
        {"gclid from google", "https://www.google.com/", "https://shop.example.com/?gclid=abc",
         referrer_medium::paid, "Google"},
        {"utm_medium=cpc from bing", "https://www.bing.com/",
         "https://shop.example.com/?utm_medium=cpc&utm_source=bing", referrer_medium::paid, "Bing"},
        {"utm_medium=cpc, unknown referrer: utm_source", "https://partner.example.net/",
         "https://shop.example.com/?utm_medium=CPC&utm_source=ads", referrer_medium::paid, "ads"},
        {"msclkid, no referrer", "", "https://shop.example.com/?msclkid=1", referrer_medium::paid,
         ""},
        {"ad server host", "https://adclick.g.doubleclick.net/", page, referrer_medium::paid,
         "Google Ads"},
        // internal
        {"same host", "https://shop.example.com/cart", page, referrer_medium::internal, ""},
        {"www vs no www", "https://www.example.com/", "https://example.com/",
         referrer_medium::internal, ""},
        {"no www vs www", "https://example.com/", "https://www.example.com/",
         referrer_medium::internal, ""},
        {"sibling subdomain", "https://blog.example.com/", page, referrer_medium::internal, ""},
        {"country second level", "https://www.example.co.uk/", "https://shop.example.co.uk/",
         referrer_medium::internal, ""},
        {"internal beats paid marker", "https://shop.example.com/",
         "https://shop.example.com/?gclid=1", referrer_medium::internal, ""},
        {"listed internal host",
         "https://checkout.pay.example.net/x",
         page,
         referrer_medium::internal,
         "",
         {"www.pay.example.net"}},
        {"listed host matches on labels only",
         "https://notpay.example.net/",
         page,
         referrer_medium::unknown,
         "notpay.example.net",
         {"pay.example.net"}},
        {"other co.uk site is not internal", "https://other.co.uk/", "https://example.co.uk/",
         referrer_medium::unknown, "other.co.uk"},
        // unknown
        {"unlisted site", "https://www.Some-Blog.org/post", page, referrer_medium::unknown,
         "some-blog.org"},
        {"google. needs a real TLD after it", "https://google.evil.com/", page,
         referrer_medium::unknown, "google.evil.com"},
        {"google.com as a subdomain", "https://google.com.evil.com/", page,
         referrer_medium::unknown, "google.com.evil.com"},
        {"ip address", "http://192.0.2.7:8080/", page, referrer_medium::unknown, "192.0.2.7"},
        {"ipv6 address", "http://[2001:db8::1]:8080/", page, referrer_medium::unknown,
         "[2001:db8::1]"},
        {"empty", "", page, referrer_medium::unknown, ""},
        {"not a url", "not a url", page, referrer_medium::unknown, ""},
        {"javascript", "javascript:alert(1)", page, referrer_medium::unknown, ""},
        {"other scheme", "android-app://com.google.android.gm/", page, referrer_medium::unknown,
         ""},
        {"no host", "https:///path", page, referrer_medium::unknown, ""},
        {"bad host characters", "https://exa mple.com/", page, referrer_medium::unknown, ""},
        {"empty label", "https://a..com/", page, referrer_medium::unknown, ""},
        {"bad port", "https://google.com:80x/", page, referrer_medium::unknown, ""},
        {"unclosed ipv6", "https://[::1/", page, referrer_medium::unknown, ""},
        {"overlong host", "https://" + std::string(300, 'a') + ".com/", page,
         referrer_medium::unknown, ""},
        {"garbage page url keeps referrer", "https://www.google.com/", "%%%",
         referrer_medium::search, "Google"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.label);
        auto got = shipped().classify(c.referrer, c.page, c.internal_hosts);
        EXPECT_EQ(to_string(got.medium), to_string(c.medium));
        EXPECT_EQ(got.source, c.source);
    }
}

TEST(ReferrerClassify, LongestSuffixWins) {
    std::string err;
    auto c = referrer_classifier::from_text(
        "search\tExample Search\texample.\n"
        "social\tExample Social\tsocial.example.com\n"
        "email\tExample Mail\tmail.social.example.com\n",
        err);
    ASSERT_TRUE(c) << err;
    EXPECT_EQ(c->size(), 3u);
    struct row {
        const char* host;
        referrer_medium medium;
        std::string source;
    };
    const row rows[] = {
        {"https://example.com/", referrer_medium::search, "Example Search"},
        {"https://a.example.co.uk/", referrer_medium::search, "Example Search"},
        {"https://social.example.com/", referrer_medium::social, "Example Social"},
        {"https://x.social.example.com/", referrer_medium::social, "Example Social"},
        {"https://mail.social.example.com/", referrer_medium::email, "Example Mail"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.host);
        auto got = c->classify(r.host, "https://site.test/");
        EXPECT_EQ(to_string(got.medium), to_string(r.medium));
        EXPECT_EQ(got.source, r.source);
    }
}

TEST(ReferrerClassify, MediumNames) {
    EXPECT_EQ(to_string(referrer_medium::search), "search");
    EXPECT_EQ(to_string(referrer_medium::social), "social");
    EXPECT_EQ(to_string(referrer_medium::email), "email");
    EXPECT_EQ(to_string(referrer_medium::paid), "paid");
    EXPECT_EQ(to_string(referrer_medium::internal), "internal");
    EXPECT_EQ(to_string(referrer_medium::unknown), "unknown");
}

TEST(ReferrerDataFile, Errors) {
    struct bad {
        std::string text;
        std::string want;
    };
    const bad cases[] = {
        {"# comment\n\nsearch\tGoogle\n", "<text>:3: expected 3 tab-separated columns"},
        {"search\tA\ta.com\textra\n", "<text>:1: expected 3 tab-separated columns"},
        {"search\tA\ta.com\nreferral\tB\tb.com\n", "<text>:2: unknown medium 'referral'"},
        {"internal\tB\tb.com\n", "<text>:1: unknown medium 'internal'"},
        {"search\t\tb.com\n", "<text>:1: empty source name"},
        {"search\tB\t\n", "<text>:1: no host suffixes"},
        {"search\tB\tb.com,,c.com\n", "<text>:1: empty host suffix"},
        {"search\tB\tB.com\n", "<text>:1: bad character in host suffix 'B.com'"},
        {"search\tB\tb c.com\n", "<text>:1: bad character in host suffix 'b c.com'"},
        {"search\tB\t.b.com\n", "<text>:1: empty label in host suffix '.b.com'"},
        {"search\tB\tb..com\n", "<text>:1: empty label in host suffix 'b..com'"},
        {"search\tB\twww.b.com\n", "<text>:1: host suffix 'www.b.com' starts with www."},
        {"search\tB\t.\n", "<text>:1: bad host suffix '.'"},
        {"search\tA\ta.com\r\n\r\nsocial\tB\tb.com, a.com\r\n",
         "<text>:3: duplicate host suffix 'a.com' (first on line 1)"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text);
        std::string err;
        EXPECT_EQ(referrer_classifier::from_text(c.text, err), nullptr);
        EXPECT_EQ(err.substr(0, c.want.size()), c.want) << err;
    }
}

TEST(ReferrerDataFile, AcceptsCommentsBlankLinesAndSpaces) {
    std::string err;
    auto c = referrer_classifier::from_text(
        "# header\n   \n  # indented comment\nsocial\tB Net\t b.com , c.com \r\nsearch\tG\tg.\n",
        err);
    ASSERT_TRUE(c) << err;
    EXPECT_EQ(c->size(), 3u);
    EXPECT_EQ(c->classify("https://c.com/", "https://site.test/").source, "B Net");
    auto empty = referrer_classifier::from_text("", err);
    ASSERT_TRUE(empty);
    EXPECT_EQ(empty->size(), 0u);
}

TEST(ReferrerDataFile, LoadNamesFileAndLine) {
    auto dir = std::filesystem::temp_directory_path() /
               ("switchyard-campaign-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto path = (dir / "bad.tsv").string();
    std::ofstream(path) << "# ok\nsearch\tA\ta.com\nsearch\tB\n";
    std::string err;
    EXPECT_EQ(referrer_classifier::load(path, err), nullptr);
    EXPECT_EQ(err.substr(0, path.size() + 3), path + ":3:") << err;

    EXPECT_EQ(referrer_classifier::load((dir / "missing.tsv").string(), err), nullptr);
    EXPECT_NE(err.find("missing.tsv: cannot read: No such file or directory"), std::string::npos)
        << err;
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace switchyard::enrich
