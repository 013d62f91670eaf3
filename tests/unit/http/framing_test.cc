#include "http/framing.h"

#include "http/gzip.h"
#include "http/net.h"

#include <gtest/gtest.h>
#include <zlib.h>

namespace switchyard::http {
namespace {

namespace bhttp = boost::beast::http;

bhttp::fields with(std::initializer_list<std::pair<const char*, const char*>> kv) {
    bhttp::fields f;
    for (auto [k, v] : kv) f.insert(k, v);
    return f;
}

TEST(Framing, AcceptsPlainContentLengthAndChunked) {
    EXPECT_FALSE(check_framing(with({{"Content-Length", "10"}})));
    EXPECT_FALSE(check_framing(with({{"Transfer-Encoding", "chunked"}})));
    EXPECT_FALSE(check_framing(with({{"Transfer-Encoding", "Chunked"}})));
    EXPECT_FALSE(check_framing(with({})));
}

TEST(Framing, RejectsAmbiguousFraming) {
    EXPECT_TRUE(check_framing(with({{"Content-Length", "10"}, {"Transfer-Encoding", "chunked"}})));
    EXPECT_TRUE(check_framing(with({{"Content-Length", "10"}, {"Content-Length", "10"}})));
    EXPECT_TRUE(check_framing(with({{"Content-Length", "10"}, {"Content-Length", "11"}})));
    EXPECT_TRUE(check_framing(with({{"Content-Length", "1,1"}})));
    EXPECT_TRUE(check_framing(with({{"Content-Length", "+5"}})));
    EXPECT_TRUE(check_framing(with({{"Content-Length", "-1"}})));
    EXPECT_TRUE(check_framing(with({{"Content-Length", ""}})));
    EXPECT_TRUE(check_framing(with({{"Content-Length", "99999999999999999999"}})));
    EXPECT_TRUE(check_framing(with({{"Transfer-Encoding", "gzip, chunked"}})));
    EXPECT_TRUE(check_framing(with({{"Transfer-Encoding", "xchunked"}})));
    EXPECT_TRUE(
        check_framing(with({{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}})));
}

std::string gzip_of(const std::string& s) {
    z_stream zs{};
    deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    std::string out(deflateBound(&zs, s.size()) + 32, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
    zs.avail_in = static_cast<uInt>(s.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

TEST(Gzip, InflatesWithinCap) {
    std::string out;
    EXPECT_EQ(inflate_body(gzip_of("hello world"), 100, out), inflate_status::ok);
    EXPECT_EQ(out, "hello world");
}

TEST(Gzip, BombStopsAtCap) {
    std::string zeros(50 << 20, '\0');
    auto bomb = gzip_of(zeros);
    zeros.clear();
    zeros.shrink_to_fit();
    std::string out;
    EXPECT_EQ(inflate_body(bomb, 1 << 20, out), inflate_status::too_large);
    EXPECT_LE(out.capacity(), (2u << 20) + 4096);
}

TEST(Gzip, InvalidAndTruncated) {
    std::string out;
    EXPECT_EQ(inflate_body("not gzip at all", 100, out), inflate_status::invalid);
    auto g = gzip_of(std::string(1000, 'a'));
    EXPECT_EQ(inflate_body(g.substr(0, g.size() / 2), 10000, out), inflate_status::invalid);
}

TEST(Gzip, ConcatenatedMembers) {
    std::string out;
    EXPECT_EQ(inflate_body(gzip_of("ab") + gzip_of("cd"), 100, out), inflate_status::ok);
    EXPECT_EQ(out, "abcd");
}

TEST(ClientIp, PeerUnlessTrustedProxy) {
    auto peer = boost::asio::ip::make_address("10.0.0.5");
    std::vector<cidr> trusted{*parse_cidr("10.0.0.0/8")};
    EXPECT_EQ(client_ip(peer, "", trusted), "10.0.0.5");
    EXPECT_EQ(client_ip(peer, "203.0.113.9", trusted), "203.0.113.9");
    // Right-most untrusted hop wins; a spoofed left-most entry is ignored.
    EXPECT_EQ(client_ip(peer, "1.2.3.4, 203.0.113.9, 10.0.0.7", trusted), "203.0.113.9");
    auto untrusted = boost::asio::ip::make_address("198.51.100.1");
    EXPECT_EQ(client_ip(untrusted, "203.0.113.9", trusted), "198.51.100.1");
    EXPECT_EQ(client_ip(peer, "garbage", trusted), "10.0.0.5");
}

TEST(ClientIp, CidrParsing) {
    EXPECT_TRUE(parse_cidr("127.0.0.1"));
    EXPECT_TRUE(parse_cidr("::1/128"));
    EXPECT_FALSE(parse_cidr("10.0.0.0/33"));
    EXPECT_FALSE(parse_cidr("nope"));
    auto v6 = parse_cidr("2001:db8::/32");
    ASSERT_TRUE(v6);
    EXPECT_TRUE(v6->contains(boost::asio::ip::make_address("2001:db8:1::5")));
    EXPECT_FALSE(v6->contains(boost::asio::ip::make_address("2001:db9::5")));
    auto v4 = parse_cidr("127.0.0.0/8");
    EXPECT_TRUE(v4->contains(boost::asio::ip::make_address("::ffff:127.0.0.1")));
}

TEST(HostPort, Split) {
    std::string h;
    unsigned short p = 0;
    EXPECT_TRUE(split_host_port("0.0.0.0:8080", h, p));
    EXPECT_EQ(h, "0.0.0.0");
    EXPECT_EQ(p, 8080);
    EXPECT_TRUE(split_host_port("[::1]:9", h, p));
    EXPECT_EQ(h, "::1");
    EXPECT_FALSE(split_host_port("localhost", h, p));
    EXPECT_FALSE(split_host_port("a:99999", h, p));
}

}  // namespace
}  // namespace switchyard::http
