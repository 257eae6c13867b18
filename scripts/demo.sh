#!/usr/bin/env bash
# The main job end to end: build distilrt, compile the bundled DiT student example to a .plan,
# run the plan on the CPU, check its output against the onnxruntime reference, and time it
# against onnxruntime (same threads, interleaved).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j"$(nproc)" --target drt >/dev/null
FX=tests/models/fixtures/dit_student_op17
DRT=$B/bin/drt
echo "== drt inspect (summary)"
"$DRT" inspect "$FX/model.onnx" | sed -n '1,/^ops:/p'
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=()
for f in "$FX"/inputs/*.npy; do n=$(basename "$f" .npy); args+=(--input "$n=$f"); done
echo "== drt compile"
"$DRT" compile "$FX/model.onnx" -o "$out/dit_student.plan" --shape batch=1
echo "== drt run (plan)"
"$DRT" run "$out/dit_student.plan" "${args[@]}" --output-dir "$out"
python3 - "$FX" "$out" <<'PY'
import sys, os, numpy as np
fx, out = sys.argv[1], sys.argv[2]
for f in sorted(x for x in os.listdir(os.path.join(fx, "expected")) if x.endswith(".npy")):
    ref = np.load(os.path.join(fx, "expected", f)); got = np.load(os.path.join(out, f))
    err = np.linalg.norm((got - ref).ravel()) / max(np.linalg.norm(ref.ravel()), 1e-30)
    print(f"{f}: shape {got.shape}, rel L2 error vs onnxruntime {err:.2e} ({'ok' if err <= 1e-4 else 'MISMATCH'})")
    if err > 1e-4: sys.exit(1)
PY
if [ -f scripts/bench_cpu.py ]; then
  echo "== latency vs onnxruntime (same threads, interleaved)"
  python3 scripts/bench_cpu.py --drt "$DRT" --fixture "$FX"
fi
