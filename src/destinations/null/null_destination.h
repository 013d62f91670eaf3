#pragma once

#include "config/reader.h"
#include "destinations/registry.h"
#include "switchyard/destination.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

namespace switchyard::destinations {

// Acknowledges every batch without writing it anywhere. For benchmarks (it measures ingest and
// the delivery engine without a target's cost) and for trying out routing rules. Events routed
// here are counted as delivered and are not kept: configure it on purpose, never as a fallback.
//
// Lifecycle: send() runs only on its delivery worker thread; the counters may be read anywhere.
class null_destination final : public destination {
  public:
    send_outcome send(std::span<const delivery_item> batch) override;

    std::uint64_t batches() const noexcept { return batches_.load(std::memory_order_relaxed); }
    std::uint64_t events() const noexcept { return events_.load(std::memory_order_relaxed); }

  private:
    std::atomic<std::uint64_t> batches_{0};
    std::atomic<std::uint64_t> events_{0};
};

// `type: null`: no settings of its own.
std::unique_ptr<destination> make_null_destination(config::map_reader& settings,
                                                   const destination_context& ctx);

}  // namespace switchyard::destinations
