#pragma once

#include <librdkafka/rdkafka.h>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::log::kafka {

// librdkafka properties in the order they are applied.
using property_list = std::vector<std::pair<std::string, std::string>>;

struct conf_deleter {
    void operator()(rd_kafka_conf_t* c) const noexcept { rd_kafka_conf_destroy(c); }
};
using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;

// Builds a librdkafka configuration from `props` with librdkafka's log lines routed to spdlog.
// Returns null and describes the first property librdkafka refuses in `err`.
conf_ptr make_conf(const property_list& props, std::string& err);

// Checks user-supplied pass-through properties: each must be known to librdkafka with a valid
// value, and none may be one of `reserved` (the properties Switchyard sets itself because its
// guarantees depend on them). Returns (index in props, message) per problem.
std::vector<std::pair<std::size_t, std::string>> check_properties(
    const property_list& props, std::span<const std::string_view> reserved);

// A value for `compression.codec`, or empty when `name` is not one.
std::string_view compression_codec(std::string_view name);

// Properties the Kafka log sets itself; see check_properties.
extern const std::vector<std::string_view> log_reserved_properties;

}  // namespace switchyard::log::kafka
