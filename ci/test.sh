#!/usr/bin/env bash
# The test command: every ctest test. GPU tests skip (with the reason) where there is no GPU.
# Usage: bash ci/test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -d "$build" ] || bash ci/setup.sh "$build"
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
