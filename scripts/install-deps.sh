#!/usr/bin/env bash
# Installs the Debian 12 packages Switchyard needs to build, run and test. Idempotent: only
# missing packages are installed. Run as root (or with sudo available).
set -euo pipefail

build_pkgs=(g++ cmake ninja-build pkg-config
  libboost1.81-dev libsimdjson-dev libspdlog-dev libfmt-dev libyaml-cpp-dev zlib1g-dev
  prometheus-cpp-dev libcli11-dev libssl-dev librdkafka-dev libre2-dev libmaxminddb-dev uap-core
  liblmdb-dev libhiredis-dev libpq-dev libsqlite3-dev sqlite3)
test_pkgs=(libgtest-dev libgmock-dev libbenchmark-dev python3 curl ca-certificates clang-format-14
  kcat libmaxmind-db-writer-perl redis-server
  postgresql)

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${test_pkgs[@]}")
  command -v node >/dev/null 2>&1 || want+=(nodejs)
  command -v npm >/dev/null 2>&1 || want+=(npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "Installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
