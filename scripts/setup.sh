#!/usr/bin/env bash
# Installs every system and Python package distilrt's build and tests need. Idempotent.
#   scripts/setup.sh          build + test dependencies
#   scripts/setup.sh --dev    also torch/diffusers/onnxruntime for regenerating fixtures and benchmarks
set -euo pipefail
dev=0
for a in "$@"; do
  case "$a" in
    --dev) dev=1 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 1 ;;
  esac
done

apt_pkgs=(build-essential cmake pkg-config clang protobuf-c-compiler libprotobuf-c-dev libcmocka-dev
          libopenblas-dev libclang-rt-14-dev)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
py_pkgs=(onnx numpy onnxruntime)
[ $dev -eq 1 ] && py_pkgs+=(torch onnxscript diffusers transformers safetensors)
need=()
for p in "${py_pkgs[@]}"; do
  $PY -c "import $p" 2>/dev/null || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: pip installing ${need[*]}"
  $PY -m pip install -q "${need[@]}"
fi
echo "setup: ok"
