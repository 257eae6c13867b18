#!/usr/bin/env bash
# The one-command GPU check (issue 5/7): on a machine with an NVIDIA GPU, CUDA 12/13 and Python with
# torch, offline:
#   1. environment: GPU, driver, CUDA, torch versions;
#   2. kernels and fixtures: every model fixture compiled for this GPU in fp32, tf32, fp16 and bf16,
#      run on CUDA and on the CPU backend, compared (fp32/tf32 rel L2 <= 1e-3, fp16/bf16 <= 1e-2, no
#      NaN/Inf), plus a 4-step generation (one CUDA graph) vs the CPU loop; ONNX's node tests on the
#      device against ONNX's reference outputs (tests/cuda_emu/run_onnx_nodes.py --gpu);
#   3. benchmark: the realistic DiT (28 blocks, hidden 1152, 16 heads; 1024 and 4096 tokens) and the
#      scaled-up UNet in bf16: distilrt GPU time per evaluation and per 4-step generation against
#      PyTorch eager and torch.compile on the same model definition and GPU, with the fraction of
#      the measured bf16 matmul peak (FLOP floor / measured time);
#   4. a short table last; every figure in RESULTS_DIR/results.json.
# Budget: under 8 minutes (each step has a deadline; what does not fit is reported as skipped).
#
# usage: tests/gpu/run.sh RESULTS_DIR [--kit DIR | --build DIR] [--quick] [--skip-bench] [--skip-check]
#                          [--dry-run MOCK_SO]
#   --kit DIR    a folder made by tests/gpu/prepare.sh (bin/drt + bench graphs); default: gpu-kit
#   --build DIR  a build folder with bin/drt (bench graphs exported here with tests/gpu/prepare.py
#                if torch.onnx works on this machine)
#   --quick      fp32 and bf16 only, one benchmark model (dit_1024)
#   --skip-drt-bench / --skip-torch   leave out the distilrt / the PyTorch side of the benchmark
#   --torch-json FILE  reuse the PyTorch figures of an earlier run on the same GPU (its torch.json);
#                measures only what it lacks (e.g. torch.compile mode="reduce-overhead") when time allows;
#                tests/gpu/torch_h200.json holds the H200 figures of 2026-11-26; an unreadable FILE
#                means measuring PyTorch as without the option
#   --ab-attn    also compile and bench the DiTs with the attention choices of before (1-NFE and
#                its profile): dit_4096 with DRT_CUDA_ATTN_ROWS=64 (one m16 tile per warp), dit_1024
#                with DRT_CUDA_ATTN_SPLITS=1 (no key splits)
#   --ab-wgmma   on an sm_90 GPU (H100/H200): also check the fp16/bf16 fixtures with plans compiled
#                for sm_90a (attention on warpgroup MMAs, kernels/wgmma.cuh) and bench the DiTs
#                with such a plan as the A/B variant (instead of --ab-attn's). The default on sm_90
#                unless --ab-attn is given; --no-ab-wgmma leaves it out.
# Without either, a kit at ./gpu-kit is used, else the script builds with CMake (needs protobuf-c).
#   --dry-run MOCK_SO  on a machine WITHOUT a GPU: every CPU-side step for real (kit, NVRTC compiles
#                for sm_90, weight generation, benchmark compiles with their timings), the CUDA runs
#                through the emulator's mock driver (tests/cuda_emu; a small fixture subset), no
#                benchmark timing and no PyTorch run.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
T0=$(date +%s)
BUDGET=${DRT_GPU_BUDGET_S:-460}
[ $# -ge 1 ] || { echo "usage: tests/gpu/run.sh RESULTS_DIR [--kit DIR | --build DIR] [--quick] [--skip-bench] [--skip-check]" >&2; exit 2; }
OUT=$1; shift
KIT=""; BUILD=""; QUICK=0; SKIP_BENCH=0; SKIP_CHECK=0; DRY=""; SKIP_DRT=0; SKIP_TORCH=0; TORCH_JSON=""; AB_ATTN=0; AB_WG=-1
while [ $# -gt 0 ]; do
  case "$1" in
    --kit) KIT=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --skip-bench) SKIP_BENCH=1; shift ;;
    --skip-check) SKIP_CHECK=1; shift ;;
    --skip-drt-bench) SKIP_DRT=1; shift ;;
    --skip-torch) SKIP_TORCH=1; shift ;;
    --torch-json) TORCH_JSON=$2; shift 2 ;;
    --ab-attn) AB_ATTN=1; shift ;;
    --ab-wgmma) AB_WG=1; shift ;;
    --no-ab-wgmma) AB_WG=0; shift ;;
    --dry-run) DRY=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$AB_WG" = -1 ] && { [ $AB_ATTN = 1 ] && AB_WG=0 || AB_WG=1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/drt-gpu.XXXXXX")
LOG="$OUT/run.log"
: > "$LOG"
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
export DRT_CACHE_DIR="$WORK/nvrtc-cache"

# ---- 1. environment ------------------------------------------------------------------------------
log "environment"
{ nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader || echo "no nvidia-smi"; } > "$OUT/gpu.txt" 2>/dev/null
{ nvcc --version 2>&1 | tail -2 || true; } > "$OUT/nvcc.txt"
cat "$OUT/gpu.txt" | tee -a "$LOG"
CC_STR=""
[ -n "$DRY" ] && CC_STR=90 && log "dry run: no GPU, CUDA runs through the emulator ($DRY)"
[ -n "$CC_STR" ] || CC_STR=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
if [ -z "$CC_STR" ]; then
  CC_STR=$(python3 -c "import torch; a,b=torch.cuda.get_device_capability(); print(f'{a}{b}')" 2>/dev/null || true)
fi
if [ -z "$CC_STR" ]; then log "no NVIDIA GPU found (nvidia-smi and torch both failed): nothing to check"; exit 3; fi
ARCH="sm_$CC_STR"
log "device architecture $ARCH"

# ---- build / kit ---------------------------------------------------------------------------------
if [ -z "$KIT" ] && [ -z "$BUILD" ] && [ -x gpu-kit/bin/drt ]; then KIT=gpu-kit; fi
if [ -n "$KIT" ]; then
  DRT="$ROOT/$KIT/bin/drt"; [ -x "$DRT" ] || DRT="$KIT/bin/drt"
  BENCH_DIR="$(dirname "$(dirname "$DRT")")/bench"
elif [ -n "$BUILD" ]; then
  DRT="$BUILD/bin/drt"; BENCH_DIR="$BUILD/gpu-bench"
else
  log "no kit or build given: building with CMake"
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DDRT_BUILD_TESTS=OFF >>"$LOG" 2>&1 &&
    cmake --build build-gpu -j"$(nproc)" --target drt >>"$LOG" 2>&1 || { log "build failed (see run.log)"; exit 4; }
  DRT="build-gpu/bin/drt"; BENCH_DIR="build-gpu/gpu-bench"
fi
[ -x "$DRT" ] || { log "drt binary not found at $DRT"; exit 4; }
DRT=$(cd "$(dirname "$DRT")" && pwd)/drt
"$DRT" --version 2>&1 | tee -a "$LOG"

# ---- 2. correctness --------------------------------------------------------------------------------
PRECS=fp32,tf32,fp16,bf16
[ $QUICK = 1 ] && PRECS=fp32,bf16
if [ $SKIP_CHECK = 0 ]; then
  # ONNX's node tests on the device against ONNX's reference outputs (the emulator in a dry run,
  # on a small subset): every kernel kind the backend has, in the forms the ONNX spec tests
  NODES_DIR="$(dirname "$(dirname "$DRT")")/onnx_nodes"  # exported by prepare.sh into the kit
  if [ -d "$NODES_DIR" ] || python3 -c "import onnx" 2>/dev/null; then
    NODE_ARGS=(--gpu --arch "$ARCH")
    [ -n "$DRY" ] && NODE_ARGS=(--mock "$DRY")
    if [ -d "$NODES_DIR" ]; then
      NODE_ARGS+=(--from "$NODES_DIR")
      [ -n "$DRY" ] && NODE_ARGS+=(--max-groups 2)
    elif [ -n "$DRY" ]; then
      NODE_ARGS+=(--filter "^test_(conv|resize|layer_normalization|group_norm)")
    fi
    log "ONNX node tests on CUDA (tests/cuda_emu/run_onnx_nodes.py ${NODE_ARGS[*]})"
    timeout $(( $(left) / 4 )) python3 tests/cuda_emu/run_onnx_nodes.py --drt "$DRT" "${NODE_ARGS[@]}" \
      --work "$WORK" --json "$OUT/onnx_nodes.json" >"$OUT/onnx_nodes.log" 2>&1
    log "ONNX node tests exit $?: $(tail -1 "$OUT/onnx_nodes.log")"
  else
    log "ONNX node tests skipped: no onnx package"
  fi
  FX_ARGS=()
  [ -n "$DRY" ] && FX_ARGS=(--emulate "$DRY" --filter "dit_student_op17|unet_op17" --jobs 2) && PRECS=fp32,bf16
  log "fixtures on CUDA vs CPU ($PRECS)"
  # bf16 plans also run with every convolution forced to each variant: implicit GEMM with
  # its first and second tile shapes (1, 2; a node without the 128x128 tile has im2col as 2) and
  # im2col + cuBLASLt (last); the plain run keeps the executor's timed choice
  timeout $(( $(left) / 2 )) python3 tests/gpu/check_fixtures.py --drt "$DRT" --arch "$ARCH" --precisions "$PRECS" \
    --variants 1,2,last --work "$WORK/fixtures" --out "$OUT/fixtures.json" "${FX_ARGS[@]}" 2>&1 | tee "$OUT/fixtures.log" | grep -E "FAIL|passed|generate" | tee -a "$LOG"
  if [ $AB_WG = 1 ] && [ "$ARCH" = sm_90 ]; then
    WG_PRECS=fp16,bf16
    [ -n "$DRY" ] && WG_PRECS=bf16
    log "fixtures on CUDA vs CPU, sm_90a plans (warpgroup-MMA attention; $WG_PRECS)"
    timeout $(( $(left) / 3 )) python3 tests/gpu/check_fixtures.py --drt "$DRT" --arch sm_90a --precisions "$WG_PRECS" \
      --work "$WORK/fixtures_sm90a" --out "$OUT/fixtures_sm90a.json" --no-generate "${FX_ARGS[@]}" 2>&1 |
      tee "$OUT/fixtures_sm90a.log" | grep -E "FAIL|passed" | tee -a "$LOG"
  fi
fi

# ---- 3. benchmarks --------------------------------------------------------------------------------
MODELS="dit_1024 dit_4096 unet_scaled"
[ $QUICK = 1 ] && MODELS="dit_1024"
if [ $SKIP_BENCH = 0 ]; then
  if [ ! -d "$BENCH_DIR" ]; then
    log "exporting benchmark graphs into $BENCH_DIR (no kit)"
    python3 tests/gpu/prepare.py "$BENCH_DIR" >>"$LOG" 2>&1 || log "export failed (torch.onnx/onnx missing?): see run.log"
  fi
  for m in $MODELS; do
    [ $SKIP_DRT = 1 ] && break
    [ -f "$BENCH_DIR/$m/model.onnx" ] || { log "$m: no graph, skipped"; continue; }
    if [ "$(left)" -lt 90 ]; then log "$m: skipped (time budget)"; continue; fi
    log "$m: weights, compile (bf16, $ARCH), bench"
    mkdir -p "$WORK/$m"
    python3 -c "import sys; sys.path.insert(0, 'tests/gpu'); import bench_models as bm; bm.make_weights('$BENCH_DIR/$m')" \
      >>"$LOG" 2>&1 || { log "$m: weight generation failed"; continue; }
    timeout $(( $(left) / 2 )) "$DRT" compile "$BENCH_DIR/$m/model.onnx" -o "$WORK/$m/model.plan" --target cuda \
      --arch "$ARCH" --precision bf16 --schedule flow-euler > "$OUT/compile_$m.log" 2>&1 ||
      { log "$m: drt compile failed: $(tail -2 "$OUT/compile_$m.log")"; continue; }
    grep -E "cuda:|cuda time|time:" "$OUT/compile_$m.log" | tee -a "$LOG"
    if [ -n "$DRY" ]; then rm -f "$BENCH_DIR/$m/weights.bin"; continue; fi
    IN=""
    for f in "$BENCH_DIR/$m"/*.npy; do n=$(basename "$f" .npy); IN="$IN --input $n=$f"; done
    timeout $(( $(left) / 2 )) "$DRT" bench "$WORK/$m/model.plan" --backend cuda --json --steps 1,4 \
      --warmup 3 --iterations 20 --profile $IN > "$OUT/drt_$m.json" 2> "$OUT/drt_$m.err" ||
      log "$m: drt bench failed: $(tail -3 "$OUT/drt_$m.err")"
    # the same plan without programmatic dependent launch (a run-time switch): what it saves
    if [ "$m" = dit_1024 ] && [ "$(left)" -gt 120 ]; then
      DRT_CUDA_PDL=0 timeout 60 "$DRT" bench "$WORK/$m/model.plan" --backend cuda --json --steps 1 --warmup 3 \
        --iterations 20 $IN > "$OUT/drt_${m}_nopdl.json" 2>/dev/null || rm -f "$OUT/drt_${m}_nopdl.json"
    fi
    # convolutions: the executor timed implicit GEMM against im2col + cuBLASLt per node (the
    # profile's rows show which ran: drt_conv_igemm, drt_im2col); the same plan with im2col +
    # cuBLASLt only (a run-time switch) is the baseline
    if [ "$m" = unet_scaled ] && [ "$(left)" -gt 90 ]; then
      DRT_CUDA_VARIANT=last timeout 60 "$DRT" bench "$WORK/$m/model.plan" --backend cuda --json --steps 1 \
        --warmup 3 --iterations 20 --profile $IN > "$OUT/drt_${m}_im2col.json" 2>/dev/null ||
        rm -f "$OUT/drt_${m}_im2col.json"
    fi
    AB=""; AB_ARCH="$ARCH"; AB_LABEL=""
    case "$m" in dit_4096) AB=DRT_CUDA_ATTN_ROWS=64 ;; dit_*) AB=DRT_CUDA_ATTN_SPLITS=1 ;; esac
    AB_LABEL="$AB"
    if [ $AB_WG = 1 ] && [ "$ARCH" = sm_90 ]; then
      case "$m" in dit_*) AB=DRT_AB_WGMMA=1; AB_ARCH=sm_90a; AB_LABEL="--arch sm_90a (warpgroup-MMA attention)" ;; esac
    fi
    if { [ $AB_ATTN = 1 ] || [ $AB_WG = 1 ]; } && [ -n "$AB" ] && [ "$(left)" -gt 90 ]; then
      log "$m: A/B plan with $AB_LABEL"
      rm -f "$WORK/$m/model.plan"
      echo "$AB_LABEL" > "$OUT/drt_${m}_ab.txt"
      env "$AB" timeout $(( $(left) / 3 )) "$DRT" compile "$BENCH_DIR/$m/model.onnx" -o "$WORK/$m/ab.plan" \
        --target cuda --arch "$AB_ARCH" --precision bf16 --schedule flow-euler > "$OUT/compile_${m}_ab.log" 2>&1 &&
        timeout $(( $(left) / 3 )) "$DRT" bench "$WORK/$m/ab.plan" --backend cuda --json --steps 1 --warmup 3 \
          --iterations 20 --profile $IN > "$OUT/drt_${m}_ab.json" 2> "$OUT/drt_${m}_ab.err" ||
        log "$m: A/B failed: $(tail -2 "$OUT/compile_${m}_ab.log" "$OUT/drt_${m}_ab.err" 2>/dev/null)"
      rm -f "$WORK/$m/ab.plan"
    fi
    rm -f "$WORK/$m/model.plan" "$BENCH_DIR/$m/weights.bin"
  done
  if [ -n "$TORCH_JSON" ] && ! cp "$TORCH_JSON" "$OUT/torch.json" 2>/dev/null; then
    log "--torch-json $TORCH_JSON: cannot read it; measuring PyTorch instead"
    TORCH_JSON=""
  fi
  if [ -n "$TORCH_JSON" ]; then
    if [ $SKIP_TORCH = 0 ] && [ -z "$DRY" ] && [ "$(left)" -gt 90 ]; then
      log "PyTorch figures from $TORCH_JSON; measuring what it lacks"
      timeout $(( $(left) - 15 )) python3 tests/gpu/torch_bench.py --merge "$TORCH_JSON" --out "$OUT/torch.json" \
        --models "$(echo $MODELS | tr ' ' ,)" --budget-s $(( $(left) - 60 )) 2>&1 | tee "$OUT/torch.log" |
        grep -v Warning | tail -5 | tee -a "$LOG"
      [ -s "$OUT/torch.json" ] || cp "$TORCH_JSON" "$OUT/torch.json"
    else
      log "PyTorch figures reused from $TORCH_JSON"
    fi
  elif [ $SKIP_TORCH = 1 ]; then
    log "PyTorch benchmark skipped (--skip-torch)"
  elif [ -n "$DRY" ]; then
    log "dry run: PyTorch benchmark skipped (no GPU)"
  elif [ "$(left)" -gt 60 ]; then
    log "PyTorch eager / torch.compile"
    timeout $(( $(left) - 15 )) python3 tests/gpu/torch_bench.py --out "$OUT/torch.json" --models "$(echo $MODELS | tr ' ' ,)" \
      --budget-s $(( $(left) - 60 )) 2>&1 | tee "$OUT/torch.log" | grep -v Warning | tail -5 | tee -a "$LOG"
  else
    log "PyTorch benchmark skipped (time budget)"
  fi
fi

# ---- 4. summary -----------------------------------------------------------------------------------
python3 tests/gpu/summary.py "$OUT" --arch "$ARCH" --elapsed $(( $(date +%s) - T0 ))
RC=$?
rm -rf "$WORK"
exit $RC
