#!/usr/bin/env bash
# Builds distilrt warning-free (-Werror) and runs every test: unit tests, model tests against
# onnxruntime references, and the ONNX backend conformance suite.
#   scripts/test.sh [BUILD_DIR]        (default: build)
#   DRT_SANITIZE=address,undefined scripts/test.sh build-asan
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
CC=${CC:-gcc}
cmake -S . -B "$B" -DCMAKE_C_COMPILER="$CC" -DDRT_WERROR=ON -DDRT_SANITIZE="${DRT_SANITIZE:-}" \
  -DCMAKE_BUILD_TYPE="${DRT_BUILD_TYPE:-Release}" >/dev/null
cmake --build "$B" -j"$(nproc)"
ctest --test-dir "$B" --output-on-failure -j"$(nproc)" ${DRT_CTEST_ARGS:-}
