#!/usr/bin/env bash
# A/B of build-time knobs on the engine's decode, in one call on the GPU machine: one build per knob set
# (extra CUDA flags), then `qwen3 bench` on the same random checkpoint for every build, interleaved over
# ROUNDS rounds so drift shows as disagreement between rounds. Rows go to $OUT/knobs.csv (knob set, round,
# then engine.csv's columns).
# Usage: ci/gpu-knobs.sh "NAME=FLAGS" ...   e.g. ci/gpu-knobs.sh "base=" "first=-DKLAB_PDL_TRIGGER_FIRST"
# Env: MODEL (default 4b), PP (128), TG (128,512), REPS (3), ROUNDS (2), CHECK_OPS (ops to gate per build).
set -uo pipefail
out=${OUT:-$PWD/gpu-out}; mkdir -p "$out"
prefix=(); [ -d .deps/usr ] && prefix=(-DCMAKE_PREFIX_PATH="$PWD/.deps/usr") && export LD_LIBRARY_PATH="$PWD/.deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
model=${MODEL:-4b}; dir=/tmp/qwen3-$model; status=0
names=()
for spec in "$@"; do
  name=${spec%%=*}; flags=${spec#*=}; names+=("$name")
  echo "== build $name ($flags) $(date -u +%T)"
  cmake -S . -B "build-knob-$name" -G Ninja -DCMAKE_BUILD_TYPE=Release "${prefix[@]}" -DCMAKE_CUDA_FLAGS="$flags" > "$out/build-$name.log" 2>&1 &&
    cmake --build "build-knob-$name" -j"$(nproc)" --target qwen3 klab >> "$out/build-$name.log" 2>&1 || { echo "build $name failed"; tail -20 "$out/build-$name.log"; exit 1; }
  for op in ${CHECK_OPS:-}; do
    "./build-knob-$name/klab" check "$op" --seeds 2 > "$out/check-$name-$op.txt" 2>&1 || { echo "check $op FAILED in $name"; status=1; }
  done
done
[ -f $dir/config.json ] || "./build-knob-${names[0]}/qwen3" init --preset $model --seed 1 --out $dir --tokenizer ${TOKDIR:-.tok} > "$out/init.log" 2>&1 || { echo "init failed"; exit 1; }
csv="$out/knobs.csv"; rm -f "$csv"
for round in $(seq 1 ${ROUNDS:-2}); do for name in "${names[@]}"; do
  timeout 200 "./build-knob-$name/qwen3" bench --model $dir --pp ${PP:-128} --tg ${TG:-128,512} --reps ${REPS:-3} --warmup 1 \
    --out "$out/knob-tmp" > "$out/bench-$name-$round.txt" 2>&1 || status=1
  [ -f "$csv" ] || sed -n '1s/^/knobs,round,/p' "$out/knob-tmp/engine.csv" > "$csv"
  sed -n "2,\$s/^/$name,$round,/p" "$out/knob-tmp/engine.csv" >> "$csv"; rm -rf "$out/knob-tmp"
done; done
cut -d, -f1,2,5,6,13 "$csv"
(cd "$out" && packed=$(ls -d *.log *.txt 2>/dev/null || true) && [ -n "$packed" ] && tar czf knob-logs.tgz $packed && rm -f $packed)
exit $status
