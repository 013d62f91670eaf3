// mock_kafka: a librdkafka mock cluster (real Kafka protocol on loopback, no broker, no container)
// driven by line commands on stdin. Test support only; see README.md next to this file.
//
//   mock_kafka [--brokers N] [--topic NAME:PARTITIONS[:REPLICATION]]...
//
// Prints "bootstrap <list>" and "ready" on stdout, then answers each stdin line with exactly one
// line: "ok[ ...]" or "error <message>". librdkafka's own logs go to stderr.
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct ApiName {
    const char* name;
    int16_t key;
};

// Kafka protocol api keys (RD_KAFKAP_* in librdkafka's private rdkafka_proto.h).
constexpr ApiName kApis[] = {
    {"Produce", 0},         {"Fetch", 1},       {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},    {"OffsetFetch", 9}, {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},      {"LeaveGroup", 13}, {"SyncGroup", 14},       {"ApiVersions", 18},
    {"InitProducerId", 22},
};

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string upper(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

std::optional<long long> parse_int(const std::string& s) {
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || end == s.c_str() || *end != '\0') return std::nullopt;
    return v;
}

std::optional<int32_t> parse_i32(const std::string& s, long long lo, long long hi) {
    auto v = parse_int(s);
    if (!v || *v < lo || *v > hi) return std::nullopt;
    return static_cast<int32_t>(*v);
}

std::optional<int16_t> parse_api(const std::string& s) {
    for (const auto& a : kApis) {
        if (lower(s) == lower(a.name)) return a.key;
    }
    if (auto v = parse_i32(s, 0, INT16_MAX)) return static_cast<int16_t>(*v);
    return std::nullopt;
}

// Error by name as in rd_kafka_get_err_descs() ("NOT_ENOUGH_REPLICAS"; librdkafka-internal errors
// are "_TRANSPORT" etc., also accepted without the underscore), case-insensitive, or a number.
std::optional<rd_kafka_resp_err_t> parse_error(const std::string& s) {
    if (auto v = parse_i32(s, INT32_MIN, INT32_MAX)) return static_cast<rd_kafka_resp_err_t>(*v);
    std::string want = upper(s);
    if (want.rfind("RD_KAFKA_RESP_ERR_", 0) == 0) want = want.substr(18);
    const rd_kafka_err_desc* descs = nullptr;
    size_t cnt = 0;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; ++i) {
        if (descs[i].name && want == descs[i].name) return descs[i].code;
    }
    for (size_t i = 0; i < cnt; ++i) {
        if (descs[i].name && descs[i].name[0] == '_' && want == descs[i].name + 1) {
            return descs[i].code;
        }
    }
    return std::nullopt;
}

struct TopicSpec {
    std::string name;
    int partitions = 1;
    int replication = 1;
};

std::optional<TopicSpec> parse_topic_spec(const std::string& arg) {
    std::vector<std::string> parts;
    std::stringstream ss(arg);
    std::string p;
    while (std::getline(ss, p, ':')) parts.push_back(p);
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty()) return std::nullopt;
    auto n = parse_i32(parts[1], 1, 100000);
    if (!n) return std::nullopt;
    TopicSpec t{parts[0], *n, 1};
    if (parts.size() == 3) {
        auto r = parse_i32(parts[2], 1, 1000);
        if (!r) return std::nullopt;
        t.replication = *r;
    }
    return t;
}

class Server {
  public:
    Server(rd_kafka_mock_cluster_t* mc, int brokers) : mc_(mc), brokers_(brokers) {}

    // Returns the answer line (without newline); sets quit on "quit".
    std::string handle(const std::string& line, bool& quit) {
        std::vector<std::string> a;
        std::istringstream in(line);
        for (std::string w; in >> w;) a.push_back(w);
        if (a.empty()) return "error empty command";
        const std::string& c = a[0];
        if (c == "quit") {
            quit = true;
            return "ok";
        }
        if (c == "bootstrap") return std::string("ok ") + rd_kafka_mock_cluster_bootstraps(mc_);
        if (c == "topic") return topic(a);
        if (c == "down" || c == "up") {
            if (a.size() != 2) return "error usage: " + c + " BROKER_ID";
            auto b = broker(a[1]);
            if (!b) return bad_broker(a[1]);
            return result(c == "down" ? rd_kafka_mock_broker_set_down(mc_, *b)
                                      : rd_kafka_mock_broker_set_up(mc_, *b));
        }
        if (c == "rtt") {
            if (a.size() != 3) return "error usage: rtt BROKER_ID MS";
            auto b = broker(a[1]);
            if (!b) return bad_broker(a[1]);
            auto ms = parse_i32(a[2], 0, INT32_MAX);
            if (!ms) return "error bad milliseconds: " + a[2];
            return result(rd_kafka_mock_broker_set_rtt(mc_, *b, *ms));
        }
        if (c == "errors") return errors(a);
        if (c == "broker-errors") return broker_errors(a);
        if (c == "clear") {
            if (a.size() != 2) return "error usage: clear API";
            auto api = parse_api(a[1]);
            if (!api) return "error unknown api: " + a[1];
            rd_kafka_mock_clear_request_errors(mc_, *api);
            return "ok";
        }
        if (c == "leader" || c == "follower") {
            if (a.size() != 4) return "error usage: " + c + " TOPIC PARTITION BROKER_ID";
            auto part = parse_i32(a[2], 0, INT32_MAX);
            if (!part) return "error bad partition: " + a[2];
            auto b = parse_i32(a[3], -1, INT32_MAX);
            if (!b) return bad_broker(a[3]);
            return result(c == "leader"
                              ? rd_kafka_mock_partition_set_leader(mc_, a[1].c_str(), *part, *b)
                              : rd_kafka_mock_partition_set_follower(mc_, a[1].c_str(), *part, *b));
        }
        if (c == "coordinator") {
            if (a.size() != 4 || (a[1] != "group" && a[1] != "transaction")) {
                return "error usage: coordinator group|transaction KEY BROKER_ID";
            }
            auto b = parse_i32(a[3], -1, INT32_MAX);
            if (!b) return bad_broker(a[3]);
            return result(rd_kafka_mock_coordinator_set(mc_, a[1].c_str(), a[2].c_str(), *b));
        }
        if (c == "topic-error") {
            if (a.size() != 3) return "error usage: topic-error TOPIC ERROR";
            auto err = parse_error(a[2]);
            if (!err) return "error unknown error code: " + a[2];
            rd_kafka_mock_topic_set_error(mc_, a[1].c_str(), *err);
            return "ok";
        }
        return "error unknown command: " + c;
    }

  private:
    std::optional<int32_t> broker(const std::string& s) const { return parse_i32(s, 1, brokers_); }

    std::string bad_broker(const std::string& s) const {
        return "error bad broker id " + s + " (brokers are 1.." + std::to_string(brokers_) + ")";
    }

    static std::string result(rd_kafka_resp_err_t err) {
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return "ok";
        return std::string("error ") + rd_kafka_err2name(err) + ": " + rd_kafka_err2str(err);
    }

    std::string topic(const std::vector<std::string>& a) {
        if (a.size() < 3 || a.size() > 4) return "error usage: topic NAME PARTITIONS [REPLICATION]";
        auto n = parse_i32(a[2], 1, 100000);
        if (!n) return "error bad partition count: " + a[2];
        int repl = 1;
        if (a.size() == 4) {
            auto r = parse_i32(a[3], 1, 1000);
            if (!r) return "error bad replication factor: " + a[3];
            repl = *r;
        }
        return result(rd_kafka_mock_topic_create(mc_, a[1].c_str(), *n, repl));
    }

    std::string errors(const std::vector<std::string>& a) {
        if (a.size() != 4) return "error usage: errors API ERROR COUNT";
        auto api = parse_api(a[1]);
        if (!api) return "error unknown api: " + a[1];
        auto err = parse_error(a[2]);
        if (!err) return "error unknown error code: " + a[2];
        auto cnt = parse_i32(a[3], 1, 1000000);
        if (!cnt) return "error bad count: " + a[3];
        std::vector<rd_kafka_resp_err_t> errs(static_cast<size_t>(*cnt), *err);
        rd_kafka_mock_push_request_errors_array(mc_, *api, errs.size(), errs.data());
        return "ok";
    }

    std::string broker_errors(const std::vector<std::string>& a) {
        if (a.size() != 5 && a.size() != 6) {
            return "error usage: broker-errors BROKER_ID API ERROR COUNT [RTT_MS]";
        }
        auto b = broker(a[1]);
        if (!b) return bad_broker(a[1]);
        auto api = parse_api(a[2]);
        if (!api) return "error unknown api: " + a[2];
        auto err = parse_error(a[3]);
        if (!err) return "error unknown error code: " + a[3];
        auto cnt = parse_i32(a[4], 1, 1000000);
        if (!cnt) return "error bad count: " + a[4];
        int rtt = 0;
        if (a.size() == 6) {
            auto r = parse_i32(a[5], 0, INT32_MAX);
            if (!r) return "error bad rtt: " + a[5];
            rtt = *r;
        }
        // The call is variadic (err, rtt pairs): push one entry at a time, they stack in order.
        for (int i = 0; i < *cnt; ++i) {
            auto res = rd_kafka_mock_broker_push_request_error_rtts(mc_, *b, *api, 1, *err, rtt);
            if (res != RD_KAFKA_RESP_ERR_NO_ERROR) return result(res);
        }
        return "ok";
    }

    rd_kafka_mock_cluster_t* mc_;
    int brokers_;
};

int usage(const char* msg) {
    std::fprintf(stderr,
                 "mock_kafka: %s\nusage: mock_kafka [--brokers N] "
                 "[--topic NAME:PARTITIONS[:REPLICATION]]...\n",
                 msg);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    int brokers = 3;
    std::vector<TopicSpec> topics;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if ((arg == "--brokers" || arg == "--topic") && i + 1 >= argc) {
            return usage((arg + " needs a value").c_str());
        }
        if (arg == "--brokers") {
            auto n = parse_i32(argv[++i], 1, 100);
            if (!n) return usage("bad --brokers");
            brokers = *n;
        } else if (arg == "--topic") {
            auto t = parse_topic_spec(argv[++i]);
            if (!t) return usage("bad --topic, want NAME:PARTITIONS[:REPLICATION]");
            topics.push_back(*t);
        } else if (arg == "-h" || arg == "--help") {
            usage("help");
            return 0;
        } else {
            return usage(("unknown argument " + arg).c_str());
        }
    }

    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // Logs to stderr only: stdout is the command protocol.
    rd_kafka_conf_set_log_cb(conf, rd_kafka_log_print);
    if (rd_kafka_conf_set(conf, "client.id", "mock_kafka", errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        std::fprintf(stderr, "mock_kafka: %s\n", errstr);
        return 1;
    }
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        std::fprintf(stderr, "mock_kafka: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        std::fprintf(stderr, "mock_kafka: rd_kafka_mock_cluster_new failed\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    for (const auto& t : topics) {
        auto err = rd_kafka_mock_topic_create(mc, t.name.c_str(), t.partitions, t.replication);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            std::fprintf(stderr, "mock_kafka: topic %s: %s\n", t.name.c_str(),
                         rd_kafka_err2str(err));
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }

    std::cout << "bootstrap " << rd_kafka_mock_cluster_bootstraps(mc) << "\nready" << std::endl;

    Server server(mc, brokers);
    bool quit = false;
    for (std::string line; !quit && std::getline(std::cin, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::cout << server.handle(line, quit) << std::endl;
    }

    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
