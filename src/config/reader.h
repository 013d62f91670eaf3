#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::config {

// Collects every config error with its file:line:col so `switchyard check` reports them all.
class errors {
  public:
    explicit errors(std::string file = "<config>") : file_(std::move(file)) {}
    void add(const YAML::Mark& mark, std::string_view message);
    void add(std::string_view message);
    bool empty() const noexcept { return list_.empty(); }
    const std::vector<std::string>& list() const noexcept { return list_; }
    const std::string& file() const noexcept { return file_; }

  private:
    std::string file_;
    std::vector<std::string> list_;
};

// A byte count written as 1048576, "512KiB", "64MiB", "1GiB", "500KB" (KB = 1000).
struct byte_size {
    std::uint64_t bytes = 0;
};

using duration = std::chrono::milliseconds;  // written as "250ms", "10s", "5m", "1h", "7d"

// One documented config key, recorded while reading so docs/configuration.md can be generated
// from the code that reads the keys.
struct key_doc {
    std::string path;
    std::string type;
    std::string default_value;
    std::string description;
};

// The catalogue of keys; filled by readers running in describe mode.
class key_catalog {
  public:
    void add(key_doc doc);
    const std::vector<key_doc>& keys() const noexcept { return keys_; }

  private:
    std::vector<key_doc> keys_;
    std::set<std::string> seen_;
};

// Reads one YAML mapping strictly. Each get() consumes a key (missing keys keep the default
// already in `out`); finish() reports keys nobody asked for. Scalars go through ${ENV} and
// ${ENV:-default} substitution. With a catalog attached and a null node, it only records docs.
class map_reader {
  public:
    map_reader(const YAML::Node& node, std::string path, errors& errs,
               key_catalog* catalog = nullptr);

    template <class T>
    void get(std::string_view key, T& out, std::string_view description);
    template <class T>
    void require(std::string_view key, T& out, std::string_view description);

    // A nested mapping (absent = null node). The child reports its own unknown keys.
    map_reader child(std::string_view key, std::string_view description);
    // A sequence of mappings; in describe mode yields one null element so its keys get documented.
    std::vector<map_reader> list(std::string_view key, std::string_view description);
    // A sequence of scalars.
    void get_strings(std::string_view key, std::vector<std::string>& out,
                     std::string_view description);
    // A sequence of scalars, or one scalar taken as a one-element list (for values such as
    // "${KAFKA_BROKERS}" that hold a comma-separated list).
    void get_strings_or_string(std::string_view key, std::vector<std::string>& out,
                               std::string_view description);
    // A mapping of string keys to scalar values (e.g. client library properties), with ${ENV}
    // substitution in the values; entries keep the position of their value for later errors.
    void get_string_map(std::string_view key, std::vector<std::pair<std::string, std::string>>& out,
                        std::vector<YAML::Mark>* marks, std::string_view description);

    // Raw access for readers that dispatch on a value (e.g. destination `type`).
    YAML::Node node() const { return node_; }
    bool describing() const noexcept { return catalog_ != nullptr; }
    bool has(std::string_view key) const;
    const std::string& path() const noexcept { return path_; }
    YAML::Mark mark() const;
    // "path.key", for error messages about `key`.
    std::string key_path(std::string_view key) const;
    // Where to point an error about `key`: its value (its index-th element when it is a
    // sequence and index >= 0) when present, else this mapping.
    YAML::Mark mark_of(std::string_view key, long index = -1) const;
    errors& errs() noexcept { return *errs_; }
    key_catalog* catalog() const noexcept { return catalog_; }

    // Marks a key as consumed without reading it.
    void consume(std::string_view key);
    // Keys read so far (present or not).
    std::vector<std::string> consumed_keys() const { return {consumed_.begin(), consumed_.end()}; }
    void finish();

  private:
    YAML::Node lookup(std::string_view key);
    void document(std::string_view key, std::string_view type, std::string default_value,
                  std::string_view description);

    YAML::Node node_;
    std::string path_;
    errors* errs_;
    key_catalog* catalog_;
    std::set<std::string, std::less<>> consumed_;
};

// Scalar conversion with env substitution; false + message on failure.
bool parse_scalar(const YAML::Node& n, std::string& out, std::string& err);
bool parse_scalar(const YAML::Node& n, bool& out, std::string& err);
bool parse_scalar(const YAML::Node& n, std::int64_t& out, std::string& err);
bool parse_scalar(const YAML::Node& n, std::uint64_t& out, std::string& err);
bool parse_scalar(const YAML::Node& n, int& out, std::string& err);
bool parse_scalar(const YAML::Node& n, double& out, std::string& err);
bool parse_scalar(const YAML::Node& n, byte_size& out, std::string& err);
bool parse_scalar(const YAML::Node& n, duration& out, std::string& err);

std::string describe_type(const std::string*);
std::string describe_type(const bool*);
std::string describe_type(const std::int64_t*);
std::string describe_type(const std::uint64_t*);
std::string describe_type(const int*);
std::string describe_type(const double*);
std::string describe_type(const byte_size*);
std::string describe_type(const duration*);

std::string format_value(const std::string& v);
std::string format_value(bool v);
std::string format_value(std::int64_t v);
std::string format_value(std::uint64_t v);
std::string format_value(int v);
std::string format_value(double v);
std::string format_value(const byte_size& v);
std::string format_value(const duration& v);

// Expands ${VAR} and ${VAR:-default}; false when a variable without default is unset.
bool expand_env(std::string_view in, std::string& out, std::string& err);

bool parse_byte_size(std::string_view s, std::uint64_t& out);
bool parse_duration(std::string_view s, duration& out);

template <class T>
void map_reader::get(std::string_view key, T& out, std::string_view description) {
    document(key, describe_type(&out), format_value(out), description);
    YAML::Node n = lookup(key);
    if (!n || n.IsNull()) return;
    std::string err;
    T tmp = out;
    if (!parse_scalar(n, tmp, err)) {
        errs_->add(n.Mark(), path_.empty() ? std::string(key) + ": " + err
                                           : path_ + "." + std::string(key) + ": " + err);
        return;
    }
    out = std::move(tmp);
}

template <class T>
void map_reader::require(std::string_view key, T& out, std::string_view description) {
    document(key, describe_type(&out), "(required)", description);
    if (describing()) return;
    YAML::Node n = lookup(key);
    if (!n || n.IsNull()) {
        errs_->add(mark(), (path_.empty() ? std::string(key) : path_ + "." + std::string(key)) +
                               ": required key is missing");
        return;
    }
    std::string err;
    if (!parse_scalar(n, out, err)) {
        errs_->add(n.Mark(), path_.empty() ? std::string(key) + ": " + err
                                           : path_ + "." + std::string(key) + ": " + err);
    }
}

}  // namespace switchyard::config
