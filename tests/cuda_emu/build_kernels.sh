#!/usr/bin/env bash
# Compiles a CUDA program source (drt inspect --cuda-source PLAN > program.cu) into a kernels .so
# for the emulator's mock driver (DRT_MOCK_CUDA_KERNELS). See tests/cuda_emu/README.md.
#   tests/cuda_emu/build_kernels.sh program.cu kernels.so [extra g++ flags, e.g. -O0 -g]
# Environment: CXX (default g++), DRT_EMU_OPT (default -O1).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 PROGRAM.cu OUT.so [g++ flags...]" >&2
  exit 1
fi
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$1
OUT=$2
shift 2
exec "${CXX:-g++}" -std=c++17 ${DRT_EMU_OPT:--O1} -fPIC -shared -fvisibility=hidden -fno-strict-aliasing \
  -fno-math-errno -fcf-protection=none -Wl,-z,defs -I"$HERE/include" -include "$HERE/emu.h" \
  "$@" -x c++ "$SRC" -o "$OUT"
