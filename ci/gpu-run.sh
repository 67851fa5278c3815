#!/usr/bin/env bash
# One call on a GPU machine: build, run every test (GPU ones included), measure peaks, bench the ops,
# and run compute-sanitizer over the GPU gate. Logs and CSVs go to $OUT (or ./gpu-out).
# Usage: ci/gpu-run.sh [STEPS]   STEPS: comma list of build,test,gputest,peaks,bench,sanitize,engine,pdl,extra
#        (default: build,test,peaks,bench,sanitize; gputest: the GPU tests only; pdl: the engine's decode with and
#        without programmatic dependent launch, A/B in one run, on PDL_MODELS, default 4b)
# sanitize: SANITIZE_OPS (default: every op) limits compute-sanitizer to the named ops.
# engine: MODELS (default 4b), MODEL_ROOT (where random checkpoints go, default /tmp; /dev/shm for 32b, whose
#         65 GB do not fit the disk), PP/TG/REPS for qwen3 bench, PARITY / PEERS: the models to run HF bf16 parity / HF engine rows for;
#         the real tokenizer is read from TOKDIR (default .tok: a copy of ../shared/qwen_tokenizer, carried).
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
if has gputest; then
  log "ctest -L gpu"
  (cd build-gpu && ctest -L gpu --output-on-failure > "$out/ctest-gpu.log" 2>&1) || status=1
  grep -E "tests passed|Failed|\*\*\*|SKIP|Passed" "$out/ctest-gpu.log" | tail -15
fi
if has pdl; then
  log "pdl A/B"
  # The same cells with and without programmatic dependent launch, interleaved twice in one run (drift shows as
  # disagreement between the two rounds): $out/pdl/pdl_ab-MODEL.csv, engine.csv rows with mode and round.
  mkdir -p "$out/pdl"
  for model in ${PDL_MODELS:-4b}; do
    dir=${MODEL_ROOT:-/tmp}/qwen3-$model
    [ -f $dir/config.json ] || ./build-gpu/qwen3 init --preset $model --seed 1 --out $dir --tokenizer ${TOKDIR:-.tok} > "$out/init-$model.log" 2>&1 || { echo "init $model failed"; status=1; continue; }
    ab="$out/pdl/pdl_ab-$model.csv"; rm -f "$ab"
    for round in 1 2; do for mode in pdl no-pdl; do
      flag=""; [ $mode = no-pdl ] && flag=--no-pdl
      timeout 200 ./build-gpu/qwen3 bench --model $dir --pp ${PDL_PP:-128} --tg ${PDL_TG:-128,512} --reps 3 --warmup 1 $flag \
        --out "$out/ab-tmp" > "$out/ab-$model-$mode-$round.txt" 2>&1 || status=1
      [ -f "$ab" ] || sed -n '1s/^/mode,round,/p' "$out/ab-tmp/engine.csv" > "$ab"
      sed -n "2,\$s/^/$mode,$round,/p" "$out/ab-tmp/engine.csv" >> "$ab"; rm -rf "$out/ab-tmp"
    done; done
    cut -d, -f1-6,13 "$ab"
  done
fi
if has peaks; then
  log peaks
  ./build-gpu/klab peaks --verbose 2> "$out/peaks.log" || status=1
  mkdir -p "$out/peaks"; cp results/peaks/*.json "$out/peaks/" 2>/dev/null
fi
if has bench; then
  log bench
  # Every registered op on its presets (gate, then CUPTI timing), one CSV per op.
  # gemm / attn_prefill: one gate seed and no lm_head-sized GEMMs (their float64 CPU reference takes minutes).
  gemm_shapes=""
  for s in 2048,2048,2048 4096,4096,4096 8192,8192,8192; do IFS=, read m n k <<< "$s"; gemm_shapes+=" --shape M=$m,N=$n,K=$k"; done
  for m in 512 2048; do for nk in 6144,2560 2560,4096 19456,2560 2560,9728 6144,4096 4096,4096 24576,4096 4096,12288; do
    gemm_shapes+=" --shape M=$m,N=${nk%,*},K=${nk#*,}"; done; done
  declare -A EXTRA=([gemm]="--seeds 1 $gemm_shapes" [attn_prefill]="--seeds 1" [gemv]="--max-seconds 0.3")
  for op in ${OPS:-rmsnorm gemv embedding add_rmsnorm qk_norm_rope silu_mul attn_decode argmax sample addnorm_gemv addnorm_gemv_silu gemm attn_prefill}; do
    timeout 300 ./build-gpu/klab bench $op ${EXTRA[$op]:-} --csv "$out/bench-$op.csv" > "$out/bench-$op.txt" 2>&1
    rc=$?; echo "bench $op -> exit $rc"; [ $rc -eq 0 ] || status=1
  done
  shapes=()
  for m in 2 4 8 16; do shapes+=(--shape M=$m,N=6144,K=2560 --shape M=$m,N=19456,K=2560 --shape M=$m,N=2560,K=9728 --shape M=$m,N=2560,K=4096); done
  ./build-gpu/klab bench gemv "${shapes[@]}" --csv "$out/bench-gemv-batched.csv" > "$out/bench-gemv-m.txt" 2>&1 || status=1
  mkdir -p "$out/csv" && mv "$out"/bench-*.csv "$out/csv/" 2>/dev/null
fi
if has sanitize; then
  log compute-sanitizer
  # Our variants on small shapes (awkward ones included); the vendor's kernels are not ours to fix.
  declare -A S=(
    [rmsnorm]="--shape T=3,H=2560 --shape T=5,H=1001 --shape T=1,H=70000"
    [gemv]="--shape M=1,N=1000,K=1003 --shape M=3,N=64,K=2560 --shape M=16,N=100,K=4096 --shape M=1,N=257,K=2560"
    [embedding]="--shape T=3,V=1000,H=2560 --shape T=5,V=77,H=1001"
    [add_rmsnorm]="--shape T=3,H=2560 --shape T=5,H=1001"
    [qk_norm_rope]="--shape T=3,HQ=32,HKV=8,D=128,P0=5 --shape T=1,HQ=6,HKV=3,D=64,P0=0"
    [silu_mul]="--shape T=3,I=9728 --shape T=2,I=1001"
    [attn_decode]="--shape HQ=32,HKV=8,D=128,CTX=1000 --shape HQ=6,HKV=6,D=128,CTX=17"
    [argmax]="--shape N=151936 --shape N=1001"
    [sample]=""
    [gemm]="--shape M=100,N=129,K=64 --shape M=256,N=256,K=512 --shape M=7,N=300,K=128"
    [attn_prefill]="--shape T=100,P0=63,HQ=32,HKV=8,D=128 --shape T=17,P0=0,HQ=8,HKV=8,D=128"
  )
  S[addnorm_gemv]="--shape M=1,N=1000,K=2560 --shape M=3,N=64,K=4096"
  S[addnorm_gemv_silu]="--shape M=1,N=1000,K=2560 --shape M=2,N=64,K=4096"
  # memcheck: every variant of ours; racecheck (slow): the optimized ones.
  for tool in memcheck racecheck; do
    kinds="naive|optimized|extra"; [ $tool = racecheck ] && kinds="optimized"
    for op in ${SANITIZE_OPS:-${!S[@]}}; do
      # a misspelt name must not pass as "0 errors" with nothing run
      [[ -v "S[$op]" ]] || { echo "sanitizer: unknown op '$op' in SANITIZE_OPS"; status=1; continue; }
      for v in $(./build-gpu/klab list 2>/dev/null | awk -v op="$op" '$1==op":" {f=1; next} f && /^[^ ]/ {f=0} f' | grep -oE "^ +[a-z_0-9]+ +($kinds)" | awk '{print $1}'); do
        cmd="check $op --variant $v --seeds 1 ${S[$op]}"
        timeout 240 compute-sanitizer --tool $tool --error-exitcode 9 ./build-gpu/klab $cmd >> "$out/sanitizer.log" 2>&1
        rc=$?; echo "sanitizer $tool klab $cmd -> exit $rc" | tee -a "$out/sanitizer-summary.txt"
        [ $rc -eq 0 ] || status=1
      done
    done
  done
fi
if has engine; then
  log engine
  # Qwen3-4B (and 8B with MODELS) random checkpoints, the engine bundle, the op profile, HF parity, a demo.
  for model in ${MODELS:-4b}; do
    dir=${MODEL_ROOT:-/tmp}/qwen3-$model
    [ -f $dir/config.json ] || ./build-gpu/qwen3 init --preset $model --seed 1 --out $dir --tokenizer ${TOKDIR:-.tok} > "$out/init-$model.log" 2>&1 || { echo "init $model failed"; status=1; continue; }
    ./build-gpu/qwen3 generate --model $dir --prompt "Write a haiku about GPUs." --max-new-tokens 64 --verbose --profile ${VARIANTS:+--variants $VARIANTS} \
      > "$out/profile-$model.txt" 2> "$out/generate-$model.log" || status=1
    tail -2 "$out/generate-$model.log"; grep -E "^\| |graph|roofline" "$out/profile-$model.txt" | tail -22
    timeout ${BENCH_TIMEOUT:-400} ./build-gpu/qwen3 bench --model $dir --pp ${PP:-18,128,512,2048} --tg ${TG:-128,512} --reps ${REPS:-3} --warmup 1 ${VARIANTS:+--variants $VARIANTS} \
      --out results/engine-qwen3-$model > "$out/bench-$model.txt" 2>&1 || status=1
    cat "$out/bench-$model.txt"
    # the profile only: generate prints the (random-weight) continuation to stdout first
    sed -n '/^# decode step profile/,$p' "$out/profile-$model.txt" > results/engine-qwen3-$model/decode_profile.md
    if [[ " ${PARITY:-} " == *" $model "* ]]; then
      PYTHONUNBUFFERED=1 timeout 300 python3 engine/tools/hf_parity_gpu.py --model $dir --qwen3 build-gpu/qwen3 --tokens 256 ${VARIANTS:+--variants $VARIANTS} \
        --out results/engine-qwen3-$model/parity.json > "$out/parity-$model.log" 2>&1 || status=1
      tail -12 "$out/parity-$model.log"
    fi
    if [[ " ${PEERS:-} " == *" $model "* ]]; then
      PYTHONUNBUFFERED=1 timeout ${PEER_TIMEOUT:-420} python3 sweeps/peers/hf_engine_bench.py --model $dir --pp ${PEER_PP:-128,512} --tg ${PEER_TG:-128} \
        --csv results/engine-qwen3-$model/engine.csv > "$out/peers-$model.log" 2>&1 || status=1
      tail -5 "$out/peers-$model.log"
    fi
  done
  tar czf "$out/engine-bundles.tgz" results/engine-qwen3-* 2>/dev/null
fi
if has extra; then
  log extra
  bash ci/gpu-extra.sh "$out" || status=1
fi
# At most 8 files come back: pack the logs, keep the CSVs and peaks beside them.
(cd "$out" && packed=$(ls -d *.log *.txt *.csv csv 2>/dev/null || true) && [ -n "$packed" ] && tar czf logs.tgz $packed && rm -rf $packed)
log done status=$status
exit $status
