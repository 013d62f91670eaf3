#include "app/admin_client.h"
#include "app/app.h"

#include <CLI/CLI.hpp>

#include <iostream>

namespace {

std::string url_encode(const std::string& s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',' ||
            c == ':') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

}  // namespace

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

    CLI11_PARSE(cli, argc, argv);

    if (*check) return switchyard::app::check(config_path, print);
    if (*docs) {
        std::cout << switchyard::app::config_docs();
        return 0;
    }
    switchyard::config::config cfg;
    if (!switchyard::app::load(config_path, cfg)) return 2;
    if (*dests) return switchyard::app::cli_destinations(cfg, json);
    if (*reload) return switchyard::app::cli_reload(cfg);
    if (*dlq) {
        std::string q;
        auto add = [&](const char* k, const std::string& v) {
            if (v.empty()) return;
            q += (q.empty() ? "" : "&") + std::string(k) + "=" + url_encode(v);
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
