#!/usr/bin/env bash
# klab's command line: help, listing, and bad input give clear errors with exit status 2.
set -u
build=$1
klab=$build/klab
fail=0; checks=0
expect() { # expect STATUS DESCRIPTION -- command...
  local want=$1 what=$2; shift 3
  checks=$((checks+1))
  out=$("$@" 2>&1); got=$?
  if [ "$got" != "$want" ]; then echo "FAIL: $what: exit $got, wanted $want"; echo "$out" | head -5; fail=$((fail+1)); fi
}
expect_text() { # expect_text PATTERN DESCRIPTION -- command...
  local pat=$1 what=$2; shift 3
  checks=$((checks+1))
  out=$("$@" 2>&1)
  if ! grep -q -- "$pat" <<<"$out"; then echo "FAIL: $what: output lacks '$pat'"; echo "$out" | head -5; fail=$((fail+1)); fi
}
expect 0 "top-level help" -- "$klab" --help
expect 2 "no command" -- "$klab"
expect 2 "unknown command" -- "$klab" frobnicate
for c in list check bench peaks; do expect 0 "$c --help" -- "$klab" $c --help; done
expect 0 "list" -- "$klab" list
expect_text "gemv" "list shows gemv" -- "$klab" list
expect_text "cublaslt" "list shows the vendor variants" -- "$klab" list
expect_text "rel_l2" "tolerance table" -- "$klab" list --tolerances
expect 2 "check without op" -- "$klab" check
expect 2 "unknown op" -- "$klab" check nosuchop
expect_text "unknown op" "unknown op message" -- "$klab" check nosuchop
expect 2 "bad shape" -- "$klab" check gemv --shape M=1,N=2
expect_text "dim K missing" "bad shape message" -- "$klab" check gemv --shape M=1,N=2
expect 2 "M out of range" -- "$klab" check gemv --shape M=17,N=2,K=3
expect 2 "unknown variant" -- "$klab" check gemv --variant fastest
expect 2 "bad seeds" -- "$klab" check gemv --seeds zero
expect 2 "unknown option" -- "$klab" bench gemv --frobnicate 1
expect 2 "missing value" -- "$klab" bench gemv --csv
expect 2 "zero rounds" -- "$klab" bench gemv --rounds 0
expect 2 "rounds on check" -- "$klab" check gemv --rounds 2
expect 2 "spaced on check" -- "$klab" check gemv --spaced
if ! nvidia-smi -L >/dev/null 2>&1; then
  # No GPU here: GPU commands must refuse clearly, never pretend.
  expect 2 "check with no GPU" -- "$klab" check gemv --shape M=1,N=64,K=64
  expect_text "CUDA" "no-GPU message names CUDA" -- "$klab" check gemv --shape M=1,N=64,K=64
  expect 2 "bench with no GPU" -- "$klab" bench rmsnorm --shape T=1,H=64
fi
echo "$((checks-fail)) passed, $fail failed"
[ $fail -eq 0 ]
