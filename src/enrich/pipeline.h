#pragma once

#include "config/config.h"
#include "enrich/privacy/ip.h"

#include <simdjson.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::telemetry {
class metrics;
}

namespace switchyard::enrich {

// The steps, in the order they run for each event.
enum class step : std::uint8_t { geo, ip, user_agent, bots, campaign, referrer };
inline constexpr std::size_t step_count = 6;
std::string_view to_string(step s) noexcept;

// What one source asks of the stage (sources[].ip, sources[].bots).
struct source_policy {
    privacy::ip_mode ip = privacy::ip_mode::keep;
    bool drop_bots = false;
};

// One event's inputs, found by the decoder in the event's context (views into the parsed
// request, valid for the call).
struct event_input {
    std::string_view user_agent;
    bool has_user_agent = false;  // context.userAgent is a string (possibly empty)
    simdjson::dom::element user_agent_data;
    bool has_user_agent_data = false;
    std::string_view ip;  // context.ip, else the client's address; empty: none
    bool ip_from_context = false;
    std::string_view page_url, page_search, page_referrer;
    // What the SDK already filled: a step never overwrites it.
    bool has_browser = false, has_os = false, has_device = false, has_location = false,
         has_network = false, has_campaign = false, has_referrer = false, has_bot = false;
};

// Per-request settings.
struct request_input {
    const source_policy* policy = nullptr;  // null: keep the IP, flag bots
    bool anonymous = false;                 // the anonymous-mode header was sent
};

struct event_output {
    // JSON members to add inside context, each preceded by ',' (",\"browser\":{...}").
    std::string members;
    // Whether context.ip must be rewritten; then `ip` is the value to store (empty: none).
    bool rewrite_ip = false;
    std::string ip;
    bool is_bot = false;

    void clear() {
        members.clear();
        rewrite_ip = false;
        ip.clear();
        is_bot = false;
    }
};

// Counters of one step, summed over threads.
struct step_totals {
    std::uint64_t hits = 0;     // the step added something
    std::uint64_t misses = 0;   // it looked, nothing to add (unknown UA, IP not in the database)
    std::uint64_t skipped = 0;  // no input, or the SDK had already filled the field
    std::uint64_t cache_hits = 0, cache_misses = 0;
    std::uint64_t timed = 0;  // events whose cost was measured (1 in cost_sample_every)
    std::uint64_t nanos = 0;  // time spent on those
};

// The enrichment stage: geo → ip privacy → user agent → bots → campaign → referrer, run inline
// on the I/O thread that decoded the request, before the event is stored. Immutable after
// build() except for the geo databases (reopened in the background when their files change) and
// per-thread state (the user-agent cache, counters), which each thread creates on first use.
class pipeline {
  public:
    static constexpr std::uint32_t cost_sample_every = 8;

    // Loads every step's data (uap-core regexes, pattern and referrer files, .mmdb databases).
    // Relative paths start at base_dir. Problems go to errs; null when there are any.
    static std::unique_ptr<pipeline> build(const config::enrich_config& c,
                                           const std::string& base_dir,
                                           std::vector<std::string>& errs);
    ~pipeline();

    void run(const event_input& in, const request_input& req, event_output& out) const;

    // The anonymous-mode request header; empty when disabled.
    const std::string& anonymous_header() const noexcept { return anonymous_header_; }
    bool enabled(step s) const noexcept;

    // Checks the geo databases now (SIGHUP); true if one was reopened.
    bool reload();

    step_totals totals(step s) const;
    std::uint64_t bots(std::size_t reason) const;  // by bots::reason value

    // Exports the counters as switchyard_enrich_* metrics, refreshed on every scrape.
    void attach(telemetry::metrics& m);

    struct impl;
    struct thread_state;

  private:
    pipeline();
    thread_state& local() const;
    void emit_ua(const event_input& in, thread_state& ts, event_output& out) const;
    // The location/network members for one address (a cache miss).
    std::string geo_members(std::string_view ip, bool need_loc, bool need_net,
                            std::uint32_t fields) const;

    std::unique_ptr<impl> impl_;
    std::string anonymous_header_;
    std::uint64_t id_ = 0;
    mutable std::mutex mu_;
    mutable std::vector<std::unique_ptr<thread_state>> threads_;
};

}  // namespace switchyard::enrich
