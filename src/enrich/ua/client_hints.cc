// User-Agent Client Hints (context.userAgentData) on top of the UA string's answer. Chrome and
// its derivatives freeze parts of the UA string ("Chrome/120.0.0.0", "Windows NT 10.0" on
// Windows 11, "Mac OS X 10_15_7", "Android 10; K"); the hints carry the real values.
#include "enrich/ua/ua_parser.h"

#include <array>
#include <cctype>
#include <charconv>
#include <string>
#include <string_view>

namespace switchyard::enrich::ua {
namespace {

// Known brands, most specific first within equal rank. Rank 1 ("Chromium") is used only when
// nothing better is present.
struct brand_map {
    std::string_view brand;
    std::string_view family;  // uap-core's family name
    int rank;
};
constexpr std::array<brand_map, 10> brands{{
    {"Google Chrome", "Chrome", 2},
    {"Microsoft Edge", "Edge", 2},
    {"Opera", "Opera", 2},
    {"Opera GX", "Opera", 2},
    {"Brave", "Brave", 2},
    {"Samsung Internet", "Samsung Internet", 2},
    {"YaBrowser", "Yandex Browser", 2},
    {"Yandex", "Yandex Browser", 2},
    {"HeadlessChrome", "HeadlessChrome", 2},
    {"Chromium", "Chromium", 1},
}};

bool icontains(std::string_view hay, std::string_view needle) noexcept {
    if (needle.size() > hay.size()) return false;
    for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
        std::size_t k = 0;
        while (k < needle.size() && std::tolower(static_cast<unsigned char>(hay[i + k])) ==
                                        std::tolower(static_cast<unsigned char>(needle[k]))) {
            ++k;
        }
        if (k == needle.size()) return true;
    }
    return false;
}

// GREASE brands ("Not_A Brand", "Not A(Brand", ";Not)A=Brand") exist to keep parsers honest.
bool is_grease(std::string_view brand) noexcept {
    return icontains(brand, "not") && icontains(brand, "brand");
}

const brand_map* known_brand(std::string_view b) noexcept {
    for (const brand_map& m : brands) {
        if (m.brand == b) return &m;
    }
    return nullptr;
}

bool get_string(simdjson::dom::object o, std::string_view key, std::string_view& out) noexcept {
    return !o[key].get_string().get(out);
}

// The version of `brand` in a [{brand, version}, …] list, or empty.
std::string_view version_in(simdjson::dom::object o, std::string_view list,
                            std::string_view brand) {
    simdjson::dom::array arr;
    if (o[list].get_array().get(arr)) return {};
    for (simdjson::dom::element e : arr) {
        simdjson::dom::object entry;
        std::string_view b, v;
        if (e.get_object().get(entry)) continue;
        if (!get_string(entry, "brand", b) || !get_string(entry, "version", v)) continue;
        if (b == brand) return v;
    }
    return {};
}

// Splits "120.0.6099.130" into up to four parts. False when empty or not dotted digits.
bool split_version(std::string_view v, std::array<std::string_view, 4>& parts) noexcept {
    parts = {};
    if (v.empty() || v.size() > 64) return false;
    std::size_t n = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= v.size(); ++i) {
        if (i == v.size() || v[i] == '.') {
            if (i == start) return false;
            if (n < parts.size()) parts[n++] = v.substr(start, i - start);
            start = i + 1;
        } else if (v[i] < '0' || v[i] > '9') {
            return false;
        }
    }
    return true;
}

void set_version(const std::array<std::string_view, 4>& p, std::string& major, std::string& minor,
                 std::string& patch, std::string& patch_minor) {
    major.assign(p[0]);
    minor.assign(p[1]);
    patch.assign(p[2]);
    patch_minor.assign(p[3]);
}

void clear_version(std::string& major, std::string& minor, std::string& patch,
                   std::string& patch_minor) {
    major.clear();
    minor.clear();
    patch.clear();
    patch_minor.clear();
}

bool apply_browser(simdjson::dom::object o, result& r) {
    simdjson::dom::array arr;
    const brand_map* best = nullptr;
    std::string_view best_brand;
    for (std::string_view list :
         {std::string_view("fullVersionList"), std::string_view("brands")}) {
        if (o[list].get_array().get(arr)) continue;
        for (simdjson::dom::element e : arr) {
            simdjson::dom::object entry;
            std::string_view b;
            if (e.get_object().get(entry) || !get_string(entry, "brand", b) || is_grease(b))
                continue;
            const brand_map* m = known_brand(b);
            if (m != nullptr && (best == nullptr || m->rank > best->rank)) {
                best = m;
                best_brand = b;
            }
        }
    }
    if (best == nullptr) return false;
    // "Chromium" alone says little: it must not replace a more specific answer from the UA
    // string (Vivaldi, an in-app browser…), only Chrome-like or unknown ones.
    if (best->rank == 1 && r.browser_family != "Other" && r.browser_family != "Chrome" &&
        r.browser_family != "Chrome Mobile" && r.browser_family != "Chromium") {
        return false;
    }

    std::array<std::string_view, 4> full{}, major_only{};
    bool have_full = split_version(version_in(o, "fullVersionList", best_brand), full);
    std::string_view ua_full;
    if (!have_full && get_string(o, "uaFullVersion", ua_full) && split_version(ua_full, full)) {
        // uaFullVersion (deprecated) is the full version of the primary brand; use it only if
        // it agrees with the brand's major version.
        std::array<std::string_view, 4> mj{};
        have_full = split_version(version_in(o, "brands", best_brand), mj) && mj[0] == full[0];
    }
    const bool have_major =
        !have_full && split_version(version_in(o, "brands", best_brand), major_only);

    // A more specific family of the same browser from the UA string stays ("Chrome Mobile" for
    // "Chrome", "Edge Mobile" for "Edge"); only its version is refined.
    const bool same_browser = r.browser_family.size() > best->family.size() &&
                              r.browser_family.starts_with(best->family) &&
                              r.browser_family[best->family.size()] == ' ';
    const bool family_changed = !same_browser && r.browser_family != best->family;
    if (!same_browser) r.browser_family.assign(best->family);

    if (have_full) {
        set_version(full, r.browser_major, r.browser_minor, r.browser_patch, r.browser_patch_minor);
    } else if (have_major) {
        // A major version alone: keep the UA string's finer parts if the major agrees.
        if (family_changed || r.browser_major != major_only[0]) {
            clear_version(r.browser_major, r.browser_minor, r.browser_patch, r.browser_patch_minor);
            r.browser_major.assign(major_only[0]);
        }
    } else if (family_changed) {
        clear_version(r.browser_major, r.browser_minor, r.browser_patch, r.browser_patch_minor);
    }
    return true;
}

bool apply_os(simdjson::dom::object o, result& r) {
    std::string_view platform, pv;
    if (!get_string(o, "platform", platform) || platform.empty()) return false;
    std::array<std::string_view, 4> v{};
    const bool have_version = get_string(o, "platformVersion", pv) && split_version(pv, v);

    std::string_view family;
    bool use_version = have_version;
    if (platform == "Windows") {
        family = "Windows";
        use_version = false;
        unsigned major = 0;
        if (have_version) {
            std::from_chars(v[0].data(), v[0].data() + v[0].size(), major);
        }
        // platformVersion is the Windows UI contract version: 13 and up is Windows 11, 1 to 12
        // Windows 10, 0 an older Windows (the UA string tells those apart).
        if (major >= 13 || (major >= 1 && major <= 12)) {
            if (r.os_family != family) r.os_family.assign(family);
            clear_version(r.os_major, r.os_minor, r.os_patch, r.os_patch_minor);
            r.os_major = major >= 13 ? "11" : "10";
            return true;
        }
    } else if (platform == "macOS") {
        family = "Mac OS X";
    } else if (platform == "Android") {
        family = "Android";
    } else if (platform == "Chrome OS" || platform == "Chromium OS") {
        family = "Chrome OS";
    } else if (platform == "Linux") {
        family = "Linux";
        use_version = false;  // a kernel version, or nothing: not what uap-core reports
    } else if (platform == "iOS") {
        family = "iOS";
    } else {
        return false;  // "Unknown", "Fuchsia"…: the UA string's answer stays
    }
    const bool family_changed = r.os_family != family;
    if (family_changed) r.os_family.assign(family);
    if (use_version) {
        set_version(v, r.os_major, r.os_minor, r.os_patch, r.os_patch_minor);
    } else if (family_changed) {
        clear_version(r.os_major, r.os_minor, r.os_patch, r.os_patch_minor);
    }
    return true;
}

bool apply_device(simdjson::dom::object o, result& r) {
    bool used = false;
    bool mobile = false;
    if (!o["mobile"].get_bool().get(mobile)) {
        used = true;
        // Only a generic answer is upgraded: "tablet", "wearable", "tv", "console" and "bot"
        // say more than the hint.
        if (mobile && (r.device_type == "desktop" || r.device_type == "unknown")) {
            r.device_type = "mobile";
        }
    }
    std::string_view model;
    if (get_string(o, "model", model) && !model.empty() && model.size() <= 256) {
        r.device_model.assign(model);
        used = true;
    }
    return used;
}

}  // namespace

bool apply_client_hints(simdjson::dom::element user_agent_data, result& r) {
    simdjson::dom::object o;
    if (user_agent_data.get_object().get(o)) return false;
    bool used = apply_browser(o, r);
    used = apply_os(o, r) || used;
    used = apply_device(o, r) || used;
    return used;
}

}  // namespace switchyard::enrich::ua
