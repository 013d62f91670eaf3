#include "log/kafka/kafka_conf.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace switchyard::log::kafka {
namespace {

// librdkafka logs with syslog levels from its own threads; spdlog is thread-safe.
void log_line(const rd_kafka_t* rk, int level, const char* facility, const char* buf) {
    const char* who = rk != nullptr ? rd_kafka_name(rk) : "rdkafka";
    spdlog::level::level_enum l = spdlog::level::debug;
    if (level <= 3) {
        l = spdlog::level::err;
    } else if (level == 4) {
        l = spdlog::level::warn;
    } else if (level <= 6) {
        l = spdlog::level::info;
    }
    spdlog::log(l, "librdkafka {} [{}]: {}", who, facility, buf);
}

}  // namespace

const std::vector<std::string_view> log_reserved_properties = {
    "bootstrap.servers",     "metadata.broker.list",
    "enable.idempotence",    "acks",
    "request.required.acks", "group.id",
    "enable.auto.commit",    "enable.auto.offset.store",
    "enable.partition.eof",  "message.timeout.ms",
    "delivery.timeout.ms"};

conf_ptr make_conf(const property_list& props, std::string& err) {
    conf_ptr conf(rd_kafka_conf_new());
    char buf[512];
    for (const auto& [k, v] : props) {
        if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), buf, sizeof buf) !=
            RD_KAFKA_CONF_OK) {
            err = fmt::format("{}: {}", k, buf);
            return nullptr;
        }
    }
    rd_kafka_conf_set_log_cb(conf.get(), &log_line);
    return conf;
}

std::vector<std::pair<std::size_t, std::string>> check_properties(
    const property_list& props, std::span<const std::string_view> reserved) {
    std::vector<std::pair<std::size_t, std::string>> out;
    conf_ptr conf(rd_kafka_conf_new());
    char buf[512];
    for (std::size_t i = 0; i < props.size(); ++i) {
        const auto& [k, v] = props[i];
        if (std::find(reserved.begin(), reserved.end(), k) != reserved.end()) {
            out.emplace_back(i,
                             fmt::format("'{}' is set by Switchyard and cannot be overridden", k));
            continue;
        }
        if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), buf, sizeof buf) !=
            RD_KAFKA_CONF_OK) {
            out.emplace_back(i, buf);
        }
    }
    return out;
}

std::string_view compression_codec(std::string_view name) {
    for (std::string_view c : {"none", "gzip", "snappy", "lz4", "zstd"}) {
        if (name == c) return c;
    }
    return {};
}

}  // namespace switchyard::log::kafka
