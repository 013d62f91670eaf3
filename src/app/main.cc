#include "app/admin_client.h"
#include "app/app.h"
#include "plan/cli.h"
#include "util/url.h"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
    CLI::App cli{"Switchyard: a self-hosted clickstream collector and event router."};
    cli.require_subcommand(1);
    cli.set_version_flag("--version", std::string("switchyard ") + SWITCHYARD_VERSION);

    std::string config_path = "config/switchyard.yaml";
    auto* run = cli.add_subcommand("run", "Run the daemon.");
    run->add_option("-c,--config", config_path, "Config file (YAML).")->capture_default_str();
    std::string role;
    run->add_option("--role", role,
                    "all (default), collect (ingest only) or deliver (delivery only); collect "
                    "and deliver need log.type: kafka. Overrides the config's `role`.")
        ->check(CLI::IsMember({"all", "collect", "deliver"}));

    auto* plan_cmd =
        cli.add_subcommand("plan", "Tracking plans: lint, test fixtures, render docs.");
    plan_cmd->require_subcommand(1);
    std::vector<std::string> plan_files;
    std::string events_file;
    auto* plan_lint = plan_cmd->add_subcommand(
        "lint", "Check plan files; print every error with file:line:col; non-zero exit on errors.");
    plan_lint->add_option("files", plan_files, "Plan files (YAML or JSON Schema).")->required();
    auto* plan_test = plan_cmd->add_subcommand(
        "test",
        "Validate NDJSON events against a plan; print each event's violations; non-zero "
        "exit when any event has one.");
    plan_test->add_option("--plan", plan_files, "Plan file(s).")->required();
    plan_test->add_option("events", events_file, "NDJSON file of events.")->required();
    auto* plan_docs = plan_cmd->add_subcommand("docs", "Render a plan as Markdown.");
    plan_docs->add_option("files", plan_files, "Plan files.")->required();

    bool print = false;
    auto* check =
        cli.add_subcommand("check", "Validate a config file; print every error with line:col.");
    check->add_option("-c,--config", config_path, "Config file (YAML).")->capture_default_str();
    check->add_flag("--print", print, "Print the effective config with secrets redacted.");

    auto* docs =
        cli.add_subcommand("config-docs", "Print the Markdown reference of every config key.");

    bool json = false;
    auto* dests = cli.add_subcommand(
        "destinations", "List the running daemon's destinations (operator API, admin.token).");
    dests->add_option("-c,--config", config_path, "Config file of the running daemon.")
        ->capture_default_str();
    dests->add_flag("--json", json, "Print the raw JSON answer.");

    std::string action, destination, kind, reason, since, until, ids;
    std::size_t limit = 0;
    auto* dlq = cli.add_subcommand("dlq", "List, replay or discard a destination's dead letters.");
    dlq->add_option("action", action, "list | replay | discard")
        ->required()
        ->check(CLI::IsMember({"list", "replay", "discard"}));
    dlq->add_option("-d,--destination", destination, "Destination name.")->required();
    dlq->add_option("-c,--config", config_path, "Config file of the running daemon.")
        ->capture_default_str();
    dlq->add_option("--kind", kind,
                    "Only entries of this kind: rejected, budget_exhausted, dropped.");
    dlq->add_option("--reason", reason, "Only entries whose reason contains this text.");
    dlq->add_option("--since", since, "Only entries dead-lettered at or after this ISO-8601 time.");
    dlq->add_option("--until", until, "Only entries dead-lettered before this ISO-8601 time.");
    dlq->add_option("--ids", ids, "Only these entry ids (comma-separated).");
    dlq->add_option("--limit", limit, "At most this many entries (list).");
    dlq->add_flag("--json", json, "Print the raw JSON answer.");

    auto* reload = cli.add_subcommand(
        "reload", "Ask the running daemon to reload its destinations (same as SIGHUP).");
    reload->add_option("-c,--config", config_path, "Config file of the running daemon.")
        ->capture_default_str();

    std::string q_action, q_reason, q_source, q_ids;
    std::size_t q_limit = 0;
    auto* quarantine = cli.add_subcommand(
        "quarantine",
        "List quarantined events, or replay plan-quarantined ones after the plan "
        "was fixed (operator API, admin.token).");
    quarantine->add_option("action", q_action, "list | replay")->required();
    quarantine->add_option("-c,--config", config_path, "Config file of the running daemon.")
        ->capture_default_str();
    quarantine->add_option("--reason", q_reason,
                           "Only this reason (e.g. plan_violation, plan_blocked).");
    quarantine->add_option("--source", q_source, "Only this source.");
    quarantine->add_option("--ids", q_ids, "Only these messageIds (comma-separated; replay).");
    quarantine->add_option("--limit", q_limit, "At most this many entries, newest (list).");

    std::string i_action, i_user, i_anon, i_device, i_person, i_by, i_reason, i_id;
    bool i_no_suppress = false;
    auto* ident = cli.add_subcommand(
        "identity",
        "Identity stitching, suppression and deletion requests (operator API, admin.token): "
        "person | suppressions | suppress | unsuppress | delete | deletions.");
    ident
        ->add_option("action", i_action,
                     "person | suppressions | suppress | unsuppress | delete | deletions")
        ->required();
    ident->add_option("-c,--config", config_path, "Config file of the running daemon.")
        ->capture_default_str();
    ident->add_option("--user-id", i_user, "The userId to act on.");
    ident->add_option("--anonymous-id", i_anon, "The anonymousId to act on.");
    ident->add_option("--device-id", i_device, "The device id (context.device.id) to act on.");
    ident->add_option("--person-id", i_person, "A canonical person id (a userId).");
    ident->add_option("--requested-by", i_by,
                      "Who asks (recorded in the audit trail; required for delete).");
    ident->add_option("--reason", i_reason, "Why (recorded with the request).");
    ident->add_flag("--no-suppress", i_no_suppress,
                    "delete: do not also suppress the person's future events.");
    ident->add_option("--id", i_id, "deletions: show one deletion request.");

    CLI11_PARSE(cli, argc, argv);

    if (*plan_lint) return switchyard::plan::plan_lint(plan_files);
    if (*plan_test) return switchyard::plan::plan_test(plan_files, events_file);
    if (*plan_docs) return switchyard::plan::plan_docs(plan_files);
    if (*check) return switchyard::app::check(config_path, print);
    if (*docs) {
        std::cout << switchyard::app::config_docs();
        return 0;
    }
    switchyard::config::config cfg;
    if (!switchyard::app::load(config_path, cfg)) return 2;
    if (*dests) return switchyard::app::cli_destinations(cfg, json);
    if (*reload) return switchyard::app::cli_reload(cfg);
    if (*ident) {
        switchyard::app::identity_cli_args a;
        a.action = i_action;
        a.ids = {{"userId", i_user},
                 {"anonymousId", i_anon},
                 {"deviceId", i_device},
                 {"personId", i_person}};
        a.requested_by = i_by;
        a.reason = i_reason;
        a.suppress = !i_no_suppress;
        a.request_id = i_id;
        return switchyard::app::cli_identity(cfg, a);
    }
    if (*quarantine) {
        std::string q;
        auto add = [&](const char* k, const std::string& v) {
            if (v.empty()) return;
            q +=
                (q.empty() ? "" : "&") + std::string(k) + "=" + switchyard::util::percent_encode(v);
        };
        add("reason", q_reason);
        add("source", q_source);
        add("ids", q_ids);
        if (q_limit) add("limit", std::to_string(q_limit));
        return switchyard::app::cli_quarantine(cfg, q_action, q);
    }
    if (*dlq) {
        std::string q;
        auto add = [&](const char* k, const std::string& v) {
            if (v.empty()) return;
            q +=
                (q.empty() ? "" : "&") + std::string(k) + "=" + switchyard::util::percent_encode(v);
        };
        add("kind", kind);
        add("reason", reason);
        add("since", since);
        add("until", until);
        add("ids", ids);
        if (limit) add("limit", std::to_string(limit));
        return switchyard::app::cli_dlq(cfg, action, destination, q, json);
    }
    if (!role.empty()) {
        cfg.role = role;
        if (auto e = switchyard::config::check_role(cfg); !e.empty()) {
            std::cerr << "--role: " << e << '\n';
            return 2;
        }
    }
    return switchyard::app::run(cfg, config_path);
}
