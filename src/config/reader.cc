#include "config/reader.h"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>

namespace switchyard::config {

void errors::add(const YAML::Mark& mark, std::string_view message) {
    if (mark.line < 0) {
        add(message);
        return;
    }
    list_.push_back(fmt::format("{}:{}:{}: {}", file_, mark.line + 1, mark.column + 1, message));
}

void errors::add(std::string_view message) {
    list_.push_back(fmt::format("{}: {}", file_, message));
}

void key_catalog::add(key_doc doc) {
    if (seen_.insert(doc.path).second) keys_.push_back(std::move(doc));
}

map_reader::map_reader(const YAML::Node& node, std::string path, errors& errs, key_catalog* catalog)
    : node_(node), path_(std::move(path)), errs_(&errs), catalog_(catalog) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) {
        errs_->add(node_.Mark(),
                   (path_.empty() ? std::string("config") : path_) + ": expected a mapping");
        node_ = YAML::Node();
    }
}

YAML::Node map_reader::lookup(std::string_view key) {
    consumed_.emplace(key);
    if (!node_ || !node_.IsMap()) return YAML::Node();
    // yaml-cpp's operator[] on a const node never inserts.
    const YAML::Node& n = node_;
    return n[std::string(key)];
}

bool map_reader::has(std::string_view key) const {
    if (!node_ || !node_.IsMap()) return false;
    const YAML::Node& n = node_;
    return static_cast<bool>(n[std::string(key)]);
}

YAML::Mark map_reader::mark() const { return node_ ? node_.Mark() : YAML::Mark::null_mark(); }

void map_reader::consume(std::string_view key) { consumed_.emplace(key); }

void map_reader::document(std::string_view key, std::string_view type, std::string default_value,
                          std::string_view description) {
    if (catalog_ == nullptr) return;
    catalog_->add({path_.empty() ? std::string(key) : path_ + "." + std::string(key),
                   std::string(type), std::move(default_value), std::string(description)});
}

map_reader map_reader::child(std::string_view key, std::string_view description) {
    document(key, "mapping", "", description);
    YAML::Node n = lookup(key);
    return map_reader(n, path_.empty() ? std::string(key) : path_ + "." + std::string(key), *errs_,
                      catalog_);
}

std::vector<map_reader> map_reader::list(std::string_view key, std::string_view description) {
    document(key, "list of mappings", "[]", description);
    std::string p = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    std::vector<map_reader> out;
    if (describing()) {
        out.emplace_back(YAML::Node(), p + "[]", *errs_, catalog_);
        return out;
    }
    YAML::Node n = lookup(key);
    if (!n || n.IsNull()) return out;
    if (!n.IsSequence()) {
        errs_->add(n.Mark(), p + ": expected a list");
        return out;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
        out.emplace_back(n[i], fmt::format("{}[{}]", p, i), *errs_, nullptr);
    }
    return out;
}

void map_reader::get_strings(std::string_view key, std::vector<std::string>& out,
                             std::string_view description) {
    std::string def = "[";
    for (std::size_t i = 0; i < out.size(); ++i) def += (i ? ", " : "") + out[i];
    def += "]";
    document(key, "list of strings", def, description);
    YAML::Node n = lookup(key);
    if (!n || n.IsNull()) return;
    std::string p = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    if (!n.IsSequence()) {
        errs_->add(n.Mark(), p + ": expected a list of strings");
        return;
    }
    std::vector<std::string> tmp;
    for (std::size_t i = 0; i < n.size(); ++i) {
        std::string s, err;
        if (!parse_scalar(n[i], s, err)) {
            errs_->add(n[i].Mark(), fmt::format("{}[{}]: {}", p, i, err));
            continue;
        }
        tmp.push_back(std::move(s));
    }
    out = std::move(tmp);
}

void map_reader::get_strings_or_string(std::string_view key, std::vector<std::string>& out,
                                       std::string_view description) {
    YAML::Node n = lookup(key);
    if (!n || !n.IsScalar() || describing()) {
        get_strings(key, out, description);
        return;
    }
    document(key, "list of strings", "[]", description);
    std::string s, err;
    if (!parse_scalar(n, s, err)) {
        errs_->add(
            n.Mark(),
            fmt::format("{}: {}", path_.empty() ? std::string(key) : path_ + "." + std::string(key),
                        err));
        return;
    }
    out = {std::move(s)};
}

void map_reader::get_string_map(std::string_view key,
                                std::vector<std::pair<std::string, std::string>>& out,
                                std::vector<YAML::Mark>* marks, std::string_view description) {
    document(key, "map of strings", "{}", description);
    YAML::Node n = lookup(key);
    if (!n || n.IsNull()) return;
    std::string p = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    if (!n.IsMap()) {
        errs_->add(n.Mark(), p + ": expected a mapping of names to values");
        return;
    }
    std::vector<std::pair<std::string, std::string>> tmp;
    std::vector<YAML::Mark> tmp_marks;
    for (const auto& kv : n) {
        auto name = kv.first.as<std::string>("");
        std::string v, err;
        if (!parse_scalar(kv.second, v, err)) {
            errs_->add(kv.second.Mark(), fmt::format("{}.{}: {}", p, name, err));
            continue;
        }
        tmp.emplace_back(std::move(name), std::move(v));
        tmp_marks.push_back(kv.second.Mark());
    }
    out = std::move(tmp);
    if (marks != nullptr) *marks = std::move(tmp_marks);
}

std::string map_reader::key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

YAML::Mark map_reader::mark_of(std::string_view key, long index) const {
    if (!node_ || !node_.IsMap()) return mark();
    const YAML::Node v = node_[std::string(key)];
    if (!v) return mark();
    if (index >= 0 && v.IsSequence() && static_cast<std::size_t>(index) < v.size()) {
        return v[static_cast<std::size_t>(index)].Mark();
    }
    return v.Mark();
}

void map_reader::finish() {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
        auto key = kv.first.as<std::string>("");
        if (consumed_.find(key) == consumed_.end()) {
            errs_->add(kv.first.Mark(),
                       fmt::format("{}: unknown key '{}'", path_.empty() ? "config" : path_, key));
        }
    }
}

bool expand_env(std::string_view in, std::string& out, std::string& err) {
    out.clear();
    std::size_t i = 0;
    while (i < in.size()) {
        if (in[i] == '$' && i + 1 < in.size() && in[i + 1] == '{') {
            auto close = in.find('}', i + 2);
            if (close == std::string_view::npos) {
                err = "unterminated ${ in value";
                return false;
            }
            std::string_view expr = in.substr(i + 2, close - i - 2);
            std::string_view name = expr;
            std::optional<std::string_view> def;
            if (auto p = expr.find(":-"); p != std::string_view::npos) {
                name = expr.substr(0, p);
                def = expr.substr(p + 2);
            }
            std::string name_s(name);
            const char* v = std::getenv(name_s.c_str());
            if (v != nullptr && *v != '\0') {
                out += v;
            } else if (def) {
                out += *def;
            } else {
                err = fmt::format("environment variable {} is not set and has no default", name_s);
                return false;
            }
            i = close + 1;
            continue;
        }
        out += in[i++];
    }
    return true;
}

namespace {

bool scalar_text(const YAML::Node& n, std::string& out, std::string& err) {
    if (!n.IsScalar()) {
        err = "expected a scalar value";
        return false;
    }
    return expand_env(n.Scalar(), out, err);
}

template <class Int>
bool parse_int(std::string_view s, Int& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

bool parse_scalar(const YAML::Node& n, std::string& out, std::string& err) {
    return scalar_text(n, out, err);
}

bool parse_scalar(const YAML::Node& n, bool& out, std::string& err) {
    std::string s;
    if (!scalar_text(n, s, err)) return false;
    if (s == "true" || s == "yes" || s == "on") {
        out = true;
    } else if (s == "false" || s == "no" || s == "off") {
        out = false;
    } else {
        err = fmt::format("expected true or false, got '{}'", s);
        return false;
    }
    return true;
}

bool parse_scalar(const YAML::Node& n, std::int64_t& out, std::string& err) {
    std::string s;
    if (!scalar_text(n, s, err)) return false;
    if (!parse_int(s, out)) {
        err = fmt::format("expected an integer, got '{}'", s);
        return false;
    }
    return true;
}

bool parse_scalar(const YAML::Node& n, std::uint64_t& out, std::string& err) {
    std::string s;
    if (!scalar_text(n, s, err)) return false;
    if (!parse_int(s, out)) {
        err = fmt::format("expected a non-negative integer, got '{}'", s);
        return false;
    }
    return true;
}

bool parse_scalar(const YAML::Node& n, int& out, std::string& err) {
    std::string s;
    if (!scalar_text(n, s, err)) return false;
    if (!parse_int(s, out)) {
        err = fmt::format("expected an integer, got '{}'", s);
        return false;
    }
    return true;
}

bool parse_scalar(const YAML::Node& n, double& out, std::string& err) {
    std::string s;
    if (!scalar_text(n, s, err)) return false;
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || errno != 0) {
        err = fmt::format("expected a number, got '{}'", s);
        return false;
    }
    out = v;
    return true;
}

bool parse_byte_size(std::string_view s, std::uint64_t& out) {
    std::size_t i = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    std::uint64_t v = 0;
    if (!parse_int(s.substr(0, i), v)) return false;
    std::string_view unit = s.substr(i);
    while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    std::uint64_t mul = 1;
    if (unit.empty() || unit == "B") {
        mul = 1;
    } else if (unit == "KiB") {
        mul = 1ULL << 10;
    } else if (unit == "MiB") {
        mul = 1ULL << 20;
    } else if (unit == "GiB") {
        mul = 1ULL << 30;
    } else if (unit == "TiB") {
        mul = 1ULL << 40;
    } else if (unit == "KB" || unit == "kB") {
        mul = 1000;
    } else if (unit == "MB") {
        mul = 1000 * 1000;
    } else if (unit == "GB") {
        mul = 1000ULL * 1000 * 1000;
    } else {
        return false;
    }
    if (v != 0 && mul > UINT64_MAX / v) return false;
    out = v * mul;
    return true;
}

bool parse_duration(std::string_view s, duration& out) {
    std::size_t i = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    std::int64_t v = 0;
    if (!parse_int(s.substr(0, i), v)) return false;
    std::string_view unit = s.substr(i);
    if (unit == "ms") {
        out = duration(v);
    } else if (unit == "s") {
        out = std::chrono::seconds(v);
    } else if (unit == "m") {
        out = std::chrono::minutes(v);
    } else if (unit == "h") {
        out = std::chrono::hours(v);
    } else if (unit == "d") {
        out = std::chrono::hours(24 * v);
    } else {
        return false;
    }
    return true;
}

bool parse_scalar(const YAML::Node& n, byte_size& out, std::string& err) {
    std::string s;
    if (!scalar_text(n, s, err)) return false;
    if (!parse_byte_size(s, out.bytes)) {
        err = fmt::format("expected a byte size such as 1048576, 512KiB or 64MiB, got '{}'", s);
        return false;
    }
    return true;
}

bool parse_scalar(const YAML::Node& n, duration& out, std::string& err) {
    std::string s;
    if (!scalar_text(n, s, err)) return false;
    if (!parse_duration(s, out)) {
        err = fmt::format("expected a duration such as 250ms, 10s, 5m, 1h or 7d, got '{}'", s);
        return false;
    }
    return true;
}

std::string describe_type(const std::string*) { return "string"; }
std::string describe_type(const bool*) { return "bool"; }
std::string describe_type(const std::int64_t*) { return "integer"; }
std::string describe_type(const std::uint64_t*) { return "integer"; }
std::string describe_type(const int*) { return "integer"; }
std::string describe_type(const double*) { return "number"; }
std::string describe_type(const byte_size*) { return "byte size"; }
std::string describe_type(const duration*) { return "duration"; }

std::string format_value(const std::string& v) { return v.empty() ? "\"\"" : v; }
std::string format_value(bool v) { return v ? "true" : "false"; }
std::string format_value(std::int64_t v) { return std::to_string(v); }
std::string format_value(std::uint64_t v) { return std::to_string(v); }
std::string format_value(int v) { return std::to_string(v); }
std::string format_value(double v) { return fmt::format("{}", v); }

std::string format_value(const byte_size& v) {
    constexpr std::pair<std::uint64_t, const char*> units[] = {
        {1ULL << 40, "TiB"}, {1ULL << 30, "GiB"}, {1ULL << 20, "MiB"}, {1ULL << 10, "KiB"}};
    for (const auto& [m, u] : units) {
        if (v.bytes != 0 && v.bytes % m == 0) return fmt::format("{}{}", v.bytes / m, u);
    }
    return std::to_string(v.bytes);
}

std::string format_value(const duration& v) {
    auto ms = v.count();
    if (ms != 0 && ms % 86400000 == 0) return fmt::format("{}d", ms / 86400000);
    if (ms != 0 && ms % 3600000 == 0) return fmt::format("{}h", ms / 3600000);
    if (ms != 0 && ms % 60000 == 0) return fmt::format("{}m", ms / 60000);
    if (ms != 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
    return fmt::format("{}ms", ms);
}

}  // namespace switchyard::config
