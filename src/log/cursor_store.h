#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>

namespace switchyard::log {

// Where a delivery worker keeps its position: load once at start, commit after delivery.
// Implementations: cursor_store (files, for the local log) and log/kafka's consumer view
// (Kafka consumer-group offsets).
class cursor_backend {
  public:
    virtual ~cursor_backend() = default;
    // The committed offset of `name`, or nullopt when it never committed.
    virtual std::optional<std::uint64_t> load(const std::string& name) const = 0;
    // Durably records that `name` has consumed everything before `offset`.
    virtual std::error_code commit(const std::string& name, std::uint64_t offset) = 0;
};

// Persists one offset per reader (destination) as `<dir>/<name>.cursor`, written atomically
// (temp file, fdatasync, rename, fsync of the directory) so a crash leaves either the old or the
// new value. Thread-safe; each delivery worker commits only its own name.
class cursor_store final : public cursor_backend {
  public:
    explicit cursor_store(std::filesystem::path dir);

    // Creates the directory if needed. Throws std::system_error at start-up on failure.
    void open();

    // The committed offset of `name`, or nullopt when it never committed.
    std::optional<std::uint64_t> load(const std::string& name) const override;

    // Durably records that `name` has consumed everything before `offset`.
    std::error_code commit(const std::string& name, std::uint64_t offset) override;

    // Forgets a reader (destination removed from config).
    std::error_code remove(const std::string& name);

    // Smallest committed offset over the given names (names without a cursor count as 0).
    std::map<std::string, std::uint64_t> snapshot() const;

  private:
    std::filesystem::path dir_;
    mutable std::mutex mu_;
    std::map<std::string, std::uint64_t> cache_;
};

}  // namespace switchyard::log
