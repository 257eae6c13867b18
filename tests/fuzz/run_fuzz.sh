#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time and prints the executions of each:
#   tests/fuzz/run_fuzz.sh BUILD_DIR [SECONDS]      (SECONDS per target, default 60)
# BUILD_DIR is a -DDRT_FUZZ=ON build (clang). Seeds come from BUILD_DIR/fuzz-corpus (made by
# make_corpus.sh when missing; new coverage is added there) plus tests/fuzz/regressions/<target>.
# A crash, sanitizer report, leak or timeout leaves the input in BUILD_DIR/fuzz-artifacts/<target>/
# and makes the script exit 1: reproduce with BUILD_DIR/bin/fuzz_<target> FILE, fix the bug and
# commit the file under tests/fuzz/regressions/<target>/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:?usage: run_fuzz.sh BUILD_DIR [SECONDS]}
T=${2:-60}
[ -d "$B/fuzz-corpus" ] || "$ROOT/tests/fuzz/make_corpus.sh" "$B" || exit 1
fail=0
total=0
# target and -max_len (bytes): big enough for the seeds, small enough to stay fast
for spec in "onnx 327680" "npy 65536" "plan 196608" "options 4096"; do
  set -- $spec
  name=$1
  maxlen=$2
  bin="$B/bin/fuzz_$name"
  if [ ! -x "$bin" ]; then
    echo "run_fuzz: $bin is missing (configure with -DDRT_FUZZ=ON and build target 'fuzz')" >&2
    fail=1
    continue
  fi
  corpus="$B/fuzz-corpus/$name"
  art="$B/fuzz-artifacts/$name/"
  log="$B/fuzz-$name.log"
  mkdir -p "$corpus" "$art"
  "$bin" -max_total_time="$T" -max_len="$maxlen" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art" "$corpus" "$ROOT/tests/fuzz/regressions/$name" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  execs=${execs:-0}
  total=$((total + execs))
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    printf 'fuzz_%-8s %10s executions in %ss (%s), no findings\n' "$name" "$execs" "$T" "${cov:-cov: ?}"
  else
    fail=1
    printf 'fuzz_%-8s %10s executions, FAILED (exit %d); log: %s\n' "$name" "$execs" "$rc" "$log"
    grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==|Test unit written' "$log" | head -20
    ls -1 "$art" | sed 's/^/  artifact: /'
  fi
done
echo "run_fuzz: $total executions in all"
exit $fail
