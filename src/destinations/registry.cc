#include "destinations/registry.h"

namespace switchyard::destinations {

void registry::add(std::string type, factory f) {
    factories_.emplace(std::move(type), std::move(f));
}

const factory* registry::find(const std::string& type) const {
    auto it = factories_.find(type);
    return it == factories_.end() ? nullptr : &it->second;
}

}  // namespace switchyard::destinations
