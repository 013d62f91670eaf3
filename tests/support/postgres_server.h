#pragma once

// A private PostgreSQL server for a test: initdb in a temp dir, pg_ctl start on a free loopback
// port, removed in the destructor (the C++ twin of tests/support/postgres_server.py). When the
// test runs as root the server runs as the `postgres` user (PostgreSQL refuses root).
// `available()` is false when the binaries are missing (scripts/install-deps.sh --test installs
// them).

#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <netinet/in.h>
#include <pwd.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace switchyard::testing {

class postgres_server {
  public:
    static std::string bindir() {
        namespace fs = std::filesystem;
        std::string best;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
            auto b = e.path() / "bin";
            if (fs::exists(b / "initdb") && b.string() > best) best = b.string();
        }
        return best;
    }
    static bool available() { return !bindir().empty(); }

    postgres_server() {
        bin_ = bindir();
        dir_ = std::filesystem::temp_directory_path() /
               ("sy-pg-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_ / "sock");
        if (::geteuid() == 0 && ::getpwnam("postgres") != nullptr) {
            run_as_ = "runuser -u postgres -- ";
            sh("chown -R postgres " + dir_.string());
        }
        std::filesystem::permissions(dir_, std::filesystem::perms::all);
        port_ = free_port();
        ok_ = sh(run_as_ + bin_ + "/initdb -D " + data() +
                 " -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null 2>&1") == 0 &&
              start() && psql("postgres", "CREATE DATABASE test") == 0;
    }
    ~postgres_server() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    postgres_server(const postgres_server&) = delete;
    postgres_server& operator=(const postgres_server&) = delete;

    bool ok() const { return ok_; }
    int port() const { return port_; }
    std::string dsn(const std::string& user = "postgres") const {
        return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user + " dbname=test";
    }

    bool start() {
        return sh(run_as_ + bin_ + "/pg_ctl -D " + data() + " -l " + (dir_ / "log").string() +
                  " -w -t 60 -o \"-p " + std::to_string(port_) + " -k " + (dir_ / "sock").string() +
                  " -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null 2>&1") == 0;
    }
    void stop() {
        sh(run_as_ + bin_ + "/pg_ctl -D " + data() + " -m immediate -w stop >/dev/null 2>&1");
    }

    // Runs SQL as the superuser on database `db`; returns psql's exit status.
    int psql(const std::string& db, const std::string& sql) const {
        return sh(bin_ + "/psql -X -q -h 127.0.0.1 -p " + std::to_string(port_) +
                  " -U postgres -d " + db + " -v ON_ERROR_STOP=1 -c " + quote(sql) +
                  " >/dev/null 2>&1");
    }
    // The first column of the result's rows, one per line (NULL as empty).
    std::string query(const std::string& sql) const {
        const std::string cmd = "PGTZ=UTC " + bin_ + "/psql -X -q -h 127.0.0.1 -p " +
                                std::to_string(port_) + " -U postgres -d test -At -F '|' -c " +
                                quote(sql) + " 2>&1";
        std::string out;
        if (FILE* p = ::popen(cmd.c_str(), "r")) {
            char buf[4096];
            std::size_t n;
            while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
            ::pclose(p);
        }
        if (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }

  private:
    std::string data() const { return (dir_ / "data").string(); }
    static int sh(const std::string& cmd) { return std::system(cmd.c_str()); }
    static std::string quote(const std::string& s) {
        std::string q = "'";
        for (char c : s) {
            if (c == '\'') {
                q += "'\\''";
            } else {
                q += c;
            }
        }
        return q + "'";
    }
    static int& counter() {
        static int n = 0;
        return n;
    }
    static int free_port() {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        ::close(fd);
        return ntohs(a.sin_port);
    }

    std::string bin_;
    std::filesystem::path dir_;
    std::string run_as_;
    int port_ = 0;
    bool ok_ = false;
};

}  // namespace switchyard::testing
