#!/usr/bin/env bash
# Installs what is missing (Debian packages and the npm packages of the SDK tests), builds
# everything and runs the whole test suite: unit tests, end-to-end tests against the real
# binary, and real-SDK compatibility tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
npm ci --prefix tests/compat --no-audit --no-fund --loglevel=error
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWITCHYARD_BUILD_TESTS=ON >/dev/null
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@"
