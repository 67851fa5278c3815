#!/usr/bin/env bash
# The bundle commands end to end on this machine: env, sweep (validation, dry run, no-GPU refusal),
# aggregate, plot and compare on the fixture bundles. Usage: bash cli_klab_bundle.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1
SRC=$2
KLAB=$BUILD/klab
TMP=$BUILD/cli_klab_bundle_tmp
rm -rf "$TMP" && mkdir -p "$TMP" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_rc() { # expected rc, description, command...
  local want=$1 what=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  [ "$rc" = "$want" ] || { fail "$what: exit $rc, expected $want"; sed 's/^/  | /' "$TMP/out" "$TMP/err" | head -20; }
}
expect_grep() { # pattern, file, description
  grep -q -- "$1" "$2" || { fail "$3: '$1' not in $2"; sed 's/^/  | /' "$2" | head -20; }
}

# --help on every command
for c in env sweep aggregate plot compare; do
  expect_rc 0 "klab $c --help" "$KLAB" "$c" --help
  expect_grep "usage: klab $c" "$TMP/out" "klab $c --help"
done

# env: JSON, exit 0 with or without a GPU
expect_rc 0 "klab env" "$KLAB" env
expect_grep '"schema":' "$TMP/out" "klab env"
expect_grep '"gpu_error":' "$TMP/out" "klab env"
expect_grep '"driver_state":' "$TMP/out" "klab env"
expect_grep '"git_commit":' "$TMP/out" "klab env"
if grep -q '"gpu_error":[[:space:]]*"' "$TMP/out"; then HAVE_GPU=0; else HAVE_GPU=1; fi

# sweep: validation before anything else
expect_rc 0 "sweep --dry-run quick" "$KLAB" sweep "$SRC/sweeps/quick.json" --dry-run
expect_grep "M=1;N=6144;K=2560  # qwen3-4b qkv" "$TMP/out" "dry run lists labelled shapes"
printf '{"ops": [{"op": "gemv", "shapes": {"range": {"from": 512, "to": 8192, "mul": 1}, "dims": ["N", "K"], "fixed": {"M": 1}}}]}' >"$TMP/bad.json"
expect_rc 2 "sweep of a bad spec" "$KLAB" sweep "$TMP/bad.json"
expect_grep "bad.json: \$.ops\[0\].shapes.range.mul: must be >= 2" "$TMP/err" "bad spec error names file and path"
printf '{"ops": [' >"$TMP/broken.json"
expect_rc 2 "sweep of malformed JSON" "$KLAB" sweep "$TMP/broken.json"
expect_grep "broken.json: malformed JSON near line 1" "$TMP/err" "malformed JSON"
expect_rc 2 "sweep with an unknown option" "$KLAB" sweep "$SRC/sweeps/quick.json" --bogus
expect_rc 2 "sweep --resume --force" "$KLAB" sweep "$SRC/sweeps/quick.json" --resume --force
if [ "$HAVE_GPU" = 0 ]; then
  expect_rc 2 "sweep without a GPU" "$KLAB" sweep "$SRC/sweeps/quick.json" --out "$TMP/quick"
  expect_grep "no usable CUDA GPU" "$TMP/err" "sweep without a GPU says so"
  expect_grep "is valid (13 shapes)" "$TMP/err" "sweep without a GPU validated the spec first"
  [ -e "$TMP/quick" ] && fail "sweep without a GPU created its output folder"
fi

# aggregate on a copy of the fixture (it holds FAIL rows: exit 1)
cp -r "$SRC/tests/data/bundles/h100-old" "$TMP/old"
expect_rc 1 "aggregate of a bundle with FAILs" "$KLAB" aggregate "$TMP/old"
[ -s "$TMP/old/aggregate.md" ] || fail "aggregate.md not written"
[ -s "$TMP/old/winners.json" ] || fail "winners.json not written"
expect_grep '"sm_90"' "$TMP/old/winners.json" "winners keyed by arch"
expect_grep "## Failures" "$TMP/old/aggregate.md" "aggregate lists failures"

# plot
if command -v gnuplot >/dev/null 2>&1; then
  expect_rc 0 "plot" "$KLAB" plot "$TMP/old"
  for p in roofline speedup_vs_cublas bandwidth; do
    [ -s "$TMP/old/$p.png" ] || fail "$p.png missing"
    [ -s "$TMP/old/$p.svg" ] || fail "$p.svg missing"
    [ -s "$TMP/old/plots/$p.gp" ] || fail "plots/$p.gp missing"
  done
  # the kept scripts re-render on their own
  (cd "$TMP/old" && rm -f roofline.png && gnuplot plots/roofline.gp) || fail "re-render of plots/roofline.gp"
  [ -s "$TMP/old/roofline.png" ] || fail "re-rendered roofline.png missing"
else
  echo "gnuplot not installed: plot rendering not tested (Debian: gnuplot-nox)"
fi
expect_rc 0 "plot --scripts-only" "$KLAB" plot "$TMP/old" --scripts-only
expect_rc 2 "plot of a missing bundle" "$KLAB" plot "$TMP/none"

# compare
expect_rc 1 "compare old new (regression)" "$KLAB" compare "$SRC/tests/data/bundles/h100-old" "$SRC/tests/data/bundles/h100-new"
expect_grep "REGRESSED" "$TMP/out" "compare flags the regression"
expect_rc 0 "compare old new --threshold 0.2" "$KLAB" compare "$SRC/tests/data/bundles/h100-old" "$SRC/tests/data/bundles/h100-new" --threshold 0.2
expect_rc 0 "compare a bundle with itself" "$KLAB" compare "$SRC/tests/data/bundles/h100-old" "$SRC/tests/data/bundles/h100-old"
expect_rc 0 "compare two CSV files" "$KLAB" compare "$SRC/tests/data/bundles/h100-new/kernels.csv" "$SRC/tests/data/bundles/h100-new/kernels.csv"
expect_rc 2 "compare with a bad threshold" "$KLAB" compare a b --threshold x
expect_rc 2 "compare with one bundle" "$KLAB" compare a

if [ "$fails" -ne 0 ]; then
  echo "cli_klab_bundle: $fails failed"
  exit 1
fi
echo "cli_klab_bundle: all passed"
rm -rf "$TMP"
exit 0
