#pragma once

// Starts a real redis-server on a free loopback port in a temp directory for a test, and stops
// it in the destructor. No persistence. `available()` is false when redis-server is not
// installed (scripts/install-deps.sh --test installs it).

#include <arpa/inet.h>
#include <chrono>
#include <filesystem>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace switchyard::testing {

class redis_server {
  public:
    static constexpr const char* binary = "/usr/bin/redis-server";
    static bool available() { return std::filesystem::exists(binary); }

    redis_server() {
        dir_ = std::filesystem::temp_directory_path() /
               ("sy-redis-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
        std::filesystem::create_directories(dir_);
        // The daemon ignores SIGPIPE (app.cc); so must a test that writes to a killed server.
        ::signal(SIGPIPE, SIG_IGN);
        // Another process may take the free port before redis-server binds it: try another.
        for (int i = 0; i < 5; ++i) {
            port_ = free_port();
            if (start()) break;
        }
    }
    ~redis_server() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    int port() const { return port_; }
    bool running() const { return pid_ > 0; }

    // Starts it (again, on the same port, after stop()); true once it accepts connections.
    bool start() {
        const std::string port = std::to_string(port_), dir = dir_.string();
        std::vector<std::string> args = {
            binary,         "--port", port,    "--bind", "127.0.0.1", "--save",          "",
            "--appendonly", "no",     "--dir", dir,      "--logfile", dir + "/redis.log"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (posix_spawn(&pid_, binary, nullptr, nullptr, argv.data(), environ) != 0) {
            pid_ = -1;
            return false;
        }
        for (int i = 0; i < 400; ++i) {
            if (accepts()) return true;
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {  // exited: port taken, bad flag, ...
                pid_ = -1;
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        stop();
        return false;
    }

    // SIGSTOP / SIGCONT: a server that hangs without closing its connections.
    void pause() {
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    void resume() {
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }

    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
    }

  private:
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

    bool accepts() const {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port_));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return ok;
    }

    std::filesystem::path dir_;
    int port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace switchyard::testing
