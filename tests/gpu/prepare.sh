#!/usr/bin/env bash
# Prepares the kit tests/gpu/run.sh uses on a GPU machine that has no package registry and no
# protobuf-c: a Release build of drt with static non-system libraries (protobuf-c, OpenBLAS;
# only libc/libm/libdl/libpthread stay dynamic, libcuda/NVRTC/cuBLASLt are dlopen'ed there) and
# the benchmark ONNX graphs (weights regenerated on the GPU machine) and ONNX's node tests
# (tests/cuda_emu/run_onnx_nodes.py --export), in one folder to carry:
#   tests/gpu/prepare.sh [KIT_DIR]          (default: gpu-kit, ignored by git)
# then on the GPU machine:   tests/gpu/run.sh RESULTS_DIR --kit gpu-kit
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=${1:-gpu-kit}
B=build-gpu
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DDRT_WERROR=ON -DDRT_STATIC_DEPS=ON -DDRT_BUILD_TESTS=OFF >/dev/null
cmake --build "$B" -j"$(nproc)" --target drt
mkdir -p "$KIT/bin" "$KIT/bench"
cp "$B/bin/drt" "$KIT/bin/drt"
strip "$KIT/bin/drt"
if ldd "$KIT/bin/drt" | grep -Ev 'linux-vdso|libc\.so|libm\.so|libdl\.so|libpthread\.so|ld-linux|librt\.so' | grep -q '=>'; then
  echo "prepare.sh: drt links a non-system shared library:" >&2; ldd "$KIT/bin/drt" >&2; exit 1
fi
python3 tests/gpu/prepare.py "$KIT/bench"
# ONNX's node tests, merged per opset group with inputs and reference outputs, for run.sh to run
# on the GPU with numpy alone (the GPU machine may lack the onnx package)
rm -rf "$KIT/onnx_nodes" "$KIT/cuda_emu"
NODES_WORK=$(mktemp -d)
python3 tests/cuda_emu/run_onnx_nodes.py --drt "$KIT/bin/drt" --work "$NODES_WORK" --export "$KIT/onnx_nodes" | tail -1
rm -rf "$NODES_WORK"
git rev-parse HEAD > "$KIT/COMMIT" 2>/dev/null || true
du -sh "$KIT"
