#!/usr/bin/env bash
# Produce the committed result bundles on a GPU machine: ci/gpu-extra.sh OUT_DIR. Each bundle is packed
# into OUT_DIR/bundles.tgz (the device tool returns few files).
set -uo pipefail
out=$1
status=0
for spec in ${SPECS:-quick qwen3-family-gemv-vs-cublas qwen3-4b-decode}; do
  echo "== sweep $spec ($(date -u +%H:%M:%S))"
  timeout 420 ./build-gpu/klab sweep sweeps/$spec.json --out results/$spec --force > "$out/sweep-$spec.log" 2>&1
  rc=$?; echo "sweep $spec -> exit $rc"; [ $rc -eq 0 ] || status=1
  tail -3 "$out/sweep-$spec.log"
done
tar czf "$out/bundles.tgz" $(for s in ${SPECS:-quick qwen3-family-gemv-vs-cublas qwen3-4b-decode}; do echo results/$s; done) 2>/dev/null
exit $status
