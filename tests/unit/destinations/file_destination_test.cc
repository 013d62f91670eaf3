#include "destinations/file/file_destination.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <signal.h>
#include <sstream>
#include <sys/resource.h>

namespace switchyard::destinations {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string tmpl = (fs::path(testing::TempDir()) / "file_dest_XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// Keeps the JSON strings alive while the views point at them.
struct batch_builder {
    std::vector<std::string> json;
    std::vector<delivery_item> items;
    explicit batch_builder(std::vector<std::string> lines) : json(std::move(lines)) {
        for (std::size_t i = 0; i < json.size(); ++i) {
            delivery_item it;
            it.offset = i;
            it.event.json = json[i];
            items.push_back(it);
        }
    }
};

std::vector<std::string> make_events(std::size_t first, std::size_t n) {
    std::vector<std::string> out;
    for (std::size_t i = first; i < first + n; ++i) {
        out.push_back(R"({"type":"track","event":"Clicked","messageId":"m-)" + std::to_string(i) +
                      R"("})");
    }
    return out;
}

std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Inflates every gzip member in `data`; fails the test unless each member is complete.
std::string gunzip(const std::string& data) {
    std::string out;
    std::size_t pos = 0;
    while (pos < data.size()) {
        z_stream zs{};
        EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + pos));
        zs.avail_in = static_cast<uInt>(data.size() - pos);
        char buf[4096];
        int rc = Z_OK;
        while (rc == Z_OK) {
            zs.next_out = reinterpret_cast<Bytef*>(buf);
            zs.avail_out = sizeof buf;
            rc = inflate(&zs, Z_NO_FLUSH);
            out.append(buf, sizeof buf - zs.avail_out);
        }
        EXPECT_EQ(rc, Z_STREAM_END) << "incomplete gzip member";
        pos = data.size() - zs.avail_in;
        inflateEnd(&zs);
        if (rc != Z_STREAM_END) break;
    }
    return out;
}

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < s.size()) {
        auto nl = s.find('\n', start);
        EXPECT_NE(nl, std::string::npos) << "last line is not terminated";
        if (nl == std::string::npos) break;
        out.push_back(s.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

std::vector<std::string> all_lines(const fs::path& dir, bool gzip) {
    std::string all;
    for (const auto& f : files_in(dir)) all += gzip ? gunzip(read_file(f)) : read_file(f);
    return split_lines(all);
}

struct fake_clock {
    std::chrono::system_clock::time_point t =
        std::chrono::system_clock::from_time_t(1704164645);  // 2024-01-02T03:04:05Z
    std::function<std::chrono::system_clock::time_point()> fn() {
        return [this] { return t; };
    }
};

TEST(FileDestination, WritesOneLinePerEventInOrder) {
    temp_dir tmp;
    fake_clock clock;
    file_destination_options o;
    o.dir = tmp.path / "out";
    o.now = clock.fn();
    file_destination d(o);
    batch_builder a(make_events(0, 3)), b(make_events(3, 2));
    EXPECT_EQ(d.send(a.items).status, send_status::delivered);
    EXPECT_EQ(d.send(b.items).status, send_status::delivered);
    d.close();

    auto files = files_in(tmp.path / "out");
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(files[0].filename(), "events-20240102T030405-000000.ndjson");
    EXPECT_EQ(all_lines(tmp.path / "out", false), make_events(0, 5));
    EXPECT_TRUE(d.healthy());
}

TEST(FileDestination, KeepsOneEventPerLineWhenJsonHasNewlines) {
    temp_dir tmp;
    file_destination_options o;
    o.dir = tmp.path;
    o.fsync = false;
    file_destination d(o);
    batch_builder a({"{\n\"a\": 1\n}"});
    EXPECT_EQ(d.send(a.items).status, send_status::delivered);
    d.close();
    EXPECT_EQ(all_lines(tmp.path, false), std::vector<std::string>{"{ \"a\": 1 }"});
}

TEST(FileDestination, RotatesBySizeAndKeepsOrder) {
    temp_dir tmp;
    file_destination_options o;
    o.dir = tmp.path;
    o.prefix = "p";
    o.rotate_bytes = 150;
    file_destination d(o);
    for (std::size_t i = 0; i < 10; ++i) {
        batch_builder b(make_events(i * 2, 2));
        ASSERT_EQ(d.send(b.items).status, send_status::delivered);
    }
    d.close();
    auto files = files_in(tmp.path);
    EXPECT_GT(files.size(), 3u);
    for (const auto& f : files) {
        EXPECT_TRUE(
            std::regex_match(f.filename().string(), std::regex(R"(p-\d{8}T\d{6}-\d{6}\.ndjson)")))
            << f;
    }
    EXPECT_EQ(all_lines(tmp.path, false), make_events(0, 20));
}

TEST(FileDestination, GzipFilesDecompressToTheSameLines) {
    temp_dir tmp;
    file_destination_options o;
    o.dir = tmp.path;
    o.rotate_bytes = 200;
    o.gzip = true;
    o.gzip_level = 9;
    file_destination d(o);
    for (std::size_t i = 0; i < 12; ++i) {
        batch_builder b(make_events(i * 5, 5));
        ASSERT_EQ(d.send(b.items).status, send_status::delivered);
    }
    d.close();
    auto files = files_in(tmp.path);
    EXPECT_GT(files.size(), 1u);
    for (const auto& f : files) EXPECT_EQ(f.extension(), ".gz");
    EXPECT_EQ(all_lines(tmp.path, true), make_events(0, 60));
}

TEST(FileDestination, UnfinishedGzipFileIsReadableUpToTheLastBatch) {
    // What a crash leaves: every delivered batch is readable although the member has no trailer.
    temp_dir tmp;
    file_destination_options o;
    o.dir = tmp.path;
    o.gzip = true;
    file_destination d(o);
    batch_builder b(make_events(0, 4));
    ASSERT_EQ(d.send(b.items).status, send_status::delivered);
    std::string data = read_file(d.current_file());

    z_stream zs{};
    ASSERT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = reinterpret_cast<Bytef*>(data.data());
    zs.avail_in = static_cast<uInt>(data.size());
    std::string out(4096, '\0');
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(inflate(&zs, Z_SYNC_FLUSH), Z_OK);
    out.resize(out.size() - zs.avail_out);
    inflateEnd(&zs);
    EXPECT_EQ(split_lines(out), make_events(0, 4));
    d.close();
}

TEST(FileDestination, RotatesByTimeWithInjectedClock) {
    temp_dir tmp;
    fake_clock clock;
    file_destination_options o;
    o.dir = tmp.path;
    o.rotate_interval = 10s;
    o.now = clock.fn();
    file_destination d(o);
    batch_builder a(make_events(0, 2)), b(make_events(2, 2)), c(make_events(4, 2));
    ASSERT_EQ(d.send(a.items).status, send_status::delivered);
    clock.t += 9s;
    ASSERT_EQ(d.send(b.items).status, send_status::delivered);  // still young: same file
    clock.t += 1s;
    ASSERT_EQ(d.send(c.items).status, send_status::delivered);  // 10s old: new file
    d.close();

    auto files = files_in(tmp.path);
    ASSERT_EQ(files.size(), 2u);
    EXPECT_EQ(files[0].filename(), "events-20240102T030405-000000.ndjson");
    EXPECT_EQ(files[1].filename(), "events-20240102T030415-000001.ndjson");
    EXPECT_EQ(split_lines(read_file(files[0])), make_events(0, 4));
    EXPECT_EQ(split_lines(read_file(files[1])), make_events(4, 2));
}

TEST(FileDestination, NeverAppendsToAFileFromAPreviousRun) {
    temp_dir tmp;
    fake_clock clock;  // both runs get the same timestamp, so the names collide
    {
        file_destination_options first_opts;
        first_opts.dir = tmp.path;
        first_opts.now = clock.fn();
        file_destination first(first_opts);
        batch_builder a(make_events(0, 2));
        ASSERT_EQ(first.send(a.items).status, send_status::delivered);
        // No close(): as after a crash.
        auto kept = read_file(first.current_file());
        file_destination_options second_opts;
        second_opts.dir = tmp.path;
        second_opts.now = clock.fn();
        file_destination second(second_opts);
        batch_builder b(make_events(2, 2));
        ASSERT_EQ(second.send(b.items).status, send_status::delivered);
        EXPECT_NE(second.current_file(), first.current_file());
        EXPECT_EQ(read_file(first.current_file()), kept);
        second.close();
    }
    EXPECT_EQ(all_lines(tmp.path, false), make_events(0, 4));
}

TEST(FileDestination, UnwritableDirectoryIsARetryWithAReason) {
    temp_dir tmp;
    std::ofstream(tmp.path / "blocker") << "a regular file, not a directory";
    file_destination_options o;
    o.dir = tmp.path / "blocker" / "out";
    file_destination d(o);
    batch_builder a(make_events(0, 1));
    auto out = d.send(a.items);
    EXPECT_EQ(out.status, send_status::retry);
    EXPECT_NE(out.reason.find("blocker"), std::string::npos) << out.reason;
    EXPECT_NE(out.reason.find(std::strerror(ENOTDIR)), std::string::npos) << out.reason;
    EXPECT_FALSE(d.healthy());
    d.close();
}

// Makes writes past `limit` bytes fail with EFBIG (as a full disk would fail them) until the
// end of the scope. Process-wide, so only for this single-threaded test.
struct file_size_limit {
    rlimit old{};
    sighandler_t old_handler;
    explicit file_size_limit(rlim_t limit) {
        old_handler = ::signal(SIGXFSZ, SIG_IGN);
        ::getrlimit(RLIMIT_FSIZE, &old);
        rlimit l = old;
        l.rlim_cur = limit;
        ::setrlimit(RLIMIT_FSIZE, &l);
    }
    ~file_size_limit() {
        ::setrlimit(RLIMIT_FSIZE, &old);
        ::signal(SIGXFSZ, old_handler);
    }
};

TEST(FileDestination, FailedWriteLeavesNoTornDataAndRetrySucceeds) {
    for (bool gzip : {false, true}) {
        SCOPED_TRACE(gzip ? "gzip" : "plain");
        temp_dir tmp;
        file_destination_options o;
        o.dir = tmp.path;
        o.gzip = gzip;
        file_destination d(o);
        batch_builder a(make_events(0, 3));
        ASSERT_EQ(d.send(a.items).status, send_status::delivered);
        auto first = d.current_file();

        // A big, incompressible batch that cannot fit under the limit.
        std::mt19937_64 rng(7);
        std::vector<std::string> big;
        for (int i = 0; i < 50; ++i) {
            std::string s = "{\"blob\":\"";
            for (int j = 0; j < 2000; ++j) s.push_back(static_cast<char>('a' + rng() % 26));
            big.push_back(s + "\"}");
        }
        batch_builder b(big);
        {
            file_size_limit limit(fs::file_size(first) + 1000);
            auto out = d.send(b.items);
            EXPECT_EQ(out.status, send_status::retry);
            EXPECT_FALSE(out.reason.empty());
            EXPECT_FALSE(d.healthy());
        }
        // The failed file holds exactly the first batch, as a complete file.
        std::string kept = read_file(first);
        EXPECT_EQ(split_lines(gzip ? gunzip(kept) : kept), make_events(0, 3));

        // The retry succeeds in a new file.
        ASSERT_EQ(d.send(b.items).status, send_status::delivered);
        EXPECT_TRUE(d.healthy());
        EXPECT_NE(d.current_file(), first);
        d.close();
        auto expected = make_events(0, 3);
        expected.insert(expected.end(), big.begin(), big.end());
        EXPECT_EQ(all_lines(tmp.path, gzip), expected);
    }
}

TEST(FileDestinationConfig, ReadsSettings) {
    temp_dir tmp;
    YAML::Node n = YAML::Load(
        "path: " + (tmp.path / "x").string() +
        "\nprefix: clicks\nrotate_bytes: 1KiB\nrotate_interval: 5m\ngzip: true\nfsync: false\n");
    config::errors errs;
    config::map_reader r(n, "destinations[0]", errs);
    auto d = make_file_destination(r, destination_context{"archive", tmp.path});
    ASSERT_TRUE(errs.empty()) << errs.list().front();
    ASSERT_NE(d, nullptr);
    batch_builder a(make_events(0, 1));
    ASSERT_EQ(d->send(a.items).status, send_status::delivered);
    d->close();
    auto files = files_in(tmp.path / "x");
    ASSERT_EQ(files.size(), 1u);
    EXPECT_TRUE(files[0].filename().string().starts_with("clicks-"));
    EXPECT_TRUE(files[0].filename().string().ends_with(".ndjson.gz"));
}

TEST(FileDestinationConfig, DefaultPathIsUnderDataDir) {
    temp_dir tmp;
    config::errors errs;
    config::map_reader r(YAML::Load("{}"), "destinations[0]", errs);
    auto d = make_file_destination(r, destination_context{"archive", tmp.path});
    ASSERT_NE(d, nullptr);
    batch_builder a(make_events(0, 1));
    ASSERT_EQ(d->send(a.items).status, send_status::delivered);
    d->close();
    EXPECT_EQ(files_in(tmp.path / "out" / "archive").size(), 1u);
}

TEST(FileDestinationConfig, ReportsAllErrors) {
    config::errors errs;
    config::map_reader r(YAML::Load("gzip_level: 12\nrotate_bytes: 0\nbogus: 1\n"), "d", errs);
    EXPECT_EQ(make_file_destination(r, destination_context{"x", "/tmp"}), nullptr);
    ASSERT_EQ(errs.list().size(), 3u);
    std::string all;
    for (const auto& e : errs.list()) all += e + "\n";
    EXPECT_NE(all.find("d.gzip_level"), std::string::npos) << all;
    EXPECT_NE(all.find("d.rotate_bytes"), std::string::npos) << all;
    EXPECT_NE(all.find("bogus"), std::string::npos) << all;
}

TEST(FileDestinationConfig, DescribeModeDocumentsKeys) {
    config::errors errs;
    config::key_catalog catalog;
    config::map_reader r(YAML::Node(), "destinations[].file", errs, &catalog);
    EXPECT_EQ(make_file_destination(r, {}), nullptr);
    std::vector<std::string> keys;
    for (const auto& k : catalog.keys()) keys.push_back(k.path);
    EXPECT_EQ(keys, (std::vector<std::string>{
                        "destinations[].file.path", "destinations[].file.prefix",
                        "destinations[].file.rotate_bytes", "destinations[].file.rotate_interval",
                        "destinations[].file.gzip", "destinations[].file.gzip_level",
                        "destinations[].file.fsync"}));
    EXPECT_EQ(catalog.keys().front().default_value, "<data_dir>/out/<name>");
    EXPECT_TRUE(errs.empty());
}

}  // namespace
}  // namespace switchyard::destinations
