#!/usr/bin/env bash
# One command for the whole test suite on a fresh Debian machine: installs what is missing, builds
# (Release) and runs CTest; then the SIMD-dependent op tests in a tree built for the other vector width
# (build-simd: AM_V16_NATIVE forced); then builds a Debug tree with ASan+UBSan (build-asan) and runs the C unit
# tests, the fuzz-corpus replays and the CLI tests there too, on the Release tree's reference data.
# Left to the Release run only: $ASAN_SKIP (MPI: its libraries are not instrumented and keep memory
# until exit; the SIGKILL test: 3+ minutes under ASan, and cli_train covers resume there). Each suite prints its CTest summary; the last line printed is the combined
# "N passed, N failed" of all three. FSD_SKIP_ASAN=1: the Release suite only (its CTest summary is last).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test || exit 1
export FSDIFF_DATA="${FSDIFF_DATA:-$(cd .. && pwd)/shared/data}"
jobs="$(nproc)"
ASAN_SKIP="${ASAN_SKIP:-cli_train_mpi,cli_train_crash}"
t_start=$SECONDS

# "97% tests passed, 1 tests failed out of 30" -> "29 1"
counts() { sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\2 \1/p' "$1" | tail -1 |
           awk '{print $1 - $2, $2}'; }

# ---- Release
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build build -j"$jobs" >/dev/null || { echo "Release build failed"; exit 1; }
(cd build && ctest --output-on-failure -j"$jobs") | tee build/ctest-release.log
rel_rc=${PIPESTATUS[0]}
t_release=$((SECONDS - t_start))
[[ "${FSD_SKIP_ASAN:-0}" == 1 ]] && exit "$rel_rc"

# ---- the other SIMD width: the ops with 16-lane (AVX-512) and narrower kernels are built the other way
# round from what this CPU picks (AM_V16_NATIVE forced; src/ops/am_vec.h) and their tests run again, so a
# change to the branch this CPU does not take is still checked (slowly, where the width is emulated)
echo
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then other=0; else other=1; fi
echo "== other SIMD width (AM_V16_NATIVE=$other) op suite in build-simd"
cmake -S . -B build-simd -DCMAKE_BUILD_TYPE=Release -DFSD_BUILD_BENCH=OFF -DCMAKE_C_FLAGS="-DAM_V16_NATIVE=$other" >/dev/null || exit 1
cmake --build build-simd -j"$jobs" >/dev/null || { echo "build-simd build failed"; exit 1; }
rm -rf build-simd/ref && ln -s ../build/ref build-simd/ref
(cd build-simd && ctest --output-on-failure -j"$jobs" --fixture-exclude-setup refdata \
   -R "^(test_ops_conv|test_ops_attention|test_ops_mamba|test_nn_unet|test_fuse)\$") | tee build-simd/ctest-simd.log
simd_rc=${PIPESTATUS[0]}
t_simd=$((SECONDS - t_start))

# ---- Debug: ASan + UBSan (small shapes; the reference data of the Release tree, not made again)
echo
echo "== ASan+UBSan (Debug) suite in build-asan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFSD_BUILD_BENCH=OFF >/dev/null || exit 1
cmake --build build-asan -j"$jobs" >/dev/null || { echo "ASan build failed"; exit 1; }
rm -rf build-asan/ref && ln -s ../build/ref build-asan/ref
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
(cd build-asan && ctest --output-on-failure -j"$jobs" --fixture-exclude-setup refdata -E "^(reference_data|${ASAN_SKIP//,/|})\$") |
  tee build-asan/ctest-asan.log
asan_rc=${PIPESTATUS[0]}
t_total=$((SECONDS - t_start))

read -r rp rf <<<"$(counts build/ctest-release.log)"
read -r sp sf <<<"$(counts build-simd/ctest-simd.log)"
read -r ap af <<<"$(counts build-asan/ctest-asan.log)"
echo
echo "Release: ${rp:-0} passed, ${rf:-?} failed ($t_release s); other SIMD width: ${sp:-0} passed, ${sf:-?} failed ($((t_simd - t_release)) s); ASan+UBSan: ${ap:-0} passed, ${af:-?} failed ($((t_total - t_simd)) s)"
echo "$(( ${rp:-0} + ${sp:-0} + ${ap:-0} )) passed, $(( ${rf:-1} + ${sf:-1} + ${af:-1} )) failed"
[[ $rel_rc -eq 0 && $simd_rc -eq 0 && $asan_rc -eq 0 ]]
