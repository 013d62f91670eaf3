// Cost of identity stitching (src/identity) per event over the reference traffic mix
// (../shared/bench/make_payloads.py: 100,000 Segment events, about half carrying both a userId
// and an anonymousId drawn independently, 1% alias calls with a previousId), on an LMDB store in
// a temp dir, one thread, one event at a time in traffic order:
//
//   python3 /work/shared/bench/make_payloads.py /tmp/bp
//   export SWITCHYARD_BENCH_EVENTS=/tmp/bp/events_100k.ndjson
//   build/tests/switchyard_bench --benchmark_filter=Identity
//
// Without SWITCHYARD_BENCH_EVENTS the mix benchmarks are skipped (BM_IdentityMemoryPerMillionIds
// generates its own ids and always runs). SWITCHYARD_BENCH_TMPDIR (default $TMPDIR, else /tmp)
// is where the LMDB environments live: put it on the disk you care about for the sync=1 run.
//
// Every benchmark iteration is one pass over the whole mix; ns_per_event is wall time of the
// observe()/apply() calls divided by the events (setup and fresh stores excluded). Measurement
// only: nothing here asserts on a time.
#include "identity/graph.h"
#include "identity/service.h"
#include "identity/store.h"
#include "switchyard/event.h"

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <lmdb.h>
#include <malloc.h>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace switchyard;
using identity::graph;
using identity::graph_stats;
using identity::observation;
using identity::resolution;

struct id_event {
    event_type type = event_type::unknown;
    std::string message_id, user_id, anonymous_id, previous_id, device_id;
    std::string line;  // the event JSON as received
};

// The mix, or null when SWITCHYARD_BENCH_EVENTS is not set (or names nothing readable).
const std::vector<id_event>* events() {
    static const std::vector<id_event>* evs = []() -> const std::vector<id_event>* {
        const char* path = std::getenv("SWITCHYARD_BENCH_EVENTS");
        if (path == nullptr || *path == '\0') return nullptr;
        std::ifstream f(path);
        if (!f) return nullptr;
        auto* out = new std::vector<id_event>;
        std::string line;
        simdjson::dom::parser parser;
        while (std::getline(f, line)) {
            auto doc = parser.parse(line);
            if (doc.error()) continue;
            id_event e;
            std::string_view s;
            if (doc["type"].get(s) == simdjson::SUCCESS) e.type = event_type_from_string(s);
            if (doc["messageId"].get(s) == simdjson::SUCCESS) e.message_id = s;
            if (doc["userId"].get(s) == simdjson::SUCCESS) e.user_id = s;
            if (doc["anonymousId"].get(s) == simdjson::SUCCESS) e.anonymous_id = s;
            if (doc["previousId"].get(s) == simdjson::SUCCESS) e.previous_id = s;
            if (doc["context"]["device"]["id"].get(s) == simdjson::SUCCESS) e.device_id = s;
            e.line = std::move(line);
            out->push_back(std::move(e));
        }
        if (out->empty()) {
            delete out;
            return nullptr;
        }
        return out;
    }();
    return evs;
}

const std::vector<id_event>* events_or_skip(benchmark::State& state) {
    const auto* evs = events();
    if (evs == nullptr) {
        state.SkipWithError(
            "set SWITCHYARD_BENCH_EVENTS to events_100k.ndjson "
            "(python3 /work/shared/bench/make_payloads.py /tmp/bp)");
    }
    return evs;
}

observation observation_of(const id_event& e) {
    observation ob;
    ob.user_id = e.user_id;
    ob.anonymous_id = e.anonymous_id;
    ob.device_id = e.device_id;
    ob.previous_id = e.previous_id;
    return ob;
}

std::vector<observation> observations(const std::vector<id_event>& evs) {
    std::vector<observation> obs;
    obs.reserve(evs.size());
    for (const auto& e : evs) obs.push_back(observation_of(e));
    return obs;
}

// A fresh directory for one LMDB environment, removed with everything in it on destruction.
class temp_dir {
  public:
    temp_dir() {
        std::string parent = "/tmp";
        if (const char* p = std::getenv("SWITCHYARD_BENCH_TMPDIR"); p && *p) {
            parent = p;
        } else if (const char* t = std::getenv("TMPDIR"); t && *t) {
            parent = t;
        }
        std::string tmpl = parent + "/switchyard-idbench.XXXXXX";
        if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    bool ok() const { return !path_.empty(); }

  private:
    std::filesystem::path path_;
};

// An LMDB store in its own temp dir and a graph over it. Skips the benchmark when either fails.
struct bench_graph {
    temp_dir dir;
    std::shared_ptr<identity::store> store;
    std::unique_ptr<graph> g;

    bench_graph(benchmark::State& state, bool sync, std::size_t cache_size,
                std::uint64_t max_bytes = 1ull << 30) {
        if (!dir.ok()) {
            state.SkipWithError("cannot create a temp dir (SWITCHYARD_BENCH_TMPDIR)");
            return;
        }
        identity::lmdb_options o;
        o.dir = dir.path() / "identity";
        o.sync = sync;
        o.max_bytes = max_bytes;
        std::string err;
        store = identity::open_lmdb(o, err);
        if (!store) {
            state.SkipWithError(err.c_str());
            return;
        }
        identity::graph_options go;
        go.cache_size = cache_size;
        g = std::make_unique<graph>(store, go);
    }
    explicit operator bool() const { return g != nullptr; }
};

using bench_clock = std::chrono::steady_clock;

double ns_since(bench_clock::time_point t0) {
    return std::chrono::duration<double, std::nano>(bench_clock::now() - t0).count();
}

// One pass of observe() over the mix; returns its wall time in ns.
double observe_all(graph& g, const std::vector<observation>& obs, resolution& r) {
    const auto t0 = bench_clock::now();
    for (const auto& ob : obs) {
        g.observe(ob, r);
        benchmark::DoNotOptimize(r.person.data());
    }
    return ns_since(t0);
}

// Observes the mix until a pass makes no link and, when `until_cached`, reads nothing from the
// store: the first pass makes the links, and each link invalidates the cached lookups of every
// id of both persons, so the ids of persons merged late in that pass are read again in the
// next one. At most 4 passes.
void warm(graph& g, const std::vector<observation>& obs, resolution& r, bool until_cached) {
    for (int pass = 0; pass < 4; ++pass) {
        const auto s0 = g.stats();
        observe_all(g, obs, r);
        const auto s1 = g.stats();
        if (s1.links != s0.links) continue;
        if (!until_cached || s1.store_reads == s0.store_reads) return;
    }
}

graph_stats delta(const graph_stats& a, const graph_stats& b) {
    graph_stats d;
    d.lookups = b.lookups - a.lookups;
    d.cache_hits = b.cache_hits - a.cache_hits;
    d.store_reads = b.store_reads - a.store_reads;
    d.links = b.links - a.links;
    d.refused_max_user_ids = b.refused_max_user_ids - a.refused_max_user_ids;
    d.refused_max_ids = b.refused_max_ids - a.refused_max_ids;
    d.refused_too_long = b.refused_too_long - a.refused_too_long;
    d.errors = b.errors - a.errors;
    d.cache_entries = b.cache_entries;
    return d;
}

double ratio(std::uint64_t a, std::uint64_t b) {
    return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
}

// Counters shared by the observe benchmarks, over the timed passes only.
void report(benchmark::State& state, const graph_stats& d, double ns, std::uint64_t n_events) {
    state.SetItemsProcessed(static_cast<std::int64_t>(n_events));
    state.counters["ns_per_event"] = ns / static_cast<double>(n_events);
    state.counters["cache_hit_ratio"] = ratio(d.cache_hits, d.lookups);
    state.counters["lookups_per_event"] = ratio(d.lookups, n_events);
    state.counters["store_reads_per_event"] = ratio(d.store_reads, n_events);
    state.counters["links_per_pass"] = ratio(d.links, state.iterations());
    state.counters["refusals_per_pass"] =
        ratio(d.refused_max_user_ids + d.refused_max_ids + d.refused_too_long, state.iterations());
    state.counters["errors"] = static_cast<double>(d.errors);
    state.counters["cache_entries"] = static_cast<double>(d.cache_entries);
}

constexpr std::size_t default_cache = 200'000;  // identity.cache_size's default

// Steady state: every id of the mix was seen before and is cached (the default cache holds all
// of the mix's ids), so an event costs its cache lookups and no store I/O.
void BM_IdentityObserveHot(benchmark::State& state) {
    const auto* evs = events_or_skip(state);
    if (evs == nullptr) return;
    bench_graph bg(state, false, default_cache);
    if (!bg) return;
    const auto obs = observations(*evs);
    resolution r;
    warm(*bg.g, obs, r, true);
    const auto s0 = bg.g->stats();
    double ns = 0;
    for (auto _ : state) ns += observe_all(*bg.g, obs, r);
    report(state, delta(s0, bg.g->stats()), ns, state.iterations() * obs.size());
}

// The same steady state with a 64-entry cache (one entry per shard): lookups read LMDB (mmap,
// the pages are in the page cache). store_reads_per_event counts the graph's cold loads; each is
// one store get, two for a non-root id (its record, then its root's). A load decodes the root's
// whole member list: in this mix the 1% random aliases (exempt from max_user_ids_per_id) chain
// hundreds of users into one person that reaches max_ids_per_person (1,000 ids), and its ids
// are among the most frequent, so this figure is dominated by decoding that one record.
void BM_IdentityObserveCold(benchmark::State& state) {
    const auto* evs = events_or_skip(state);
    if (evs == nullptr) return;
    bench_graph bg(state, false, static_cast<std::size_t>(state.range(0)));
    if (!bg) return;
    const auto obs = observations(*evs);
    resolution r;
    warm(*bg.g, obs, r, false);
    const auto s0 = bg.g->stats();
    double ns = 0;
    for (auto _ : state) ns += observe_all(*bg.g, obs, r);
    report(state, delta(s0, bg.g->stats()), ns, state.iterations() * obs.size());
}

// First sight of the mix on an empty store, a fresh store per iteration: links are made (one
// LMDB write transaction per event that makes any), the user-id guard refuses the random
// anonymousId/userId pairs that would merge two users. sync=1 fsyncs every link commit.
void BM_IdentityObserveFirstPass(benchmark::State& state) {
    const auto* evs = events_or_skip(state);
    if (evs == nullptr) return;
    const bool sync = state.range(0) != 0;
    const auto obs = observations(*evs);
    resolution r;
    double ns = 0;
    graph_stats total;
    std::uint64_t bytes_used = 0, keys = 0;
    for (auto _ : state) {
        state.PauseTiming();
        {
            auto bg = std::make_unique<bench_graph>(state, sync, default_cache);
            if (!*bg) return;
            state.ResumeTiming();
            ns += observe_all(*bg->g, obs, r);
            state.PauseTiming();
            const auto s = bg->g->stats();
            total.lookups += s.lookups;
            total.cache_hits += s.cache_hits;
            total.store_reads += s.store_reads;
            total.links += s.links;
            total.refused_max_user_ids += s.refused_max_user_ids;
            total.refused_max_ids += s.refused_max_ids;
            total.refused_too_long += s.refused_too_long;
            total.errors += s.errors;
            total.cache_entries = s.cache_entries;
            const auto st = bg->store->stats();
            bytes_used = st.bytes_used;
            keys = st.keys;
        }  // store closed, temp dir removed
        state.ResumeTiming();
    }
    report(state, total, ns, state.iterations() * obs.size());
    state.counters["refused_max_user_ids_per_pass"] =
        ratio(total.refused_max_user_ids, state.iterations());
    state.counters["refused_max_ids_per_pass"] = ratio(total.refused_max_ids, state.iterations());
    state.counters["store_keys"] = static_cast<double>(keys);
    state.counters["store_bytes_used"] = static_cast<double>(bytes_used);
}

// service::apply as the Segment handler calls it at admission: resolve the person, write
// context.identity into the event JSON, encode an identity_link record per link made. Steady
// state (the mix applied once before); each event's JSON is restored, untimed, before each pass.
// first_pass_ns_per_event is the warm-up pass on the empty store (links made, records encoded).
void BM_IdentityServiceApply(benchmark::State& state) {
    const auto* evs = events_or_skip(state);
    if (evs == nullptr) return;
    temp_dir dir;
    if (!dir.ok()) {
        state.SkipWithError("cannot create a temp dir (SWITCHYARD_BENCH_TMPDIR)");
        return;
    }
    identity::service_options so;
    so.backend = "lmdb";
    so.lmdb.dir = dir.path() / "identity";
    so.lmdb.sync = false;
    so.audit_file = dir.path() / "identity" / "deletions.ndjson";
    std::string err;
    auto svc = identity::service::open(so, err);
    if (!svc) {
        state.SkipWithError(err.c_str());
        return;
    }
    std::vector<event> batch(evs->size());
    std::vector<observation> obs(evs->size());
    const std::int64_t received = 1'795'000'000'000;
    for (std::size_t i = 0; i < evs->size(); ++i) {
        const auto& e = (*evs)[i];
        auto& h = batch[i].header;
        h.type = e.type;
        h.received_at_ms = received;
        h.source = "bench";
        h.message_id = e.message_id;
        h.user_id = e.user_id;
        h.anonymous_id = e.anonymous_id;
        batch[i].json = e.line;
        obs[i] = observation_of(e);
        obs[i].user_id = h.user_id;
        obs[i].anonymous_id = h.anonymous_id;
    }
    resolution r;
    std::vector<std::string> links;
    std::uint64_t link_records = 0, json_bytes = 0;
    auto apply_all = [&] {
        const auto t0 = bench_clock::now();
        for (std::size_t i = 0; i < batch.size(); ++i) {
            links.clear();
            svc->apply(batch[i], obs[i], r, links);
            link_records += links.size();
            benchmark::DoNotOptimize(batch[i].json.data());
        }
        return ns_since(t0);
    };
    auto restore = [&] {
        for (std::size_t i = 0; i < batch.size(); ++i) batch[i].json.assign((*evs)[i].line);
    };
    const double first_ns = apply_all();
    const std::uint64_t first_links = link_records;
    for (const auto& e : batch) json_bytes += e.json.size();
    restore();
    apply_all();  // re-reads the ids whose cached lookups the first pass's links invalidated
    const auto s0 = svc->ids().stats();
    link_records = 0;
    double ns = 0;
    for (auto _ : state) {
        state.PauseTiming();
        restore();
        state.ResumeTiming();
        ns += apply_all();
    }
    std::uint64_t in_bytes = 0;
    for (const auto& e : *evs) in_bytes += e.line.size();
    const std::uint64_t n = state.iterations() * batch.size();
    report(state, delta(s0, svc->ids().stats()), ns, n);
    state.counters["first_pass_ns_per_event"] = first_ns / static_cast<double>(batch.size());
    state.counters["first_pass_link_records"] = static_cast<double>(first_links);
    state.counters["link_records_per_pass"] = ratio(link_records, state.iterations());
    state.counters["json_bytes_added_per_event"] =
        static_cast<double>(json_bytes - in_bytes) / static_cast<double>(batch.size());
}

// /proc/self/status fields, in kB (0 when absent).
struct rss_kb {
    long vm_rss = 0, rss_anon = 0, rss_file = 0;
};

rss_kb read_rss() {
    rss_kb r;
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line)) {
        auto field = [&](const char* name, long& v) {
            const std::string_view l(line);
            const std::string_view n(name);
            if (l.substr(0, n.size()) == n) v = std::strtol(line.c_str() + n.size(), nullptr, 10);
        };
        field("VmRSS:", r.vm_rss);
        field("RssAnon:", r.rss_anon);
        field("RssFile:", r.rss_file);
    }
    return r;
}

// What an LMDB environment's pages hold, read directly (the environment must be closed in this
// process: LMDB allows one open per process): the B-tree of the data (branch, leaf and overflow
// pages) and the pages on the free list. store::stats().bytes_used is the file's high-water mark
// (last page number + 1), so it also counts the free pages.
struct lmdb_pages {
    std::uint64_t tree_bytes = 0, free_bytes = 0;
};

lmdb_pages lmdb_tree(const std::filesystem::path& dir) {
    lmdb_pages out;
    MDB_env* env = nullptr;
    if (mdb_env_create(&env) != 0) return out;
    MDB_txn* t = nullptr;
    if (mdb_env_set_mapsize(env, 4ull << 30) == 0 &&
        mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0) == 0 &&
        mdb_txn_begin(env, nullptr, MDB_RDONLY, &t) == 0) {
        MDB_dbi main_dbi;
        MDB_stat ms;
        if (mdb_dbi_open(t, nullptr, 0, &main_dbi) == 0 && mdb_stat(t, main_dbi, &ms) == 0) {
            out.tree_bytes = static_cast<std::uint64_t>(ms.ms_branch_pages + ms.ms_leaf_pages +
                                                        ms.ms_overflow_pages) *
                             ms.ms_psize;
            // The free list (dbi 0): each value is a page-number list, its count first.
            MDB_cursor* c = nullptr;
            std::uint64_t free_pages = 0;
            if (mdb_cursor_open(t, 0, &c) == 0) {
                MDB_val k, v;
                while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
                    std::size_t n = 0;
                    std::memcpy(&n, v.mv_data, sizeof n);
                    free_pages += n;
                }
                mdb_cursor_close(c);
            }
            out.free_bytes = free_pages * ms.ms_psize;
        }
        mdb_txn_abort(t);
    }
    mdb_env_close(env);
    return out;
}

// Links 1,000,000 distinct (anonymousId, userId) pairs — 2,000,000 ids, shaped like the mix's
// (a UUID v4 and "u_" + 7 digits) — through observe() with a 64-entry cache, then measures:
//  (a) the LMDB space they take, per million ids: store stats bytes_used (the file's high-water
//      mark) and the B-tree's own pages (tree_MB_per_M_ids; the rest is LMDB's free list);
//  (b) the memory of a graph whose cache holds 1,000,000 of those ids (person_key() on the 500,000
//      first pairs' two ids): VmRSS, RssAnon and RssFile growth from before the graph is built
//      (so the cache's fixed rings count) to after the lookups, per million cached entries.
//      RssAnon is the cache itself; RssFile is the LMDB pages the lookups mapped (page cache,
//      shared and reclaimable), which VmRSS also includes.
// One iteration; its time is the link phase (ns_per_link) plus the lookups.
void BM_IdentityMemoryPerMillionIds(benchmark::State& state) {
    constexpr std::size_t pairs = 1'000'000;
    constexpr std::size_t cached_target = 1'000'000;
    std::vector<std::string> anon(pairs), user(pairs);
    {
        std::mt19937_64 rng(20261122);
        for (std::size_t i = 0; i < pairs; ++i) {
            const std::uint64_t hi = rng(), lo = rng();
            anon[i] = fmt::format("{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}", hi >> 32,
                                  (hi >> 16) & 0xffff, hi & 0xfff, 8 | ((lo >> 62) & 3),
                                  (lo >> 48) & 0xfff, lo & 0xffffffffffffull);
            user[i] = fmt::format("u_{:07d}", i);
        }
    }
    for (auto _ : state) {
        // Room for ~300 B per id, ×2 for LMDB's copy-on-write pages.
        bench_graph bg(state, false, 64, 4ull << 30);
        if (!bg) return;
        resolution r;
        const auto t0 = bench_clock::now();
        for (std::size_t i = 0; i < pairs; ++i) {
            observation ob;
            ob.user_id = user[i];
            ob.anonymous_id = anon[i];
            bg.g->observe(ob, r);
        }
        const double link_ns = ns_since(t0);
        const auto ls = bg.g->stats();
        const auto st = bg.store->stats();
        bg.g.reset();
        ::malloc_trim(0);  // give back what the link phase freed, so (b) counts only the cache

        rss_kb before, after;
        graph_stats gs;
        std::uint64_t lookup_errors = 0;
        {
            before = read_rss();
            identity::graph_options go;
            go.cache_size = cached_target + cached_target / 5;  // no shard overflows: all 1M stay
            graph g(bg.store, go);
            for (std::size_t i = 0; i < cached_target / 2; ++i) {
                auto pa = g.person_key(identity::make_key(identity::id_type::anonymous, anon[i]));
                auto pu = g.person_key(identity::make_key(identity::id_type::user, user[i]));
                lookup_errors += !pa + !pu;
                benchmark::DoNotOptimize(pa);
                benchmark::DoNotOptimize(pu);
            }
            after = read_rss();
            gs = g.stats();
        }
        bg.store.reset();  // closes the environment: lmdb_tree() may open it
        const auto tree = lmdb_tree(bg.dir.path() / "identity");

        const double ids_m = static_cast<double>(st.keys) / 1e6;
        const double cached_m = static_cast<double>(gs.cache_entries) / 1e6;
        auto mb_per_m_ids = [&](std::uint64_t bytes) {
            return ids_m == 0 ? 0 : static_cast<double>(bytes) / 1e6 / ids_m;
        };
        state.counters["ns_per_link"] = link_ns / static_cast<double>(pairs);
        state.counters["links"] = static_cast<double>(ls.links);
        state.counters["link_errors"] = static_cast<double>(ls.errors);
        state.counters["store_keys"] = static_cast<double>(st.keys);
        state.counters["store_bytes_used"] = static_cast<double>(st.bytes_used);
        state.counters["store_MB_per_M_ids"] = mb_per_m_ids(st.bytes_used);
        state.counters["tree_MB_per_M_ids"] = mb_per_m_ids(tree.tree_bytes);
        state.counters["free_pages_MB"] = static_cast<double>(tree.free_bytes) / 1e6;
        state.counters["cache_entries"] = static_cast<double>(gs.cache_entries);
        state.counters["cache_store_reads"] = static_cast<double>(gs.store_reads);
        state.counters["lookup_errors"] = static_cast<double>(lookup_errors);
        auto per_m = [&](long kb_after, long kb_before) {
            return cached_m == 0 ? 0 : static_cast<double>(kb_after - kb_before) / 1024 / cached_m;
        };
        state.counters["VmRSS_MiB_per_M_cached"] = per_m(after.vm_rss, before.vm_rss);
        state.counters["RssAnon_MiB_per_M_cached"] = per_m(after.rss_anon, before.rss_anon);
        state.counters["RssFile_MiB_per_M_cached"] = per_m(after.rss_file, before.rss_file);
    }
}

BENCHMARK(BM_IdentityObserveHot)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_IdentityObserveCold)
    ->ArgName("cache")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_IdentityObserveFirstPass)
    ->ArgName("sync")
    ->Arg(0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
// Link-heavy and fsync-bound: one pass (on a disk, not tmpfs, for a meaningful figure).
BENCHMARK(BM_IdentityObserveFirstPass)
    ->ArgName("sync")
    ->Arg(1)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_IdentityServiceApply)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_IdentityMemoryPerMillionIds)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
