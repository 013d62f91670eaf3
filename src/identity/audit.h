#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace switchyard::identity {

// The audit trail of deletion requests: who asked, when, for which person and ids, which
// destinations were expected to act, and which confirmed (delivered the deletion record).
// An append-only NDJSON file (one "requested" line per request, one "confirmed" line per
// destination), fsynced per line and read back at start. Deletions are rare; the whole trail
// is kept in memory.
//
// Thread model: every method is thread-safe.
class deletion_audit {
  public:
    struct request {
        std::string id;
        std::int64_t requested_ms = 0;
        std::string requested_by;
        std::string reason;
        std::string subject;                    // the key the request named ("u:alice")
        std::string person;                     // its person's canonical key
        std::vector<std::string> ids;           // every key deleted
        std::vector<std::string> destinations;  // expected to confirm
        bool suppressed = false;                // the ids were also added to the suppression list
        std::map<std::string, std::int64_t> confirmed;  // destination → when
    };

    explicit deletion_audit(std::filesystem::path file) : file_(std::move(file)) {}

    // Reads the trail (creating the directory). Lines that do not parse are skipped and
    // counted in `skipped`.
    std::error_code open(std::size_t* skipped = nullptr);
    std::error_code record(const request& r);
    // Records that `destination` delivered the deletion record of `request_id`; repeats and
    // unknown ids are ignored.
    std::error_code confirm(std::string_view request_id, std::string_view destination,
                            std::int64_t at_ms);
    std::optional<request> get(std::string_view id) const;
    std::vector<request> list() const;

    // The deletion record's messageId for a request id, and back.
    static std::string message_id(std::string_view request_id);
    static std::optional<std::string_view> request_id(std::string_view message_id);

    // A request as JSON (the operator API's answer).
    static std::string to_json(const request& r);

  private:
    std::error_code append_line(const std::string& line);

    std::filesystem::path file_;
    mutable std::mutex mu_;
    std::map<std::string, request, std::less<>> requests_;
    std::vector<std::string> order_;
};

}  // namespace switchyard::identity
