#pragma once

#include "identity/audit.h"
#include "identity/graph.h"
#include "identity/store.h"
#include "identity/suppression.h"
#include "switchyard/event.h"

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace switchyard::identity {

struct service_options {
    std::string backend = "lmdb";  // lmdb | redis
    lmdb_options lmdb;
    redis_options redis;
    graph_options graph;
    bool link_device_ids = true;  // context.device.id joins the graph
    std::chrono::milliseconds suppression_refresh{2000};
    std::chrono::milliseconds sweep_interval{std::chrono::minutes(10)};
    std::filesystem::path audit_file;  // deletion audit trail
};

// The identity stage: graph + suppression list + deletion audit over one store, and the
// background thread that refreshes the suppression list (changes made on other nodes) and
// applies the retention policy.
class service {
  public:
    // Opens the store and loads the suppression list and the audit trail. On failure returns
    // nullptr and sets `err` to a sentence naming what failed.
    static std::unique_ptr<service> open(const service_options& o, std::string& err);
    ~service();

    void start();  // the background thread
    void stop();

    // True when any id of the event, or its person, is on the suppression list. Cheap when the
    // list is empty.
    bool suppressed(const observation& ob);

    // Resolves the event's person (making links), writes context.identity into `ev.json`, and
    // appends an identity_link record payload (encoded, ready for the log) to `links` for each
    // link made. `r` is scratch.
    void apply(event& ev, const observation& ob, resolution& r, std::vector<std::string>& links);

    // identity_link records whose append failed (the links themselves are stored): kept, at
    // most 100,000, and handed to the next request's append so no link record is lost while
    // the process runs.
    void requeue(std::vector<std::string> links);
    void take_pending(std::vector<std::string>& out);
    bool has_pending() const noexcept { return has_pending_.load(std::memory_order_acquire); }

    graph& ids() noexcept { return *graph_; }
    suppression_list& suppressions() noexcept { return *suppressions_; }
    deletion_audit& audit() noexcept { return *audit_; }
    const service_options& options() const noexcept { return opts_; }

    // The JSON written under context.identity for a resolution (exposed for tests).
    static void identity_json(const resolution& r, std::string& out);

  private:
    explicit service(service_options o) : opts_(std::move(o)) {}
    void run();

    service_options opts_;
    std::shared_ptr<store> store_;
    std::unique_ptr<graph> graph_;
    std::unique_ptr<suppression_list> suppressions_;
    std::unique_ptr<deletion_audit> audit_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::mutex pending_mu_;
    std::vector<std::string> pending_;
    std::atomic<bool> has_pending_{false};
    std::thread thread_;
};

}  // namespace switchyard::identity
