#include "app/app.h"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
    CLI::App cli{"Switchyard: a self-hosted clickstream collector and event router."};
    cli.require_subcommand(1);
    cli.set_version_flag("--version", std::string("switchyard ") + SWITCHYARD_VERSION);

    std::string config_path = "config/switchyard.yaml";
    auto* run = cli.add_subcommand("run", "Run the daemon.");
    run->add_option("-c,--config", config_path, "Config file (YAML).")->capture_default_str();

    bool print = false;
    auto* check =
        cli.add_subcommand("check", "Validate a config file; print every error with line:col.");
    check->add_option("-c,--config", config_path, "Config file (YAML).")->capture_default_str();
    check->add_flag("--print", print, "Print the effective config with secrets redacted.");

    auto* docs =
        cli.add_subcommand("config-docs", "Print the Markdown reference of every config key.");

    CLI11_PARSE(cli, argc, argv);

    if (*check) return switchyard::app::check(config_path, print);
    if (*docs) {
        std::cout << switchyard::app::config_docs();
        return 0;
    }
    switchyard::config::config cfg;
    if (!switchyard::app::load(config_path, cfg)) return 2;
    return switchyard::app::run(cfg);
}
