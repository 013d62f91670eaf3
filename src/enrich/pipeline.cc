#include "enrich/pipeline.h"

#include "enrich/bots/bots.h"
#include "enrich/cache.h"
#include "enrich/campaign/campaign.h"
#include "enrich/geo/geo.h"
#include "enrich/ua/ua_parser.h"
#include "telemetry/metrics.h"
#include "util/embedded.h"
#include "util/json.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>

namespace switchyard::enrich {

namespace {

constexpr std::size_t bot_reasons = 6;  // bots::reason values

enum counter : std::size_t { c_hit, c_miss, c_skip, c_cache_hit, c_cache_miss, c_timed, c_nanos };
constexpr std::size_t counter_count = 7;

std::string resolve(const std::string& base_dir, const std::string& p) {
    if (p.empty() || std::filesystem::path(p).is_absolute()) return p;
    return (std::filesystem::path(base_dir) / p).string();
}

std::atomic<std::uint64_t> next_id{1};

// Only the owning thread writes a counter; a plain load+store avoids a locked instruction.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// A parsed user agent, with the JSON the stage appends for it rendered once.
struct ua_entry {
    ua::result parsed;
    bool parsed_ok = false;
    std::string browser, os, device;  // ",\"browser\":{...}" etc.; empty: nothing to add
    bots::verdict bot;
    std::string bot_json;  // ",\"bot\":{...}"
};

void render_ua(const ua::result& r, ua_entry& e) {
    e.browser.clear();
    e.os.clear();
    e.device.clear();
    e.browser = ",\"browser\":{\"family\":";
    util::append_json_string(e.browser, r.browser_family);
    if (auto v = ua::browser_version(r); !v.empty()) {
        e.browser += ",\"version\":";
        util::append_json_string(e.browser, v);
    }
    e.browser += '}';
    e.os = ",\"os\":{\"name\":";
    util::append_json_string(e.os, r.os_family);
    if (auto v = ua::os_version(r); !v.empty()) {
        e.os += ",\"version\":";
        util::append_json_string(e.os, v);
    }
    e.os += '}';
    bool type = !r.device_type.empty() && r.device_type != "unknown";
    if (type || !r.device_brand.empty() || !r.device_model.empty()) {
        e.device = ",\"device\":{";
        bool first = true;
        auto member = [&](std::string_view k, const std::string& v) {
            if (v.empty()) return;
            if (!first) e.device += ',';
            first = false;
            util::append_json_string(e.device, k);
            e.device += ':';
            util::append_json_string(e.device, v);
        };
        if (type) member("type", r.device_type);
        member("brand", r.device_brand);
        member("model", r.device_model);
        e.device += '}';
    }
}

void render_bot(const bots::verdict& v, std::string& out) {
    out = v.is_bot ? ",\"bot\":{\"is_bot\":true,\"reason\":" : ",\"bot\":{\"is_bot\":false";
    if (v.is_bot) {
        util::append_json_string(out, bots::to_string(v.why));
        if (!v.name.empty()) {
            out += ",\"name\":";
            util::append_json_string(out, v.name);
        }
    }
    out += '}';
}

void append_member(std::string& out, std::string_view key, std::string_view value) {
    if (value.empty()) return;
    if (out.back() != '{') out += ',';
    util::append_json_string(out, key);
    out += ':';
    util::append_json_string(out, value);
}

}  // namespace

struct pipeline::impl {
    config::enrich_config cfg;
    bool on[step_count] = {};
    std::shared_ptr<const ua::parser> ua;
    std::unique_ptr<bots::detector> bots;
    std::unique_ptr<geo::reloading_database> city, asn;
    std::uint32_t geo_fields = 0, anonymous_fields = 0;
    std::unique_ptr<referrer_classifier> referrers;
    std::size_t ua_max_length = 1024;
    // Values already exported to Prometheus, so each scrape adds the difference.
    struct exported {
        step_totals steps[step_count];
        std::uint64_t bots[bot_reasons] = {};
        std::uint64_t reloads[2] = {}, failures[2] = {};
    };
    std::mutex export_mu;
    exported last;
};

struct pipeline::thread_state {
    thread_state(std::size_t cache_size, std::size_t geo_cache_size)
        : cache(cache_size), geo_cache(geo_cache_size) {}
    std::atomic<std::uint64_t> counters[step_count][counter_count] = {};
    std::atomic<std::uint64_t> bots[bot_reasons] = {};
    s3fifo_cache<ua_entry> cache;
    // Rendered geo members by address (key: a mode byte, then the address), emptied when a
    // database is reopened (geo_generation: the sum of both databases' reload counts).
    s3fifo_cache<std::string> geo_cache;
    std::uint64_t geo_generation = 0;
    ua_entry scratch;  // for client hints: the cached entry refined for one event
    std::uint32_t tick = 0;
};

std::string_view to_string(step s) noexcept {
    switch (s) {
        case step::geo:
            return "geo";
        case step::ip:
            return "ip";
        case step::user_agent:
            return "user_agent";
        case step::bots:
            return "bots";
        case step::campaign:
            return "campaign";
        case step::referrer:
            return "referrer";
    }
    return "unknown";
}

pipeline::pipeline() : impl_(std::make_unique<impl>()), id_(next_id.fetch_add(1)) {}
pipeline::~pipeline() = default;

std::unique_ptr<pipeline> pipeline::build(const config::enrich_config& c,
                                          const std::string& base_dir,
                                          std::vector<std::string>& errs) {
    std::unique_ptr<pipeline> p(new pipeline());
    auto& m = *p->impl_;
    m.cfg = c;
    p->anonymous_header_ = c.anonymous_header;
    std::size_t errors_before = errs.size();
    if (!c.enabled) return p;

    m.on[static_cast<int>(step::ip)] = true;
    m.ua_max_length = c.user_agent.max_length.bytes;
    if (c.user_agent.enabled) {
        std::string err;
        ua::options o;
        o.max_length = m.ua_max_length;
        m.ua = ua::parser::load(resolve(base_dir, c.user_agent.regexes), o, err);
        if (!m.ua) {
            errs.push_back("enrich.user_agent.regexes: " + err);
        } else {
            m.on[static_cast<int>(step::user_agent)] = true;
        }
    }
    if (c.bots.enabled) {
        std::string err;
        m.bots = c.bots.patterns.empty()
                     ? bots::detector::from_text(embedded::crawlers_tsv, c.bots.extra_patterns, err)
                     : bots::detector::load(resolve(base_dir, c.bots.patterns),
                                            c.bots.extra_patterns, err);
        if (!m.bots) {
            errs.push_back("enrich.bots: " + err);
        } else {
            m.on[static_cast<int>(step::bots)] = true;
        }
    }
    auto fields = [&](const std::vector<std::string>& names, std::string_view key) {
        std::uint32_t mask = 0;
        for (const auto& n : names) {
            auto f = geo::field_from_name(n);
            if (!f || (*f & (geo::asn | geo::as_organization))) {
                errs.push_back(fmt::format("enrich.geo.{}: unknown field '{}'", key, n));
                continue;
            }
            mask |= *f;
        }
        return mask;
    };
    m.geo_fields = fields(c.geo.fields, "fields");
    m.anonymous_fields = fields(c.geo.anonymous_fields, "anonymous_fields") & m.geo_fields;
    if (!c.geo.database.empty()) {
        std::string err;
        m.city = geo::reloading_database::open(resolve(base_dir, c.geo.database),
                                               c.geo.check_interval, err);
        if (!m.city) errs.push_back("enrich.geo.database: " + err);
    }
    if (!c.geo.asn_database.empty()) {
        std::string err;
        m.asn = geo::reloading_database::open(resolve(base_dir, c.geo.asn_database),
                                              c.geo.check_interval, err);
        if (!m.asn) errs.push_back("enrich.geo.asn_database: " + err);
    }
    m.on[static_cast<int>(step::geo)] = m.city || m.asn;
    m.on[static_cast<int>(step::campaign)] = c.campaign.enabled;
    if (c.referrer.enabled) {
        std::string err;
        m.referrers = c.referrer.data.empty()
                          ? referrer_classifier::from_text(embedded::referrers_tsv, err)
                          : referrer_classifier::load(resolve(base_dir, c.referrer.data), err);
        if (!m.referrers) {
            errs.push_back("enrich.referrer.data: " + err);
        } else {
            m.on[static_cast<int>(step::referrer)] = true;
        }
    }
    if (errs.size() != errors_before) return nullptr;
    return p;
}

bool pipeline::enabled(step s) const noexcept { return impl_->on[static_cast<int>(s)]; }

pipeline::thread_state& pipeline::local() const {
    // A thread may meet several pipelines (tests build many); the usual case is one.
    thread_local std::vector<std::pair<std::uint64_t, thread_state*>> mine;
    for (auto& [id, st] : mine)
        if (id == id_) return *st;
    auto st =
        std::make_unique<thread_state>(impl_->cfg.user_agent.cache_size, impl_->cfg.geo.cache_size);
    auto* raw = st.get();
    {
        std::lock_guard lk(mu_);
        threads_.push_back(std::move(st));
    }
    mine.emplace_back(id_, raw);
    return *raw;
}

std::string pipeline::geo_members(std::string_view ip, bool need_loc, bool need_net,
                                  std::uint32_t fields) const {
    const auto& m = *impl_;
    std::string out;
    geo::location loc;
    if (need_loc && fields != 0) {
        auto db = m.city->current();
        if (db && db->lookup(ip, fields, loc)) {
            out += ",\"location\":{";
            if (geo::append_location_members(loc, fields, out) > 0) {
                out += '}';
            } else {
                out.clear();
            }
        }
    }
    if (need_net) {
        loc = geo::location{};
        auto db = m.asn->current();
        if (db && db->lookup(ip, geo::asn | geo::as_organization, loc) && loc.asn != 0) {
            out += fmt::format(",\"network\":{{\"asn\":{}", loc.asn);
            if (!loc.as_organization.empty()) {
                out += ",\"organization\":";
                util::append_json_string(out, loc.as_organization);
            }
            out += '}';
        }
    }
    return out;
}

void pipeline::emit_ua(const event_input& in, thread_state& ts, event_output& out) const {
    const auto& m = *impl_;
    auto& ua_c = ts.counters[static_cast<int>(step::user_agent)];
    auto& bot_c = ts.counters[static_cast<int>(step::bots)];
    const bool ua_on = m.on[static_cast<int>(step::user_agent)];
    const bool bots_on = m.on[static_cast<int>(step::bots)];
    if (!in.has_user_agent) {
        if (ua_on) bump(ua_c[c_skip]);
        if (bots_on) bump(bot_c[c_skip]);
        return;
    }
    std::string_view key = in.user_agent.substr(0, m.ua_max_length);
    auto& cache_c = ua_on ? ua_c : bot_c;
    const ua_entry* e = ts.cache.find(key);
    if (e != nullptr) {
        bump(cache_c[c_cache_hit]);
    } else {
        bump(cache_c[c_cache_miss]);
        ua_entry fresh;
        if (ua_on) {
            fresh.parsed = m.ua->parse(key);
            fresh.parsed_ok = true;
            render_ua(fresh.parsed, fresh);
        }
        if (bots_on) {
            fresh.bot = m.bots->check(key, fresh.parsed_ok && fresh.parsed.spider());
            render_bot(fresh.bot, fresh.bot_json);
        }
        e = &ts.cache.insert(key, std::move(fresh));
    }
    if (ua_on) {
        const ua_entry* u = e;
        if (in.has_user_agent_data && m.cfg.user_agent.client_hints) {
            ts.scratch.parsed = e->parsed;
            if (ua::apply_client_hints(in.user_agent_data, ts.scratch.parsed)) {
                render_ua(ts.scratch.parsed, ts.scratch);
                u = &ts.scratch;
            }
        }
        bool added = false;
        if (!in.has_browser) {
            out.members += u->browser;
            added = true;
        }
        if (!in.has_os) {
            out.members += u->os;
            added = true;
        }
        if (!in.has_device && !u->device.empty()) {
            out.members += u->device;
            added = true;
        }
        if (!added) {
            bump(ua_c[c_skip]);
        } else {
            bump(ua_c[u->parsed.browser_family == "Other" ? c_miss : c_hit]);
        }
    }
    if (bots_on) {
        if (in.has_bot) {
            bump(bot_c[c_skip]);
        } else {
            out.members += e->bot_json;
            out.is_bot = e->bot.is_bot;
            bump(bot_c[e->bot.is_bot ? c_hit : c_miss]);
            if (e->bot.is_bot) bump(ts.bots[static_cast<std::size_t>(e->bot.why)]);
        }
    }
}

void pipeline::run(const event_input& in, const request_input& req, event_output& out) const {
    const auto& m = *impl_;
    if (!m.cfg.enabled) return;
    auto& ts = local();
    const bool timed = (++ts.tick % cost_sample_every) == 0;
    using clock = std::chrono::steady_clock;
    clock::time_point t0;
    if (timed) t0 = clock::now();
    auto lap = [&](step s) {
        if (!timed) return;
        auto t1 = clock::now();
        auto& c = ts.counters[static_cast<int>(s)];
        bump(c[c_timed]);
        bump(c[c_nanos],
             static_cast<std::uint64_t>(
                 std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
        t0 = t1;
    };
    const auto mode = req.policy ? req.policy->ip : privacy::ip_mode::keep;

    // 1. geo, on the address as received (before the privacy step changes it).
    if (m.on[static_cast<int>(step::geo)]) {
        auto& c = ts.counters[static_cast<int>(step::geo)];
        bool need_loc = m.city && !in.has_location;
        bool need_net = m.asn && !in.has_network && !req.anonymous;
        std::uint32_t fields = req.anonymous ? m.anonymous_fields : m.geo_fields;
        if (in.ip.empty() || (!need_loc && !need_net) || (need_loc && fields == 0 && !need_net)) {
            bump(c[c_skip]);
        } else {
            std::uint64_t gen = (m.city ? m.city->reloads() : 0) + (m.asn ? m.asn->reloads() : 0);
            if (gen != ts.geo_generation) {
                ts.geo_cache.clear();
                ts.geo_generation = gen;
            }
            thread_local std::string key;
            key.assign(1, static_cast<char>('0' + (req.anonymous ? 4 : 0) + (need_loc ? 2 : 0) +
                                            (need_net ? 1 : 0)));
            key.append(in.ip.substr(0, 64));
            const std::string* cached = ts.geo_cache.find(key);
            if (cached != nullptr) {
                bump(c[c_cache_hit]);
            } else {
                bump(c[c_cache_miss]);
                cached = &ts.geo_cache.insert(key, geo_members(in.ip, need_loc, need_net, fields));
            }
            out.members += *cached;
            bump(c[cached->empty() ? c_miss : c_hit]);
        }
        lap(step::geo);
    }

    // 2. ip privacy.
    {
        auto& c = ts.counters[static_cast<int>(step::ip)];
        if (req.anonymous || mode == privacy::ip_mode::remove) {
            out.rewrite_ip = true;
            bump(c[in.ip.empty() ? c_skip : c_hit]);
        } else if (mode == privacy::ip_mode::truncate) {
            out.rewrite_ip = true;
            if (in.ip.empty()) {
                bump(c[c_skip]);
            } else {
                out.ip = privacy::truncate_ip(in.ip);  // empty for a non-address: removed
                bump(c[c_hit]);
            }
        } else {
            bump(c[c_skip]);
        }
        lap(step::ip);
    }

    // 3 and 4. user agent and bots share one cache entry per user agent.
    if (m.on[static_cast<int>(step::user_agent)] || m.on[static_cast<int>(step::bots)]) {
        emit_ua(in, ts, out);
        lap(m.on[static_cast<int>(step::user_agent)] ? step::user_agent : step::bots);
    }

    // 5. campaign. The referrer step reads the same parameters (paid and email markers).
    std::string_view campaign_src = !in.page_url.empty() ? in.page_url : in.page_search;
    const bool want_referrer = m.on[static_cast<int>(step::referrer)] && !in.has_referrer &&
                               (!in.page_referrer.empty() || !in.page_url.empty());
    const bool want_campaign =
        m.on[static_cast<int>(step::campaign)] && !in.has_campaign && !campaign_src.empty();
    thread_local campaign_info info;
    if (want_campaign || want_referrer) info = parse_campaign(campaign_src);
    if (m.on[static_cast<int>(step::campaign)]) {
        auto& c = ts.counters[static_cast<int>(step::campaign)];
        if (!want_campaign) {
            bump(c[c_skip]);
        } else {
            if (info.empty()) {
                bump(c[c_miss]);
            } else {
                auto& j = out.members;
                j += ",\"campaign\":{";
                append_member(j, "name", info.name);
                append_member(j, "source", info.source);
                append_member(j, "medium", info.medium);
                append_member(j, "term", info.term);
                append_member(j, "content", info.content);
                append_member(j, "id", info.id);
                if (!info.click_ids.empty()) {
                    if (j.back() != '{') j += ',';
                    j += "\"click_ids\":{";
                    for (const auto& [k, v] : info.click_ids) append_member(j, k, v);
                    j += '}';
                }
                j += '}';
                bump(c[c_hit]);
            }
        }
        lap(step::campaign);
    }

    // 6. referrer.
    if (m.on[static_cast<int>(step::referrer)]) {
        auto& c = ts.counters[static_cast<int>(step::referrer)];
        if (!want_referrer) {
            bump(c[c_skip]);
        } else {
            auto r = m.referrers->classify(in.page_referrer, in.page_url, info,
                                           m.cfg.referrer.internal_hosts);
            if (r.medium == referrer_medium::unknown && r.source.empty()) {
                bump(c[c_miss]);
            } else {
                auto& j = out.members;
                j += ",\"referrer\":{\"medium\":";
                util::append_json_string(j, to_string(r.medium));
                append_member(j, "source", r.source);
                j += '}';
                bump(c[c_hit]);
            }
        }
        lap(step::referrer);
    }
}

bool pipeline::reload() {
    bool any = false;
    if (impl_->city) any |= impl_->city->reload();
    if (impl_->asn) any |= impl_->asn->reload();
    return any;
}

step_totals pipeline::totals(step s) const {
    step_totals t;
    std::lock_guard lk(mu_);
    for (const auto& ts : threads_) {
        const auto& c = ts->counters[static_cast<int>(s)];
        t.hits += c[c_hit].load(std::memory_order_relaxed);
        t.misses += c[c_miss].load(std::memory_order_relaxed);
        t.skipped += c[c_skip].load(std::memory_order_relaxed);
        t.cache_hits += c[c_cache_hit].load(std::memory_order_relaxed);
        t.cache_misses += c[c_cache_miss].load(std::memory_order_relaxed);
        t.timed += c[c_timed].load(std::memory_order_relaxed);
        t.nanos += c[c_nanos].load(std::memory_order_relaxed);
    }
    return t;
}

std::uint64_t pipeline::bots(std::size_t reason) const {
    if (reason >= bot_reasons) return 0;
    std::uint64_t n = 0;
    std::lock_guard lk(mu_);
    for (const auto& ts : threads_) n += ts->bots[reason].load(std::memory_order_relaxed);
    return n;
}

void pipeline::attach(telemetry::metrics& metrics) {
    auto& events = metrics.counters("switchyard_enrich_events_total",
                                    "Events seen by each enrichment step, by result: hit (added "
                                    "something), miss (nothing found), skipped (no input, or the "
                                    "SDK had set the field).");
    auto& cache = metrics.counters("switchyard_enrich_cache_lookups_total",
                                   "Per-thread cache lookups (user_agent, geo), by result.");
    auto& ratio = metrics.gauges("switchyard_enrich_cache_hit_ratio",
                                 "Cache hits over lookups since start, per step.");
    auto m_on = [this](step s) { return impl_->on[static_cast<int>(s)]; };
    auto& cost = metrics.counters("switchyard_enrich_cost_seconds_total",
                                  "Time spent in each step over the timed events (1 in 8); "
                                  "divide by switchyard_enrich_cost_samples_total for the mean.");
    auto& samples = metrics.counters("switchyard_enrich_cost_samples_total",
                                     "Events whose enrichment cost was timed (1 in 8).");
    auto& bot_family =
        metrics.counters("switchyard_enrich_bots_total", "Events flagged as bots, by reason.");
    auto& reloads = metrics.counters("switchyard_enrich_geo_reloads_total",
                                     "Geo databases reopened after their file changed, by "
                                     "database and result (ok, failed: the old one stays).");
    struct handles {
        prometheus::Counter* ev[step_count][3];
        prometheus::Counter* cost[step_count];
        prometheus::Counter* samples[step_count];
        prometheus::Counter* cache_hit[step_count] = {};  // null: the step has no cache
        prometheus::Counter* cache_miss[step_count] = {};
        prometheus::Gauge* ratio[step_count] = {};
        prometheus::Counter* bots[bot_reasons];
        prometheus::Counter *reload_ok[2], *reload_failed[2];
    };
    auto h = std::make_shared<handles>();
    for (std::size_t s = 0; s < step_count; ++s) {
        std::string name(to_string(static_cast<step>(s)));
        h->ev[s][0] = &events.Add({{"step", name}, {"result", "hit"}});
        h->ev[s][1] = &events.Add({{"step", name}, {"result", "miss"}});
        h->ev[s][2] = &events.Add({{"step", name}, {"result", "skipped"}});
        h->cost[s] = &cost.Add({{"step", name}});
        h->samples[s] = &samples.Add({{"step", name}});
    }
    // The user-agent cache serves the bots step too; its lookups count under whichever runs.
    const auto ua_owner = m_on(step::user_agent) ? step::user_agent : step::bots;
    for (step s : {ua_owner, step::geo}) {
        auto i = static_cast<std::size_t>(s);
        std::string name(to_string(s));
        h->cache_hit[i] = &cache.Add({{"step", name}, {"result", "hit"}});
        h->cache_miss[i] = &cache.Add({{"step", name}, {"result", "miss"}});
        h->ratio[i] = &ratio.Add({{"step", name}});
    }
    for (std::size_t r = 1; r < bot_reasons; ++r) {
        h->bots[r] = &bot_family.Add(
            {{"reason", std::string(bots::to_string(static_cast<bots::reason>(r)))}});
    }
    const char* dbs[2] = {"city", "asn"};
    for (int d = 0; d < 2; ++d) {
        h->reload_ok[d] = &reloads.Add({{"database", dbs[d]}, {"result", "ok"}});
        h->reload_failed[d] = &reloads.Add({{"database", dbs[d]}, {"result", "failed"}});
    }
    metrics.on_scrape([this, h] {
        auto& m = *impl_;
        std::lock_guard lk(m.export_mu);
        auto add = [](prometheus::Counter* c, std::uint64_t now, std::uint64_t& last) {
            if (now > last) c->Increment(static_cast<double>(now - last));
            last = now;
        };
        for (std::size_t s = 0; s < step_count; ++s) {
            auto t = totals(static_cast<step>(s));
            auto& l = m.last.steps[s];
            add(h->ev[s][0], t.hits, l.hits);
            add(h->ev[s][1], t.misses, l.misses);
            add(h->ev[s][2], t.skipped, l.skipped);
            add(h->samples[s], t.timed, l.timed);
            if (t.nanos > l.nanos)
                h->cost[s]->Increment(static_cast<double>(t.nanos - l.nanos) / 1e9);
            l.nanos = t.nanos;
            if (h->cache_hit[s] != nullptr) {
                add(h->cache_hit[s], t.cache_hits, l.cache_hits);
                add(h->cache_miss[s], t.cache_misses, l.cache_misses);
                auto n = static_cast<double>(t.cache_hits + t.cache_misses);
                h->ratio[s]->Set(n > 0 ? static_cast<double>(t.cache_hits) / n : 0.0);
            }
        }
        for (std::size_t r = 1; r < bot_reasons; ++r) add(h->bots[r], bots(r), m.last.bots[r]);
        const geo::reloading_database* d[2] = {m.city.get(), m.asn.get()};
        for (int i = 0; i < 2; ++i) {
            if (!d[i]) continue;
            add(h->reload_ok[i], d[i]->reloads(), m.last.reloads[i]);
            add(h->reload_failed[i], d[i]->reload_failures(), m.last.failures[i]);
        }
    });
}

}  // namespace switchyard::enrich
