#pragma once

#include "switchyard/event.h"

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard {

enum class send_status {
    delivered,  // the target has the whole batch durably
    retry,      // transient failure: try the same batch again later
    reject,     // the target will never accept this batch: dead-letter it
};

struct send_outcome {
    send_status status = send_status::delivered;
    std::string reason;                        // human-readable, for logs and dead letters
    std::chrono::milliseconds retry_after{0};  // the target's hint, 0 when none
    // With `delivered`: items of the batch the target refused one by one (index in the batch,
    // reason). The delivery engine dead-letters them (kind `rejected`); the rest count as
    // delivered. Ignored with the other statuses.
    std::vector<std::pair<std::size_t, std::string>> rejected_items;

    static send_outcome ok() { return {}; }
    static send_outcome retry_later(std::string why, std::chrono::milliseconds after = {}) {
        return {send_status::retry, std::move(why), after, {}};
    }
    static send_outcome rejected(std::string why) {
        return {send_status::reject, std::move(why), {}, {}};
    }
};

// One event handed to a destination, with the log offset it came from.
struct delivery_item {
    std::uint64_t offset = 0;
    event_view event;
};

// A leaf that owns one wire format. Retries, batching, cursors and metrics belong to the
// delivery engine. Lifecycle: built from config at start, then used only by its own delivery
// worker thread until close().
class destination {
  public:
    virtual ~destination() = default;

    // Delivers `batch` in order. Returns delivered only once the batch is durable at the target.
    virtual send_outcome send(std::span<const delivery_item> batch) = 0;

    // Cheap health signal for /readyz and metrics.
    virtual bool healthy() const { return true; }

    // Flushes and releases resources. Called once, from the worker thread, at stop.
    virtual void close() {}
};

}  // namespace switchyard
