#!/usr/bin/env bash
# Installs distilrt from a build dir into a temporary prefix, builds examples/ against the
# installed CMake package (and checks the pkg-config file), then runs the example on a
# compiled DiT student plan and checks its output equals `drt generate` with the same seed.
#   tests/example/run_example.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cmake --install "$B" --prefix "$T/prefix" >/dev/null
test -f "$T/prefix/include/distilrt.h"
PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig:$T/prefix/lib64/pkgconfig" pkg-config --cflags --libs distilrt | grep -q -- "-ldistilrt"
cmake -S "$SRC/examples" -B "$T/ex" -DCMAKE_PREFIX_PATH="$T/prefix" >/dev/null
cmake --build "$T/ex" >/dev/null
FX="$SRC/tests/models/fixtures/dit_student_op17"
"$B/bin/drt" compile "$FX/model.onnx" -o "$T/student.plan" --shape batch=1 --schedule dmd2 --steps 4 >/dev/null
export LD_LIBRARY_PATH="$T/prefix/lib:$T/prefix/lib64:${LD_LIBRARY_PATH:-}"
"$T/ex/generate" "$T/student.plan" "$T/example.npy" 4 7 "encoder_hidden_states=$FX/inputs/encoder_hidden_states.npy"
"$B/bin/drt" generate "$T/student.plan" --steps 4 --seed 7 --input "encoder_hidden_states=$FX/inputs/encoder_hidden_states.npy" \
  -o "$T/cli.npy" >/dev/null
python3 - "$T/example.npy" "$T/cli.npy" <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.shape == b.shape == (1, 4, 16, 16), (a.shape, b.shape)
assert np.isfinite(a).all() and float(np.abs(a).max()) > 0
assert np.array_equal(a, b), float(np.abs(a - b).max())
print("example: output matches drt generate bit for bit")
PY
echo "1 passed, 0 failed"
