#pragma once

#include <string_view>

// Data files compiled into the binary (see CMakeLists.txt, cmake/embed.cmake).
namespace switchyard::embedded {
extern const std::string_view referrers_tsv;  // src/enrich/campaign/referrers.tsv
extern const std::string_view crawlers_tsv;   // src/enrich/bots/crawlers.tsv
}  // namespace switchyard::embedded
