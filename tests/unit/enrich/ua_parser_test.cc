#include "enrich/ua/ua_parser.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>

namespace switchyard::enrich::ua {
namespace {

constexpr std::string_view small_regexes = R"(
user_agent_parsers:
  - regex: '(Namoroka|Shiretoko|Minefield)/(\d+)\.(\d+)\.(\d+(?:pre)?)'
    family_replacement: 'Firefox ($1)'
  - regex: 'Fancy/(\d+)\.(\d+)'
    family_replacement: 'Fancy Browser'
    v1_replacement: 'v$1'
  - regex: '(Plain)/(\d+)'
os_parsers:
  - regex: 'Win(95|98|NT)'
    os_replacement: 'Windows $1'
  - regex: 'Tiny OS'
    os_replacement: 'Tiny'
    os_v1_replacement: '7'
device_parsers:
  - regex: '; *(SM-[A-Z0-9]+)'
    device_replacement: 'Samsung $1'
    brand_replacement: 'Samsung'
    model_replacement: '$1'
  - regex: 'widget'
    regex_flag: 'i'
    device_replacement: 'Widget'
    brand_replacement: ' '
    model_replacement: '  '
)";

std::shared_ptr<const parser> small(options o = {}) {
    std::string err;
    auto p = parser::from_text(small_regexes, "small.yaml", o, err);
    EXPECT_NE(p, nullptr) << err;
    return p;
}

bool have_uap() { return std::filesystem::exists("/usr/share/uap-core/regexes.yaml"); }

std::shared_ptr<const parser> uap() {
    std::string err;
    auto p = parser::load("/usr/share/uap-core/regexes.yaml", {}, err);
    EXPECT_NE(p, nullptr) << err;
    return p;
}

TEST(UaParser, ReplacementsFollowTheSpecification) {
    auto p = small();
    auto r =
        p->parse("Mozilla/5.0 (Windows; U; WinNT; rv:2.0b3pre) Gecko/20100727 Minefield/4.0.1pre");
    EXPECT_EQ(r.browser_family, "Firefox (Minefield)");
    EXPECT_EQ(r.browser_major, "4");
    EXPECT_EQ(r.browser_minor, "0");
    EXPECT_EQ(r.browser_patch, "1pre");
    EXPECT_EQ(browser_version(r), "4.0.1pre");
    EXPECT_EQ(r.os_family, "Windows NT");
    EXPECT_EQ(os_version(r), "");

    r = p->parse("Fancy/12.3 Tiny OS");
    EXPECT_EQ(r.browser_family, "Fancy Browser");  // a replacement without placeholders
    EXPECT_EQ(r.browser_major, "v12");             // $1 in v1_replacement
    EXPECT_EQ(r.browser_minor, "");  // minor is group 3 whatever the replacements: none here
    EXPECT_EQ(r.os_family, "Tiny");
    EXPECT_EQ(r.os_major, "7");

    r = p->parse("Plain/9");
    EXPECT_EQ(r.browser_family, "Plain");
    EXPECT_EQ(r.browser_major, "9");
}

TEST(UaParser, DeviceBrandModelAndFlags) {
    auto p = small();
    auto r = p->parse("Mozilla/5.0 (Linux; Android 14; SM-S918B)");
    EXPECT_EQ(r.device_family, "Samsung SM-S918B");
    EXPECT_EQ(r.device_brand, "Samsung");
    EXPECT_EQ(r.device_model, "SM-S918B");
    r = p->parse("A WIDGET thing");  // regex_flag i: case-insensitive
    EXPECT_EQ(r.device_family, "Widget");
    EXPECT_EQ(r.device_brand, "");  // whitespace-only replacements are trimmed to absent
    EXPECT_EQ(r.device_model, "");
}

TEST(UaParser, NothingMatchesIsOther) {
    auto p = small();
    auto r = p->parse("completely unknown");
    EXPECT_EQ(r.browser_family, "Other");
    EXPECT_EQ(r.os_family, "Other");
    EXPECT_EQ(r.device_family, "Other");
    EXPECT_EQ(browser_version(r), "");
    EXPECT_EQ(p->explain("completely unknown"), (std::array<int, 3>{-1, -1, -1}));
}

TEST(UaParser, OnlyTheFirstMaxLengthBytesAreParsed) {
    options o;
    o.max_length = 32;
    auto p = small(o);
    std::string ua = "Plain/1 " + std::string(100, 'x') + " WinNT";
    auto r = p->parse(ua);
    EXPECT_EQ(r.browser_family, "Plain");
    EXPECT_EQ(r.os_family, "Other");  // "WinNT" lies past the cap
    // A huge hostile input completes and is read on its prefix only.
    std::string hostile = "Plain/2 " + std::string(1 << 20, '(');
    EXPECT_EQ(p->parse(hostile).browser_major, "2");
    // The cut never splits a UTF-8 character: results stay valid UTF-8.
    std::string utf = "Plain/3 " + std::string(23, 'a') + "\xc3\xa9\xc3\xa9";
    auto rr = p->parse(utf);
    EXPECT_EQ(rr.browser_major, "3");
}

TEST(UaParser, LoadErrorsHavePositions) {
    std::string err;
    EXPECT_EQ(parser::load("/nonexistent/regexes.yaml", {}, err), nullptr);
    EXPECT_NE(err.find("/nonexistent/regexes.yaml"), std::string::npos) << err;
    err.clear();
    EXPECT_EQ(
        parser::from_text("user_agent_parsers: [\n  - regex: 'x'\n  : bad", "bad.yaml", {}, err),
        nullptr);
    EXPECT_EQ(err.rfind("bad.yaml:", 0), 0u) << err;
    err.clear();
    EXPECT_EQ(parser::from_text("user_agent_parsers: []\n", "partial.yaml", {}, err), nullptr);
    EXPECT_FALSE(err.empty());
}

TEST(UaParser, UnsupportedRegexesAreListedNotFatal) {
    std::string text(small_regexes);
    text.insert(text.find("  - regex: '(Plain)"), "  - regex: '(?<=x)broken('\n");
    std::string err;
    auto p = parser::from_text(text, "x.yaml", {}, err);
    ASSERT_NE(p, nullptr) << err;
    ASSERT_EQ(p->unsupported().size(), 1u);
    EXPECT_NE(p->unsupported()[0].find("user_agent_parsers[2]"), std::string::npos)
        << p->unsupported()[0];
    EXPECT_TRUE(p->is_unsupported("user_agent_parsers", 2));
    EXPECT_EQ(p->parse("Plain/5").browser_family, "Plain");  // the rest still works
}

TEST(UaParser, RealUserAgentsAndDeviceTypes) {
    if (!have_uap()) GTEST_SKIP() << "uap-core is not installed";
    auto p = uap();
    struct c {
        std::string_view ua, browser, os, type;
    } cases[] = {
        {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36",
         "Chrome", "Windows", "desktop"},
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/17.1 Safari/605.1.15",
         "Safari", "Mac OS X", "desktop"},
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
         "Mobile Safari", "iOS", "mobile"},
        {"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/16.6 Mobile/15E148 Safari/604.1",
         "Mobile Safari", "iOS", "tablet"},
        {"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Mobile Safari/537.36",
         "Chrome Mobile", "Android", "mobile"},
        {"Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/119.0.0.0 Safari/537.36",
         "Chrome", "Android", "tablet"},
        {"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox",
         "Linux", "desktop"},
        {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot",
         "Other", "bot"},
        {"Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
         "", "", "console"},
        {"Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
         "SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
         "", "", "tv"},
    };
    for (const auto& c : cases) {
        auto r = p->parse(c.ua);
        if (!c.browser.empty()) EXPECT_EQ(r.browser_family, c.browser) << c.ua;
        if (!c.os.empty()) EXPECT_EQ(r.os_family, c.os) << c.ua;
        EXPECT_EQ(r.device_type, c.type) << c.ua;
    }
    EXPECT_TRUE(p->parse(cases[7].ua).spider());
    EXPECT_TRUE(p->unsupported().empty());
}

result chrome_on_windows() {
    result r;
    r.browser_family = "Chrome";
    r.browser_major = "120";
    r.browser_minor = r.browser_patch = r.browser_patch_minor = "0";
    r.os_family = "Windows";
    r.os_major = "10";
    r.device_family = "Other";
    r.device_type = "desktop";
    return r;
}

bool hints(std::string_view json, result& r) {
    static simdjson::dom::parser jp;
    return apply_client_hints(jp.parse(std::string(json)).value(), r);
}

TEST(UaClientHints, WindowsElevenAndFullVersion) {
    auto r = chrome_on_windows();
    EXPECT_TRUE(hints(
        R"({"brands":[{"brand":"Not_A Brand","version":"8"},{"brand":"Chromium","version":"120"},{"brand":"Google Chrome","version":"120"}],"mobile":false,"platform":"Windows","platformVersion":"15.0.0","fullVersionList":[{"brand":"Google Chrome","version":"120.0.6099.130"}]})",
        r));
    EXPECT_EQ(r.os_family, "Windows");
    EXPECT_EQ(os_version(r), "11");
    EXPECT_EQ(r.browser_family, "Chrome");
    EXPECT_EQ(browser_version(r), "120.0.6099.130");
    r = chrome_on_windows();
    hints(R"({"platform":"Windows","platformVersion":"10.0.0"})", r);
    EXPECT_EQ(os_version(r), "10");
}

TEST(UaClientHints, BrandsGreaseMobileModel) {
    auto r = chrome_on_windows();
    hints(
        R"({"brands":[{"brand":" Not A;Brand","version":"99"},{"brand":"Microsoft Edge","version":"119"},{"brand":"Chromium","version":"119"}],"mobile":true,"platform":"Android","model":"Pixel 8"})",
        r);
    EXPECT_EQ(r.browser_family, "Edge");
    EXPECT_EQ(r.browser_major, "119");
    EXPECT_EQ(r.os_family, "Android");
    EXPECT_EQ(r.device_type, "mobile");
    EXPECT_EQ(r.device_model, "Pixel 8");

    r = chrome_on_windows();
    hints(R"({"brands":[{"brand":"Chromium","version":"118"}]})", r);
    EXPECT_EQ(r.browser_family, "Chromium");  // only when nothing better is listed
}

TEST(UaClientHints, MalformedHintsAreIgnored) {
    for (auto bad : {R"([])", R"("x")", R"({"brands":"x","mobile":"yes","platform":7})",
                     R"({"brands":[1,{"brand":2},{"version":"1"}],"fullVersionList":{}})",
                     R"({"platform":"","platformVersion":"abc"})"}) {
        auto r = chrome_on_windows();
        hints(bad, r);
        EXPECT_EQ(r.browser_family, "Chrome") << bad;
        EXPECT_EQ(r.os_family, "Windows") << bad;
        EXPECT_EQ(os_version(r), "10") << bad;
    }
}

}  // namespace
}  // namespace switchyard::enrich::ua
