#!/usr/bin/env bash
# One command for the whole test suite on a fresh Debian machine: installs what is missing,
# builds (Release) and runs CTest. The last line printed is CTest's own summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
export FSDIFF_DATA="${FSDIFF_DATA:-$(cd .. && pwd)/shared/data}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
cd build
ctest --output-on-failure -j"$(nproc)"
