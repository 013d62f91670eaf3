#!/usr/bin/env bash
# Installs what is missing, builds Switchyard and runs it on the embedded default config
# (config/switchyard.yaml: port 8080, admin on 127.0.0.1:9090, data under ./data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWITCHYARD_BUILD_TESTS=OFF >/dev/null
cmake --build build --target switchyard -j"$(nproc)"
exec build/switchyard run -c "${SWITCHYARD_CONFIG:-config/switchyard.yaml}"
