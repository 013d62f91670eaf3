#include "switchyard/result.h"

namespace switchyard {
namespace {

class category final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "switchyard"; }

    [[nodiscard]] std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::ok:
                return "success";
            case errc::log_full:
                return "the event log reached its byte capacity";
            case errc::log_closed:
                return "the event log is closed";
            case errc::io_error:
                return "a filesystem operation failed";
            case errc::corrupt_record:
                return "a log record failed its CRC or length check";
            case errc::invalid_argument:
                return "invalid argument";
            case errc::not_found:
                return "not found";
            case errc::timed_out:
                return "timed out";
            case errc::unavailable:
                return "the event log cannot confirm appends right now";
        }
        return "unknown switchyard error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& switchyard_category() noexcept {
    static const category instance;
    return instance;
}

}  // namespace switchyard
