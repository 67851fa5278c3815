#!/usr/bin/env bash
# One call on a GPU machine: build, run every test (GPU ones included), measure peaks, bench the ops,
# and run compute-sanitizer over the GPU gate. Logs and CSVs go to $OUT (or ./gpu-out).
# Usage: ci/gpu-run.sh [STEPS]   STEPS: comma list of build,test,peaks,bench,sanitize,extra (default: all but extra)
# Needs cJSON/PCRE2/utf8proc: unpack them with shared/scripts/offline-prefix.sh .deps where apt is absent.
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
steps=${1:-build,test,peaks,bench,sanitize}
has() { [[ ",$steps," == *",$1,"* ]]; }
prefix=()
[ -d .deps/usr ] && prefix=(-DCMAKE_PREFIX_PATH="$PWD/.deps/usr") && export LD_LIBRARY_PATH="$PWD/.deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
log() { echo "== $* ($(date -u +%H:%M:%S))"; }
status=0
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv; nvcc --version | tail -1; } > "$out/gpu.txt" 2>&1
if has build; then
  log build
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release "${prefix[@]}" > "$out/build.log" 2>&1 &&
    cmake --build build-gpu -j"$(nproc)" >> "$out/build.log" 2>&1 || { echo "BUILD FAILED"; tail -30 "$out/build.log"; exit 1; }
fi
if has test; then
  log ctest
  (cd build-gpu && ctest --output-on-failure -j4 > "$out/ctest.log" 2>&1) || status=1
  grep -E "tests passed|Failed|\*\*\*|SKIP" "$out/ctest.log" | tail -15
fi
if has peaks; then
  log peaks
  ./build-gpu/klab peaks --verbose 2> "$out/peaks.log" || status=1
  mkdir -p "$out/peaks"; cp results/peaks/*.json "$out/peaks/" 2>/dev/null
fi
if has bench; then
  log bench
  ./build-gpu/klab bench rmsnorm --csv "$out/rmsnorm.csv" > "$out/bench-rmsnorm.txt" 2>&1 || status=1
  ./build-gpu/klab bench gemv --csv "$out/gemv.csv" > "$out/bench-gemv.txt" 2>&1 || status=1
  shapes=()
  for m in 2 4 8 16; do shapes+=(--shape M=$m,N=6144,K=2560 --shape M=$m,N=19456,K=2560 --shape M=$m,N=2560,K=9728); done
  ./build-gpu/klab bench gemv "${shapes[@]}" --csv "$out/gemv-batched.csv" > "$out/bench-gemv-m.txt" 2>&1 || status=1
  cat "$out/bench-rmsnorm.txt" "$out/bench-gemv.txt" | grep -v "^ *naive"
  grep -E "optimized|cublas " "$out/bench-gemv-m.txt" | head -40
fi
if has sanitize; then
  log compute-sanitizer
  # Our variants only: the vendor's kernels are not ours to fix (racecheck flags hazards inside cuBLAS).
  for tool in memcheck racecheck; do
    for v in naive optimized; do
      for cmd in "check gemv --variant $v --seeds 1 --shape M=1,N=1000,K=1003 --shape M=3,N=64,K=2560 --shape M=16,N=100,K=4096 --shape M=1,N=257,K=2560" \
                 "check rmsnorm --variant $v --seeds 1 --shape T=3,H=2560 --shape T=5,H=1001 --shape T=2,H=8192 --shape T=1,H=70000 --shape T=9,H=128"; do
        compute-sanitizer --tool $tool --error-exitcode 9 ./build-gpu/klab $cmd >> "$out/sanitizer.log" 2>&1
        rc=$?; echo "sanitizer $tool klab $cmd -> exit $rc" | tee -a "$out/sanitizer-summary.txt"
        [ $rc -eq 0 ] || status=1
      done
    done
  done
fi
if has extra; then
  log extra
  bash ci/gpu-extra.sh "$out" || status=1
fi
# At most 8 files come back: pack the logs, keep the CSVs and peaks beside them.
(cd "$out" && tar czf logs.tgz *.log *.txt 2>/dev/null && rm -f *.log *.txt)
log done status=$status
exit $status
