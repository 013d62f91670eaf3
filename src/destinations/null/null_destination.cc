#include "destinations/null/null_destination.h"

namespace switchyard::destinations {

send_outcome null_destination::send(std::span<const delivery_item> batch) {
    batches_.fetch_add(1, std::memory_order_relaxed);
    events_.fetch_add(batch.size(), std::memory_order_relaxed);
    return send_outcome::ok();
}

std::unique_ptr<destination> make_null_destination(config::map_reader& settings,
                                                   const destination_context&) {
    const std::size_t errors_before = settings.errs().list().size();
    settings.finish();
    if (settings.describing() || settings.errs().list().size() != errors_before) return nullptr;
    return std::make_unique<null_destination>();
}

}  // namespace switchyard::destinations
