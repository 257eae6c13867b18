#!/usr/bin/env bash
# Replays every committed fuzzing finding: each file in tests/fuzz/regressions/<target>/ runs
# once through BIN_DIR/fuzz_<target> (no fuzzing). ctest runs this as 'fuzz-regressions'.
#   tests/fuzz/run_regressions.sh BIN_DIR
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:?usage: run_regressions.sh BIN_DIR}
fail=0
n=0
log=$(mktemp)
for t in onnx npy plan options; do
  files=("$ROOT/tests/fuzz/regressions/$t"/*)
  [ -e "${files[0]}" ] || continue
  if ! "$BIN/fuzz_$t" -runs=1 "${files[@]}" >"$log" 2>&1; then
    echo "fuzz_$t: a regression input fails:"
    grep -E 'Running:|ERROR:|SUMMARY:|runtime error' "$log" | head -30
    fail=1
  fi
  n=$((n + ${#files[@]}))
  echo "fuzz_$t: ${#files[@]} regression inputs"
done
rm -f "$log"
echo "run_regressions: $n inputs, $([ $fail -eq 0 ] && echo ok || echo FAILED)"
exit $fail
